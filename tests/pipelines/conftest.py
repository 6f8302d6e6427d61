"""Fixtures of the Beam pipeline tests: a small data folder (a few LFW photos, one corrupt, and the
UTKFace sample of ``../shared/data/extra/``) and Beam pipeline options for 1 and 2 workers.

Every test here needs Apache Beam (the ``beam`` extra); without it they skip, saying so."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

NO_BEAM = ('Apache Beam is not installed: the Beam tests need pip install -e ".[beam,test]" -c constraints-beam.txt '
           "(.ci/run runs them in a second virtual environment)")
HAVE_BEAM = importlib.util.find_spec("apache_beam") is not None


def pytest_collection_modifyitems(config, items):
    """Without Apache Beam every test of this folder skips, saying why."""
    if HAVE_BEAM:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.skip(reason=NO_BEAM))

LFW = ["Aaron_Eckhart/Aaron_Eckhart_0001", "Colin_Powell/Colin_Powell_0001", "Colin_Powell/Colin_Powell_0002",
       "Tony_Blair/Tony_Blair_0001"]
CORRUPT = "lfw/Tony_Blair/Tony_Blair_0002.jpg"


@pytest.fixture(scope="session")
def small_data(data_root, tmp_path_factory):
    """A data folder in the shared layout with 5 LFW photos (one corrupt: a third of a JPEG) and the
    UTKFace sample; the people lists, morphable model and studio sets are links to the shared data."""
    root = tmp_path_factory.mktemp("beam_data")
    for name in ("lfw_peopleDevTrain.txt", "lfw_peopleDevTest.txt", "morphable_model", "studio"):
        (root / name).symlink_to(data_root / name)
    (root / "extra").mkdir()
    (root / "extra" / "utkface").symlink_to(data_root / "extra" / "utkface")
    for key in LFW:
        (root / "lfw" / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / "lfw" / f"{key}.jpg", root / "lfw" / f"{key}.jpg")
    jpeg = (data_root / "lfw" / f"{LFW[0]}.jpg").read_bytes()
    (root / CORRUPT).write_bytes(jpeg[: len(jpeg) // 3])
    return root


def _direct_options(workers: int):
    from normface.pipelines import common

    if workers == 1:
        return common.pipeline_options("DirectRunner", ["--direct_num_workers=1"])
    return common.pipeline_options("DirectRunner", [f"--direct_num_workers={workers}",
                                                    "--direct_running_mode=multi_processing"])


@pytest.fixture(scope="session")
def direct_options():
    """``direct_options(workers)``: DirectRunner options, one worker in memory or ``workers`` processes."""
    return _direct_options


@pytest.fixture(scope="session")
def corrupt_photo() -> str:
    """The corrupt photo of ``small_data``, relative to it."""
    return CORRUPT


STAGE1_SOURCES = ["lfw", "utkface"]


@pytest.fixture(scope="session")
def stage1_template():
    from normface.faces.alignment import AlignmentTemplate

    return AlignmentTemplate.for_size(64)


@pytest.fixture(scope="session")
def local_aligned(small_data, stage1_template, tmp_path_factory):
    """Stage 1 of ``small_data`` by the local path (one process, shards of 4): (folder, summary)."""
    from normface.data import align

    out = tmp_path_factory.mktemp("local") / "aligned"
    summary = align.align_all(small_data, out, stage1_template, sources=STAGE1_SOURCES, shard_size=4, workers=1,
                              progress=lambda msg: None)
    return out, summary

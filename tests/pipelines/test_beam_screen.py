"""Stage 2b (screening, deduplication) on the Beam DirectRunner against the local path
(normface.data.screen.screen_faces) on the planted faces folder of normface.testing.screening
with its stand-in descriptor: the same screened files, removed.jsonl, invariance.json,
screening.json and descriptor cache, with 1 and 2 workers; a rerun encodes nothing; a pool face
whose image is corrupt lands in the failure report, is left out, and the pipeline succeeds; when
the encoder fails on every face, the report is written and then the launcher raises."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from normface.data import faceset, screen
from normface.testing.screening import pixel_descriptor, write_screening_faces

OUTPUTS = (screen.REMOVED_FILE, screen.INVARIANCE_FILE, screen.REPORT_FILE)


def files_of(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "failures.jsonl")


def cache_of(faces_root) -> dict[str, tuple[list, np.ndarray]]:
    out = {}
    for path in sorted((faces_root / screen.CACHE_DIR).glob("*.npz")):
        stored = np.load(path)
        out[path.name] = (stored["keys"].tolist(), stored["descriptors"])
    return out


def assert_same_screening(ours, theirs):
    mine, local = screen.screened_dir(ours), screen.screened_dir(theirs)
    assert files_of(mine) == files_of(local)
    for name in files_of(local):
        assert (mine / name).read_bytes() == (local / name).read_bytes(), name


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_screening_faces(tmp_path_factory.mktemp("screen_pristine") / "faces")


@pytest.fixture(scope="module")
def local_screened(pristine, tmp_path_factory):
    root = tmp_path_factory.mktemp("screen_local") / "faces"
    shutil.copytree(pristine, root)
    report = screen.screen_faces(root, pixel_descriptor, progress=lambda _: None)
    return root, report


@pytest.mark.parametrize("workers", [1, 2])
def test_beam_screening_matches_the_local_path(pristine, local_screened, tmp_path, workers, direct_options):
    from normface.pipelines import screen as beam_screen

    local, local_report = local_screened
    root = tmp_path / "faces"
    shutil.copytree(pristine, root)
    report = beam_screen.screen_faces(root, pixel_descriptor, screen.ScreenConfig(), direct_options(workers),
                                      progress=lambda _: None)
    assert local_report["training_faces_kept"] == 5 and sum(local_report["removed"].values()) == 4
    assert_same_screening(root, local)
    for name in OUTPUTS:  # the files the records and pairs stages read, spelled out
        assert (screen.screened_dir(root) / name).read_bytes() == (screen.screened_dir(local) / name).read_bytes()
    ours, theirs = cache_of(root), cache_of(local)
    assert list(ours) == list(theirs) == ["descriptors-heldout-00000.npz", "descriptors-pool-00000.npz"]
    for name in theirs:
        assert ours[name][0] == theirs[name][0]
        np.testing.assert_array_equal(ours[name][1], theirs[name][1])
    assert {k: report[k] for k in local_report} == local_report
    assert report["beam_failure_counters"] == {}
    assert (screen.screened_dir(root) / "failures.jsonl").read_text() == ""
    if workers == 1:  # a rerun encodes nothing and writes the same outputs
        calls = []
        report = beam_screen.screen_faces(root, pixel_descriptor, screen.ScreenConfig(), direct_options(1),
                                          progress=calls.append)
        assert calls == ["0 faces to encode in 0 chunk(s)"] and list(cache_of(root)) == list(theirs)
        assert_same_screening(root, local)


def test_beam_screening_reports_a_face_it_cannot_read(pristine, tmp_path, direct_options):
    from normface.pipelines import common
    from normface.pipelines import screen as beam_screen

    broken, without = tmp_path / "broken", tmp_path / "without"
    shutil.copytree(pristine, broken)
    shutil.copytree(pristine, without)
    entry = faceset.read_entry(faceset.averaged_dir(pristine), "train", "utkface/adult")
    png = faceset.face_paths(faceset.averaged_dir(broken), entry)[0]
    png.write_bytes(b"not a png")
    for path in faceset.face_paths(faceset.averaged_dir(without), entry):
        path.unlink()
    report = beam_screen.screen_faces(broken, pixel_descriptor, screen.ScreenConfig(), direct_options(1),
                                      progress=lambda _: None)
    failures = common.read_report(report["failure_report"])
    assert [(f["key"], f["set"]) for f in failures] == [("utkface/adult", "pool")]
    assert failures[0]["reason"].startswith("unreadable")
    assert report["beam_failure_counters"] == {"unreadable": 1}
    # The face is left out: the outputs are the local path's on the face set without it.
    screen.screen_faces(without, pixel_descriptor, progress=lambda _: None)
    assert_same_screening(broken, without)
    assert report["pool_faces"] == 8 and not faceset.has_face(screen.screened_dir(broken), "train", "utkface/adult")


def failing_encoder(images, landmarks):
    raise RuntimeError("encoder down")


def test_beam_screening_with_no_face_described_writes_the_report_then_raises(pristine, tmp_path, direct_options):
    from normface.pipelines import common
    from normface.pipelines import screen as beam_screen

    root = tmp_path / "faces"
    shutil.copytree(pristine, root)
    with pytest.raises(ValueError, match="no training face could be described"):
        beam_screen.screen_faces(root, failing_encoder, screen.ScreenConfig(), direct_options(1),
                                 progress=lambda _: None)
    failures = common.read_report(str(screen.screened_dir(root) / common.REPORT_FILE))
    assert len(failures) == 13 and {f["reason"] for f in failures} == {"encoder error: RuntimeError('encoder down')"}
    assert not (screen.screened_dir(root) / screen.REPORT_FILE).exists() and not list((root / screen.CACHE_DIR).glob("*"))

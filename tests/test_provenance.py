"""Portable provenance (issue 27): cards and reports name paths relative to the workspace, data
root or repository, never a machine's absolute paths, and a build from a dirty tree says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from normface.utils import paths, provenance

# An absolute path of some machine: a "/" that starts a path (not inside a relative path or a
# URL), then a folder that holds users, data or scratch space; or a Windows drive.
ABSOLUTE = re.compile(r"(?<![\w.~:/$-])/(?:work|root|home|Users|tmp|data|mnt|media|scratch|srv|opt|var|private|"
                      r"gpfs|lustre|nfs)/|\b[A-Za-z]:\\\\")
COMMITTED = ("normface/serving/pretrained", "archive", "experiments/results")
TEXT_SUFFIXES = (".md", ".json", ".jsonl", ".txt", ".csv")


def committed_cards_and_reports() -> list[Path]:
    return sorted(p for root in COMMITTED for p in (paths.REPO_ROOT / root).rglob("*")
                  if p.is_file() and p.suffix in TEXT_SUFFIXES)


def absolute_paths_in(text: str) -> list[str]:
    found = [text[max(m.start() - 30, 0):m.end() + 30] for m in ABSOLUTE.finditer(text)]
    for own in {str(paths.REPO_ROOT), str(Path.home())} - {"/"}:
        found += [f"...{own}..."] * text.count(own)
    return found


def test_committed_cards_and_reports_name_no_absolute_paths():
    files = committed_cards_and_reports()
    assert any(p.name == "MODEL_CARD.md" for p in files) and any(p.name == "report.md" for p in files)
    bad = {str(p.relative_to(paths.REPO_ROOT)): hits for p in files if (hits := absolute_paths_in(p.read_text()))}
    assert not bad, bad


def test_committed_cards_and_reports_say_dirty_plainly():
    for p in committed_cards_and_reports():
        assert "+dirty" not in p.read_text(), p


def test_the_check_catches_an_absolute_path():
    assert absolute_paths_in("| records_dir | /work/workspace/records128m |")
    assert absolute_paths_in("{'root': '/home/me/faces128'}") and absolute_paths_in('"--pairs_dir=/tmp/p"')
    assert not absolute_paths_in("workspace/records128m, ../shared/data/README.md, GET /v1/model, "
                                 "http://127.0.0.1:8000/docs, $NORMFACE_DATA/lfw")


def test_portable_names_paths_by_their_root(tmp_path, monkeypatch):
    work, data, cache = tmp_path / "ws", tmp_path / "data", tmp_path / "cache"
    monkeypatch.setenv(paths.WORKSPACE_ENV, str(work))
    monkeypatch.setenv(paths.DATA_ENV, str(data))
    monkeypatch.setenv(paths.CACHE_ENV, str(cache))
    assert paths.portable(work / "runs" / "r128") == "workspace/runs/r128"
    assert paths.portable(data / "lfw" / "a.jpg") == "$NORMFACE_DATA/lfw/a.jpg"
    assert paths.portable(cache / "enc.keras") == "$NORMFACE_CACHE/enc.keras"
    assert paths.portable(paths.REPO_ROOT / "archive" / "normface128-v1") == "archive/normface128-v1"
    assert paths.portable("workspace/pairs128") == "workspace/pairs128"  # relative: as given
    assert paths.portable(paths.REPO_ROOT.parent / "shared" / "judges" / "j.tflite") == "../shared/judges/j.tflite"
    # A path under none of the roots (not tmp_path: a clone in /tmp has it under the repository's parent).
    assert paths.portable(Path("/nowhere-normface/elsewhere/model")) == ".../elsewhere/model"
    text = f"weights from {work}/runs/r/best/ckpt-4; GET /v1/model; http://127.0.0.1:8000/docs"
    assert paths.portable_text(text) == "weights from workspace/runs/r/best/ckpt-4; GET /v1/model; " \
                                        "http://127.0.0.1:8000/docs"
    nested = paths.portable_values({"faceset": {"root": str(work / "faces")}, "flags": [f"--pairs_dir={work}/p"],
                                    "path": data / "x", "n": 3})
    assert nested == {"faceset": {"root": "workspace/faces"}, "flags": ["--pairs_dir=workspace/p"],
                      "path": "$NORMFACE_DATA/x", "n": 3}


def test_dirty_tree_is_said_plainly():
    dirty, clean = provenance.GitState("abc123", True), provenance.GitState("abc123", False)
    assert str(dirty) == "built from a dirty tree at abc123" and str(clean) == "abc123"
    assert dirty.markdown() == "built from a dirty tree at `abc123`" and clean.markdown() == "`abc123`"
    assert provenance.parse("abc123+dirty") == dirty == provenance.parse(str(dirty))
    assert provenance.parse("abc123") == clean
    state = provenance.git_state()
    assert provenance.git_commit() == str(state) and "+dirty" not in provenance.git_commit()


def test_model_card_is_portable_and_names_the_version(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    from normface import __version__
    from normface.serving.export_format import ExportMetadata
    from normface.training.export import write_model_card

    work = tmp_path / "ws"
    monkeypatch.setenv(paths.WORKSPACE_ENV, str(work))
    meta = ExportMetadata(model_config={"output_size": 64}, mean_landmarks=[], output_size=64, step=7)
    card = {"data": {"records_dir": str(work / "records"), "faceset": {"root": str(work / "faces")}},
            "flags": {"model_dir": str(work / "runs" / "r"), "init_from": str(paths.REPO_ROOT / "archive" / "m")},
            "notes": f"weights from {work}/runs/r/best/ckpt-7", "git_commit": "abc123+dirty"}
    write_model_card(tmp_path / "MODEL_CARD.md", meta, card)
    text = (tmp_path / "MODEL_CARD.md").read_text()
    assert f"- normface version: {__version__}" in text
    assert "- git commit: built from a dirty tree at `abc123`" in text
    assert "workspace/records" in text and "workspace/runs/r/best/ckpt-7" in text and "archive/m" in text
    assert str(tmp_path) not in text and not absolute_paths_in(text), text

"""Tests of normface.serving.run_manifest: what a rerun may skip (issue 16)."""

from __future__ import annotations

from pathlib import Path

from normface.serving import run_manifest


def _done_input(tmp_path: Path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"photo bytes")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_face0.png").write_bytes(b"face")
    manifest = run_manifest.RunManifest(out)
    key = run_manifest.run_key("model-1", {"fmt": "png"})
    manifest.record(photo, run_manifest.file_sha256(photo), Path("a.jpg"), key, [out / "a_face0.png"])
    return photo, out, key


def test_a_rerun_skips_only_what_matches(tmp_path):
    photo, out, key = _done_input(tmp_path)
    sha = run_manifest.file_sha256(photo)
    again = run_manifest.RunManifest(out)  # read back from the file
    assert again.done(photo, sha, Path("a.jpg"), key).outputs == ["a_face0.png"]
    assert (out / "a_face0.png").resolve() in again.recorded_outputs
    assert again.done(photo, sha, Path("a.jpg"), run_manifest.run_key("model-2", {"fmt": "png"})) is None
    assert again.done(photo, sha, Path("a.jpg"), run_manifest.run_key("model-1", {"fmt": "jpg"})) is None
    assert again.done(photo, "another photo", Path("a.jpg"), key) is None
    assert again.done(photo, sha, Path("a_2.jpg"), key) is None  # its outputs would take another name
    (out / "a_face0.png").write_bytes(b"other size")
    assert again.done(photo, sha, Path("a.jpg"), key) is None
    (out / "a_face0.png").unlink()
    assert again.done(photo, sha, Path("a.jpg"), key) is None


def test_a_line_torn_by_a_kill_is_ignored_and_closed(tmp_path):
    photo, out, key = _done_input(tmp_path)
    path = out / run_manifest.MANIFEST_FILE
    path.write_bytes(path.read_bytes() + b'{"input": "/x", "sha2')  # killed mid-line
    manifest = run_manifest.RunManifest(out)
    assert len(manifest.entries) == 1
    (out / "b_face0.png").write_bytes(b"face b")
    manifest.record(photo, "b-sha", Path("b.jpg"), key, [out / "b_face0.png"])
    assert len(run_manifest.RunManifest(out).entries) == 2

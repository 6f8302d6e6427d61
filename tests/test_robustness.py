"""Bad input and faults (issue 16): every case of the issue's table, built in a temp dir.

Each case asserts the documented exit code (0 done or per-file failures, 1 nothing produced or a
write failed, 2 usage), that stderr names the file or argument, that no traceback is printed and
that no input changed. Write failures are real without permissions (the tests run as root): an
output path under a regular file, /dev/full, or an ENOSPC injected into the image writer. The
model is a tiny untrained packed one (plumbing, not quality); the photos are the shipped samples.
Kill -9 / SIGTERM mid-batch, the fuzz run and the data-prep binaries run as subprocesses.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normface import cli
from normface.cli import common
from normface.serving import packed, run_manifest
from normface.utils import io_utils, paths

SAMPLES = paths.REPO_ROOT / "samples"
PHOTOS = ["london_005_08.jpg", "london_011_08.jpg"]
SIZE = 32


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A packed tiny model (with checksums), as the shipped one is packed."""
    from normface.testing import synthetic

    root = tmp_path_factory.mktemp("model")
    return packed.pack(synthetic.tiny_export(root / "export", size=SIZE), root / "packed")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(SAMPLES / name, folder / name.replace("london_", "p"))
    return folder


def hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root`` (links and special files left out)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if io_utils.TEMP_MARK in p.name]


def run(argv, capsys):
    """``normface ARGV`` in-process: (exit code, stdout, stderr); never a traceback."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, err
    # The tiny models have no LiteRT files: drop the fallback's notice (tests/serving/test_litert_backend.py).
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith(common.FALLBACK_NOTICE))
    return code, out, err


def damaged_copy(model: Path, dest: Path, damage: str, checksums: bool = True) -> Path:
    shutil.copytree(model, dest)
    weights = dest / packed.WEIGHTS_FILE
    data = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "flipped":
        middle = len(data) // 2
        weights.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    if not checksums:
        meta = json.loads((dest / packed.METADATA_FILE).read_text())
        del meta[packed.CHECKSUMS_KEY]
        (dest / packed.METADATA_FILE).write_text(json.dumps(meta))
    return dest


# --- 1: a corrupt shipped-model file -------------------------------------------------------------


@pytest.mark.parametrize("checksums", [True, False], ids=["checksummed", "older-model"])
@pytest.mark.parametrize("damage", ["truncated", "empty", "flipped"])
def test_1_corrupt_model_is_one_line_naming_the_file(tiny_model, photos, tmp_path, capsys, damage, checksums):
    model = damaged_copy(tiny_model, tmp_path / "m", damage, checksums)
    before = hashes(photos)
    photo = photos / "p005_08.jpg"
    for argv in (["normalize", photos, "-o", tmp_path / "out"], ["adjust", photo, "-o", tmp_path / "fixed.jpg"],
                 ["avatar", photo, "-o", tmp_path / "face.obj"]):
        code, _, err = run([*argv, "--model", model], capsys)
        assert code == 1, err
        assert str(model / packed.WEIGHTS_FILE) in err and ("corrupt" in err or "partial" in err), err
        assert len(err.strip().splitlines()) == 1, err
    assert hashes(photos) == before
    assert not (tmp_path / "fixed.jpg").exists() and not (tmp_path / "face.obj").exists()


def test_1_model_without_checksums_still_loads(tiny_model, tmp_path):
    from normface.serving.normalizer import FaceNormalizer

    model = damaged_copy(tiny_model, tmp_path / "old", damage="none", checksums=False)
    assert packed.CHECKSUMS_KEY not in json.loads((model / packed.METADATA_FILE).read_text())
    assert FaceNormalizer.from_pretrained(model).output_size == SIZE


def test_1_shipped_model_records_checksums_that_match():
    from normface.serving.normalizer import DEFAULT_MODEL, PRETRAINED_DIR

    shipped = PRETRAINED_DIR / DEFAULT_MODEL
    recorded = json.loads((shipped / packed.METADATA_FILE).read_text())[packed.CHECKSUMS_KEY]
    assert set(recorded) == {packed.WEIGHTS_FILE}
    assert packed.verify_checksums(shipped, recorded)


# --- usage errors: 2 (nothing written), 4 (--report a folder), 5 (avatar / warp-demo under a file),
# --- 6 (-o is the input folder), 10 (--batch-size 0), all before the model loads -------------------


USAGE_CASES = {
    "2-normalize-o-is-a-file": (["normalize", "{in}", "-o", "{file}"], "{file}"),
    "2-normalize-o-under-a-file": (["normalize", "{in}", "-o", "{file}/sub"], "{file}"),
    "2-adjust-o-under-a-file": (["adjust", "{in}", "-o", "{file}/sub"], "{file}"),
    "4-report-is-a-folder": (["normalize", "{in}", "-o", "{tmp}/out", "--report", "{tmp}"], "--report"),
    "4-report-under-a-file": (["normalize", "{in}", "-o", "{tmp}/out", "--report", "{file}/r.jsonl"], "--report"),
    "5-avatar-under-a-file": (["avatar", "{in}/p005_08.jpg", "-o", "{file}/x.obj"], "{file}"),
    "5-avatar-bad-suffix": (["avatar", "{in}/p005_08.jpg", "-o", "{tmp}/x.stl"], ".obj or .ply"),
    "5-warp-demo-under-a-file": (["warp-demo", "-o", "{file}/z.png", "--photo", "{in}/p005_08.jpg"], "{file}"),
    "6-normalize-o-is-the-input": (["normalize", "{in}", "-o", "{in}"], "is the input folder"),
    "6-normalize-o-is-the-glob-base": (["normalize", "{in}/*.jpg", "-o", "{in}"], "is the input folder"),
    "6-adjust-o-is-the-input": (["adjust", "{in}", "-o", "{in}"], "is the input folder"),
    "10-batch-size-0": (["normalize", "{in}", "-o", "{tmp}/out", "--batch-size", "0"], "--batch-size"),
    "model-missing": (["normalize", "{in}", "-o", "{tmp}/out", "--model", "{tmp}/nope"], "--model"),
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_usage_errors_exit_2_before_the_model_loads(tiny_model, photos, tmp_path, capsys, case):
    argv, named = USAGE_CASES[case]
    outfile = tmp_path / "outfile"
    outfile.write_text("a regular file")
    # A damaged model: had it been loaded, the exit code would be 1 and the error about it.
    model = damaged_copy(tiny_model, tmp_path / "model", "truncated")
    fill = {"in": photos, "file": outfile, "tmp": tmp_path}
    argv = [a.format(**fill) for a in argv]
    if "--model" not in argv and argv[0] != "warp-demo":
        argv += ["--model", str(model)]
    before, listing = hashes(tmp_path), sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(argv, capsys)
    assert code == 2, err
    assert named.format(**fill) in err and "weights.npz" not in err, err
    assert hashes(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == listing


def test_help_documents_the_exit_codes(capsys):
    for command in ("normalize", "adjust", "avatar", "warp-demo"):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert "exit status" in text and "0  every input" in text and "2  usage error" in text, command
        assert "--debug" in text


# --- 2, 3, 4: write failures during a run (ENOSPC injected; /dev/full) ------------------------------


def _inject_enospc(monkeypatch, names):
    """Image writes to a path whose name contains one of ``names`` write part of the file, then fail
    with ENOSPC (a disk that filled up)."""
    save = Image.Image.save

    def full_disk_save(self, fp, *args, **kwargs):
        if any(n in os.path.basename(str(fp)) for n in names):
            Path(fp).write_bytes(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk_save)


def test_2_3_failed_writes_are_errors_and_a_rerun_redoes_them(tiny_model, photos, tmp_path, capsys, monkeypatch):
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    before = hashes(photos)
    _inject_enospc(monkeypatch, ["p005_08_face0", "sheet"])
    code, stdout, err = run(["normalize", photos, "-o", out, "--model", tiny_model, "--report", report, "--sheet"],
                            capsys)
    assert code == 1, err
    assert "p005_08.jpg" in err and "p005_08_face0.png" in err and "No space left on device" in err
    assert "sheet.png" in err  # 3: the sheet's failure is an error too, not a traceback
    assert "from 1 of 2 file(s)" in stdout  # the failed write is not counted as processed
    assert not (out / "p005_08_face0.png").exists() and (out / "p011_08_face0.png").is_file()
    assert not (out / "sheet.png").exists() and temp_files(out) == []
    lines = {Path(x["input"]).name: x for x in map(json.loads, report.read_text().splitlines())}
    assert lines["p005_08.jpg"]["status"] == "error" and lines["p011_08.jpg"]["status"] == "ok"
    monkeypatch.undo()
    # 4: a report on a full disk (/dev/full) is an error too; the rerun redoes only the failed input.
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    code, stdout, err = run(["normalize", photos, "-o", out, "--model", tiny_model, "--report", "/dev/full"], capsys)
    assert code == 1 and "/dev/full" in err and "No space left on device" in err, err
    assert "1 of 2 input(s) already done" in stdout and "from 1 of 1 file(s)" in stdout
    assert (out / "p005_08_face0.png").is_file() and temp_files(out) == []
    assert hashes(photos) == before


# --- 6 (-o above the input folder), 7 (symlinks), 15 (messages), and special files ----------------


def test_6_7_15_links_special_files_and_tiny_images(tiny_model, photos, tmp_path, capsys, monkeypatch):
    (photos / "linked.jpg").symlink_to(photos / "p011_08.jpg")  # followed (the same file: normalized once)
    (photos / "other.jpg").symlink_to(SAMPLES / "london_027_08.jpg")  # followed
    (photos / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (photos / "sub").mkdir()
    (photos / "sub" / "up.jpg").symlink_to("..")  # a link named like an image, to a folder
    (photos / "loop").symlink_to(photos)  # a folder link back up the tree: walked once
    Image.new("RGB", (1, 1)).save(photos / "one_pixel.png")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    (tmp_path / "dangling2.jpg").symlink_to(tmp_path / "missing.jpg")
    os.mkfifo(tmp_path / "fifo.jpg")
    before = hashes(photos)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["normalize", "in", "loop.jpg", "dangling2.jpg", "fifo.jpg", "-o", ".", "--model",
                          tiny_model, "--strict"], capsys)
    assert code == 1, err  # --strict notices the links and the special file
    assert "loop.jpg: symbolic link loop" in err
    assert "dangling2.jpg: broken symbolic link" in err and "dangling.jpg: broken symbolic link" in err
    assert "fifo.jpg: not a regular file" in err
    assert "one_pixel.png: image: 1x1 pixels is too small to hold a face" in err
    # -o . lies above in/: outputs keep their names relative to in/ (nothing mixes into in/).
    # (linked.jpg and p011_08.jpg are one file: normalized once, under the name found first)
    assert sorted(p.name for p in tmp_path.glob("*_face0.png")) == ["linked_face0.png", "other_face0.png",
                                                                   "p005_08_face0.png"]
    assert "no input images" not in err and hashes(photos) == before
    code, out, err = run(["avatar", "in/one_pixel.png", "-o", "face.obj", "--model", tiny_model], capsys)
    assert code == 1 and err.count("one_pixel.png") == 1 and "too small" in err, err


# --- 8: EXIF orientation and ICC profiles ----------------------------------------------------------


def test_8_orientations_and_a_wide_gamut_profile_give_the_upright_srgb_face(tiny_model, tmp_path, capsys):
    from normface.testing import synthetic

    folder = tmp_path / "in"
    folder.mkdir()
    upright = Image.open(SAMPLES / "london_005_08.jpg").convert("RGB")
    # What a phone writes: the sensor's pixels as a JPEG plus the tag that says how to turn them.
    # The reference is those decoded pixels turned by hand (np.rot90, counter-clockwise k times),
    # saved losslessly: the same pixels the tag should give.
    turns = {3: 2, 6: -1, 8: 1}
    for orientation, k in turns.items():
        path = folder / f"orientation{orientation}.jpg"
        synthetic.save_with_orientation(upright, path, orientation, quality=95)
        with Image.open(path) as stored:
            Image.fromarray(np.rot90(np.asarray(stored.convert("RGB")), k)).save(folder / f"upright{orientation}.png")
    profile = synthetic.wide_gamut_profile()
    encoded = synthetic.to_profile(np.asarray(upright), profile)
    assert np.abs(encoded.astype(int) - np.asarray(upright)).mean() > 1.5  # the profile matters
    Image.fromarray(encoded).save(folder / "wide_gamut.png", icc_profile=profile)
    upright.save(folder / "srgb.png")
    out = tmp_path / "out"
    code, _, err = run(["normalize", folder, "-o", out, "--model", tiny_model, "--side-by-side", "--json"], capsys)
    assert code == 0 and not err, err

    def face(name):
        pair = io_utils.read_rgb(out / f"{name}_face0.png").astype(int)
        meta = json.loads((out / f"{name}_face0.json").read_text())
        return pair[:, :SIZE], pair[:, SIZE:], np.array(meta["landmarks"]), np.array(meta["face_box"])

    for orientation in turns:
        got, want = face(f"orientation{orientation}"), face(f"upright{orientation}")
        for a, b in zip(got, want):  # aligned input, normalized face, landmarks, face box
            assert np.abs(a - b).max() <= 1e-6, orientation
    # The profile: converted to sRGB, the pixels come within 8-bit rounding of the sRGB original
    # (taken as sRGB, the face would be 12.7 levels less red). Rounding moves the landmarks a
    # little, so the aligned crops are compared by their mean colour.
    got, want = face("wide_gamut"), face("srgb")
    for a, b in zip(got[:2], want[:2]):  # aligned input, normalized face
        assert np.abs(a.reshape(-1, 3).mean(0) - b.reshape(-1, 3).mean(0)).max() < 1.0
    assert np.abs(got[2] - want[2]).max() < 1.0 and np.abs(got[3] - want[3]).max() <= 2


# --- 14: normface adjust keeps EXIF and ICC, JPEG at quality 95 -------------------------------------


def test_14_15_adjust_keeps_exif_and_icc_and_names_bad_files_once(tiny_model, tmp_path, capsys):
    from PIL import ExifTags

    from normface.testing import synthetic

    folder = tmp_path / "in"
    folder.mkdir()
    upright = Image.open(SAMPLES / "london_005_08.jpg").convert("RGB").crop((0, 0, 320, 300))
    profile = synthetic.wide_gamut_profile()
    camera = Image.fromarray(synthetic.to_profile(np.asarray(upright), profile))
    synthetic.save_with_orientation(camera, folder / "camera.jpg", 6, quality=90, icc_profile=profile)
    camera.save(folder / "scan.png", icc_profile=profile)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    before = hashes(folder)
    out = tmp_path / "fixed"
    code, _, err = run(["adjust", folder, "-o", out, "--model", tiny_model], capsys)
    assert code == 0, err
    assert err.count(str(folder / "broken.jpg")) == 1 and "not a readable image" in err, err  # 15: named once
    with Image.open(out / "camera.jpg") as im:
        assert im.size == (320, 300)  # written upright
        exif = im.getexif()
        assert exif[ExifTags.Base.Orientation] == 1 and exif[ExifTags.Base.Make] == "normface-test"
        assert im.info["icc_profile"] == profile
        reference = Path(tmp_path / "q95.jpg")
        im.convert("RGB").save(reference, quality=95, subsampling=2)
        with Image.open(reference) as q95:
            assert im.quantization == q95.quantization  # JPEG quality 95
    with Image.open(out / "scan.png") as im:
        assert im.format == "PNG" and im.info["icc_profile"] == profile
    assert hashes(folder) == before


# --- 9: kill -9 and SIGTERM mid-batch, then resume ------------------------------------------------


def _forty_photos(folder: Path) -> None:
    folder.mkdir()
    names = sorted(p for p in SAMPLES.glob("*.jpg"))
    for i in range(40):
        im = Image.open(names[i % len(names)]).convert("RGB")
        shift = i // len(names)
        im = im.crop((shift, shift, 300 + shift, 300 + shift))
        if i % 2:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        im.save(folder / f"photo{i:02d}.jpg", quality=92)


def _command(*args) -> list[str]:
    return [sys.executable, "-m", "normface.cli", *map(str, args)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _manifest_lines(out: Path) -> int:
    path = out / run_manifest.MANIFEST_FILE
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _wait_for(proc, out: Path, lines: int, timeout: float = 240) -> None:
    start = time.time()
    while _manifest_lines(out) < lines:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - start < timeout, "the run made no progress"
        time.sleep(0.05)


def test_9_kill_9_mid_batch_then_rerun_does_only_the_rest(tiny_model, tmp_path, capsys):
    folder, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.jsonl"
    _forty_photos(folder)
    before = hashes(folder)
    args = [folder, "-o", out, "--model", tiny_model, "--batch-size", "4", "--report", report]
    proc = subprocess.Popen(_command("normalize", *args), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(proc, out, 16)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    finished = len(run_manifest.RunManifest(out).entries)
    assert 16 <= finished < 40
    # A temporary file of the killed run (its pid is gone) and one of a live writer (this test).
    stale = out / f".photo00_face0.png{io_utils.TEMP_MARK}{proc.pid}.abcdefgh.png"
    live = out / f".x.png{io_utils.TEMP_MARK}{os.getpid()}.abcdefgh.png"
    stale.write_bytes(b"")
    live.write_bytes(b"")
    rerun = subprocess.run(_command("normalize", *args), env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr
    assert not TF_LOG_LINE.search(rerun.stderr), rerun.stderr
    assert f"{finished} of 40 input(s) already done" in rerun.stdout, rerun.stdout
    assert f"from {40 - finished} of {40 - finished} file(s)" in rerun.stdout, rerun.stdout
    assert not stale.exists() and live.exists()
    live.unlink()
    assert temp_files(out) == []
    # One report line per input per run: the rerun's 40 lines say which were skipped.
    rerun_lines = [json.loads(x) for x in report.read_text().splitlines()][-40:]
    assert sorted(Path(x["input"]).name for x in rerun_lines) == sorted(p.name for p in folder.iterdir())
    assert sum(x["status"] == "skipped" for x in rerun_lines) == finished
    # The same outputs as one uninterrupted run.
    code, _, err = run(["normalize", folder, "-o", tmp_path / "once", "--model", tiny_model], capsys)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "once").glob("*.png"))
    assert len(names) == 40 and sorted(p.name for p in out.glob("*.png")) == names
    for name in names:
        a, b = io_utils.read_rgb(out / name).astype(int), io_utils.read_rgb(tmp_path / "once" / name).astype(int)
        assert np.abs(a - b).max() <= 1, name
    assert hashes(folder) == before


def test_9_another_option_or_overwrite_redoes_everything(tiny_model, photos, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["normalize", photos, "-o", out, "--model", tiny_model]
    assert run(argv, capsys)[0] == 0
    # --sheet does not change the outputs: all skipped, the sheet is made from them.
    code, stdout, _ = run(argv + ["--sheet"], capsys)
    assert code == 0 and "2 of 2 input(s) already done" in stdout and "from 0 of 0 file(s)" in stdout
    sheet = io_utils.read_rgb(out / "sheet.png")
    for tile, name in ((1, "p005_08_face0.png"), (3, "p011_08_face0.png")):  # (aligned, output) pairs, 2 px apart
        x = 2 + tile * (SIZE + 2)
        np.testing.assert_array_equal(sheet[2:2 + SIZE, x:x + SIZE], io_utils.read_rgb(out / name))
    for extra in (["--json"], ["--overwrite"]):
        code, stdout, _ = run(argv + extra, capsys)
        assert code == 0 and "already done" not in stdout and "from 2 of 2 file(s)" in stdout, extra


TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)  # TensorFlow's C++ log format


def test_debug_shows_tracebacks_and_tensorflow_log_lines(tiny_model, photos, tmp_path):
    """(Without --debug: one line and no TensorFlow log lines, as test_1 and the kill test's rerun check.)"""
    model = damaged_copy(tiny_model, tmp_path / "m", "flipped")
    debug = subprocess.run(_command("normalize", photos, "-o", tmp_path / "out", "--model", model, "--debug"),
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert debug.returncode == 1 and "weights.npz" in debug.stderr
    assert "Traceback" in debug.stderr and "ModelFileError" in debug.stderr and TF_LOG_LINE.search(debug.stderr)


def test_9_sigterm_leaves_no_temporary_files(tiny_model, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _forty_photos(folder)
    proc = subprocess.Popen(_command("normalize", folder, "-o", out, "--model", tiny_model, "--batch-size", "1"),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, out, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert temp_files(out) == []
    for line in (out / run_manifest.MANIFEST_FILE).read_text().splitlines():
        assert all((out / o).is_file() for o in json.loads(line)["outputs"])


# --- fuzz: 200 seeded byte mutations of a JPEG and a PNG through one normalize call ----------------


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    kind = rng.integers(4)
    if kind == 0:  # flip a few bytes anywhere (headers included)
        for i in rng.integers(0, len(buf), size=rng.integers(1, 9)):
            buf[i] ^= int(rng.integers(1, 256))
    elif kind == 1:  # overwrite a short run in the first kilobyte (markers, chunk lengths, sizes)
        start = int(rng.integers(0, min(1024, len(buf) - 8)))
        buf[start:start + 4] = rng.integers(0, 256, size=4, dtype=np.uint8).tobytes()
    elif kind == 2:  # truncate
        buf = buf[: int(rng.integers(1, len(buf)))]
    else:  # insert junk
        at = int(rng.integers(0, len(buf)))
        buf[at:at] = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(buf)


def test_fuzzed_files_are_each_reported_without_traceback_or_hang(tiny_model, tmp_path):
    folder, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.jsonl"
    folder.mkdir()
    small = Image.open(SAMPLES / "london_011_08.jpg").convert("RGB").resize((160, 160))
    small.save(tmp_path / "seed.jpg", quality=90)
    small.save(tmp_path / "seed.png")
    rng = np.random.default_rng(16)
    for i in range(200):
        seed = tmp_path / ("seed.jpg" if i % 2 == 0 else "seed.png")
        (folder / f"fuzz{i:03d}{seed.suffix}").write_bytes(_mutate(seed.read_bytes(), rng))
    before = hashes(folder)
    result = subprocess.run(_command("normalize", folder, "-o", out, "--model", tiny_model, "--report", report),
                            env=_env(), capture_output=True, text=True, timeout=420)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert sorted(Path(x["input"]).name for x in lines) == sorted(p.name for p in folder.iterdir())
    for line in lines:
        if line["status"] == "error":
            assert f"{line['input']}: {line['reason']}" in result.stderr
        else:
            assert line["status"] == "ok" and all(Path(o).is_file() for o in line["outputs"])
    assert hashes(folder) == before


# --- 11, 12, 13, 16: the data-prep and ship binaries ------------------------------------------------


@pytest.mark.parametrize("binary, flag", [("data_prep/align_faces.py", "--limit=-1"),
                                          ("data_prep/average_faces.py", "--max_photos=0")])
def test_11_12_bad_data_prep_flags_are_usage_errors(binary, flag, tmp_path):
    result = subprocess.run([sys.executable, str(paths.REPO_ROOT / binary), flag, f"--faces={tmp_path}"
                             if "average" in binary else f"--output={tmp_path / 'out'}"],
                            env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and flag.split("=")[0] in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


NUMERIC_FLAGS_CHECK = r"""
import contextlib, importlib.util, io, json, sys
from absl import flags
from normface.utils import config_flags
spec = importlib.util.spec_from_file_location("binary", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ours = {f.name for mod, fl in flags.FLAGS.flags_by_module_dict().items()
        if not mod.startswith(("absl", "tensorflow", "keras")) for f in fl}  # the binary's and normface's
base = ["--export=/"] if "export" in ours else []  # ship_model's required flag
results = {}
for name in sorted(ours):
    parser = flags.FLAGS[name].parser
    if type(parser).__name__ not in ("IntegerParser", "FloatParser"):
        continue
    if parser.lower_bound is None:
        results[name] = "no range"
        continue
    bad = parser.lower_bound - 1
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            config_flags.flags_parser(["binary", *base, f"--{name}={bad}"])
        results[name] = f"accepted {bad}"
    except SystemExit as exit_:
        results[name] = "ok" if exit_.code == 2 and f"--{name}" in err.getvalue() else f"exit {exit_.code}: {err.getvalue()}"
    flags.FLAGS.unparse_flags()
print(json.dumps(results))
"""


@pytest.mark.parametrize("binary", ["data_prep/align_faces.py", "data_prep/average_faces.py",
                                    "data_prep/build_records.py", "data_prep/screen_faces.py",
                                    "experiments/ship_model.py"])
def test_every_numeric_flag_has_a_range(binary):
    result = subprocess.run([sys.executable, "-c", NUMERIC_FLAGS_CHECK, str(paths.REPO_ROOT / binary)], env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    checks = json.loads(result.stdout.strip().splitlines()[-1])
    assert checks and all(v == "ok" for v in checks.values()), checks


def test_13_stage_2_without_lfw_photos_end_to_end(tmp_path):
    from normface.data import align, faceset
    from normface.faces import quality
    from normface.faces.alignment import AlignmentTemplate
    from normface.testing.synthetic import synthetic_faces

    aligned = faceset.aligned_dir(tmp_path)
    template = AlignmentTemplate.for_size(32)
    images, marks = synthetic_faces(4, template, seed=3)
    faceset.write_template(aligned, template)
    good = {"yaw": 0.0, "pitch": quality.FRONTAL_PITCH, "roll": 0.0, "smile": 0.1, "sharpness": 100.0,
            "saturation": 0.3, "eye_distance": 40.0, "light_asymmetry": 0.02, "light_gradient": 0.1}
    manifest = []
    for n, (person, photo) in enumerate([("london/001", "studio/london_neutral/001_03.jpg"),
                                         ("london/002", "studio/london_neutral/002_03.jpg"),
                                         ("canada/a", "studio/canada_neutral/a.jpg"),
                                         ("canada/b", "studio/canada_neutral/b.jpg")]):
        key = f"{person}/{n}"
        faceset.write_face(aligned, faceset.FaceEntry(person, "train", marks[n].tolist(), [photo], key=key), images[n])
        manifest.append({"key": key, "person": person, "photo": photo, "split": "train", "status": "aligned",
                         "measures": good})
    (aligned / align.MANIFEST_FILE).write_text("".join(json.dumps(r) + "\n" for r in manifest))
    result = subprocess.run([sys.executable, str(paths.REPO_ROOT / "data_prep/average_faces.py"), f"--faces={tmp_path}"],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    averaged = faceset.averaged_dir(tmp_path)
    assert (averaged / "contact_sheet.png").is_file() and (averaged / "filter_examples.png").is_file()
    assert json.loads((averaged / "summary.json").read_text())["people_averaged"] == 4


def test_16_ship_model_over_the_limit_writes_nothing_into_the_package(tiny_model, tmp_path):
    from normface.testing import synthetic

    export = synthetic.tiny_export(tmp_path / "export", size=SIZE)
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    result = subprocess.run([sys.executable, str(paths.REPO_ROOT / "experiments/ship_model.py"), f"--export={export}",
                             f"--pretrained_dir={pretrained}", "--name=m", "--max_mb=0.001"],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "over --max_mb" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and list(pretrained.iterdir()) == []


# --- issue 30, cases 13-16: resumes, names, a model without weights, float images -----------------


@pytest.fixture(scope="module")
def shipped():
    """The shipped model, loaded once (the inference path that ships)."""
    from normface.serving.normalizer import FaceNormalizer

    return FaceNormalizer.from_pretrained()


def test_issue30_13_a_face_has_the_same_bytes_in_any_batch_and_a_resumed_run_equals_a_clean_one(
        shipped, tmp_path, capsys, monkeypatch):
    names = ["london_005_08.jpg", "london_011_08.jpg", "london_012_03.jpg"]
    faces = [shipped.align(io_utils.read_rgb(SAMPLES / n))[0] for n in names]
    aligned, landmarks = np.stack([f[0] for f in faces]), np.stack([f[1] for f in faces])
    together = shipped.normalize_aligned(aligned, landmarks)
    for k in range(len(faces)):  # alone (a batch of one) as in any batch
        alone = shipped.normalize_aligned(aligned[k:k + 1], landmarks[k:k + 1])
        for key in ("image", "texture", "landmarks", "confidence"):
            np.testing.assert_array_equal(alone[key][0], together[key][k], err_msg=f"{names[k]} {key}")
    folder = tmp_path / "in"
    folder.mkdir()
    for n in names:
        shutil.copy(SAMPLES / n, folder / n)
    monkeypatch.setattr(cli, "_load_normalizer", lambda args, choose="largest": shipped)
    argv = ["--batch-size", "2", "--sheet", "--json"]
    assert run(["normalize", folder, "-o", tmp_path / "clean", *argv], capsys)[0] == 0
    with monkeypatch.context() as m:  # the disk fills up on the first photo's face, then the run resumes
        _inject_enospc(m, ["london_005_08_face0"])
        assert run(["normalize", folder, "-o", tmp_path / "resumed", *argv], capsys)[0] == 1
    code, out, _ = run(["normalize", folder, "-o", tmp_path / "resumed", *argv], capsys)
    assert code == 0 and "2 of 3 input(s) already done" in out  # the first photo alone: a batch of one
    clean, resumed = hashes(tmp_path / "clean"), hashes(tmp_path / "resumed")
    clean.pop(run_manifest.MANIFEST_FILE)
    resumed.pop(run_manifest.MANIFEST_FILE)
    assert resumed == clean  # every face, its JSON and sheet.png, byte for byte


def test_issue30_14_a_name_with_a_newline_gives_one_line(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad\nname.jpg").write_text("not an image")
    shutil.copy(SAMPLES / PHOTOS[0], folder / "good.jpg")
    code, out, err = run(["normalize", folder, tmp_path / "no\x1bpe.jpg", "-o", tmp_path / "out", "--model",
                          tiny_model], capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("normface: ") for line in lines), err
    assert "bad\\nname.jpg: not a readable image" in err and "no\\x1bpe.jpg: no such file" in err
    code, _, err = run(["avatar", tmp_path / "two\nlines.jpg", "-o", tmp_path / "a.obj", "--model", tiny_model],
                       capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "two\\nlines.jpg" in err, err


def test_issue30_15_missing_weights_are_named_and_no_empty_folder_is_left(tiny_model, photos, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / packed.WEIGHTS_FILE).unlink()
    for command in ("normalize", "adjust"):
        out = tmp_path / f"out-{command}"
        code, _, err = run([command, photos, "-o", out, "--model", model], capsys)
        assert code == 1 and f"no {packed.WEIGHTS_FILE} beside its {packed.METADATA_FILE}" in err, err
        assert "not a normface export" not in err and len(err.splitlines()) == 1
        assert not out.exists(), command  # nothing made before the model loaded


def test_issue30_16_a_float_image_in_0_1_is_a_photo_not_a_dark_one(tiny_model):
    from normface.serving.normalizer import FaceNormalizer

    normalizer = FaceNormalizer.from_pretrained(tiny_model)
    photo = io_utils.read_rgb(SAMPLES / PHOTOS[0])
    (expected,) = normalizer.normalize(photo)
    for image in (photo / 255.0, (photo / 255.0).astype(np.float32), photo.astype(np.float64)):
        (res,) = normalizer.normalize(image)
        assert res.face_box == expected.face_box
        np.testing.assert_array_equal(res.image, expected.image)
    with pytest.raises(ValueError, match=r"must lie in \[0, 255\]"):
        normalizer.normalize(photo / 255.0 - 0.5)  # neither [0, 1] nor [0, 255]: refused, not guessed

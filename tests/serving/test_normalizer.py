"""Tests of the user-facing pipeline: FaceNormalizer and ``normface normalize``.

The model here is a tiny, untrained 32x32 export (the real encoder, random decoder weights): these
tests check the plumbing — detection, alignment, batching, outputs, reports, bad input — not the
quality of the faces (tests/serving/test_pretrained.py does that for the shipped model).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normface import cli
from normface.serving.normalizer import FaceNormalizer

SIZE = 32


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from normface.testing import synthetic

    return synthetic.tiny_export(tmp_path_factory.mktemp("export") / "tiny", size=SIZE)


@pytest.fixture(scope="module")
def photos(data_root, tmp_path_factory):
    """A folder of inputs: two faces (one greyscale, in a subfolder), broken and odd files."""
    root = tmp_path_factory.mktemp("photos")
    face = Image.open(data_root / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg").convert("RGB")
    face.save(root / "powell.jpg")
    (root / "sub").mkdir()
    face.convert("L").save(root / "sub" / "powell_grey.png")
    (root / "notes.jpg").write_text("not an image")
    jpeg = (root / "powell.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 4])
    Image.new("RGB", (8, 8)).save(root / "tiny.png")
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "noface.png")
    face.resize((8000, 8000), Image.BILINEAR).save(root / "huge.jpg", quality=80)
    return root


def test_normalizer_results(tiny_export, data_root):
    from normface.utils import io_utils

    normalizer = FaceNormalizer.from_pretrained(tiny_export)
    photo = io_utils.read_rgb(data_root / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg")
    (res,) = normalizer.normalize(photo)
    assert res.image.shape == (SIZE, SIZE, 3) and res.image.dtype == np.uint8
    assert res.landmarks.shape == (68, 2) and res.texture.shape == (SIZE, SIZE, 3)
    assert res.features.shape == (256,) and np.isfinite(res.confidence) and res.confidence > 0
    assert res.num_faces == 1 and len(res.face_box) == 4
    again = normalizer.normalize(photo)[0]
    assert np.array_equal(res.image, again.image) and res.confidence == again.confidence
    # Greyscale photos work.
    grey = normalizer.normalize(photo.mean(-1).astype(np.uint8))
    assert len(grey) == 1 and grey[0].image.shape == (SIZE, SIZE, 3)
    json.dumps(res.to_json())


def test_normalizer_output_and_confidence_come_from_the_decoder(tiny_export, data_root):
    """The output is the decoder's (it varies across the image and between people) and the
    confidence is the encoder distance of *that output* to the input face, recomputed here with a
    fresh encoder. The untrained tiny decoder's outputs are nearly flat: measured pixel standard
    deviation 0.83-0.90 (of 255), mean difference between two people 0.118; confidence within
    1.3e-3 of the recomputed distance (the output's uint8 rounding). Bounds: half / twice those."""
    import tensorflow as tf

    from normface.encoders import get_encoder
    from normface.faces.chips import extract_chips
    from normface.utils import io_utils

    encoder = get_encoder("dlib")

    def descriptor(image, landmarks):
        chips = extract_chips(tf.constant(image[None], tf.float32), tf.constant(landmarks[None], tf.float32),
                              encoder.chip_size)
        return encoder.encode_numpy(chips.numpy())[1][0]

    normalizer = FaceNormalizer.from_pretrained(tiny_export)
    results = {}
    for name in ("Colin_Powell", "Tony_Blair"):
        photo = io_utils.read_rgb(data_root / "lfw" / name / f"{name}_0001.jpg")
        (res,) = normalizer.normalize(photo)
        (aligned, aligned_lm, _), = normalizer.align(photo)
        distance = np.linalg.norm(descriptor(res.image, res.landmarks) - descriptor(aligned, aligned_lm))
        assert abs(res.confidence - distance) <= 3e-3, (name, res.confidence, distance)
        assert res.image.std() > 0.4, (name, res.image.std())
        results[name] = res
    powell, blair = results["Colin_Powell"], results["Tony_Blair"]
    assert np.abs(powell.image.astype(float) - blair.image.astype(float)).mean() > 0.06
    assert not np.allclose(powell.landmarks, blair.landmarks, atol=1e-3)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        FaceNormalizer.from_pretrained(tmp_path / "nope")


def test_cli_processes_good_files_and_reports_bad_ones(tiny_export, photos, tmp_path, capsys):
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    code = cli.main(["normalize", str(photos), "-o", str(out), "--model", str(tiny_export), "--json",
                     "--side-by-side", "--report", str(report), "--batch-size", "2", "--sheet"])
    assert code == 0
    assert (out / "sheet.png").is_file()
    err = capsys.readouterr().err
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    status = {Path(x["input"]).name: x for x in lines}
    assert {k for k, v in status.items() if v["status"] == "ok"} == {"powell.jpg", "powell_grey.png", "huge.jpg"}
    assert status["notes.jpg"]["status"] == "error" and "not a readable image" in status["notes.jpg"]["reason"]
    assert status["truncated.jpg"]["status"] == "error"
    assert status["noface.png"]["reason"] == "no face found"
    assert status["tiny.png"]["status"] == "error"
    for name in ("notes.jpg", "truncated.jpg", "noface.png", "tiny.png"):
        assert name in err  # one line per problem on stderr
    side = np.asarray(Image.open(out / "sub" / "powell_grey_face0.png"))
    assert side.shape == (SIZE, 2 * SIZE, 3)
    assert json.loads((out / "powell_face0.json").read_text())["landmarks"]
    # Inputs are untouched.
    assert {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()} == before


def test_cli_exit_codes(tiny_export, photos, tmp_path):
    assert cli.main(["normalize", str(photos), "-o", str(tmp_path / "a"), "--model", str(tiny_export),
                     "--strict"]) == 1
    assert cli.main(["normalize", str(photos / "notes.jpg"), "-o", str(tmp_path / "b"), "--model",
                     str(tiny_export)]) == 1
    assert cli.main(["normalize", str(tmp_path / "missing*.jpg"), "-o", str(tmp_path / "c")]) == 1


def test_cli_never_writes_over_an_input(tiny_export, photos, tmp_path):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photos / "powell.jpg", folder / "a.png")
    shutil.copy(photos / "powell.jpg", folder / "a_face0.png")  # the name a.png's output would take
    before = (folder / "a_face0.png").read_bytes()
    code = cli.main(["normalize", str(folder / "a.png"), str(folder / "a_face0.png"), "-o", str(folder),
                     "--model", str(tiny_export)])
    assert (folder / "a_face0.png").read_bytes() == before
    assert code == 0 and (folder / "a_face0_face0.png").is_file()
    # A rerun over the folder skips what it wrote there... and normalizes only the inputs.
    out = folder / "out"
    assert cli.main(["normalize", str(folder), "-o", str(out), "--model", str(tiny_export)]) == 0
    assert cli.main(["normalize", str(folder), "-o", str(out), "--model", str(tiny_export)]) == 0
    assert not list(out.rglob("*_face0_face0_face0*"))


def test_same_names_in_different_folders_do_not_collide(tiny_export, photos, tmp_path):
    import shutil

    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        shutil.copy(photos / "powell.jpg", tmp_path / sub / "p.jpg")
    out = tmp_path / "out"
    assert cli.main(["normalize", str(tmp_path / "x" / "p.jpg"), str(tmp_path / "y" / "p.jpg"), "-o", str(out),
                     "--model", str(tiny_export)]) == 0
    # (plus the hidden run manifest, .normface-run.jsonl)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["p_2_face0.png", "p_face0.png"]



def test_packed_model_matches_its_export(tiny_export, data_root, tmp_path):
    from normface.serving import packed as packing
    from normface.utils import io_utils

    packed = packing.pack(tiny_export, tmp_path / "packed")
    assert packing.is_packed(packed)
    photo = io_utils.read_rgb(data_root / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg")
    a = FaceNormalizer.from_pretrained(tiny_export).normalize(photo)[0]
    b = FaceNormalizer.from_pretrained(packed).normalize(photo)[0]
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 2  # float16 weights
    assert np.abs(a.landmarks - b.landmarks).max() < 0.05
    (packed / "weights.npz").unlink()
    with pytest.raises(FileNotFoundError):
        packing.load(packed)


def test_repacking_keeps_hand_written_card_sections(tiny_export, tmp_path):
    from normface.serving import packed as packing

    packed = packing.pack(tiny_export, tmp_path / "packed")
    card = (packed / packing.CARD_FILE).read_text()
    assert "## " in card
    added = "## Evaluation (by hand)\n\nown within 0.6: 90.8%\n"
    (packed / packing.CARD_FILE).write_text(card + "\n" + added)
    packing.pack(tiny_export, packed)
    again = (packed / packing.CARD_FILE).read_text()
    assert again.count("own within 0.6: 90.8%") == 1 and again.startswith(card.rstrip("\n"))
    packing.pack(tiny_export, packed)  # idempotent
    assert (packed / packing.CARD_FILE).read_text() == again


def test_merge_cards_prefers_the_generated_sections():
    from normface.serving.packed import merge_cards

    generated = "# card\n\n## Data\n\nnew data\n"
    existing = "# card\n\n## Data\n\nold data\n\n## Limitations\n\nblurry\n"
    merged = merge_cards(generated, existing)
    assert "new data" in merged and "old data" not in merged and merged.endswith("## Limitations\n\nblurry\n")


def test_adjust_and_avatar_commands(tiny_export, photos, tmp_path):
    """The application subcommands run end to end on a model (plumbing; quality is issue 9's)."""
    out = tmp_path / "fixed.jpg"
    assert cli.main(["adjust", str(photos / "powell.jpg"), "-o", str(out), "--model", str(tiny_export)]) == 0
    fixed = np.asarray(Image.open(out))
    assert fixed.shape == np.asarray(Image.open(photos / "powell.jpg")).shape
    mesh = tmp_path / "face.ply"
    assert cli.main(["avatar", str(photos / "powell.jpg"), "-o", str(mesh), "--model", str(tiny_export)]) == 0
    assert mesh.is_file() and (tmp_path / "face_views.png").is_file()
    assert cli.main(["avatar", str(photos / "noface.png"), "-o", str(tmp_path / "x.obj"), "--model",
                     str(tiny_export)]) == 1


def test_adjust_rerun_skips_its_own_outputs(tiny_export, data_root, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "powell.jpg").symlink_to(data_root / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg")
    out = folder / "fixed"
    for _ in range(2):
        assert cli.main(["adjust", str(folder), "-o", str(out), "--model", str(tiny_export)]) == 0
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")) == ["fixed/powell.jpg", "powell.jpg"]


def test_checksums_are_recorded_without_touching_the_weights(tiny_export, tmp_path):
    import hashlib

    from normface.serving import packed as packing

    model = packing.pack(tiny_export, tmp_path / "packed")
    meta = json.loads((model / packing.METADATA_FILE).read_text())
    recorded = meta.pop(packing.CHECKSUMS_KEY)
    (model / packing.METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    weights = hashlib.sha256((model / packing.WEIGHTS_FILE).read_bytes()).hexdigest()
    packing.record_checksums(model)
    assert json.loads((model / packing.METADATA_FILE).read_text())[packing.CHECKSUMS_KEY] == recorded
    assert hashlib.sha256((model / packing.WEIGHTS_FILE).read_bytes()).hexdigest() == weights
    assert recorded[packing.WEIGHTS_FILE]["sha256"] == weights

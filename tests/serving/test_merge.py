"""Tests of merging photos into one face, morphs and the age exploration (issue 32).

Plumbing with the tiny untrained 32x32 export (the real dlib encoder, random decoder weights: the
agreement check's descriptors are real); the morph's acceptance numbers with the shipped model and
the independent judge (skipped, saying why, when the judge file is absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normface import cli
from normface.serving import merge
from normface.serving.normalizer import FaceNormalizer

SIZE = 32
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from normface.testing import synthetic

    return synthetic.tiny_export(tmp_path_factory.mktemp("export") / "tiny", size=SIZE)


@pytest.fixture(scope="module")
def tiny(tiny_export):
    return FaceNormalizer.from_pretrained(tiny_export)


@pytest.fixture(scope="module")
def faces(data_root, tmp_path_factory):
    """Three photos of Colin Powell, one of AJ Cook, one without a face (files)."""
    root = tmp_path_factory.mktemp("merge_photos")
    lfw = data_root / "lfw"
    for i in (1, 2, 3):
        Image.open(lfw / "Colin_Powell" / f"Colin_Powell_000{i}.jpg").save(root / f"powell{i}.jpg")
    Image.open(lfw / "AJ_Cook" / "AJ_Cook_0001.jpg").save(root / "cook.jpg")
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "noface.png")
    return root


def read(path):
    from normface.utils import io_utils

    return io_utils.read_rgb(path)


def test_merge_arithmetic():
    d = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(merge.leave_one_out_distances(d),
                               [np.hypot(0.5, 1.5), np.hypot(1.0, 1.5), np.hypot(0.5, 3.0)])
    assert merge.leave_one_out_distances(d[:1]).tolist() == [0.0]
    np.testing.assert_allclose(merge.merge_weights(np.array([0.1, 0.2, 0.9])), [1 / 3] * 3)
    w = merge.merge_weights(np.array([0.1, 0.2, 0.9]), "agreement")
    assert abs(w.sum() - 1) < 1e-9 and w[0] > w[1] > w[2]
    with pytest.raises(ValueError, match="weighting"):
        merge.merge_weights(np.ones(2), "median")
    f = np.array([[1.0, 2.0], [3.0, 6.0]])
    m, w, _ = merge.merge_features(f, np.zeros((2, 3)))
    np.testing.assert_allclose(m, [2.0, 4.0])
    line = merge.interpolate(f[0], f[1], 5)
    assert line.shape == (5, 2) and np.array_equal(line[0], f[0]) and np.array_equal(line[-1], f[1])
    np.testing.assert_allclose(line[2], [2.0, 4.0])
    with pytest.raises(ValueError, match="steps"):
        merge.interpolate(f[0], f[1], 1)


def test_merge_one_photo_is_the_single_output(tiny, faces):
    photo = read(faces / "powell1.jpg")
    merged, singles = tiny.normalize_merged([photo])
    single = tiny.normalize(photo)[0]
    assert np.array_equal(merged.image, single.image) and np.array_equal(singles[0].image, single.image)
    assert merged.warnings == [] and merged.weights.tolist() == [1.0]


def test_merge_same_person_agrees_and_decodes_the_mean(tiny, faces):
    photos = [read(faces / f"powell{i}.jpg") for i in (1, 2, 3)]
    merged, singles = tiny.normalize_merged(photos)
    assert merged.warnings == [] and merged.outliers == []
    assert (merged.distances < 0.6).all() and merged.image.shape == (SIZE, SIZE, 3)
    mean = np.mean([s.features for s in singles], axis=0)
    np.testing.assert_allclose(merged.features, mean, rtol=1e-5, atol=1e-6)
    assert np.array_equal(merged.image, merge.decode(tiny, mean[None]).image[0])


def test_merge_different_people_warns_or_fails_strict(tiny, faces):
    photos = [read(faces / f) for f in ("powell1.jpg", "powell2.jpg", "powell3.jpg", "cook.jpg")]
    names = ["powell1.jpg", "powell2.jpg", "powell3.jpg", "cook.jpg"]
    merged, _ = tiny.normalize_merged(photos, names=names)
    assert merged.outliers == [3] and "cook.jpg looks like someone else" in merged.warnings[0]
    agreement, _ = tiny.normalize_merged(photos, names=names, weighting="agreement")
    assert agreement.weights[3] < min(agreement.weights[:3])
    with pytest.raises(merge.MergeError, match="cook.jpg"):
        tiny.normalize_merged(photos, names=names, strict=True)
    two, _ = tiny.normalize_merged(photos[2:], names=names[2:])
    assert "powell3.jpg and cook.jpg look like different people" in two.warnings[0]


def test_merge_without_a_face(tiny, faces):
    photos = [read(faces / "powell1.jpg"), read(faces / "noface.png")]
    with pytest.raises(merge.MergeError, match="noface.png: no face"):
        tiny.normalize_merged(photos, names=["powell1.jpg", "noface.png"])
    errors: dict[int, str] = {}
    merged, singles = tiny.normalize_merged(photos, names=["powell1.jpg", "noface.png"], errors=errors)
    assert list(errors) == [1] and singles[1] is None and np.array_equal(merged.image, singles[0].image)


def test_cli_portrait(tiny_export, faces, tmp_path, capsys):
    model = ["--model", str(tiny_export)]
    out = tmp_path / "face.png"
    assert cli.main(["portrait", str(faces / "powell1.jpg"), "-o", str(out)] + model) == cli.EXIT_USAGE
    assert "two or more photos" in capsys.readouterr().err and not out.exists()
    assert cli.main(["portrait", str(faces / "powell1.jpg"), str(faces / "powell2.jpg"), "-o",
                     str(tmp_path / "face.gif")] + model) == cli.EXIT_USAGE
    same = [str(faces / f"powell{i}.jpg") for i in (1, 2, 3)]
    assert cli.main(["portrait", *same, "-o", str(out), "--json"] + model) == cli.EXIT_OK
    assert np.asarray(Image.open(out)).shape == (SIZE, SIZE, 3)
    report = json.loads((tmp_path / "face.png.json").read_text())
    assert [p["name"] for p in report["photos"]] == same and report["warnings"] == []
    capsys.readouterr()
    odd = same + [str(faces / "cook.jpg"), str(faces / "noface.png")]
    assert cli.main(["portrait", *odd, "-o", str(tmp_path / "odd.png")] + model) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "cook.jpg looks like someone else" in err and "noface.png: no face found (left out)" in err
    assert cli.main(["portrait", *odd[:4], "-o", str(tmp_path / "strict.png"), "--strict"] + model) == cli.EXIT_FAILED
    assert "cook.jpg looks like someone else" in capsys.readouterr().err and not (tmp_path / "strict.png").exists()
    assert cli.main(["portrait", same[0], str(faces / "nothere.jpg"), "-o", str(tmp_path / "x.png")]
                    + model) == cli.EXIT_FAILED
    assert "nothere.jpg" in capsys.readouterr().err


def test_cli_morph_and_explore(tiny_export, tiny, faces, tmp_path, capsys):
    model = ["--model", str(tiny_export)]
    a, b = faces / "powell1.jpg", faces / "cook.jpg"
    out, anim = tmp_path / "morph.png", tmp_path / "morph.gif"
    assert cli.main(["morph", str(a), str(b), "-o", str(out), "--steps", "5", "--animation", str(anim)]
                    + model) == cli.EXIT_OK
    strip = np.asarray(Image.open(out))
    assert strip.shape == (SIZE, 5 * SIZE, 3)
    for end, photo in ((strip[:, :SIZE], a), (strip[:, -SIZE:], b)):
        single = tiny.normalize(read(photo))[0].image
        assert np.abs(end.astype(int) - single).max() <= 1
    gif = Image.open(anim)
    assert gif.n_frames == 8  # there and back
    assert cli.main(["morph", str(a), str(faces / "noface.png"), "-o", str(tmp_path / "m2.png")]
                    + model) == cli.EXIT_FAILED
    assert "noface.png: no face found" in capsys.readouterr().err
    assert cli.main(["morph", str(a), str(b), "-o", str(out), "--steps", "1"] + model) == cli.EXIT_USAGE
    assert cli.main(["morph", str(a), str(b), "-o", str(out), "--animation", str(tmp_path / "m.mp4")]
                    + model) == cli.EXIT_USAGE
    strip_path = tmp_path / "age.png"
    assert cli.main(["explore", str(a), "-o", str(strip_path), "--steps", "3"] + model) == cli.EXIT_OK
    assert np.asarray(Image.open(strip_path)).shape == (SIZE, 3 * SIZE, 3)
    capsys.readouterr()
    assert cli.main(["explore", str(a), "-o", str(strip_path), "--attribute", "gender"] + model) == cli.EXIT_USAGE
    assert "no direction is offered for gender or race" in capsys.readouterr().err
    assert cli.main(["explore", str(a), "-o", str(strip_path), "--span", "-1"] + model) == cli.EXIT_USAGE


def test_explore_direction_moves_the_features(tiny, faces, tmp_path):
    from normface.apps import explore

    with pytest.raises(ValueError, match="gender or race"):
        explore.load_direction("gender")
    direction = explore.load_direction("age")
    f = tiny.normalize(read(faces / "powell1.jpg"))[0].features
    assert f.shape == direction.vector.shape
    mid = explore.explore(tiny, f, direction, [0.0])
    assert np.array_equal(mid.image[0], merge.decode(tiny, np.clip(f, direction.low, direction.high)[None]).image[0])
    bad = tmp_path / "bad.json"
    bad.write_text('{"direction": [1, 2]}')
    with pytest.raises(ValueError, match="bad.json"):
        explore.load_direction("age", bad)


def spearman(x, y) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def test_morph_moves_from_a_to_b_for_the_judge():
    """Issue 32's acceptance: ends equal the single outputs within 1 grey level; the judge's cosine
    to photo A falls with the step (Spearman <= -0.9), to B rises (>= 0.9), each by 0.2+."""
    from normface.encoders import judge as judge_lib
    from normface.utils import paths

    if not paths.judge_file().is_file():
        pytest.skip(f"the independent judge is absent ({paths.judge_file()}); get it with {judge_lib.WHERE_TO_GET}")
    judge = judge_lib.load_judge()
    normalizer = FaceNormalizer.from_pretrained()
    photos = [read(REPO / "samples" / name) for name in ("london_005_08.jpg", "london_027_08.jpg")]
    (ra,), (rb,) = normalizer.normalize_many(photos)
    faces = merge.morph(normalizer, ra.features, rb.features, 8)
    assert np.abs(faces.image[0].astype(int) - ra.image).max() <= 1
    assert np.abs(faces.image[-1].astype(int) - rb.image).max() <= 1
    aligned = [normalizer.align(p)[0] for p in photos]
    targets = judge.embed(np.stack([a[0] for a in aligned]), np.stack([a[1] for a in aligned]))
    sims = judge.embed(faces.image, faces.landmarks) @ targets.T
    steps = np.arange(8)
    assert spearman(steps, sims[:, 0]) <= -0.9 and spearman(steps, sims[:, 1]) >= 0.9
    assert sims[0, 0] - sims[-1, 0] >= 0.2 and sims[-1, 1] - sims[0, 1] >= 0.2


def test_merge_and_morph_on_litert_equal_tensorflow_without_loading_it(faces):
    """Issue 31: the shipped model decodes merged and morphed features on LiteRT (no Keras model
    loaded), within the LiteRT path's tolerance of the TensorFlow path: 1 grey level at the 99th
    percentile, 0.05 px of landmarks."""
    lite, tf_path = FaceNormalizer.from_pretrained(), FaceNormalizer.from_pretrained(backend="tensorflow")
    assert lite.backend is not None and tf_path.backend is None
    photos = [read(faces / f"powell{i}.jpg") for i in (1, 2, 3)] + [read(faces / "cook.jpg")]
    ours, singles = lite.normalize_merged(photos[:3])
    theirs, _ = tf_path.normalize_merged(photos[:3])
    morphs = [merge.morph(n, singles[0].features, lite.normalize(photos[3])[0].features, 3) for n in (lite, tf_path)]
    assert "model" not in vars(lite) and "encoder" not in vars(lite)  # no TensorFlow model behind the LiteRT path
    for a, b in [(ours, theirs)] + [(morphs[0], morphs[1])]:
        for key in ("image", "texture"):
            diff = np.abs(getattr(a, key).astype(int) - getattr(b, key).astype(int))
            assert np.percentile(diff, 99) <= 1, (key, np.percentile(diff, 99))
        assert np.abs(a.landmarks - b.landmarks).max() <= 0.05
    assert abs(ours.confidence - theirs.confidence) <= 2e-3
    np.testing.assert_allclose(morphs[0].descriptor, morphs[1].descriptor, atol=2e-3)


def test_http_normalize_merge(tiny, faces):
    import base64
    import io

    from fastapi.testclient import TestClient

    from normface.serving import http_api

    # One decode thread: dlib's shared HOG detector is not safe to run from several threads at once
    # (seen here as a spurious face in a noise image and a segfault in find_faces68); that is the
    # server's own matter, reported separately, and this test is about merging.
    app = http_api.create_app(tiny, applications=http_api.Applications(), allowed_hosts=["testserver"],
                              limits=http_api.Limits(workers=1))

    def up(name):
        return ("files", (name, (faces / name).read_bytes(), "image/jpeg"))

    same = [up(f"powell{i}.jpg") for i in (1, 2, 3)]
    with TestClient(app) as client:
        r = client.post("/v1/normalize?merge=true", files=same)
        assert r.status_code == 200, r.text
        merged = r.json()["merged"]
        assert merged["warnings"] == [] and [p["name"] for p in merged["photos"]] == ["powell1.jpg", "powell2.jpg",
                                                                                      "powell3.jpg"]
        image = np.asarray(Image.open(io.BytesIO(base64.b64decode(merged["image_png_base64"]))))
        expected, _ = tiny.normalize_merged([read(faces / f"powell{i}.jpg") for i in (1, 2, 3)])
        # the server's batch queue may group the photos otherwise: features equal to float rounding
        assert np.abs(image.astype(int) - expected.image).max() <= 1
        png = client.post("/v1/normalize?merge=true", files=same, headers={"Accept": "image/png"})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert np.abs(np.asarray(Image.open(io.BytesIO(png.content))).astype(int) - expected.image).max() <= 1
        odd = same + [up("cook.jpg"), ("files", ("noface.png", (faces / "noface.png").read_bytes(), "image/png"))]
        r = client.post("/v1/normalize?merge=true", files=odd)
        assert r.status_code == 200
        body = r.json()
        assert "cook.jpg looks like someone else" in body["merged"]["warnings"][0]
        assert body["files"][4]["status"] == "error" and "no face" in body["files"][4]["error"]
        r = client.post("/v1/normalize?merge=true&strict=true", files=odd[:4])
        assert r.status_code == 422 and "cook.jpg" in r.json()["error"]
        r = client.post("/v1/normalize?merge=true", files=same[:1])
        assert r.status_code == 400 and "two or more" in r.json()["error"]
        r = client.post("/v1/normalize?merge=true", files=[same[0], ("files", ("notes.png", b"not an image",
                                                                                   "image/png"))])
        assert r.status_code == 422 and "two or more photos with a face, got 1 (powell1.jpg)" in r.json()["error"]

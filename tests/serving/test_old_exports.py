"""Exports made before the regroup still load and give the same numbers.

``tests/fixtures/export_095725b`` was written by commit 095725b (its README says how), with the
outputs of its ``.keras`` model and SavedModel for two fixed feature vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "export_095725b"


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(FIXTURE / "expected_outputs.npz"))


def test_old_keras_file_loads_and_matches(expected):
    from normface.serving import export_format

    model = export_format.load_keras(FIXTURE)
    out = model(expected["features"], training=False)
    np.testing.assert_allclose(out["image"].numpy(), expected["keras_image"], atol=1e-6)
    np.testing.assert_allclose(out["landmarks"].numpy(), expected["keras_landmarks"], atol=1e-5)


def test_old_saved_model_loads_and_matches(expected):
    import tensorflow as tf

    from normface.serving import export_format

    saved, meta = export_format.load_export(FIXTURE)
    assert meta.output_size == 32 and meta.alignment_template is not None
    out = saved.signatures["serving_default"](features=tf.constant(expected["features"]))
    for name in ("image", "landmarks", "texture"):
        np.testing.assert_array_equal(out[name].numpy(), expected[f"saved_{name}"])


def test_face_normalizer_accepts_the_old_export(expected):
    from normface import FaceNormalizer

    normalizer = FaceNormalizer.from_pretrained(FIXTURE)
    assert normalizer.template.size == 32
    out = normalizer.model(expected["features"], training=False)
    np.testing.assert_allclose(out["image"].numpy(), expected["keras_image"], atol=1e-6)

"""Identity similarity and distance between descriptors, for the identity loss and evaluation.

- negative cosine similarity: the paper's identity loss (-cos, lower = more alike);
- squared Euclidean distance: the metric dlib's network was trained for; two chips show the same
  person when the (plain) Euclidean distance is below 0.6. Prefer it for this network: its raw
  cosine stays high even for non-faces (~0.88 between a cat photo and a face).

All functions take ``[batch, dim]`` tensors (or arrays) and return ``[batch]`` float tensors.
"""

from __future__ import annotations

import tensorflow as tf

from normface.encoders.threshold import SAME_PERSON_THRESHOLD
_EPS = 1e-12  # keeps the cosine of an all-zero descriptor finite


def _pair(a, b) -> tuple[tf.Tensor, tf.Tensor]:
    a = tf.convert_to_tensor(a)
    b = tf.cast(tf.convert_to_tensor(b), a.dtype)
    if a.shape.rank != 2 or b.shape.rank != 2 or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"descriptors: expected two [batch, dim] tensors; got {a.shape}, {b.shape}")
    return a, b


def cosine_similarity(a, b) -> tf.Tensor:
    """cos(a_i, b_i) per row, ``[batch]``."""
    with tf.name_scope("cosine_similarity"):
        a, b = _pair(a, b)
        dot = tf.reduce_sum(a * b, axis=-1)
        norms = tf.norm(a, axis=-1) * tf.norm(b, axis=-1)
        return dot / tf.maximum(norms, _EPS)


def negative_cosine_similarity(a, b) -> tf.Tensor:
    """The paper's identity loss term: ``-cos(a_i, b_i)``, ``[batch]`` in [-1, 1]."""
    with tf.name_scope("negative_cosine_similarity"):
        return -cosine_similarity(a, b)


def squared_euclidean_distance(a, b) -> tf.Tensor:
    """``|a_i - b_i|^2`` per row, ``[batch]``."""
    with tf.name_scope("squared_euclidean_distance"):
        a, b = _pair(a, b)
        return tf.reduce_sum(tf.square(a - b), axis=-1)


def euclidean_distance(a, b) -> tf.Tensor:
    """``|a_i - b_i|`` per row, ``[batch]`` (dlib's verification metric)."""
    with tf.name_scope("euclidean_distance"):
        return tf.sqrt(squared_euclidean_distance(a, b))


def same_person(a, b, threshold: float = SAME_PERSON_THRESHOLD) -> tf.Tensor:
    """``[batch]`` bool: Euclidean descriptor distance below ``threshold`` (dlib's rule)."""
    with tf.name_scope("same_person"):
        return euclidean_distance(a, b) < threshold


IDENTITY_METRICS = {
    "negative_cosine": negative_cosine_similarity,
    "squared_euclidean": squared_euclidean_distance,
}


def identity_metric(name: str):
    """The ``[batch]``-valued identity distance called ``name`` (lower = more alike)."""
    if name not in IDENTITY_METRICS:
        raise ValueError(f"identity metric: unknown {name!r}; choose one of {sorted(IDENTITY_METRICS)}")
    return IDENTITY_METRICS[name]

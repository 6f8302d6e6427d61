"""Encoding aligned faces: face chips from landmarks, then the frozen encoder.

One path from "an image and its 68 landmarks" to identity features, shared by the record builder
(stored features of every training example), the identity loss (differentiable, inside the
training graph) and inference. Chips come from :func:`normface.faces.chips.extract_chips`, dlib's chip
geometry in TensorFlow.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from normface.encoders.base import IdentityEncoder
from normface.encoders.registry import get_encoder

BATCH_SIZE = 32


def face_chips(encoder: IdentityEncoder, images: tf.Tensor, landmarks: tf.Tensor) -> tf.Tensor:
    """``[b, h, w, 3]`` images in [0, 255] + ``[b, 68, 2]`` (x, y) landmarks -> encoder chips."""
    from normface.faces.chips import extract_chips

    return extract_chips(tf.cast(images, tf.float32), tf.cast(landmarks, tf.float32), encoder.chip_size)


def embed_fn(encoder: IdentityEncoder) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The identity loss's embedding: images float ``[b, S, S, 3]`` in [0, 1] + landmarks
    ``[b, 68, 2]`` -> descriptors ``[b, D]``, differentiable in the images (and landmarks)."""

    def embed(images: tf.Tensor, landmarks: tf.Tensor) -> tf.Tensor:
        with tf.name_scope("embed_faces"):
            return encoder.encode(face_chips(encoder, images * 255.0, landmarks)).descriptor

    return embed


def perceptual_fn(encoder: IdentityEncoder, layers: tuple[str, ...]
                  ) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, list[tf.Tensor]]]:
    """The perceptual loss's encoder pass: images float ``[b, S, S, 3]`` in [0, 1] + landmarks
    ``[b, 68, 2]`` -> (descriptors ``[b, D]``, activations of ``layers``), one forward pass, so
    the identity loss shares it."""

    def run(images: tf.Tensor, landmarks: tf.Tensor):
        with tf.name_scope("encode_activations"):
            return encoder.encode_with_activations(face_chips(encoder, images * 255.0, landmarks), layers)

    return run


def record_encoder(encoder: IdentityEncoder | str, **kwargs
                   ) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The record builder's EncodeFn: uint8 images ``[b, S, S, 3]`` + landmarks ``[b, 68, 2]`` ->
    (features ``[b, F]``, descriptors ``[b, D]``) float32 numpy arrays. ``encoder``: an encoder,
    or a registered name (built with ``kwargs``)."""
    if isinstance(encoder, str):
        encoder = get_encoder(encoder, **kwargs)

    @tf.function(reduce_retracing=True)
    def run(images, landmarks):
        out = encoder.encode(face_chips(encoder, images, landmarks))
        return out.features, out.descriptor

    def encode(images: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, descs = [], []
        for start in range(0, len(images), BATCH_SIZE):
            f, d = run(tf.constant(images[start:start + BATCH_SIZE]), tf.constant(landmarks[start:start + BATCH_SIZE],
                                                                                    tf.float32))
            feats.append(f.numpy().astype(np.float32))
            descs.append(d.numpy().astype(np.float32))
        return np.concatenate(feats), np.concatenate(descs)

    encode.feature_dim = encoder.feature_dim  # type: ignore[attr-defined]
    return encode

"""The training record schema: one ``tf.train.Example`` per face (paper Sec. 5).

The one home of the record keys (:data:`IMAGE`, :data:`FEATURES`, ...), their kinds and lengths
(:data:`SCHEMA`), how an example is written (:func:`make_example`) and parsed
(:func:`parse_spec`). The builder (:mod:`normface.data.build`), the input pipeline
(:mod:`normface.data.pipeline`) and the trainer all spell keys through these constants.
"""


from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
import tensorflow as tf

from normface.faces.alignment import NUM_LANDMARKS
SCHEMA_VERSION = 1

DESCRIPTOR_DIM = 128


# The tf.train.Example schema: name -> (kind, length).
# Lengths: None = variable (``features`` is F, 0 with --encoder=none; ``descriptor`` is 128 or 0).
# Record keys: the one place their names are spelled (the builder writes them, the input
# pipeline parses them, the trainer reads them from each batch).
IMAGE = "image"
TEXTURE = "texture"
LANDMARKS = "landmarks"
FEATURES = "features"
DESCRIPTOR = "descriptor"
PERSON = "person"
SOURCES = "sources"
WEIGHTS = "weights"
SIZE = "size"
# Optional (records built or extended with mirrored features, ``meta.json`` "mirrored": true): the
# encoder's features and descriptor of the *left/right-flipped* image, so a flipped example is
# paired with what the encoder says of the flipped photo (the mirror augmentation).
FEATURES_MIRRORED = "features_mirrored"
DESCRIPTOR_MIRRORED = "descriptor_mirrored"
OPTIONAL = (FEATURES_MIRRORED, DESCRIPTOR_MIRRORED)

SCHEMA = {
    IMAGE: ("bytes", 1),        # PNG, S x S x 3 uint8
    TEXTURE: ("bytes", 1),      # PNG, S x S x 3 uint8, registered to the mean landmarks
    LANDMARKS: ("float", 2 * NUM_LANDMARKS),  # (x, y) pixels, point-major
    FEATURES: ("float", None),  # frozen encoder features of the image's face chip
    DESCRIPTOR: ("float", None),  # encoder's 128-D identity descriptor
    PERSON: ("bytes", 1),       # person id of the seed face
    SOURCES: ("bytes", 1),      # "seed" or "seed,neighbour" person ids
    WEIGHTS: ("float", 2),      # (landmark weight, texture weight); [0, 0] if not morphed
    SIZE: ("int64", 1),
    FEATURES_MIRRORED: ("float", None),    # optional: features of the flipped image
    DESCRIPTOR_MIRRORED: ("float", None),  # optional: descriptor of the flipped image
}


# ----------------------------------------------------------------------------------------------
# Examples.
# ----------------------------------------------------------------------------------------------
def encode_png(image: np.ndarray) -> bytes:
    """``[S, S, 3]`` uint8 RGB -> PNG bytes (lossless)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {image.shape}")
    return data.tobytes()


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def make_example(image, texture, landmarks, features, descriptor, person: str, sources: Iterable[str],
                 weights, mirrored: tuple | None = None) -> tf.train.Example:
    """One record: uint8 ``image``/``texture`` ``[S, S, 3]``, ``landmarks`` ``[68, 2]``,
    ``features`` ``[F]``, ``descriptor`` ``[128 | 0]``, ids and ``weights`` ``[2]``; ``mirrored``:
    optional ``(features [F], descriptor [128 | 0])`` of the flipped image."""
    feature = {
        IMAGE: _bytes(encode_png(image)),
        TEXTURE: _bytes(encode_png(texture)),
        LANDMARKS: _floats(landmarks),
        FEATURES: _floats(features),
        DESCRIPTOR: _floats(descriptor),
        PERSON: _bytes(person.encode()),
        SOURCES: _bytes(",".join(sources).encode()),
        WEIGHTS: _floats(weights),
        SIZE: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(image.shape[0])])),
    }
    if mirrored is not None:
        feature[FEATURES_MIRRORED] = _floats(mirrored[0])
        feature[DESCRIPTOR_MIRRORED] = _floats(mirrored[1])
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_spec(feature_dim: int, descriptor_dim: int, mirrored: bool = False) -> dict:
    """The tf.io.parse_example spec of SCHEMA for the given variable lengths (the optional
    mirrored keys only when ``mirrored``)."""
    lengths = {FEATURES: feature_dim, DESCRIPTOR: descriptor_dim,
               FEATURES_MIRRORED: feature_dim, DESCRIPTOR_MIRRORED: descriptor_dim}
    dtypes = {"bytes": tf.string, "float": tf.float32, "int64": tf.int64}
    spec = {}
    for name, (kind, length) in SCHEMA.items():
        if name in OPTIONAL and not mirrored:
            continue
        length = lengths.get(name, length)
        spec[name] = tf.io.FixedLenFeature([] if kind != "float" else [length], dtypes[kind])
    return spec

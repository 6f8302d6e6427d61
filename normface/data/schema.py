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
                 weights) -> tf.train.Example:
    """One record: uint8 ``image``/``texture`` ``[S, S, 3]``, ``landmarks`` ``[68, 2]``,
    ``features`` ``[F]``, ``descriptor`` ``[128 | 0]``, ids and ``weights`` ``[2]``."""
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
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_spec(feature_dim: int, descriptor_dim: int) -> dict:
    """The tf.io.parse_example spec of SCHEMA for the given variable lengths."""
    lengths = {FEATURES: feature_dim, DESCRIPTOR: descriptor_dim}
    dtypes = {"bytes": tf.string, "float": tf.float32, "int64": tf.int64}
    spec = {}
    for name, (kind, length) in SCHEMA.items():
        length = lengths.get(name, length)
        spec[name] = tf.io.FixedLenFeature([] if kind != "float" else [length], dtypes[kind])
    return spec

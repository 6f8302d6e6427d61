"""The full face normalizer of paper Fig. 3: encoder features -> landmarks, texture, output image.

``features -> feature MLP -> {landmark MLP -> landmarks, texture decoder -> texture}``, then the
texture (registered to the mean landmarks) is warped by :class:`normface.warp.SplineWarp` so the
mean landmarks land on the predicted ones: that is the output image. The mean landmarks are a
constant of the model (a layer config), so a saved model carries them.

:func:`build_normalizer` returns two functional models over the same layers:

- ``model``: features -> ``{"landmarks", "texture", "image"}`` (the warp included);
- ``decoder``: features -> ``{"landmarks", "texture"}``, no warp. Training without the identity
  loss uses only this one: the paper's saving (the landmark and texture losses need no warp).

The plain-CNN ablation (``plain_cnn``, paper Fig. 10) predicts ``{"landmarks", "image"}`` directly;
its ``decoder`` is its ``model``.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from normface import warp
from normface.models import decoders
from normface.models.config import ModelConfig

# Output names. They are the record keys of normface.data.schema on purpose (the trainer pairs
# batch[k] with output[k]); models sit below data, so tests/training/test_training.py checks they agree.
LANDMARKS = "landmarks"
TEXTURE = "texture"
IMAGE = "image"
FEATURES = "features"
# Names of the sub-models inside the full model (used to rebuild the decoder of a loaded model).
FEATURE_MLP, LANDMARK_MLP = "feature_mlp", "landmark_mlp"
# The warp layer of the full model (training places other textures with it: the geometry lattice).
WARP = "spline_warp"


@dataclasses.dataclass
class Normalizer:
    """The trainable network: the full ``model`` and its warp-free ``decoder`` (shared weights)."""

    model: keras.Model
    decoder: keras.Model
    config: ModelConfig

    @property
    def has_texture(self) -> bool:
        """False for the plain-CNN ablation, whose decoder predicts the image itself."""
        return not self.config.plain_cnn


def _texture_layer_name(config: ModelConfig) -> str:
    if config.texture_decoder == "fc":
        return "texture_fc"
    return "image_cnn" if config.plain_cnn else "texture_cnn"


def _assemble(config: ModelConfig, feature_net, landmark_net, texture_net) -> Normalizer:
    """Wires the three sub-models (and the warp) into the full model and the decoder."""
    features = keras.Input((config.feature_dim,), name=FEATURES)
    hidden = feature_net(features)
    landmarks = landmark_net(hidden)
    rgb = texture_net(hidden)
    if config.plain_cnn:
        model = keras.Model(features, {LANDMARKS: landmarks, IMAGE: rgb}, name="plain_cnn_normalizer")
        return Normalizer(model, model, config)
    # Its own constant layer (not the landmark MLP's): a layer shared into a nested model does not
    # survive .keras deserialization.
    mean = landmark_net.get_layer("mean_landmarks").mean_landmarks
    source = decoders.MeanLandmarks(mean, name="warp_source")(features)
    image = warp.SplineWarp(
        interpolation_order=config.warp_order,
        num_boundary_points=config.warp_boundary_points,
        resampling=config.warp_resampling,
        dtype="float32",
        name=WARP,
    )([rgb, source, landmarks])
    model = keras.Model(features, {LANDMARKS: landmarks, TEXTURE: rgb, IMAGE: image}, name="normalizer")
    decoder = keras.Model(features, {LANDMARKS: landmarks, TEXTURE: rgb}, name="normalizer_decoder")
    return Normalizer(model, decoder, config)


def build_normalizer(config: ModelConfig, mean_landmarks: np.ndarray) -> Normalizer:
    """Builds a fresh normalizer.

    Args:
      config: sizes and variant.
      mean_landmarks: ``[num_landmarks, 2]`` (x, y) pixels of the texture frame at
        ``config.output_size`` (the global mean landmarks of the training records).
    """
    config.validate()
    mean = np.asarray(mean_landmarks, dtype=np.float32)
    if mean.shape != (config.num_landmarks, 2):
        raise ValueError(f"mean_landmarks must have shape ({config.num_landmarks}, 2), got {mean.shape}")
    if mean.min() < 0 or mean.max() > config.output_size - 1:
        raise ValueError(
            f"mean_landmarks must lie inside the {config.output_size}x{config.output_size} output "
            f"(x, y pixels), got range [{mean.min():.1f}, {mean.max():.1f}]"
        )
    return _assemble(
        config,
        decoders.feature_mlp(config, FEATURE_MLP),
        decoders.landmark_mlp(config, mean, LANDMARK_MLP),
        decoders.texture_decoder(config, _texture_layer_name(config)),
    )


def from_model(model: keras.Model, config: ModelConfig) -> Normalizer:
    """Wraps a loaded full model (e.g. from a ``.keras`` file), rebuilding its warp-free decoder."""
    return _assemble(
        config,
        model.get_layer(FEATURE_MLP),
        model.get_layer(LANDMARK_MLP),
        model.get_layer(_texture_layer_name(config)),
    )


def mean_landmarks_of(model: keras.Model) -> np.ndarray:
    """The ``[n, 2]`` mean landmarks a (possibly loaded) normalizer carries."""
    layer = model.get_layer(LANDMARK_MLP).get_layer("mean_landmarks")
    return np.asarray(layer.mean_landmarks, dtype=np.float32)

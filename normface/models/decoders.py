"""The decoder pieces of paper Sec. 3.2 as Keras 3 functional models.

- :func:`feature_mlp`: frozen encoder features -> FC + ReLU layers (the paper's extra MLP layer).
- :func:`landmark_mlp`: hidden -> 68 (x, y) landmarks, predicted as offsets from the mean landmarks.
- :func:`texture_cnn`: hidden -> FC to a (size/16)^2 x 256 grid -> 4 transposed convolutions
  (kernel 5, stride 2, ReLU; or, with ``upsampling="resize"``, a bilinear x2 resize and a 3x3
  convolution each) -> 1x1 convolution to RGB (-> optionally a residual refiner at full size).
  Also the "plain CNN" ablation (Fig. 10), which is the same network asked to predict the image
  instead of the registered texture.
- :func:`texture_fc`: hidden -> one linear map to every pixel (the paper's FC contrast, Fig. 9).

Each builder returns its own small ``keras.Model`` so the full model (``normalizer.py``) reads as
the paper's Fig. 3 and the pieces can be inspected or reused. Landmarks and RGB outputs are float32
whatever the dtype policy, so losses and the warp never see float16.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from normface.models.config import ModelConfig

# Landmark offsets start within a few pixels of the mean (stddev of the last layer's weights):
# a warp of wildly displaced landmarks folds over, while exact zeros would block gradients to the
# landmark MLP's hidden layers on the first step.
LANDMARK_INIT_STDDEV = 1e-3
# Textures start mid-grey, the middle of the [0, 1] range the records use.
RGB_BIAS_INIT = 0.5
KERNEL_SIZE = 5
RESIZE_KERNEL_SIZE = 3
REFINE_KERNEL_SIZE = 3


@keras.saving.register_keras_serializable(package="normface")
class MeanLandmarks(keras.layers.Layer):
    """Broadcasts the constant mean landmarks ``[n, 2]`` ((x, y) pixels) to the batch of its input.

    Call with any tensor whose first axis is the batch; returns ``[batch, n, 2]`` float32. The
    mean is part of the layer's config, so a saved model carries it.
    """

    def __init__(self, mean_landmarks: Sequence[Sequence[float]], **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        mean = np.asarray(mean_landmarks, dtype=np.float64)
        if mean.ndim != 2 or mean.shape[1] != 2 or not np.all(np.isfinite(mean)):
            raise ValueError(f"mean_landmarks must be finite [n, 2] (x, y) points, got shape {mean.shape}")
        self.mean_landmarks = mean.tolist()
        self._mean = mean.astype(np.float32)

    def call(self, reference):
        with tf.name_scope("mean_landmarks"):
            batch = tf.shape(reference)[0]
            mean = tf.constant(self._mean)[None]
            return tf.tile(mean, tf.stack([batch, 1, 1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._mean.shape

    def get_config(self):
        config = super().get_config()
        config.update(mean_landmarks=self.mean_landmarks)
        return config


def _policy_kwargs(config: ModelConfig) -> dict:
    return {"dtype": config.dtype_policy}


def feature_mlp(config: ModelConfig, name: str = "feature_mlp") -> keras.Model:
    """features ``[b, feature_dim]`` -> hidden ``[b, feature_hidden[-1]]`` (FC + ReLU layers)."""
    features = keras.Input((config.feature_dim,), name="features")
    x = features
    for i, width in enumerate(config.feature_hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"fc{i}", **_policy_kwargs(config))(x)
    return keras.Model(features, x, name=name)


def landmark_mlp(config: ModelConfig, mean_landmarks: np.ndarray, name: str = "landmark_mlp") -> keras.Model:
    """hidden ``[b, h]`` -> landmarks ``[b, n, 2]`` float32 (x, y) pixels of the output image.

    The MLP predicts offsets in units of the image size, added to the mean landmarks: the output
    starts near an average face and the last layer's scale does not depend on the resolution.
    """
    mean = np.asarray(mean_landmarks, dtype=np.float32)
    if mean.shape != (config.num_landmarks, 2):
        raise ValueError(f"mean_landmarks must have shape ({config.num_landmarks}, 2), got {mean.shape}")
    hidden = keras.Input((config.feature_hidden[-1],), name="hidden")
    x = hidden
    for i, width in enumerate(config.landmark_hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"fc{i}", **_policy_kwargs(config))(x)
    offsets = keras.layers.Dense(
        2 * config.num_landmarks,
        kernel_initializer=keras.initializers.RandomNormal(stddev=LANDMARK_INIT_STDDEV),
        dtype="float32",
        name="offsets",
    )(x)
    offsets = keras.layers.Reshape((config.num_landmarks, 2), name="offsets_xy")(offsets)
    offsets = keras.layers.Rescaling(float(config.output_size), name="to_pixels")(offsets)
    base = MeanLandmarks(mean, name="mean_landmarks")(hidden)
    landmarks = keras.layers.Add(name="landmarks", dtype="float32")([base, offsets])
    return keras.Model(hidden, landmarks, name=name)


def texture_cnn(config: ModelConfig, name: str = "texture_cnn") -> keras.Model:
    """hidden ``[b, h]`` -> RGB ``[b, S, S, 3]`` float32 (S = output_size; values near [0, 1]).

    FC to a (S/16) x (S/16) x grid_channels grid of localized features, then 4 upsampling stages
    each followed by a ReLU, then a 1x1 convolution to RGB. A stage is a transposed convolution
    (kernel 5, stride 2: its taps overlap unevenly, so even and odd output pixels are made
    differently, a checkerboard) or, with ``upsampling="resize"``, a bilinear x2 resize (layer
    ``resize{i}``) and a 3x3 convolution (layer ``up{i}``, the same name: the stage's weights).

    With ``config.refine_channels``, a refiner reads the last stage's features at full size through
    3x3 convolutions dilated 1, 2, 4, ... (``refine{i}``, ReLU; receptive field past a 16-pixel
    grid cell, so it can see the grid it is to remove) and adds a 3x3 convolution's RGB correction
    (``refine_rgb``, zero-initialized: a refined model warm-started from an unrefined one starts
    with the donor's exact output).
    """
    g = config.grid_size
    hidden = keras.Input((config.feature_hidden[-1],), name="hidden")
    x = keras.layers.Dense(g * g * config.grid_channels, activation="relu", name="to_grid",
                           **_policy_kwargs(config))(hidden)
    x = keras.layers.Reshape((g, g, config.grid_channels), name="grid")(x)
    for i, channels in enumerate(config.channels):
        if config.upsampling == "resize":
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"resize{i}", **_policy_kwargs(config))(x)
            x = keras.layers.Conv2D(channels, RESIZE_KERNEL_SIZE, padding="same", activation="relu", name=f"up{i}",
                                    **_policy_kwargs(config))(x)
        else:
            x = keras.layers.Conv2DTranspose(
                channels, KERNEL_SIZE, strides=2, padding="same", activation="relu", name=f"up{i}",
                **_policy_kwargs(config),
            )(x)
    rgb = keras.layers.Conv2D(
        3, 1, bias_initializer=keras.initializers.Constant(RGB_BIAS_INIT), dtype="float32", name="to_rgb"
    )(x)
    if config.refine_channels:
        for i, channels in enumerate(config.refine_channels):
            x = keras.layers.Conv2D(channels, REFINE_KERNEL_SIZE, padding="same", dilation_rate=2**i, activation="relu",
                                    name=f"refine{i}", **_policy_kwargs(config))(x)
        correction = keras.layers.Conv2D(3, REFINE_KERNEL_SIZE, padding="same", kernel_initializer="zeros",
                                         dtype="float32", name="refine_rgb")(x)
        rgb = keras.layers.Add(name="refined", dtype="float32")([rgb, correction])
    return keras.Model(hidden, rgb, name=name)


def texture_fc(config: ModelConfig, name: str = "texture_fc") -> keras.Model:
    """hidden ``[b, h]`` -> RGB ``[b, S, S, 3]`` float32 through one linear map to every pixel."""
    s = config.output_size
    hidden = keras.Input((config.feature_hidden[-1],), name="hidden")
    x = keras.layers.Dense(
        s * s * 3, bias_initializer=keras.initializers.Constant(RGB_BIAS_INIT), dtype="float32", name="to_pixels"
    )(hidden)
    rgb = keras.layers.Reshape((s, s, 3), name="rgb")(x)
    return keras.Model(hidden, rgb, name=name)


def texture_decoder(config: ModelConfig, name: str | None = None) -> keras.Model:
    """The texture (or, for ``plain_cnn``, image) decoder the config asks for."""
    if config.texture_decoder == "fc":
        return texture_fc(config, name or "texture_fc")
    return texture_cnn(config, name or ("image_cnn" if config.plain_cnn else "texture_cnn"))

"""The frozen identity-encoder interface: face chips in, identity features and descriptor out.

The paper's method is agnostic to which pretrained face-recognition network provides the
features (it used FaceNet and VGG-Face). Every frozen network normface can use is wrapped as an
:class:`IdentityEncoder`: a differentiable map from ``[batch, size, size, 3]`` RGB chips (float32
in [0, 255], as produced by :func:`normface.faces.chips.extract_chips` / ``dlib_face_chip``) to

- ``features``  ``[batch, feature_dim]``: the lowest non-spatial layer (the decoder's input);
- ``descriptor`` ``[batch, descriptor_dim]``: the embedding compared by the identity loss.

:class:`KerasModelEncoder` adapts any Keras model given the names of those two layers and a
preprocessing (by name or callable), which covers a user's own ``.keras`` file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Union

import keras
import numpy as np
import tensorflow as tf

DEFAULT_BATCH_SIZE = 32
COMPUTE_DTYPES = ("float32", "bfloat16")
# VGG-Face (Caffe) means, in BGR order as that network expects.
VGG_FACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)

Preprocessing = Union[str, Callable[[tf.Tensor], tf.Tensor]]


def _vgg_face(x: tf.Tensor) -> tf.Tensor:
    return x[..., ::-1] - tf.constant(VGG_FACE_MEAN_BGR, dtype=x.dtype)


# Named input preprocessings for chips in [0, 255] RGB.
PREPROCESSINGS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "none": lambda x: x,  # the model normalizes itself (e.g. the dlib ResNet)
    "unit": lambda x: x / 255.0,  # [0, 1]
    "symmetric": lambda x: x / 127.5 - 1.0,  # [-1, 1]
    "vgg_face": _vgg_face,  # BGR minus the VGG-Face mean
}


def resolve_preprocessing(preprocessing: Preprocessing) -> Callable[[tf.Tensor], tf.Tensor]:
    """A preprocessing function from its name (see :data:`PREPROCESSINGS`) or itself."""
    if callable(preprocessing):
        return preprocessing
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(
            f"preprocessing: unknown name {preprocessing!r}; choose one of "
            f"{sorted(PREPROCESSINGS)} or pass a function"
        )
    return PREPROCESSINGS[preprocessing]


@dataclass(frozen=True)
class EncoderOutput:
    """features ``[batch, feature_dim]`` and descriptor ``[batch, descriptor_dim]`` (float32)."""

    features: tf.Tensor
    descriptor: tf.Tensor


class IdentityEncoder:
    """A frozen face-recognition network. Subclasses implement :meth:`encode`.

    Attributes: ``name``; ``chip_size`` (side of the square RGB input chip); ``feature_dim``;
    ``descriptor_dim``; ``same_person_threshold`` (Euclidean descriptor distance below which two
    chips show the same person, or None when the network defines none).
    """

    name: str = "encoder"
    chip_size: int = 150
    feature_dim: int = 0
    descriptor_dim: int = 0
    same_person_threshold: float | None = None

    def encode(self, chips: tf.Tensor) -> EncoderOutput:
        """chips ``[b, chip_size, chip_size, 3]`` float RGB in [0, 255] -> EncoderOutput.

        Differentiable with respect to ``chips``; the network's weights stay frozen.
        """
        raise NotImplementedError

    def __call__(self, chips: tf.Tensor) -> EncoderOutput:
        return self.encode(chips)

    def encode_with_activations(self, chips: tf.Tensor, layers: tuple[str, ...]
                                ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``(descriptor [b, D], [activation of each named layer])`` in one forward pass (the
        perceptual loss); differentiable in ``chips``. Encoders without named layers raise."""
        raise NotImplementedError(f"encoder {self.name!r} exposes no intermediate activations")

    def check_chips(self, chips) -> tf.Tensor:
        """``chips`` as a float32 tensor, or ValueError naming the expected shape."""
        chips = tf.convert_to_tensor(chips)
        expected = (self.chip_size, self.chip_size, 3)
        if chips.shape.rank != 4 or tuple(chips.shape[1:]) != expected:
            raise ValueError(
                f"chips: {self.name} expects [batch, {expected[0]}, {expected[1]}, 3] RGB chips "
                f"in [0, 255]; got shape {tuple(chips.shape)}"
            )
        return tf.cast(chips, tf.float32)

    def encode_numpy(self, chips: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Batched inference on ``[n, s, s, 3]`` chips -> (features ``[n, F]``, descriptors ``[n, D]``)."""
        chips = np.asarray(chips)
        feats, descs = [], []
        for start in range(0, len(chips), batch_size):
            out = self._encode_graph(self.check_chips(chips[start : start + batch_size]))
            feats.append(out[0].numpy())
            descs.append(out[1].numpy())
        if not feats:
            return (np.zeros((0, self.feature_dim), np.float32),
                    np.zeros((0, self.descriptor_dim), np.float32))
        return np.concatenate(feats), np.concatenate(descs)

    @tf.function(reduce_retracing=True)
    def _encode_graph(self, chips):
        out = self.encode(chips)
        return out.features, out.descriptor


class KerasModelEncoder(IdentityEncoder):
    """An IdentityEncoder over a Keras model (or ``.keras`` file) and two of its layers' outputs.

    feature_layer: name of the layer whose output is ``features`` (flattened if spatial).
    descriptor_layer: name of the descriptor layer; None = the model's (first) output.
    preprocessing: applied to ``[0, 255]`` RGB chips before the model (name or function).
    """

    def __init__(self, model: keras.Model | str | os.PathLike, feature_layer: str,
                 descriptor_layer: str | None = None, preprocessing: Preprocessing = "none",
                 name: str | None = None, same_person_threshold: float | None = None):
        if not isinstance(model, keras.Model):
            path = os.fspath(model)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: Keras model file not found")
            model = keras.saving.load_model(path, compile=False)
        self.model = model
        self._layers = (feature_layer, descriptor_layer)
        self._preprocessing = preprocessing
        self.preprocess = resolve_preprocessing(preprocessing)
        self.name = name or model.name
        self.same_person_threshold = same_person_threshold
        layer_names = [layer.name for layer in model.layers]
        for arg, layer in (("feature_layer", feature_layer), ("descriptor_layer", descriptor_layer)):
            if layer is not None and layer not in layer_names:
                raise ValueError(f"{arg}: model {model.name!r} has no layer {layer!r}")
        feature_out = model.get_layer(feature_layer).output
        descriptor_out = (model.outputs[0] if descriptor_layer is None
                          else model.get_layer(descriptor_layer).output)
        self._net = keras.Model(model.inputs, [feature_out, descriptor_out], name=self.name)
        self._net.trainable = False
        self._activation_nets: dict[tuple[str, ...], keras.Model] = {}
        in_shape = model.inputs[0].shape
        if in_shape[1] is None or in_shape[1] != in_shape[2] or in_shape[3] != 3:
            raise ValueError(f"model: expected a square RGB input [b, s, s, 3]; got {in_shape}")
        self.chip_size = int(in_shape[1])
        self.feature_dim = int(np.prod(feature_out.shape[1:]))
        self.descriptor_dim = int(np.prod(descriptor_out.shape[1:]))

    def with_compute_dtype(self, dtype: str) -> "KerasModelEncoder":
        """This encoder computing in ``dtype`` (one of :data:`COMPUTE_DTYPES`; outputs stay float32).

        ``bfloat16`` (Keras' mixed_bfloat16 policy on a copy of the network, same weights) halves
        the CPU time of a forward + backward pass where the CPU has bfloat16 units (AMX,
        AVX512-BF16; see benchmarks/bench_train.py); descriptors move by ~0.01 (the same-person
        threshold is 0.6). Meant for training losses; metrics keep float32.
        """
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute dtype must be one of {COMPUTE_DTYPES}, got {dtype!r}")
        if dtype == "float32":
            return self

        def clone_layer(layer):
            return layer.__class__.from_config({**layer.get_config(), "dtype": f"mixed_{dtype}"})

        model = keras.models.clone_model(self.model, clone_function=clone_layer)
        model.set_weights(self.model.get_weights())
        return KerasModelEncoder(model, *self._layers, preprocessing=self._preprocessing, name=self.name,
                                 same_person_threshold=self.same_person_threshold)

    def encode_with_activations(self, chips: tf.Tensor, layers: tuple[str, ...]
                                ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        layers = tuple(layers)
        if layers not in self._activation_nets:
            names = {layer.name for layer in self.model.layers}
            unknown = [name for name in layers if name not in names]
            if unknown:
                raise ValueError(f"layers: model {self.model.name!r} has no layers {unknown}")
            outputs = [self._net.outputs[1]] + [self.model.get_layer(name).output for name in layers]
            net = keras.Model(self.model.inputs, outputs, name=f"{self.name}_activations")
            net.trainable = False
            self._activation_nets[layers] = net
        with tf.name_scope(f"encode_activations_{self.name}"):
            chips = self.check_chips(chips)
            descriptor, *activations = self._activation_nets[layers](self.preprocess(chips), training=False)
            batch = tf.shape(chips)[0]
            return (tf.reshape(tf.cast(descriptor, tf.float32), [batch, self.descriptor_dim]),
                    [tf.cast(a, tf.float32) for a in activations])

    def encode(self, chips: tf.Tensor) -> EncoderOutput:
        with tf.name_scope(f"encode_{self.name}"):
            chips = self.check_chips(chips)
            features, descriptor = self._net(self.preprocess(chips), training=False)
            features, descriptor = tf.cast(features, tf.float32), tf.cast(descriptor, tf.float32)
            batch = tf.shape(chips)[0]
            return EncoderOutput(tf.reshape(features, [batch, self.feature_dim]),
                                 tf.reshape(descriptor, [batch, self.descriptor_dim]))

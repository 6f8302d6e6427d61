"""Ship-time export of the networks :class:`FaceNormalizer` runs to LiteRT (``.tflite``) files.

Written beside a packed model's ``normface.json`` (:mod:`normface.serving.packed`):

- ``encoder.tflite``: the frozen encoder, chips ``[1, 150, 150, 3]`` float32 in [0, 255] ->
  ``features [1, 256]``, ``descriptor [1, 128]``;
- the decoder without its warp, in two parts, so that a batch of faces reads the decoder's
  largest weights once instead of once per face:

  - ``decoder_head.tflite``: fully connected layers only, ``features [1, F]`` ->
    ``grid [1, g * g * C]`` (the texture CNN's first layer, 16M weights at 128 px) and
    ``offsets [1, 2n]`` (the landmarks' offsets from the mean, in pixels, x y interleaved). Its
    batch is resized at run time to the batch in hand: fully connected layers take any batch
    and stay on LiteRT's XNNPACK delegate;
  - ``decoder_body.tflite`` and ``decoder_body4.tflite``: the texture CNN after its first layer,
    ``grid [B, g, g, C]`` -> ``texture [B, S, S, 3]`` at the fixed batches of
    :data:`BODY_BATCHES` (1 and 4): a transposed convolution's output shape is a constant of
    the file, so each batch is its own file (4 faces at once take ~20% less time per face).

  The mean landmarks are added in NumPy (float32, as the model's ``Add``): no constant of
  theirs is rounded by LiteRT's float16 option.

Weights are stored as float16 (the packed model's own precision, so LiteRT and TensorFlow see
the same values); :func:`verify_export` checks the files against TensorFlow before they ship.
The spline warp and the chips' affine run in NumPy (:mod:`normface.warp.numpy_warp`).

Needs TensorFlow (ship time only); the inference side is :mod:`normface.serving.litert_backend`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normface.utils import io_utils

ENCODER_FILE = "encoder.tflite"
DECODER_HEAD_FILE = "decoder_head.tflite"
# Texture CNN bodies by their fixed batch; the backend runs a batch in chunks of the largest.
BODY_BATCHES = (1, 4)
DECODER_BODY_FILES = {1: "decoder_body.tflite", 4: "decoder_body4.tflite"}
DECODER_FILES = (DECODER_HEAD_FILE, *DECODER_BODY_FILES.values())
# The decoder's weights are not stored twice: the decoder files ship without them, and this file
# maps each emptied buffer to its array in the packed model's weights.npz (the one copy).
WEIGHT_MAP_FILE = "litert.json"
LITERT_FILES = (ENCODER_FILE, *DECODER_FILES, WEIGHT_MAP_FILE)
# Files of earlier exports that a new one replaces (the decoder in one file at batch 1, until
# 2026-12-04): removed when a model is shipped again.
OLD_FILES = ("decoder.tflite",)
# Inputs and outputs of the files, in the order :mod:`litert_backend` addresses them by name
# (the converter names outputs Identity, Identity_1, ... in the sorted order of these keys).
ENCODER_OUTPUTS = ("descriptor", "features")
HEAD_OUTPUTS = ("grid", "offsets")
# A fixed batch for the encoder and the bodies: with an unknown one the converter computes
# reshape and transposed-convolution shapes at run time, and LiteRT's XNNPACK delegate then takes
# almost none of the ops (the decoder ran ~6x slower than TensorFlow). The head is exported at
# batch 1 and resized.
BATCH = 1


def _convert(function, float16: bool) -> bytes:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = convert_variables_to_constants_v2(function.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def encoder_tflite(encoder, float16: bool = True) -> bytes:
    """The ``.tflite`` bytes of an :class:`~normface.encoders.base.IdentityEncoder` (signature
    ``serving_default``: input ``chips``, outputs ``features``, ``descriptor``)."""
    import tensorflow as tf

    size = encoder.chip_size

    @tf.function(input_signature=[tf.TensorSpec([BATCH, size, size, 3], tf.float32, name="chips")])
    def encode(chips):
        out = encoder.encode(chips)
        return {"features": out.features, "descriptor": out.descriptor}

    return _convert(encode, float16)


def not_exportable(model_config: dict) -> str | None:
    """Why a model config's (``ModelConfig.to_dict()``) decoder has no LiteRT export (None when
    it has one): the warped CNN decoder only."""
    if model_config.get("plain_cnn", False):
        return "the plain-CNN ablation has no texture and warp: LiteRT runs the warped decoder only"
    if model_config.get("texture_decoder", "cnn") != "cnn":
        return f"LiteRT runs the CNN texture decoder only, not texture_decoder={model_config['texture_decoder']!r}"
    return None


def decoder_tflite(model, model_config: dict) -> dict[str, bytes]:
    """The ``.tflite`` bytes of a full normalizer ``model``'s decoder, warp excluded, by file name
    (:data:`DECODER_FILES`): the same layers as :func:`normface.models.decoders.landmark_mlp` /
    ``texture_cnn``, cut after the texture CNN's first layer (float16 weights)."""
    import keras
    import tensorflow as tf

    from normface.models import ModelConfig
    from normface.models import normalizer as nm

    config = ModelConfig.from_dict(model_config)
    reason = not_exportable(model_config)
    if reason:
        raise ValueError(reason)
    feature_net = model.get_layer(nm.FEATURE_MLP)
    landmark_net = model.get_layer(nm.LANDMARK_MLP)
    texture_net = model.get_layer(nm._texture_layer_name(config))
    g, grid_channels = config.grid_size, config.grid_channels

    @tf.function(input_signature=[tf.TensorSpec([BATCH, config.feature_dim], tf.float32, name="features")])
    def head(features):
        hidden = feature_net(features, training=False)
        x = hidden
        for i in range(len(config.landmark_hidden)):
            x = landmark_net.get_layer(f"fc{i}")(x)
        # offsets_xy (a reshape to [b, n, 2]) is left to NumPy: a reshape's shape is a constant,
        # which would pin the batch; to_pixels scales the flat offsets the same way.
        offsets = landmark_net.get_layer("to_pixels")(landmark_net.get_layer("offsets")(x))
        return {"grid": texture_net.get_layer("to_grid")(hidden), "offsets": offsets}

    # The texture CNN from its "grid" Reshape layer's output (NumPy reshapes the head's flat
    # output) to the texture: the upsampling stages, to_rgb and, when the config has one, the
    # refiner beside it (a branch: the graph, not the layer list, says what feeds what).
    after_grid = keras.Model(texture_net.get_layer("grid").output, texture_net.output)

    def body(batch: int):
        @tf.function(input_signature=[tf.TensorSpec([batch, g, g, grid_channels], tf.float32, name="grid")])
        def run(grid):
            return {"texture": after_grid(grid, training=False)}
        return run

    files = {DECODER_HEAD_FILE: _convert(head, float16=True)}
    for batch, name in DECODER_BODY_FILES.items():
        files[name] = _convert(body(batch), float16=True)
    return files


def verify_export(packed_dir: str | Path, model, encoder, mean_landmarks: np.ndarray, batch: int = 5,
                  seed: int = 0) -> dict[str, float]:
    """Runs the files with LiteRT against TensorFlow on random inputs (``batch`` 5: both body
    files run); returns the largest differences and raises ValueError naming the file when one is
    over its bound (features and descriptor 1e-2: the encoder's float16 weights move them by
    ~2e-3; texture 1e-4, landmarks 1e-3 px: the decoder's float16 weights are the packed model's
    own)."""
    from normface.serving.litert_backend import LiteRTNetworks

    rng = np.random.default_rng(seed)
    nets = LiteRTNetworks(packed_dir, np.asarray(mean_landmarks, np.float32))
    chips = rng.uniform(0, 255, (batch, encoder.chip_size, encoder.chip_size, 3)).astype(np.float32)
    feats, desc = nets.encode(chips)
    ref = encoder.encode(chips)
    out = model(ref.features, training=False)
    lms, tex = nets.decode(ref.features.numpy())
    diffs = {"features": float(np.abs(feats - ref.features.numpy()).max()),
             "descriptor": float(np.abs(desc - ref.descriptor.numpy()).max()),
             "landmarks": float(np.abs(lms - out["landmarks"].numpy()).max()),
             "texture": float(np.abs(tex - out["texture"].numpy()).max())}
    bodies = " / ".join(DECODER_BODY_FILES.values())
    bounds = {"features": (ENCODER_FILE, 1e-2), "descriptor": (ENCODER_FILE, 1e-2),
              "landmarks": (DECODER_HEAD_FILE, 1e-3), "texture": (bodies, 1e-4)}
    for name, (file, bound) in bounds.items():
        if not diffs[name] <= bound:
            raise ValueError(f"{Path(packed_dir) / file}: {name} differ from TensorFlow's by {diffs[name]:.3g} "
                             f"(> {bound}): the export is wrong")
    return diffs


def strip_weights(tflite: bytes, weights: dict[str, np.ndarray]) -> tuple[bytes, list[dict]]:
    """Empties the buffers of ``tflite`` that hold one of ``weights`` (float16 arrays by name, up
    to an axis permutation); returns the stripped bytes and, per emptied buffer, ``{"buffer",
    "weight", "perm"}`` (``weights[weight].transpose(perm)`` refills it). A weight the converter
    folded (the landmark layer's scale goes into its weights) stays in the file: small ones only,
    which :func:`write_tflite` checks."""
    import itertools

    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    mapping = []
    by_size: dict[int, list[str]] = {}
    for name, w in weights.items():
        by_size.setdefault(w.size, []).append(name)
    for tensor in model.subgraphs[0].tensors:
        buffer = model.buffers[tensor.buffer]
        if tensor.type != schema.TensorType.FLOAT16 or buffer.data is None or len(buffer.data) == 0:
            continue
        data = np.frombuffer(bytes(np.asarray(buffer.data, np.uint8)), np.float16).reshape(tensor.shape)
        for name in by_size.get(data.size, []):
            w = weights[name]
            perm = next((p for p in itertools.permutations(range(w.ndim))
                         if w.transpose(p).shape == data.shape and np.array_equal(w.transpose(p), data)), None)
            if perm is not None:
                mapping.append({"buffer": int(tensor.buffer), "weight": name, "perm": list(perm)})
                buffer.data = None
                break
    builder = __import__("flatbuffers").Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), mapping


def write_tflite(packed_dir: str | Path, model, model_config: dict, encoder, encoder_float16: bool = True
                 ) -> list[Path]:
    """Writes ``encoder.tflite``, the decoder files (:data:`DECODER_FILES`, without the weights
    ``weights.npz`` holds) and ``litert.json`` (each file's buffer map and the SHA-256 of every
    file) into a packed model's folder ``packed_dir``, atomically, the map last. Raises
    ValueError when a weight of 100,000 values or more is in no decoder file's map (a file would
    hold a second copy of it)."""
    import json

    from normface.serving import packed

    packed_dir = Path(packed_dir)
    with np.load(packed_dir / packed.WEIGHTS_FILE) as arrays:
        weights = {k: arrays[k] for k in arrays.files}
    decoders, maps = {}, {}
    for name, tflite in decoder_tflite(model, model_config).items():
        decoders[name], maps[name] = strip_weights(tflite, weights)
    mapped = {entry["weight"] for mapping in maps.values() for entry in mapping}
    missing = [n for n, w in weights.items() if w.size >= 100_000 and n not in mapped]
    if missing:
        raise ValueError(f"{', '.join(DECODER_FILES)}: weights {missing} not found among their float16 buffers")
    io_utils.write_bytes_atomic(packed_dir / ENCODER_FILE, encoder_tflite(encoder, encoder_float16))
    for name, data in decoders.items():
        io_utils.write_bytes_atomic(packed_dir / name, data)
    files = {name: packed.file_digest(packed_dir / name) for name in (ENCODER_FILE, *DECODER_FILES, packed.WEIGHTS_FILE)}
    io_utils.write_bytes_atomic(packed_dir / WEIGHT_MAP_FILE,
                                json.dumps({"decoder_weights": maps, "files": files}, indent=1).encode())
    return [packed_dir / n for n in (ENCODER_FILE, *DECODER_FILES, WEIGHT_MAP_FILE)]

"""Ship-time export of the networks :class:`FaceNormalizer` runs to LiteRT (``.tflite``) files.

Two files, written beside a packed model's ``normface.json`` (:mod:`normface.serving.packed`):

- ``encoder.tflite``: the frozen encoder, chips ``[b, 150, 150, 3]`` float32 in [0, 255] ->
  ``features [b, 256]``, ``descriptor [b, 128]``;
- ``decoder.tflite``: the decoder without its warp, ``features [b, F]`` and ``mean_landmarks
  [1, 68, 2]`` -> ``landmarks [b, 68, 2]`` (x, y) and ``texture [b, S, S, 3]``. The mean
  landmarks are an input (fed from ``normface.json``) so they stay float32: LiteRT's float16
  option would round every float constant, the mean's 0.03 px included.

Weights are stored as float16 (the packed model's own precision, so LiteRT and TensorFlow see
the same values); :func:`verify_export` checks each file against TensorFlow before it ships.
The spline warp and the chips' affine run in NumPy (:mod:`normface.warp.numpy_warp`).

Needs TensorFlow (ship time only); the inference side is :mod:`normface.serving.litert_backend`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normface.utils import io_utils

ENCODER_FILE = "encoder.tflite"
DECODER_FILE = "decoder.tflite"
# The decoder's weights are not stored twice: decoder.tflite ships without them, and this file maps
# each emptied buffer to its array in the packed model's weights.npz (the one copy).
WEIGHT_MAP_FILE = "litert.json"
# Inputs and outputs of the two files, in the order :mod:`litert_backend` addresses them by name.
ENCODER_OUTPUTS = ("features", "descriptor")
DECODER_INPUTS = ("features", "mean_landmarks")
DECODER_OUTPUTS = ("landmarks", "texture")
# A fixed batch: with an unknown one the converter computes reshape and transposed-convolution
# shapes at run time, and LiteRT's XNNPACK delegate then takes almost none of the ops (the
# decoder ran ~6x slower than TensorFlow). The backend runs a batch one face at a time.
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


def decoder_tflite(model, model_config: dict) -> bytes:
    """The ``.tflite`` bytes of a full normalizer ``model``'s decoder, warp excluded: the same
    layers as :func:`normface.models.decoders.landmark_mlp` / ``texture_cnn`` with the mean
    landmarks as an input (float16 weights)."""
    import tensorflow as tf

    from normface.models import ModelConfig
    from normface.models import normalizer as nm

    config = ModelConfig.from_dict(model_config)
    if config.plain_cnn:
        raise ValueError("the plain-CNN ablation has no texture and warp: LiteRT export is for the warped decoder")
    feature_net = model.get_layer(nm.FEATURE_MLP)
    landmark_net = model.get_layer(nm.LANDMARK_MLP)
    texture_net = model.get_layer(nm._texture_layer_name(config))

    @tf.function(input_signature=[tf.TensorSpec([BATCH, config.feature_dim], tf.float32, name="features"),
                                  tf.TensorSpec([1, config.num_landmarks, 2], tf.float32, name="mean_landmarks")])
    def decode(features, mean_landmarks):
        hidden = feature_net(features, training=False)
        x = hidden
        for i in range(len(config.landmark_hidden)):
            x = landmark_net.get_layer(f"fc{i}")(x)
        offsets = landmark_net.get_layer("to_pixels")(landmark_net.get_layer("offsets_xy")(
            landmark_net.get_layer("offsets")(x)))
        # The model's Add(mean, offsets), the mean broadcast over the batch.
        return {"landmarks": mean_landmarks + offsets, "texture": texture_net(hidden, training=False)}

    return _convert(decode, float16=True)


def verify_export(packed_dir: str | Path, model, encoder, mean_landmarks: np.ndarray, batch: int = 3,
                  seed: int = 0) -> dict[str, float]:
    """Runs both files with LiteRT against TensorFlow on random inputs; returns the largest
    differences and raises ValueError naming the file when one is over its bound (features and
    descriptor 1e-2: the encoder's float16 weights move them by ~2e-3; texture 1e-4, landmarks
    1e-3 px: the decoder's float16 weights are the packed model's own)."""
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
    bounds = {"features": (ENCODER_FILE, 1e-2), "descriptor": (ENCODER_FILE, 1e-2),
              "landmarks": (DECODER_FILE, 1e-3), "texture": (DECODER_FILE, 1e-4)}
    for name, (file, bound) in bounds.items():
        if not diffs[name] <= bound:
            raise ValueError(f"{Path(packed_dir) / file}: {name} differ from TensorFlow's by {diffs[name]:.3g} "
                             f"(> {bound}): the export is wrong")
    return diffs


def strip_weights(tflite: bytes, weights: dict[str, np.ndarray]) -> tuple[bytes, list[dict]]:
    """Empties the buffers of ``tflite`` that hold one of ``weights`` (float16 arrays by name, up
    to an axis permutation); returns the stripped bytes and, per emptied buffer, ``{"buffer",
    "weight", "perm"}`` (``weights[weight].transpose(perm)`` refills it). Raises ValueError when a
    weight of 100,000 values or more is not found (the file would hold a second copy of it); a
    smaller one the converter folded (the landmark layer's scale goes into its weights) stays in
    the file, a few hundred KB at most."""
    import itertools

    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    mapping, found = [], set()
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
                found.add(name)
                buffer.data = None
                break
    missing = [n for n, w in weights.items() if w.size >= 100_000 and n not in found]
    if missing:
        raise ValueError(f"decoder.tflite: weights {missing} not found among its float16 buffers")
    builder = __import__("flatbuffers").Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), mapping


def write_tflite(packed_dir: str | Path, model, model_config: dict, encoder, encoder_float16: bool = True
                 ) -> list[Path]:
    """Writes ``encoder.tflite``, ``decoder.tflite`` (without the weights ``weights.npz`` holds)
    and ``litert.json`` (the buffer map and the SHA-256 of the three files) into a packed model's
    folder ``packed_dir``, atomically, the map last."""
    import json

    from normface.serving import packed

    packed_dir = Path(packed_dir)
    with np.load(packed_dir / packed.WEIGHTS_FILE) as arrays:
        weights = {k: arrays[k] for k in arrays.files}
    decoder, mapping = strip_weights(decoder_tflite(model, model_config), weights)
    io_utils.write_bytes_atomic(packed_dir / ENCODER_FILE, encoder_tflite(encoder, encoder_float16))
    io_utils.write_bytes_atomic(packed_dir / DECODER_FILE, decoder)
    files = {name: packed.file_digest(packed_dir / name) for name in (ENCODER_FILE, DECODER_FILE, packed.WEIGHTS_FILE)}
    io_utils.write_bytes_atomic(packed_dir / WEIGHT_MAP_FILE,
                                json.dumps({"decoder_weights": mapping, "files": files}, indent=1).encode())
    return [packed_dir / n for n in (ENCODER_FILE, DECODER_FILE, WEIGHT_MAP_FILE)]

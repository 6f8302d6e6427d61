"""The shipped model's networks on LiteRT: photo-to-face inference without TensorFlow.

:class:`LiteRTBackend` runs what :class:`normface.serving.normalizer.FaceNormalizer`'s TensorFlow
function runs, for a packed model that holds the LiteRT files of
:mod:`normface.serving.litert_export` (the encoder, the decoder's head and bodies): face chips (NumPy,
:mod:`normface.faces.chip_geometry`), the encoder, the decoder, the spline warp of each texture
onto its landmarks (NumPy, :mod:`normface.warp.numpy_warp`), the output's chips and encoding, and
the confidence. Outputs equal the TensorFlow path's within a grey level and 0.05 px
(``tests/serving/test_litert_backend.py``).

LiteRT interpreters are not thread-safe: a call to :meth:`LiteRTBackend.run` borrows a set of
interpreters (:class:`LiteRTNetworks`) no other call is using, from a pool that grows to the
number of calls running at once (the HTTP server's batch queue runs one at a time on whichever
worker thread is free, so it keeps one set instead of one per thread, each ~100 MB and a second
to make).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from normface.faces.chip_geometry import extract_chips
from normface.serving import litert_export
from normface.serving.litert_export import (DECODER_BODY_FILES, DECODER_FILES, DECODER_HEAD_FILE, ENCODER_FILE,
                                            LITERT_FILES, WEIGHT_MAP_FILE)
from normface.serving.packed import WEIGHTS_FILE
from normface.utils.pictures import to_uint8
from normface.utils.quiet import hidden_native_stderr
from normface.warp.numpy_warp import LANDMARK_REGULARIZATION, warp_to_landmarks

# Threads per interpreter: the CLI overlaps detection on one core with the networks on the other.
DEFAULT_THREADS = int(os.environ.get("NORMFACE_LITERT_THREADS", "1"))


def litert_available() -> bool:
    """Whether LiteRT (``ai-edge-litert``) is installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def has_tflite(packed_dir: str | os.PathLike) -> bool:
    """Whether a (packed) model folder holds the LiteRT files (the networks and the weight map)."""
    packed_dir = Path(packed_dir)
    return packed_dir.is_dir() and all((packed_dir / f).is_file() for f in LITERT_FILES)


def decoder_bytes(packed_dir: str | os.PathLike) -> dict[str, bytes]:
    """The decoder files (:data:`litert_export.DECODER_FILES`) by name, with their weights put
    back from ``weights.npz`` (:func:`litert_export.strip_weights` emptied them), after checking
    every file against ``litert.json``'s SHA-256: a model re-packed without re-exporting its
    LiteRT files, or a damaged file, is a ModelFileError naming the file."""
    import json

    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from normface.serving import packed

    packed_dir = Path(packed_dir)
    map_path = packed_dir / WEIGHT_MAP_FILE
    try:
        info = json.loads(map_path.read_text())
        mapping, files = info["decoder_weights"], info["files"]
        if not isinstance(mapping, dict) or set(mapping) != set(DECODER_FILES):
            raise ValueError(f"decoder_weights should map {', '.join(DECODER_FILES)}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise packed.ModelFileError(f"{map_path}: not a readable LiteRT weight map ({err})") from err
    packed.verify_checksums(packed_dir, files)
    out = {}
    with np.load(packed_dir / packed.WEIGHTS_FILE) as arrays:
        for name in DECODER_FILES:
            model = schema.ModelT.InitFromObj(schema.Model.GetRootAs((packed_dir / name).read_bytes(), 0))
            size = 1 << 20
            for entry in mapping[name]:
                data = np.ascontiguousarray(arrays[entry["weight"]].astype(np.float16).transpose(entry["perm"]))
                model.buffers[entry["buffer"]].data = data.view(np.uint8).ravel()
                size += data.nbytes
            builder = flatbuffers.Builder(size)  # one allocation: growing it copies the weights each time
            builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
            out[name] = bytes(builder.Output())
    return out


BACKENDS = ("auto", "litert", "tensorflow")


def litert_unavailable(path: str | os.PathLike) -> str | None:
    """Why the model at ``path`` cannot run on LiteRT (a one-line reason), or None when it can."""
    if not has_tflite(path):
        return (f"{path} has no LiteRT files ({', '.join(LITERT_FILES)}: only packed models shipped with "
                "them do)")
    if not litert_available():
        return "LiteRT (ai-edge-litert) is not installed"
    if _stale(Path(path)):
        return (f"{Path(path) / WEIGHT_MAP_FILE} was written for other weights than its {WEIGHTS_FILE} (re-packed "
                "without experiments/ship_model.py?)")
    return None


def _stale(packed_dir: Path) -> bool:
    """Whether ``litert.json`` records another ``weights.npz`` than the one beside it (a damaged map
    is not stale: loading it names the file)."""
    import json

    from normface.serving import packed

    try:
        want = json.loads((packed_dir / WEIGHT_MAP_FILE).read_text())["files"][WEIGHTS_FILE]
        return packed.file_digest(packed_dir / WEIGHTS_FILE) != {"bytes": want["bytes"], "sha256": want["sha256"]}
    except (OSError, ValueError, KeyError, TypeError):
        return False


def choose_backend(path: str | os.PathLike, backend: str = "auto") -> str:
    """``"litert"`` or ``"tensorflow"`` for the model at ``path`` (see
    :meth:`FaceNormalizer.from_pretrained`). ValueError for an unknown ``backend``, or for
    ``"litert"`` when the model cannot run on it (the message says why)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "tensorflow":
        return backend
    reason = litert_unavailable(path)
    if reason is None:
        return "litert"
    if backend == "litert":
        raise ValueError(f"backend='litert': {reason}")
    return "tensorflow"


class _Interpreter:
    """One ``.tflite`` file: inputs and outputs addressed by their order (see
    :mod:`litert_export`); batches of any size: in chunks of the file's fixed batch (the last one
    padded), or, for a file of fully connected layers (``resizable``), resized to the batch."""

    def __init__(self, path: Path, num_threads: int, content: bytes | None = None, resizable: bool = False):
        from ai_edge_litert.interpreter import Interpreter

        if content is None and not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        try:
            with hidden_native_stderr():  # LiteRT's C++ "INFO: Created TensorFlow Lite XNNPACK delegate" line
                if content is None:
                    self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
                else:
                    self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{path}: not a loadable .tflite model, corrupt or partial? ({err})") from err
        self.path = path
        self.inputs = self.interpreter.get_input_details()
        # Outputs come out of the converter named Identity, Identity_1, ... in the sorted order of
        # the exported dict's keys.
        self.outputs = sorted(self.interpreter.get_output_details(),
                              key=lambda d: int(d["name"].rsplit("_", 1)[1]) if "_" in d["name"] else 0)
        signature = self.inputs[0].get("shape_signature", self.inputs[0]["shape"])
        self._batch = int(self.inputs[0]["shape"][0])
        self.fixed_batch = None if resizable or int(signature[0]) < 0 else self._batch

    def _run(self, batched: np.ndarray) -> list[np.ndarray]:
        if self.fixed_batch is None and len(batched) != self._batch:
            self.interpreter.resize_tensor_input(self.inputs[0]["index"], list(batched.shape))
            self.interpreter.allocate_tensors()
            self._batch = len(batched)
        self.interpreter.set_tensor(self.inputs[0]["index"], np.ascontiguousarray(batched, np.float32))
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_tensor(d["index"])) for d in self.outputs]

    def __call__(self, batched: np.ndarray) -> list[np.ndarray]:
        """Runs ``batched`` (``[n, ...]``, the file's one input) -> its outputs, in key order."""
        if self.fixed_batch is None:
            return self._run(batched)
        step, outs = self.fixed_batch, []
        for start in range(0, len(batched), step):
            chunk = batched[start:start + step]
            pad = step - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            outs.append([o[:step - pad] for o in self._run(chunk)])
        return [np.concatenate(parts) for parts in zip(*outs)]


class LiteRTNetworks:
    """The encoder and the decoder of one packed model on LiteRT (one thread's interpreters).

    ``encode(chips [b, 150, 150, 3] float32 in [0, 255]) -> (features [b, F], descriptor [b, D])``;
    ``decode(features [b, F]) -> (landmarks [b, 68, 2] (x, y), texture [b, S, S, 3])``.
    """

    def __init__(self, packed_dir: str | os.PathLike, mean_landmarks: np.ndarray, num_threads: int = DEFAULT_THREADS,
                 decoder: dict[str, bytes] | None = None):
        packed_dir = Path(packed_dir)
        self.encoder = _Interpreter(packed_dir / ENCODER_FILE, num_threads)
        self._decoder_bytes = decoder_bytes(packed_dir) if decoder is None else decoder  # alive as long as they
        self.head = _Interpreter(packed_dir / DECODER_HEAD_FILE, num_threads, self._decoder_bytes[DECODER_HEAD_FILE],
                                 resizable=True)
        # Largest batch first: a batch runs in chunks of it, the rest at the next size down (1).
        self.bodies = []
        for batch, name in sorted(DECODER_BODY_FILES.items(), reverse=True):
            body = _Interpreter(packed_dir / name, num_threads, self._decoder_bytes[name])
            if body.fixed_batch != batch or len(body.inputs[0]["shape"]) != 4:
                raise ValueError(f"{body.path}: expected input grid [{batch}, g, g, C], got {body.inputs[0]['shape']}")
            self.bodies.append(body)
        self.mean = np.asarray(mean_landmarks, np.float32)[None]

    def encode(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        descriptor, features = self.encoder(chips)  # outputs in key order: descriptor, features
        return features, descriptor

    def decode(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(features):
            texture = self.bodies[-1].outputs[0]["shape"][1:]
            return np.zeros((0, *self.mean.shape[1:]), np.float32), np.zeros((0, *texture), np.float32)
        grid, offsets = self.head(features)  # outputs in key order: grid, offsets
        # The model's Add(mean, offsets) in float32, the mean broadcast over the batch.
        landmarks = self.mean + offsets.reshape(len(offsets), -1, 2)
        grid = grid.reshape(len(grid), *self.bodies[0].inputs[0]["shape"][1:])
        textures, start = [], 0
        for body in self.bodies:
            stop = start + (len(grid) - start) // body.fixed_batch * body.fixed_batch
            if stop > start:
                textures.extend(body(grid[start:stop]))
            start = stop
        return landmarks, np.concatenate(textures)


class LiteRTBackend:
    """:class:`FaceNormalizer`'s networks (and warp) for a packed model with LiteRT files.

    Args:
      packed_dir: the packed model folder (``encoder.tflite``, ``decoder.tflite``).
      metadata: its :class:`~normface.serving.export_format.ExportMetadata` (model config, mean
        landmarks, chip parameters).
      num_threads: interpreter threads.
    """

    def __init__(self, packed_dir: str | os.PathLike, metadata, num_threads: int = DEFAULT_THREADS):
        self.packed_dir = Path(packed_dir)
        self.metadata = metadata
        config = metadata.model_config
        reason = litert_export.not_exportable(config)
        if reason:
            raise ValueError(f"{self.packed_dir}: {reason}")
        self.mean_landmarks = np.asarray(metadata.mean_landmarks, np.float32)
        self.warp_order = int(config.get("warp_order", 1))
        self.boundary_points = int(config.get("warp_boundary_points", 4))
        self.resampling = str(config.get("warp_resampling", "bilinear"))
        chip = metadata.chip or {}
        self.chip_size, self.chip_padding = int(chip.get("size", 150)), float(chip.get("padding", 0.25))
        self.num_threads = num_threads
        self._decoder = decoder_bytes(self.packed_dir)  # once; every interpreter reads it
        self._lock = threading.Lock()
        self._idle: list[LiteRTNetworks] = [self._make()]  # load now: a damaged file fails here, naming itself
        self.sets = 1  # interpreter sets made so far (one per concurrent call)

    def _make(self) -> LiteRTNetworks:
        return LiteRTNetworks(self.packed_dir, self.mean_landmarks, self.num_threads, self._decoder)

    @contextlib.contextmanager
    def networks(self) -> Iterator[LiteRTNetworks]:
        """A set of interpreters (encoder, decoder head and bodies) for this call alone (``with
        backend.networks() as nets``)."""
        with self._lock:
            nets = self._idle.pop() if self._idle else None
            if nets is None:
                self.sets += 1
        if nets is None:
            nets = self._make()
        try:
            yield nets
        finally:
            with self._lock:
                self._idle.append(nets)

    def warp(self, textures: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The model's SplineWarp in NumPy: ``[b, S, S, 3]`` textures moved from the mean landmarks
        onto ``[b, 68, 2]`` landmarks, clipped to [0, 1] (float32)."""
        out = np.empty_like(textures, dtype=np.float32)
        for i, (texture, lms) in enumerate(zip(textures, landmarks)):
            warped, _ = warp_to_landmarks(texture.astype(np.float32), self.mean_landmarks, lms, self.warp_order,
                                          LANDMARK_REGULARIZATION, self.boundary_points, self.resampling)
            out[i] = np.clip(warped, 0.0, 1.0)
        return out

    def _decode(self, nets: LiteRTNetworks, features: np.ndarray) -> dict[str, np.ndarray]:
        landmarks, texture = nets.decode(features)
        image = self.warp(texture, landmarks)
        _, descriptor = nets.encode(extract_chips(image * 255.0, landmarks, self.chip_size, self.chip_padding))
        return {"image": to_uint8(image), "landmarks": landmarks, "texture": to_uint8(np.clip(texture, 0.0, 1.0)),
                "output_descriptor": descriptor}

    def decode(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """``[b, F]`` features -> the decoded faces: uint8 ``image`` and ``texture``, ``landmarks``
        and the dlib ``output_descriptor`` of each output (what :mod:`normface.serving.merge` needs
        of the decoder and the encoder; the TensorFlow path runs ``normalizer.model`` there)."""
        with self.networks() as nets:
            return self._decode(nets, np.asarray(features, np.float32))

    def run(self, aligned: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
        """``[b, S, S, 3]`` aligned faces (0-255) + ``[b, 68, 2]`` landmarks -> the dict of
        :meth:`FaceNormalizer.normalize_aligned` (uint8 image and texture)."""
        aligned = np.asarray(aligned, np.float32)
        with self.networks() as nets:
            features, in_desc = nets.encode(extract_chips(aligned, landmarks, self.chip_size, self.chip_padding))
            out = self._decode(nets, features)
        return {"features": features, **out, "confidence": np.linalg.norm(out["output_descriptor"] - in_desc, axis=-1),
                "input_descriptor": in_desc}

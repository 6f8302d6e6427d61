"""Frozen identity encoders (paper Sec. 3: the face-recognition features the decoder inverts).

``get_encoder()`` returns dlib's face ResNet as a differentiable Keras model (256-D features,
128-D descriptor); ``resolve(name)`` adds the chip parameters and the embedding functions the
binaries need (:mod:`.registry`); :mod:`.face_encoding` goes from aligned faces to features;
:mod:`.similarity` holds the identity metrics and the same-person threshold; :mod:`.verification`
dlib's LFW protocol.
"""

from normface.encoders.base import EncoderOutput, IdentityEncoder, KerasModelEncoder
from normface.encoders.registry import (
    DEFAULT_ENCODER, ResolvedEncoder, available_encoders, check_name, get_encoder, register_encoder, resolve,
)

__all__ = [
    "DEFAULT_ENCODER",
    "EncoderOutput",
    "IdentityEncoder",
    "KerasModelEncoder",
    "ResolvedEncoder",
    "available_encoders",
    "check_name",
    "get_encoder",
    "register_encoder",
    "resolve",
]

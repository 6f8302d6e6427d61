"""Frozen identity encoders (paper Sec. 3: the face-recognition features the decoder inverts).

``get_encoder()`` returns dlib's face ResNet as a differentiable Keras model (256-D features,
128-D descriptor); ``similarity`` holds the identity loss / verification metrics.
"""

from normface.encoders.base import EncoderOutput, IdentityEncoder, KerasModelEncoder
from normface.encoders.registry import DEFAULT_ENCODER, available_encoders, get_encoder, register_encoder

__all__ = [
    "DEFAULT_ENCODER",
    "EncoderOutput",
    "IdentityEncoder",
    "KerasModelEncoder",
    "available_encoders",
    "get_encoder",
    "register_encoder",
]

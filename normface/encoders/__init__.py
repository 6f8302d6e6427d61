"""Frozen identity encoders (paper Sec. 3: the face-recognition features the decoder inverts).

``get_encoder()`` returns dlib's face ResNet as a differentiable Keras model (256-D features,
128-D descriptor); ``resolve(name)`` adds the chip parameters and the embedding functions the
binaries need (:mod:`.registry`); :mod:`.face_encoding` goes from aligned faces to features;
:mod:`.similarity` holds the identity metrics, :mod:`.threshold` the same-person threshold;
:mod:`.verification` dlib's LFW protocol.
"""

import importlib

# name -> its module; loaded on first use, so a TensorFlow-free submodule (``threshold``) imports
# without Keras (issue 31: the LiteRT path).
_EXPORTS = {"EncoderOutput": "base", "IdentityEncoder": "base", "KerasModelEncoder": "base",
            **{name: "registry" for name in ("DEFAULT_ENCODER", "ResolvedEncoder", "available_encoders",
                                             "check_name", "get_encoder", "register_encoder", "resolve")}}

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


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"normface.encoders.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'normface.encoders' has no attribute {name!r}")

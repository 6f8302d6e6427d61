"""The normalizer network (paper Sec. 3): config, decoders and the full model with the warp."""

from normface.models.config import ModelConfig
from normface.models.normalizer import IMAGE, LANDMARKS, TEXTURE, WARP, Normalizer, build_normalizer, from_model

__all__ = ["IMAGE", "LANDMARKS", "TEXTURE", "WARP", "ModelConfig", "Normalizer", "build_normalizer", "from_model"]

"""Model configuration: every size and switch of the normalizer network (paper Sec. 3.2, 7.2).

One dataclass, so the training binary's flags, the checkpoint, the export metadata and the model
card all describe a model the same way (``to_dict`` / ``from_dict`` round-trip through JSON).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from normface.utils import dataclass_io
from normface.warp.numpy_warp import RESAMPLINGS

TEXTURE_DECODERS = ("cnn", "fc")
# How the texture CNN doubles its grid: stride-2 transposed convolutions (the paper's; their uneven
# kernel overlap leaves a checkerboard), or a bilinear resize followed by a 3x3 convolution
# (Odena et al., "Deconvolution and Checkerboard Artifacts", 2016: no uneven overlap).
UPSAMPLINGS = ("transpose", "resize")
# How the warp samples the texture (the NumPy warp holds the list: it imports no TensorFlow).
WARP_RESAMPLINGS = RESAMPLINGS
# The CNN texture decoder starts from a (size/16) x (size/16) grid and doubles it 4 times.
UPSAMPLING_STAGES = 4
GRID_DIVISOR = 2**UPSAMPLING_STAGES


@dataclasses.dataclass
class ModelConfig:
    """Sizes and variants of the decoder network.

    output_size: side of the square output image and texture (divisible by 16; 64, 128, 224...).
    feature_dim: size of the frozen encoder features (256 for dlib's face ResNet).
    feature_hidden: widths of the feature MLP (FC + ReLU each; the paper uses one layer).
    landmark_hidden: hidden widths of the landmark MLP (ReLU), before the 136-D linear output.
    texture_decoder: ``cnn`` (paper default) or ``fc`` (one linear map to all pixels, Fig. 9).
    plain_cnn: ablation of Fig. 10: the CNN predicts the image directly, no texture and no warp.
    grid_channels: channels of the (size/16)^2 grid the CNN starts from (256 in the paper).
    channels: output channels of the 4 upsampling stages.
    upsampling: ``transpose`` (stride-2, kernel-5 transposed convolutions, the paper's) or
      ``resize`` (bilinear x2, then a 3x3 convolution: no checkerboard; issue 28).
    refine_channels: widths of a residual refiner at full size after the last stage (3x3
      convolutions dilated 1, 2, 4, ..., then a 3x3 convolution to an RGB correction that starts at
      zero; issue 28: capacity where the detail is); empty (the paper's): none.
    num_landmarks: landmarks predicted (68, iBUG/dlib order).
    warp_order, warp_boundary_points: the spline warp's settings (paper: order 1; 4 per edge).
    warp_resampling: how the warp samples the texture: ``bilinear`` (the paper's) or ``bicubic``
      (Catmull-Rom: keeps about 1.5x the face-box Laplacian variance of decoded textures; issue 28).
    dtype_policy: Keras dtype policy of the decoder layers (``float32``, ``mixed_float16``,
      ``mixed_bfloat16``); outputs, landmarks and the warp always stay float32.
    """

    output_size: int = 128
    feature_dim: int = 256
    feature_hidden: tuple[int, ...] = (1024,)
    landmark_hidden: tuple[int, ...] = (256,)
    texture_decoder: str = "cnn"
    plain_cnn: bool = False
    grid_channels: int = 256
    channels: tuple[int, ...] = (128, 64, 32, 32)
    upsampling: str = "transpose"
    refine_channels: tuple[int, ...] = ()
    num_landmarks: int = 68
    warp_order: int = 1
    warp_boundary_points: int = 4
    warp_resampling: str = "bilinear"
    dtype_policy: str = "float32"

    def __post_init__(self):
        self.feature_hidden = tuple(int(v) for v in self.feature_hidden)
        self.landmark_hidden = tuple(int(v) for v in self.landmark_hidden)
        self.channels = tuple(int(v) for v in self.channels)
        self.refine_channels = tuple(int(v) for v in self.refine_channels)
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the bad field."""
        if self.output_size < GRID_DIVISOR or self.output_size % GRID_DIVISOR:
            raise ValueError(
                f"output_size must be a positive multiple of {GRID_DIVISOR} (the texture CNN starts "
                f"from a size/{GRID_DIVISOR} grid), got {self.output_size}"
            )
        if self.feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")
        if not self.feature_hidden or min(self.feature_hidden) < 1:
            raise ValueError(f"feature_hidden needs at least one positive width, got {self.feature_hidden}")
        if self.landmark_hidden and min(self.landmark_hidden) < 1:
            raise ValueError(f"landmark_hidden widths must be positive, got {self.landmark_hidden}")
        if self.texture_decoder not in TEXTURE_DECODERS:
            raise ValueError(f"texture_decoder must be one of {TEXTURE_DECODERS}, got {self.texture_decoder!r}")
        if self.plain_cnn and self.texture_decoder != "cnn":
            raise ValueError("plain_cnn is an ablation of the CNN decoder: use texture_decoder='cnn'")
        if len(self.channels) != UPSAMPLING_STAGES or min(self.channels) < 1:
            raise ValueError(f"channels must list {UPSAMPLING_STAGES} positive widths, got {self.channels}")
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {self.upsampling!r}")
        if self.refine_channels and min(self.refine_channels) < 1:
            raise ValueError(f"refine_channels widths must be positive, got {self.refine_channels}")
        if self.refine_channels and self.texture_decoder != "cnn":
            raise ValueError("refine_channels refines the CNN decoder's texture: use texture_decoder='cnn'")
        if self.warp_resampling not in WARP_RESAMPLINGS:
            raise ValueError(f"warp_resampling must be one of {WARP_RESAMPLINGS}, got {self.warp_resampling!r}")
        if self.grid_channels < 1:
            raise ValueError(f"grid_channels must be >= 1, got {self.grid_channels}")
        if self.num_landmarks < 3:
            raise ValueError(f"num_landmarks must be >= 3, got {self.num_landmarks}")
        if self.dtype_policy not in ("float32", "mixed_float16", "mixed_bfloat16"):
            raise ValueError(
                f"dtype_policy must be float32, mixed_float16 or mixed_bfloat16, got {self.dtype_policy!r}"
            )

    @property
    def grid_size(self) -> int:
        """Side of the CNN's starting grid (14 for 224x224, as in the paper)."""
        return self.output_size // GRID_DIVISOR

    def to_dict(self) -> dict[str, Any]:
        return dataclass_io.to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return dataclass_io.from_dict(cls, data)

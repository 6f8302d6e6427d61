"""The canonical face alignment template: the one definition of "an aligned face".

Paper Sec. 6: faces are aligned with roll removed, a fixed distance between the eyes and a fixed
eye height, in a square crop (224x224 with 55 px between the eyes). Every aligned image, every
training record and every exported model stores the template it was made with, so all stages
agree on the frame. Sizes other than 224 scale the template (128 -> ~31.4 px between the eyes).

Eye centres are the means of each eye's six 68-point landmarks (iBUG/dlib indices 36-41 and
42-47). Points are (x, y) pixels.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from normface.utils import dataclass_io

REFERENCE_SIZE = 224
REFERENCE_EYE_DISTANCE = 55.0
# Height of the eye line as a fraction of the crop: leaves room for the chin below (~1.9 eye
# distances) and for forehead and hair above, as in the paper's figures. A reasoned default
# (the paper does not state it).
DEFAULT_EYE_HEIGHT = 0.40
IMAGE_LEFT_EYE = slice(36, 42)   # the subject's right eye, on the image's left
IMAGE_RIGHT_EYE = slice(42, 48)
NUM_LANDMARKS = 68


@dataclasses.dataclass(frozen=True)
class AlignmentTemplate:
    """Where the eyes go in a ``size`` x ``size`` aligned crop."""

    size: int = REFERENCE_SIZE
    eye_distance: float = REFERENCE_EYE_DISTANCE
    eye_height: float = DEFAULT_EYE_HEIGHT

    def __post_init__(self):
        if self.size < 8:
            raise ValueError(f"template size must be >= 8 pixels, got {self.size}")
        if not 0 < self.eye_distance < self.size:
            raise ValueError(f"eye_distance must be in (0, size), got {self.eye_distance}")
        if not 0 < self.eye_height < 1:
            raise ValueError(f"eye_height must be a fraction in (0, 1), got {self.eye_height}")

    @classmethod
    def for_size(cls, size: int, eye_height: float = DEFAULT_EYE_HEIGHT) -> "AlignmentTemplate":
        """The paper's template (55 px between the eyes at 224) scaled to ``size``."""
        return cls(size=int(size), eye_distance=REFERENCE_EYE_DISTANCE * size / REFERENCE_SIZE,
                   eye_height=eye_height)

    def scaled(self, size: int) -> "AlignmentTemplate":
        """This template for a ``size`` resampling of its crops (the eyes keep their place)."""
        return dataclasses.replace(self, size=int(size), eye_distance=self.eye_distance * size / self.size)

    def eye_centers(self) -> np.ndarray:
        """``[2, 2]`` (x, y) targets of the image-left and image-right eye centres."""
        cx, cy = (self.size - 1) / 2.0, self.eye_height * self.size
        half = self.eye_distance / 2.0
        return np.array([[cx - half, cy], [cx + half, cy]])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AlignmentTemplate":
        return dataclass_io.from_dict(cls, data)


def eye_centers(landmarks: np.ndarray) -> np.ndarray:
    """``[..., 68, 2]`` landmarks -> ``[..., 2, 2]`` image-left and image-right eye centres."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected [..., 68, 2] landmarks, got shape {landmarks.shape}")
    return np.stack(
        [landmarks[..., IMAGE_LEFT_EYE, :].mean(-2), landmarks[..., IMAGE_RIGHT_EYE, :].mean(-2)], axis=-2
    )


def similarity_to_template(landmarks: np.ndarray, template: AlignmentTemplate) -> np.ndarray:
    """The ``[2, 3]`` similarity transform (rotation, uniform scale, shift) that maps the eye
    centres of ``landmarks`` ``[68, 2]`` onto the template's; apply as ``A @ [x, y, 1]``."""
    src = eye_centers(landmarks)
    dst = template.eye_centers()
    src_vec, dst_vec = src[1] - src[0], dst[1] - dst[0]
    norm = float(np.hypot(*src_vec))
    if norm < 1e-6:
        raise ValueError("eye centres coincide: cannot align these landmarks")
    # Complex-number form: z -> a z + b with a = dst_vec / src_vec.
    a = complex(*dst_vec) / complex(*src_vec)
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])
    shift = dst[0] - rot @ src[0]
    return np.concatenate([rot, shift[:, None]], axis=1)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Applies a ``[2, 3]`` affine map to ``[..., 2]`` (x, y) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_image(
    image: np.ndarray, landmarks: np.ndarray, template: AlignmentTemplate
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligns a photo to the template.

    Args:
      image: ``[h, w, 3]`` uint8 RGB photo.
      landmarks: ``[68, 2]`` (x, y) landmarks in the photo.
      template: the target frame.

    Returns:
      ``(aligned [size, size, 3] uint8, aligned_landmarks [68, 2], matrix [2, 3])`` where
      ``matrix`` maps photo (x, y) to aligned (x, y). Pixels outside the photo repeat its border.
    """
    import cv2

    matrix = similarity_to_template(landmarks, template)
    scale = float(np.hypot(*matrix[:, 0]))
    src = np.asarray(image)
    sample = matrix
    if scale < 0.5:
        # Shrinking by more than 2x would alias with bilinear sampling: area-average the photo
        # down to twice the target scale first (also far cheaper than blurring a huge photo).
        factor = 2.0 * scale
        h, w = src.shape[:2]
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        src = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
        # cv2.resize keeps pixel centres aligned: small = f * (x + 0.5) - 0.5, per axis.
        f = np.array([size[0] / w, size[1] / h])
        to_original = np.diag(1.0 / f)
        offset = (0.5 / f - 0.5)  # original = small / f + offset
        sample = np.concatenate([matrix[:, :2] @ to_original, (matrix[:, :2] @ offset + matrix[:, 2])[:, None]],
                                axis=1)
    aligned = cv2.warpAffine(
        src, sample, (template.size, template.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return aligned, apply_affine(landmarks, matrix), matrix

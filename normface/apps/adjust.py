"""Automatic white balance and exposure from the normalized face (paper Sec. 7.4, Appendix C).

The normalized face is an evenly lit "ground truth" of the person's face colour. Averaging a
central box of the aligned input face and of the normalized face gives two mean face colours;
the whole photo is then shifted per channel so the input's face mean lands on the normalized
one. The shift is piecewise linear in YCrCb with knots at 0, the input face mean (mapped to the
normalized mean) and 255, so black and white stay put and the map is monotonic (no tone
reversals). YCrCb separates exposure (Y) from white balance (Cr, Cb), which lets greyscale
photos get the exposure shift alone (a white balance would tint them).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from normface.faces import alignment
from normface.faces.alignment import AlignmentTemplate
from normface.faces.detection import as_rgb_uint8

if TYPE_CHECKING:
    from normface.serving.normalizer import FaceNormalizer, Result

# A photo is greyscale when its channels differ by at most GREYSCALE_TOLERANCE (0-255; JPEG
# noise) on at least GREYSCALE_SHARE of its pixels.
GREYSCALE_TOLERANCE = 2
GREYSCALE_SHARE = 0.99

# Central box of the aligned face that is averaged: 1 IOD wide, from the eyes to the mouth, so
# it holds skin and features but no hair or background (the paper's "central pixels").
BOX_WIDTH_IOD = 1.0
BOX_TOP_IOD = 0.1
BOX_BOTTOM_IOD = 1.0


def face_box(template: AlignmentTemplate) -> tuple[slice, slice]:
    """(rows, cols) of the central face box in an aligned image."""
    eyes = template.eye_centers()
    cx, cy = eyes.mean(0)
    iod = template.eye_distance
    rows = slice(int(round(cy + BOX_TOP_IOD * iod)), int(round(cy + BOX_BOTTOM_IOD * iod)) + 1)
    cols = slice(int(round(cx - 0.5 * BOX_WIDTH_IOD * iod)), int(round(cx + 0.5 * BOX_WIDTH_IOD * iod)) + 1)
    return rows, cols


def to_ycrcb(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` RGB (0-255 floats or uint8) -> YCrCb floats (full range, as OpenCV)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([y, (r - y) * 0.713 + 128.0, (b - y) * 0.564 + 128.0], axis=-1)


def to_rgb(ycrcb: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_ycrcb`."""
    y, cr, cb = ycrcb[..., 0], ycrcb[..., 1] - 128.0, ycrcb[..., 2] - 128.0
    r = y + cr / 0.713
    b = y + cb / 0.564
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.stack([r, g, b], axis=-1)


def mean_face_color(aligned: np.ndarray, template: AlignmentTemplate) -> np.ndarray:
    """Mean YCrCb colour ``[3]`` of the central face box of an aligned ``[s, s, 3]`` image."""
    if aligned.shape[:2] != (template.size, template.size):
        raise ValueError(f"aligned image must be {template.size}x{template.size}, got {aligned.shape[:2]}")
    rows, cols = face_box(template)
    return to_ycrcb(aligned[rows, cols]).reshape(-1, 3).mean(0)


def shift_curve(values: np.ndarray, source: float, target: float, top: float = 255.0) -> np.ndarray:
    """Piecewise-linear map with knots (0, 0), (source, target), (top, top), applied to ``values``.

    Monotonic whenever 0 < source < top and 0 <= target <= top; the identity when source == target.
    """
    source = float(np.clip(source, 1e-3, top - 1e-3))
    target = float(np.clip(target, 0.0, top))
    return np.interp(values, [0.0, source, top], [0.0, target, top])


def adjust_photo(photo: np.ndarray, input_face_mean: np.ndarray, target_face_mean: np.ndarray) -> np.ndarray:
    """Shifts ``photo`` ``[h, w, 3]`` (uint8 RGB) so its face mean (YCrCb) becomes the target's."""
    if np.ndim(photo) != 3 or np.shape(photo)[-1] != 3:
        raise ValueError(f"adjust_photo: photo must be [h, w, 3] RGB, got shape {np.shape(photo)}")
    ycc = to_ycrcb(photo)
    out = np.stack([shift_curve(ycc[..., c], input_face_mean[c], target_face_mean[c]) for c in range(3)], -1)
    return np.clip(np.rint(to_rgb(out)), 0, 255).astype(np.uint8)


def is_greyscale(photo: np.ndarray, tolerance: float = GREYSCALE_TOLERANCE, share: float = GREYSCALE_SHARE) -> bool:
    """True when the channels of ``photo`` (``[h, w, 3]`` on a 0-255 scale, or ``[h, w]`` /
    ``[h, w, 1]``) agree within ``tolerance`` on at least ``share`` of the pixels (so a coloured
    logo or date stamp on a black-and-white photo does not make it colour)."""
    photo = np.asarray(photo, dtype=np.float64)
    if photo.size == 0:
        raise ValueError("is_greyscale: empty image")
    if photo.ndim == 2 or photo.shape[-1] == 1:
        return True
    spread = photo[..., :3].max(axis=-1) - photo[..., :3].min(axis=-1)
    return bool(np.mean(spread <= tolerance) >= share)


def exposure_only(input_face_mean: np.ndarray, target_face_mean: np.ndarray) -> np.ndarray:
    """The target with the input's chroma: :func:`adjust_photo` then changes Y alone."""
    return np.array([target_face_mean[0], input_face_mean[1], input_face_mean[2]], dtype=np.float64)

# Aligned size at which face colours are averaged (the box of ``face_box``).
COLOR_TEMPLATE_SIZE = 128


def face_color(photo: np.ndarray, landmarks: np.ndarray,
               template: alignment.AlignmentTemplate | None = None) -> np.ndarray:
    """Mean YCrCb colour ``[3]`` of the central face box of ``photo`` (aligned by its landmarks)."""
    template = template or alignment.AlignmentTemplate.for_size(COLOR_TEMPLATE_SIZE)
    aligned, _, _ = alignment.align_image(photo, landmarks, template)
    return mean_face_color(aligned, template)


def correct_to_reference(photo: np.ndarray, landmarks: np.ndarray, target: np.ndarray,
                         template: alignment.AlignmentTemplate | None = None) -> np.ndarray:
    """Appendix C: shifts ``photo`` so its face colour becomes ``target`` (YCrCb ``[3]``)."""
    return adjust_photo(photo, face_color(photo, landmarks, template), np.asarray(target, dtype=np.float64))


@dataclasses.dataclass(frozen=True)
class Adjustment:
    """What :func:`auto_adjust` did to one photo.

    image: the adjusted ``[h, w, 3]`` uint8 photo. result: the normalization of its face.
    source_color / target_color: YCrCb ``[3]`` face-box means of the aligned input face and of
    the normalized face (what the photo was shifted toward). exposure_only: the photo was
    greyscale, so only luma moved.
    """

    image: np.ndarray
    result: "Result"
    source_color: np.ndarray
    target_color: np.ndarray
    exposure_only: bool


def auto_adjust(photo: np.ndarray, normalizer: "FaceNormalizer") -> Adjustment:
    """White balance and exposure of ``photo`` (``[h, w, 3]`` RGB, or greyscale) from its
    normalized face (paper Sec. 7.4): the mean colour of the central box of the aligned input
    face is shifted onto that of the normalized face. A greyscale photo gets the exposure shift
    only (white balance would tint it). Uses the normalizer's face choice (largest by default);
    raises ValueError for unusable images and when no face is found."""
    photo = as_rgb_uint8(photo, "photo")
    results = normalizer.normalize(photo)
    if not results:
        raise ValueError("no face found")
    return adjust_with_result(photo, results[0], normalizer.template)


def adjust_with_result(photo: np.ndarray, res: "Result", template: AlignmentTemplate) -> Adjustment:
    """:func:`auto_adjust` given the photo's normalization ``res`` already (the HTTP server
    normalizes through its batch queue, then adjusts here)."""
    photo = as_rgb_uint8(photo, "photo")
    source = mean_face_color(res.aligned_input, template)
    target = mean_face_color(res.image, template)
    grey = is_greyscale(photo)
    shift_to = exposure_only(source, target) if grey else target
    return Adjustment(adjust_photo(photo, source, shift_to), res, source, target, grey)

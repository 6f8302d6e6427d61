"""Face masks from landmarks: the one home of "the convex hull of the landmarks" as an image.

Used by Poisson compositing (a blurred hull), the avatar's colour confidence (a hull whose edge
ramps to 0 a margin outside it) and the evaluation (a hard hull: pixel L1, Delta E, sharpness).
"""

from __future__ import annotations

import numpy as np


def hull_mask(points: np.ndarray, shape: int | tuple[int, int], blur_sigma: float = 0.0,
              margin: float = 0.0) -> np.ndarray:
    """``[height, width]`` float64 mask in [0, 1]: the convex hull of ``points`` ``[n, 2]`` (x, y),
    filled with sub-pixel (1/16 px) vertices and anti-aliased edges.

    shape: ``size`` (square) or ``(height, width)``. blur_sigma: a Gaussian blur of that many
    pixels (0: none). margin: outside the hull the mask falls linearly to 0 over ``margin``
    pixels (0: none).
    """
    import cv2

    height, width = (shape, shape) if np.isscalar(shape) else tuple(int(v) for v in shape[:2])
    mask = np.zeros((height, width), np.float32)
    hull = cv2.convexHull(np.round(np.asarray(points, np.float64) * 16).astype(np.int32))
    # Sub-pixel vertices (4 fractional bits) so the hull is not snapped to the pixel grid.
    cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
    if margin > 0:
        inside = (mask >= 0.5).astype(np.uint8)
        ramp = 1.0 - cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5) / margin
        mask = np.maximum(mask, np.clip(ramp, 0.0, 1.0).astype(np.float32))
    if blur_sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), blur_sigma, borderType=cv2.BORDER_REPLICATE)
    return np.clip(mask.astype(np.float64), 0.0, 1.0)


def face_mask(points: np.ndarray, shape: int | tuple[int, int]) -> np.ndarray:
    """``[height, width]`` bool: the pixels inside the landmarks' convex hull."""
    return hull_mask(points, shape) > 0.5


HAIR_RISE_IOD = 1.0   # how far above the eyebrows the hair region reaches, in eye distances
HAIR_MARGIN_IOD = 0.35  # the soft edge around face and hair, in eye distances


def face_and_hair_mask(landmarks: np.ndarray, shape: int | tuple[int, int], rise_iod: float = HAIR_RISE_IOD,
                       margin_iod: float = HAIR_MARGIN_IOD) -> np.ndarray:
    """``[height, width]`` float64 in [0, 1]: the face and the hair around it, from 68 (x, y)
    landmarks: the hull of the landmarks and of the eyebrows raised by ``rise_iod`` eye distances,
    falling to 0 over ``margin_iod`` eye distances outside it. What a training target keeps sharp
    (the calm-background targets and the face-weighted texture loss of issue 28); the rest of the
    frame is background the features cannot predict."""
    from normface.faces.alignment import eye_centers

    points = np.asarray(landmarks, np.float64)
    eyes = eye_centers(points)
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    brows = points[17:27] - np.array([0.0, rise_iod * iod])
    return hull_mask(np.concatenate([points, brows]), shape, margin=margin_iod * iod)

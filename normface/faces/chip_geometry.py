"""dlib's face-chip geometry without TensorFlow: the templates, the chip-to-image affine and the
chips themselves in NumPy (LiteRT inference, :mod:`normface.serving.litert_backend`).

The same equations as :func:`normface.faces.chips.chip_to_image_affine` and
:func:`normface.faces.chips.extract_chips` (tested against them): the least-squares similarity
from the template to the landmarks, dlib's per-pixel step, bilinear sampling through
:func:`normface.warp.numpy_warp.resample_bilinear`, zero outside the image.
"""

from __future__ import annotations

import numpy as np

from normface.warp.numpy_warp import resample_bilinear

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# dlib's get_face_chip_details template: where the 5-point landmarks land, in [0, 1] chip units
# before padding. Order of shape_predictor_5_face_landmarks: outer and inner corner of the eye on
# the image's right, outer and inner corner of the other eye, base of the nose.
FIVE_POINT_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)

# dlib's mean face shape for 68-point landmarks 17..67 (same function), x then y.
_MEAN_FACE_X = [
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
]

_MEAN_FACE_Y = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
]

# dlib aligns 68-point shapes on points 27..54 and 60..64 (no eyebrows, jaw or lower lip).
SIXTY_EIGHT_POINT_INDICES = np.array([i for i in range(27, 68) if not (55 <= i <= 59 or i >= 65)])

SIXTY_EIGHT_POINT_TEMPLATE = np.stack(
    [np.asarray(_MEAN_FACE_X)[SIXTY_EIGHT_POINT_INDICES - 17],
     np.asarray(_MEAN_FACE_Y)[SIXTY_EIGHT_POINT_INDICES - 17]], axis=-1
)


def chip_template(num_points: int, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(landmark indices, template ``[k, 2]`` (x, y) chip pixels) used to align ``num_points``."""
    if num_points == 5:
        indices, unit = np.arange(5), FIVE_POINT_TEMPLATE
    elif num_points == 68:
        indices, unit = SIXTY_EIGHT_POINT_INDICES, SIXTY_EIGHT_POINT_TEMPLATE
    else:
        raise ValueError(f"landmarks: expected 5 or 68 points per face; got {num_points}")
    return indices, (padding + unit) / (2 * padding + 1) * size


def chip_to_image_affine(landmarks: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """``[b, 5 or 68, 2]`` (x, y) landmarks -> ``[b, 2, 3]`` float64 maps with ``image_xy = A[:, :2] @
    chip_xy + A[:, 2]`` (:func:`normface.faces.chips.chip_to_image_affine`'s equations)."""
    points = np.asarray(landmarks, np.float64)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"landmarks: expected [batch, 5 or 68, 2]; got {points.shape}")
    indices, template = chip_template(points.shape[1], size, padding)
    points = points[:, indices]
    src_mean = template.mean(axis=0)
    src_c = template - src_mean
    dst_mean = points.mean(axis=1, keepdims=True)
    dst_c = points - dst_mean
    denom = np.sum(src_c**2)
    a = np.sum(src_c[:, 0] * dst_c[..., 0] + src_c[:, 1] * dst_c[..., 1], axis=1) / denom
    b = np.sum(src_c[:, 0] * dst_c[..., 1] - src_c[:, 1] * dst_c[..., 0], axis=1) / denom
    scale = np.sqrt(a**2 + b**2)
    step = (size * scale - 1.0) / (size - 1.0)
    a_s, b_s = a * step / scale, b * step / scale
    half = size / 2.0
    cx = a * (half - src_mean[0]) - b * (half - src_mean[1]) + dst_mean[:, 0, 0]
    cy = b * (half - src_mean[0]) + a * (half - src_mean[1]) + dst_mean[:, 0, 1]
    mid = (size - 1) / 2.0
    tx = cx - (a_s * mid - b_s * mid)
    ty = cy - (b_s * mid + a_s * mid)
    return np.stack([np.stack([a_s, -b_s, tx], -1), np.stack([b_s, a_s, ty], -1)], axis=1)


def extract_chips(images: np.ndarray, landmarks: np.ndarray, size: int = CHIP_SIZE,
                  padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib-style face chips: ``[b, h, w, c]`` images (any range) + ``[b, 5 or 68, 2]`` (x, y)
    landmarks -> ``[b, size, size, c]`` float32, 0 outside the image
    (:func:`normface.faces.chips.extract_chips`'s equations)."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images: expected [batch, height, width, channels]; got {images.shape}")
    affine = chip_to_image_affine(landmarks, size, padding).astype(np.float32)
    grid = np.arange(size, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    chip_xy = np.stack([gx, gy, np.ones_like(gx)], axis=-1)
    # [size * size, 3] @ [b, 3, 2]: a BLAS product (np.einsum's loop took 40x longer).
    coords = (chip_xy.reshape(-1, 3) @ affine.transpose(0, 2, 1)).reshape(len(affine), size, size, 2)
    h, w = images.shape[1:3]
    out = np.empty((len(images), size, size, images.shape[-1]), np.float32)
    for i, (image, xy) in enumerate(zip(images, coords)):
        inside = (xy[..., 0] >= 0) & (xy[..., 1] >= 0) & (xy[..., 0] < w - 1) & (xy[..., 1] < h - 1)
        out[i] = resample_bilinear(image, xy) * inside[..., None]
    return out

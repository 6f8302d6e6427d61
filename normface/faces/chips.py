"""Face chips for the identity encoder: dlib's own and a differentiable one in TensorFlow.

The encoder (:mod:`normface.encoders`) reads 150x150 "face chips": the face rotated, scaled and
cropped so that five landmarks (eye corners and the base of the nose) land on fixed template
positions. Two ways to make them:

- :func:`dlib_face_chip`: dlib's own ``get_face_chip`` (the reference the network was trained on);
- :func:`extract_chips`: the same geometry in TensorFlow (similarity transform from landmarks +
  bilinear sampling through :func:`normface.warp.resample_bilinear`), batched and differentiable
  in the image and the landmarks, so generated images can be encoded inside a training graph.
  68-point landmarks are reduced to the points dlib's 5-point template corresponds to.
"""

from __future__ import annotations


import numpy as np
import tensorflow as tf

from normface.faces.detection import as_rgb_uint8

from normface.faces.chip_geometry import (  # noqa: F401  (the TF-free geometry, re-exported)
    CHIP_PADDING, CHIP_SIZE, FIVE_POINT_TEMPLATE, SIXTY_EIGHT_POINT_INDICES, SIXTY_EIGHT_POINT_TEMPLATE, chip_template,
)


def _as_landmarks(landmarks: np.ndarray, name: str = "landmarks") -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in (5, 68):
        raise ValueError(f"{name}: expected [5, 2] or [68, 2] (x, y) points; got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name}: landmarks have NaN or infinite values")
    return points


# --- dlib detection, landmarks and reference chips ----------------------------------------------

def dlib_face_chip(image: np.ndarray, landmarks: np.ndarray, size: int = CHIP_SIZE,
                   padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib's ``get_face_chip(img, shape, size, padding)`` for (x, y) ``landmarks`` ``[5|68, 2]``.

    Returns a ``[size, size, 3]`` uint8 RGB chip, the exact input dlib's face network expects.
    """
    import dlib

    rgb = as_rgb_uint8(image)
    points = _as_landmarks(landmarks)
    parts = [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    box = dlib.rectangle(*(int(v) for v in (points[:, 0].min(), points[:, 1].min(),
                                             points[:, 0].max(), points[:, 1].max())))
    shape = dlib.full_object_detection(box, parts)
    return np.asarray(dlib.get_face_chip(rgb, shape, size=size, padding=padding))


# --- differentiable chips ------------------------------------------------------------------------


def chip_to_image_affine(landmarks: tf.Tensor, size: int = CHIP_SIZE,
                         padding: float = CHIP_PADDING) -> tf.Tensor:
    """Affine maps from chip pixels to image pixels, as dlib's ``get_face_chip`` builds them.

    landmarks: ``[b, 5 or 68, 2]`` (x, y) image points. Returns ``[b, 2, 3]`` matrices ``A`` with
    ``image_xy = A[:, :2] @ chip_xy + A[:, 2]``. The least-squares similarity transform from the
    template to the landmarks (dlib's find_similarity_transform) fixes the rotation, the scale and
    where the chip centre goes; dlib then spreads the chip's corner pixels over the corners of a
    rectangle ``size * scale - 1`` pixels wide, which sets the per-pixel step.
    """
    with tf.name_scope("chip_to_image_affine"):
        points = tf.convert_to_tensor(landmarks)
        if points.shape.rank != 3 or points.shape[-1] != 2:
            raise ValueError(f"landmarks: expected [batch, 5 or 68, 2]; got {points.shape}")
        if not points.dtype.is_floating:
            points = tf.cast(points, tf.float32)
        indices, template = chip_template(int(points.shape[1]), size, padding)
        points = tf.gather(points, indices, axis=1)
        src = tf.constant(template, dtype=points.dtype)
        src_c = src - tf.reduce_mean(src, axis=0)
        dst_mean = tf.reduce_mean(points, axis=1, keepdims=True)
        dst_c = points - dst_mean
        denom = tf.reduce_sum(src_c**2)
        # Closed-form 2-D similarity (Umeyama without reflection): M = [[a, -b], [b, a]].
        a = tf.reduce_sum(src_c[:, 0] * dst_c[..., 0] + src_c[:, 1] * dst_c[..., 1], axis=1) / denom
        b = tf.reduce_sum(src_c[:, 0] * dst_c[..., 1] - src_c[:, 1] * dst_c[..., 0], axis=1) / denom
        # dlib spreads the chip's corner pixels over a rectangle whose corners are size*scale - 1
        # apart (its rectangles count both end pixels), so one chip pixel steps this far:
        scale = tf.sqrt(a**2 + b**2)
        step = (size * scale - 1.0) / (size - 1.0)
        a_s, b_s = a * step / scale, b * step / scale
        src_mean = tf.reduce_mean(src, axis=0)
        half = tf.constant(size / 2.0, dtype=points.dtype)
        # Chip centre (size/2, size/2) goes where the similarity sends it.
        cx = a * (half - src_mean[0]) - b * (half - src_mean[1]) + dst_mean[:, 0, 0]
        cy = b * (half - src_mean[0]) + a * (half - src_mean[1]) + dst_mean[:, 0, 1]
        mid = (size - 1) / 2.0
        tx = cx - (a_s * mid - b_s * mid)
        ty = cy - (b_s * mid + a_s * mid)
        row0 = tf.stack([a_s, -b_s, tx], axis=-1)
        row1 = tf.stack([b_s, a_s, ty], axis=-1)
        return tf.stack([row0, row1], axis=1)


def extract_chips(images: tf.Tensor, landmarks: tf.Tensor, size: int = CHIP_SIZE,
                  padding: float = CHIP_PADDING) -> tf.Tensor:
    """Differentiable dlib-style face chips.

    images: ``[b, h, w, c]`` float (any range; output has the same range and dtype).
    landmarks: ``[b, 5 or 68, 2]`` (x, y) pixel positions in ``images``.
    Returns ``[b, size, size, c]``. Samples outside the image are 0, as in dlib (whose bilinear
    interpolator needs both neighbours inside). Unlike dlib, no image pyramid is used, so chips
    match dlib's only while the face region is less than ~2x the chip size (true for LFW).
    """
    from normface.warp import resample_bilinear

    with tf.name_scope("extract_chips"):
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4:
            raise ValueError(f"images: expected [batch, height, width, channels]; got {images.shape}")
        if not images.dtype.is_floating:
            images = tf.cast(images, tf.float32)
        affine = chip_to_image_affine(tf.cast(landmarks, images.dtype), size, padding)
        grid = tf.range(size, dtype=images.dtype)
        gx, gy = tf.meshgrid(grid, grid)  # [size, size] each, x varies along columns
        chip_xy = tf.stack([gx, gy, tf.ones_like(gx)], axis=-1)  # [size, size, 3]
        coords = tf.einsum("bij,yxj->byxi", affine, chip_xy)  # [b, size, size, 2] (x, y)
        sampled = resample_bilinear(images, coords)
        h = tf.cast(tf.shape(images)[1], images.dtype)
        w = tf.cast(tf.shape(images)[2], images.dtype)
        x, y = coords[..., 0], coords[..., 1]
        inside = (x >= 0) & (y >= 0) & (x < w - 1) & (y < h - 1)
        return sampled * tf.cast(inside, images.dtype)[..., None]

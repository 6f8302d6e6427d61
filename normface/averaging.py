"""Per-person face averaging by morphing (paper Sec. 6).

Averaging a person's aligned photos removes lighting variation: each photo is warped (with
:mod:`normface.warp`) so its landmarks land on the person's mean landmarks, then the pixels are
averaged. The mean landmarks are the plain mean of the photos' aligned landmarks.
"""

from __future__ import annotations

import numpy as np


def average_faces(
    images: np.ndarray, landmarks: np.ndarray, num_boundary_points: int = 4, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Morph-averages aligned photos of one person.

    Args:
      images: ``[k, s, s, 3]`` uint8 or float aligned photos.
      landmarks: ``[k, 68, 2]`` their (x, y) landmarks in the aligned frame.
      num_boundary_points: zero-flow anchors per image edge for the warp.
      batch_size: photos warped at once (bounds memory for people with many photos).

    Returns:
      ``(average [s, s, 3] float32 in the input's value range, mean_landmarks [68, 2])``.
    """
    import tensorflow as tf

    from normface import warp

    images = np.asarray(images)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if images.ndim != 4 or landmarks.ndim != 3 or images.shape[0] != landmarks.shape[0]:
        raise ValueError(
            f"expected images [k, s, s, 3] and landmarks [k, 68, 2] with the same k, got {images.shape} and {landmarks.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("average_faces needs at least one photo")
    mean = landmarks.mean(axis=0)
    total = np.zeros(images.shape[1:], np.float64)
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start:start + batch_size].astype(np.float32)
        src = landmarks[start:start + batch_size].astype(np.float32)
        dst = np.broadcast_to(mean.astype(np.float32), src.shape)
        warped, _ = warp.warp_to_landmarks(
            tf.constant(chunk), tf.constant(src), tf.constant(dst), num_boundary_points=num_boundary_points
        )
        total += warped.numpy().astype(np.float64).sum(axis=0)
    return (total / images.shape[0]).astype(np.float32), mean

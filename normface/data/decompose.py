"""Texture/landmark decomposition of aligned faces (Cole et al. 2017, Sec. 3 and 5.1).

A face is split into its 68 landmarks L and a *texture* T: the image warped so its landmarks land
on the global mean landmarks. Textures of different people are then registered (eyes, lips and
jaw in the same pixels), so they can be interpolated, compared and composited pixel by pixel; the
warp back from the mean landmarks to L re-creates the face. The warp is :mod:`normface.warp`,
the same op the model's decoder uses, so training targets and model outputs share one geometry.

The mean is taken over the *training* people only and made left/right symmetric (the average of
the mean and its mirror image about the template's vertical centre line), so a horizontally
flipped texture is still registered to the mean landmarks: the random flips of the input pipeline
stay exact.

Also here: the left/right permutation of the 68 iBUG points (one home, used by the flips) and a
synthetic face generator for tests and benchmarks (no real data needed).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from normface import warp
from normface.faces.alignment import NUM_LANDMARKS

# Warps per TF call when decomposing many faces: bounds memory (a few MB per 128x128 face).
DECOMPOSE_BATCH = 32

# iBUG 68-point mirror pairs (0-based): the point that lands on index i after a left/right flip.
# Jaw 0-16 reversed; brows 17-21 <-> 26-22; nose bridge 27-30 fixed; nostrils 31-35 reversed;
# eyes 36-41 <-> 45,44,43,42,47,46 (both eyes run clockwise from their image-left corner);
# outer lips 48-54 reversed, 55-59 reversed; inner lips 60-64 reversed, 65-67 reversed.
_MIRROR_PAIRS = (
    [(i, 16 - i) for i in range(17)]
    + [(17 + i, 26 - i) for i in range(10)]
    + [(i, i) for i in range(27, 31)]
    + [(31 + i, 35 - i) for i in range(5)]
    + list(zip(range(36, 48), (45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40)))
    + [(48 + i, 54 - i) for i in range(7)]
    + [(55 + i, 59 - i) for i in range(5)]
    + [(60 + i, 64 - i) for i in range(5)]
    + [(65 + i, 67 - i) for i in range(3)]
)
MIRROR_PERMUTATION = np.array([j for _, j in sorted(_MIRROR_PAIRS)], dtype=np.int32)


def mirror_landmarks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Landmarks ``[..., 68, 2]`` of the left/right-flipped ``size``-wide image.

    x -> size - 1 - x (pixel centres at integers) and the indices are permuted, so index 36 is
    still the image-left eye's outer corner after the flip.
    """
    landmarks = np.asarray(landmarks)
    flipped = landmarks[..., MIRROR_PERMUTATION, :].copy()
    flipped[..., 0] = (size - 1) - flipped[..., 0]
    return flipped


def mean_landmarks(landmarks: np.ndarray, size: int, symmetric: bool = True) -> np.ndarray:
    """The global mean landmarks ``[68, 2]`` (float64) of ``[n, 68, 2]`` training landmarks.

    ``symmetric`` averages the mean with its mirror image (see the module docstring).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 2) or len(landmarks) == 0:
        raise ValueError(f"need [n >= 1, 68, 2] training landmarks, got shape {landmarks.shape}")
    mean = landmarks.mean(axis=0)
    if symmetric:
        mean = 0.5 * (mean + mirror_landmarks(mean, size))
    return mean


def warp_faces(images: np.ndarray, source: np.ndarray, dest: np.ndarray,
               resampling: str = "bilinear") -> np.ndarray:
    """``[n, S, S, 3]`` float32: ``images`` (float) warped so their landmarks ``source``
    ``[n | 1, 68, 2]`` land on ``dest`` ``[n | 1, 68, 2]`` ((x, y) pixels; ``resampling`` as
    :func:`normface.warp.warp_to_landmarks`), in batches."""
    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    source = np.broadcast_to(np.asarray(source, np.float32), (n, NUM_LANDMARKS, 2))
    dest = np.broadcast_to(np.asarray(dest, np.float32), (n, NUM_LANDMARKS, 2))
    out = np.empty_like(images)
    for start in range(0, n, DECOMPOSE_BATCH):
        part = slice(start, start + DECOMPOSE_BATCH)
        chunk = len(images[part])
        # Pad to a power of two (repeating the last face): few distinct shapes, few retraces.
        padded = 1 << (chunk - 1).bit_length()
        pad = lambda x: np.concatenate([x[part], np.repeat(x[part][-1:], padded - chunk, 0)])
        warped, _ = warp.warp_to_landmarks(pad(images), pad(source), pad(dest), resampling=resampling)
        out[part] = warped.numpy()[:chunk]
    return out


def to_texture(images: np.ndarray, landmarks: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Textures ``[n, S, S, 3]`` float32: ``images`` (same shape, float) warped from their
    ``landmarks`` ``[n, 68, 2]`` to the ``mean`` ``[68, 2]`` landmarks."""
    with tf.name_scope("to_texture"):
        return warp_faces(images, landmarks, mean[None])


def to_image(textures: np.ndarray, mean: np.ndarray, landmarks: np.ndarray,
             resampling: str = "bilinear") -> np.ndarray:
    """Faces ``[n, S, S, 3]`` float32: ``textures`` warped from the ``mean`` landmarks to
    ``landmarks`` ``[n, 68, 2]`` (the inverse of :func:`to_texture` up to resampling;
    ``resampling`` as :func:`normface.warp.warp_to_landmarks`: "bicubic" is how a model built
    with ``--warp_resampling=bicubic`` places its texture)."""
    with tf.name_scope("to_image"):
        return warp_faces(textures, mean[None], landmarks, resampling)

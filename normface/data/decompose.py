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
from normface.faces.alignment import NUM_LANDMARKS, AlignmentTemplate

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


def _warp_batched(images: np.ndarray, source: np.ndarray, dest: np.ndarray) -> np.ndarray:
    """Warps ``[n, S, S, 3]`` float images so ``source`` ``[n | 1, 68, 2]`` lands on ``dest``."""
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
        warped, _ = warp.warp_to_landmarks(pad(images), pad(source), pad(dest))
        out[part] = warped.numpy()[:chunk]
    return out


def to_texture(images: np.ndarray, landmarks: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Textures ``[n, S, S, 3]`` float32: ``images`` (same shape, float) warped from their
    ``landmarks`` ``[n, 68, 2]`` to the ``mean`` ``[68, 2]`` landmarks."""
    with tf.name_scope("to_texture"):
        return _warp_batched(images, landmarks, mean[None])


def to_image(textures: np.ndarray, mean: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Faces ``[n, S, S, 3]`` float32: ``textures`` warped from the ``mean`` landmarks to
    ``landmarks`` ``[n, 68, 2]`` (the inverse of :func:`to_texture` up to resampling)."""
    with tf.name_scope("to_image"):
        return _warp_batched(textures, mean[None], landmarks)


# ----------------------------------------------------------------------------------------------
# Synthetic faces for tests and benchmarks.
# ----------------------------------------------------------------------------------------------
def canonical_landmarks(template: AlignmentTemplate) -> np.ndarray:
    """A generic, left/right-symmetric 68-point face ``[68, 2]`` placed by ``template``'s eyes.

    Only a plausible layout (ellipses and arcs in iBUG order), not a statistical mean face.
    """
    (lx, ey), (rx, _) = template.eye_centers()
    d, cx = rx - lx, 0.5 * (lx + rx)

    def ellipse(x0, y0, a, b, degrees):
        t = np.radians(np.asarray(degrees, dtype=np.float64))
        return np.stack([x0 + a * np.cos(t), y0 + b * np.sin(t)], axis=-1)

    jaw = ellipse(cx, ey + 0.1 * d, 0.95 * d, 1.45 * d, 180.0 - np.linspace(0, 180, 17))
    brow_x = np.linspace(0.9, 0.15, 5) * d
    brow_y = ey - 0.4 * d - 0.1 * d * np.sin(np.linspace(0.3, 2.8, 5))
    brows = np.concatenate([np.stack([cx - brow_x, brow_y], -1), np.stack([cx + brow_x[::-1], brow_y[::-1]], -1)])
    bridge = np.stack([np.full(4, cx), ey + np.linspace(0.05, 0.55, 4) * d], -1)
    nostrils = np.stack([cx + np.linspace(-0.2, 0.2, 5) * d, ey + d * np.array([0.62, 0.66, 0.68, 0.66, 0.62])], -1)
    eye_angles = (180, 240, 300, 0, 60, 120)
    eyes = np.concatenate([ellipse(lx, ey, 0.22 * d, 0.09 * d, eye_angles), ellipse(rx, ey, 0.22 * d, 0.09 * d, eye_angles)])
    outer = ellipse(cx, ey + 1.0 * d, 0.4 * d, 0.18 * d, (180, 210, 240, 270, 300, 330, 0, 30, 60, 90, 120, 150))
    inner = ellipse(cx, ey + 1.0 * d, 0.3 * d, 0.06 * d, (180, 240, 270, 300, 0, 60, 90, 120))
    points = np.concatenate([jaw, brows, bridge, nostrils, eyes, outer, inner])
    assert points.shape == (NUM_LANDMARKS, 2)
    return points


def synthetic_faces(
    count: int, template: AlignmentTemplate, seed: int = 0, jitter: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` synthetic aligned faces: (uint8 images ``[n, S, S, 3]``, landmarks ``[n, 68, 2]``).

    Each face is the canonical layout moved by a smooth random deformation (``jitter`` x size),
    drawn over a smooth random background: skin-coloured jaw hull, dark eyes, brows and lips, so
    warps, morphs and composites have structure to move.
    """
    import cv2

    rng = np.random.default_rng(seed)
    size = template.size
    base = canonical_landmarks(template)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, marks = [], []
    for _ in range(count):
        # Smooth deformation: random affine plus a low-frequency bump, both ~jitter * size.
        affine = np.eye(2) + rng.normal(0.0, jitter, (2, 2))
        centre = base.mean(0)
        pts = (base - centre) @ affine.T + centre + rng.normal(0.0, jitter * size, 2)
        pts += jitter * size * 0.5 * np.sin(2 * np.pi * (base / size) @ rng.normal(0, 1, (2, 2)))
        colour = rng.uniform(0.2, 0.8, 3)
        background = np.stack(
            [np.clip(c + 0.2 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * xx + rng.uniform(0.5, 2) * yy)), 0, 1) for c in colour],
            -1,
        )
        img = (background * 255).astype(np.uint8)
        skin = tuple(int(v) for v in rng.uniform(120, 230, 3))
        cv2.fillConvexPoly(img, cv2.convexHull(np.round(pts).astype(np.int32)), skin, lineType=cv2.LINE_AA)
        dark = tuple(int(v) for v in rng.uniform(20, 90, 3))
        for part in (slice(17, 22), slice(22, 27), slice(27, 31), slice(31, 36)):
            cv2.polylines(img, [np.round(pts[part]).astype(np.int32)], False, dark, 1, cv2.LINE_AA)
        for part in (slice(36, 42), slice(42, 48), slice(48, 60)):
            cv2.fillPoly(img, [np.round(pts[part]).astype(np.int32)], dark, cv2.LINE_AA)
        images.append(img)
        marks.append(pts)
    return np.stack(images), np.stack(marks).astype(np.float32)

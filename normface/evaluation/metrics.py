"""Metrics of the evaluation: identity preservation, verification (TAR at FAR), identification,
invariance, and image similarity.

All functions are plain numpy on descriptor arrays and images, so they are tested on constructed
cases (tests/evaluation/test_metrics.py) independently of any model.
"""

from __future__ import annotations

import numpy as np


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``[n, m]`` between descriptor rows of ``a`` ``[n, d]`` and ``b`` ``[m, d]``."""
    from scipy.spatial.distance import cdist

    # cdist works row by row: no [n, m, d] temporary (14 GB for the full LFW test split).
    return cdist(np.asarray(a, np.float64), np.asarray(b, np.float64))


def share_within(distances: np.ndarray, threshold: float) -> float:
    """Fraction of distances strictly below ``threshold``."""
    distances = np.asarray(distances)
    if distances.size == 0:
        raise ValueError("share_within needs at least one distance")
    return float(np.mean(distances < threshold))


def impostor_distances(descriptors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Distances of every pair of different people (upper triangle): ``[num_pairs]``."""
    labels = np.asarray(labels)
    d = pairwise_distances(descriptors, descriptors)
    i, j = np.triu_indices(len(labels), k=1)
    keep = labels[i] != labels[j]
    return d[i[keep], j[keep]]


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The largest distance threshold whose false-accept rate (impostor distances below it) is
    at most ``far``."""
    impostor = np.sort(np.asarray(impostor, np.float64))
    if impostor.size == 0:
        raise ValueError("threshold_at_far needs impostor distances")
    if not 0 <= far < 1:
        raise ValueError(f"far must be in [0, 1), got {far}")
    allowed = int(np.floor(far * impostor.size))
    # Accepting distance < t admits every impostor below t: t = the (allowed+1)-th smallest.
    return float(impostor[allowed])


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """(true-accept rate, threshold) at the given false-accept rate."""
    t = threshold_at_far(impostor, far)
    return share_within(genuine, t), t


def rank1_identification(probe: np.ndarray, probe_labels, gallery: np.ndarray, gallery_labels) -> float:
    """Share of probes whose nearest gallery descriptor has the probe's label."""
    d = pairwise_distances(probe, gallery)
    nearest = np.asarray(gallery_labels)[np.argmin(d, axis=1)]
    return float(np.mean(nearest == np.asarray(probe_labels)))


def spread(images: np.ndarray, landmarks: np.ndarray | None = None) -> dict[str, float]:
    """How much a person's images differ: mean pixel L1 to their mean image (0-255 scale) and mean
    landmark distance to the mean landmarks (pixels)."""
    images = np.asarray(images, np.float64)
    out = {"pixel_l1": float(np.abs(images - images.mean(0)).mean())}
    if landmarks is not None:
        lms = np.asarray(landmarks, np.float64)
        out["landmark_px"] = float(np.linalg.norm(lms - lms.mean(0), axis=-1).mean())
    return out


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean structural similarity of two ``[h, w, c]`` images in [0, 255] (Gaussian window
    sigma 1.5, the standard constants), averaged inside ``mask`` ``[h, w]`` when given."""
    import cv2

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ: {a.shape} vs {b.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    if s.ndim == 3:
        s = s.mean(-1)
    if mask is not None:
        return float(s[np.asarray(mask, bool)].mean())
    return float(s.mean())


def landmark_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean landmark distance normalized by the true interocular distance (eye centres)."""
    from normface.faces.alignment import eye_centers

    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    eyes = eye_centers(truth)
    iod = np.linalg.norm(eyes[..., 1, :] - eyes[..., 0, :], axis=-1)
    return float(np.mean(np.linalg.norm(pred - truth, axis=-1).mean(-1) / iod))


def hull_sharpness(images: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean over faces of the variance of the grey image's Laplacian inside the landmark hull
    (``images`` ``[n, S, S, 3]`` uint8, ``landmarks`` ``[n, 68, 2]``): higher is sharper. Compare
    only at one size (a ratio to real photos at the output size)."""
    import cv2

    from normface.faces.masks import face_mask
    from normface.faces.quality import sharpness

    values = []
    for image, marks in zip(images, landmarks):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        lap = cv2.Laplacian(grey, cv2.CV_64F)
        mask = face_mask(marks, image.shape[0])
        values.append(float(lap[mask].var()) if mask.any() else sharpness(grey))
    if not values:
        raise ValueError("hull_sharpness needs at least one image")
    return float(np.mean(values))

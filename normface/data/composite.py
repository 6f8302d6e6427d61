"""Gradient-domain compositing of a morphed face onto an original background (paper Sec. 5.2).

A morph interpolates registered textures, which works inside the face (where the landmarks are
accurate) but blurs hair and background. So the morphed texture F is pasted onto the seed face's
own texture B (its original background), in the texture frame, by gradient-domain editing
(Perez et al. 2003). Our copy of the paper lost its Eq. 3; we minimize, per colour channel,

    E(I) = sum_edges (grad I - G)^2 + lambda * sum_pixels [ m (I - F)^2 + (1 - m) (I - B)^2 ],
    G = m_e grad F + (1 - m_e) grad B,

with forward-difference gradients on the pixel grid's horizontal and vertical edges and m_e the
mask averaged over an edge's two pixels. m = 1 gives I = F exactly and m = 0 gives I = B exactly
(E = 0 there); in between, inside the face I keeps F's gradients while its colour is pulled
towards the background's over a length of ~1/sqrt(lambda) pixels, so the seam disappears.

The normal equations are ``(D^T D + lambda * Id) I = D^T G + lambda (m F + (1 - m) B)``: their
matrix does not even depend on the mask (the data weights m and 1 - m sum to 1), only on the size
and lambda. It is symmetric positive definite; we factorize it once per size (scipy.sparse.linalg
``splu``) and every composite is then one back-substitution with three right-hand sides.

The mask m is the convex hull of the global mean landmarks (which are fixed in the texture frame),
softened by a Gaussian blur.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from normface.faces.masks import hull_mask
import scipy.sparse as sp
import scipy.sparse.linalg as spla

# Colour attachment length as a fraction of the image size: lambda = 1 / (length * size)^2.
# Half the image keeps the solution close to Poisson editing (face colours are carried in from
# the background over the whole face, no visible seam) while lambda stays large enough for a
# well-conditioned system (condition number ~ 8 / lambda ~ 3e4 at 128).
DEFAULT_ATTACHMENT_FRACTION = 0.5
# Gaussian blur sigma of the hull mask as a fraction of the size (3.2 px at 128, 5.6 px at 224):
# a soft band of about the width of the hull's jaw-line margin, so hair and ears stay background.
DEFAULT_BLUR_SIGMA_FRACTION = 0.025


@dataclasses.dataclass(frozen=True)
class CompositeConfig:
    """Hyperparameters of the compositing energy (stored in the records' meta.json)."""

    attachment_fraction: float = DEFAULT_ATTACHMENT_FRACTION
    blur_sigma_fraction: float = DEFAULT_BLUR_SIGMA_FRACTION

    def __post_init__(self):
        if self.attachment_fraction <= 0:
            raise ValueError(f"attachment_fraction must be > 0, got {self.attachment_fraction}")
        if self.blur_sigma_fraction < 0:
            raise ValueError(f"blur_sigma_fraction must be >= 0, got {self.blur_sigma_fraction}")

    def lam(self, size: int) -> float:
        """The data weight lambda for ``size`` x ``size`` textures."""
        return 1.0 / (self.attachment_fraction * size) ** 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _difference_operators(height: int, width: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Forward differences on row-major pixels: (Dx [h*(w-1), h*w], Dy [(h-1)*w, h*w])."""

    def diff(n):
        return sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))

    dx = sp.kron(sp.identity(height), diff(width))
    dy = sp.kron(diff(height), sp.identity(width))
    return dx.tocsr(), dy.tocsr()


class Compositor:
    """Gradient-domain compositing for one texture size and mask, factorized once.

    ``Compositor(mask, lam)(foreground, background)`` -> composite, all ``[h, w, c]`` float.
    """

    def __init__(self, mask: np.ndarray, lam: float):
        mask = np.asarray(mask, dtype=np.float64)
        if mask.ndim != 2 or mask.min() < 0 or mask.max() > 1:
            raise ValueError(f"mask must be [h, w] with values in [0, 1], got shape {mask.shape}")
        if lam <= 0:
            raise ValueError(f"lambda must be > 0 (the system is singular otherwise), got {lam}")
        self.mask = mask
        self.lam = float(lam)
        h, w = mask.shape
        self._dx, self._dy = _difference_operators(h, w)
        flat = mask.reshape(-1, 1)
        # Edge masks: the mean of each edge's two pixels.
        self._mx = 0.5 * (abs(self._dx) @ flat)
        self._my = 0.5 * (abs(self._dy) @ flat)
        self._m = flat
        system = (self._dx.T @ self._dx + self._dy.T @ self._dy + self.lam * sp.identity(h * w)).tocsc()
        self._lu = spla.splu(system)

    @classmethod
    def for_landmarks(cls, mean_landmarks: np.ndarray, size: int, config: CompositeConfig = CompositeConfig()):
        """The compositor for ``size`` textures registered to ``mean_landmarks`` ``[68, 2]``."""
        mask = hull_mask(mean_landmarks, size, config.blur_sigma_fraction * size)
        return cls(mask, config.lam(size))

    def __call__(self, foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Composite of ``foreground`` F into ``background`` B (``[h, w, c]`` float; same shape)."""
        f = np.asarray(foreground, dtype=np.float64)
        b = np.asarray(background, dtype=np.float64)
        if f.shape != b.shape or f.shape[:2] != self.mask.shape:
            raise ValueError(
                f"foreground {f.shape} and background {b.shape} must both be {self.mask.shape} + channels"
            )
        shape = f.shape
        f = f.reshape(shape[0] * shape[1], -1)
        b = b.reshape(f.shape)
        gx = self._mx * (self._dx @ f) + (1.0 - self._mx) * (self._dx @ b)
        gy = self._my * (self._dy @ f) + (1.0 - self._my) * (self._dy @ b)
        rhs = self._dx.T @ gx + self._dy.T @ gy + self.lam * (self._m * f + (1.0 - self._m) * b)
        return self._lu.solve(rhs).reshape(shape)

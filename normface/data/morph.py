"""Random face morphs for data augmentation (Cole et al. 2017, Sec. 5.1 and Fig. 6).

The paper trains on ~1K averaged faces augmented to 1M. A new face is made from a *seed* face by
picking one of its k nearest neighbours at random and interpolating landmarks and textures with
two independent weights drawn from U[0, 1]; the morphed texture is then composited onto the seed's
own background (:mod:`normface.data.composite`) and warped to the morphed landmarks.

Neighbour distance: d(i, j) = theta * ||L_i - L_j|| + ||T_i - T_j||, with L the ``[68, 2]``
landmarks in pixels and T the ``[S, S, 3]`` textures with values in [0, 1] (Frobenius norms).
Both norms grow linearly with the image size (pixels, and sqrt(S^2) texture entries), so theta is
size-free. The paper's value is not legible in our copy. Our default balances the two terms on
the data: theta = median_{i<j} ||T_i - T_j|| / median_{i<j} ||L_i - L_j||, i.e. a typical pair
contributes equally through shape and appearance, so neither term decides the neighbours alone
(a fixed constant would be right for one face set and one texture contrast only). The resolved
value is written to the records' meta.json; ``--theta`` overrides it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from normface.data import composite
from normface.data import decompose
from normface.utils.pictures import to_uint8

DEFAULT_K = 5           # nearest neighbours to draw from (a reasoned default; not stated in the paper)
CONTACT_SHEET_MORPHS = 6  # morphs per seed on the contact sheet, as the paper's Fig. 6


def _pairwise_norms(x: np.ndarray) -> np.ndarray:
    """``[n, n]`` Euclidean distances between the rows of ``[n, D]`` ``x`` (float64 Gram)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(np.maximum(d2, 0.0))


def distance_terms(landmarks: np.ndarray, textures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(||L_i - L_j||, ||T_i - T_j||), each ``[n, n]``, of ``[n, 68, 2]`` and ``[n, S, S, 3]``."""
    if len(landmarks) != len(textures):
        raise ValueError(f"{len(landmarks)} landmark sets but {len(textures)} textures")
    return _pairwise_norms(landmarks), _pairwise_norms(textures)


def balanced_theta(landmark_dist: np.ndarray, texture_dist: np.ndarray) -> float:
    """The default theta: median texture distance over median landmark distance (pairs i < j)."""
    upper = np.triu_indices(len(landmark_dist), k=1)
    if len(upper[0]) == 0:
        raise ValueError("need at least two faces to balance theta")
    med_l = float(np.median(landmark_dist[upper]))
    med_t = float(np.median(texture_dist[upper]))
    if med_l <= 0:
        raise ValueError("all landmark sets are identical: theta cannot be balanced, pass --theta")
    return med_t / med_l


def nearest_neighbours(distances: np.ndarray, k: int) -> np.ndarray:
    """``[n, k]`` indices of each face's k nearest other faces (nearest first, ties by index)."""
    n = len(distances)
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} faces, got {k}")
    d = np.array(distances, dtype=np.float64)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@dataclasses.dataclass
class MorphPlan:
    """Which examples to make: ``seed[i]`` morphed with ``neighbour[i]`` (-1: the seed as is) at
    landmark weight ``weights[i, 0]`` and texture weight ``weights[i, 1]`` (all arrays length N)."""

    seed: np.ndarray       # [N] int
    neighbour: np.ndarray  # [N] int, -1 for an un-morphed original
    weights: np.ndarray    # [N, 2] float32, [0, 0] for an original

    def __len__(self) -> int:
        return len(self.seed)

    def slice(self, part: slice) -> "MorphPlan":
        return MorphPlan(self.seed[part], self.neighbour[part], self.weights[part])


def plan_examples(
    num_faces: int, neighbours: np.ndarray | None, num_morphs: int, rng: np.random.Generator,
    include_originals: bool = True, shuffle: bool = True,
) -> MorphPlan:
    """Every face once as itself (``include_originals``) plus ``num_morphs`` random morphs.

    Seeds go round-robin over the faces (each gets the same number of morphs, +-1); each morph
    draws a neighbour uniformly among the seed's k nearest and two independent U[0, 1] weights.
    ``shuffle`` permutes the result so shards mix people. Deterministic for ``rng``'s seed.
    """
    if num_morphs > 0 and neighbours is None:
        raise ValueError("morphs need the neighbour table")
    seeds = np.arange(num_morphs) % num_faces
    if num_morphs > 0:
        picks = rng.integers(0, neighbours.shape[1], size=num_morphs)
        nbrs = neighbours[seeds, picks]
    else:
        nbrs = np.zeros(0, np.int64)
    weights = rng.uniform(0.0, 1.0, size=(num_morphs, 2)).astype(np.float32)
    if include_originals:
        seeds = np.concatenate([np.arange(num_faces), seeds])
        nbrs = np.concatenate([np.full(num_faces, -1), nbrs])
        weights = np.concatenate([np.zeros((num_faces, 2), np.float32), weights])
    order = rng.permutation(len(seeds)) if shuffle else np.arange(len(seeds))
    return MorphPlan(seeds[order].astype(np.int64), nbrs[order].astype(np.int64), weights[order])


def interpolate(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - w) a + w b`` in float64: weight 0 returns ``a`` (the seed) and 1 returns ``b`` (the
    neighbour), both exactly."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = float(weight)
    return (1.0 - w) * a + w * b


class Morpher:
    """Renders planned examples from decomposed faces: morph, composite, warp back.

    Args:
      images: ``[n, S, S, 3]`` uint8 aligned faces (returned as is for un-morphed examples).
      landmarks: ``[n, 68, 2]`` their landmarks.
      textures: ``[n, S, S, 3]`` float textures in [0, 1] (decompose.to_texture).
      mean: ``[68, 2]`` mean landmarks the textures are registered to.
      compositor: the factorized compositor for this size and mask.
    """

    def __init__(self, images, landmarks, textures, mean, compositor: composite.Compositor):
        self.images = np.asarray(images)
        self.landmarks = np.asarray(landmarks, dtype=np.float32)
        self.textures = np.asarray(textures, dtype=np.float32)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.compositor = compositor

    def morph(self, seed: int, neighbour: int, landmark_weight: float, texture_weight: float):
        """(landmarks ``[68, 2]``, composited texture ``[S, S, 3]``) of one morph, un-warped."""
        marks = interpolate(self.landmarks[seed], self.landmarks[neighbour], landmark_weight)
        blend = interpolate(self.textures[seed], self.textures[neighbour], texture_weight)
        return marks, np.clip(self.compositor(blend, self.textures[seed]), 0.0, 1.0)

    def render(self, plan: MorphPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images uint8 ``[N, S, S, 3]``, textures uint8 ``[N, S, S, 3]``, landmarks float32
        ``[N, 68, 2]``) of ``plan``; the morphs' warps run as one batch."""
        n = len(plan)
        size = self.images.shape[1]
        images = np.empty((n, size, size, 3), np.uint8)
        textures = np.empty_like(images)
        marks = np.empty((n, 68, 2), np.float32)
        morphed = np.flatnonzero(plan.neighbour >= 0)
        for i in np.flatnonzero(plan.neighbour < 0):
            images[i] = self.images[plan.seed[i]]
            textures[i] = to_uint8(self.textures[plan.seed[i]])
            marks[i] = self.landmarks[plan.seed[i]]
        if len(morphed):
            pieces = [self.morph(plan.seed[i], plan.neighbour[i], *plan.weights[i]) for i in morphed]
            morph_marks = np.stack([p[0] for p in pieces]).astype(np.float32)
            morph_tex = np.stack([p[1] for p in pieces]).astype(np.float32)
            images[morphed] = to_uint8(decompose.to_image(morph_tex, self.mean, morph_marks))
            textures[morphed] = to_uint8(morph_tex)
            marks[morphed] = morph_marks
        return images, textures, marks


def contact_sheet(morpher: Morpher, neighbours: np.ndarray, seeds, rng: np.random.Generator,
                  morphs: int = CONTACT_SHEET_MORPHS) -> np.ndarray:
    """A uint8 sheet like the paper's Fig. 6: per seed two rows, ``seed | its chosen neighbours``
    above ``(blank) | the morphs`` (each morph below the neighbour it was made with)."""
    seeds = np.asarray(list(seeds))
    plan = MorphPlan(
        seed=np.repeat(seeds, morphs),
        neighbour=neighbours[np.repeat(seeds, morphs), rng.integers(0, neighbours.shape[1], len(seeds) * morphs)],
        weights=rng.uniform(0, 1, (len(seeds) * morphs, 2)).astype(np.float32),
    )
    images, _, _ = morpher.render(plan)
    size = images.shape[1]
    blank = np.full((size, size, 3), 255, np.uint8)
    rows = []
    for r, seed in enumerate(seeds):
        part = slice(r * morphs, (r + 1) * morphs)
        rows.append(np.concatenate([morpher.images[seed]] + [morpher.images[j] for j in plan.neighbour[part]], 1))
        rows.append(np.concatenate([blank] + list(images[part]), 1))
    return np.concatenate(rows, 0)

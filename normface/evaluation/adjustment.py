"""The white balance / exposure experiment (paper Appendix C, issue 9).

Known random exposure gains (x0.5..x2) and colour casts are applied to photos in linear light,
then undone by named correctors and by two scene-level baselines (grey world, white patch); the
score is the mean CIELAB Delta E (CIE76) of the face region against the untouched photo. The
correctors are injected callables: :func:`normalized_corrector` is the real method (the degraded
photo is normalized and its normalized face is the reference, exactly what ``normface adjust``
does, through :func:`normface.apps.adjust.auto_adjust`); :func:`oracle_corrector` takes the
untouched photo's own face colour as the reference, the upper bound of the method with a perfect
normalized face.
"""


from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from normface.apps import adjust
from normface.apps.adjust import Adjustment, auto_adjust, correct_to_reference, face_color
from normface.faces import alignment
from normface.faces.masks import face_mask
from normface.utils import pictures
from normface.utils.tables import markdown_table

if TYPE_CHECKING:
    from normface.serving.normalizer import FaceNormalizer

WHITE_PATCH_PERCENTILE = 99.0

BASELINES = ("grey world", "white patch")


# (photo index, degraded photo [h, w, 3] uint8) -> corrected photo, or None when the method
# cannot handle this photo (e.g. no face found: the tool would leave the photo as it is).
Corrector = Callable[[int, np.ndarray], "np.ndarray | None"]


# --- colour spaces and metrics ------------------------------------------------------------------


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0-255 -> linear light 0-1 (IEC 61966-2-1)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0-1) -> sRGB uint8."""
    c = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(s * 255.0), 0, 255).astype(np.uint8)


_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])

_D65_WHITE = _RGB_TO_XYZ.sum(1)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` sRGB 0-255 -> CIELAB (D65)."""
    xyz = srgb_to_linear(rgb) @ _RGB_TO_XYZ.T / _D65_WHITE
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def mean_delta_e(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean CIE76 Delta E between two ``[h, w, 3]`` sRGB images over ``mask`` (``[h, w]`` bool)."""
    diff = np.linalg.norm(srgb_to_lab(a) - srgb_to_lab(b), axis=-1)
    if mask is not None:
        if not mask.any():
            raise ValueError("mean_delta_e: empty mask")
        diff = diff[mask]
    return float(diff.mean())


def color_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """CIE76 Delta E between two mean colours given in YCrCb ``[3]`` (as :func:`face_color`)."""
    lab = srgb_to_lab(np.clip(adjust.to_rgb(np.stack([np.asarray(a, float), np.asarray(b, float)])), 0, 255))
    return float(np.linalg.norm(lab[0] - lab[1]))


# --- degradation and corrections -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DegradeConfig:
    """Random photo degradations, applied in linear light: an exposure gain log-uniform in
    ``exposure`` and red and blue gains (relative to green) log-uniform in ``cast`` (a white
    balance shift of up to about +-40%)."""

    exposure: tuple[float, float] = (0.5, 2.0)
    cast: tuple[float, float] = (0.7, 1.4)
    seed: int = 0


def degrade(photo: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Multiplies the linear light of sRGB ``photo`` by per-channel ``gains`` ``[3]`` (clipping)."""
    return linear_to_srgb(srgb_to_linear(photo) * np.asarray(gains, dtype=np.float64))


def random_gains(rng: np.random.Generator, config: DegradeConfig) -> np.ndarray:
    """``[3]`` RGB gains: exposure x (red cast, 1, blue cast)."""
    exposure = np.exp(rng.uniform(*np.log(config.exposure)))
    red, blue = np.exp(rng.uniform(*np.log(config.cast), size=2))
    return exposure * np.array([red, 1.0, blue])


def grey_world(photo: np.ndarray) -> np.ndarray:
    """Grey-world white balance: scales each channel (linear light) so the channel means are
    equal, keeping their average (a white-balance-only baseline: exposure is left alone)."""
    linear = srgb_to_linear(photo)
    means = linear.reshape(-1, 3).mean(0)
    return linear_to_srgb(linear * (means.mean() / np.maximum(means, 1e-6)))


def white_patch(photo: np.ndarray, percentile: float = WHITE_PATCH_PERCENTILE) -> np.ndarray:
    """White patch (max-RGB): scales each channel (linear light) so its ``percentile`` becomes
    white; corrects white balance and, for under-exposed photos, exposure."""
    linear = srgb_to_linear(photo)
    top = np.percentile(linear.reshape(-1, 3), percentile, axis=0)
    return linear_to_srgb(linear / np.maximum(top, 1e-6))


def normalized_corrector(normalizer: "FaceNormalizer", record: dict[int, Adjustment] | None = None) -> Corrector:
    """The method itself: :func:`auto_adjust` on the degraded photo (None when it cannot handle
    the photo: no face, degenerate landmarks). With ``record``, keeps each photo's
    :class:`Adjustment` there (by index)."""

    def correct(index: int, degraded: np.ndarray) -> np.ndarray | None:
        try:
            adjustment = auto_adjust(degraded, normalizer)
        except ValueError:
            return None
        if record is not None:
            record[index] = adjustment
        return adjustment.image

    return correct


def target_corrector(targets: np.ndarray, landmarks: Sequence[np.ndarray],
                     template: alignment.AlignmentTemplate | None = None) -> Corrector:
    """Shifts each photo's face (located by ``landmarks``) toward a given colour: ``targets`` is
    YCrCb ``[3]`` for all photos (e.g. the training faces' mean colour, a control that knows
    nothing about the person) or ``[n, 3]``, one per photo."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim == 1:
        targets = np.broadcast_to(targets, (len(landmarks), 3))
    if targets.shape != (len(landmarks), 3):
        raise ValueError(f"targets must be [3] or [{len(landmarks)}, 3], got {targets.shape}")
    return lambda index, degraded: correct_to_reference(degraded, landmarks[index], targets[index], template)


def oracle_corrector(photos: Sequence[np.ndarray], landmarks: Sequence[np.ndarray],
                     template: alignment.AlignmentTemplate | None = None) -> Corrector:
    """The reference an ideal normalized face would give: each untouched photo's own face colour
    (the face is located by the untouched photo's landmarks)."""
    return target_corrector(np.array([face_color(p, lm, template) for p, lm in zip(photos, landmarks)]),
                            landmarks, template)


def rows_table(rows: Mapping[str, Mapping]) -> str:
    """Markdown table of :meth:`AdjustmentReport.rows` (method, mean and median Delta E, failures)."""
    table = {m: {"mean Delta E": r["mean_delta_e"], "median Delta E": r["median_delta_e"], "failures": r["failures"]}
             for m, r in rows.items()}
    return markdown_table(table, first="method", floatfmt=".2f")


@dataclasses.dataclass(frozen=True)
class AdjustmentReport:
    """Per-photo results of :func:`evaluate_adjustment`.

    gains: ``[n, 3]`` applied RGB gains. delta_e: method -> ``[n]`` mean face Delta E against the
    untouched photo ("degraded" is before any correction, then the correctors, then
    :data:`BASELINES`). failures: corrector -> photos it could not handle (scored as left
    degraded). examples: for the first photos, method -> image (plus "original"), for :meth:`grid`.
    """

    gains: np.ndarray
    delta_e: dict[str, np.ndarray]
    failures: dict[str, int]
    examples: list[dict[str, np.ndarray]]

    @property
    def methods(self) -> list[str]:
        return list(self.delta_e)

    def summary(self) -> dict[str, float]:
        return {m: float(v.mean()) for m, v in self.delta_e.items()}

    def rows(self) -> dict[str, dict]:
        """method -> mean / median Delta E and failures, for reports."""
        return {m: {"mean_delta_e": float(v.mean()), "median_delta_e": float(np.median(v)),
                    "failures": int(self.failures.get(m, 0))} for m, v in self.delta_e.items()}

    def table(self) -> str:
        """Markdown table: mean and median Delta E per method (:func:`rows_table`)."""
        return rows_table(self.rows())

    def grid(self, tile: int = 128, extra_rows: Mapping[str, Sequence[np.ndarray]] | None = None) -> np.ndarray:
        """Paper Fig. 14-style sheet: one column per example photo, one row per method, the
        untouched photo on top; ``extra_rows`` (name -> one image per example, e.g. the
        normalized faces used as references) go right after the degraded row."""
        extra = dict(extra_rows or {})
        for name, images in extra.items():
            if len(images) != len(self.examples):
                raise ValueError(f"extra row {name!r} has {len(images)} images for {len(self.examples)} examples")
        columns = [{**ex, **{name: images[j] for name, images in extra.items()}} for j, ex in enumerate(self.examples)]
        order = ["original", "degraded", *extra, *self.methods[1:]]
        images = [col[m] for m in order for col in columns]
        labels = [m for m in order for _ in columns]
        return pictures.image_grid(images, cols=len(self.examples), labels=labels, tile=tile)


def evaluate_adjustment(
    photos: Sequence[np.ndarray], landmarks: Sequence[np.ndarray], correctors: Mapping[str, Corrector],
    config: DegradeConfig = DegradeConfig(), num_examples: int = 6,
) -> AdjustmentReport:
    """Degrades each ``[h, w, 3]`` uint8 photo with known random gains, corrects it with every
    corrector and the baselines, and scores the face region (the landmarks' convex hull) by mean
    Delta E against the untouched photo.

    Args:
      photos, landmarks: the photos and their ``[68, 2]`` (x, y) landmarks (same length); the
        landmarks only define the scored region (correctors find faces their own way).
      correctors: name -> :data:`Corrector`, e.g. :func:`normalized_corrector`,
        :func:`oracle_corrector`. Names must differ from "degraded", "original" and
        :data:`BASELINES`.
    """
    if len(photos) != len(landmarks) or not len(photos):
        raise ValueError(f"evaluate_adjustment: need as many landmarks as photos (>0), got "
                         f"{len(photos)} photos and {len(landmarks)} landmark sets")
    clash = set(correctors) & {"degraded", "original", *BASELINES}
    if clash:
        raise ValueError(f"evaluate_adjustment: corrector names {sorted(clash)} are reserved")
    rng = np.random.default_rng(config.seed)
    methods = ["degraded", *correctors, *BASELINES]
    all_gains, scores, examples = [], {m: [] for m in methods}, []
    failures = {name: 0 for name in correctors}
    for i, (photo, lm) in enumerate(zip(photos, landmarks)):
        photo = np.asarray(photo, dtype=np.uint8)
        lm = np.asarray(lm, dtype=np.float64)
        gains = random_gains(rng, config)
        degraded = degrade(photo, gains)
        outputs = {"degraded": degraded}
        for name, correct in correctors.items():
            fixed = correct(i, degraded)
            if fixed is None:
                failures[name] += 1
                fixed = degraded
            outputs[name] = fixed
        outputs["grey world"] = grey_world(degraded)
        outputs["white patch"] = white_patch(degraded)
        mask = face_mask(lm, photo.shape)
        for m in methods:
            scores[m].append(mean_delta_e(outputs[m], photo, mask))
        all_gains.append(gains)
        if i < num_examples:
            examples.append({"original": photo, **outputs})
    return AdjustmentReport(gains=np.array(all_gains), delta_e={m: np.array(v) for m, v in scores.items()},
                            failures=failures, examples=examples)

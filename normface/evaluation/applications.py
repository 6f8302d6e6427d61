"""The applications section of the evaluation report (paper Sec. 7.3-7.4, issue 9).

Numbers come from LFW View 1 *test* people (never trained on); pictures come from photos the
caller passes (the repository's London samples, CC BY), because LFW's terms do not allow
publishing its photos.

- Photo adjustment: the first photo of each test person is degraded with a known random
  exposure gain and colour cast and corrected by :func:`normface.apps.evaluate_adjustment`:
  the normalized face of the degraded photo as the reference (the method), the untouched photo's
  own face colour (the oracle: the best a perfect normalized face could do), the training set's
  mean face colour (a control with no knowledge of the person) and the grey-world and
  white-patch baselines.
- Avatar: the Surrey model is fitted to the normalized face's predicted landmarks and, for
  comparison, to the landmarks detected on the aligned input photo; the table gives the
  landmark reprojection error in pixels (of the aligned ``S x S`` frame) and in inter-ocular
  distances.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from normface import adjust, apps, avatar, face, io_utils, viz
from normface.evaluation import protocol

ADJUST_PEOPLE = 100   # photos in the adjustment experiment (one per test person)
AVATAR_PEOPLE = 60    # avatars fitted per landmark source (about 0.8 s each on 2 cores)
PICTURE_AVATARS = 3   # sample photos shown as avatars
NORMALIZED = "normalized face"
ORACLE = "oracle colour"
TRAIN_MEAN = "train mean colour"
LONDON_NEUTRAL = "london_neutral"  # studio folder of the London set's neutral photos


@dataclasses.dataclass(frozen=True)
class ApplicationsConfig:
    """Sizes and seed of the applications section (``quick`` reports shrink them)."""

    adjust_people: int = ADJUST_PEOPLE
    avatar_people: int = AVATAR_PEOPLE
    picture_avatars: int = PICTURE_AVATARS
    seed: int = 0


def first_photo_per_person(photos: protocol.TestPhotos, limit: int) -> list[int]:
    """Indices of each person's first photo, for the first ``limit`` people (in key order)."""
    seen: dict[str, int] = {}
    for i, person in enumerate(photos.people):
        seen.setdefault(str(person), i)
    return sorted(seen.values())[:limit]


def training_mean_color(faces_root: str | Path, template) -> np.ndarray | None:
    """Mean YCrCb face-box colour of the averaged *training* faces (None if there are none)."""
    files = sorted((Path(faces_root) / "averaged" / "train").glob("*/*.png"))
    colors = []
    for f in files:
        image = io_utils.read_rgb(f)
        if image.shape[:2] == (template.size, template.size):
            colors.append(adjust.mean_face_color(image, template))
    return np.mean(colors, axis=0) if colors else None


def load_raw_photos(data_root: str | Path, sources: Sequence[str], log=print
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Reads photos (paths under ``data_root``) and detects their largest face's landmarks;
    photos that cannot be read or have no face are logged and left out."""
    photos, landmarks, kept = [], [], []
    for src in sources:
        path = Path(data_root) / src
        try:
            image = io_utils.read_rgb(path)
        except (OSError, ValueError) as err:
            log(f"skipping {path}: {err}")
            continue
        found = face.find_faces68(image)
        if not found:
            log(f"skipping {path}: no face found")
            continue
        photos.append(image)
        landmarks.append(found[0].landmarks)
        kept.append(src)
    return photos, landmarks, kept


def adjustment_correctors(normalizer, photos, landmarks, train_color: np.ndarray | None,
                          reference_colors: dict[int, np.ndarray] | None = None) -> dict:
    """The correctors of the experiment (names :data:`NORMALIZED`, :data:`ORACLE`,
    :data:`TRAIN_MEAN`). With ``reference_colors``, the normalized corrector records there the
    mean face colour of each degraded photo's normalized face."""
    correctors = {NORMALIZED: apps.normalized_corrector(normalizer, reference_colors),
                  ORACLE: apps.oracle_corrector(photos, landmarks)}
    if train_color is not None:
        correctors[TRAIN_MEAN] = apps.constant_corrector(train_color, landmarks)
    return correctors


def adjustment_experiment(normalizer, photos: Sequence[np.ndarray], landmarks: Sequence[np.ndarray],
                          train_color: np.ndarray | None, seed: int) -> dict:
    """Runs :func:`normface.apps.evaluate_adjustment` and measures how far the reference moves:
    ``reference_shift``: mean Delta E between the normalized face colour of the degraded photo
    and of the untouched one (0 = the reference ignores the degradation); ``input_shift``: the
    same for the photo's own face colour (what the degradation did)."""
    colors: dict[int, np.ndarray] = {}
    result = apps.evaluate_adjustment(photos, landmarks,
                                      adjustment_correctors(normalizer, photos, landmarks, train_color, colors),
                                      apps.DegradeConfig(seed=seed), num_examples=0)
    reference_shift, input_shift = [], []
    for i, (photo, lm) in enumerate(zip(photos, landmarks)):
        degraded = apps.degrade(photo, result.gains[i])
        input_shift.append(apps.color_delta_e(apps.face_color(degraded, lm), apps.face_color(photo, lm)))
        found = normalizer.normalize(photo)
        if i in colors and found:
            reference_shift.append(apps.color_delta_e(
                colors[i], adjust.mean_face_color(found[0].image, normalizer.template)))
    exposure = result.gains[:, 1]
    return {"photos": len(photos), "exposure_range": [float(exposure.min()), float(exposure.max())],
            "input_shift": float(np.mean(input_shift)),
            "reference_shift": float(np.mean(reference_shift)) if reference_shift else None,
            "rows": result.rows()}


def adjustment_section(normalizer, sets: dict[str, list[str]], data_root: str | Path,
                       train_color: np.ndarray | None, seed: int, log=print) -> dict:
    """:func:`adjustment_experiment` on each named set of photos (paths under ``data_root``)."""
    out = {}
    for name, sources in sets.items():
        photos, lms, _ = load_raw_photos(data_root, sources, log)
        if photos:
            log(f"applications: photo adjustment on {len(photos)} photos of {name}")
            out[name] = adjustment_experiment(normalizer, photos, lms, train_color, seed)
    return out


def _fit_rows(landmark_sets: np.ndarray, size: int) -> dict:
    errors_px, errors_iod, coef_norms = [], [], []
    for lm in landmark_sets:
        fit = avatar.fit_shape(np.asarray(lm, np.float64), (size, size))
        errors_px.append(fit.mean_error)
        errors_iod.append(fit.mean_error / avatar.interocular(lm))
        coef_norms.append(float(np.linalg.norm(fit.coefficients)))
    return {"faces": len(errors_px), "mean_error_px": float(np.mean(errors_px)),
            "median_error_px": float(np.median(errors_px)), "mean_error_iod": float(np.mean(errors_iod)),
            "max_error_iod": float(np.max(errors_iod)), "mean_coef_norm": float(np.mean(coef_norms))}


def avatar_section(photos: protocol.TestPhotos, outputs: dict[str, np.ndarray], config: ApplicationsConfig) -> dict:
    """Fits avatars to the normalized faces' landmarks (``outputs`` of ``protocol.run_model``)
    and to the aligned input photos' landmarks of the first photo of each test person."""
    idx = first_photo_per_person(photos, config.avatar_people)
    if not idx:
        return {}
    size = photos.images.shape[1]
    return {"image_size": size,
            "rows": {"normalized face (model)": _fit_rows(outputs["landmarks"][idx], size),
                     "aligned input photo": _fit_rows(photos.landmarks[idx], size)}}


def sample_pictures(normalizer, sample_paths: Sequence[str | Path], output: Path,
                    config: ApplicationsConfig, log=print) -> dict[str, str]:
    """Writes ``adjust_grid.png`` (Fig. 14: original, degraded, its normalized face, the
    corrections) and ``avatar_views.png`` (Fig. 13: normalized face with landmarks, renders at
    yaw 0 and 30) for the given photos; returns figure name -> file name."""
    photos, lms, kept = load_raw_photos(".", [str(p) for p in sample_paths], log)
    if not photos:
        return {}
    figures = {}
    colour = [i for i, p in enumerate(photos) if not adjust.is_greyscale(p)]
    if colour:
        cp, cl = [photos[i] for i in colour], [lms[i] for i in colour]
        result = apps.evaluate_adjustment(cp, cl, adjustment_correctors(normalizer, cp, cl, None),
                                          apps.DegradeConfig(seed=config.seed), num_examples=len(cp))
        reference_faces = []
        for ex in result.examples:
            found = normalizer.normalize(ex["degraded"])
            reference_faces.append(found[0].image if found else np.full_like(cp[0][:8, :8], 255))
        io_utils.save_image_atomic(output / "adjust_grid.png", result.grid(extra_rows={"its normalized face": reference_faces}))
        figures["adjust"] = "adjust_grid.png"
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for image, path in list(zip(photos, map(Path, kept)))[: config.picture_avatars]:
            found = normalizer.normalize(image)
            if not found:
                continue
            made = apps.make_avatar(found[0].image, found[0].landmarks, Path(tmp) / f"{path.stem}.ply")
            panels.append(io_utils.read_rgb(made.files[-1]))
    if panels:
        io_utils.save_image_atomic(output / "avatar_views.png", viz.image_grid(panels, cols=1))
        figures["avatar"] = "avatar_views.png"
    return figures


def adjustment_sets(photos: protocol.TestPhotos, aligned_root: str | Path, config: ApplicationsConfig
                    ) -> dict[str, list[str]]:
    """The photo sets of the adjustment experiment: the first photo of each LFW test person (as
    the issue asks) and the held-out London people's neutral photos, whose studio lighting and
    white balance make the untouched photo a meaningful ground truth (LFW's own photos carry
    uncontrolled casts, so there the score also counts the original's cast as error)."""
    sets = {"LFW test": [photos.sources[i] for i in first_photo_per_person(photos, config.adjust_people)]}
    try:
        london = protocol.load_test_photos(aligned_root, "london/")
    except ValueError:
        return sets
    neutral = [s for s in london.sources if f"/{LONDON_NEUTRAL}/" in s][: config.adjust_people]
    if neutral:
        sets["London held-out (studio)"] = neutral
    return sets


def applications(normalizer, photos: protocol.TestPhotos, outputs: dict[str, np.ndarray], faces_root: str | Path,
                 data_root: str | Path, output: Path, sample_paths: Sequence[str | Path] = (),
                 config: ApplicationsConfig = ApplicationsConfig(), log=print) -> dict:
    """The whole section: adjustment and avatar numbers, plus figures from ``sample_paths``."""
    train_color = training_mean_color(faces_root, normalizer.template)
    sets = adjustment_sets(photos, Path(faces_root) / "aligned", config)
    result = {"adjustment": adjustment_section(normalizer, sets, data_root, train_color, config.seed, log)}
    log("applications: avatars")
    result["avatar"] = avatar_section(photos, outputs, config)
    result["figures"] = sample_pictures(normalizer, sample_paths, output, config, log) if sample_paths else {}
    return result

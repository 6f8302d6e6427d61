"""The applications section of the evaluation report (paper Sec. 7.3-7.4, issue 9).

Numbers come from LFW View 1 *test* people and held-out London people (never trained on);
pictures come from photos the caller passes and credits (the repository's London samples, CC
BY), because LFW's terms do not allow publishing its photos.

- Photo adjustment: each photo is degraded with a known random exposure gain and colour cast
  and corrected by :func:`normface.evaluation.adjustment.evaluate_adjustment`: with the normalized face of the
  degraded photo as the reference (the method), the untouched photo's own face colour (the
  oracle: the best a perfect normalized face could do), the training set's mean face colour (a
  control with no knowledge of the person), and the grey-world and white-patch baselines. Two
  sets: the first photo of each LFW test person (as the issue asks) and the London held-out
  neutral photos, whose studio light and white balance make the untouched photo a meaningful
  ground truth (an LFW original carries its own uncontrolled cast, which the score then counts
  as the method's error).
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

from normface.apps import adjust, avatar
from normface.evaluation import adjustment
from normface.data import faceset, splits
from normface.faces.detection import find_faces68
from normface.utils import io_utils
from normface.utils import pictures
from normface.evaluation import protocol

ADJUST_PEOPLE = 100   # photos per adjustment set (one per person)
AVATAR_PEOPLE = 60    # avatars fitted per landmark source (about 0.8 s each on 2 cores)
PICTURE_AVATARS = 3   # sample photos shown as avatars
NORMALIZED = "normalized face"
ORACLE = "oracle colour"
TRAIN_MEAN = "train mean colour"
LFW_SET = "LFW test"
LONDON_SET = "London held-out (studio)"


@dataclasses.dataclass(frozen=True)
class ApplicationsConfig:
    """Sizes and seed of the applications section (``quick`` reports shrink them)."""

    adjust_people: int = ADJUST_PEOPLE
    avatar_people: int = AVATAR_PEOPLE
    picture_avatars: int = PICTURE_AVATARS
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class PhotoSet:
    """Photos (paths under the data root) and how their face is chosen: LFW photos are centred
    on their person (stage 1 aligns the centre face), studio photos hold one face."""

    sources: list[str]
    choose: str = "largest"


def first_photo_per_person(photos: protocol.TestPhotos, limit: int) -> list[int]:
    """Indices of each person's first photo, for the first ``limit`` people (in key order)."""
    seen: dict[str, int] = {}
    for i, person in enumerate(photos.people):
        seen.setdefault(str(person), i)
    return sorted(seen.values())[:limit]


def training_mean_color(faces_root: str | Path, template) -> np.ndarray | None:
    """Mean YCrCb face-box colour of the averaged *training* faces (None if there are none)."""
    colors = []
    for f in sorted((faceset.averaged_dir(faces_root) / "train").glob("*/*.png")):
        image = io_utils.read_rgb(f)
        if image.shape[:2] == (template.size, template.size):
            colors.append(adjust.mean_face_color(image, template))
    return np.mean(colors, axis=0) if colors else None


def load_raw_photos(data_root: str | Path, photo_set: PhotoSet, log=print
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Reads the photos (paths relative to ``data_root``, or absolute) and detects the landmarks
    of the face ``photo_set.choose`` picks; photos that cannot be read or have no face are
    logged and left out. Returns (photos, landmarks, kept sources)."""
    photos, landmarks, kept = [], [], []
    for src in photo_set.sources:
        path = Path(data_root) / src
        try:
            image = io_utils.read_rgb(path)
            found = find_faces68(image, choose=photo_set.choose)
        except (OSError, ValueError) as err:
            log(f"skipping {path}: {err}")
            continue
        if not found:
            log(f"skipping {path}: no face found")
            continue
        photos.append(image)
        landmarks.append(found[0].landmarks)
        kept.append(src)
    return photos, landmarks, kept


def adjustment_correctors(normalizer, photos, landmarks, train_color: np.ndarray | None,
                          record: dict[int, adjust.Adjustment] | None = None) -> dict:
    """The correctors of the experiment (:data:`NORMALIZED`, :data:`ORACLE` and, given a colour,
    :data:`TRAIN_MEAN`); ``record`` collects the method's :class:`normface.apps.Adjustment`s."""
    correctors = {NORMALIZED: adjustment.normalized_corrector(normalizer, record),
                  ORACLE: adjustment.oracle_corrector(photos, landmarks)}
    if train_color is not None:
        correctors[TRAIN_MEAN] = adjustment.target_corrector(train_color, landmarks)
    return correctors


def adjustment_experiment(normalizer, photos: Sequence[np.ndarray], landmarks: Sequence[np.ndarray],
                          train_color: np.ndarray | None, seed: int) -> dict:
    """Runs :func:`normface.evaluation.adjustment.evaluate_adjustment`, then compares the method on each
    degraded photo with the method on the untouched one:

    reference_shift: mean Delta E between the normalized face colours (0 = the reference ignores
    the degradation); input_shift: the same for the photo's own face colour (what the
    degradation did); luma_std_photos / luma_std_normalized: spread across people of the face
    luma of the untouched photos and of their normalized faces.
    """
    record: dict[int, adjust.Adjustment] = {}
    result = adjustment.evaluate_adjustment(photos, landmarks,
                                      adjustment_correctors(normalizer, photos, landmarks, train_color, record),
                                      adjustment.DegradeConfig(seed=seed), num_examples=0)
    reference_shift, input_shift, luma_photo, luma_normalized = [], [], [], []
    for i, photo in enumerate(photos):
        try:
            untouched = adjust.auto_adjust(photo, normalizer)
        except ValueError:
            continue
        luma_photo.append(untouched.source_color[0])
        luma_normalized.append(untouched.target_color[0])
        if i in record:
            reference_shift.append(adjustment.color_delta_e(record[i].target_color, untouched.target_color))
            input_shift.append(adjustment.color_delta_e(record[i].source_color, untouched.source_color))
    exposure = result.gains[:, 1]

    def mean(values):
        return float(np.mean(values)) if values else None

    return {"photos": len(photos), "exposure_range": [float(exposure.min()), float(exposure.max())],
            "input_shift": mean(input_shift), "reference_shift": mean(reference_shift),
            "luma_std_photos": float(np.std(luma_photo)) if luma_photo else None,
            "luma_std_normalized": float(np.std(luma_normalized)) if luma_normalized else None,
            "rows": result.rows()}


def adjustment_sets(photos: protocol.TestPhotos, aligned_root: str | Path, config: ApplicationsConfig
                    ) -> dict[str, PhotoSet]:
    """:data:`LFW_SET`: the first photo of each LFW test person in ``photos``;
    :data:`LONDON_SET`: the held-out London people's neutral photos (if the face set has them)."""
    if len(photos.sources) != len(photos.keys):
        raise ValueError("the test photos carry no source paths: load them with protocol.load_test_photos")
    sets = {LFW_SET: PhotoSet([photos.sources[i] for i in first_photo_per_person(photos, config.adjust_people)],
                              choose="center")}
    try:
        london = protocol.load_test_photos(aligned_root, "london/")
    except ValueError:
        return sets
    neutral = [s for s in london.sources if Path(s).parent.name == splits.LONDON_NEUTRAL][: config.adjust_people]
    if neutral:
        sets[LONDON_SET] = PhotoSet(neutral)
    return sets


def adjustment_section(normalizer, sets: dict[str, PhotoSet], data_root: str | Path,
                       train_color: np.ndarray | None, seed: int, log=print) -> dict:
    """:func:`adjustment_experiment` on each named set, the normalizer choosing faces as the
    set says."""
    out = {}
    for name, photo_set in sets.items():
        photos, lms, _ = load_raw_photos(data_root, photo_set, log)
        if photos:
            log(f"applications: photo adjustment on {len(photos)} photos of {name}")
            out[name] = adjustment_experiment(normalizer.choosing(photo_set.choose), photos, lms, train_color, seed)
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


def check_publishable(sample_paths: Sequence[str | Path], data_root: str | Path) -> None:
    """Refuses LFW photos as figure samples: LFW's terms do not allow publishing them."""
    lfw = (Path(data_root) / "lfw").resolve()
    for path in sample_paths:
        if lfw in Path(path).resolve().parents:
            raise ValueError(f"{path}: an LFW photo cannot be a figure sample (LFW's terms do not cover "
                             "redistribution); pass photos you may publish")


def sample_pictures(normalizer, sample_paths: Sequence[str | Path], output: Path,
                    config: ApplicationsConfig, log=print) -> dict[str, str]:
    """Writes ``adjust_grid.png`` (Fig. 14: original, degraded, its normalized face, the
    corrections; colour photos only) and ``avatar_views.png`` (Fig. 13: normalized face with
    landmarks, renders at yaw 0 and 30) for the given photos; returns figure -> file name."""
    photos, lms, kept = load_raw_photos(".", PhotoSet([str(p) for p in sample_paths]), log)
    figures = {}
    colour = [i for i, p in enumerate(photos) if not adjust.is_greyscale(p)]
    if colour:
        cp, cl = [photos[i] for i in colour], [lms[i] for i in colour]
        record: dict[int, adjust.Adjustment] = {}
        result = adjustment.evaluate_adjustment(cp, cl, adjustment_correctors(normalizer, cp, cl, None, record),
                                          adjustment.DegradeConfig(seed=config.seed), num_examples=len(cp))
        blank = np.full((8, 8, 3), 255, np.uint8)
        faces = [record[i].result.image if i in record else blank for i in range(len(cp))]
        io_utils.save_image_atomic(output / "adjust_grid.png", result.grid(extra_rows={"its normalized face": faces}))
        figures["adjust"] = "adjust_grid.png"
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for image, src in list(zip(photos, kept))[: config.picture_avatars]:
            try:
                found = normalizer.normalize(image)
                if found:
                    made = avatar.make_avatar(found[0].image, found[0].landmarks, Path(tmp) / f"{Path(src).stem}.ply")
                    panels.append(io_utils.read_rgb(made.files[-1]))
            except ValueError as err:  # one unusable sample must not cost the report
                log(f"no avatar for sample {src}: {err}")
    if panels:
        io_utils.save_image_atomic(output / "avatar_views.png", pictures.image_grid(panels, cols=1))
        figures["avatar"] = "avatar_views.png"
    return figures


def applications(normalizer, photos: protocol.TestPhotos, outputs: dict[str, np.ndarray], faces_root: str | Path,
                 data_root: str | Path, output: Path, sample_paths: Sequence[str | Path] = (),
                 samples_credit: str = "", config: ApplicationsConfig = ApplicationsConfig(), log=print) -> dict:
    """The whole section: adjustment and avatar numbers, plus figures from ``sample_paths``
    (never LFW photos), credited by ``samples_credit``."""
    check_publishable(sample_paths, data_root)
    train_color = training_mean_color(faces_root, normalizer.template)
    sets = adjustment_sets(photos, faceset.aligned_dir(faces_root), config)
    result = {"adjustment": adjustment_section(normalizer, sets, data_root, train_color, config.seed, log)}
    log("applications: avatars")
    result["avatar"] = avatar_section(photos, outputs, config)
    result["figures"] = sample_pictures(normalizer, sample_paths, output, config, log) if sample_paths else {}
    result["figures_credit"] = samples_credit if result["figures"] else ""
    return result

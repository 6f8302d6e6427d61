"""Scoring a training recipe on people it never trained on (the recipe ablation of issue 17).

A decoder trained at a small size (64x64 from the 128x128 records) is scored on the *validation*
people's real photos (model selection never looks at test people) and on the held-out London
people (smiling -> neutral):

- **cross-photo identity**: the output from photo A against the real photo B of the same person
  (within 0.6, TAR at 0.1% / 1% FAR, rank-1; :func:`normface.evaluation.protocol.identity_table`).
  The encoder that scores identity also made the features, so own-input identity flatters;
  cross-photo is the honest number.
- **own identity**: output against its own input photo.
- **the independent judge** (``judge_*``, when given: :mod:`normface.encoders.judge`): the same
  cross-photo protocol by a recognizer that never trained the model
  (:func:`normface.evaluation.protocol.judge_identity_table`: TAR at 0.1% FAR over all pairs and
  person-balanced, rank-1, own cosine, distinctiveness). :class:`JudgeScorer` gives training's
  checkpoint choice the same numbers.
- **picture measures**: face-box and hair-band sharpness and grid ratios of the outputs against
  the real aligned photos resampled to the output size, and grid ratios against the same photos
  placed on the outputs' landmarks (:func:`photos_at_geometry`: the face's proportions taken out)
  (:func:`normface.evaluation.metrics.picture_measures`; 1.0 = like the photos).
- **London smiling -> neutral**: landmark error (IOD) and pixel L1 of the normalized smiling
  photo against the person's neutral photo (both at the output size).

Features and descriptors of the real photos come from the full-size aligned photos (what the
encoder sees of a photo at inference); outputs are encoded at their own size through the same
chip path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import cv2
import keras
import numpy as np

from normface.data import decompose, schema
from normface.evaluation import metrics, protocol, report
from normface.utils.pictures import to_uint8

# encode_fn(images uint8 [b, S, S, 3], landmarks [b, 68, 2]) -> (features [b, F], descriptors [b, D])
EncodeFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass
class HeldOut:
    """Real photos of people never trained on, with their encoder features and descriptors."""

    photos: protocol.TestPhotos
    features: np.ndarray      # [n, F]
    descriptors: np.ndarray   # [n, D]
    judged: np.ndarray | None = None  # [n, J] the independent judge's unit embeddings of the photos


def with_judge(held: HeldOut, judge) -> HeldOut:
    """``held`` with the judge's embeddings of its photos (computed once, reused at every scoring)."""
    return dataclasses.replace(held, judged=judge.embed(held.photos.images, held.photos.landmarks))


def judge_row(judge, held: HeldOut, images: np.ndarray, marks: np.ndarray) -> dict:
    """The judge's identity numbers of the outputs decoded from each held-out photo (``images``
    ``[n, s, s, 3]`` uint8, ``marks`` ``[n, 68, 2]``) against the real photos."""
    real = held.judged if held.judged is not None else with_judge(held, judge).judged
    return protocol.judge_identity_table(real, judge.embed(images, marks), held.photos.people)


class JudgeScorer:
    """Training's validation scorer by an independent judge (the Trainer's ``scorer``): decodes
    every held-out (validation) photo's features with the model being trained and returns the
    judge's cross-photo numbers, the person-balanced TAR at 0.1% FAR that chooses the best
    checkpoint among them (:func:`normface.training.checkpoints.selection_score`). Plain NumPy
    floats: nothing here is differentiable or reaches a loss."""

    KEYS = ("cross_TAR@FAR0.1%_balanced", "cross_TAR@FAR0.1%", "cross_TAR@FAR1.0%_balanced", "cross_mean_cosine",
            "rank1", "distinctiveness")

    def __init__(self, judge, held: HeldOut):
        self.judge = judge
        self.held = held if held.judged is not None else with_judge(held, judge)

    def __call__(self, model: keras.Model) -> dict[str, float]:
        images, marks = decode(model, self.held.features)
        row = judge_row(self.judge, self.held, images, marks)
        return {k: float(row[k]) for k in self.KEYS}


def load_model(path: str | Path) -> keras.Model:
    """The normalizer model of a packed model (a folder with ``weights.npz``) or of a training run
    (a folder with ``export/``): what the experiment scripts compare side by side."""
    from normface.serving import export_format, packed

    path = Path(path)
    return packed.load(path)[0] if packed.is_packed(path) else export_format.load_keras(path / "export")


def load_held_out(aligned_root: str | Path, encode_fn: EncodeFn, split: str, prefix: str) -> HeldOut:
    """The aligned ``split`` photos whose person id starts with ``prefix``, encoded."""
    photos = protocol.load_test_photos(aligned_root, prefix, split=split)
    features, descriptors = encode_fn(photos.images, photos.landmarks)
    return HeldOut(photos, np.asarray(features, np.float32), np.asarray(descriptors, np.float32))


def cross_photo_examples(held: HeldOut, size: int, max_pairs: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Cross-photo pairs of the held-out people, as the trainer's identity examples: the features
    of photo A with the descriptor, image and landmarks of photo B, another photo of the same
    person (the next one, cyclically). The trainer scores the output from A against B's
    descriptor, so its best checkpoint is chosen by cross-photo identity.

    Returns ``features`` [n, F], ``descriptor`` [n, D] float32, ``image`` [n, size, size, 3]
    float32 in [0, 1], ``landmarks`` [n, 68, 2] at ``size``; a seeded subset of ``max_pairs``
    (0: all). ValueError when no person has two photos."""
    people = held.photos.people
    by_person: dict[str, list[int]] = {}
    for i, person in enumerate(people.tolist()):
        by_person.setdefault(person, []).append(i)
    a_idx, b_idx = [], []
    for idx in by_person.values():
        if len(idx) > 1:
            a_idx += idx
            b_idx += idx[1:] + idx[:1]
    if not a_idx:
        raise ValueError("cross-photo identity needs people with at least two photos; none here")
    order = np.random.default_rng(seed).permutation(len(a_idx))
    if max_pairs:
        order = order[:max_pairs]
    a, b = np.asarray(a_idx)[order], np.asarray(b_idx)[order]
    images, marks = resize_faces(held.photos.images[b], held.photos.landmarks[b], size)
    return {schema.FEATURES: held.features[a], schema.DESCRIPTOR: held.descriptors[b],
            schema.IMAGE: images.astype(np.float32) / 255.0, schema.LANDMARKS: np.asarray(marks, np.float32)}


def resize_faces(images: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``[n, S, S, 3]`` uint8 faces and their landmarks at ``size`` (area resampling, as the input
    pipeline's ``output_size``; pixel centres stay at integers)."""
    from normface.data.pipeline import scale_landmarks

    src = images.shape[1]
    if src == size:
        return images, landmarks
    small = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    return small, scale_landmarks(np.asarray(landmarks, np.float64), src, size)


def decode(model: keras.Model, features: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A normalizer model's output images (uint8) and landmarks for ``[n, F]`` features."""
    images, marks = [], []
    for start in range(0, len(features), batch_size):
        out = model(features[start:start + batch_size], training=False)
        images.append(to_uint8(np.asarray(out["image"])))
        marks.append(np.asarray(out["landmarks"]))
    return np.concatenate(images), np.concatenate(marks)


def score_model(model: keras.Model, validation: HeldOut, encode_fn: EncodeFn,
                london: HeldOut | None = None, judge=None) -> dict:
    """The recipe row of one model (module docstring); plain floats. With a ``judge``, its
    numbers join as ``judge_*`` columns."""
    images, marks = decode(model, validation.features)
    size = images.shape[1]
    _, out_desc = encode_fn(images, marks)
    people = validation.photos.people
    far = metrics.threshold_at_far(metrics.impostor_distances(validation.descriptors, people), 0.001)
    row = protocol.identity_table(validation.descriptors, np.asarray(out_desc), people, far)
    if judge is not None:
        judged = judge_row(judge, validation, images, marks)
        row.update({f"judge_{k}": v for k, v in judged.items() if v is not None})
    row.update(picture_row(images, marks, validation))
    row["validation_photos"] = len(people)
    row["validation_people"] = len(set(people.tolist()))
    if london is not None:
        row.update(london_row(model, london, size))
    return row


def photos_at_geometry(photos: np.ndarray, photo_landmarks: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``[n, S, S, 3]`` uint8: each photo (uint8, landmarks ``[n, 68, 2]`` (x, y) pixels) warped
    so its landmarks land on ``landmarks`` (its output's): a real face's own detail at the output's
    geometry, the reference of the geometry-matched grid ratio
    (:func:`normface.evaluation.metrics.picture_measures`). One bicubic resampling, as the model
    places its texture."""
    placed = decompose.warp_faces(np.asarray(photos, np.float32) / 255.0, photo_landmarks, landmarks,
                                  resampling="bicubic")
    return to_uint8(placed)


def picture_row(images: np.ndarray, marks: np.ndarray, validation: HeldOut) -> dict:
    """:func:`normface.evaluation.metrics.picture_measures` of the outputs decoded from every
    validation photo (``images`` ``[n, s, s, 3]`` uint8, ``marks`` ``[n, 68, 2]``, in the photos'
    order) against those photos aligned to the same frame, and against the same photos placed on
    the outputs' landmarks (:func:`photos_at_geometry`)."""
    real, real_marks = resize_faces(validation.photos.images, validation.photos.landmarks, images.shape[1])
    return metrics.picture_measures(images, marks, real, real_marks, photos_at_geometry(real, real_marks, marks))


def ceiling_row(validation: HeldOut, judge=None) -> dict:
    """The real-photo ceiling of :func:`score_model`'s identity columns: each validation photo
    itself in place of its output (photo A against the other photos B of the same person), by
    dlib and, with a ``judge``, by the judge (``judge_*``); picture measures of photos against
    themselves are 1 by definition and left out."""
    people = validation.photos.people
    far = metrics.threshold_at_far(metrics.impostor_distances(validation.descriptors, people), 0.001)
    row = {k: v for k, v in protocol.identity_table(validation.descriptors, validation.descriptors, people, far).items()
           if k.startswith("cross_") or k == "rank1"}
    if judge is not None:
        real = validation.judged if validation.judged is not None else with_judge(validation, judge).judged
        row.update({f"judge_{k}": v for k, v in protocol.judge_identity_table(real, None, people).items() if v is not None})
    return row


def london_row(model: keras.Model, london: HeldOut, size: int) -> dict:
    """Smiling -> neutral numbers of the model's output and of the smiling photo itself."""
    s_idx, n_idx = report.london_expression_pairs(london.photos)
    if not len(s_idx):
        return {}
    images, marks = decode(model, london.features[s_idx])
    neutral, neutral_marks = resize_faces(london.photos.images[n_idx], london.photos.landmarks[n_idx], size)
    smiling, smiling_marks = resize_faces(london.photos.images[s_idx], london.photos.landmarks[s_idx], size)
    rows = report.expression_rows({"model": (images, marks), "smiling": (smiling, smiling_marks)},
                                  neutral, neutral_marks)
    return {"london_landmark_error_iod": rows["model"]["landmark_error_iod"],
            "london_mouth_landmark_error_iod": rows["model"]["mouth_landmark_error_iod"],
            "london_pixel_l1": rows["model"]["pixel_l1"],
            "london_ssim": rows["model"]["ssim"],
            "london_delta_e_face_box": rows["model"]["delta_e_face_box"],
            "london_smiling_photo_mouth_landmark_error_iod": rows["smiling"]["mouth_landmark_error_iod"],
            "london_smiling_photo_landmark_error_iod": rows["smiling"]["landmark_error_iod"],
            "london_smiling_photo_pixel_l1": rows["smiling"]["pixel_l1"],
            "london_people": rows["model"]["people"]}


def london_adjust_row(normalizer, aligned_root: str | Path, data_root: str | Path, seed: int = 0) -> dict:
    """``normface adjust`` on the held-out London people's neutral photos (each degraded by a known
    random exposure and colour cast, then corrected from its normalized face): mean face Delta E
    of the method and of the white-patch baseline (:mod:`normface.evaluation.applications`)."""
    from normface.data import splits
    from normface.evaluation import applications

    london = protocol.load_test_photos(aligned_root, "london/")
    sources = [s for s in london.sources if Path(s).parent.name == splits.LONDON_NEUTRAL]
    photos, marks, _ = applications.load_raw_photos(data_root, applications.PhotoSet(sources), log=lambda _: None)
    if not photos:
        return {}
    rows = applications.adjustment_experiment(normalizer, photos, marks, None, seed)["rows"]
    return {"london_adjust_delta_e": rows[applications.NORMALIZED]["mean_delta_e"],
            "london_white_patch_delta_e": rows["white patch"]["mean_delta_e"], "london_adjust_photos": len(photos)}


def merge_earlier_rows(order: list[str], now: dict[str, dict], earlier: dict[str, dict],
                       ceiling_now: dict, ceiling_earlier: dict | None, rtol: float = 1e-6) -> dict[str, dict]:
    """An ablation table of the rows in ``order`` (names), each row's scores as measured ``now``
    or, for a row not rerun here, as an ``earlier`` run measured them: a new machine's workspace
    holds only the rows trained on it, and a rerun must not drop the rest from the committed table.

    Earlier rows are comparable only when they were scored on the same held-out people by the same
    judge: the ceiling rows (real photos in place of outputs) of both runs must agree within
    ``rtol``, else ValueError naming the measure that moved. Names in ``earlier`` but not in
    ``order`` are dropped (rows taken out of the ablation)."""
    kept = [n for n in order if n not in now and n in earlier]
    if kept:
        if not ceiling_earlier:
            raise ValueError(f"merge_earlier_rows: the earlier table has no ceiling row to check its {len(kept)} "
                             "kept rows against; rerun them")
        for key, value in ceiling_now.items():
            old = ceiling_earlier.get(key)
            if isinstance(value, (int, float)) and isinstance(old, (int, float)) and not np.isclose(
                    value, old, rtol=rtol, atol=0.0):
                raise ValueError(f"merge_earlier_rows: the ceiling's {key} was {old} in the earlier table and is "
                                 f"{value} now: other held-out photos or another judge, its rows "
                                 f"({', '.join(kept[:3])}...) are not comparable; rerun them or write elsewhere")
    return {n: now[n] if n in now else earlier[n] for n in order if n in now or n in earlier}

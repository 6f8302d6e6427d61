"""Scoring a training recipe on people it never trained on (the recipe ablation of issue 17).

A decoder trained at a small size (64x64 from the 128x128 records) is scored on the *validation*
people's real photos (model selection never looks at test people) and on the held-out London
people (smiling -> neutral):

- **cross-photo identity**: the output from photo A against the real photo B of the same person
  (within 0.6, TAR at 0.1% / 1% FAR, rank-1; :func:`normface.evaluation.protocol.identity_table`).
  The encoder that scores identity also made the features, so own-input identity flatters;
  cross-photo is the honest number.
- **own identity**: output against its own input photo.
- **sharpness**: mean variance of the Laplacian inside the landmark hull of the outputs, as a ratio
  to the same measure on the real aligned photos resampled to the output size (1.0 = as sharp).
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

from normface.evaluation import metrics, protocol, report
from normface.faces.masks import face_mask
from normface.faces.quality import sharpness
from normface.utils.pictures import to_uint8

# encode_fn(images uint8 [b, S, S, 3], landmarks [b, 68, 2]) -> (features [b, F], descriptors [b, D])
EncodeFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass
class HeldOut:
    """Real photos of people never trained on, with their encoder features and descriptors."""

    photos: protocol.TestPhotos
    features: np.ndarray      # [n, F]
    descriptors: np.ndarray   # [n, D]


def load_held_out(aligned_root: str | Path, encode_fn: EncodeFn, split: str, prefix: str) -> HeldOut:
    """The aligned ``split`` photos whose person id starts with ``prefix``, encoded."""
    photos = protocol.load_test_photos(aligned_root, prefix, split=split)
    features, descriptors = encode_fn(photos.images, photos.landmarks)
    return HeldOut(photos, np.asarray(features, np.float32), np.asarray(descriptors, np.float32))


def resize_faces(images: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``[n, S, S, 3]`` uint8 faces and their landmarks at ``size`` (area resampling, as the input
    pipeline's ``output_size``; pixel centres stay at integers)."""
    from normface.data.pipeline import scale_landmarks

    src = images.shape[1]
    if src == size:
        return images, landmarks
    small = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    return small, scale_landmarks(np.asarray(landmarks, np.float64), src, size)


def hull_sharpness(images: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean over faces of the Laplacian variance of the grey image inside the landmark hull."""
    values = []
    for image, marks in zip(images, landmarks):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        lap = cv2.Laplacian(grey, cv2.CV_64F)
        mask = face_mask(marks, image.shape[0])
        values.append(float(lap[mask].var()) if mask.any() else sharpness(grey))
    return float(np.mean(values))


def decode(model: keras.Model, features: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A normalizer model's output images (uint8) and landmarks for ``[n, F]`` features."""
    images, marks = [], []
    for start in range(0, len(features), batch_size):
        out = model(features[start:start + batch_size], training=False)
        images.append(to_uint8(np.asarray(out["image"])))
        marks.append(np.asarray(out["landmarks"]))
    return np.concatenate(images), np.concatenate(marks)


def score_model(model: keras.Model, validation: HeldOut, encode_fn: EncodeFn,
                london: HeldOut | None = None) -> dict:
    """The recipe row of one model (module docstring); plain floats."""
    images, marks = decode(model, validation.features)
    size = images.shape[1]
    _, out_desc = encode_fn(images, marks)
    people = validation.photos.people
    far = metrics.threshold_at_far(metrics.impostor_distances(validation.descriptors, people), 0.001)
    row = protocol.identity_table(validation.descriptors, np.asarray(out_desc), people, far)
    real, real_marks = resize_faces(validation.photos.images, validation.photos.landmarks, size)
    row["sharpness_ratio"] = hull_sharpness(images, marks) / max(hull_sharpness(real, real_marks), 1e-9)
    row["validation_photos"] = len(people)
    row["validation_people"] = len(set(people.tolist()))
    if london is not None:
        row.update(london_row(model, london, size))
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
            "london_pixel_l1": rows["model"]["pixel_l1"],
            "london_ssim": rows["model"]["ssim"],
            "london_smiling_photo_landmark_error_iod": rows["smiling"]["landmark_error_iod"],
            "london_smiling_photo_pixel_l1": rows["smiling"]["pixel_l1"],
            "london_people": rows["model"]["people"]}

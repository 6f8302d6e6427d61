"""One face from many photos of a person, morphs between two faces, and walks along a feature
direction (issue 32).

Everything here works in the encoder's feature space, through the public pieces of
:class:`normface.serving.normalizer.FaceNormalizer`: ``align``, ``normalize_aligned`` (features
and dlib descriptors of the input faces), ``to_results`` and the decoder (``normalizer.backend``'s
on LiteRT, ``normalizer.model`` on TensorFlow).

* :func:`merge_results` combines several photos' features into one (their mean, or a mean
  weighted by how well each photo agrees with the others) and decodes it once. Photos whose dlib
  descriptor lies above dlib's 0.6 same-person threshold from the others are named in a warning
  (:class:`MergeError` with ``strict``). The independent judge never enters this path.
* :func:`interpolate` decodes the straight line between two feature vectors (a morph); the
  decoder turns each point into its landmarks and texture, so both move together.
* :func:`decode` turns any feature vectors into faces (``normface explore`` walks a direction).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from normface.encoders.threshold import SAME_PERSON_THRESHOLD
from normface.utils.pictures import to_uint8

WEIGHTINGS = ("mean", "agreement")


class MergeError(ValueError):
    """The photos cannot be merged (too few faces, or with ``strict`` a photo of someone else)."""


@dataclasses.dataclass
class Decoded:
    """Faces decoded from feature vectors: ``image`` ``[b, S, S, 3]`` uint8, ``landmarks``
    ``[b, 68, 2]``, ``texture`` ``[b, S, S, 3]`` uint8, ``descriptor`` ``[b, D]`` the dlib
    descriptor of each output (re-encoded)."""

    image: np.ndarray
    landmarks: np.ndarray
    texture: np.ndarray
    descriptor: np.ndarray


@dataclasses.dataclass
class MergedFace:
    """One face from several photos.

    image / landmarks / texture: the decoded merged face; features: the combined features;
    weights: ``[n]`` each photo's share of them (sum 1); distances: ``[n]`` each photo's dlib
    descriptor distance to the mean descriptor of the other photos; outliers: indices of the
    photos above 0.6 (another person?); confidence: the mean dlib distance of the merged face to
    the photos; warnings: readable lines naming the odd photos out."""

    image: np.ndarray
    landmarks: np.ndarray
    texture: np.ndarray
    features: np.ndarray
    weights: np.ndarray
    distances: np.ndarray
    outliers: list[int]
    confidence: float
    warnings: list[str]

    def to_json(self, names: Sequence[str] | None = None) -> dict:
        names = list(names) if names is not None else [str(i) for i in range(len(self.weights))]
        return {"photos": [{"name": n, "weight": round(float(w), 4), "distance": round(float(d), 4),
                            "outlier": i in self.outliers}
                           for i, (n, w, d) in enumerate(zip(names, self.weights, self.distances))],
                "confidence": round(float(self.confidence), 4), "warnings": list(self.warnings),
                "landmarks": np.round(self.landmarks, 2).tolist()}


def decode(normalizer, features: np.ndarray) -> Decoded:
    """Decodes ``[b, F]`` feature vectors with ``normalizer``'s model into faces (and re-encodes
    them for their dlib descriptors), on its backend: LiteRT's decoder, NumPy warp and encoder
    (:meth:`LiteRTBackend.decode`, no TensorFlow) or the pieces of the TensorFlow path's compiled
    function, where a batch of one runs as two (so a face never depends on its batch)."""
    features = np.asarray(features, np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must be [b, F], got shape {features.shape}")
    if getattr(normalizer, "backend", None) is not None:
        # LiteRT gives a face what decoding it alone gives, whatever its batch (head resized to
        # the batch, bodies in fixed chunks: test_a_batch_decodes_as_its_faces_one_at_a_time).
        out = normalizer.backend.decode(features)
        return Decoded(out["image"], out["landmarks"], out["texture"], out["output_descriptor"])
    if len(features) == 1:
        out = decode(normalizer, np.concatenate([features] * 2))
        return Decoded(out.image[:1], out.landmarks[:1], out.texture[:1], out.descriptor[:1])
    import tensorflow as tf

    from normface.encoders.face_encoding import face_chips

    out = normalizer.model(tf.constant(features), training=False)
    image = tf.clip_by_value(out["image"], 0.0, 1.0)
    encoder = normalizer.encoder
    desc = encoder.encode(face_chips(encoder, image * 255.0, out["landmarks"])).descriptor
    texture = out.get("texture", tf.zeros_like(image))
    return Decoded(to_uint8(image.numpy()), out["landmarks"].numpy(), to_uint8(texture.numpy()), desc.numpy())


def leave_one_out_distances(descriptors: np.ndarray) -> np.ndarray:
    """``[n]`` each descriptor's distance to the mean of the others (two photos: their distance)."""
    d = np.asarray(descriptors, np.float64)
    n = len(d)
    if n < 2:
        return np.zeros(n)
    others = (d.sum(0, keepdims=True) - d) / (n - 1)
    return np.linalg.norm(d - others, axis=-1)


def merge_weights(distances: np.ndarray, weighting: str = "mean") -> np.ndarray:
    """Each photo's share of the merged features: equal (``mean``), or (``agreement``) falling
    with its distance to the others, ``exp(-(d / 0.6)^2)``, so a stray photo counts less."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    d = np.asarray(distances, np.float64)
    w = np.ones_like(d) if weighting == "mean" else np.exp(-(d / SAME_PERSON_THRESHOLD) ** 2)
    return w / w.sum()


def merge_features(features: np.ndarray, descriptors: np.ndarray, weighting: str = "mean"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(merged ``[F]`` features, ``[n]`` weights, ``[n]`` leave-one-out descriptor distances)."""
    features = np.asarray(features, np.float64)
    distances = leave_one_out_distances(descriptors)
    weights = merge_weights(distances, weighting)
    return (weights[:, None] * features).sum(0).astype(np.float32), weights, distances


def normalize_merged(normalizer, images: Sequence[np.ndarray], names: Sequence[str] | None = None,
                     weighting: str = "mean", strict: bool = False,
                     errors: dict[int, str] | None = None) -> tuple[MergedFace, list]:
    """One face from several photos of a person: each photo's chosen face is aligned and encoded,
    their features combined (:func:`merge_features`) and decoded once. Returns the merged face
    and each photo's single-photo :class:`~normface.serving.normalizer.Result` (None for a photo
    without a usable face).

    ``names`` name the photos in messages (default "photo 1", ...). A photo without a face, or
    that cannot be prepared, raises :class:`MergeError` naming it, or with ``errors`` (a dict) is
    left out and ``errors[index]`` says why. A photo whose dlib descriptor lies above 0.6 from the
    mean of the others is named in ``MergedFace.warnings`` (with ``strict``: MergeError). One
    photo gives exactly its single-photo face."""
    images = list(images)
    names = list(names) if names is not None else [f"photo {i + 1}" for i in range(len(images))]
    if len(names) != len(images):
        raise ValueError(f"{len(names)} names for {len(images)} photos")
    if not images:
        raise MergeError("no photos to merge")
    faces, kept = [], []
    for i, image in enumerate(images):
        try:
            found = normalizer.align(image)
            if not found:
                raise ValueError("no face found")
        except ValueError as err:
            if errors is None:
                raise MergeError(f"{names[i]}: {err}") from err
            errors[i] = str(err)
            continue
        faces.append(found[0])
        kept.append(i)
    if not faces:
        raise MergeError("no face found in any photo: " + ", ".join(names))
    out = normalizer.normalize_aligned(np.stack([f[0] for f in faces]), np.stack([f[1] for f in faces]))
    singles: list = [None] * len(images)
    for i, res in zip(kept, normalizer.to_results(faces, out)):
        singles[i] = res
    merged = merge_arrays(normalizer, out["features"], out["input_descriptor"], [names[i] for i in kept],
                          weighting=weighting, strict=strict)
    if len(kept) == 1:  # one face: its single-photo output, byte for byte
        r = singles[kept[0]]
        merged = dataclasses.replace(merged, image=r.image, landmarks=r.landmarks, confidence=float(r.confidence),
                                     texture=r.texture if r.texture is not None else np.zeros_like(r.image))
    return merged, singles


def merge_arrays(normalizer, features: np.ndarray, descriptors: np.ndarray, names: Sequence[str],
                 weighting: str = "mean", strict: bool = False, decode_face: bool = True) -> MergedFace:
    """:func:`normalize_merged` from the photos' ``[n, F]`` features and ``[n, D]`` dlib
    descriptors (``decode_face=False`` skips the decoder: image, landmarks and texture None)."""
    names = list(names)
    merged, weights, distances = merge_features(features, descriptors, weighting)
    outliers = [i for i, d in enumerate(distances) if d > SAME_PERSON_THRESHOLD]
    warnings = []
    if outliers:
        if len(names) == 2:
            text = (f"{names[0]} and {names[1]} look like different people (dlib distance {distances[0]:.2f} > "
                    f"{SAME_PERSON_THRESHOLD})")
        else:
            text = "; ".join(f"{names[i]} looks like someone else (dlib distance {distances[i]:.2f} to the other "
                             f"photos > {SAME_PERSON_THRESHOLD})" for i in outliers)
        if strict:
            raise MergeError(text)
        warnings.append(text)
    if not decode_face:
        return MergedFace(None, None, None, merged, weights, distances, outliers, float("nan"), warnings)
    out = decode(normalizer, merged[None])
    confidence = float(np.mean(np.linalg.norm(np.asarray(descriptors) - out.descriptor[0], axis=-1)))
    return MergedFace(out.image[0], out.landmarks[0], out.texture[0], merged, weights, distances, outliers,
                      confidence, warnings)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """``[steps, F]`` points on the straight line from ``a`` to ``b`` (both ends included)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1.0 - t) * np.asarray(a, np.float64)[None] + t * np.asarray(b, np.float64)[None]).astype(np.float32)


def morph(normalizer, a: np.ndarray, b: np.ndarray, steps: int = 8) -> Decoded:
    """Decoded faces along the line from features ``a`` to ``b`` (``steps`` of them, ends included)."""
    return decode(normalizer, interpolate(a, b, steps))


def strip(images: Sequence[np.ndarray]) -> np.ndarray:
    """Images side by side in one ``[S, n*S, 3]`` row."""
    return np.concatenate(list(images), axis=1)

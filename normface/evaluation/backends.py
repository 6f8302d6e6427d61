"""The LiteRT path against the TensorFlow path on real photos (issue 31).

Both backends of :class:`normface.serving.normalizer.FaceNormalizer` normalize the same photos end
to end (detection to the output face); :func:`compare` measures how far apart their outputs are:
the 99th percentile of the per-pixel, per-channel grey difference over every face (acceptance:
<= 1 grey level) and the largest landmark difference (<= 0.05 px). ``experiments/backend_equality.py``
runs it on LFW View 1 *test* photos (:func:`lfw_test_photos`); the sample photos are checked by
``tests/serving/test_litert_backend.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from normface.data import splits

IMAGE_P99_LIMIT = 1.0  # grey levels, 99th percentile of |ours - theirs| over pixels and channels
LANDMARK_LIMIT = 0.05  # pixels, largest |ours - theirs| over every landmark coordinate


def lfw_test_photos(data_root: str | Path, count: int = 50, seed: int = 0) -> list[Path]:
    """``count`` LFW photos of View 1 *test* people (the test split of :func:`splits.make_splits`,
    never trained on): a seeded draw of people, one seeded photo each, in the order drawn."""
    root = Path(data_root)
    people = sorted(p.split("/", 1)[1] for p in splits.make_splits(root)["test"] if p.startswith("lfw/"))
    rng = np.random.default_rng(seed)
    photos = []
    for i in rng.permutation(len(people)):
        files = sorted((root / "lfw" / people[i]).glob("*.jpg"))
        if files:
            photos.append(files[int(rng.integers(len(files)))])
        if len(photos) == count:
            return photos
    raise ValueError(f"{root}: only {len(photos)} LFW test photos, {count} asked for")


def compare(ours: Sequence, theirs: Sequence) -> dict:
    """How far two backends' results of the same faces lie apart (:class:`Result` lists, face by
    face): grey differences of the output image and of the texture (99th percentile over every
    pixel and channel of every face, the worst face's 99th percentile, the largest), landmark
    differences in pixels (largest, mean), and the largest confidence difference; ``pass`` when
    the image's 99th percentile is <= :data:`IMAGE_P99_LIMIT` and the landmarks within
    :data:`LANDMARK_LIMIT`."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"expected the same faces on both sides, got {len(ours)} and {len(theirs)}")
    out: dict = {"faces": len(ours)}
    for key in ("image", "texture"):
        diffs = [np.abs(getattr(a, key).astype(np.int16) - getattr(b, key).astype(np.int16)) for a, b in zip(ours, theirs)]
        pooled = np.concatenate([d.ravel() for d in diffs])
        out[key] = {"p99": float(np.percentile(pooled, 99)), "worst_face_p99": max(float(np.percentile(d, 99)) for d in diffs),
                    "max": int(pooled.max()), "mean": round(float(pooled.mean()), 4),
                    "share_equal": round(float(np.mean(pooled == 0)), 4)}
    lm = np.stack([np.abs(np.asarray(a.landmarks, np.float64) - np.asarray(b.landmarks, np.float64))
                   for a, b in zip(ours, theirs)])
    out["landmarks_px"] = {"max": round(float(lm.max()), 5), "mean": round(float(lm.mean()), 5)}
    out["confidence_max_diff"] = round(max(abs(float(a.confidence) - float(b.confidence)) for a, b in zip(ours, theirs)), 5)
    out["pass"] = bool(out["image"]["p99"] <= IMAGE_P99_LIMIT and out["landmarks_px"]["max"] <= LANDMARK_LIMIT)
    return out


def compare_backends(lite, tensorflow, photos: Sequence[np.ndarray], batch_size: int = 16) -> dict:
    """Normalizes ``photos`` end to end with both normalizers (the largest face of each) and
    :func:`compare`\\ s the faces both found; ``photos_without_face`` counts the photos left out."""
    ours = lite.normalize_many(photos, batch_size=batch_size, errors={})
    theirs = tensorflow.normalize_many(photos, batch_size=batch_size, errors={})
    pairs = [(a[0], b[0]) for a, b in zip(ours, theirs) if a and b]
    boxes_differ = sum(a.face_box != b.face_box for a, b in pairs)
    if boxes_differ:
        raise ValueError(f"{boxes_differ} photo(s) whose face the two paths found in different places (detection "
                         "is shared code: it must not differ)")
    result = compare([a for a, _ in pairs], [b for _, b in pairs])
    result["photos"] = len(photos)
    result["photos_without_face"] = len(photos) - len(pairs)
    return result


def markdown(result: dict) -> str:
    """The comparison as a markdown table with the acceptance limits."""
    image, texture, lm = result["image"], result["texture"], result["landmarks_px"]
    rows = [
        ("output image: 99th percentile grey difference (all pixels of all faces)", f"{image['p99']:g}",
         f"<= {IMAGE_P99_LIMIT:g}"),
        ("output image: the worst face's 99th percentile / largest difference / mean",
         f"{image['worst_face_p99']:g} / {image['max']} / {image['mean']:.3f}", ""),
        ("output image: share of values equal", f"{image['share_equal']:.1%}", ""),
        ("texture: 99th percentile / largest / mean", f"{texture['p99']:g} / {texture['max']} / {texture['mean']:.3f}", ""),
        ("landmarks: largest / mean difference (px)", f"{lm['max']:.4f} / {lm['mean']:.4f}", f"<= {LANDMARK_LIMIT:g}"),
        ("confidence: largest difference", f"{result['confidence_max_diff']:.4f}", ""),
    ]
    lines = ["| measure (LiteRT against TensorFlow) | value | acceptance |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)

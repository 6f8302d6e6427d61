"""Linear probes on the encoder's features for FairFace's labelled attributes (issue 32): what
the dlib features of a photo say about its annotated age group, gender and race, beside what the
features of its *normalized* face (the output re-encoded) still say — the paper's "analyzing
facial attributes", and a measure of what the decoder keeps.

The labels are FairFace annotators' perceptions of the people in the photos, not facts about
them, and its gender label is binary. The numbers measure how linearly those perceived labels can
be read from the features; nothing here is a tool to classify people.

Probes: multinomial logistic regression (numpy, L2, full-batch gradient descent) on standardized
features, trained on training-split FairFace photos and scored on the held-out test photos.
Age also gets a ridge regression on the age groups' midpoints; its weight vector is the
direction ``normface explore`` walks (shipped as ``normface/apps/assets/age_direction.json``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normface.data import align, faceset

ATTRIBUTES = ("age_group", "gender", "race")
AGE_MIDPOINTS = {"0-2": 1.0, "3-9": 6.0, "10-19": 15.0, "20-29": 25.0, "30-39": 35.0, "40-49": 45.0,
                 "50-59": 55.0, "60-69": 65.0, "70+": 75.0}
PERCEIVED = ("FairFace labels are annotators' perceptions of age group, gender (binary) and race, not "
             "self-reported facts; these numbers say how linearly the features predict those perceived labels.")


def load_photos(aligned_root: str | Path, split: str, prefix: str = "fairface/", max_photos: int | None = None,
                seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, list[dict]]:
    """(keys, ``[n, S, S, 3]`` aligned faces, ``[n, 68, 2]`` landmarks, labels) of the aligned
    ``split`` photos under ``prefix`` (a seeded subset of ``max_photos`` when given)."""
    records = [r for r in align.read_manifest(aligned_root)
               if r.get("split") == split and r["status"] == "aligned" and str(r.get("person", "")).startswith(prefix)]
    if not records:
        raise ValueError(f"no aligned {split} photos with prefix {prefix!r} in {aligned_root}")
    if max_photos and len(records) > max_photos:
        rng = np.random.default_rng(seed)
        records = [records[i] for i in sorted(rng.choice(len(records), max_photos, replace=False))]
    entries = [faceset.read_entry(aligned_root, split, r["key"]) for r in records]
    return ([r["key"] for r in records], np.stack([faceset.load_face_image(aligned_root, e) for e in entries]),
            np.stack([e.landmarks_array for e in entries]), [r.get("labels") or {} for r in records])


def photo_and_output_features(normalizer, images: np.ndarray, landmarks: np.ndarray, batch_size: int = 32,
                              log=None) -> tuple[np.ndarray, np.ndarray]:
    """``[n, F]`` encoder features of the photos and of their normalized faces (re-encoded
    through the same chip path)."""
    import tensorflow as tf

    from normface.encoders.face_encoding import face_chips

    enc = normalizer.encoder
    photo, output = [], []
    for start in range(0, len(images), batch_size):
        out = normalizer.normalize_aligned(images[start:start + batch_size], landmarks[start:start + batch_size])
        photo.append(out["features"])
        chips = face_chips(enc, tf.constant(out["image"], tf.float32), tf.constant(out["landmarks"], tf.float32))
        output.append(enc.encode(chips).features.numpy())
        if log and (start // batch_size) % 20 == 0:
            log(f"  {start + len(out['features'])}/{len(images)}")
    return np.concatenate(photo), np.concatenate(output)


class Standardizer:
    def __init__(self, x: np.ndarray):
        self.mean = x.mean(0)
        self.std = x.std(0) + 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def fit_logistic(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-3, steps: int = 500,
                 lr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (full-batch gradient descent): ``(W [F, C], b [C])``."""
    n, f = x.shape
    w, b = np.zeros((f, classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        logits = x @ w + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        grad = p - onehot
        w -= lr * (x.T @ grad / n + l2 * w)
        b -= lr * grad.mean(0)
    return w, b


def fit_ridge(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Ridge regression ``y ~ x @ w + c``: ``(w [F], c)``."""
    mean_y = y.mean()
    w = np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), x.T @ (y - mean_y))
    return w, float(mean_y)


def probe_table(train_x: dict[str, np.ndarray], train_labels: list[dict], test_x: dict[str, np.ndarray],
                test_labels: list[dict], attributes: tuple[str, ...] = ATTRIBUTES, min_photos: int = 20) -> dict:
    """Per attribute: accuracy of a probe per feature source (``train_x``/``test_x``: name ->
    ``[n, F]``), the majority-class baseline, and per group (label value with ``min_photos``+ test
    photos) the share of its photos the probe labels correctly (recall)."""
    table: dict = {}
    for attr in attributes:
        tr = np.array([str(lab.get(attr, "")) for lab in train_labels])
        te = np.array([str(lab.get(attr, "")) for lab in test_labels])
        classes = sorted(set(tr.tolist()))
        index = {c: i for i, c in enumerate(classes)}
        keep_tr = np.array([v in index for v in tr])
        keep_te = np.array([v in index for v in te])
        y_tr = np.array([index[v] for v in tr[keep_tr]])
        y_te = np.array([index[v] for v in te[keep_te]])
        majority = int(np.bincount(y_tr, minlength=len(classes)).argmax())
        entry = {"classes": classes, "train": int(keep_tr.sum()), "test": int(keep_te.sum()),
                 "majority_baseline": float((y_te == majority).mean()), "accuracy": {}, "groups": {}}
        for name in train_x:
            scale = Standardizer(train_x[name][keep_tr])
            w, b = fit_logistic(scale(train_x[name][keep_tr]), y_tr, len(classes))
            pred = (scale(test_x[name][keep_te]) @ w + b).argmax(1)
            entry["accuracy"][name] = float((pred == y_te).mean())
            for c, i in index.items():
                sel = y_te == i
                if sel.sum() >= min_photos:
                    entry["groups"].setdefault(c, {"photos": int(sel.sum())})[name] = float((pred[sel] == i).mean())
        table[attr] = entry
    return table


def age_direction(x: np.ndarray, labels: list[dict], l2: float = 1.0) -> dict:
    """The ridge direction of perceived age (years, from the age groups' midpoints) in raw
    feature space: moving features by ``t * direction`` moves the predicted age by ``t`` years.
    Also the features' per-dimension range, to keep walked features in it."""
    ages = np.array([AGE_MIDPOINTS.get(str(lab.get("age_group")), np.nan) for lab in labels])
    keep = np.isfinite(ages)
    scale = Standardizer(x[keep])
    w_std, _ = fit_ridge(scale(x[keep]), ages[keep], l2)
    w = w_std / scale.std                      # d(age)/d(raw feature)
    direction = w / float(w @ w)               # one year of predicted age per unit
    pred = scale(x[keep]) @ w_std + ages[keep].mean()
    return {"direction": direction.astype(np.float32).tolist(), "feature_dim": int(x.shape[1]),
            "train_photos": int(keep.sum()), "train_mae_years": float(np.abs(pred - ages[keep]).mean()),
            "feature_min": x.min(0).astype(np.float32).tolist(), "feature_max": x.max(0).astype(np.float32).tolist()}


def age_mae(direction_fit: tuple[Standardizer, np.ndarray, float], x: np.ndarray, labels: list[dict]) -> float:
    """Mean absolute error in years of an age ridge fit on ``x``'s labelled photos."""
    scale, w, c = direction_fit
    ages = np.array([AGE_MIDPOINTS.get(str(lab.get("age_group")), np.nan) for lab in labels])
    keep = np.isfinite(ages)
    return float(np.abs(scale(x[keep]) @ w + c - ages[keep]).mean())


def markdown(table: dict, names: dict[str, str]) -> str:
    """The probe table: accuracy per attribute and per group, one column per feature source."""
    cols = list(names)
    lines = [PERCEIVED, "", "| attribute / group | test photos | " + " | ".join(names[c] for c in cols)
             + " | majority class |", "|---|---|" + "---|" * (len(cols) + 1)]
    for attr, entry in table.items():
        lines.append(f"| **{attr}** (accuracy) | {entry['test']} | "
                     + " | ".join(f"{entry['accuracy'][c]:.3f}" for c in cols)
                     + f" | {entry['majority_baseline']:.3f} |")
        for group, row in entry["groups"].items():
            lines.append(f"| {attr}: {group} (recall) | {row['photos']} | "
                         + " | ".join(f"{row[c]:.3f}" for c in cols) + " | |")
    return "\n".join(lines)


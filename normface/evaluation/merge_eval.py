"""Does one face merged from three photos of a person look more like them than each photo's own
output? (issue 32, :mod:`normface.serving.merge`).

Protocol: LFW View 1 *test* people with 4+ aligned photos (four per person, seeded), all four
leave-one-out rotations: the held-out fourth photo is the probe's target; the other three give
(a) their merged face, (b) their three single-photo outputs, (c) themselves as real photos (the
ceiling). Scored only by the independent judge (:mod:`normface.encoders.judge`), never by dlib,
whose features made the faces. Person-balanced: every person weighs one in each mean and TAR.

Mean cosine: judge cosine to the held-out photo. TAR at 0.1% FAR: the threshold is each
method's impostor quantile (its faces against the held-out photos of every *other* person).
Bootstrap: people resampled with replacement (thresholds fixed at the full-set values), 95%
percentile interval of merged minus single.
"""

from __future__ import annotations

import numpy as np

from normface.evaluation import metrics, protocol
from normface.serving import merge

METHODS = ("merged (mean)", "merged (agreement)", "single photo", "real photo (ceiling)")
PHOTOS_PER_PERSON = 4


def choose_four(photos: protocol.TestPhotos, seed: int = 0) -> np.ndarray:
    """Indices ``[people, 4]`` of four photos per person (a seeded choice where more exist)."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in sorted(set(photos.people.tolist())):
        idx = np.flatnonzero(photos.people == person)
        if len(idx) >= PHOTOS_PER_PERSON:
            rows.append(np.sort(rng.choice(idx, PHOTOS_PER_PERSON, replace=False)))
    if len(rows) < 2:
        raise ValueError(f"need 2+ people with {PHOTOS_PER_PERSON}+ photos, found {len(rows)}")
    return np.stack(rows)


def rotation_scores(faces: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``faces`` ``[P, R, k, D]`` judge embeddings of the faces made without the held-out photo
    (R rotations, k faces each), ``targets`` ``[P, R, D]`` of the held-out photos ->
    ``[P, R, k, P]`` cosines of every face to every person's held-out photo of the same rotation."""
    f = faces / np.linalg.norm(faces, axis=-1, keepdims=True)
    t = targets / np.linalg.norm(targets, axis=-1, keepdims=True)
    return np.einsum("prkd,qrd->prkq", f, t)


def person_scores(sims: np.ndarray, far: float = 0.001) -> dict:
    """From :func:`rotation_scores`' cosines: per person ``[P]`` mean genuine cosine and
    person-balanced accept share at the method's impostor threshold (FAR ``far``)."""
    n = sims.shape[0]
    genuine = sims[np.arange(n), :, :, np.arange(n)]          # [P, R, k]
    other = ~np.eye(n, dtype=bool)                             # [P, P]
    impostor = np.moveaxis(sims, 3, 1)[other]                  # [P*(P-1), R, k]
    threshold = metrics.similarity_threshold_at_far(impostor.ravel(), far)
    return {"cosine": genuine.reshape(n, -1).mean(1), "accept": (genuine > threshold).reshape(n, -1).mean(1),
            "threshold": threshold}


def bootstrap_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ``mean(a - b)`` over people resampled with replacement."""
    rng = np.random.default_rng(seed)
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    means = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def evaluate(normalizer, judge, photos: protocol.TestPhotos, seed: int = 0, n_boot: int = 2000,
             log=print) -> dict:
    """The merge table: per method, person-balanced mean cosine and TAR at 0.1% FAR with the
    bootstrap interval of each merged method minus single photo."""
    chosen = choose_four(photos, seed)                         # [P, 4]
    flat = chosen.ravel()
    images, landmarks = photos.images[flat], photos.landmarks[flat]
    log(f"{len(chosen)} people x {PHOTOS_PER_PERSON} photos: normalizing")
    single = {k: [] for k in ("features", "input_descriptor", "image", "landmarks")}
    for start in range(0, len(flat), 32):
        out = normalizer.normalize_aligned(images[start:start + 32], landmarks[start:start + 32])
        for k in single:
            single[k].append(out[k])
    single = {k: np.concatenate(v) for k, v in single.items()}
    P, R = len(chosen), PHOTOS_PER_PERSON
    feats = single["features"].reshape(P, R, -1)
    descs = single["input_descriptor"].reshape(P, R, -1)
    rest = np.array([[j for j in range(R) if j != r] for r in range(R)])  # [R, 3]
    merged_images, merged_lms, weights = {}, {}, {}
    for weighting in merge.WEIGHTINGS:
        log(f"merging ({weighting})")
        combined = []
        for p in range(P):
            for r in range(R):
                m, w, _ = merge.merge_features(feats[p, rest[r]], descs[p, rest[r]], weighting)
                combined.append(m)
                weights.setdefault(weighting, []).append(w)
        imgs, lms = [], []
        combined = np.stack(combined)
        for start in range(0, len(combined), 32):
            dec = merge.decode(normalizer, combined[start:start + 32])
            imgs.append(dec.image)
            lms.append(dec.landmarks)
        merged_images[weighting], merged_lms[weighting] = np.concatenate(imgs), np.concatenate(lms)
    log("judging")
    real = judge.embed(images, landmarks).reshape(P, R, -1)
    outs = judge.embed(single["image"], single["landmarks"]).reshape(P, R, -1)
    targets = real                                             # rotation r holds out photo r
    embedded = {f"merged ({w})": judge.embed(merged_images[w], merged_lms[w]).reshape(P, R, 1, -1)
                for w in merge.WEIGHTINGS}
    embedded["single photo"] = outs[:, rest]                   # [P, R, 3, D]
    embedded["real photo (ceiling)"] = real[:, rest]
    scores = {name: person_scores(rotation_scores(embedded[name], targets)) for name in METHODS}
    rows = {}
    for name in METHODS:
        s = scores[name]
        row = {"mean_cosine": float(s["cosine"].mean()), "TAR@FAR0.1%": float(s["accept"].mean()),
               "threshold@FAR0.1%": float(s["threshold"])}
        if name.startswith("merged"):
            for key, measure in (("mean_cosine", "cosine"), ("TAR@FAR0.1%", "accept")):
                row[f"{key} - single"] = float((s[measure] - scores["single photo"][measure]).mean())
                row[f"{key} - single 95% CI"] = bootstrap_difference(s[measure], scores["single photo"][measure],
                                                                     n_boot, seed)
        rows[name] = row
    agreement_w = np.stack(weights["agreement"])
    return {"judge": judge.identity, "people": P, "photos_per_person": R, "rotations": R, "seed": seed,
            "bootstrap": n_boot, "rows": rows,
            "agreement_weights": {"min": float(agreement_w.min()), "max": float(agreement_w.max())},
            "samples": {"people": [str(photos.people[chosen[p, 0]]) for p in range(min(P, 6))],
                        "photos": images.reshape(P, R, *images.shape[1:])[:6],
                        "single": single["image"].reshape(P, R, *images.shape[1:])[:6],
                        "merged": merged_images["mean"].reshape(P, R, *images.shape[1:])[:6]}}


def markdown(results: dict) -> str:
    """The merge table as Markdown."""
    lines = [f"Independent judge: {results['judge']}. LFW View 1 test people with 4+ photos: "
             f"{results['people']} people x {results['photos_per_person']} photos, all "
             f"{results['rotations']} leave-one-out rotations (three photos -> compare with the fourth), "
             f"person-balanced; 95% intervals: {results['bootstrap']} bootstrap resamples of people (thresholds "
             "fixed at the full-set values).", "",
             "| method | mean cosine to held-out photo | TAR @ 0.1% FAR | merged - single: cosine [95% CI] | "
             "merged - single: TAR [95% CI] |", "|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        cells = [name, f"{row['mean_cosine']:.3f}", f"{row['TAR@FAR0.1%']:.3f}"]
        for key in ("mean_cosine", "TAR@FAR0.1%"):
            if f"{key} - single" in row:
                lo, hi = row[f"{key} - single 95% CI"]
                cells.append(f"{row[f'{key} - single']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

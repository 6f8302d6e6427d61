"""The evaluation report: every table and figure of issue 8 from one model and the face set.

``build_report`` runs the protocol (:mod:`normface.evaluation.protocol`) for the model and the
warping-based frontalization baseline, and the applications (photo adjustment and avatars,
:mod:`normface.evaluation.applications`); it writes ``report.md`` with the tables,
``results.json`` with every number, and PNG figures next to them. ``quick=True`` uses a seeded subset of test
people so the whole report takes minutes (exercised by tests/evaluation/test_report.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from normface.utils import io_utils
from normface.utils import paths
from normface.utils import pictures
from normface.encoders.similarity import SAME_PERSON_THRESHOLD
from normface.evaluation import applications, metrics, protocol
from normface.data import faceset, splits
from normface.faces.masks import face_mask
from normface.utils.tables import markdown_table

QUICK_PEOPLE = 25
QUICK_GROUP_PHOTOS = 60
MODEL = "normalized (model)"  # the row name of the evaluated model in every table
CEILING = "real photos, A vs B (ceiling)"
CEILING_PICTURES = "aligned real photos"
FRONTALIZED = "frontalized (baseline)"
GROUPS_PREFIX = "fairface/"   # held-out photos with demographic labels
RECORDS_SPLITS = ("validation", "test")
# Figures that show LFW faces: LFW's terms do not cover redistribution, so published copies of
# the report (publish_report) leave them out and say why.
LFW_FIGURES = {"people_grid.png": "people grid", "ablations.png": "ablation grid"}
# What publish_report copies besides report.md: the numbers and the figures without LFW faces.
PUBLISHABLE = ("results.json", "identity_histogram.png", "adjust_grid.png", "avatar_views.png")
QUICK_APPLICATIONS = applications.ApplicationsConfig(adjust_people=4, avatar_people=3, picture_avatars=1)


def _encode(normalizer, images: np.ndarray, landmarks: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Encoder descriptors of aligned images (the pipeline's own encoder path)."""
    import tensorflow as tf

    from normface.encoders.face_encoding import face_chips

    out = []
    for start in range(0, len(images), batch_size):
        chips = face_chips(normalizer.encoder, tf.constant(images[start:start + batch_size], tf.float32),
                           tf.constant(landmarks[start:start + batch_size], tf.float32))
        out.append(normalizer.encoder.encode(chips).descriptor.numpy())
    return np.concatenate(out)


def _frontalize_all(photos: protocol.TestPhotos, template, data_root) -> np.ndarray:
    from normface.evaluation import frontalize

    return np.stack([frontalize.frontalize(im, lm, template, data_root) for im, lm in zip(photos.images, photos.landmarks)])


def _histogram(path: Path, series: dict[str, np.ndarray], threshold: float, far_threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    bins = np.linspace(0, 1.2, 49)
    for name, values in series.items():
        ax.hist(values, bins=bins, alpha=0.55, label=f"{name} ({metrics.share_within(values, threshold):.0%} < {threshold})")
    ax.axvline(threshold, color="k", lw=1, ls="--")
    ax.axvline(far_threshold, color="r", lw=1, ls=":", label=f"FAR 0.1% threshold {far_threshold:.2f}")
    ax.set_xlabel("encoder distance: output vs its input photo")
    ax.set_ylabel("photos")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with io_utils.atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _people_grid(photos: protocol.TestPhotos, rows: dict[str, np.ndarray], people: int = 4, per_person: int = 4
                 ) -> np.ndarray:
    """Fig. 8/16 style: per person, its photos (top) and each method's outputs (rows below)."""
    names, counts = np.unique(photos.people, return_counts=True)
    per_person = int(min(per_person, counts.max()))
    chosen = [n for n, c in zip(names, counts) if c >= per_person][:people]
    tiles, labels = [], []
    for person in chosen:
        idx = np.flatnonzero(photos.people == person)[:per_person]
        for label, images in [("photo", photos.images)] + list(rows.items()):
            for i in idx:
                tiles.append(images[i])
                labels.append(f"{label}")
    if not tiles:
        raise ValueError("no test person has enough photos for the grid")
    return pictures.image_grid(tiles, cols=per_person, labels=labels)


def build_report(
    model_path: str | Path,
    faces_root: str | Path,
    output: str | Path,
    data_root: str | Path | None = None,
    quick: bool = False,
    seed: int = 0,
    ablations: str | Path | None = None,
    compare: dict[str, str | Path] | None = None,
    samples: Sequence[str | Path] = (),
    samples_credit: str = "",
    records: str | Path | None = None,
    judge=None,
    log=print,
) -> dict:
    """Runs the evaluation and writes the report folder; returns the results dict.

    ``ablations``: the folder written by ``experiments/ablations.py`` (its table and grid are
    copied into the report). ``compare``: other models (name -> export) whose identity numbers
    and histogram go next to the main model's (e.g. the same model without the identity loss).
    ``samples``: photos that may be published (never LFW) for the applications' figures, and
    ``samples_credit`` their attribution, printed under the figures. ``records``: a records
    folder (data_prep/build_records.py) whose validation faces every model is scored on (texture
    L1 against the registered texture, as in training). ``judge``: the independent identity judge
    (:class:`normface.encoders.judge.FaceJudge`) whose identity and distinctiveness numbers go
    beside dlib's; None leaves them out (and says so)."""
    from normface.serving.normalizer import FaceNormalizer, resolve_model_path
    from normface.utils.provenance import git_commit

    started = time.time()
    aligned_root = faceset.aligned_dir(faces_root)
    output = Path(output)
    normalizer = FaceNormalizer.from_pretrained(model_path)
    template = normalizer.template
    max_people = QUICK_PEOPLE if quick else None
    # The quick subset takes people with 2+ photos, so the cross-photo numbers exist.
    photos = protocol.load_test_photos(aligned_root, "lfw/", max_people=max_people, seed=seed,
                                       min_photos=2 if quick else 1)
    if photos.images.shape[1] != template.size:
        raise ValueError(f"face set is {photos.images.shape[1]}px but the model is {template.size}px: "
                         "use the face set of the model's size")
    log(f"{len(photos.keys)} photos of {len(set(photos.people))} LFW test people")
    out = protocol.run_model(normalizer, photos)
    real = out["input_descriptor"]
    impostor = metrics.impostor_distances(real, photos.people)
    far_t = metrics.threshold_at_far(impostor, 0.001)
    genuine_real = metrics.pairwise_distances(real, real)[
        (photos.people[:, None] == photos.people[None, :]) & ~np.eye(len(real), dtype=bool)]
    log("frontalizing (baseline)")
    frontal = _frontalize_all(photos, template, None if data_root is None else str(data_root))
    frontal_desc = _encode(normalizer, frontal, photos.landmarks)
    results = {
        "model": paths.portable(resolve_model_path(model_path)),  # never an absolute path
        "commit": git_commit(),
        "date": datetime.date.today().isoformat(),
        "quick": quick,
        "test_photos": len(photos.keys),
        "test_people": int(len(set(photos.people))),
        "impostor_pairs": int(impostor.size),
        "threshold_far_0.1%": far_t,
        "real_photo_pairs_within_0.6": metrics.share_within(genuine_real, SAME_PERSON_THRESHOLD) if genuine_real.size else None,
        "identity": {
            MODEL: protocol.identity_table(real, out["output_descriptor"], photos.people, far_t),
            FRONTALIZED: protocol.identity_table(real, frontal_desc, photos.people, far_t),
        },
        "invariance": {
            "aligned input photos": protocol.invariance_table(photos.images, photos.landmarks, photos.people),
            MODEL: protocol.invariance_table(out["image"], out["landmarks"], photos.people),
            "frontalized (baseline)": protocol.invariance_table(frontal, None, photos.people),
        },
    }
    models, outs = {MODEL: normalizer}, {MODEL: out}
    own_extra = {}
    for name, path in (compare or {}).items():
        models[name] = FaceNormalizer.from_pretrained(path)
        outs[name] = protocol.run_model(models[name], photos)
        results["identity"][name] = protocol.identity_table(real, outs[name]["output_descriptor"], photos.people, far_t)
        own_extra[name] = np.linalg.norm(outs[name]["output_descriptor"] - real, axis=-1)
    results["identity"] = {CEILING: ceiling_identity_row(real, photos.people, far_t), **results["identity"]}
    results["test_photos_missing"] = photos.missing
    if judge is not None:
        log(f"independent judge ({judge.name})")
        results["judge"] = judge_table(judge, photos, outs, frontal)
    results["pictures"] = picture_table(photos, outs, frontal, results.get("judge"))
    results["expression"] = expression_table(models, aligned_root)
    # Validation people (as training's validation/texture) and the records' test people, whom no
    # model trained on (a model trained on another split may have seen some validation people).
    results["records"] = {split: records_table(models, records, split) for split in RECORDS_SPLITS} if records else None
    log("labelled groups (held-out FairFace photos)")
    results["groups"] = groups_table(models, aligned_root, max_people=QUICK_GROUP_PHOTOS if quick else None,
                                     seed=seed, judge=judge)
    output.mkdir(parents=True, exist_ok=True)
    own = {
        MODEL: np.linalg.norm(out["output_descriptor"] - real, axis=-1),
        **own_extra,
        "frontalized (baseline)": np.linalg.norm(frontal_desc - real, axis=-1),
    }
    _histogram(output / "identity_histogram.png", own, SAME_PERSON_THRESHOLD, far_t)
    grid = _people_grid(photos, {"normalized": out["image"], "frontalized": frontal})
    io_utils.save_image_atomic(output / "people_grid.png", grid)
    results["ablations"] = include_ablations(ablations, output) if ablations else None
    app_config = dataclasses.replace(QUICK_APPLICATIONS if quick else applications.ApplicationsConfig(), seed=seed)
    results["applications"] = applications.applications(
        normalizer, photos, out, faces_root, data_root or paths.data_dir(), output, samples, samples_credit,
        app_config, log)
    results["seconds"] = round(time.time() - started, 1)
    io_utils.write_bytes_atomic(output / "results.json", json.dumps(results, indent=1, default=float).encode())
    io_utils.write_bytes_atomic(output / "report.md", render_markdown(results).encode())
    return results


def include_ablations(folder: str | Path, output: Path) -> dict:
    """Reads ``ablations.json`` and copies its grid next to the report."""
    folder = Path(folder)
    summary = json.loads((folder / "ablations.json").read_text())
    if (folder / "ablations.png").is_file():
        io_utils.write_bytes_atomic(output / "ablations.png", (folder / "ablations.png").read_bytes())
    return summary


def london_expression_pairs(photos: protocol.TestPhotos) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(smiling, neutral)`` of each held-out London person's two photos."""
    smiling = [i for i, k in enumerate(photos.keys) if splits.london_key_smiling(k) is True]
    neutral_of = {photos.people[i]: i for i, k in enumerate(photos.keys) if splits.london_key_smiling(k) is False}
    pairs = [(i, neutral_of[photos.people[i]]) for i in smiling if photos.people[i] in neutral_of]
    return np.array([p[0] for p in pairs], int), np.array([p[1] for p in pairs], int)


def expression_rows(methods: dict[str, tuple[np.ndarray, np.ndarray]], neutral: np.ndarray,
                    neutral_landmarks: np.ndarray) -> dict:
    """Each method's ``(images [n, S, S, 3] uint8, landmarks [n, 68, 2])`` against the neutral
    photos: landmark error (IOD) of all points and of the mouth (iBUG 48-67), pixel L1 and SSIM
    inside the neutral face's hull, and the colour difference (mean CIELAB Delta E, CIE76) of
    the central face box."""
    from normface.evaluation.adjustment import mean_delta_e

    rows = {}
    for name, (images, lms) in methods.items():
        box = metrics.face_box_mask(images.shape[1])
        l1, ssim_v, lm_err, mouth, delta_e = [], [], [], [], []
        for j in range(len(neutral)):
            mask = face_mask(neutral_landmarks[j], images.shape[1])
            l1.append(float(np.abs(images[j].astype(float) - neutral[j].astype(float))[mask].mean()))
            ssim_v.append(metrics.ssim(images[j], neutral[j], mask))
            lm_err.append(metrics.landmark_error(lms[j], neutral_landmarks[j]))
            mouth.append(metrics.landmark_error(lms[j], neutral_landmarks[j], metrics.MOUTH_POINTS))
            delta_e.append(mean_delta_e(images[j], neutral[j], box))
        rows[name] = {"landmark_error_iod": float(np.mean(lm_err)), "mouth_landmark_error_iod": float(np.mean(mouth)),
                      "pixel_l1": float(np.mean(l1)), "ssim": float(np.mean(ssim_v)),
                      "delta_e_face_box": float(np.mean(delta_e)), "people": len(neutral)}
    return rows


def expression_table(models: dict, aligned_root: Path) -> dict:
    """Held-out London people: each model's (name -> FaceNormalizer) normalized smiling photo vs
    the same person's neutral photo, beside the aligned smiling photo itself."""
    photos = protocol.load_test_photos(aligned_root, "london/")
    s_idx, n_idx = london_expression_pairs(photos)
    if not len(s_idx):
        return {}
    methods = {"aligned smiling photo (baseline)": (photos.images[s_idx], photos.landmarks[s_idx])}
    for name, normalizer in models.items():
        out = normalizer.normalize_aligned(photos.images[s_idx], photos.landmarks[s_idx])
        methods["normalized smiling photo (model)" if name == MODEL else name] = (out["image"], out["landmarks"])
    return expression_rows(methods, photos.images[n_idx], photos.landmarks[n_idx])


def ceiling_identity_row(real: np.ndarray, people: np.ndarray, far_threshold: float) -> dict:
    """dlib's cross-photo numbers of the real photos themselves (photo A against photo B): the
    ceiling every model's row is read against (own-photo columns do not apply)."""
    row = protocol.identity_table(real, real, people, far_threshold)
    return {k: (None if k.startswith("own_") else v) for k, v in row.items()}


def judge_table(judge, photos: protocol.TestPhotos, outs: dict[str, dict[str, np.ndarray]],
                frontal: np.ndarray | None = None) -> dict:
    """The independent judge's identity rows (:func:`normface.evaluation.protocol.judge_identity_table`):
    the real-photo ceiling, each model (name -> run_model output) and the frontalized baseline,
    each with its share of the ceiling."""
    real = judge.embed(photos.images, photos.landmarks)
    rows = {CEILING: protocol.judge_identity_table(real, None, photos.people)}
    for name, out in outs.items():
        rows[name] = protocol.judge_identity_table(real, judge.embed(out["image"], out["landmarks"]), photos.people)
    if frontal is not None:
        rows[FRONTALIZED] = protocol.judge_identity_table(real, judge.embed(frontal, photos.landmarks), photos.people)
    protocol.ceiling_shares(rows, CEILING)
    return {"judge": judge.identity, "rows": rows}


def picture_table(photos: protocol.TestPhotos, outs: dict[str, dict[str, np.ndarray]],
                  frontal: np.ndarray | None = None, judged: dict | None = None) -> dict:
    """What a person sees, each model's outputs (name -> run_model output) against the same
    photos aligned to the same frame (:func:`normface.evaluation.metrics.picture_measures`: face-box
    and hair-band sharpness, grid ratios), with the judge's distinctiveness beside it."""
    judge_rows = (judged or {}).get("rows", {})
    rows = {CEILING_PICTURES: {"sharpness_ratio": 1.0, "hair_band_sharpness_ratio": 1.0,
                               **{f"grid_ratio{kind}_p{p}": 1.0 for kind in ("", "_matched")
                                  for p in metrics.GRID_PERIODS},
                               "grid_ratio_max": 1.0, "grid_ratio_matched_max": 1.0, "matched_blur_sigma": 0.0}}
    methods = {name: (out["image"], out["landmarks"]) for name, out in outs.items()}
    if frontal is not None:
        methods[FRONTALIZED] = (frontal, photos.landmarks)
    for name, (images, marks) in methods.items():
        rows[name] = metrics.picture_measures(images, marks, photos.images, photos.landmarks)
    for name, row in rows.items():
        source = CEILING if name == CEILING_PICTURES else name
        row["distinctiveness"] = judge_rows.get(source, {}).get("distinctiveness")
    return rows


def records_table(models: dict, records_dir: str | Path, split: str = "validation", batch_size: int = 64) -> dict:
    """Each model's mean texture L1 (images in [0, 1], as training's validation/texture) and
    landmark error (px) on the ``split`` faces of ``records_dir`` (un-augmented averaged faces)."""
    from normface.data import pipeline, schema

    rows = {}
    for name, normalizer in models.items():
        dataset = pipeline.make_dataset(records_dir, split, batch_size, shuffle=False,
                                        output_size=normalizer.output_size)
        texture, marks, count = 0.0, 0.0, 0
        for batch in dataset:
            out = normalizer.model(batch[schema.FEATURES], training=False)
            texture += float(np.abs(np.asarray(out["texture"]) - batch[schema.TEXTURE].numpy()).mean((1, 2, 3)).sum())
            marks += float(np.linalg.norm(np.asarray(out["landmarks"]) - batch[schema.LANDMARKS].numpy(), axis=-1)
                           .mean(-1).sum())
            count += int(batch[schema.FEATURES].shape[0])
        rows[name] = {"texture_l1": texture / max(count, 1), "landmark_px": marks / max(count, 1), "faces": count}
    return rows


def groups_table(models: dict, aligned_root: Path, max_people: int | None = None, seed: int = 0,
                 judge=None) -> dict:
    """Own-input identity of each model by FairFace's labelled groups, on the held-out FairFace
    photos (one photo per person, so no cross-photo numbers): dlib's distances and, with a
    ``judge``, its cosines; {} without such photos."""
    try:
        photos = protocol.load_test_photos(aligned_root, GROUPS_PREFIX, max_people=max_people, seed=seed)
    except ValueError:
        return {}
    own, judged = {}, {}
    real = judge.embed(photos.images, photos.landmarks) if judge is not None else None
    for name, normalizer in models.items():
        out = protocol.run_model(normalizer, photos)
        own[name] = np.linalg.norm(out["output_descriptor"] - out["input_descriptor"], axis=-1)
        if judge is not None:
            judged[name] = np.sum(judge.embed(out["image"], out["landmarks"]) * real, axis=-1)
    return protocol.group_table(own, photos.labels, judged=judged or None)


def render_markdown(r: dict) -> str:
    """The report as markdown."""
    return f"""# normface evaluation report

Model `{r['model']}`, commit `{r['commit']}`, {r['date']}{' (QUICK: seeded subset of test people)' if r['quick'] else ''}.
Test data: {r['test_photos']} aligned photos of {r['test_people']} LFW View 1 *test* people (never
trained on). Encoder threshold at 0.1% false accepts over all {r['impostor_pairs']:,} impostor pairs
of their real photos: **{r['threshold_far_0.1%']:.3f}** (dlib's same-person threshold: 0.6). Real
photo pairs of the same person within 0.6: {r['real_photo_pairs_within_0.6']}. Photos of these people
with no face found in stage 1 (left out): {r.get('test_photos_missing', 'not counted')}. Run time: {r['seconds']} s.
{_judge_section(r.get('judge'))}
## Identity by dlib's encoder (paper Fig. 12) and cross-photo identity

dlib's ResNet gave the model its features and trained it (identity and perceptual losses): these
numbers flatter the model; the independent judge's above are the honest ones. `own_*`: output
vs its own input photo. `cross_*`: output of photo A vs another photo B of the same person,
against other people's photos (NbNet "type II"), at the real photos' 0.1% FAR threshold; rank-1:
outputs against a gallery of one real photo per person. The ceiling row is photo A vs photo B.

{markdown_table(r['identity'])}
![identity histogram](identity_histogram.png)

## Invariance (paper Fig. 8): spread across a person's photos (people with 3+ photos)

{markdown_table(r['invariance'])}
![people grid](people_grid.png)

## Expression ground truth (held-out London people): smiling photo vs the neutral photo

{markdown_table(r['expression'])}
## What a person sees: picture measures (LFW test outputs)

Each output against the same photo aligned to the same frame (ratios; 1.0: like the photos).
`sharpness_ratio`: variance of the luma's Laplacian on the central face box (rows 30-85%, columns
22-78%), output over photo, median over faces. `hair_band_sharpness_ratio`: the same on the band
within 0.6 IOD outside the landmark hull, at or above the nose tip (hair, forehead, temples).
`grid_ratio_pP`: share of the high-frequency spectrum (at or above 1/8 cycle per pixel; luma, mean
removed, Hann window) on the bins of a period-P lattice, median output over median photo; a
regular pattern from the upsampling raises it (`max`: the largest of P = 8, 16, 32), and so does a
blur. `grid_ratio_matched_pP`: the same against the photos blurred (Gaussian, `matched_blur_sigma`
px) to the outputs' sharpness: the blur taken out, left to the sharpness ratio.
`distinctiveness`: the judge's mean cosine between the outputs of different people (their real
photos: the first row); outputs that all look alike score high.

{markdown_table(r.get('pictures') or {})}
{_records_section(r.get('records'))}
{_groups_section(r.get('groups'))}
## Ablations (paper Figs. 9-11)

{_ablation_section(r.get('ablations'))}
{_applications_section(r.get('applications'))}"""


def _judge_section(judged: dict | None) -> str:
    if not judged:
        return ("\n## Identity by the independent judge\n\nNot run: no judge file (`$NORMFACE_JUDGE`, "
                "`experiments/evaluate.py --judge`).\n")
    return ("\n## Identity by the independent judge (MobileFaceNet, never trained the model)\n\n"
            f"Judge: {judged['judge']}; 5-point ArcFace alignment of each face from its 68 landmarks, cosine. "
            "Cross-photo: the output of photo A against every other photo B of the same person (genuine) and "
            "every photo of every other person (impostor); the threshold at a FAR is each row's impostor "
            "quantile. Without a suffix every genuine pair counts once (people with many photos dominate); "
            "`_balanced`: each person's pairs weigh one in all. Rank-1: gallery = the first photo of every "
            "test person. `own_mean_cosine`: output against its own photo. `distinctiveness`: mean cosine "
            "between different people. `_of_ceiling`: the row's share of the real photos' number.\n\n"
            + markdown_table(judged["rows"]))


def _records_section(splits: dict | None) -> str:
    if not splits:
        return ""
    text = ("## Faces of the training records' held-out splits\n\n"
            "Texture L1 of the decoded texture against the registered texture of the averaged face (images "
            "in [0, 1]), as training's `validation/texture`; landmark error in pixels. *validation*: the "
            "people the new model's checkpoints were chosen on; *test*: people no model trained on.\n\n")
    return text + "".join(f"**{split}**\n\n{markdown_table(rows)}\n" for split, rows in splits.items())


def _groups_section(rows: dict | None) -> str:
    if not rows:
        return ""
    return ("## By labelled group: held-out FairFace photos\n\n"
            "Output within 0.6 of its own input photo and the median distance (dlib), and the independent "
            "judge's mean cosine of the same pairs, by FairFace's labels "
            "(one photo per person: no cross-photo numbers; groups of 20+ photos).\n\n" + markdown_table(rows))


def _ablation_section(ablations: dict | None) -> str:
    if not ablations:
        return "Not run for this report (`python experiments/ablations.py`, then `--ablations=<folder>`).\n"
    rows = {name: {k: v for k, v in row.items() if k != "model_dir"} for name, row in ablations["rows"].items()}
    return (f"{ablations['size']}x{ablations['size']}, {ablations['steps']} steps, batch {ablations['batch_size']}, "
            f"validation metrics of each variant's best checkpoint:\n\n{markdown_table(rows)}\n![ablations](ablations.png)\n")


def _applications_section(apps_result: dict | None) -> str:
    if not apps_result:
        return ""
    adj, av, figures = apps_result.get("adjustment") or {}, apps_result.get("avatar") or {}, apps_result.get("figures", {})
    text = "## Automatic white balance and exposure (paper Sec. 7.4, Fig. 14)\n\n"
    if adj:
        text += ("Each photo is degraded in linear light by a known random exposure gain (x0.5..x2) and "
                 "red/blue casts (x0.7..x1.4), then corrected. Score: CIELAB Delta E (CIE76) of the face region "
                 f"against the untouched photo, lower is better. *{applications.NORMALIZED}*: the method (the "
                 f"degraded photo's normalized face is the reference, as `normface adjust`); *{applications.ORACLE}*: "
                 "the untouched photo's own face colour as the reference, the method's upper bound; "
                 f"*{applications.TRAIN_MEAN}*: every face shifted to the training faces' mean colour, a control "
                 "that knows nothing of the person. `reference shift`: how far (Delta E) the normalized face's "
                 "colour moves when its photo is degraded; `input shift`: how far the photo's own face colour "
                 "moves.\n\n")
    for name, block in adj.items():
        lo, hi = block["exposure_range"]
        text += (f"**{name}**: {block['photos']} photos, exposure gains x{lo:.2f}..x{hi:.2f}; reference shift "
                 f"{_number(block['reference_shift'])}, input shift {_number(block['input_shift'])}; spread "
                 f"(standard deviation) of face luma across people: {_number(block['luma_std_photos'])} in the "
                 f"photos, {_number(block['luma_std_normalized'])} in their normalized faces.\n\n"
                 + markdown_table(block["rows"]) + "\n")
    if "adjust" in figures:
        text += f"![adjustment examples]({figures['adjust']})\n\n"
    text += "## 3-D avatar (paper Sec. 7.3, Fig. 13)\n\n"
    if av:
        text += (f"Surrey model fitted to 68 landmarks of the first photo of each of {next(iter(av['rows'].values()))['faces']} "
                 f"LFW test people; reprojection error in pixels of the {av['image_size']}x{av['image_size']} frame "
                 "and in inter-ocular distances (IOD); `mean_coef_norm`: length of the fitted shape "
                 "coefficients (in standard deviations).\n\n" + markdown_table(av["rows"]) + "\n")
    if "avatar" in figures:
        text += (f"![avatars]({figures['avatar']})\n\nEach row: the normalized face of a sample photo with its "
                 "predicted landmarks (green) and the fitted model's (red), then renders at yaw 0 and 30 degrees.\n")
    if figures and apps_result.get("figures_credit"):
        text += f"\nPictures: {apps_result['figures_credit']}\n"
    return text


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def publish_report(report_dir: str | Path, dest: str | Path) -> list[Path]:
    """Copies ``report.md`` and the :data:`PUBLISHABLE` files of a report folder to ``dest``
    (e.g. into the repository); the links to the figures that show LFW faces
    (:data:`LFW_FIGURES`) become a note saying they stay in the workspace. Returns the files
    written."""
    report_dir, dest = Path(report_dir), Path(dest)
    text = (report_dir / "report.md").read_text()
    written = []
    for name, label in LFW_FIGURES.items():
        for line in [ln for ln in text.splitlines() if f"]({name})" in ln]:
            text = text.replace(line, f"(The {label}, `{name}`, shows LFW faces and stays in the workspace: "
                                      "LFW's terms do not cover redistribution.)")
    io_utils.write_bytes_atomic(dest / "report.md", text.encode())
    written.append(dest / "report.md")
    for name in PUBLISHABLE:
        if (report_dir / name).is_file():
            io_utils.write_bytes_atomic(dest / name, (report_dir / name).read_bytes())
            written.append(dest / name)
    return written

"""How much of the picture ablation's measured grid is the face's proportions (issue 28, session 14).

``grid_anatomy.md`` found every row's grid excess on one spectral bin, the band-edge ``(+-16, 0)``
at 128 (vertical frequency 1/8 cycle per pixel, constant across the frame). A face's horizontal
bands (brows, eyes, nose, mouth) put their energy on that column of the spectrum, and at that
frequency they add or cancel by their spacing: a band 4 px further down flips its sign. Outputs
share one geometry (frontal, neutral, landmarks near the mean), so their bands add or cancel
together; photos, in every pose and expression, land anywhere. This script separates the two parts
the output is made of, geometry (the predicted landmarks) and texture (the decoded texture frame):

* **swaps**: each model's decoded texture placed on other landmarks (the photos' own, training
  faces' frontal ones), and each photo's own detail placed on the model's landmarks
  (:func:`normface.evaluation.recipe.photos_at_geometry`: a perfect texture at that geometry);
* **stretches**: the same textures on the model's landmarks stretched vertically about the eye
  line (the face a few percent taller or shorter, nothing else changed);
* **proportions**: the mouth-to-eye and eye-to-brow distances (px at 128) of the photos, the
  outputs, the training records and the held-out London neutral photos.

Each placed set is scored as the table scores outputs: the plain grid ratios against the photos
(:func:`normface.evaluation.metrics.grid_ratio`) and the band-edge bin's share of the high band,
outputs over photos; and the geometry-matched grid ratio (against the photos placed on the same
landmarks), the measure :func:`normface.evaluation.metrics.picture_measures` adds.

    OMP_NUM_THREADS=2 python experiments/grid_geometry.py --faces=workspace/faces128 \\
        --records=workspace/records128m --results=experiments/results/picture128 \\
        --models=normface/serving/pretrained/normface128,workspace/picture/<row>,...
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from absl import app, flags

from normface.evaluation import metrics

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["normface/serving/pretrained/normface128"],
                  "Packed models (a folder with weights.npz) or picture ablation runs (a folder with export/).")
flags.DEFINE_string("faces", "workspace/faces128", "Faces folder of stage 1 (validation photos; London).")
flags.DEFINE_string("records", "workspace/records128m", "Records of stage 3 (training faces' frontal landmarks).")
flags.DEFINE_integer("photos", 400, "Validation photos decoded and compared (evenly spread over the split).")
flags.DEFINE_list("stretches", ["0.88", "0.92", "0.96", "1.0", "1.04", "1.08"],
                  "Vertical scales of the landmarks about the eye line.")
flags.DEFINE_string("results", None, "Folder for grid_geometry.md / .json (none: print only).")

SIZE = 128
BAND_EDGE = (16, 0)  # (vertical, horizontal) frequency index at SIZE: 1/8 cycle per pixel
EYES, MOUTH, BROWS = slice(36, 48), slice(48, 68), slice(17, 27)  # iBUG 68-point groups


def band_edge_share(images: np.ndarray) -> np.ndarray:
    """``[n]``: each image's share of its high-band energy on the band-edge bin pair (windowed luma,
    as :func:`metrics.grid_share` takes it; the pair's two bins hold equal power)."""
    power = metrics.windowed_power(metrics.luma(images))
    ky, kx = BAND_EDGE
    return 2 * power[:, ky, kx] / power[:, metrics.high_frequency_bins(SIZE)].sum(axis=1)


def scores(images: np.ndarray, photos: np.ndarray, reference: np.ndarray | None = None) -> dict[str, float]:
    """Plain grid ratios against the photos, the band-edge share (mean, over the photos'), and with
    a ``reference`` the geometry-matched grid ratios against it."""
    row = {f"p{p}": metrics.grid_ratio(images, photos, p) for p in metrics.GRID_PERIODS}
    row["max"] = max(row.values())
    row["band-edge share"] = float(band_edge_share(images).mean() / band_edge_share(photos).mean())
    if reference is not None:
        matched = {p: metrics.grid_ratio(images, reference, p) for p in metrics.GRID_PERIODS}
        row.update({f"geometry p{p}": v for p, v in matched.items()})
        row["geometry max"] = max(matched.values())
    return row


def stretch_about_eyes(landmarks: np.ndarray, scale: float) -> np.ndarray:
    """``[n, 68, 2]`` float32: each face's landmarks with their heights from its eye line (the mean
    of the eye points' y) multiplied by ``scale``; x unchanged."""
    out = np.array(landmarks, np.float32)
    eye = out[:, EYES, 1].mean(axis=1, keepdims=True)
    out[..., 1] = eye + (out[..., 1] - eye) * scale
    return out


def proportions(landmarks: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of the mouth-to-eye and eye-to-brow heights (px)."""
    marks = np.asarray(landmarks, np.float64)
    eye = marks[:, EYES, 1].mean(1)
    mouth_eye, eye_brow = marks[:, MOUTH, 1].mean(1) - eye, eye - marks[:, BROWS, 1].mean(1)
    return {"faces": len(marks), "mouth-eye": float(mouth_eye.mean()), "mouth-eye sd": float(mouth_eye.std()),
            "eye-brow": float(eye_brow.mean()), "eye-brow sd": float(eye_brow.std())}


def main(argv):
    del argv
    from normface.data import build, decompose, faceset, pipeline, schema, splits
    from normface.evaluation import protocol, recipe
    from normface.models.normalizer import mean_landmarks_of
    from normface.utils import io_utils
    from normface.utils.pictures import to_uint8
    from normface.utils.tables import markdown_table

    aligned = faceset.aligned_dir(Path(FLAGS.faces))
    held = protocol.load_test_photos(aligned, "lfw/", split="validation")
    idx = np.unique(np.linspace(0, len(held.people) - 1, FLAGS.photos).astype(int))
    photos, marks = recipe.resize_faces(held.images[idx], held.landmarks[idx], SIZE)
    features, _ = build.encode_fn_for("dlib")(held.images[idx], held.landmarks[idx])
    features = np.asarray(features, np.float32)
    # Training faces' frontal landmarks (the records' averaged near-frontal neutral faces), one per photo.
    training = np.stack([np.asarray(ex[schema.LANDMARKS]) for ex in itertools.islice(
        pipeline.examples(FLAGS.records, "train", shuffle=True, seed=0), len(idx))]).astype(np.float32)
    london = protocol.load_test_photos(aligned, "london/")
    neutral = [i for i, s in enumerate(london.sources) if Path(s).parent.name == splits.LONDON_NEUTRAL]
    _, london_marks = recipe.resize_faces(london.images[neutral], london.landmarks[neutral], SIZE)
    shape = {"validation photos (LFW, every pose)": proportions(marks),
             "training records (frontal, neutral)": proportions(training),
             "London neutral photos (held out, frontal)": proportions(london_marks)}
    swaps, stretched = {}, {}
    for path in (Path(p) for p in FLAGS.models):
        model = recipe.load_model(path)
        mean = mean_landmarks_of(model)
        out = [model(features[s:s + 64], training=False) for s in range(0, len(features), 64)]
        texture = np.concatenate([np.asarray(o["texture"], np.float32) for o in out])  # [0, 1]
        predicted = np.concatenate([np.asarray(o["landmarks"], np.float32) for o in out])
        shape[f"{path.name}: outputs"] = proportions(predicted)
        place = lambda geometry: to_uint8(decompose.to_image(texture, mean, geometry, resampling="bicubic"))
        at_outputs = recipe.photos_at_geometry(photos, marks, predicted)
        swaps[f"{path.name}: outputs"] = scores(place(predicted), photos, at_outputs)
        swaps[f"{path.name}: photos' own detail on its landmarks"] = scores(at_outputs, photos)
        swaps[f"{path.name}: its texture on the photos' landmarks"] = scores(place(marks), photos)
        swaps[f"{path.name}: its texture on training faces' landmarks"] = scores(place(training), photos)
        for scale in (float(s) for s in FLAGS.stretches):
            geometry = stretch_about_eyes(predicted, scale)
            reference = recipe.photos_at_geometry(photos, marks, geometry)
            stretched[f"{path.name}: x{scale:.2f}"] = {
                "mouth-eye": proportions(geometry)["mouth-eye"],
                **{f"texture {k}": v for k, v in scores(place(geometry), photos, reference).items()},
                **{f"photos {k}": v for k, v in scores(reference, photos).items()}}
        print(path.name, {k: {c: round(v, 3) for c, v in r.items()} for k, r in swaps.items() if k.startswith(path.name)},
              flush=True)
    rounded = lambda rows: {n: {k: round(v, 3) for k, v in r.items()} for n, r in rows.items()}
    text = (
        "# The measured grid and the face's proportions (issue 28, session 14)\n\n"
        f"{len(idx)} validation photos at {SIZE} and each model's outputs decoded from them "
        "(`experiments/grid_geometry.py`; its docstring says why). `pP`, `max`: the plain grid ratio against the "
        "photos (the table's); `band-edge share`: the bin pair (+-16, 0)'s share of the high band, mean over "
        "the photos'; `geometry pP`: the grid ratio against the photos' own detail placed on the same landmarks "
        "(`grid_ratio_geometry_*` of the table).\n\n"
        "## Swaps: each model's texture on other landmarks, the photos' detail on the model's\n\n"
        f"{markdown_table(rounded(swaps), first='placed')}\n"
        "## Stretches: the same textures on the model's landmarks, heights from the eye line scaled\n\n"
        f"{markdown_table(rounded(stretched), first='geometry')}\n"
        "## Proportions (px at 128)\n\n"
        f"{markdown_table(rounded(shape), first='landmarks')}\n")
    print(text)
    if FLAGS.results:
        io_utils.write_report(FLAGS.results, "grid_geometry", text, {
            "photos": int(len(idx)), "models": list(FLAGS.models), "swaps": swaps, "stretches": stretched,
            "proportions": shape})


if __name__ == "__main__":
    app.run(main)

"""Where the outputs' likeness to each other lives (issue 28, session 15).

The picture ablation's distinctiveness is the independent judge's mean cosine between the outputs
of different people (:func:`normface.evaluation.metrics.distinctiveness`): the shipped model's
outputs score about 0.12, the validation photos 0.016, and every row that held the grid bound
scored worse. Normalized faces should be somewhat alike (one pose, one expression, even light),
so this script asks how alike real faces are under the same conditions, and which part of the
output carries the rest:

* **references**: the photos; the photos' own detail placed on each model's output landmarks
  (:func:`normface.evaluation.recipe.photos_at_geometry`) and on one shared geometry (the mean of
  the output landmarks): the geometry's share; the held-out London neutral photos (studio, frontal,
  neutral, even light: real faces under the outputs' conditions);
* **parts**: the output's face (inside its landmarks' hull, grown about the hull's centre) in the
  surroundings of the photo placed on the same landmarks, and the reverse;
* **contraction**: each output's deviation from the mean output scaled by ``k`` (``k = 1``: the
  outputs as they are), scored as the table scores a row (judge TAR, distinctiveness, sharpness,
  grid ratios). A diagnosis only: the table's measures apply to the decoder's output, and no
  row's output is post-processed.

    OMP_NUM_THREADS=2 python experiments/distinct_anatomy.py --faces=workspace/faces128 \\
        --results=experiments/results/picture128 \\
        --models=normface/serving/pretrained/normface128,workspace/picture/<row>,...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["normface/serving/pretrained/normface128"],
                  "Packed models (a folder with weights.npz) or picture ablation runs (a folder with export/).")
flags.DEFINE_string("faces", "workspace/faces128", "Faces folder of stage 1 (validation photos; London).")
flags.DEFINE_list("scales", ["1.0", "1.15", "1.3", "1.6"], "Scales of each output's deviation from the mean output.")
flags.DEFINE_list("grows", ["1.0", "1.2"], "Sizes of the face region: the landmarks' hull grown about its centre.")
flags.DEFINE_string("judge", "default", "The independent judge (a .tflite path or 'default').")
flags.DEFINE_string("results", None, "Folder for distinct_anatomy.md / .json (none: print only).")

TABLE = ("judge_cross_TAR@FAR0.1%_balanced", "judge_distinctiveness", "sharpness_ratio", "grid_ratio_p16",
         "grid_ratio_max", "grid_ratio_geometry_p16", "grid_ratio_geometry_max")


def scale_deviation(images: np.ndarray, k: float) -> np.ndarray:
    """``[n, S, S, 3]`` uint8: each image's deviation from the mean of ``images`` multiplied by ``k``."""
    from normface.utils.pictures import to_uint8

    pixels = np.asarray(images, np.float32) / 255.0
    mean = pixels.mean(axis=0, keepdims=True)
    return to_uint8(mean + k * (pixels - mean))


def face_regions(landmarks: np.ndarray, size: int, grow: float) -> np.ndarray:
    """``[n, size, size, 1]`` float32 masks: each face's landmark hull grown by ``grow`` about the
    landmarks' centre, edge softened (Gaussian, 2 px)."""
    from normface.faces.masks import hull_mask

    marks = np.asarray(landmarks, np.float64)
    centre = marks.mean(axis=1, keepdims=True)
    grown = centre + grow * (marks - centre)
    return np.stack([hull_mask(m, size, blur_sigma=2.0) for m in grown]).astype(np.float32)[..., None]


def inside_of(inner: np.ndarray, outer: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``inner`` where ``masks`` is 1, ``outer`` elsewhere (uint8 images, the same shape)."""
    from normface.utils.pictures import to_uint8

    blend = masks * np.asarray(inner, np.float32) + (1.0 - masks) * np.asarray(outer, np.float32)
    return to_uint8(blend / 255.0)


def main(argv):
    del argv
    from normface.data import build, faceset, splits
    from normface.encoders import judge as judge_lib
    from normface.evaluation import metrics, protocol, recipe
    from normface.utils import io_utils
    from normface.utils.tables import markdown_table

    judge = judge_lib.judge_from_flag(FLAGS.judge)
    if judge is None:
        raise app.UsageError("--judge: this script measures the judge's distinctiveness; name one")
    aligned = faceset.aligned_dir(Path(FLAGS.faces))
    validation = recipe.with_judge(recipe.load_held_out(aligned, build.encode_fn_for("dlib"), "validation", "lfw/"),
                                   judge)
    photos, people = validation.photos, validation.photos.people

    def distinct(images, landmarks, who=people) -> float:
        return metrics.distinctiveness(judge.embed(images, landmarks), who)

    references = {"validation photos (LFW, every pose, light, expression)": distinct(photos.images, photos.landmarks)}
    london = protocol.load_test_photos(aligned, "london/")
    neutral = [i for i, s in enumerate(london.sources) if Path(s).parent.name == splits.LONDON_NEUTRAL]
    references["London neutral photos (held out; studio, frontal, neutral)"] = distinct(
        london.images[neutral], london.landmarks[neutral], london.people[neutral])
    parts, contraction = {}, {}
    for path in (Path(p) for p in FLAGS.models):
        model = recipe.load_model(path)
        images, marks = recipe.decode(model, validation.features)
        size = images.shape[1]
        placed = recipe.photos_at_geometry(photos.images, photos.landmarks, marks)
        shared = np.broadcast_to(marks.mean(axis=0, keepdims=True), marks.shape)
        references[f"{path.name}: photos on its output landmarks"] = distinct(placed, marks)
        references[f"{path.name}: photos on its mean output landmarks"] = distinct(
            recipe.photos_at_geometry(photos.images, photos.landmarks, shared), shared)
        spread = np.asarray(images, np.float32).std(axis=0).mean() / np.asarray(placed, np.float32).std(axis=0).mean()
        parts[f"{path.name}: outputs"] = {"judge distinctiveness": distinct(images, marks),
                                          "pixel sd across people, over the photos'": float(spread)}
        for grow in (float(g) for g in FLAGS.grows):
            masks = face_regions(marks, size, grow)
            parts[f"{path.name}: hull x{grow:g}: output face, photo surroundings"] = {
                "judge distinctiveness": distinct(inside_of(images, placed, masks), marks),
                "face share of the frame": float(masks.mean())}
            parts[f"{path.name}: hull x{grow:g}: photo face, output surroundings"] = {
                "judge distinctiveness": distinct(inside_of(placed, images, masks), marks),
                "face share of the frame": float(masks.mean())}
        for k in (float(s) for s in FLAGS.scales):
            scaled = scale_deviation(images, k)
            row = {f"judge_{a}": b for a, b in recipe.judge_row(judge, validation, scaled, marks).items()}
            row.update(recipe.picture_row(scaled, marks, validation))
            contraction[f"{path.name}: deviation x{k:g}"] = {c: row[c] for c in TABLE}
            print(path.name, k, {c: round(row[c], 3) for c in TABLE}, flush=True)
    rounded = lambda rows: {n: {k: round(v, 3) for k, v in r.items()} for n, r in rows.items()}
    text = (
        "# Where the outputs' likeness to each other lives (issue 28, session 15)\n\n"
        f"{len(people)} validation photos of {len(set(people.tolist()))} people, each model's outputs decoded from "
        "them (`experiments/distinct_anatomy.py`; its docstring says why). Judge distinctiveness: the independent "
        "judge's mean cosine between faces of different people (lower: more distinct).\n\n"
        "## References: real faces\n\n"
        f"{markdown_table({n: {'judge distinctiveness': round(v, 3)} for n, v in references.items()}, first='faces')}\n"
        "## Parts: the output's face and its surroundings\n\n"
        f"{markdown_table(rounded(parts), first='faces')}\n"
        "## Contraction: each output's deviation from the mean output scaled (a diagnosis, not a recipe)\n\n"
        f"{markdown_table(rounded(contraction), first='outputs')}\n")
    print(text)
    if FLAGS.results:
        io_utils.write_report(FLAGS.results, "distinct_anatomy", text, {
            "photos": int(len(people)), "models": list(FLAGS.models), "judge": judge.identity,
            "references": references, "parts": parts, "contraction": contraction})


if __name__ == "__main__":
    app.run(main)

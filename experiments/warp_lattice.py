"""Where the spline warp's lattice energy comes from, and a resampling that adds none (issue 28).

Real faces' textures (the validation records', registered to the mean landmarks) score grid
ratios below 1 against the photos, but once the spline warp places them on landmarks they score
about 1.04-1.16 (docs/training.md, "What the ablation measured"): a decoder drawing its targets
exactly would not meet #28's bound (1.15). This script takes the same textures and the same
spline flows (:func:`normface.warp.numpy_warp.warp_to_landmarks`, order 1, regularization 1e-3,
4 boundary points per edge) and changes one thing at a time:

* the resampling of the texture at ``grid - flow``: the warp's own bilinear (border-clamped),
  OpenCV bilinear / bicubic (a = -0.75) / Lanczos-4 (``cv2.remap``, float maps, which OpenCV
  quantizes to 1/32 px), an exact NumPy Keys cubic (a = -0.5), and bilinear 2x2-supersampled
  (the spline evaluated at the four quarter-pixel offsets of every output pixel, averaged);
* the border (hypothesis b): how many output pixels read beyond the texture's edge, and the
  warp with those pixels taken from the unwarped texture instead (no clamped streaks);
* the flow (hypothesis c, the control): warped to the mean landmarks themselves (a near-zero
  flow), and a constant half-pixel shift (bilinear's strongest blur, the same everywhere).

Controls without a warp: Gaussian blurs of the texture (is a plain blur enough to raise the
ratio?), and the record images (the faces the textures were registered from, on their own
landmarks, before the registering warp: what a lossless round trip would give). A ``peak p16`` column tells a periodic
pattern (power peaked on the lattice bins) from a smooth reshaping of the spectrum.

Landmarks the textures are warped to: ``own`` (each record's own landmarks), ``own+noise``
(those plus N(0, --noise_px) per coordinate, a stand-in for predicted landmarks), and ``photo``
(the landmarks of the i-th validation photo, aligned by the pipeline: a real face's geometry
that is not the texture's, as landmarks predicted from a photo are). Every image is rounded to
uint8 and scored as the picture ablation scores outputs: :func:`normface.evaluation.metrics`
grid ratios at periods 8/16/32 and sharpness ratio, against the validation photos at 128 (all
of them by default, the ablation's denominator; ``--photos=200``: the first 200).

    OMP_NUM_THREADS=1 nice -n 19 python experiments/warp_lattice.py \\
        --records=workspace/records128m --faces=workspace/faces128 --limit=97 \\
        --results=experiments/results/warp_lattice
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags

from normface.evaluation import metrics
from normface.utils import io_utils
from normface.warp import numpy_warp as nw

FLAGS = flags.FLAGS
flags.DEFINE_string("records", "workspace/records128m", "Records folder (its validation split is read).")
flags.DEFINE_string("faces", "workspace/faces128", "Faces folder of stage 1 (aligned/ holds the validation photos).")
flags.DEFINE_string("model", "normface/serving/pretrained/normface128/normface.json",
                    "Shipped model description (its mean_landmarks).")
flags.DEFINE_integer("limit", 300, "Validation records used (the split holds 97).")
flags.DEFINE_integer("photos", 0, "Validation photos the grid ratios are taken against (the first ones; 0: all, "
                     "as the picture ablation scores its outputs).")
flags.DEFINE_float("noise_px", 1.0, "Standard deviation of the landmark noise of the own+noise flows (pixels).")
flags.DEFINE_list("targets", ["mean", "own", "own+noise", "photo"], "Landmark sets the textures are warped to.")
flags.DEFINE_string("results", None, "Folder for table.md and table.json (none: print only).")
flags.DEFINE_integer("seed", 0, "Seed of the landmark noise.")


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float64) * 255.0), 0, 255).astype(np.uint8)


def read_validation(records: str, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``limit`` validation records' textures ``[n, S, S, 3]`` float32 in [0, 1],
    landmarks ``[n, 68, 2]`` (x, y) and images (uint8: the faces the textures were registered
    from, on those landmarks)."""
    import tensorflow as tf

    files = sorted(str(p) for p in Path(records).glob("validation-*.tfrecord"))
    spec = {"texture": tf.io.FixedLenFeature([], tf.string), "image": tf.io.FixedLenFeature([], tf.string),
            "landmarks": tf.io.FixedLenFeature([136], tf.float32)}
    textures, marks, images = [], [], []
    for raw in tf.data.TFRecordDataset(files).take(limit):
        ex = tf.io.parse_single_example(raw, spec)
        png = np.frombuffer(ex["texture"].numpy(), np.uint8)
        textures.append(cv2.imdecode(png, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0)
        marks.append(ex["landmarks"].numpy().reshape(68, 2))
        images.append(cv2.imdecode(np.frombuffer(ex["image"].numpy(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1])
    return np.stack(textures), np.stack(marks).astype(np.float64), np.stack(images)


def read_photos(faces: str, limit: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The validation photos (``lfw/`` people, as the picture ablation) at ``size``, with landmarks."""
    from normface.evaluation import protocol, recipe

    photos = protocol.load_test_photos(Path(faces) / "aligned", "lfw/", split="validation")
    images, marks = recipe.resize_faces(photos.images[:limit], photos.landmarks[:limit], size)
    return images, np.asarray(marks, np.float64)


# --- the flow ------------------------------------------------------------------------------------


def spline(mean_xy: np.ndarray, dest_xy: np.ndarray, size: int) -> nw.Spline:
    """The (row, col) flow spline of :func:`numpy_warp.warp_to_landmarks`'s defaults (as its
    sparse_image_warp builds it), to evaluate at any point."""
    src, dst = mean_xy[:, ::-1], dest_xy[:, ::-1]
    anchors = nw.boundary_points(size, size, 4)
    points = np.concatenate([dst, anchors])
    values = np.concatenate([dst - src, np.zeros_like(anchors)])
    return nw.fit_spline(points, values, 1, nw.LANDMARK_REGULARIZATION, np.float64)


def query_xy(flow_xy: np.ndarray) -> np.ndarray:
    """``[h, w, 2]`` (x, y) points the warp reads: ``grid - flow``."""
    h, w = flow_xy.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w]
    return np.stack([gx, gy], -1) - flow_xy


# --- resamplings of a texture at (x, y) query points ---------------------------------------------


def bilinear_np(tex, q):
    return nw.resample_bilinear(tex, q)


def _remap(interp, border=cv2.BORDER_REPLICATE):
    def fn(tex, q):
        q = q.astype(np.float32)
        return cv2.remap(tex, q[..., 0], q[..., 1], interp, borderMode=border)
    return fn


def _keys(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def keys_np(tex, q):
    """Exact (unquantized) separable Keys cubic, a = -0.5, border-clamped indices."""
    h, w = tex.shape[:2]
    x, y = q[..., 0], q[..., 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    out = np.zeros(q.shape[:-1] + (tex.shape[-1],))
    for j in range(-1, 3):
        wy = _keys(y - (y0 + j))
        rows = np.clip(y0 + j, 0, h - 1)
        for i in range(-1, 3):
            wx = _keys(x - (x0 + i))
            cols = np.clip(x0 + i, 0, w - 1)
            out += (wy * wx)[..., None] * tex[rows, cols]
    return out


RESAMPLERS = {
    "bilinear (warp's own)": bilinear_np,
    "bilinear (cv2)": _remap(cv2.INTER_LINEAR),
    "bicubic a=-0.75 (cv2)": _remap(cv2.INTER_CUBIC),
    "Keys a=-0.5 (exact)": keys_np,
    "Lanczos-4 (cv2)": _remap(cv2.INTER_LANCZOS4),
}


def supersampled(tex, sp: nw.Spline, size: int):
    """Bilinear at the four quarter-pixel offsets of every output pixel (the spline evaluated
    there), averaged: a 2x2 box over a 2x-resolution render."""
    total = 0.0
    for dy in (-0.25, 0.25):
        for dx in (-0.25, 0.25):
            gy, gx = np.mgrid[0:size, 0:size].astype(np.float64)
            gy, gx = gy + dy, gx + dx
            flow = sp.at(np.stack([gy.ravel(), gx.ravel()], -1)).reshape(size, size, 2)[..., ::-1]
            total = total + nw.resample_bilinear(tex, np.stack([gx, gy], -1) - flow)
    return total / 4


def outside(q: np.ndarray, size: int) -> np.ndarray:
    """``[h, w]`` bool: query points beyond the texture's pixel centres [0, size - 1]."""
    return np.any((q < 0) | (q > size - 1), axis=-1)


# --- the table -----------------------------------------------------------------------------------


def lattice_peak(image: np.ndarray, period: int = 16) -> float:
    """Mean high-frequency power on the period-``period`` lattice bins (as
    :func:`metrics.grid_share`) over that on the bins one index beside them: a periodic pattern
    raises it (peaks on the lattice), a blur that reshapes the spectrum smoothly does not."""
    grey = metrics.luma(image)
    size = grey.shape[0]
    window = np.outer(np.hanning(size), np.hanning(size))
    power = np.abs(np.fft.fft2((grey - grey.mean()) * window)) ** 2
    freq = np.fft.fftfreq(size)
    high = np.hypot(freq[:, None], freq[None, :]) >= metrics.GRID_MIN_FREQUENCY
    on = np.arange(size) % (size // period) == 0
    lattice = on[:, None] & on[None, :]
    beside = (np.roll(lattice, 1, 0) | np.roll(lattice, -1, 0) | np.roll(lattice, 1, 1) | np.roll(lattice, -1, 1)) & ~lattice
    return float(power[high & lattice].mean() / power[high & beside].mean())


def measures(images: np.ndarray, photos: np.ndarray) -> dict:
    """Grid ratios against all ``photos``; the sharpness ratio (per-face pairs) against the first
    ``len(images)`` of them."""
    images = np.asarray(images)
    row = {f"grid_p{p}": metrics.grid_ratio(images, photos, p) for p in metrics.GRID_PERIODS}
    row["grid_max"] = max(row.values())
    row["sharpness"] = metrics.sharpness_ratio(images, photos[:len(images)])
    row["peak_p16"] = float(np.median([lattice_peak(im) for im in images])
                            / np.median([lattice_peak(im) for im in photos]))
    return row


def run(textures, own, record_images, photos, photo_marks, mean, noise_px, targets, seed) -> list[dict]:
    n, size = len(textures), textures.shape[1]
    rng = np.random.default_rng(seed)
    dests = {"mean": np.broadcast_to(mean, own.shape), "own": own,
             "own+noise": own + rng.normal(0, noise_px, own.shape), "photo": photo_marks}
    rows = [{"target": "-", "resampling": "record images (the faces the textures come from, on their own landmarks)",
             **measures(record_images, photos)},
            {"target": "-", "resampling": "texture itself (no warp)", **measures(to_uint8(textures), photos)}]
    half = np.zeros((size, size, 2)) + 0.5
    shifted = [nw.resample_bilinear(t, query_xy(half)) for t in textures]
    rows.append({"target": "-", "resampling": "bilinear, constant 0.5 px shift", **measures(to_uint8(shifted), photos)})
    for sigma in (0.4, 0.6):
        blurred = [cv2.GaussianBlur(t, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE) for t in textures]
        rows.append({"target": "-", "resampling": f"Gaussian blur sigma {sigma} px (no warp)",
                     **measures(to_uint8(blurred), photos)})
    for target in targets:
        start = time.time()
        outs = {name: [] for name in RESAMPLERS}
        outs["bilinear 2x2 supersampled"] = []
        outs["bilinear, outside pixels from the texture"] = []
        out_share, flow_mag = [], []
        for tex, dest in zip(textures, dests[target]):
            warped, flow = nw.warp_to_landmarks(tex, mean, dest)
            q = query_xy(flow.astype(np.float64))
            for name, fn in RESAMPLERS.items():
                outs[name].append(fn(tex, q))
            if target != "mean":
                outs["bilinear 2x2 supersampled"].append(supersampled(tex, spline(mean, dest, size), size))
            off = outside(q, size)
            out_share.append(off.mean())
            flow_mag.append(np.abs(flow).max())
            fixed = nw.resample_bilinear(tex, q)
            fixed[off] = tex[off]
            outs["bilinear, outside pixels from the texture"].append(fixed)
            if len(outs[next(iter(RESAMPLERS))]) == 1:  # the warp's own output is the bilinear one
                assert np.allclose(warped, outs["bilinear (warp's own)"][0], atol=1e-5)
        for name, images in outs.items():
            if images:
                rows.append({"target": target, "resampling": name, **measures(to_uint8(images), photos),
                             "outside_share": float(np.mean(out_share)), "max_flow_px": float(np.median(flow_mag))})
        print(f"{target}: {n} faces in {time.time() - start:.0f}s", flush=True)
    return rows


def table_md(rows: list[dict], n: int, n_photos: int, noise_px: float) -> str:
    lines = [f"Grid ratio (p8 / p16 / p32 / max) against {n_photos} validation photos at 128, sharpness ratio "
             f"against the first {n} of them (per-face pairs); {n} validation records' textures; own+noise: sigma {noise_px} px. outside: share of output "
             "pixels reading beyond the texture's edge; peak p16: median lattice-bin power over the power of the bins beside them, outputs over photos (a periodic pattern raises it, a smooth reshaping of the spectrum does not); flow: median over faces of the largest |flow| (px).", "",
             "| target | resampling | p8 | p16 | p32 | max | sharpness | peak p16 | outside | flow |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        extra = (f"{r['outside_share']:.4f} | {r['max_flow_px']:.2f}" if "outside_share" in r else " | ")
        lines.append(f"| {r['target']} | {r['resampling']} | {r['grid_p8']:.3f} | {r['grid_p16']:.3f} | "
                     f"{r['grid_p32']:.3f} | {r['grid_max']:.3f} | {r['sharpness']:.3f} | {r['peak_p16']:.3f} | {extra} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    model = json.loads(Path(FLAGS.model).read_text())
    mean = np.asarray(model["mean_landmarks"], np.float64)
    textures, own, record_images = read_validation(FLAGS.records, FLAGS.limit)
    photos, photo_marks = read_photos(FLAGS.faces, FLAGS.photos and max(FLAGS.photos, len(textures)) or None,
                                      textures.shape[1])
    n = min(len(textures), len(photos))
    textures, own, record_images = textures[:n], own[:n], record_images[:n]
    rows = run(textures, own, record_images, photos, photo_marks[:n], mean, FLAGS.noise_px, FLAGS.targets, FLAGS.seed)
    text = table_md(rows, n, len(photos), FLAGS.noise_px)
    print(text)
    if FLAGS.results:
        meta = {"records": FLAGS.records, "faces": FLAGS.faces, "faces_used": n, "photos": FLAGS.photos, "noise_px": FLAGS.noise_px,
                "seed": FLAGS.seed, "rows": rows}
        io_utils.write_report(FLAGS.results, "table", text, meta)


if __name__ == "__main__":
    app.run(main)

"""Where the picture ablation's measured grid lies, bin by bin (issue 28).

Every row of ``experiments/results/picture128`` scores grid ratios of 1.3-2.0 at period 16 and
2.0-3.0 at most, the stripe-free resize decoders included. This script asks which spectral bins
carry that excess and whether it is a grid at all:

* per row, the plain grid ratios (:func:`normface.evaluation.metrics.grid_ratio`) at periods 8,
  16, 32; the same with the single bin pair ``(+-16, 0)`` left off the lattice (vertical frequency
  1/8 cycle per pixel, the lattice's first bin on the high-frequency band's edge); the mean
  normalized power of named bins, outputs over photos: ``(16, 0)``, ``(0, 32)`` (vertical stripes
  of period 4: the transposed convolutions' checkerboard two stages from the end), ``(0, 64)``,
  ``(64, 0)``, ``(64, 64)`` (period 2: the last stage's checkerboard); and the matched grid ratios
  (against the photos blurred to the row's sharpness, :func:`metrics.blur_to_sharpness`);
* the two sides of the band-edge share apart: that bin's own power, and the whole high band's
  (the share's denominator), each output's over its photo's (medians);
* the power on single radial rings (periods of 16, 8, 5.3, 4 and 2 px; the rings of
  :func:`normface.training.losses.radial_rings`), each output's over its photo's (medians): where
  in frequency the outputs lack, or add, energy; and the share of the photos' high-band energy
  inside the landmarks' hull, beside white noise's (the window's own weighting of the centre);
* controls with no grid: the photos under Gaussian blurs (what the plain ratio gives a blurred
  real picture), and with a faint period-4 stripe pattern added (what a real grid gives);
* a perfect decoder (session 12): each photo decomposed as the records are (warped to the mean
  landmarks, bilinear) and warped back as the model warps its texture (bicubic), plain and with
  the calm target's background (``--calm_background_sigma``): what a decoder that returned its
  training texture exactly would score, the measure's reach under this data pipeline.

Rows of an earlier ``grid_anatomy.json`` in ``--results`` whose runs are not in ``--runs`` (trained
on another machine) are kept, once the recomputed blur controls agree with the earlier ones (the
same photos).

The outputs are decoded from the first ``--photos`` validation photos (spread over the split),
against the same photos at 128. Rows are the picture ablation's exported runs.

    OMP_NUM_THREADS=1 nice -n 10 python experiments/grid_anatomy.py --runs=workspace/picture \\
        --faces=workspace/faces128 --results=experiments/results/picture128
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags

from normface.evaluation import metrics
from normface.training.losses import radial_rings

FLAGS = flags.FLAGS
flags.DEFINE_string("runs", "workspace/picture", "Folder of the picture ablation's row runs (each with export/).")
flags.DEFINE_string("faces", "workspace/faces128", "Faces folder of stage 1 (aligned/ holds the validation photos).")
flags.DEFINE_integer("photos", 400, "Validation photos decoded and compared (evenly spread over the split).")
flags.DEFINE_list("blur_sigmas", ["0.5", "0.7", "0.9", "1.2", "1.6"], "Gaussian blurs of the photos (controls).")
flags.DEFINE_string("results", None, "Folder for grid_anatomy.md / .json (none: print only).")

SIZE = 128
BAND_EDGE_BIN = (16, 0)  # (vertical, horizontal) frequency index at SIZE: 1/8 cycle per pixel
NAMED_BINS = (BAND_EDGE_BIN, (0, 32), (0, 64), (64, 0), (64, 64))
RINGS = (8, 16, 24, 32, 64)  # radial frequency indices at SIZE: periods of 16, 8, 5.3, 4 and 2 px


def normalized_power(images: np.ndarray) -> np.ndarray:
    """``[n, S, S]`` power spectra as :func:`metrics.grid_share` takes them, each divided by its
    own high-frequency total (so bins add up to shares)."""
    power = metrics.windowed_power(metrics.luma(images))
    return power / power[:, metrics.high_frequency_bins(SIZE)].sum(axis=1)[:, None, None]


def lattice(period: int, without: tuple[tuple[int, int], ...] = ()) -> np.ndarray:
    """The high-frequency bins of the period lattice (as :func:`metrics.grid_share`), less ``without``
    and their mirror images."""
    bins = metrics.lattice_bins(SIZE, period) & metrics.high_frequency_bins(SIZE)
    for ky, kx in without:
        bins[ky, kx] = bins[-ky, -kx] = False
    return bins


def anatomy(images: np.ndarray, photos: np.ndarray, photo_power: np.ndarray) -> dict[str, float]:
    power = normalized_power(images)
    row = {}
    for p in metrics.GRID_PERIODS:
        row[f"p{p}"] = metrics.grid_ratio(images, photos, p)
        bins = lattice(p, (BAND_EDGE_BIN,))
        row[f"p{p} without (16,0)"] = float(np.median(power[:, bins].sum(1)) / np.median(photo_power[:, bins].sum(1)))
    for ky, kx in NAMED_BINS:
        row[f"bin ({ky},{kx})"] = float(power[:, ky, kx].mean() / photo_power[:, ky, kx].mean())
    # The share's two sides apart: the band-edge bin's own power, and the whole high band's (the
    # share's denominator), each output over its photo (session 12: the detail rows' excess).
    raw, raw_photos = (metrics.windowed_power(metrics.luma(x)) for x in (images, photos))
    high = metrics.high_frequency_bins(SIZE)
    ky, kx = BAND_EDGE_BIN
    row[f"raw bin ({ky},{kx})"] = float(np.median(raw[:, ky, kx] / np.maximum(raw_photos[:, ky, kx], 1e-12)))
    row["high band energy"] = float(np.median(raw[:, high].sum(1) / raw_photos[:, high].sum(1)))
    # Session 13: the power on single radial rings (the spectrum loss's), output over its photo.
    rings, means = radial_rings(SIZE, min(RINGS) / SIZE)
    by_ring = (raw.reshape(len(raw), -1) @ means) / np.maximum(raw_photos.reshape(len(raw), -1) @ means, 1e-12)
    for r in RINGS:
        row[f"ring period {SIZE / r:.3g} px"] = float(np.median(by_ring[:, list(rings).index(r)]))
    row["sharpness"] = metrics.sharpness_ratio(images, photos)
    matched, _ = metrics.blur_to_sharpness(photos, row["sharpness"])
    for p in metrics.GRID_PERIODS:
        row[f"matched p{p}"] = metrics.grid_ratio(images, matched, p)
    return row


CALM_SIGMA = 4.0  # the calm rows' --calm_background_sigma


def high_band_share_in_face(photos: np.ndarray, marks: np.ndarray) -> float:
    """Median share of each photo's high-band energy (f >= 1/8 cycle per pixel, Hann-windowed luma
    as :func:`metrics.grid_share` takes it, transformed back to pixels) that lies inside its
    landmarks' convex hull: which part of the frame the grid measure's denominator is about."""
    from normface.faces.masks import face_mask

    spectrum = metrics.windowed_spectrum(metrics.luma(photos))
    spectrum[:, ~metrics.high_frequency_bins(SIZE)] = 0
    energy = np.real(np.fft.ifft2(spectrum)) ** 2
    inside = np.stack([face_mask(m, SIZE) for m in marks])
    return float(np.median((energy * inside).sum(axis=(1, 2)) / energy.sum(axis=(1, 2))))


def texture_round_trip(photos: np.ndarray, marks: np.ndarray, resampling: str, calm_sigma: float = 0.0) -> np.ndarray:
    """``[n, S, S, 3]`` uint8: each photo warped to the photos' symmetric mean landmarks (the
    records' decomposition, bilinear), its background outside the face and hair blurred by
    ``calm_sigma`` when > 0 (the calm target), warped back to its own landmarks with
    ``resampling`` (the model's warp)."""
    import tensorflow as tf

    from normface.data import decompose
    from normface.faces.masks import face_and_hair_mask
    from normface.training.losses import gaussian_blur

    mean = decompose.mean_landmarks(marks, SIZE).astype(np.float32)
    texture = decompose.to_texture(photos.astype(np.float32), marks, mean)
    if calm_sigma > 0:
        mask = face_and_hair_mask(mean, SIZE).astype(np.float32)[None, :, :, None]
        texture = mask * texture + (1 - mask) * gaussian_blur(tf.constant(texture), calm_sigma).numpy()
    out = decompose.to_image(texture, mean, np.asarray(marks, np.float32), resampling=resampling)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def main(argv):
    del argv
    from normface.data import build, faceset
    from normface.evaluation import protocol, recipe
    from normface.serving import export_format
    from normface.utils import io_utils
    from normface.utils.tables import markdown_table

    held = protocol.load_test_photos(faceset.aligned_dir(Path(FLAGS.faces)), "lfw/", split="validation")
    idx = np.unique(np.linspace(0, len(held.people) - 1, FLAGS.photos).astype(int))
    photos, marks = recipe.resize_faces(held.images[idx], held.landmarks[idx], SIZE)
    features, _ = build.encode_fn_for("dlib")(held.images[idx], held.landmarks[idx])
    photo_power = normalized_power(photos)
    face_share = high_band_share_in_face(photos, marks)
    # The same share for white noise: what the window's weighting of the centre alone gives.
    noise = np.random.default_rng(0).integers(0, 256, photos.shape).astype(np.uint8)
    noise_share = high_band_share_in_face(noise, marks)
    print(f"share of the high-band energy inside the landmarks' hull: photos {face_share:.3f}, "
          f"white noise {noise_share:.3f}", flush=True)
    earlier = {}
    if FLAGS.results and (Path(FLAGS.results) / "grid_anatomy.json").is_file():
        earlier = json.loads((Path(FLAGS.results) / "grid_anatomy.json").read_text())["rows"]
    runs = {}
    for run in sorted(p for p in Path(FLAGS.runs).iterdir() if (p / "export" / "saved_model.pb").is_file()):
        model = export_format.load_keras(run / "export")
        images, _ = recipe.decode(model, np.asarray(features, np.float32))
        runs[run.name] = anatomy(images, photos, photo_power)
        print(run.name, {k: round(v, 3) for k, v in runs[run.name].items()}, flush=True)
    controls = {}
    for resampling in ("bilinear", "bicubic"):
        controls[f"perfect decoder: texture round trip, {resampling} back"] = anatomy(
            texture_round_trip(photos, marks, resampling), photos, photo_power)
    controls["perfect decoder: calm texture round trip, bicubic back"] = anatomy(
        texture_round_trip(photos, marks, "bicubic", calm_sigma=CALM_SIGMA), photos, photo_power)
    for name, row in controls.items():
        print(name, {k: round(v, 3) for k, v in row.items()}, flush=True)
    blurs = {}
    for sigma in (float(s) for s in FLAGS.blur_sigmas):
        blurred = np.stack([cv2.GaussianBlur(im, (0, 0), sigma) for im in photos])
        blurs[f"photos, blur sigma {sigma}"] = anatomy(blurred, photos, photo_power)
        stripes = 2.0 * np.cos(np.pi * np.arange(SIZE) / 2)[None, None, :, None]
        blurs[f"photos, blur sigma {sigma} + stripes (period 4, 2 grey levels)"] = anatomy(
            np.clip(blurred + stripes, 0, 255).astype(np.uint8), photos, photo_power)
    # Earlier rows are kept when the first blur control, recomputed, equals the earlier one (the same photos).
    check = next(iter(blurs), "")
    names = sorted(set(runs) | {n for n in earlier if not n.startswith(("photos, ", "perfect decoder"))})
    rows = {**recipe.merge_earlier_rows(names, runs, earlier, blurs.get(check, {}), earlier.get(check)),
            **controls, **blurs}
    table = markdown_table({n: {k: round(v, 3) for k, v in r.items()} for n, r in rows.items()}, first="row")
    text = (f"# Where the measured grid lies (issue 28)\n\n{len(idx)} validation photos at {SIZE} and the outputs "
            "decoded from them. `pP`: the plain grid ratio at period P; `pP without (16,0)`: the same with the bin pair "
            "(+-16, 0) left off the lattice; `bin (ky,kx)`: that bin's mean normalized power, outputs over photos; "
            "`matched pP`: the grid ratio against the photos blurred to the row's sharpness; `raw bin (16,0)`, `high "
            "band energy`, `ring period P px`: that bin's, the high band's and one radial ring's power, output over "
            "its photo (medians). Controls: a perfect "
            "decoder (each photo warped to the mean landmarks as the records are, bilinear, and back as the model "
            "warps, plain and with the calm target's background), the photos blurred, and blurred with faint period-4 "
            f"stripes. Rows whose runs were not in the workspace are kept from the earlier table.\n\n"
            f"The photos' high-band energy (f >= 1/8, windowed as the measure takes it) lies {face_share:.0%} "
            f"inside the landmarks' hull (median; white noise: {noise_share:.0%}, the Hann window's weighting of the "
            f"centre): the grid measure's denominator is the face's fine detail.\n\n"
            f"{table}\n")
    print(text)
    if FLAGS.results:
        io_utils.write_report(FLAGS.results, "grid_anatomy", text, {
            "photos": int(len(idx)), "high_band_share_in_face": {"photos": face_share, "white noise": noise_share},
            "rows": rows})


if __name__ == "__main__":
    app.run(main)

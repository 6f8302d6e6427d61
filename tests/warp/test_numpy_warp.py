"""The NumPy warp (LiteRT inference) is the TensorFlow warp's equations: the tensorflow-addons
float64 fixtures and the TensorFlow ops agree with it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from normface.faces import chip_geometry
from normface.warp import numpy_warp
from tests.warp.test_warp import golden_cases


def test_interpolate_spline_matches_reference(fixtures_root):
    for name, case in golden_cases(fixtures_root, "interpolate_spline"):
        for b in range(len(case["train_points"])):
            out = numpy_warp.interpolate_spline(case["train_points"][b], case["train_values"][b], case["query_points"][b],
                                                int(case["order"]), float(case["regularization_weight"]))
            rel = np.abs(out - case["result"][b]).max() / np.abs(case["result"][b]).max()
            assert rel <= 1e-6, f"{name}[{b}]: relative error {rel:.2e}"


def test_sparse_image_warp_matches_reference(fixtures_root):
    for name, case in golden_cases(fixtures_root, "sparse_image_warp"):
        order, bp = int(case["interpolation_order"]), int(case["num_boundary_points"])
        for b in range(len(case["image"])):
            warped, flow = numpy_warp.sparse_image_warp(
                case["image"][b].astype(np.float64), case["source_control_point_locations"][b],
                case["dest_control_point_locations"][b], order, 0.0, bp)
            flow_err = np.abs(flow - case["flow_float64"][b]).max()
            image_err = np.abs(warped - case["warped_float64"][b]).max()
            assert flow_err <= 1e-6 and image_err <= 1e-6, f"{name}[{b}]: flow {flow_err:.2e} px, image {image_err:.2e}"


def test_dense_image_warp_matches_reference(fixtures_root):
    for name, case in golden_cases(fixtures_root, "dense_image_warp"):
        for b in range(len(case["image"])):
            err = np.abs(numpy_warp.dense_image_warp(case["image"][b], case["flow"][b]) - case["warped"][b]).max()
            assert err <= 1e-5, f"{name}[{b}]: error {err:.2e}"


def test_warp_to_landmarks_matches_tensorflow():
    from normface import warp

    rng = np.random.default_rng(3)
    image = rng.uniform(0, 1, (2, 48, 40, 3)).astype(np.float32)
    src = rng.uniform(8, 32, (2, 12, 2))
    dst = src + rng.normal(0, 2, src.shape)
    tf_warped, tf_flow = warp.warp_to_landmarks(image, src.astype(np.float32), dst.astype(np.float32))
    for b in range(2):
        warped, flow = numpy_warp.warp_to_landmarks(image[b], src[b], dst[b])
        assert warped.dtype == np.float32 and warped.shape == image[b].shape
        assert np.abs(flow - tf_flow.numpy()[b]).max() < 1e-3
        assert np.abs(warped - tf_warped.numpy()[b]).max() < 2e-3


def test_chips_match_tensorflow():
    from normface.faces import chips

    rng = np.random.default_rng(4)
    images = rng.uniform(0, 255, (2, 128, 128, 3)).astype(np.float32)
    landmarks = rng.uniform(30, 98, (2, 68, 2)).astype(np.float32)
    affine = chip_geometry.chip_to_image_affine(landmarks)
    assert np.abs(affine - chips.chip_to_image_affine(landmarks).numpy()).max() < 1e-4
    ours, theirs = chip_geometry.extract_chips(images, landmarks), chips.extract_chips(images, landmarks).numpy()
    assert ours.shape == (2, 150, 150, 3) and np.percentile(np.abs(ours - theirs), 99.9) < 0.05


@pytest.mark.parametrize("order, dtype", [(1, np.float32), (2, np.float64), (3, np.float32)])
def test_spline_on_a_grid_equals_the_spline_at_its_pixels(order, dtype):
    # on_grid (separable squared distances, blocks of rows: the warp's fast path) computes the
    # same values as evaluating at every pixel (the grid is taller than one block of rows).
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 40, (20, 2))
    spline = numpy_warp.fit_spline(points, rng.normal(0, 3, (20, 2)), order, 1e-3, dtype)
    h, w = numpy_warp._GRID_ROWS * 2 + 5, 37
    on_grid, at_pixels = spline.on_grid(h, w), spline.at(numpy_warp.pixel_grid(h, w))
    assert on_grid.shape == (h * w, 2) and on_grid.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(on_grid - at_pixels).max() <= tolerance * np.abs(at_pixels).max()


def test_bilinear_sampling_by_flat_index_equals_the_formula():
    rng = np.random.default_rng(6)
    image = rng.uniform(0, 1, (9, 7, 2)).astype(np.float32)
    query = rng.uniform(-2, 10, (5, 4, 2))  # inside, on and beyond the border
    r = np.clip(np.floor(query[..., 0]), 0, 7).astype(int)
    c = np.clip(np.floor(query[..., 1]), 0, 5).astype(int)
    ar = np.clip(query[..., 0] - r, 0, 1)[..., None]
    ac = np.clip(query[..., 1] - c, 0, 1)[..., None]
    want = ((1 - ar) * ((1 - ac) * image[r, c] + ac * image[r, c + 1])
            + ar * ((1 - ac) * image[r + 1, c] + ac * image[r + 1, c + 1]))
    assert np.abs(numpy_warp.interpolate_bilinear_rowcol(image, query) - want).max() < 1e-6


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="train_points"):
        numpy_warp.interpolate_spline(np.zeros((2, 2)), np.zeros((2, 1)), np.zeros((1, 2)))  # too few points
    with pytest.raises(ValueError, match="dest_control_point_locations contains NaN"):
        numpy_warp.sparse_image_warp(np.zeros((8, 8, 1)), np.zeros((3, 2)), np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="at least 2x2"):
        numpy_warp.dense_image_warp(np.zeros((1, 5, 1)), np.zeros((1, 5, 2)))


def test_importing_the_numpy_path_does_not_import_tensorflow():
    code = ("import sys; import normface.warp.numpy_warp, normface.faces.chip_geometry, "
            "normface.serving.litert_backend; sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

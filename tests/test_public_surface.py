"""Every name of the public surface from before the regroup (commit 095725b) still imports from
its old path, and the ``normface`` command keeps its subcommands and flags."""

from __future__ import annotations

import importlib

import pytest

OLD_PATHS = {
    "normface": ["FaceNormalizer", "Result"],
    "normface.io_utils": ["read_rgb", "atomic_path", "write_bytes_atomic", "save_image_atomic", "MAX_PIXELS"],
    "normface.apps": ["auto_adjust", "make_avatar", "Adjustment", "AvatarResult"],
    "normface.face": ["extract_chips", "find_faces68", "detect_face", "detect_faces", "dlib_face_chip",
                      "chip_template", "chip_to_image_affine", "as_rgb_uint8", "FaceDetection", "CHIP_SIZE",
                      "CHIP_PADDING", "DETECTORS", "FACE_CHOICES", "landmarks68", "five_landmarks"],
    # Every public name of normface.warp at 095725b.
    "normface.warp": ["EPSILON", "LANDMARK_REGULARIZATION", "xy_to_rowcol", "rowcol_to_xy", "set_fused_kernels",
                      "fused_kernels_enabled", "interpolate_spline", "resample_bilinear", "dense_image_warp",
                      "boundary_points", "sparse_image_warp", "warp_to_landmarks", "SplineWarp"],
}


@pytest.mark.parametrize("module", sorted(OLD_PATHS))
def test_old_import_paths_still_work(module):
    mod = importlib.import_module(module)
    missing = [name for name in OLD_PATHS[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost {missing}"


def test_aliases_are_the_new_objects():
    from normface import apps, face, io_utils, warp
    from normface.apps.adjust import auto_adjust
    from normface.faces.chips import extract_chips
    from normface.serving.normalizer import FaceNormalizer
    from normface.utils.io_utils import read_rgb
    from normface.warp.layer import SplineWarp
    import normface

    assert normface.FaceNormalizer is FaceNormalizer
    assert io_utils.read_rgb is read_rgb and face.extract_chips is extract_chips
    assert apps.auto_adjust is auto_adjust and warp.SplineWarp is SplineWarp


def test_fused_kernel_switch_reaches_every_op():
    from normface import warp
    from normface.warp import resample

    assert warp.fused_kernels_enabled()
    try:
        warp.set_fused_kernels(False)
        assert not warp.fused_kernels_enabled() and not resample.fused_kernels_enabled()
    finally:
        warp.set_fused_kernels(True)


def test_command_keeps_its_subcommands_and_flags():
    from normface import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"normalize", "adjust", "avatar", "warp-demo"} <= set(sub.choices)
    normalize = {opt for a in sub.choices["normalize"]._actions for opt in a.option_strings}
    assert {"-o", "--sheet", "--json", "--side-by-side", "--all-faces", "--report", "--strict", "--format",
            "--model"} <= normalize

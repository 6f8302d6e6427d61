"""Every name of the public surface from before the regroup (commit 095725b) still imports from
its old path, and the ``normface`` command keeps its subcommands and flags."""

from __future__ import annotations

import importlib

import pytest

OLD_PATHS = {
    "normface": ["FaceNormalizer", "Result"],
    "normface.io_utils": ["read_rgb", "atomic_path", "write_bytes_atomic", "save_image_atomic", "MAX_PIXELS"],
    "normface.apps": ["auto_adjust", "make_avatar", "Adjustment", "AvatarResult"],
    "normface.face": ["extract_chips", "find_faces68", "detect_faces68", "detect_face", "detect_faces", "dlib_face_chip",
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


def test_fused_kernel_switch_reaches_every_op(monkeypatch):
    """set_fused_kernels(False) makes the resampler run the plain kernel, not the XLA one."""
    import tensorflow as tf

    from normface import warp
    from normface.warp import resample

    calls = []
    plain, fused = resample._bilinear, resample._bilinear_xla
    monkeypatch.setattr(resample, "_bilinear", lambda *a: calls.append("plain") or plain(*a))
    monkeypatch.setattr(resample, "_bilinear_xla", lambda *a: calls.append("fused") or fused(*a))
    image, coords = tf.zeros([1, 4, 4, 1]), tf.ones([1, 3, 2])
    try:
        warp.set_fused_kernels(False)
        warp.resample_bilinear(image, coords)
        warp.set_fused_kernels(True)
        warp.resample_bilinear(image, coords)
    finally:
        warp.set_fused_kernels(True)
    assert calls == ["plain", "fused"]


# The options of every subcommand at 095725b (printed from its build_parser()).
OLD_OPTIONS = {
    "adjust": {"--help", "--model", "--output", "-h", "-o"},
    "avatar": {"--help", "--model", "--output", "-h", "-o"},
    "normalize": {"--all-faces", "--batch-size", "--device", "--format", "--help", "--json", "--model", "--output",
                  "--report", "--sheet", "--side-by-side", "--strict", "-h", "-o"},
    "warp-demo": {"--help", "--output", "--photo", "-h", "-o"},
}


def test_command_keeps_its_subcommands_and_flags():
    from normface import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, options in OLD_OPTIONS.items():
        assert name in sub.choices, name
        now = {opt for a in sub.choices[name]._actions for opt in a.option_strings}
        assert options <= now, (name, options - now)


def test_old_detect_faces68_still_finds_faces():
    from normface import face
    from normface.faces.detection import find_faces68
    from normface.utils import io_utils, paths

    photo = io_utils.read_rgb(paths.REPO_ROOT / "samples" / "london_012_03.jpg")
    old, new = face.detect_faces68(photo), find_faces68(photo, max_side=max(photo.shape))
    assert len(old) == 1 and old[0].box == new[0].box

"""The shipped model on LiteRT (issue 31): the same faces as on TensorFlow, no TensorFlow imported,
one interpreter pair per thread, damaged files named, a clear fallback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from normface.cli import common
from normface.serving import litert_backend, litert_export, packed
from normface.serving.normalizer import DEFAULT_MODEL, PRETRAINED_DIR, FaceNormalizer
from normface.utils import io_utils, paths

SHIPPED = PRETRAINED_DIR / DEFAULT_MODEL
pytestmark = pytest.mark.skipif(not litert_backend.has_tflite(SHIPPED), reason="the shipped model has no LiteRT files")


@pytest.fixture(scope="module")
def normalizers():
    return FaceNormalizer.from_pretrained(), FaceNormalizer.from_pretrained(backend="tensorflow")


@pytest.fixture(scope="module")
def sample_faces(normalizers):
    faces = [face for p in sorted((paths.REPO_ROOT / "samples").glob("*.jpg"))
             for face in normalizers[0].align(io_utils.read_rgb(p))]
    return np.stack([f[0] for f in faces]), np.stack([f[1] for f in faces])


def test_samples_equal_the_tensorflow_path(normalizers, sample_faces):
    lite, tf_path = normalizers
    assert lite.backend is not None and tf_path.backend is None
    ours, theirs = lite.normalize_aligned(*sample_faces), tf_path.normalize_aligned(*sample_faces)
    for key in ("image", "texture"):
        diff = np.abs(ours[key].astype(int) - theirs[key].astype(int))
        assert ours[key].dtype == np.uint8 and np.percentile(diff, 99) <= 1, f"{key}: {np.percentile(diff, 99)}"
    assert np.abs(ours["landmarks"] - theirs["landmarks"]).max() <= 0.05
    assert np.abs(ours["confidence"] - theirs["confidence"]).max() <= 2e-3
    assert np.abs(ours["features"] - theirs["features"]).max() <= 1e-2


def test_concurrent_calls_never_share_interpreters(normalizers, sample_faces):
    lite = normalizers[0]
    aligned, landmarks = sample_faces[0][:2], sample_faces[1][:2]
    want = lite.normalize_aligned(aligned, landmarks)["image"]
    inside, images, barrier = [], [], threading.Barrier(2)

    def work():
        with lite.backend.networks() as nets:
            inside.append(nets)
            barrier.wait(timeout=60)  # both hold a pair at once
        images.append(lite.normalize_aligned(aligned, landmarks)["image"])

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(n) for n in inside}) == 2 and lite.backend.sets == 2
    assert len(images) == 2 and all(np.array_equal(image, want) for image in images)
    with lite.backend.networks() as nets:  # a set is reused, none made
        assert nets in inside and lite.backend.sets == 2


def test_backend_choice_and_errors(tmp_path):
    with pytest.raises(ValueError, match="backend: expected one of"):
        FaceNormalizer.from_pretrained(backend="onnx")
    export = paths.REPO_ROOT / "tests" / "fixtures" / "export_095725b"
    assert litert_backend.choose_backend(export) == "tensorflow"
    with pytest.raises(ValueError, match="backend='litert'.*no LiteRT files"):
        litert_backend.choose_backend(export, "litert")
    assert litert_backend.choose_backend(SHIPPED, "tensorflow") == "tensorflow"


@pytest.mark.parametrize("damaged", litert_export.DECODER_FILES)
def test_damaged_or_stale_litert_files_are_named(tmp_path, damaged):
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    metadata = packed.read_metadata(model)
    (model / damaged).write_bytes(b"\0" * 100)
    with pytest.raises(packed.ModelFileError, match=damaged):
        litert_backend.LiteRTBackend(model, metadata)
    shutil.copy2(SHIPPED / damaged, model / damaged)
    (model / litert_export.WEIGHT_MAP_FILE).write_text("{")
    with pytest.raises(packed.ModelFileError, match=litert_export.WEIGHT_MAP_FILE):
        litert_backend.LiteRTBackend(model, metadata)


def test_a_batch_decodes_as_its_faces_one_at_a_time(normalizers):
    """The head runs the whole batch, the bodies chunks of 4 then single faces: 7 faces (4 + 1 +
    1 + 1) and 9 (4 + 4 + 1) give each face what decoding it alone gives."""
    backend = normalizers[0].backend
    features = np.random.default_rng(7).normal(0, 0.1, (9, 256)).astype(np.float32)
    with backend.networks() as nets:
        alone = [nets.decode(features[i:i + 1]) for i in range(9)]
        for n in (7, 9):
            landmarks, texture = nets.decode(features[:n])
            assert landmarks.shape == (n, 68, 2) and texture.shape == (n, 128, 128, 3)
            for i in range(n):
                assert np.abs(landmarks[i] - alone[i][0][0]).max() <= 1e-4
                assert np.abs(texture[i] - alone[i][1][0]).max() <= 1e-5
        empty_landmarks, empty_texture = nets.decode(features[:0])
        assert empty_landmarks.shape == (0, 68, 2) and empty_texture.shape == (0, 128, 128, 3)


def test_the_numpy_warp_resamples_as_the_model_config_says():
    metadata = packed.read_metadata(SHIPPED)
    from normface.warp import numpy_warp

    rng = np.random.default_rng(3)
    textures = rng.uniform(0, 1, (1, 128, 128, 3)).astype(np.float32)
    mean = np.asarray(metadata.mean_landmarks, np.float32)
    landmarks = mean[None] + rng.uniform(-2, 2, (1, 68, 2)).astype(np.float32)
    warped = {}
    for resampling in ("bilinear", "bicubic"):
        metadata.model_config["warp_resampling"] = resampling
        warped[resampling] = litert_backend.LiteRTBackend(SHIPPED, metadata).warp(textures, landmarks)[0]
        want, _ = numpy_warp.warp_to_landmarks(textures[0], mean, landmarks[0], resampling=resampling)
        np.testing.assert_allclose(warped[resampling], np.clip(want, 0, 1), atol=1e-6)
    assert np.abs(warped["bicubic"] - warped["bilinear"]).mean() > 0.01


def test_a_repacked_model_falls_back_to_tensorflow(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    assert litert_backend.choose_backend(model) == "litert"
    with np.load(model / packed.WEIGHTS_FILE) as arrays:
        weights = {k: arrays[k] for k in arrays.files}
    weights["w000"] = weights["w000"] * np.float16(0.5)  # other weights of the same size
    np.savez_compressed(model / packed.WEIGHTS_FILE, **weights)
    reason = litert_backend.litert_unavailable(model)
    assert reason and "written for other weights" in reason and litert_backend.choose_backend(model) == "tensorflow"


def test_cli_notice_when_falling_back(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(common, "quiet_tensorflow", lambda debug, needed_for="": calls.append("quiet"))
    monkeypatch.setattr(FaceNormalizer, "from_pretrained",
                        classmethod(lambda cls, path, choose, backend, threads: backend))
    export = str(paths.REPO_ROOT / "tests" / "fixtures" / "export_095725b")
    assert common.load_model(types.SimpleNamespace(model=export, debug=False)) == "tensorflow"
    assert common.FALLBACK_NOTICE in capsys.readouterr().err and calls == ["quiet"]
    assert common.load_model(types.SimpleNamespace(model=None, debug=False)) == "litert"
    assert capsys.readouterr().err == "" and calls == ["quiet"]
    assert common.load_model(types.SimpleNamespace(model=None, debug=False, device="gpu")) == "tensorflow"
    assert capsys.readouterr().err == ""


def test_the_server_runs_its_networks_on_every_core():
    """normface serve runs one network batch at a time: its interpreters get the cores (at most
    4, --network-threads), where a batch run keeps one thread each (detection has the other)."""
    import argparse
    import os

    from normface.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert parser.parse_args([]).network_threads == min(os.cpu_count() or 1, 4)
    assert parser.parse_args(["--network-threads", "3"]).network_threads == 3
    loaded = common.load_model(types.SimpleNamespace(model=None, debug=False, network_threads=3))
    assert loaded.backend.num_threads == 3
    assert common.load_model(types.SimpleNamespace(model=None, debug=False)).backend.num_threads == 1


def test_a_run_resumed_on_the_other_backend_redoes_its_inputs(normalizers, tmp_path, monkeypatch, capsys):
    """The backend is part of the run manifest's key (model_fingerprint): a folder never mixes the
    two backends' faces, which differ by a grey level."""
    from normface import cli
    from normface.serving.normalizer import model_fingerprint

    assert model_fingerprint(None, "litert") == model_fingerprint(SHIPPED, "litert")
    assert model_fingerprint(None, "litert") != model_fingerprint(None, "tensorflow") != model_fingerprint(None)
    sample = paths.REPO_ROOT / "samples" / "london_005_08.jpg"
    face = tmp_path / "london_005_08_face0.png"
    for backend, normalizer, resumed in (("litert", normalizers[0], False), ("litert", normalizers[0], True),
                                         ("tensorflow", normalizers[1], False), ("tensorflow", normalizers[1], True)):
        monkeypatch.setenv("NORMFACE_BACKEND", backend)
        monkeypatch.setattr(cli, "_load_normalizer", lambda args, choose="largest": normalizer)
        assert cli.main(["normalize", str(sample), "-o", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert ("1 of 1 input(s) already done" in out) == resumed, (backend, out)
        np.testing.assert_array_equal(io_utils.read_rgb(face), normalizer.normalize(io_utils.read_rgb(sample))[0].image)


def test_cli_normalizes_without_importing_tensorflow(tmp_path):
    code = ("import sys; from normface.cli import main; rc = main(['normalize', sys.argv[1], '-o', sys.argv[2]]); "
            "sys.exit(rc or 10 * ('tensorflow' in sys.modules))")
    sample = paths.REPO_ROOT / "samples" / "london_005_08.jpg"
    result = subprocess.run([sys.executable, "-c", code, str(sample), str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "london_005_08_face0.png").is_file()


@pytest.fixture(scope="module")
def ship_model():
    """experiments/ship_model.py as a module, loaded once (its absl flags may be defined once)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ship_model", paths.REPO_ROOT / "experiments" / "ship_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("overrides", [{}, {"refine_channels": (4, 4), "warp_resampling": "bicubic"}],
                         ids=["paper", "refined_bicubic"])
def test_ship_model_writes_litert_files_equal_to_tensorflow(tmp_path, ship_model, overrides):
    """ship() end to end on a tiny export: the LiteRT files are written, verified, loadable, and
    the LiteRT path's faces equal the TensorFlow path's (also for a model with the issue-28
    refiner, a branch beside the RGB layer, and the bicubic warp)."""
    from normface.testing import synthetic

    target = tmp_path / "pretrained" / "tiny"
    ship_model.ship(synthetic.tiny_export(tmp_path / "export", size=32, **overrides), target, max_mb=60.0)
    assert litert_backend.has_tflite(target)
    assert all((target / name).stat().st_size < 200_000 for name in litert_export.DECODER_FILES)
    lite, tf_path = FaceNormalizer.from_pretrained(target), FaceNormalizer.from_pretrained(target, backend="tensorflow")
    assert lite.backend is not None and tf_path.backend is None
    rng = np.random.default_rng(0)
    aligned = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    landmarks = np.stack([np.asarray(lite.metadata.mean_landmarks, np.float32)] * 2)
    ours, theirs = lite.normalize_aligned(aligned, landmarks), tf_path.normalize_aligned(aligned, landmarks)
    assert np.percentile(np.abs(ours["image"].astype(int) - theirs["image"].astype(int)), 99) <= 1
    assert np.abs(ours["landmarks"] - theirs["landmarks"]).max() <= 0.05

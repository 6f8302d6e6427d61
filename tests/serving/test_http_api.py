"""The HTTP API (``normface serve``) through FastAPI's test client, on the sample photos.

One model for the module; each endpoint on real photos (shapes, 68 landmarks, PNGs that decode,
a .glb that loads back with trimesh), every bad input with its status code and a message naming
the file, results equal to the CLI's for the same photo within one grey level, and two
concurrent requests served by one batched network call (counted by the batch queue).
"""

import asyncio
import base64
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normface import cli
from normface.apps import adjust, avatar, mesh_io
from normface.serving import batcher as batcher_mod
from normface.serving import http_api
from normface.serving.normalizer import FaceNormalizer

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PHOTO = SAMPLES / "london_005_08.jpg"
OTHER = SAMPLES / "london_011_08.jpg"


@pytest.fixture(scope="module")
def normalizer():
    return FaceNormalizer.from_pretrained()


def _apps(data_root=None) -> http_api.Applications:
    return http_api.Applications(adjust=adjust.adjust_with_result,
                                 avatar=lambda image, lms, fmt: avatar.avatar_bytes(image, lms, fmt, data_root),
                                 avatar_missing=avatar.surrey_model_missing(data_root))


def _client(normalizer, apps=None, **limits):
    from fastapi.testclient import TestClient

    app = http_api.create_app(normalizer, applications=apps or _apps(), limits=http_api.Limits(**limits),
                              allowed_hosts=["testserver"])
    return TestClient(app)


@pytest.fixture(scope="module")
def client(normalizer):
    with _client(normalizer) as c:
        yield c


def _upload(path: Path, ctype: str = "image/jpeg", name: str | None = None):
    return ("files", (name or path.name, path.read_bytes(), ctype))


def _decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_normalize_two_photos(client, normalizer):
    r = client.post("/v1/normalize", files=[_upload(PHOTO), _upload(OTHER)])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "normface128"
    assert [f["file"] for f in body["files"]] == [PHOTO.name, OTHER.name]
    size = normalizer.output_size
    for entry in body["files"]:
        assert entry["status"] == "ok" and entry["code"] == 200 and len(entry["faces"]) == 1
        face = entry["faces"][0]
        assert np.asarray(face["landmarks"]).shape == (68, 2)
        assert len(face["face_box"]) == 4 and face["face_box"][2] > face["face_box"][0]
        assert 0.0 <= face["confidence"] < 2.0
        image = _decode_png(base64.b64decode(face["image_png_base64"]))
        assert image.shape == (size, size, 3) and (face["width"], face["height"]) == (size, size)
        assert image.std() > 10  # a face, not a flat grey
    a, b = (np.asarray(e["faces"][0]["landmarks"]) for e in body["files"])
    assert np.abs(a - b).max() > 0.1  # two people, two sets of landmarks


def test_normalize_png_only(client, normalizer):
    r = client.post("/v1/normalize", files=[_upload(PHOTO)], headers={"Accept": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert _decode_png(r.content).shape == (normalizer.output_size, normalizer.output_size, 3)
    r = client.post("/v1/normalize", files=[_upload(PHOTO), _upload(OTHER)], headers={"Accept": "image/png"})
    assert r.status_code == 400 and "one file" in r.json()["error"]


def test_all_faces(client):
    both = np.concatenate([np.asarray(Image.open(PHOTO).convert("RGB")),
                           np.asarray(Image.open(OTHER).convert("RGB"))], axis=1)
    files = [("files", ("pair.png", _png_bytes(both), "image/png"))]
    one = client.post("/v1/normalize", files=files).json()["files"][0]
    every = client.post("/v1/normalize?all_faces=true", files=files).json()["files"][0]
    assert len(one["faces"]) == 1 and one["faces"][0]["num_faces"] == 2
    assert [f["face_index"] for f in every["faces"]] == [0, 1]


def test_same_as_the_cli(client, normalizer, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_load_normalizer", lambda args, choose="largest": normalizer)
    assert cli.main(["normalize", str(PHOTO), "-o", str(tmp_path), "--json"]) == 0
    cli_image = np.asarray(Image.open(tmp_path / f"{PHOTO.stem}_face0.png").convert("RGB"), np.int16)
    cli_json = json.loads((tmp_path / f"{PHOTO.stem}_face0.json").read_text())
    face = client.post("/v1/normalize", files=[_upload(PHOTO)]).json()["files"][0]["faces"][0]
    api_image = _decode_png(base64.b64decode(face["image_png_base64"])).astype(np.int16)
    assert np.abs(api_image - cli_image).max() <= 1
    assert np.abs(np.asarray(face["landmarks"]) - np.asarray(cli_json["landmarks"])).max() < 0.05
    assert face["face_box"] == cli_json["face_box"]
    assert abs(face["confidence"] - cli_json["confidence"]) < 1e-3


def test_adjust(client):
    r = client.post("/v1/adjust", files=[_upload(PHOTO)])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    fixed = _decode_png(r.content)
    original = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert fixed.shape == original.shape
    assert np.abs(fixed.astype(int) - original).mean() > 0.5  # the colours moved
    assert r.headers["x-normface-exposure-only"] == "false"


def test_avatar_glb_and_obj(normalizer, data_root):
    with _client(normalizer, _apps(data_root)) as c:
        r = c.post("/v1/avatar", files=[_upload(PHOTO)])
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "model/gltf-binary"
        mesh = mesh_io.read_glb(r.content)
        assert mesh.vertices.shape == (3448, 3) and mesh.triangles.shape[1] == 3
        assert mesh.colors is not None and mesh.colors.std() > 5  # coloured from the face
        extent = mesh.vertices.max(0) - mesh.vertices.min(0)
        assert 100 < extent[0] < 250  # a face's width in mm
        r = c.post("/v1/avatar?format=obj", files=[_upload(PHOTO)])
        assert r.status_code == 200 and r.headers["content-type"] == "model/obj"
        assert sum(line.startswith("v ") for line in r.text.splitlines()) == 3448
        assert c.get("/v1/model").json()["applications"]["avatar"] is True


def test_the_server_imports_tensorflow_at_the_first_avatar_not_at_start(normalizer, data_root):
    """normface serve's applications load the avatar's module (TensorFlow) on its first request:
    a server on LiteRT starts without TensorFlow, and the avatar it makes then is the avatar's."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys; from normface.cli import serve; apps = serve.applications(False); "
            "print(json.dumps([apps.avatar is not None, apps.avatar_missing, 'tensorflow' in sys.modules]))")
    env = {**os.environ, "NORMFACE_DATA": str(data_root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, avatar.surrey_model_missing(data_root), False]
    from normface.cli import serve

    if avatar.surrey_model_missing(data_root) is None:
        face = normalizer.normalize(np.asarray(Image.open(PHOTO).convert("RGB")))[0]
        lazy = serve.applications(False).avatar(face.image, face.landmarks, "obj")
        assert lazy == avatar.avatar_bytes(face.image, face.landmarks, "obj", data_root)


def test_warm_up_runs_every_litert_interpreter_once_and_traces_every_tensorflow_size(normalizer, monkeypatch):
    from fastapi.testclient import TestClient

    sizes = []
    for backend, want in ((normalizer.backend, [5]), (None, list(range(2, 9)))):
        monkeypatch.setattr(normalizer, "backend", backend)
        monkeypatch.setattr(normalizer, "normalize_aligned", lambda aligned, landmarks: sizes.append(len(aligned)))
        sizes.clear()
        app = http_api.create_app(normalizer, applications=_apps(), limits=http_api.Limits(max_batch=8),
                                  allowed_hosts=["testserver"])
        with TestClient(app):
            pass
        assert sizes == want, backend


def test_avatar_without_the_surrey_model(normalizer, tmp_path):
    with _client(normalizer, _apps(tmp_path)) as c:  # a data folder without morphable_model/
        r = c.post("/v1/avatar", files=[_upload(PHOTO)])
        assert r.status_code == 503
        assert "Surrey" in r.json()["error"] and str(tmp_path) not in r.text  # the console names the path
        info = c.get("/v1/model").json()["applications"]
        assert info["avatar"] is False and "Surrey" in info["avatar_missing"]


def test_bad_inputs_name_the_file(client, normalizer):
    grey = _png_bytes(np.full((120, 160, 3), 128, np.uint8))
    cases = [
        ([("files", ("notes.txt", b"hello", "text/plain"))], 415, "notes.txt"),
        ([("files", ("fake.jpg", b"not really a jpeg", "image/jpeg"))], 422, "fake.jpg"),
        ([("files", ("empty.png", b"", "image/png"))], 422, "empty.png"),
        ([("files", ("wall.png", grey, "image/png"))], 422, "wall.png: no face found"),
        ([_upload(PHOTO, name=f"p{i}.jpg") for i in range(9)], 400, "p8.jpg"),
    ]
    for files, status, text in cases:
        r = client.post("/v1/normalize", files=files)
        assert r.status_code == status, (text, r.text)
        assert text in r.json()["error"], r.json()
    # /v1/avatar answers 503 first when the Surrey Face Model is absent (its own test checks that).
    avatar_here = avatar.surrey_model_missing(None) is None
    for path in ("/v1/adjust", "/v1/avatar") if avatar_here else ("/v1/adjust",):
        r = client.post(path, files=[_upload(PHOTO, name="a.jpg"), _upload(PHOTO, name="b.jpg")])
        assert r.status_code == 400 and "b.jpg" in r.json()["error"]
        r = client.post(path, files=[("files", ("notes.txt", b"hello", "text/plain"))])
        assert r.status_code == 415 and "notes.txt" in r.json()["error"]
    r = client.post("/v1/normalize", data={"other": "x"})
    assert r.status_code == 400 and "files" in r.json()["error"]
    with _client(normalizer, max_file_bytes=10_000, max_files=2) as small:
        r = small.post("/v1/normalize", files=[_upload(PHOTO, name="big.jpg")])
        assert r.status_code == 413 and "big.jpg" in r.json()["error"]
        r = small.post("/v1/normalize", content=b"x" * 100_000,
                       headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "request" in r.json()["error"]


def test_some_files_fail_gives_200_per_file(client):
    r = client.post("/v1/normalize", files=[_upload(PHOTO), ("files", ("notes.txt", b"hi", "text/plain")),
                                            ("files", ("fake.jpg", b"junk", "image/jpeg"))])
    assert r.status_code == 200
    rows = {f["file"]: f for f in r.json()["files"]}
    assert rows[PHOTO.name]["status"] == "ok"
    assert (rows["notes.txt"]["code"], rows["fake.jpg"]["code"]) == (415, 422)
    assert "fake.jpg" in rows["fake.jpg"]["error"]


def test_uploads_leave_no_files(client, tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    data = _png_bytes(noise)
    assert len(data) > 1024 * 1024  # over Starlette's in-memory spool size: goes to a temporary file
    before = set(Path.cwd().iterdir())
    r = client.post("/v1/normalize", files=[("files", ("noise.png", data, "image/png"))])
    assert r.status_code == 422 and "noise.png: no face found" in r.json()["error"]
    assert list(spool.iterdir()) == []
    open_in_spool = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                     if os.path.exists(f"/proc/self/fd/{fd}") and str(spool) in os.readlink(f"/proc/self/fd/{fd}")]
    assert open_in_spool == []  # spooled uploads were closed (so deleted) after the request
    assert set(Path.cwd().iterdir()) == before


def test_two_concurrent_requests_one_network_call(normalizer):
    import httpx

    app = http_api.create_app(normalizer, applications=_apps(), allowed_hosts=["testserver"],
                              limits=http_api.Limits(max_batch=2, window_s=5.0))
    queue = app.state.batcher

    async def both():
        await queue.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await asyncio.gather(c.post("/v1/normalize", files=[_upload(PHOTO)]),
                                            c.post("/v1/normalize", files=[_upload(OTHER)]))
        finally:
            await queue.stop()

    r1, r2 = asyncio.run(both())
    assert r1.status_code == r2.status_code == 200
    assert (queue.calls, queue.faces) == (1, 2)


def test_busy_and_timeout(normalizer, monkeypatch):
    with _client(normalizer) as c:
        async def full(*args):
            raise batcher_mod.QueueFull("64 photos are waiting for the network already")

        monkeypatch.setattr(c.app.state.batcher, "submit", full)
        r = c.post("/v1/normalize", files=[_upload(PHOTO)])
        assert r.status_code == 503 and PHOTO.name in r.json()["error"] and "busy" in r.json()["error"]
        assert r.headers["retry-after"] == "1"
    with _client(normalizer, timeout_s=0.001) as c:
        r = c.post("/v1/normalize", files=[_upload(PHOTO)])
        assert r.status_code == 504 and "0.001 s" in r.json()["error"]


def test_batcher_queue_is_bounded():
    import threading

    release = threading.Event()

    def slow(aligned, landmarks):
        release.wait(10)
        return {"x": aligned}

    async def scenario():
        queue = batcher_mod.FaceBatcher(slow, max_batch=1, max_queue=1, window_s=0.0)
        await queue.start()
        one = np.zeros((1, 2, 2, 3), np.uint8)
        first = asyncio.create_task(queue.submit(one, np.zeros((1, 68, 2))))
        await asyncio.sleep(0.05)  # the worker took it and is running
        second = asyncio.create_task(queue.submit(one + 1, np.zeros((1, 68, 2))))
        await asyncio.sleep(0.05)
        with pytest.raises(batcher_mod.QueueFull):
            await queue.submit(one, np.zeros((1, 68, 2)))
        release.set()
        a, b = await first, await second
        await queue.stop()
        return a, b, queue.calls

    a, b, calls = asyncio.run(scenario())
    assert a["x"].max() == 0 and b["x"].max() == 1 and calls == 2


def test_model_info_names_the_normface_version(client):
    from normface import __version__

    assert client.get("/v1/model").json()["normface_version"] == __version__


def test_health_model_docs_page(client):
    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/v1/model").json()
    assert info["name"] == "normface128" and info["output_size"] == 128 and info["landmarks"] == 68
    assert "# normface" in info["card"]
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/normalize", "/v1/adjust", "/v1/avatar", "/healthz", "/v1/model"} <= set(spec["paths"])
    normalize = spec["paths"]["/v1/normalize"]["post"]
    assert "image/png" in normalize["responses"]["200"]["content"]
    assert {"413", "415", "422", "503"} <= set(normalize["responses"])
    assert "model/gltf-binary" in spec["paths"]["/v1/avatar"]["post"]["responses"]["200"]["content"]
    page = client.get("/")
    assert page.status_code == 200 and "model-viewer.min.js" in page.text
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN in the head
    assert client.get("/static/vendor/model-viewer.min.js").status_code == 200

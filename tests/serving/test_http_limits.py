"""The server under abuse (issue 30, cases 1-12): each defence tested by its mechanism.

No TensorFlow here: the app runs over :class:`CountingNormalizer`, which finds one face in any
photo, counts the photos it aligned and the faces that reached "the network", and makes a photo
whose first pixel is pure red wait in its decode thread until the test opens ``gate``. Bytes,
photos and calls are counted rather than seconds timed; where a test waits for something that the
old code would never do, a generous guard ends the wait, so such a test fails instead of hanging.
Requests go through the ASGI interface itself (:func:`asgi_post`: the test controls each piece of
the body and the moment the client disconnects), httpx's ASGI transport, Starlette's test client,
or a real uvicorn on a loopback port.
"""

from __future__ import annotations

import asyncio
import email.message
import io
import json
import re
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from normface import cli
from normface.serving import http_api
from normface.serving.normalizer import FaceNormalizer

HOST = "testserver"
RED = (255, 0, 0)


class CountingNormalizer:
    """A stand-in for FaceNormalizer: one 8x8 face per photo; counts aligned photos and network faces."""

    output_size = 8
    template = None

    def __init__(self, fail_with: Exception | None = None):
        self.metadata = SimpleNamespace(output_size=8, encoder_id="fake", step=0, template={}, chip={},
                                        model_config={}, mean_landmarks=np.zeros((68, 2), np.float32))
        self.aligned = 0
        self.network_faces = 0
        self.active = 0
        self.most_active = 0
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()  # a red photo is waiting at the gate
        self.fail_with = fail_with
        self._lock = threading.Lock()

    def align(self, image, all_faces=False):
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            if tuple(image[0, 0]) == RED:
                self.waiting.set()
                assert self.gate.wait(120), "the gate was never opened"
            with self._lock:
                self.aligned += 1
            det = SimpleNamespace(box=(0, 0, 8, 8), num_faces=1)
            return [(np.full((8, 8, 3), 100, np.uint8), np.zeros((68, 2), np.float32), det)]
        finally:
            with self._lock:
                self.active -= 1

    def normalize_aligned(self, aligned, landmarks):
        if self.fail_with is not None:
            raise self.fail_with
        self.network_faces += len(aligned)
        b = len(aligned)
        return {"image": np.zeros((b, 8, 8, 3), np.uint8), "landmarks": np.zeros((b, 68, 2), np.float32),
                "texture": np.zeros((b, 8, 8, 3), np.uint8), "features": np.zeros((b, 4), np.float32),
                "confidence": np.zeros(b, np.float32)}

    to_results = FaceNormalizer.to_results


def png(color=(90, 120, 150), size=(24, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_app(normalizer=None, applications=None, **limits):
    return http_api.create_app(normalizer or CountingNormalizer(), applications=applications, warm=False,
                               limits=http_api.Limits(**limits), allowed_hosts=[HOST])


def multipart(files: list[tuple[str, bytes]], boundary: str = "xyzzy") -> tuple[bytes, str]:
    """A multipart body written by hand (names go in raw, as curl sends them)."""
    body = b""
    for name, data in files:
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                 "Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def asgi_post(app, path: str, chunks, headers: dict[str, str], *, stall_after: int | None = None,
                    disconnect: asyncio.Event | None = None):
    """POSTs ``chunks`` (an iterable of bytes) through the ASGI interface; counts the bytes the app
    pulled. ``stall_after``: after that many chunks the body stops coming (a slow client).
    ``disconnect``: once set, the client is gone. Returns (status, headers, body, bytes pulled)."""
    pulled = 0
    pieces = iter(chunks)
    given = 0
    body_done = False
    messages = []

    async def receive():
        nonlocal pulled, given, body_done
        if not body_done:
            if stall_after is not None and given >= stall_after:
                await asyncio.Event().wait()  # never comes
            chunk = next(pieces, None)
            if chunk is None:
                body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            given += 1
            pulled += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": True}
        await (disconnect.wait() if disconnect is not None else asyncio.Event().wait())
        return {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", HOST.encode())] + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": (HOST, 80)}
    await app(scope, receive, send)
    start = next((m for m in messages if m["type"] == "http.response.start"), None)
    status = start["status"] if start else None
    out_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]} if start else {}
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, out_headers, body, pulled


async def with_batcher(app, coro):
    await app.state.batcher.start()
    try:
        return await coro
    finally:
        await app.state.batcher.stop()


def client(app, **kwargs):
    from fastapi.testclient import TestClient

    return TestClient(app, **kwargs)


# --- 1: a chunked body is counted as it arrives ------------------------------------------------


def test_1_chunked_body_is_refused_once_it_passes_the_limit():
    app = make_app(max_files=1, max_file_bytes=100_000)
    limit = app.state.limits.max_request_bytes
    piece = 16 * 1024
    body, ctype = multipart([("big.jpg", b"\0" * 200 * piece)])  # a 3.2 MB photo, sent without a Content-Length
    chunks = [body[i:i + piece] for i in range(0, len(body), piece)]
    status, headers, body, pulled = asyncio.run(
        asgi_post(app, "/v1/normalize", chunks, {"content-type": ctype, "transfer-encoding": "chunked"}))
    assert status == 413, body
    assert "over the limit" in json.loads(body)["error"]
    assert limit < pulled <= limit + piece  # refused at the first piece past the limit, not after 3.2 MB


def test_1_content_length_over_the_limit_is_refused_before_reading():
    app = make_app(max_files=1, max_file_bytes=100_000)
    head, ctype = multipart([("big.jpg", b"")])
    status, headers, body, pulled = asyncio.run(asgi_post(app, "/v1/normalize", [head] + [b"\0" * 65536] * 10, {
        "content-type": ctype, "content-length": str(10 * 65536 + len(head))}))
    assert status == 413 and pulled == 0, (status, pulled)
    assert "over the limit" in json.loads(body)["error"] and headers["x-content-type-options"] == "nosniff"


def test_slow_body_gets_408_and_the_app_never_sees_it():
    app = make_app(body_timeout_s=0.05)
    body, ctype = multipart([("slow.png", png())])
    status, headers, text, pulled = asyncio.run(asyncio.wait_for(  # the guard: a stalled body must not hang the test
        asgi_post(app, "/v1/normalize", [body[:100], body[100:]], {"content-type": ctype}, stall_after=1), 30))
    assert status == 408 and "did not arrive" in json.loads(text)["error"]
    assert pulled == 100 and headers.get("connection") == "close"


# --- 2: pixels checked from the header; a bounded pool of decode threads -----------------------


def test_2_pixel_budget_refuses_before_any_pixel_is_decoded(monkeypatch):
    from PIL import ImageFile

    loads = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self.size) or original(self))
    fake = CountingNormalizer()
    with client(make_app(fake, max_pixels=10_000), base_url=f"http://{HOST}") as c:
        r = c.post("/v1/normalize", files=[("files", ("wide.png", png(size=(200, 100)), "image/png"))])
        assert r.status_code == 413, r.text
        assert "wide.png: 200x100 pixels" in r.json()["error"] and "0.01 MP" in r.json()["error"]
        assert loads == [] and fake.aligned == 0
        r = c.post("/v1/normalize", files=[("files", ("small.png", png(size=(90, 90)), "image/png"))])
        assert r.status_code == 200 and loads and set(loads) == {(90, 90)}  # decoded once admitted


def test_2_one_slow_photo_does_not_hold_the_others():
    import httpx

    fake = CountingNormalizer()
    fake.gate.clear()
    app = make_app(fake, workers=2)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
            slow = asyncio.create_task(c.post("/v1/normalize", files=[("files", ("slow.png", png(RED), "image/png"))]))
            while not fake.waiting.is_set():
                await asyncio.sleep(0.01)
            try:
                quick = await asyncio.wait_for(
                    c.post("/v1/normalize", files=[("files", ("quick.png", png(), "image/png"))]), 30)
                slow_done_first = slow.done()
            finally:
                fake.gate.set()
            return quick, slow_done_first, await slow

    quick, slow_done_first, slow = asyncio.run(with_batcher(app, scenario()))
    assert quick.status_code == 200 and not slow_done_first and slow.status_code == 200
    assert fake.most_active == 2


# --- 3: an abandoned request's photos never reach the network ----------------------------------


def test_3_a_disconnected_clients_photos_never_reach_the_network():
    fake = CountingNormalizer()
    fake.gate.clear()
    app = make_app(fake, workers=1)
    body, ctype = multipart([("first.png", png(RED))] + [(f"p{i}.png", png()) for i in range(7)])

    async def scenario():
        gone = asyncio.Event()
        request = asyncio.create_task(asgi_post(app, "/v1/normalize", [body], {"content-type": ctype},
                                                disconnect=gone))
        while not fake.waiting.is_set():  # the first photo is in the one decode thread, 7 wait for it
            await asyncio.sleep(0.01)
        held = [app.state.admission.held] if hasattr(app.state, "admission") else []
        gone.set()  # the client disconnects
        await asyncio.wait({request}, timeout=30)
        answered_while_decoding = request.done()
        if hasattr(app.state, "admission"):
            held.append(app.state.admission.held)  # the photo still in its thread stays counted
        fake.gate.set()
        await request
        for _ in range(3000):
            if not hasattr(app.state, "admission") or app.state.admission.held == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(app.state.limits.window_s * 4)
        return held, answered_while_decoding

    held, answered_while_decoding = asyncio.run(with_batcher(app, scenario()))
    assert fake.network_faces == 0 and app.state.batcher.calls == 0
    assert fake.aligned <= 1  # the 7 waiting photos were never decoded
    assert answered_while_decoding and app.state.counters["abandoned"] == 1
    assert held == [8, 1] and app.state.admission.held == 0


# --- 4: admission counts every photo held, waiting for decode included --------------------------


def test_4_admission_refuses_at_the_configured_count_with_retry_after():
    import httpx

    fake = CountingNormalizer()
    fake.gate.clear()
    app = make_app(fake, workers=1, max_files=2, max_queue=3, retry_after_s=2)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as c:
            two = [("files", ("red.png", png(RED), "image/png")), ("files", ("b.png", png(), "image/png"))]
            first = asyncio.create_task(c.post("/v1/normalize", files=two))
            while not fake.waiting.is_set():
                await asyncio.sleep(0.01)
            try:  # 2 photos held (one decoding, one waiting for the thread): 2 more would make 4 > 3
                refused = await asyncio.wait_for(c.post("/v1/normalize", files=two), 30)
                health = (await c.get("/healthz")).json()
            finally:
                fake.gate.set()
            return refused, health, await first

    refused, health, first = asyncio.run(with_batcher(app, scenario()))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert "holds 2 photo(s)" in refused.json()["error"] and "limit of 3" in refused.json()["error"]
    assert health["held_photos"] == 2 and health["refused"] == 1
    assert first.status_code == 200 and fake.aligned == 2 and app.state.admission.held == 0
    with pytest.raises(ValueError):
        http_api.Limits(max_files=8, max_queue=4)  # a request of 8 could never be admitted


# --- 5, 6: names in Content-Disposition ---------------------------------------------------------


def _parameters(value: str) -> tuple[list[str], str]:
    """The parameter names of a Content-Disposition value (``filename*`` read as ``filename``, as the
    email package reads RFC 2231) and the name a client takes: ``filename*`` when present."""
    import email.utils

    message = email.message.Message()
    message["content-disposition"] = value
    params = message.get_params(header="content-disposition")
    encoded = [v for k, v in params if k == "filename" and isinstance(v, tuple)]
    plain = [v for k, v in params if k == "filename" and not isinstance(v, tuple)]
    return [k for k, _ in params], email.utils.collapse_rfc2231_value((encoded or plain)[0])


@pytest.mark.parametrize("name, expected", [("фото.jpg", "фото_adjusted.png"), ("€.jpg", "€_adjusted.png"),
                                            ('a"; x=".jpg', 'a"; x="_adjusted.png'),
                                            ("plain.jpg", "plain_adjusted.png")])
def test_5_6_any_upload_name_comes_back_safely(name, expected):
    apps = http_api.Applications(adjust=lambda photo, result, template: SimpleNamespace(image=photo,
                                                                                        exposure_only=False),
                                 avatar=lambda image, landmarks, fmt: b"mesh", avatar_missing=None)
    escaped = name.replace('"', '\\"')
    body, ctype = multipart([(escaped, png())])
    with client(make_app(applications=apps), base_url=f"http://{HOST}") as c:
        for path, suffix in (("/v1/adjust", "_adjusted.png"), ("/v1/avatar?format=obj", "_avatar.obj")):
            r = c.post(path, content=body, headers={"content-type": ctype})
            assert r.status_code == 200, r.text
            keys, filename = _parameters(r.headers["content-disposition"])
            assert r.headers["content-disposition"].isascii()
            assert keys[0] in ("inline", "attachment") and set(keys[1:]) == {"filename"}, keys  # no x= parameter
            assert filename == expected.replace("_adjusted.png", suffix)
    assert http_api.content_disposition("inline", 'a"; x=".png') == \
        "inline; filename=\"a_; x=_.png\"; filename*=UTF-8''a%22%3B%20x%3D%22.png"


# --- 7: /docs works offline ---------------------------------------------------------------------


def test_7_docs_load_only_local_assets():
    import base64
    import hashlib

    with client(make_app(), base_url=f"http://{HOST}") as c:
        r = c.get("/docs")
        assert r.status_code == 200
        assert "http://" not in r.text and "https://" not in r.text and "//cdn" not in r.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert len(assets) == 3 and all(a.startswith("/static/vendor/swagger-ui") for a in assets), assets
        for asset in assets:
            assert c.get(asset).status_code == 200, asset
        assert "validatorUrl" in r.text  # the online validator badge is off
        (script,) = re.findall(r"<script>(.*?)</script>", r.text, flags=re.S)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in r.headers["content-security-policy"]  # its one inline script may run
        assert c.get("/redoc").status_code == 404  # FastAPI's ReDoc page loads from a CDN: off


# --- 8: Host checked, security headers, no Server header ---------------------------------------


def test_8_unknown_host_is_refused_and_every_answer_has_security_headers():
    with client(make_app(), base_url=f"http://{HOST}") as c:
        assert c.get("/healthz", headers={"host": "attacker.example"}).status_code == 400
        for path in ("/", "/healthz", "/docs", "/static/app.js", "/nowhere"):
            r = c.get(path)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "no-referrer"
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
    assert http_api.allowed_hosts_for("0.0.0.0") == ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"]
    assert http_api.allowed_hosts_for("::1") == ["localhost", "127.0.0.1", "[::1]"]
    assert http_api.allowed_hosts_for("Faces.Example") == ["localhost", "127.0.0.1", "[::1]", "faces.example"]


def test_8_uvicorn_sends_no_server_header_and_bounds_connections():
    import http.client

    app = http_api.create_app(CountingNormalizer(), warm=False, allowed_hosts=http_api.allowed_hosts_for("127.0.0.1"))
    sock = http_api.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = http_api.make_server(app, host="127.0.0.1", port=port, limits=http_api.Limits(max_connections=7))
    assert server.config.limit_concurrency == 7
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(3000):
            if server.started:
                break
            time.sleep(0.01)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("server") is None
        assert response.getheader("x-content-type-options") == "nosniff"
        connection.close()
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


# --- 9, 12: the serve command: warning off loopback, a port in use -----------------------------


@pytest.fixture
def fake_serve(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "_load_normalizer", lambda args, choose="largest": CountingNormalizer())
    monkeypatch.setattr(http_api, "serve", lambda normalizer, **kwargs: calls.append(kwargs))
    return calls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_9_a_non_loopback_host_warns_and_names_the_hosts_served(fake_serve, capsys):
    port = _free_port()
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", str(port)]) == 0
    err = capsys.readouterr().err
    assert "warning: --host 0.0.0.0 accepts connections from other machines" in err and "reverse proxy" in err
    assert fake_serve[-1]["allowed_hosts"] == ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"]
    assert cli.main(["serve", "--port", str(port), "--allowed-hosts", "faces.example, localhost"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert fake_serve[-1]["allowed_hosts"] == ["faces.example", "localhost"]


def test_12_a_port_in_use_is_one_line_and_exit_2_before_the_model_loads(monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load when the port is taken")

    monkeypatch.setattr(cli, "_load_normalizer", no_model)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "serving" not in err
    assert f"--port {port}: cannot listen there: Address already in use" in err and "choose another --port" in err
    assert len(err.strip().splitlines()) == 2  # the usage line and the error, nothing from uvicorn


# --- 10: 405 with Allow; the OpenAPI schema says how many files ---------------------------------


def test_10_405_names_the_allowed_methods_and_openapi_bounds_files():
    with client(make_app(max_files=5, max_queue=5), base_url=f"http://{HOST}") as c:
        for method, path, allowed in (("POST", "/", "GET"), ("GET", "/v1/normalize", "POST"),
                                      ("DELETE", "/healthz", "GET"), ("POST", "/static/app.js", "GET")):
            r = c.request(method, path)
            assert r.status_code == 405 and allowed in r.headers["allow"], (method, path, r.headers)
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, most in (("/v1/normalize", 5), ("/v1/adjust", 1), ("/v1/avatar", 1)):
        ref = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        files = schemas[ref.rsplit("/", 1)[1]]["properties"]["files"]
        assert (files["minItems"], files["maxItems"]) == (1, most), path
        assert "Retry-After" in spec["paths"][path]["post"]["responses"]["503"]["headers"]


# --- 11: no server paths in answers -------------------------------------------------------------


def test_11_answers_never_name_the_servers_files(tmp_path):
    secret = str(tmp_path / "data" / "morphable_model")
    apps = http_api.Applications(avatar=lambda image, landmarks, fmt: b"", avatar_missing=f"{secret} is missing; "
                                 "the avatar needs the Surrey Face Model")
    with client(make_app(applications=apps), base_url=f"http://{HOST}") as c:
        r = c.post("/v1/avatar", files=[("files", ("a.png", png(), "image/png"))])
        assert r.status_code == 503 and "Surrey" in r.json()["error"] and str(tmp_path) not in r.text
        info = c.get("/v1/model").text
        assert str(tmp_path) not in info and str(Path(http_api.__file__).parent) not in info
        assert "Surrey" in json.loads(info)["applications"]["avatar_missing"]
    broken = CountingNormalizer(fail_with=RuntimeError(f"cannot open {secret}/x.bin"))
    with client(make_app(broken), base_url=f"http://{HOST}", raise_server_exceptions=False) as c:
        r = c.post("/v1/normalize", files=[("files", ("a.png", png(), "image/png"))])
        assert r.status_code == 500 and str(tmp_path) not in r.text and "RuntimeError" in r.json()["error"]

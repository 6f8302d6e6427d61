"""``normface serve``: the HTTP API and the web page, one process over one loaded model.

A thin layer over the library (FastAPI on uvicorn):

- ``POST /v1/normalize``: photos (multipart field ``files``) -> per file, per face: box,
  landmarks, confidence, the normalized image as base64 PNG (``Accept: image/png``: the image
  alone); ``?all_faces=true`` as the CLI's ``--all-faces``.
- ``POST /v1/adjust``: one photo -> the white-balance/exposure-corrected photo (PNG).
- ``POST /v1/avatar``: one photo -> the fitted 3-D face, binary glTF (``?format=obj``: OBJ);
  503 when the Surrey model is not in ``$NORMFACE_DATA``.
- ``GET /healthz``, ``GET /v1/model`` (the normface version, metadata and model card), ``GET /docs``
  (OpenAPI, Swagger UI vendored in ``static/vendor``), and the page at ``/`` (``static/``: all
  assets local, the 3-D viewer vendored in ``static/vendor``).

What one request may cost is bounded where the cost arises:

- bytes: a request whose Content-Length is over ``Limits.max_request_bytes`` gets 413 before its
  body is read; a body without one (chunked) is counted as it arrives (FastAPI's route
  ``max_body_size``) and refused with 413 at the first piece past the limit; a body that does not
  arrive within ``Limits.body_timeout_s`` gets 408 (:class:`RequestBody`);
- pixels: each photo's size is read from its header (Pillow's ``Image.open`` decodes no pixel)
  and a photo over ``Limits.max_pixels`` gets 413 before anything is decoded;
- threads: photos are decoded, and their faces found and aligned, in a pool of
  ``Limits.workers`` threads, so one slow photo does not hold the others; the faces then wait
  in the :class:`~normface.serving.batcher.FaceBatcher` queue, so the faces of concurrent
  requests go through the networks in one call;
- photos held: admission (:class:`Admission`) counts every photo the server holds, from the
  moment its request is admitted (waiting for a decode thread included) until its last work is
  done; a request that would take the count over ``Limits.max_queue`` gets 503 with
  ``Retry-After`` at once;
- time: a request that takes longer than ``Limits.timeout_s`` gets 504; a request whose client
  disconnects is abandoned: its photos still waiting for a thread or for the network are dropped
  (counted in ``/healthz`` as ``abandoned``) and never reach the network.

Every answer carries ``X-Content-Type-Options``, ``X-Frame-Options``, a Content Security Policy
(same-origin only, no framing) and ``Referrer-Policy`` (:class:`SecurityHeaders`); a ``Host``
outside ``allowed_hosts`` gets 400 (Starlette's ``TrustedHostMiddleware``, against DNS
rebinding); no ``Server`` header is sent. Names of uploads come back in ``Content-Disposition``
as RFC 6266 / RFC 5987 ``filename*`` (:func:`content_disposition`). Messages never name the
server's files.

Bad input never gives a 500: every problem is a JSON ``{"error": ..., "files": [...]}`` whose
message names the file: 415 not an image type, 422 not a readable image or no face, 413 a file
(or the request, or a photo's pixels) over the limit, 400 too many files. When some files of a
request fail and others succeed, the answer is 200 with a ``status`` per file. Uploads are read
into memory (the framework spools big ones to unnamed temporary files, closed and so deleted
after the request); nothing is written to disk.

The applications (``normface.apps``) sit above serving in the package's layers, so this module
does not import them: the caller (``normface serve`` in ``normface.cli``) hands them in as
:class:`Applications`.
"""


import asyncio
import base64
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import io
import ipaddress
import logging
import os
import re
import resource
import socket
import threading
import time
import urllib.parse
import warnings
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Sequence

import numpy as np
from starlette.exceptions import HTTPException as StarletteHTTPException

from normface import __version__
from normface.serving.batcher import FaceBatcher, QueueFull
from normface.utils import io_utils

STATIC_DIR = Path(__file__).parent / "static"
# Types accepted as photos; application/octet-stream (curl's default for unknown suffixes) is
# sniffed like them. Anything else is 415.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
SNIFFED_TYPES = ("application/octet-stream", "")
# Host headers served by default (DNS rebinding: a page of another site reaching a loopback
# server under its own name is refused); serve() adds the --host given.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Same origin only: the page's scripts, styles and the API; images from data: and blob: URLs
# (the normalized faces, the uploaded photo), blob: for the 3-D viewer's model; never framed.
# 'wasm-unsafe-eval' lets the viewer compile its bundled WebAssembly (three.js' meshopt decoder,
# compiled when the bundle loads); it allows no JavaScript eval.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self' blob: data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin"}
SWAGGER_UI = {"js": "/static/vendor/swagger-ui-bundle.js", "css": "/static/vendor/swagger-ui.css",
              "favicon": "/static/vendor/swagger-ui-favicon-32x32.png"}

log = logging.getLogger("normface.serve")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one server accepts.

    max_files: files per request; max_file_bytes: bytes per file (413 beyond; the whole request
    may carry ``max_files * max_file_bytes`` plus 64 KiB, counted as it arrives); max_pixels:
    pixels per photo, read from its header before decoding (413 beyond); max_queue: photos the
    server holds at once, from admission to the end of their work (503 with ``Retry-After:
    retry_after_s`` beyond); max_batch / window_s: the batch queue (:class:`FaceBatcher`);
    workers: threads that decode and align photos; timeout_s: the longest a request may take
    (504 beyond); body_timeout_s: the longest a request body may take to arrive (408 beyond);
    max_connections: open connections before uvicorn answers 503 (``limit_concurrency``).
    """

    max_files: int = 8
    max_file_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_queue: int = 64
    max_batch: int = 16
    window_s: float = 0.005
    workers: int = dataclasses.field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    timeout_s: float = 60.0
    body_timeout_s: float = 60.0
    retry_after_s: int = 1
    max_connections: int = 64

    def __post_init__(self):
        if self.max_queue < self.max_files:
            raise ValueError(f"the queue ({self.max_queue} photos) must hold one request's files "
                             f"({self.max_files})")

    @property
    def max_request_bytes(self) -> int:
        return self.max_files * self.max_file_bytes + 64 * 1024


@dataclasses.dataclass(frozen=True)
class Applications:
    """The applications the server offers beyond normalization (from ``normface.apps``).

    adjust(photo, result, template) -> the corrected ``[h, w, 3]`` uint8 photo;
    avatar(normalized image, its landmarks, "glb" | "obj") -> the file's bytes;
    avatar_missing: why the avatar is unavailable (the Surrey model is absent), or None. The
    reason may name the server's files: it is for the server's console, while clients are told
    :data:`AVATAR_MISSING`. An application left None answers 503 saying it is not available.
    """

    adjust: Callable[[np.ndarray, Any, Any], np.ndarray] | None = None
    avatar: Callable[[np.ndarray, np.ndarray, str], bytes] | None = None
    avatar_missing: str | None = "this server was started without the avatar application"


AVATAR_MISSING = ("the avatar needs the Surrey Face Model (non-commercial licence, not shipped), which this server "
                  "does not have; its console says where it was looked for")


class InputProblem(Exception):
    """A problem with one uploaded file (or the request): its HTTP status, a message naming the
    file, and headers for the answer (``Retry-After`` of a 503)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class Admission:
    """Counts the photos the server holds, from their request's admission until the last of their
    work is done (waiting for a decode thread, decoding, waiting for the network, encoding the
    answer). :meth:`hold` refuses a request that would take the count over ``most``; a photo whose
    decode is still running in its thread when its request ends (the client went away, or the
    request timed out) stays counted until that thread is done with it. Thread-safe: the pool's
    threads give photos back."""

    def __init__(self, most: int):
        self.most = most
        self.held = 0
        self.refused = 0  # requests answered 503
        self._lock = threading.Lock()

    def _give_back(self, n: int) -> None:
        with self._lock:
            self.held -= n

    @contextlib.contextmanager
    def hold(self, n: int, retry_after_s: int):
        """Admits ``n`` photos or raises a 503 InputProblem; yields a list for the request's
        decode jobs (``concurrent.futures.Future``), whose photos are given back when they end."""
        with self._lock:
            if self.held + n > self.most:
                self.refused += 1
                raise InputProblem(503, f"the server is busy: it holds {self.held} photo(s), {n} more would pass "
                                        f"its limit of {self.most}; retry in {retry_after_s} s",
                                   {"Retry-After": str(retry_after_s)})
            self.held += n
        jobs: list[concurrent.futures.Future] = []
        try:
            yield jobs
        finally:
            running = [job for job in jobs if not job.cancel() and not job.done()]
            self._give_back(n - len(running))
            for job in running:
                job.add_done_callback(lambda _: self._give_back(1))


class BodyTooSlow(StarletteHTTPException):
    """The request body did not arrive within ``Limits.body_timeout_s`` (an HTTPException, so the
    framework's body parsing passes it on to the 408 answer rather than calling it malformed)."""

    def __init__(self, timeout_s: float):
        super().__init__(408, f"the request body did not arrive within {timeout_s:g} s", {"Connection": "close"})


class RequestBody:
    """ASGI middleware for what uvicorn does not bound: a request whose Content-Length is over
    ``max_bytes`` gets 413 before a byte of its body is read (the routes' ``max_body_size``
    counts the bytes of a body without one as they arrive); a body must arrive within
    ``timeout_s`` of the request's start, or the request gets 408 (a slow client otherwise holds
    its connection and the request's memory for as long as it likes). After the body, receive()
    is passed through untouched (it then only waits for the client to disconnect)."""

    def __init__(self, app, max_bytes: int, timeout_s: float, answer: Callable[..., Any]):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.answer = answer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers

        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self.answer(413, f"the request is {int(length)} bytes, over the limit of {self.max_bytes}",
                                     headers={"Connection": "close"})(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        complete = False
        started = False

        async def receive_in_time():
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(self.timeout_s) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_started(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_started)
        except BodyTooSlow as slow:  # outside a route (a route's handler answers it itself)
            if started:
                raise
            await self.answer(slow.status_code, slow.detail, headers=slow.headers)(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: adds :data:`SECURITY_HEADERS` and a Content-Security-Policy (``csp(path)``)
    to every answer that does not set its own."""

    def __init__(self, app, csp: Callable[[str], str]):
        self.app = app
        self.csp = csp

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import MutableHeaders

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", self.csp(scope.get("path", "")))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def content_disposition(kind: str, filename: str) -> str:
    """An RFC 6266 ``Content-Disposition`` value for ``filename``: a quoted ASCII ``filename``
    (quotes, backslashes, control and non-ASCII characters as ``_``) and, when that differs, the
    exact name as RFC 5987 ``filename*=UTF-8''<percent-encoded>``: any name is safe in the header."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    value = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    return value


def allowed_hosts_for(host: str, extra: Sequence[str] = ()) -> list[str]:
    """The Host names a server bound to ``host`` answers by default: the loopback names, the
    address it was given (IPv6 in brackets, as a Host header carries it) and ``extra``."""
    given = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return list(dict.fromkeys([*LOOPBACK_HOSTS, given.lower(), *(h.lower() for h in extra)]))


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (as uvicorn binds: SO_REUSEADDR), for :func:`serve`.
    Raises OSError (EADDRINUSE: the port is taken; EACCES; socket.gaierror: an unknown host)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _error(status: int, message: str, files: list[dict] | None = None, headers: dict[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message, "files": files or []}, status_code=status, headers=headers)


def _wants_png(accept: str | None) -> bool:
    accept = (accept or "").lower()
    return "image/png" in accept and "application/json" not in accept


def _check_pixels(name: str, data: bytes, most: int) -> None:
    """413 when the photo's header gives it more than ``most`` pixels; Pillow's ``Image.open``
    reads only the header, so nothing is decoded. An unreadable header is left to the decoder,
    which says why (422)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: the size is checked here
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError as err:
        raise InputProblem(413, f"{name}: {err}") from err
    except Exception:  # noqa: BLE001 -- not an image Pillow knows: read_image_bytes says why
        return
    if width * height > most:
        raise InputProblem(413, f"{name}: {width}x{height} pixels ({width * height / 1e6:.1f} MP), over the limit "
                                f"of {most / 1e6:g} MP")


def peak_rss_mb() -> float:
    """The process's peak resident memory (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def _until_disconnected(receive) -> None:
    """Returns when the client has gone (called once the request body has been read, receive()
    then waits for ``http.disconnect``)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def create_app(normalizer, *, applications: Applications | None = None, limits: Limits = Limits(),
               model_path: str | Path | None = None, warm: bool = True,
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS):
    """The ASGI app over a loaded :class:`~normface.serving.normalizer.FaceNormalizer`.

    With ``warm``, start-up runs the networks once before the first request is accepted.

    ``model_path`` (the model's folder) names the model in ``/v1/model`` and supplies its card.
    ``allowed_hosts``: the Host headers served (others get 400; ``"*"`` serves any; a test
    client's ``testserver`` must be listed). ``app.state.batcher`` is the batch queue (its
    ``calls`` count network calls), ``app.state.admission`` counts the photos held.
    """
    from fastapi import FastAPI, File, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from normface.serving.normalizer import resolve_model_path

    apps = applications or Applications()
    avatar_on = apps.avatar is not None and apps.avatar_missing is None
    model_dir = resolve_model_path(model_path)
    model_dir = model_dir if model_dir.is_dir() else model_dir.parent  # a .keras file: its export folder
    batcher = FaceBatcher(normalizer.normalize_aligned, max_batch=limits.max_batch,
                          max_queue=limits.max_queue, window_s=limits.window_s)
    admission = Admission(limits.max_queue)
    prep_pool = concurrent.futures.ThreadPoolExecutor(limits.workers, thread_name_prefix="normface-prep")
    app_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="normface-apps")
    counters = {"abandoned": 0}  # requests whose client went away before the answer
    avatar_unavailable = AVATAR_MISSING if apps.avatar is not None else "not configured on this server"

    def warm_up() -> None:
        """Traces the networks before the first request, which would otherwise wait for it (tens
        of seconds on a busy CPU): batches of 2 and 3 make the one generalized trace that every
        size reuses (a batch of one runs as two), then each size up to ``max_batch`` once, since
        the CPU compiles each batch size on its first call (0.3-0.5 s each, else paid by a request).
        On LiteRT nothing is traced: one batch of 5 runs every interpreter (the decoder's head and
        both bodies) once."""
        size = normalizer.output_size
        landmarks = np.asarray(normalizer.metadata.mean_landmarks, np.float32)
        from normface.faces.detection import landmarks68

        # dlib's 68-point model loads on first use (~0.5 s, else paid by the first request).
        landmarks68(np.full((size, size, 3), 128, np.uint8), (0, 0, size - 1, size - 1))
        sizes = range(2, max(3, limits.max_batch) + 1) if normalizer.backend is None else [min(5, limits.max_batch)]
        for n in sizes:
            normalizer.normalize_aligned(np.full((n, size, size, 3), 128, np.uint8), np.stack([landmarks] * n))

    @asynccontextmanager
    async def lifespan(app):
        if warm:
            await asyncio.to_thread(warm_up)
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            prep_pool.shutdown(wait=False, cancel_futures=True)
            app_pool.shutdown(wait=False, cancel_futures=True)

    class Face(BaseModel):
        face_index: int = Field(description="rank of the face in the photo (0 = the largest)")
        num_faces: int = Field(description="faces found in the photo")
        face_box: list[int] = Field(description="(left, top, right, bottom) in the input photo, pixels")
        confidence: float = Field(description="encoder distance between the normalized face and the input "
                                              "face; lower is more faithful, < 0.6 is the same person")
        landmarks: list[list[float]] = Field(description="68 (x, y) landmarks in the normalized image, pixels")
        image_png_base64: str = Field(description="the normalized face, PNG, base64")
        width: int
        height: int

    class FileResult(BaseModel):
        file: str = Field(description="the uploaded file's name")
        status: Literal["ok", "error"]
        code: int = Field(description="HTTP status this file alone would get (200, 413, 415, 422, 503)")
        error: str | None = Field(None, description="what went wrong, naming the file")
        faces: list[Face] = []

    class Merged(BaseModel):
        image_png_base64: str = Field(description="the merged face, PNG, base64")
        width: int
        height: int
        confidence: float = Field(description="mean dlib distance of the merged face to the photos' faces")
        landmarks: list[list[float]]
        photos: list[dict] = Field(description="per merged photo: name, weight, dlib distance to the others, "
                                               "outlier (> 0.6: someone else?)")
        warnings: list[str] = Field(description="photos that look like someone else, named")

    class NormalizeResponse(BaseModel):
        model: str
        files: list[FileResult]
        merged: Merged | None = Field(None, description="with merge=true: one face from all the photos")

    class ErrorResponse(BaseModel):
        error: str = Field(description="what went wrong, naming the file or the argument")
        files: list[FileResult] = []

    retry_after = {"Retry-After": {"description": "seconds to wait before retrying (a busy server)",
                                   "schema": {"type": "integer"}}}
    errors = {code: {"model": ErrorResponse, "description": text, **({"headers": retry_after} if code == 503 else {})}
              for code, text in (
        (400, "too many files, or a malformed request"), (408, "the request body arrived too slowly"),
        (413, "a file, a photo's pixels or the request is over the limit"), (415, "a file is not an image type"),
        (422, "a file is not a readable image, or has no face"),
        (503, "the server holds too many photos (retry after Retry-After seconds), or the application is "
              "unavailable"), (504, "the request timed out"))}

    app = FastAPI(
        title="normface", version="1",
        summary="Frontal, neutral, evenly lit faces and 68 landmarks from photos (Cole et al. 2017).",
        description="Upload photos as multipart field `files`. Errors are JSON `{error, files}` naming the "
                    "file; a request where some files fail answers 200 with a status per file.",
        lifespan=lifespan, docs_url=None, redoc_url=None,
        form_limits={"max_files": 4 * limits.max_files, "max_fields": 16},
    )
    app.state.batcher = batcher
    app.state.limits = limits
    app.state.admission = admission
    app.state.counters = counters

    docs_html = get_swagger_ui_html(openapi_url="/openapi.json", title="normface: the HTTP API",
                                    swagger_js_url=SWAGGER_UI["js"], swagger_css_url=SWAGGER_UI["css"],
                                    swagger_favicon_url=SWAGGER_UI["favicon"],
                                    swagger_ui_parameters={"validatorUrl": None}).body
    inline = re.findall(rb"<script>(.*?)</script>", docs_html, flags=re.S)
    docs_csp = CSP.replace("script-src 'self' 'wasm-unsafe-eval'", "script-src 'self' " + " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in inline))

    app.add_middleware(RequestBody, max_bytes=limits.max_request_bytes, timeout_s=limits.body_timeout_s,
                       answer=_error)
    # Each upload route counts its body's bytes as they arrive (Starlette's RequestBodyLimitMiddleware
    # around the route, inside the middleware above, so its 413 is JSON with the security headers).
    upload_route = {"max_body_size": limits.max_request_bytes}
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(SecurityHeaders, csp=lambda path: docs_csp if path == "/docs" else CSP)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body')}: {e.get('msg')}" for e in exc.errors()]
        return _error(400, "bad request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        message = str(exc.detail)
        if exc.status_code == 413:  # the framework's body limit: a body without a Content-Length
            message = (f"the request is over the limit of {limits.max_request_bytes} bytes ({limits.max_files} "
                       f"files of {limits.max_file_bytes} bytes at most); its body was refused as it arrived")
            headers["Connection"] = "close"
        if exc.status_code == 405 and "Allow" not in headers:  # StaticFiles' 405 names no method
            headers["Allow"] = "GET, HEAD"
        return _error(exc.status_code, message, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug: JSON, logged here, no detail to the client
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    async def run_in(pool, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def read_upload(upload: UploadFile) -> tuple[str, bytes]:
        name = upload.filename or "upload"
        ctype = (upload.content_type or "").split(";")[0].strip().lower()
        if ctype not in IMAGE_TYPES and ctype not in SNIFFED_TYPES:
            raise InputProblem(415, f"{name}: type {ctype} is not an image (send JPEG, PNG, WebP, BMP, TIFF or GIF)")
        if upload.size is not None and upload.size > limits.max_file_bytes:
            raise InputProblem(413, f"{name}: {upload.size} bytes, over the limit of {limits.max_file_bytes}")
        data = await upload.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            raise InputProblem(413, f"{name}: over the limit of {limits.max_file_bytes} bytes")
        if not data:
            raise InputProblem(422, f"{name}: empty file")
        return name, data

    def prepare(name: str, data: bytes, all_faces: bool):
        """Decode and align (in a prep thread): (photo pixels, aligned faces)."""
        try:
            photo = io_utils.read_image_bytes(data, name).pixels
            faces = normalizer.align(photo, all_faces=all_faces)
        except ValueError as err:
            text = str(err)
            raise InputProblem(422, text if text.startswith(f"{name}:") else f"{name}: {text}") from err
        if not faces:
            raise InputProblem(422, f"{name}: no face found")
        return photo, faces

    async def normalize_upload(upload: UploadFile, all_faces: bool, jobs: list):
        name, data = await read_upload(upload)
        _check_pixels(name, data, limits.max_pixels)
        job = prep_pool.submit(prepare, name, data, all_faces)
        jobs.append(job)  # its photo stays held while its thread works on it
        photo, faces = await asyncio.wrap_future(job)
        try:
            out = await batcher.submit(np.stack([f[0] for f in faces]), np.stack([f[1] for f in faces]))
        except QueueFull as err:
            raise InputProblem(503, f"{name}: the server is busy ({err}); retry later",
                               {"Retry-After": str(limits.retry_after_s)}) from err
        return name, photo, normalizer.to_results(faces, out, range(len(faces))), out.get("input_descriptor")

    def check_count(files: list[UploadFile], most: int) -> None:
        if len(files) > most:
            names = ", ".join(f.filename or "upload" for f in files[most:])
            raise InputProblem(400, f"too many files: {len(files)} (at most {most} per request); "
                                    f"left over: {names}")

    async def timed(coro):
        try:
            async with asyncio.timeout(limits.timeout_s):
                return await coro
        except TimeoutError:
            return _error(504, f"the request took longer than {limits.timeout_s:g} s and was abandoned")
        except InputProblem as p:
            return _error(p.status, p.message, headers=p.headers)

    async def answer(request: Request, coro):
        """The request's work under its timeout, abandoned when the client disconnects: the work
        is cancelled, so its photos still waiting for a decode thread or for the network never
        get there (the batch queue drops cancelled jobs before the call)."""
        work = asyncio.ensure_future(timed(coro))
        gone = asyncio.ensure_future(_until_disconnected(request.receive))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
                counters["abandoned"] += 1
                await asyncio.gather(work, return_exceptions=True)  # its clean-up (admission) runs now
        if work.cancelled():
            return Response(status_code=499)  # nobody reads it: the client has gone
        return work.result()

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return Response(docs_html, media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", summary="liveness: the model is loaded and the queue is running")
    async def healthz() -> dict:
        return {"status": "ok", "queue": batcher.pending, "held_photos": admission.held,
                "refused": admission.refused, "abandoned": counters["abandoned"],
                "network_calls": batcher.calls, "faces": batcher.faces, "peak_rss_mb": round(peak_rss_mb(), 1)}

    @app.get("/v1/model", summary="the normface version, the model's metadata and card, the server's limits "
                                  "and applications")
    async def model_info() -> dict:
        card = model_dir / "MODEL_CARD.md"
        meta = normalizer.metadata
        return {
            "normface_version": __version__,
            "name": model_dir.name, "output_size": meta.output_size, "encoder_id": meta.encoder_id,
            "step": meta.step, "landmarks": 68, "template": meta.template, "chip": meta.chip,
            "model_config": meta.model_config,
            "card": card.read_text() if card.is_file() else None,
            "applications": {"adjust": apps.adjust is not None, "avatar": avatar_on,
                             "avatar_missing": None if avatar_on else avatar_unavailable},
            "limits": dataclasses.asdict(limits),
        }

    def files_param(most: int, text: str):
        return File(description=text, min_length=1, json_schema_extra={"maxItems": most})

    @app.post("/v1/normalize", response_model=NormalizeResponse, **upload_route,
              summary="normalize the largest (or every) face of each photo",
              responses={200: {"content": {"image/png": {}},
                               "description": "JSON per file and face; with `Accept: image/png`, the first "
                                              "face's normalized image alone (one file only)"}, **errors})
    async def normalize(
        request: Request,
        files: Annotated[list[UploadFile], files_param(limits.max_files, f"one to {limits.max_files} photos")],
        all_faces: Annotated[bool, Query(description="every face, not just the largest (CLI --all-faces)")] = False,
        merge: Annotated[bool, Query(description="also one face from all the photos (their largest faces' "
                                                 "features merged; normface portrait); with Accept: image/png, "
                                                 "that face alone")] = False,
        strict: Annotated[bool, Query(description="with merge: 422 when a photo looks like someone else")] = False,
    ):
        async def work():
            check_count(files, limits.max_files)
            png_only = _wants_png(request.headers.get("accept"))
            if merge and all_faces:
                raise InputProblem(400, "merge takes the largest face of each photo: leave all_faces off")
            if merge and len(files) < 2:
                raise InputProblem(400, f"merge needs two or more photos of the person, got {len(files)}")
            if png_only and len(files) != 1 and not merge:
                raise InputProblem(400, f"Accept: image/png returns one image: send one file, not {len(files)}")
            with admission.hold(len(files), limits.retry_after_s) as jobs:
                outcomes = await asyncio.gather(*(normalize_upload(f, all_faces, jobs) for f in files),
                                                return_exceptions=True)
                rows, kept = [], []
                for upload, outcome in zip(files, outcomes):
                    name = upload.filename or "upload"
                    if isinstance(outcome, InputProblem):
                        rows.append({"file": name, "status": "error", "code": outcome.status,
                                     "error": outcome.message, "faces": []})
                        continue
                    if isinstance(outcome, BaseException):
                        raise outcome
                    _, _, results, descriptors = outcome
                    kept.append((name, results[0], None if descriptors is None else descriptors[0]))
                    if png_only and merge:
                        continue
                    if png_only:
                        return Response(await run_in(prep_pool, io_utils.png_bytes, results[0].image), media_type="image/png")
                    faces = []
                    for res in results:
                        encoded = await run_in(prep_pool, io_utils.png_bytes, res.image)
                        faces.append({**res.to_json(), "image_png_base64": base64.b64encode(encoded).decode(),
                                      "width": int(res.image.shape[1]), "height": int(res.image.shape[0])})
                    rows.append({"file": name, "status": "ok", "code": 200, "error": None, "faces": faces})
            failed = [r for r in rows if r["status"] == "error"]
            if failed and len(failed) == len(rows):
                busy = [r for r in failed if r["code"] == 503]
                return _error(failed[0]["code"], "; ".join(r["error"] for r in failed), rows,
                              headers={"Retry-After": str(limits.retry_after_s)} if busy else None)
            if not merge:
                return JSONResponse({"model": model_dir.name, "files": rows})
            merged = await run_in(app_pool, merge_faces, kept, strict)
            encoded = await run_in(prep_pool, io_utils.png_bytes, merged.image)
            if png_only:
                return Response(encoded, media_type="image/png", headers={
                    "X-Normface-Merge-Warnings": str(len(merged.warnings)),
                    "Content-Disposition": content_disposition("inline", "merged.png")})
            return JSONResponse({"model": model_dir.name, "files": rows, "merged": {
                **merged.to_json([k[0] for k in kept]), "image_png_base64": base64.b64encode(encoded).decode(),
                "width": int(merged.image.shape[1]), "height": int(merged.image.shape[0])}})

        return await answer(request, work())

    def merge_faces(kept: list, strict: bool):
        """One face from the photos' (name, result, dlib descriptor); 422 naming the odd photo out
        with ``strict``, or when fewer than two photos had a face."""
        from normface.serving import merge as merge_lib

        if len(kept) < 2:
            raise InputProblem(422, "merge needs two or more photos with a face, got "
                                    f"{len(kept)}" + (f" ({kept[0][0]})" if kept else ""))
        try:
            return merge_lib.merge_arrays(normalizer, np.stack([k[1].features for k in kept]),
                                          np.stack([k[2] for k in kept]), [k[0] for k in kept], strict=strict)
        except merge_lib.MergeError as err:
            raise InputProblem(422, str(err)) from err

    async def one_photo(files: list[UploadFile], jobs: list):
        check_count(files, 1)
        if not files:
            raise InputProblem(400, "no file: send one photo as multipart field 'files'")
        return (await normalize_upload(files[0], False, jobs))[:3]

    @app.post("/v1/adjust", **upload_route,
              summary="white balance and exposure of a photo from its normalized face",
              response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the corrected photo, PNG "
                               "(header X-Normface-Exposure-Only: true for greyscale photos)"}, **errors})
    async def adjust(request: Request, files: Annotated[list[UploadFile], files_param(1, "one photo")]):
        async def work():
            if apps.adjust is None:
                raise InputProblem(503, "the adjust application is not available on this server")
            with admission.hold(1, limits.retry_after_s) as jobs:
                name, photo, results = await one_photo(files, jobs)
                adjusted = await run_in(app_pool, apps.adjust, photo, results[0], normalizer.template)
                data = await run_in(prep_pool, io_utils.png_bytes, adjusted.image)
            return Response(data, media_type="image/png",
                            headers={"X-Normface-Exposure-Only": str(bool(adjusted.exposure_only)).lower(),
                                     "Content-Disposition": content_disposition(
                                         "inline", f"{Path(name).stem}_adjusted.png")})

        return await answer(request, work())

    @app.post("/v1/avatar", **upload_route,
              summary="the 3-D face fitted to the normalized face (binary glTF, or OBJ)",
              response_class=Response,
              responses={200: {"content": {"model/gltf-binary": {}, "model/obj": {}},
                               "description": "the mesh with vertex colours"}, **errors})
    async def avatar(request: Request, files: Annotated[list[UploadFile], files_param(1, "one photo")],
                     format: Annotated[Literal["glb", "obj"], Query(description="glb (default) or obj")] = "glb"):
        async def work():
            if not avatar_on:
                raise InputProblem(503, f"the avatar is not available: {avatar_unavailable}")
            with admission.hold(1, limits.retry_after_s) as jobs:
                name, _, results = await one_photo(files, jobs)
                res = results[0]
                start = time.monotonic()
                data = await run_in(app_pool, apps.avatar, res.image, res.landmarks, format)
            media = "model/gltf-binary" if format == "glb" else "model/obj"
            return Response(data, media_type=media, headers={
                "Content-Disposition": content_disposition("attachment", f"{Path(name).stem}_avatar.{format}"),
                "X-Normface-Fit-Seconds": f"{time.monotonic() - start:.2f}"})

        return await answer(request, work())

    return app


class StartupFailed(RuntimeError):
    """The server did not start (its start-up, e.g. the warm-up, failed; uvicorn logged why)."""


def make_server(app, *, host: str, port: int, limits: Limits = Limits(), log_level: str = "warning"):
    """The uvicorn server of ``app``: no ``Server`` header, 503 past ``limits.max_connections``
    open connections (``limit_concurrency``), idle keep-alive connections closed after 5 s.
    ``host``/``port`` only name the address in uvicorn's log; ``.run(sockets=[...])`` serves."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, workers=1, log_level=log_level,
                            access_log=log_level in ("info", "debug"), server_header=False,
                            limit_concurrency=limits.max_connections, timeout_keep_alive=5)
    return uvicorn.Server(config)


def serve(normalizer, *, host: str = "127.0.0.1", port: int = 8000, applications: Applications | None = None,
          limits: Limits = Limits(), model_path: str | Path | None = None, log_level: str = "warning",
          allowed_hosts: Sequence[str] | None = None, sock: socket.socket | None = None) -> None:
    """Runs the app (:func:`make_server`; one worker: the model is loaded once) on ``sock`` (from
    :func:`bind`; bound here when None) until Ctrl-C or SIGTERM.

    ``allowed_hosts``: the Host headers served (default :func:`allowed_hosts_for` ``host``).
    Raises OSError when the address cannot be bound, :class:`StartupFailed` when the start-up
    fails."""
    app = create_app(normalizer, applications=applications, limits=limits, model_path=model_path,
                     allowed_hosts=allowed_hosts_for(host) if allowed_hosts is None else allowed_hosts)
    sock = sock or bind(host, port)
    try:
        make_server(app, host=host, port=port, limits=limits, log_level=log_level).run(sockets=[sock])
    except SystemExit as exit_:  # uvicorn's own exit on a failed start-up (its code 3)
        raise StartupFailed(f"the server did not start (uvicorn exit {exit_.code}; the log above says why)") from None
    finally:
        sock.close()

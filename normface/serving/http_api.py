"""``normface serve``: the HTTP API and the web page, one process over one loaded model.

A thin layer over the library (FastAPI on uvicorn):

- ``POST /v1/normalize``: photos (multipart field ``files``) -> per file, per face: box,
  landmarks, confidence, the normalized image as base64 PNG (``Accept: image/png``: the image
  alone); ``?all_faces=true`` as the CLI's ``--all-faces``.
- ``POST /v1/adjust``: one photo -> the white-balance/exposure-corrected photo (PNG).
- ``POST /v1/avatar``: one photo -> the fitted 3-D face, binary glTF (``?format=obj``: OBJ);
  503 when the Surrey model is not in ``$NORMFACE_DATA``.
- ``GET /healthz``, ``GET /v1/model`` (the normface version, metadata and model card), ``GET /docs``
  (OpenAPI), and the page at ``/`` (``static/``: all assets local, the 3-D viewer vendored in
  ``static/vendor``).

Each photo is decoded and its faces found and aligned in a worker thread; the faces then wait in
the :class:`~normface.serving.batcher.FaceBatcher` queue, so the faces of concurrent requests go
through the networks in one call. A full queue answers 503; a request that takes longer than
``Limits.timeout_s`` answers 504.

Bad input never gives a 500: every problem is a JSON ``{"error": ..., "files": [...]}`` whose
message names the file: 415 not an image type, 422 not a readable image or no face, 413 a file
(or the request) over the size limit, 400 too many files. When some files of a request fail and
others succeed, the answer is 200 with a ``status`` per file. Uploads are read into memory (the
framework spools big ones to unnamed temporary files, closed and so deleted after the request);
nothing is written to disk.

The applications (``normface.apps``) sit above serving in the package's layers, so this module
does not import them: the caller (``normface serve`` in ``normface.cli``) hands them in as
:class:`Applications`.
"""


import asyncio
import base64
import concurrent.futures
import dataclasses
import io
import resource
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import numpy as np

from normface import __version__
from normface.serving.batcher import FaceBatcher, QueueFull
from normface.utils import io_utils

STATIC_DIR = Path(__file__).parent / "static"
# Types accepted as photos; application/octet-stream (curl's default for unknown suffixes) is
# sniffed like them. Anything else is 415.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
SNIFFED_TYPES = ("application/octet-stream", "")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one server accepts. max_files: files per request; max_file_bytes: bytes per file
    (413 beyond; the whole request may carry ``max_files * max_file_bytes`` plus 64 KiB);
    max_queue / max_batch / window_s: the batch queue (:class:`FaceBatcher`); timeout_s: the
    longest a request may take (504 beyond)."""

    max_files: int = 8
    max_file_bytes: int = 20 * 1024 * 1024
    max_queue: int = 64
    max_batch: int = 16
    window_s: float = 0.005
    timeout_s: float = 60.0

    @property
    def max_request_bytes(self) -> int:
        return self.max_files * self.max_file_bytes + 64 * 1024


@dataclasses.dataclass(frozen=True)
class Applications:
    """The applications the server offers beyond normalization (from ``normface.apps``).

    adjust(photo, result, template) -> the corrected ``[h, w, 3]`` uint8 photo;
    avatar(normalized image, its landmarks, "glb" | "obj") -> the file's bytes;
    avatar_missing: why the avatar is unavailable (the Surrey model is absent), or None.
    An application left None answers 503 saying it is not available.
    """

    adjust: Callable[[np.ndarray, Any, Any], np.ndarray] | None = None
    avatar: Callable[[np.ndarray, np.ndarray, str], bytes] | None = None
    avatar_missing: str | None = "this server was started without the avatar application"


class InputProblem(Exception):
    """A problem with one uploaded file: its HTTP status and a message naming the file."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _error(status: int, message: str, files: list[dict] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message, "files": files or []}, status_code=status)


def _wants_png(accept: str | None) -> bool:
    accept = (accept or "").lower()
    return "image/png" in accept and "application/json" not in accept


def peak_rss_mb() -> float:
    """The process's peak resident memory (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def create_app(normalizer, *, applications: Applications | None = None, limits: Limits = Limits(),
               model_path: str | Path | None = None, warm: bool = True):
    """The ASGI app over a loaded :class:`~normface.serving.normalizer.FaceNormalizer`.

    With ``warm``, start-up runs the networks once before the first request is accepted.

    ``model_path`` (the model's folder) names the model in ``/v1/model`` and supplies its card.
    ``app.state.batcher`` is the batch queue (its ``calls`` count network calls).
    """
    from fastapi import FastAPI, File, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from normface.serving.normalizer import resolve_model_path

    apps = applications or Applications()
    avatar_on = apps.avatar is not None and apps.avatar_missing is None
    model_dir = resolve_model_path(model_path)
    model_dir = model_dir if model_dir.is_dir() else model_dir.parent  # a .keras file: its export folder
    batcher = FaceBatcher(normalizer.normalize_aligned, max_batch=limits.max_batch,
                          max_queue=limits.max_queue, window_s=limits.window_s)
    prep_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="normface-prep")
    app_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="normface-apps")

    def warm_up() -> None:
        """Traces the networks (batches of 1 and 2, so later sizes reuse one generalized trace)
        before the first request, which would otherwise wait for it (tens of seconds on a busy CPU)."""
        size = normalizer.output_size
        landmarks = np.asarray(normalizer.metadata.mean_landmarks, np.float32)
        for n in (1, 2):
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
        code: int = Field(description="HTTP status this file alone would get (200, 413, 415, 422)")
        error: str | None = Field(None, description="what went wrong, naming the file")
        faces: list[Face] = []

    class NormalizeResponse(BaseModel):
        model: str
        files: list[FileResult]

    class ErrorResponse(BaseModel):
        error: str = Field(description="what went wrong, naming the file or the argument")
        files: list[FileResult] = []

    errors = {code: {"model": ErrorResponse, "description": text} for code, text in (
        (400, "too many files, or a malformed request"), (413, "a file or the request is over the size limit"),
        (415, "a file is not an image type"), (422, "a file is not a readable image, or has no face"),
        (503, "the queue is full, or the application is unavailable"), (504, "the request timed out"))}

    app = FastAPI(
        title="normface", version="1",
        summary="Frontal, neutral, evenly lit faces and 68 landmarks from photos (Cole et al. 2017).",
        description="Upload photos as multipart field `files`. Errors are JSON `{error, files}` naming the "
                    "file; a request where some files fail answers 200 with a status per file.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.limits = limits

    @app.middleware("http")
    async def request_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_request_bytes:
            return _error(413, f"the request is {int(length)} bytes, over the limit of "
                               f"{limits.max_request_bytes} ({limits.max_files} files of "
                               f"{limits.max_file_bytes} bytes at most)")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body')}: {e.get('msg')}" for e in exc.errors()]
        return _error(400, "bad request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug: still JSON, never a bare 500 page
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

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
        """Decode and align (in the prep thread): (photo pixels, aligned faces)."""
        try:
            photo = io_utils.read_image_bytes(data, name).pixels
            faces = normalizer.align(photo, all_faces=all_faces)
        except ValueError as err:
            text = str(err)
            raise InputProblem(422, text if text.startswith(f"{name}:") else f"{name}: {text}") from err
        if not faces:
            raise InputProblem(422, f"{name}: no face found")
        return photo, faces

    async def normalize_upload(upload: UploadFile, all_faces: bool):
        name, data = await read_upload(upload)
        photo, faces = await run_in(prep_pool, prepare, name, data, all_faces)
        try:
            out = await batcher.submit(np.stack([f[0] for f in faces]), np.stack([f[1] for f in faces]))
        except QueueFull as err:
            raise InputProblem(503, f"{name}: the server is busy ({err}); retry later") from err
        return name, photo, normalizer.to_results(faces, out, range(len(faces)))

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
            return _error(p.status, p.message)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", summary="liveness: the model is loaded and the queue is running")
    async def healthz() -> dict:
        return {"status": "ok", "queue": batcher.pending, "network_calls": batcher.calls,
                "faces": batcher.faces, "peak_rss_mb": round(peak_rss_mb(), 1)}

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
                             "avatar_missing": None if avatar_on else apps.avatar_missing or "not configured"},
            "limits": dataclasses.asdict(limits),
        }

    @app.post("/v1/normalize", response_model=NormalizeResponse,
              summary="normalize the largest (or every) face of each photo",
              responses={200: {"content": {"image/png": {}},
                               "description": "JSON per file and face; with `Accept: image/png`, the first "
                                              "face's normalized image alone (one file only)"}, **errors})
    async def normalize(
        request: Request,
        files: Annotated[list[UploadFile], File(description="one or more photos")],
        all_faces: Annotated[bool, Query(description="every face, not just the largest (CLI --all-faces)")] = False,
    ):
        async def work():
            check_count(files, limits.max_files)
            png_only = _wants_png(request.headers.get("accept"))
            if png_only and len(files) != 1:
                raise InputProblem(400, f"Accept: image/png returns one image: send one file, not {len(files)}")
            outcomes = await asyncio.gather(*(normalize_upload(f, all_faces) for f in files), return_exceptions=True)
            rows = []
            for upload, outcome in zip(files, outcomes):
                name = upload.filename or "upload"
                if isinstance(outcome, InputProblem):
                    rows.append({"file": name, "status": "error", "code": outcome.status, "error": outcome.message,
                                 "faces": []})
                    continue
                if isinstance(outcome, BaseException):
                    raise outcome
                _, _, results = outcome
                if png_only:
                    return Response(await run_in(prep_pool, _png, results[0].image), media_type="image/png")
                faces = []
                for res in results:
                    encoded = await run_in(prep_pool, _png, res.image)
                    faces.append({**res.to_json(), "image_png_base64": base64.b64encode(encoded).decode(),
                                  "width": int(res.image.shape[1]), "height": int(res.image.shape[0])})
                rows.append({"file": name, "status": "ok", "code": 200, "error": None, "faces": faces})
            failed = [r for r in rows if r["status"] == "error"]
            if failed and len(failed) == len(rows):
                return _error(failed[0]["code"], "; ".join(r["error"] for r in failed), rows)
            return JSONResponse({"model": model_dir.name, "files": rows})

        return await timed(work())

    async def one_photo(files: list[UploadFile]):
        check_count(files, 1)
        if not files:
            raise InputProblem(400, "no file: send one photo as multipart field 'files'")
        return await normalize_upload(files[0], False)

    @app.post("/v1/adjust", summary="white balance and exposure of a photo from its normalized face",
              response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the corrected photo, PNG "
                               "(header X-Normface-Exposure-Only: true for greyscale photos)"}, **errors})
    async def adjust(files: Annotated[list[UploadFile], File(description="one photo")]):
        async def work():
            if apps.adjust is None:
                raise InputProblem(503, "the adjust application is not available on this server")
            name, photo, results = await one_photo(files)
            adjusted = await run_in(app_pool, apps.adjust, photo, results[0], normalizer.template)
            data = await run_in(prep_pool, _png, adjusted.image)
            return Response(data, media_type="image/png",
                            headers={"X-Normface-Exposure-Only": str(bool(adjusted.exposure_only)).lower(),
                                     "Content-Disposition": f'inline; filename="{Path(name).stem}_adjusted.png"'})

        return await timed(work())

    @app.post("/v1/avatar", summary="the 3-D face fitted to the normalized face (binary glTF, or OBJ)",
              response_class=Response,
              responses={200: {"content": {"model/gltf-binary": {}, "model/obj": {}},
                               "description": "the mesh with vertex colours"}, **errors})
    async def avatar(files: Annotated[list[UploadFile], File(description="one photo")],
                     format: Annotated[Literal["glb", "obj"], Query(description="glb (default) or obj")] = "glb"):
        async def work():
            if not avatar_on:
                raise InputProblem(503, f"the avatar is not available: {apps.avatar_missing or 'not configured'}")
            name, _, results = await one_photo(files)
            res = results[0]
            start = time.monotonic()
            data = await run_in(app_pool, apps.avatar, res.image, res.landmarks, format)
            media = "model/gltf-binary" if format == "glb" else "model/obj"
            return Response(data, media_type=media, headers={
                "Content-Disposition": f'attachment; filename="{Path(name).stem}_avatar.{format}"',
                "X-Normface-Fit-Seconds": f"{time.monotonic() - start:.2f}"})

        return await timed(work())

    return app


def serve(normalizer, *, host: str = "127.0.0.1", port: int = 8000, applications: Applications | None = None,
          limits: Limits = Limits(), model_path: str | Path | None = None, log_level: str = "warning") -> None:
    """Runs the app with uvicorn in this process (one worker: the model is loaded once)."""
    import uvicorn

    app = create_app(normalizer, applications=applications, limits=limits, model_path=model_path)
    uvicorn.run(app, host=host, port=port, workers=1, log_level=log_level, access_log=log_level in ("info", "debug"))

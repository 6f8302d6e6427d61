"""The web page in a real browser: headless Chromium (Debian's package, which ``.ci/run``
installs) driven by Playwright against a ``normface serve`` process started here.

Uploads a sample photo and checks what a visitor sees: the normalized image (non-zero natural
size), the landmark overlay (green points drawn on its canvas), the colour-corrected photo and
the avatar in the 3-D viewer (WebGL through SwiftShader; the viewer's pixels are not all
background), with no console errors. Without the Surrey model the page must hide the viewer and
say why. The API's docs at ``/docs`` (Swagger UI, vendored) must load with no console error
and nothing from elsewhere. The server's Content Security Policy stays on throughout (a violation
is a console error). ``NORMFACE_PAGE_SCREENSHOT=docs/serve_page.png`` also saves a screenshot of the page
(London samples only: never put LFW photos in docs/).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from normface.faces import face3d
from normface.utils import paths

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "samples" / "london_005_08.jpg"
CHROMIUM = os.environ.get("NORMFACE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WEBGL_FLAGS = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
VIEWER_BACKGROUND = (0xE9, 0xEE, 0xF2)  # model-viewer's background in app.css


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "normface.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"normface serve exited with {proc.returncode}: {proc.stdout.read()}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("normface serve did not answer /healthz within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium absent ({CHROMIUM}): apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=WEBGL_FLAGS)
        yield b
        b.close()


def test_page_normalizes_a_photo(server, browser):
    has_avatar = (paths.data_dir() / face3d.MODEL_DIR / face3d.SHAPE_FILE).is_file()  # as the server decides
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server, "data:", "blob:")) else None)
    page.goto(server + "/")
    _wait_for(page, "document.body.dataset.ready === 'true'", 30)
    page.set_input_files("#file-input", str(PHOTO))

    _wait_for(page, "document.querySelector('img.normalized')?.naturalWidth > 0", 120)
    size = page.evaluate("[document.querySelector('img.normalized').naturalWidth,"
                         " document.querySelector('img.normalized').naturalHeight]")
    assert size == [128, 128]
    _wait_for(page, "document.querySelector('canvas.landmarks')?.dataset.drawn === '68'", 30)
    green = page.evaluate("""() => {
        const c = document.querySelector('canvas.landmarks');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 200 && d[i] < 80 && d[i + 2] < 80) n++;
        return n;
    }""")
    assert green > 68 * 5  # 68 dots of a few pixels each
    assert "confidence" in page.inner_text(".confidence")
    _wait_for(page, "document.querySelector('img.adjusted')?.naturalWidth > 0", 120)

    if has_avatar:
        page.wait_for_selector("model-viewer[data-loaded='true']", timeout=120_000)
        page.evaluate("document.querySelector('model-viewer').updateComplete")
        time.sleep(1.0)  # the first frames
        viewer = page.query_selector("model-viewer")
        shot = np.asarray(_png(viewer.screenshot()))[..., :3].astype(int)
        differs = np.abs(shot - np.array(VIEWER_BACKGROUND)).sum(axis=-1) > 30
        assert differs.mean() > 0.05, f"the 3-D viewer shows only background ({differs.mean():.3f} of its pixels)"
    else:
        assert page.is_visible("#avatar-note") and "Surrey" in page.inner_text("#avatar-note")
        assert page.query_selector("model-viewer") is None
    _wait_for(page, "document.body.dataset.busy === 'false'", 60)
    assert "error" not in (page.get_attribute(".status", "class") or "")
    target = os.environ.get("NORMFACE_PAGE_SCREENSHOT")
    if target:
        page.screenshot(path=target, full_page=True)
    assert problems == []
    assert outside == []  # everything the page loads comes from this server
    page.close()


def test_api_docs_work_offline_under_the_csp(server, browser):
    """/docs: Swagger UI from the vendored files, its inline script allowed by its hash, every
    operation listed, nothing loaded from elsewhere, no console error (a CSP violation is one)."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server, "data:", "blob:")) else None)
    page.goto(server + "/docs")
    _wait_for(page, "document.querySelectorAll('.opblock').length >= 5", 60)
    assert "/v1/normalize" in page.inner_text("#swagger-ui")
    assert problems == [] and outside == []
    page.close()


def _wait_for(page, expression: str, timeout_s: float) -> None:
    """Polls ``expression`` with page.evaluate (the DevTools protocol, which the page's Content
    Security Policy does not govern) until it is true; Playwright's wait_for_function evaluates its
    predicate with eval inside the page, which the server's CSP (rightly) refuses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout_s:g} s: {expression}")
        time.sleep(0.1)


def _png(data: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")

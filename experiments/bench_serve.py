"""Load benchmark of ``normface serve``: N requests from C concurrent clients, loopback only.

    python experiments/bench_serve.py [--requests=200] [--clients=8] [--port=0] [--endpoint=normalize]

Starts ``normface serve`` on 127.0.0.1 (a free port) as a child process, waits for ``/healthz``,
sends one warm-up request (the first traces the networks), then ``--requests`` POSTs of the
sample photos (``samples/``, one photo each, in turn) from ``--clients`` threads, and prints the
throughput, p50/p95 latency, the error count (anything but 200), the network calls the server
made and their mean batch, and the server's peak resident memory (its ``/healthz``). Bounded:
every request has a timeout, and the server is stopped at the end. Exit status 1 when any request
failed. It lives in ``experiments/`` (as the issue asked) rather than ``benchmarks/`` because it
runs the whole server as a user would, while ``benchmarks/`` time library functions in-process.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _post(url: str, name: str, data: bytes, timeout: float) -> tuple[int, float]:
    body, ctype = _multipart(name, data)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError:
        status = -1
    return status, time.perf_counter() - start


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--endpoint", choices=("normalize", "adjust"), default="normalize")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    args = parser.parse_args()
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 10_000):
        parser.error("--clients must be 1-64 and --requests 1-10000 (a bounded benchmark)")
    photos = sorted((ROOT / "samples").glob("*.jpg"))
    if not photos:
        parser.error(f"no sample photos in {ROOT / 'samples'}")
    payloads = [(p.name, p.read_bytes()) for p in photos]
    port = args.port or _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, "-m", "normface.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while True:
            if server.poll() is not None:
                print(f"bench_serve: the server exited with {server.returncode}", file=sys.stderr)
                return 1
            try:
                _get_json(base + "/healthz")
                break
            except OSError:
                if time.time() > deadline:
                    print("bench_serve: the server did not start within 300 s", file=sys.stderr)
                    return 1
                time.sleep(0.5)
        url = f"{base}/v1/{args.endpoint}"
        warm_status, warm = _post(url, *payloads[0], args.timeout)
        before = _get_json(base + "/healthz")
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            outcomes = list(pool.map(lambda i: _post(url, *payloads[i % len(payloads)], args.timeout),
                                     range(args.requests)))
        wall = time.perf_counter() - start
        after = _get_json(base + "/healthz")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies = sorted(t for _, t in outcomes)
    errors = sum(status != 200 for status, _ in outcomes)
    calls = after["network_calls"] - before["network_calls"]
    faces = after["faces"] - before["faces"]

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(q * (len(latencies) - 1))))] * 1000

    print(f"machine: {_machine()}")
    print(f"POST /v1/{args.endpoint}: {args.requests} requests from {args.clients} concurrent clients, "
          f"one 320x320 sample photo each (warm-up {warm * 1000:.0f} ms, status {warm_status})")
    print(f"throughput: {args.requests / wall:.1f} requests/s ({wall:.1f} s)")
    print(f"latency: p50 {pct(0.5):.0f} ms, p95 {pct(0.95):.0f} ms, max {latencies[-1] * 1000:.0f} ms")
    print(f"errors: {errors}")
    if calls:
        print(f"network calls: {calls} for {faces} faces (mean batch {faces / calls:.2f})")
    print(f"server peak memory: {after['peak_rss_mb']:.0f} MB (peak RSS)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

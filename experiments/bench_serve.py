"""Load benchmark of ``normface serve``: N requests from C concurrent clients, then a flood; loopback only.

    python experiments/bench_serve.py [--requests=200] [--clients=8] [--endpoint=normalize]
        [--flood-clients=40] [--flood-seconds=30] [--flood-photos=8] [--no-flood] [--ignore-retry-after]
        [--reference=/path/to/another/checkout]

Starts ``normface serve`` on 127.0.0.1 (a free port) as a child process, waits for ``/healthz``,
sends one warm-up request (the first traces the networks), then:

- load: ``--requests`` POSTs of the sample photos (``samples/``, one photo each, in turn) from
  ``--clients`` threads; prints the throughput, p50/p95 latency, the error count (anything but
  200), the network calls the server made and their mean batch;
- flood (unless ``--no-flood``): ``--flood-clients`` threads each sending requests of
  ``--flood-photos`` photos back to back for ``--flood-seconds`` (after a 503 a client waits the
  answer's Retry-After, unless ``--ignore-retry-after``); prints the accepted-and-completed
  throughput (photos/s of the 200 answers, and its share of the load phase's photos/s), the
  refusals (503) with their p50/p95 latency, other errors, and the p95 of the accepted requests;

and, for both, the server's peak resident memory (its ``VmHWM``); and the start-up (process start
to a passing ``/healthz``) and the first request's latency. ``--backends`` (default
``litert,tensorflow``) measures this checkout once per ``NORMFACE_BACKEND``, one after the other,
and prints the start-ups, first requests and load phases side by side. ``--reference`` runs the same
measurements, one after the other (never at the same time), against the server of another
checkout of normface (e.g. ``git worktree add ../normface-main <commit>``), started with its
own code, and prints the two side by side with the ratios. Bounded: every request has a timeout,
each server is stopped after its run. Exit status 1 when a load-phase request of this checkout
failed. It lives in ``experiments/`` rather than ``benchmarks/`` because it runs the whole server
as a user would, while ``benchmarks/`` time library functions in-process.
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
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join((f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                     f"Content-Type: image/jpeg\r\n\r\n").encode() + data + b"\r\n" for name, data in files)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post(url: str, files: list[tuple[str, bytes]], timeout: float, retry_after: list | None = None
          ) -> tuple[int, float]:
    """(status, seconds); -1 for a connection error. ``retry_after``: gets a 503's Retry-After."""
    body, ctype = _multipart(files)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as err:
        err.read()
        status = err.code
        if retry_after is not None and err.headers.get("Retry-After", "").isdigit():
            retry_after.append(int(err.headers["Retry-After"]))
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


def _peak_mb(pid: int) -> float | None:
    """The process's peak resident memory (``VmHWM``), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except OSError:
        return "?"


def _start(root: Path, port: int, backend: str | None = None, flags: list[str] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    if backend:
        env["NORMFACE_BACKEND"] = backend  # normface.cli.common.load_model (issue 31)
    return subprocess.Popen([sys.executable, "-m", "normface.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             *flags], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(server: subprocess.Popen, base: str) -> None:
    deadline = time.time() + 300
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            _get_json(base + "/healthz")
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError("the server did not start within 300 s") from None
            time.sleep(0.5)


def load_phase(url: str, payloads: list, requests: int, clients: int, timeout: float) -> dict:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(lambda i: _post(url, [payloads[i % len(payloads)]], timeout), range(requests)))
    wall = time.perf_counter() - start
    latencies = [t for _, t in outcomes]
    return {"requests": requests, "wall_s": wall, "rps": requests / wall, "photos_per_s": requests / wall,
            "p50_ms": _pct(latencies, 0.5), "p95_ms": _pct(latencies, 0.95), "max_ms": max(latencies) * 1000,
            "errors": sum(status != 200 for status, _ in outcomes)}


def flood_phase(url: str, payloads: list, clients: int, seconds: float, photos: int, timeout: float,
                honour_retry_after: bool = True) -> dict:
    """``clients`` threads send ``photos``-photo requests back to back until ``seconds`` have passed;
    after a 503 a client waits its Retry-After first (as a well-behaved client does) unless
    ``honour_retry_after`` is False."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            files = [payloads[(i + j) % len(payloads)] for j in range(photos)]
            wait: list[int] = []
            outcome = _post(url, files, timeout, wait)
            with lock:
                results.append(outcome)
            i += 1
            if wait and honour_retry_after:
                time.sleep(min(wait[0], max(0.0, stop - time.perf_counter())))

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [t for status, t in results if status == 200]
    refused = [t for status, t in results if status == 503]
    return {"clients": clients, "photos": photos, "wall_s": wall, "requests": len(results), "accepted": len(ok),
            "accepted_photos_per_s": len(ok) * photos / wall, "accepted_p95_ms": _pct(ok, 0.95),
            "refused": len(refused), "refused_p50_ms": _pct(refused, 0.5), "refused_p95_ms": _pct(refused, 0.95),
            "errors": sum(status not in (200, 503) for status, _ in results)}


def measure(root: Path, args, payloads: list, backend: str | None = None) -> dict:
    port = args.port or _free_port()
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    server = _start(root, port, backend, args.server_flags.split() if root == ROOT else [])
    try:
        _wait_ready(server, base)
        startup = time.perf_counter() - start
        url = f"{base}/v1/{args.endpoint}"
        warm_status, warm = _post(url, [payloads[0]], args.timeout)
        before = _get_json(base + "/healthz")
        load = load_phase(url, payloads, args.requests, args.clients, args.timeout)
        after = _get_json(base + "/healthz")
        load["network_calls"] = after["network_calls"] - before["network_calls"]
        load["faces"] = after["faces"] - before["faces"]
        load["peak_mb"] = _peak_mb(server.pid)
        flood = None
        if not args.no_flood:
            flood = flood_phase(f"{base}/v1/normalize", payloads, args.flood_clients, args.flood_seconds,
                                args.flood_photos, args.timeout, not args.ignore_retry_after)
            flood["share_of_load"] = flood["accepted_photos_per_s"] / load["photos_per_s"]
            flood["peak_mb"] = _peak_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {"root": str(root), "commit": _commit(root), "warm_ms": warm * 1000, "warm_status": warm_status,
            "load": load, "flood": flood, "backend": backend or "default", "startup_s": startup}


def report(run: dict, args) -> None:
    load, flood = run["load"], run["flood"]
    print(f"== {run['root']} (commit {run['commit']}, backend {run['backend']}; start-up to a passing /healthz "
          f"{run['startup_s']:.1f} s; first request {run['warm_ms']:.0f} ms, status {run['warm_status']})")
    print(f"load: POST /v1/{args.endpoint}, {load['requests']} requests of one photo from {args.clients} clients: "
          f"{load['rps']:.1f} requests/s; p50 {load['p50_ms']:.0f} ms, p95 {load['p95_ms']:.0f} ms, "
          f"max {load['max_ms']:.0f} ms; errors {load['errors']}"
          + (f"; {load['network_calls']} network calls for {load['faces']} faces "
             f"(mean batch {load['faces'] / load['network_calls']:.2f})" if load["network_calls"] else ""))
    if flood:
        print(f"flood: {flood['clients']} clients x {flood['photos']} photos for {flood['wall_s']:.0f} s: "
              f"{flood['requests']} requests; accepted {flood['accepted']} ({flood['accepted_photos_per_s']:.1f} "
              f"photos/s = {flood['share_of_load']:.0%} of the load phase's, p95 {flood['accepted_p95_ms']:.0f} ms); "
              f"refused (503) {flood['refused']} (p50 {flood['refused_p50_ms']:.0f} ms, "
              f"p95 {flood['refused_p95_ms']:.0f} ms); other errors {flood['errors']}")
    peak = (flood or load)["peak_mb"]
    print(f"server peak memory: {peak:.0f} MB (VmHWM)" if peak else "server peak memory: unknown")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--endpoint", choices=("normalize", "adjust"), default="normalize")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--flood-clients", type=int, default=40)
    parser.add_argument("--flood-seconds", type=float, default=30.0)
    parser.add_argument("--flood-photos", type=int, default=8, help="photos per flood request")
    parser.add_argument("--no-flood", action="store_true", help="the load phase only")
    parser.add_argument("--ignore-retry-after", action="store_true",
                        help="flood clients retry at once after a 503 (default: they wait its Retry-After)")
    parser.add_argument("--backends", default="litert,tensorflow",
                        help="NORMFACE_BACKEND values to measure this checkout with, one after the other "
                             "(comma-separated; the start-up and first-request table compares them)")
    parser.add_argument("--server-flags", default="",
                        help="more flags for this checkout's normface serve (e.g. \"--workers 1\"), not the reference's")
    parser.add_argument("--reference", type=Path, default=None,
                        help="another checkout of normface to measure the same way, side by side")
    args = parser.parse_args()
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 10_000 and 1 <= args.flood_clients <= 200
            and 0 < args.flood_seconds <= 600 and 1 <= args.flood_photos <= 8):
        parser.error("--clients 1-64, --requests 1-10000, --flood-clients 1-200, --flood-seconds up to 600, "
                     "--flood-photos 1-8 (a bounded benchmark)")
    if args.reference is not None and not (args.reference / "normface" / "cli").is_dir():
        parser.error(f"--reference {args.reference}: not a normface checkout")
    photos = sorted((ROOT / "samples").glob("*.jpg"))
    if not photos:
        parser.error(f"no sample photos in {ROOT / 'samples'}")
    payloads = [(p.name, p.read_bytes()) for p in photos]
    print(f"machine: {_machine()}")
    backends = [b for b in args.backends.split(",") if b]
    if not backends or any(b not in ("auto", "litert", "tensorflow") for b in backends):
        parser.error(f"--backends {args.backends}: a comma-separated list of auto, litert, tensorflow")
    runs = []
    for root, backend in [(ROOT, b) for b in backends] + ([(args.reference.resolve(), None)] if args.reference else []):
        try:
            runs.append(measure(root, args, payloads, backend))
        except RuntimeError as err:
            print(f"bench_serve: {root} ({backend or 'default'}): {err}", file=sys.stderr)
            return 1
        report(runs[-1], args)
    print(f"{'server':<40} {'start-up s':>10} {'first request ms':>17} {'load p95 ms':>12} {'requests/s':>11}")
    for run in runs:
        print(f"{Path(run['root']).name + ' ' + run['backend']:<40} {run['startup_s']:>10.1f} {run['warm_ms']:>17.0f} "
              f"{run['load']['p95_ms']:>12.0f} {run['load']['rps']:>11.1f}")
    if args.reference:
        this, ref = runs[0], runs[-1]
        print(f"== this / reference: load p95 {this['load']['p95_ms'] / ref['load']['p95_ms']:.2f}x, "
              f"throughput {this['load']['rps'] / ref['load']['rps']:.2f}x"
              + (f"; flood accepted photos/s {this['flood']['accepted_photos_per_s']:.1f} vs "
                 f"{ref['flood']['accepted_photos_per_s']:.1f}, refusals {this['flood']['refused']} vs "
                 f"{ref['flood']['refused']}" if this["flood"] and ref["flood"] else ""))
    return 1 if runs[0]["load"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

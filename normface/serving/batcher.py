"""One network call for the faces of many concurrent requests: a bounded queue and one worker.

The HTTP server (:mod:`normface.serving.http_api`) detects and aligns each photo's faces, then
``await``\\ s :meth:`FaceBatcher.submit`. A single asyncio task drains the queue: it takes the
first waiting job, waits up to ``window_s`` for more (so requests that arrive together share a
call), stacks up to ``max_batch`` faces and runs the networks once, in a worker thread, so the
event loop keeps accepting requests meanwhile. Jobs whose caller gave up (timed out, or the
client went away) are dropped before the call.

Why a queue and not one call per request: the networks dominate the cost of a request
(``benchmarks/bench_normalize.py``), and a batch of 8 faces costs far less than 8 calls of one.
The queue is bounded (``max_queue`` jobs): when it is full, :meth:`submit` raises
:class:`QueueFull` at once and the server answers 503, instead of letting latency grow without
limit. ``calls`` and ``faces`` count what ran (the tests check that two concurrent requests
made one call), ``dropped`` the jobs whose caller gave up before their call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Callable

import numpy as np

RunFn = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


class QueueFull(Exception):
    """The batch queue holds ``max_queue`` jobs already (the server answers 503)."""


@dataclasses.dataclass
class _Job:
    aligned: np.ndarray  # [n, S, S, 3] uint8
    landmarks: np.ndarray  # [n, 68, 2]
    future: asyncio.Future


class FaceBatcher:
    """Batches ``run(aligned [b,S,S,3], landmarks [b,68,2]) -> {name: [b, ...] array}`` calls.

    max_batch: most faces per network call (a job larger than that runs alone).
    max_queue: most jobs waiting; beyond it :meth:`submit` raises QueueFull.
    window_s: how long the worker waits after the first job for others to join its call.
    """

    def __init__(self, run: RunFn, max_batch: int = 16, max_queue: int = 64, window_s: float = 0.005):
        if max_batch < 1 or max_queue < 1 or window_s < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1, window_s >= 0; got {max_batch}, "
                             f"{max_queue}, {window_s}")
        self.run = run
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.window_s = window_s
        self.calls = 0  # network calls made
        self.faces = 0  # faces they normalized
        self.busy_s = 0.0  # time spent inside ``run``
        self.dropped = 0  # jobs whose caller gave up before their call (never reached the network)
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    @property
    def pending(self) -> int:
        """Jobs waiting for the network."""
        return 0 if self._queue is None else self._queue.qsize()

    async def start(self) -> None:
        """Starts the worker on the running event loop (the server's lifespan calls it)."""
        if self._task is None:
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._task = asyncio.create_task(self._worker(), name="normface-batcher")

    async def stop(self) -> None:
        """Stops the worker; waiting jobs fail with RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))

    async def submit(self, aligned: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
        """Normalizes ``[n, S, S, 3]`` aligned faces with their ``[n, 68, 2]`` landmarks in the
        next network call; returns the ``run`` outputs for these n faces. Raises QueueFull."""
        if self._queue is None:
            raise RuntimeError("FaceBatcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(np.asarray(aligned), np.asarray(landmarks), future))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} photos are waiting for the network already") from None
        return await future

    def _take(self, jobs: list[_Job]) -> None:
        """Moves waiting jobs into ``jobs`` while they fit in ``max_batch`` faces."""
        faces = sum(len(j.aligned) for j in jobs)
        while not self._queue.empty():
            nxt = self._queue._queue[0]  # peek: a job that does not fit waits for the next call
            if faces + len(nxt.aligned) > self.max_batch:
                return
            jobs.append(self._queue.get_nowait())
            faces += len(nxt.aligned)

    async def _worker(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            deadline = time.monotonic() + self.window_s
            self._take(jobs)
            while sum(len(j.aligned) for j in jobs) < self.max_batch and time.monotonic() < deadline:
                await asyncio.sleep(min(0.001, max(0.0, deadline - time.monotonic())))
                self._take(jobs)
            waiting = [j for j in jobs if not j.future.done()]  # callers that gave up are dropped
            self.dropped += len(jobs) - len(waiting)
            jobs = waiting
            if not jobs:
                continue
            aligned = np.concatenate([j.aligned for j in jobs])
            landmarks = np.concatenate([j.landmarks for j in jobs])
            start = time.monotonic()
            try:
                out = await asyncio.to_thread(self.run, aligned, landmarks)
            except Exception as err:  # noqa: BLE001 -- the network failed: every job of the call learns why
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(err)
                continue
            finally:
                self.busy_s += time.monotonic() - start
            self.calls += 1
            self.faces += len(aligned)
            first = 0
            for j in jobs:
                n = len(j.aligned)
                if not j.future.done():
                    j.future.set_result({k: v[first:first + n] for k, v in out.items()})
                first += n

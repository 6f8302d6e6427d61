"""The overlapped stages of a batch run (issue 31): detection runs while the networks run, outputs
are written while the next batch is in the networks, every input's outcome is handed on in input
order whatever the timing, a per-file problem never stops the run, and Ctrl-C stops every stage.

A pure-Python stand-in for the normalizer (no model) makes the timing the test's to choose; the
real model goes through the same code in tests/test_robustness.py (a resumed run byte-identical to a
clean one, kill -9 and SIGTERM mid-batch)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from normface.serving import batch_files
from normface.serving.normalizer import Result
from normface.utils import io_utils

SIZE = 8
UNREADABLE, NO_FACE, DEGENERATE, BUG = 250, 251, 252, 253  # a photo's first pixel says what it is
WAIT = 10.0  # seconds a stage waits for the other to show it overlaps (a sequential run times out)


class StandIn:
    """Aligns and "normalizes" in plain NumPy: an input of grey level v gives a face of grey 255 - v.
    ``align_hook`` / ``networks_hook(call)`` run inside the two stages (timing and checks)."""

    def __init__(self, align_hook=None, networks_hook=None):
        self.align_hook, self.networks_hook = align_hook, networks_hook
        self.aligned, self.calls, self.lock = [], 0, threading.Lock()

    def align(self, image, all_faces=False):
        value = int(image[0, 0, 0])
        with self.lock:
            self.aligned.append(value)
        if self.align_hook:
            self.align_hook()
        if value == NO_FACE:
            return []
        if value == DEGENERATE:
            raise ValueError("degenerate landmarks")
        if value == BUG:
            raise RuntimeError("a bug in alignment")
        det = types.SimpleNamespace(box=(0, 0, SIZE, SIZE), num_faces=1)
        return [(np.full((SIZE, SIZE, 3), value, np.uint8), np.zeros((68, 2), np.float32), det)]

    def normalize_aligned(self, aligned, landmarks):
        with self.lock:
            self.calls += 1
            call = self.calls
        if self.networks_hook:
            self.networks_hook(call)
        return {"image": 255 - aligned, "landmarks": landmarks, "features": np.zeros((len(aligned), 4)),
                "confidence": np.full(len(aligned), 0.25)}

    def to_results(self, faces, out, face_indices):
        return [Result(image=out["image"][j], landmarks=out["landmarks"][j], texture=None, face_box=det.box,
                       features=out["features"][j], confidence=float(out["confidence"][j]), aligned_input=aligned,
                       num_faces=det.num_faces, face_index=k)
                for j, ((aligned, _, det), k) in enumerate(zip(faces, face_indices))]


def read(item):
    value = int(item.path.stem[1:])
    if value == UNREADABLE:
        raise ValueError(f"{item.path}: not a readable image")
    return np.full((4, 4, 3), value, np.uint8)


def inputs(values) -> list[batch_files.InputFile]:
    return [batch_files.InputFile(Path(f"/nowhere/p{v}.png"), Path(f"p{v}.png")) for v in values]


def run(normalizer, files, out: Path, batch_size=2, **callbacks):
    lines, done = [], []
    options = batch_files.BatchOptions(output=out, batch_size=batch_size, keep_pairs=True)

    def on_done(item, written):
        done.append(item.rel.name)
        if "on_done" in callbacks:
            callbacks["on_done"](item, written)

    summary = batch_files.run_batch(normalizer, files, options, report=lines.append, on_done=on_done, read=read)
    return summary, lines, done


def test_stages_overlap_and_outcomes_come_in_input_order(tmp_path, capsys):
    rng = random.Random(0)
    first_batch, second_batch, aligned_meanwhile = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def align_hook():
        if len(normalizer.aligned) == 3:  # the first photo after the first batch: aligned while it runs
            seen["aligned during the networks"] = first_batch.wait(WAIT)
            aligned_meanwhile.set()
        time.sleep(rng.uniform(0, 0.01))

    def networks_hook(call):
        if call == 1:
            first_batch.set()
            aligned_meanwhile.wait(WAIT)
        elif call == 2:
            second_batch.set()
        time.sleep(rng.uniform(0, 0.02))

    def on_done(item, written):
        if "written during the networks" not in seen:  # the first output: written while batch 2 runs
            seen["written during the networks"] = second_batch.wait(WAIT)

    values = [10, 11, UNREADABLE, 12, NO_FACE, 13, DEGENERATE, 14, BUG, 15, 16, 17, 18, 19]
    files = inputs(values)
    normalizer = StandIn(align_hook, networks_hook)
    summary, lines, done = run(normalizer, files, tmp_path, on_done=on_done)
    assert seen == {"aligned during the networks": True, "written during the networks": True}
    # One report line per input, in input order, each with its outcome.
    assert [Path(x["input"]).name for x in lines] == [f.path.name for f in files]
    status = {Path(x["input"]).stem: x.get("reason", x["status"]) for x in lines}
    assert status[f"p{UNREADABLE}"] == "not a readable image" and status[f"p{NO_FACE}"] == "no face found"
    assert status[f"p{DEGENERATE}"] == "degenerate landmarks"
    assert status[f"p{BUG}"] == "normalization failed: RuntimeError('a bug in alignment')"
    ok = [v for v in values if v < 250]
    assert done == [f"p{v}.png" for v in ok]
    assert [Path(p).name for p in summary.outputs] == [f"p{v}_face0.png" for v in ok]
    assert [name for name, _, _ in summary.pairs] == [f"p{v}" for v in ok]
    assert summary.processed == len(ok) and summary.problems == 4 and summary.write_failures == 0
    for v in ok:
        assert (io_utils.read_rgb(tmp_path / f"p{v}_face0.png") == 255 - v).all()
    assert len(capsys.readouterr().err.splitlines()) == 4
    assert not [t for t in threading.enumerate() if t.name.startswith("normface-batch_")]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one network worker")
def test_on_litert_two_batches_run_through_the_networks_at_once_and_keep_input_order(tmp_path):
    both = threading.Barrier(2)

    def networks_hook(call):
        if call <= 2:
            both.wait(WAIT)  # the first two batches in the networks together (one worker: broken barrier)
        if call == 1:
            time.sleep(0.2)  # the second batch finishes first
        time.sleep(random.uniform(0, 0.01))

    normalizer = StandIn(networks_hook=networks_hook)
    normalizer.backend = object()  # a LiteRT normalizer: batch_files.network_workers gives it two
    summary, lines, done = run(normalizer, inputs(range(10, 22)), tmp_path)
    assert [x["status"] for x in lines] == ["ok"] * 12, lines
    assert [Path(x["input"]).name for x in lines] == [f"p{v}.png" for v in range(10, 22)]
    assert done == [f"p{v}.png" for v in range(10, 22)] and normalizer.calls == 6
    assert batch_files.network_workers(StandIn()) == 1  # TensorFlow: one (its ops use every core)


def test_a_failure_of_the_networks_fails_its_batch_only(tmp_path, capsys):
    def networks_hook(call):
        if call == 2:
            raise RuntimeError("out of memory")

    summary, lines, _ = run(StandIn(networks_hook=networks_hook), inputs(range(10, 16)), tmp_path)
    assert [x["status"] for x in lines] == ["ok", "ok", "error", "error", "ok", "ok"]
    assert lines[2]["reason"] == "normalization failed: RuntimeError('out of memory')"
    assert summary.processed == 4 and summary.problems == 2


def test_a_bug_in_a_stage_is_raised_and_no_thread_is_left(tmp_path):
    def bad_read(item):
        raise TypeError("a bug in the reader")

    with pytest.raises(TypeError, match="a bug in the reader"):
        batch_files.run_batch(StandIn(), inputs(range(10, 16)), batch_files.BatchOptions(output=tmp_path),
                              read=bad_read)
    assert not [t for t in threading.enumerate() if t.name.startswith("normface-batch_")]


def test_ctrl_c_while_waiting_for_the_networks_stops_every_stage(tmp_path, monkeypatch):
    """SIGINT arrives while the caller's thread waits for the second batch: run_batch raises
    KeyboardInterrupt at once, once the stages stopped (the networks finish the batch in hand and start no
    other), with the first batch's outputs complete and no temporary file left."""
    pipelines = []
    enter = batch_files._Pipeline.__enter__
    monkeypatch.setattr(batch_files._Pipeline, "__enter__", lambda self: pipelines.append(self) or enter(self))
    stop_seen, first_batch_written = [], threading.Event()

    def networks_hook(call):
        if call == 2:
            first_batch_written.wait(WAIT)  # the caller's thread now waits for this batch
            # Ctrl-C lands on this thread (Linux hands a process's signal to any thread): Python runs
            # the handler in the caller's thread, which must wake up for it.
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            stop_seen.append(pipelines[0].stop.wait(WAIT))

    def on_done(item, written):
        if item.rel.name == "p13.png":
            first_batch_written.set()

    normalizer = StandIn(networks_hook=networks_hook)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(normalizer, inputs(range(10, 21)), tmp_path, batch_size=4, on_done=on_done)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stop_seen == [True] and normalizer.calls == 2  # 11 photos, batches of 4: the third never ran
    assert not [t for t in threading.enumerate() if t.name.startswith("normface-batch_")]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(io_utils.TEMP_MARK not in n for n in names)
    assert names == [f"p{v}_face0.png" for v in range(10, 14)]  # the first batch, all of it

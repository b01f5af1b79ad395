"""
Runs metrics: each repetition runs every implementation once, each in a fresh
worker process, in an order rotated by one per repetition (A B C, B C A, ...)
so that drift of the machine hits every implementation alike.  The result of
a metric is, per implementation and measure, the median of all samples.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from .common import STAT_PGRP, pids_where
from .registry import Metric

#: Where C{python -m benchmarks.worker} can import the benchmarks package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Where workers and their gateways' children keep bytecode caches.
PYCACHE = os.path.join(tempfile.gettempdir(), "txexecnet-bench-pycache")


def worker_environment() -> dict[str, str]:
    """
    The environment of workers, inherited by the gateways they start.

    Bytecode caching is switched on, into a directory of its own: with
    PYTHONDONTWRITEBYTECODE set and an editable install, every gateway start
    would compile the library's modules again, which a user who installed it
    with pip (which compiles at install time) never pays.  Nothing is written
    into the source tree.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


class WorkerError(RuntimeError):
    """A worker process failed, timed out, or printed no samples."""


@dataclass
class MetricResult:
    """
    The samples a metric produced.

    @ivar samples: implementation -> measure key -> samples, pooled over
        repetitions.
    @ivar seconds: wall time the metric took, workers included.
    """

    metric: Metric
    params: dict
    repetitions: int
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    seconds: float = 0.0

    def median(self, implementation: str, key: str) -> float | None:
        """The median sample, or None where the implementation has none."""
        values = self.samples.get(implementation, {}).get(key)
        return statistics.median(values) if values else None


def rotated(items: list[str], by: int) -> list[str]:
    """C{items} rotated left C{by} places."""
    by %= len(items)
    return items[by:] + items[:by]


def _leftovers(pgid: int) -> list[int]:
    """Pids of processes still in process group C{pgid}."""
    return pids_where(STAT_PGRP, pgid)


def _kill_leftovers(pgid: int) -> list[int]:
    """Kill, by pid, whatever a finished worker left in its process group."""
    pids = _leftovers(pgid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def _kill_group(worker: subprocess.Popen) -> None:
    """Kill a still running worker with its whole process group, and reap it."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.communicate()


def run_worker(metric: Metric, implementation: str, params: dict) -> dict[str, list[float]]:
    """
    Run one workload in a fresh worker process of its own process group, and
    return its samples.  A worker that outlives C{metric.timeout} is killed
    with its whole group; children a worker leaves behind are killed too.
    """
    argv = [
        sys.executable,
        "-m",
        "benchmarks.worker",
        metric.name,
        implementation,
        json.dumps(params),
    ]
    worker = subprocess.Popen(
        argv,
        cwd=_ROOT,
        env=worker_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = worker.communicate(timeout=metric.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(worker)
        raise WorkerError(f"{metric.name}/{implementation} timed out after {metric.timeout} s")
    except BaseException:  # e.g. Ctrl-C: leave nothing running
        _kill_group(worker)
        raise
    leftovers = _kill_leftovers(worker.pid)
    if worker.returncode != 0 or not out.strip():
        raise WorkerError(
            f"{metric.name}/{implementation} failed (exit {worker.returncode}):\n"
            f"{err.decode(errors='replace')[-3000:]}"
        )
    if leftovers:
        raise WorkerError(f"{metric.name}/{implementation} left processes behind: {leftovers}")
    return json.loads(out.decode().strip().splitlines()[-1])


def run_metric(metric: Metric, quick: bool, progress: Callable[[str], None]) -> MetricResult:
    """Run every implementation of C{metric}, alternated, C{repetitions} times."""
    implementations = list(metric.workloads)
    started = time.perf_counter()
    fixture = metric.fixture(quick) if metric.fixture else contextlib.nullcontext({})
    with fixture as extra:
        params = {**metric.params(quick), **extra}
        result = MetricResult(metric, params, metric.repetitions(quick))
        result.samples = {name: {} for name in implementations}
        for repetition in range(result.repetitions):
            for implementation in rotated(implementations, repetition):
                progress(f"{metric.name} {repetition + 1}/{result.repetitions} {implementation}")
                samples = run_worker(metric, implementation, params)
                for key, values in samples.items():
                    result.samples[implementation].setdefault(key, []).extend(values)
    result.seconds = time.perf_counter() - started
    return result

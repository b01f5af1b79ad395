"""
Metric 7, many popen gateways at once: start N gateways concurrently, do one
round trip on each, then exit them all (children reaped).  Measures: the
wall time of all that; the OS threads of the local process while all N
gateways are open (after any helper threads have ended, which is not
timed); and the local
process's peak RSS.  Every worker run is a fresh process, so RSS and thread
counts belong to that run alone.

The blocking libraries start gateways from a pool of N threads, the only way
their API allows concurrency; the Deferred API starts all N from the reactor.

Raw limits: for wall time, N bare C{python -I -S -c pass} started at once
and reaped; for RSS, the peak RSS of an interpreter that only imports
C{twisted.internet.reactor}, the floor of any library built on Twisted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..common import (
    ECHO_ONCE,
    Samples,
    bare_python,
    deferred,
    library_workloads,
    peak_rss_mb,
    spec_for,
    thread_count,
    tx_group,
)
from ..registry import LOWER, RAW, Measure, Metric, register, repeat


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet or txexecnet.blocking: makegateway in N threads, then Group.terminate / terminate."""

    def start_one(index: int) -> Any:
        gw = lib.makegateway(f"{lib.spec(params)}//id=bench{index}")
        channel = gw.remote_exec(ECHO_ONCE)
        channel.send(index)
        channel.receive()
        return gw

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=params["gateways"]) as pool:
            list(pool.map(start_one, range(params["gateways"])))
        counting = time.perf_counter()
        threads = thread_count()
        start += time.perf_counter() - counting  # waiting for pool threads to exit is not timed
    finally:
        lib.terminate()
    seconds = time.perf_counter() - start
    return {"wall": [seconds], "threads": [threads], "rss": [peak_rss_mb()]}


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API: N makegateway at once, gathered, then Group.terminate."""
    from twisted.internet.defer import Deferred, gatherResults

    group = tx_group(reactor)

    async def start_one(index: int) -> None:
        gw = await group.makegateway(spec_for("txexecnet", params))
        channel = gw.remote_exec(ECHO_ONCE)
        await channel.send(index)
        await channel.receive()

    start = time.perf_counter()
    try:
        await gatherResults(
            [Deferred.fromCoroutine(start_one(i)) for i in range(params["gateways"])]
        )
        counting = time.perf_counter()
        threads = thread_count()
        start += time.perf_counter() - counting
    finally:
        await group.terminate(30)
    seconds = time.perf_counter() - start
    return {"wall": [seconds], "threads": [threads], "rss": [peak_rss_mb()]}


def reactor_floor_rss() -> float:
    """Peak RSS in MB of a fresh interpreter that imports Twisted's reactor, and nothing else."""
    argv = [sys.executable, "-c", "import twisted.internet.reactor"]
    pid = os.posix_spawn(sys.executable, argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("importing twisted.internet.reactor failed")
    return usage.ru_maxrss * 1024 / 1e6


def run_raw(params: dict[str, Any]) -> Samples:
    """N bare interpreters started at once, then all reaped; and the Twisted RSS floor."""
    argv = bare_python(params, "-c", "pass")
    start = time.perf_counter()
    children = [subprocess.Popen(argv) for _ in range(params["gateways"])]
    for child in children:
        child.wait()
    return {"wall": [time.perf_counter() - start], "rss": [reactor_floor_rss()]}


def _params_for(gateways: int) -> Callable[[bool], dict[str, Any]]:
    return lambda quick: {"spec": "popen", "gateways": gateways}


for _gateways, _repetitions in ((50, repeat(3, 1)), (200, repeat(3, 0))):
    register(
        Metric(
            name=f"concurrent-{_gateways}",
            title=f"{_gateways} gateways started concurrently",
            measures=(
                Measure("wall", "wall time", "s", LOWER, target=0.5),
                Measure("threads", "local threads", "threads", LOWER),
                Measure("rss", "local peak RSS", "MB", LOWER, target=1.0),
            ),
            workloads={**library_workloads(_blocking, run_deferred), RAW: run_raw},
            params=_params_for(_gateways),
            repetitions=_repetitions,
        )
    )

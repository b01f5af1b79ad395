"""
Metric 1, gateway start: make a popen gateway, do one round trip of a small
int on a fresh channel, exit, and wait until the child is reaped.  Each
worker run first does one start that is not counted (imports, the blocking
facade's reactor thread), then times C{count} starts.

Raw limit: starting and reaping C{python -I -S -c pass}.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from ..common import ECHO_ONCE, BlockingLib, ExecnetLib, deferred, spec_for, tx_group
from ..registry import (
    EXECNET, LOWER, RAW, TX_BLOCKING, TX_DEFERRED, Measure, Metric, register, repeat,
)


def _params(quick: bool) -> dict[str, Any]:
    return {"spec": "popen", "count": 3 if quick else 5}


def _blocking(lib: Any, params: dict[str, Any]) -> dict[str, list[float]]:
    samples = []
    for i in range(params["count"] + 1):
        start = time.perf_counter()
        gw = lib.makegateway(lib.spec(params))
        channel = gw.remote_exec(ECHO_ONCE)
        channel.send(1)
        channel.receive()
        lib.exit(gw)
        if i:
            samples.append((time.perf_counter() - start) * 1e3)
    return {"time": samples}


def run_execnet(params: dict[str, Any]) -> dict[str, list[float]]:
    """execnet: Group.makegateway, remote_exec, send/receive, exit + join + wait."""
    return _blocking(ExecnetLib(), params)


def run_blocking(params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet.blocking: makegateway, remote_exec, send/receive, exit."""
    return _blocking(BlockingLib(), params)


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet's Deferred API on the worker's reactor."""
    group = tx_group(reactor)
    samples = []
    for i in range(params["count"] + 1):
        start = time.perf_counter()
        gw = await group.makegateway(spec_for("txexecnet", params))
        channel = gw.remote_exec(ECHO_ONCE)
        await channel.send(1)
        await channel.receive()
        await gw.exit()
        if i:
            samples.append((time.perf_counter() - start) * 1e3)
    return {"time": samples}


def run_raw(params: dict[str, Any]) -> dict[str, list[float]]:
    """Start and reap a bare interpreter: C{python -I -S -c pass}."""
    samples = []
    for i in range(params["count"] + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        if i:
            samples.append((time.perf_counter() - start) * 1e3)
    return {"time": samples}


register(
    Metric(
        name="start",
        title="gateway start (create, round trip, exit)",
        measures=(Measure("time", "time", "ms", LOWER, target=0.7),),
        workloads={
            EXECNET: run_execnet,
            TX_DEFERRED: run_deferred,
            TX_BLOCKING: run_blocking,
            RAW: run_raw,
        },
        params=_params,
        repetitions=repeat(4, 2),
    )
)

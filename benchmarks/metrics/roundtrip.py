"""
Metric 2, round trip of a small int on an open channel: the remote side
echoes every item; each sample is one send + receive, timed on its own after
a short warm-up.  Samples of all worker runs are pooled: the median is over
C{repetitions * count} round trips (5,000 for a full run).

Raw limit: an 8-byte ping-pong with os.write/os.read over two pipes to a
bare child interpreter that echoes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from ..common import ECHO, BlockingLib, ExecnetLib, deferred, spec_for, tx_group
from ..registry import (
    EXECNET, LOWER, RAW, TX_BLOCKING, TX_DEFERRED, Measure, Metric, register, repeat,
)

_WARMUP = 100

_RAW_ECHO = """
import os
while True:
    data = os.read(0, 65536)
    if not data:
        break
    os.write(1, data)
"""


def _params(quick: bool) -> dict[str, Any]:
    return {"spec": "popen", "count": 500 if quick else 1000}


def _blocking(lib: Any, params: dict[str, Any]) -> dict[str, list[float]]:
    gw = lib.makegateway(lib.spec(params))
    try:
        channel = gw.remote_exec(ECHO)
        samples = []
        clock = time.perf_counter
        for i in range(_WARMUP + params["count"]):
            start = clock()
            channel.send(i)
            channel.receive()
            samples.append((clock() - start) * 1e6)
        channel.close()
    finally:
        lib.exit(gw)
    return {"time": samples[_WARMUP:]}


def run_execnet(params: dict[str, Any]) -> dict[str, list[float]]:
    """execnet: channel.send(i); channel.receive()."""
    return _blocking(ExecnetLib(), params)


def run_blocking(params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet.blocking: channel.send(i); channel.receive()."""
    return _blocking(BlockingLib(), params)


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet's Deferred API: await channel.send(i); await channel.receive()."""
    gw = await tx_group(reactor).makegateway(spec_for("txexecnet", params))
    try:
        channel = gw.remote_exec(ECHO)
        samples = []
        clock = time.perf_counter
        for i in range(_WARMUP + params["count"]):
            start = clock()
            await channel.send(i)
            await channel.receive()
            samples.append((clock() - start) * 1e6)
        channel.close()
    finally:
        await gw.exit()
    return {"time": samples[_WARMUP:]}


def run_raw(params: dict[str, Any]) -> dict[str, list[float]]:
    """Ping-pong 8 bytes through two pipes with a bare echoing child."""
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _RAW_ECHO],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    wfd, rfd = child.stdin.fileno(), child.stdout.fileno()
    samples = []
    clock = time.perf_counter
    try:
        for _ in range(_WARMUP + params["count"]):
            start = clock()
            os.write(wfd, b"12345678")
            os.read(rfd, 64)
            samples.append((clock() - start) * 1e6)
    finally:
        child.stdin.close()
        child.wait()
        child.stdout.close()
    return {"time": samples[_WARMUP:]}


register(
    Metric(
        name="roundtrip",
        title="small-int round trip",
        measures=(Measure("time", "time", "us", LOWER, target=0.9),),
        workloads={
            EXECNET: run_execnet,
            TX_DEFERRED: run_deferred,
            TX_BLOCKING: run_blocking,
            RAW: run_raw,
        },
        params=_params,
        repetitions=repeat(5, 2),
    )
)

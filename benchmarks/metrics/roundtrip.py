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
from typing import Any

from ..common import (
    ECHO,
    Samples,
    bare_python,
    deferred,
    gateway,
    library_workloads,
    spec_for,
    timed,
    timed_async,
    tx_gateway,
)
from ..registry import LOWER, RAW, Measure, Metric, register, repeat

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


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet or txexecnet.blocking: channel.send(i); channel.receive()."""
    with gateway(lib, lib.spec(params)) as gw:
        channel = gw.remote_exec(ECHO)

        def round_trip(i: int) -> None:
            channel.send(i)
            channel.receive()

        samples = timed(params["count"], round_trip, warmup=_WARMUP, scale=1e6)
        channel.close()
    return {"time": samples}


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API: await channel.send(i); await channel.receive()."""
    async with tx_gateway(reactor, spec_for("txexecnet", params)) as gw:
        channel = gw.remote_exec(ECHO)

        async def round_trip(i: int) -> None:
            await channel.send(i)
            await channel.receive()

        samples = await timed_async(params["count"], round_trip, warmup=_WARMUP, scale=1e6)
        channel.close()
    return {"time": samples}


def run_raw(params: dict[str, Any]) -> Samples:
    """Ping-pong 8 bytes through two pipes with a bare echoing child."""
    child = subprocess.Popen(
        bare_python(params, "-c", _RAW_ECHO),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    wfd, rfd = child.stdin.fileno(), child.stdout.fileno()

    def ping_pong(_: int) -> None:
        os.write(wfd, b"12345678")
        os.read(rfd, 64)

    try:
        samples = timed(params["count"], ping_pong, warmup=_WARMUP, scale=1e6)
    finally:
        child.stdin.close()
        child.wait()
        child.stdout.close()
    return {"time": samples}


register(
    Metric(
        name="roundtrip",
        title="small-int round trip",
        measures=(Measure("time", "time", "us", LOWER, target=0.9),),
        workloads={**library_workloads(_blocking, run_deferred), RAW: run_raw},
        params=_params,
        repetitions=repeat(5, 2),
    )
)

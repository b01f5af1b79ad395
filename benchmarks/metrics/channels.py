"""
Metric 6, many channels on one gateway: open 200 channels with an echoing
remote_exec each, then 10 interleaved rounds (send one small int on every
channel, then receive every answer), then close them.  Timed from the first
remote_exec to the last answer; the gateway's start and exit are not timed.
The same with 2,000 channels and 2 rounds, counting the local threads too.
"""

from __future__ import annotations

import time
from typing import Any

from ..common import (
    ECHO,
    Samples,
    deferred,
    gateway,
    library_workloads,
    spec_for,
    thread_count,
    tx_gateway,
)
from ..registry import LOWER, Measure, Metric, register, repeat


def _params(quick: bool) -> dict[str, Any]:
    return {"spec": "popen", "channels": 200, "rounds": 10}


def _params_2000(quick: bool) -> dict[str, Any]:
    return {"spec": "popen", "channels": 2000, "rounds": 2}


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet or txexecnet.blocking: remote_exec x 200, then rounds of send on all / receive on all."""
    with gateway(lib, lib.spec(params)) as gw:
        start = time.perf_counter()
        channels = [gw.remote_exec(ECHO) for _ in range(params["channels"])]
        for i in range(params["rounds"]):
            for channel in channels:
                channel.send(i)
            for channel in channels:
                channel.receive()
        seconds = time.perf_counter() - start
        threads = thread_count()
        for channel in channels:
            channel.close()
    return {"time": [seconds * 1e3], "threads": [threads]}


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API: sends, then a gatherResults of receives, per round."""
    from twisted.internet.defer import gatherResults

    async with tx_gateway(reactor, spec_for("txexecnet", params)) as gw:
        start = time.perf_counter()
        channels = [gw.remote_exec(ECHO) for _ in range(params["channels"])]
        for i in range(params["rounds"]):
            for channel in channels:
                channel.send(i)
            await gatherResults([channel.receive() for channel in channels])
        seconds = time.perf_counter() - start
        threads = thread_count()
        for channel in channels:
            channel.close()
    return {"time": [seconds * 1e3], "threads": [threads]}


register(
    Metric(
        name="channels",
        title="200 channels x 10 interleaved round trips",
        measures=(Measure("time", "time", "ms", LOWER),),
        workloads=library_workloads(_blocking, run_deferred),
        params=_params,
        repetitions=repeat(5, 2),
    )
)

register(
    Metric(
        name="channels-2000",
        title="2000 channels x 2 interleaved round trips",
        measures=(
            Measure("time", "time", "ms", LOWER),
            Measure("threads", "local threads", "threads", LOWER),
        ),
        workloads=library_workloads(_blocking, run_deferred),
        params=_params_2000,
        repetitions=repeat(3, 1),
    )
)

"""
Metric 6, many channels on one gateway: open 200 channels with an echoing
remote_exec each, then 10 interleaved rounds (send one small int on every
channel, then receive every answer), then close them.  Timed from the first
remote_exec to the last answer; the gateway's start and exit are not timed.
"""

from __future__ import annotations

import time
from typing import Any

from ..common import ECHO, BlockingLib, ExecnetLib, deferred, spec_for, tx_group
from ..registry import (
    EXECNET, LOWER, TX_BLOCKING, TX_DEFERRED, Measure, Metric, register, repeat,
)


def _params(quick: bool) -> dict[str, Any]:
    return {"spec": "popen", "channels": 200, "rounds": 10}


def _blocking(lib: Any, params: dict[str, Any]) -> dict[str, list[float]]:
    gw = lib.makegateway(lib.spec(params))
    try:
        start = time.perf_counter()
        channels = [gw.remote_exec(ECHO) for _ in range(params["channels"])]
        for i in range(params["rounds"]):
            for channel in channels:
                channel.send(i)
            for channel in channels:
                channel.receive()
        seconds = time.perf_counter() - start
        for channel in channels:
            channel.close()
    finally:
        lib.exit(gw)
    return {"time": [seconds * 1e3]}


def run_execnet(params: dict[str, Any]) -> dict[str, list[float]]:
    """execnet: remote_exec x 200, then rounds of send on all / receive on all."""
    return _blocking(ExecnetLib(), params)


def run_blocking(params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet.blocking: the same calls as execnet's."""
    return _blocking(BlockingLib(), params)


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet's Deferred API: sends, then a gatherResults of receives, per round."""
    from twisted.internet.defer import gatherResults

    gw = await tx_group(reactor).makegateway(spec_for("txexecnet", params))
    try:
        start = time.perf_counter()
        channels = [gw.remote_exec(ECHO) for _ in range(params["channels"])]
        for i in range(params["rounds"]):
            for channel in channels:
                channel.send(i)
            await gatherResults([channel.receive() for channel in channels])
        seconds = time.perf_counter() - start
        for channel in channels:
            channel.close()
    finally:
        await gw.exit()
    return {"time": [seconds * 1e3]}


register(
    Metric(
        name="channels",
        title="200 channels x 10 interleaved round trips",
        measures=(Measure("time", "time", "ms", LOWER),),
        workloads={EXECNET: run_execnet, TX_DEFERRED: run_deferred, TX_BLOCKING: run_blocking},
        params=_params,
        repetitions=repeat(5, 2),
    )
)

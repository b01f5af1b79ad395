"""
Metric 1, gateway start: make a popen gateway, do one round trip of a small
int on a fresh channel, exit, and wait until the child is reaped.  Each
worker run first does one start that is not counted (imports, the blocking
facade's reactor thread), then times C{count} starts.

Raw limit: starting and reaping C{python -I -S -c pass}.
"""

from __future__ import annotations

import subprocess
from typing import Any

from ..common import (
    Samples,
    bare_python,
    deferred,
    gateway_starts,
    library_workloads,
    spec_for,
    timed,
    tx_gateway_starts,
)
from ..registry import LOWER, RAW, Measure, Metric, register, repeat


def _params(quick: bool) -> dict[str, Any]:
    return {"spec": "popen", "count": 3 if quick else 5}


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet or txexecnet.blocking: makegateway, remote_exec, send/receive, exit."""
    return {"time": gateway_starts(lib, lib.spec(params), params["count"])}


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API on the worker's reactor."""
    return {
        "time": await tx_gateway_starts(reactor, spec_for("txexecnet", params), params["count"])
    }


def run_raw(params: dict[str, Any]) -> Samples:
    """Start and reap a bare interpreter: C{python -I -S -c pass}."""
    argv = bare_python(params, "-c", "pass")
    return {"time": timed(params["count"], lambda _: subprocess.run(argv, check=True), warmup=1)}


register(
    Metric(
        name="start",
        title="gateway start (create, round trip, exit)",
        measures=(Measure("time", "time", "ms", LOWER, target=0.7),),
        workloads={**library_workloads(_blocking, run_deferred), RAW: run_raw},
        params=_params,
        repetitions=repeat(4, 2),
    )
)

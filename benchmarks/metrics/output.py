"""
Remote output: remote code print()s short lines and the local side takes
each one, in lines per second, timed from the local side's go to the last
line taken.  Each worker run prints an untimed warm-up round of 1/32 of the
lines, then C{rounds} timed rounds, each its own remote_exec on one gateway.

execnet does not carry remote output: its documented way is to point the
remote C{sys.stdout} at a channel (C{channel.makefile("w")}) and take the
writes with a callback, and that is what its column measures.  txexecnet's
take the lines from the gateway's output callback.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ..common import ExecnetLib, Samples, deferred, gateway, spec_for
from ..registry import EXECNET, HIGHER, TX_BLOCKING, TX_DEFERRED, Measure, Metric, register, repeat

#: Waits for a count, then prints that many lines of 48 bytes.
PRINTS = """
import sys
count = channel.receive()
for i in range(count):
    print("line %8d of the remote output, 48 bytes" % i)
sys.stdout.flush()
"""

#: The same, its stdout pointed at a channel first, as execnet's docs show.
EXECNET_PRINTS = (
    """
import sys
lines = channel.gateway.newchannel()
sys.stdout = lines.makefile("w")
channel.send(lines)
"""
    + PRINTS
)

#: How long a round may take before the workload gives up.
ROUND_TIMEOUT = 120.0


class LineCounter:
    """Counts the lines of what it is given, and says when there are enough."""

    def __init__(self) -> None:
        self.lines = 0
        self.wanted = 0
        self.done = threading.Event()

    def expect(self, count: int) -> None:
        """Start a round of C{count} lines."""
        self.lines, self.wanted = 0, count
        self.done.clear()

    def take(self, text: str) -> None:
        """Count the lines of C{text}."""
        self.lines += text.count("\n")
        if self.lines >= self.wanted:
            self.done.set()

    def wait(self) -> None:
        """Block until the round's lines have all been taken."""
        if not self.done.wait(ROUND_TIMEOUT):
            raise RuntimeError(f"{self.lines} of {self.wanted} lines in {ROUND_TIMEOUT} s")


def _round_counts(params: dict[str, Any]) -> list[int]:
    return [max(4, params["count"] // 32)] + [params["count"]] * params["rounds"]


def _rates(params: dict[str, Any], seconds: list[float]) -> Samples:
    return {"lines": [params["count"] / s for s in seconds[1:]]}


def _blocking_rounds(
    params: dict[str, Any], counter: LineCounter, start: Callable[[], Any]
) -> list[float]:
    """Time each round: C{start()} makes the channel, then the count goes."""
    seconds = []
    for count in _round_counts(params):
        channel = start()
        counter.expect(count)
        began = time.perf_counter()
        channel.send(count)
        counter.wait()
        seconds.append(time.perf_counter() - began)
        channel.waitclose(ROUND_TIMEOUT)
    return seconds


def run_execnet(params: dict[str, Any]) -> Samples:
    """execnet: remote sys.stdout = a channel's makefile("w"); a callback counts."""
    lib = ExecnetLib()
    counter = LineCounter()
    with gateway(lib, lib.spec(params)) as gw:

        def start() -> Any:
            channel = gw.remote_exec(EXECNET_PRINTS)
            channel.receive(ROUND_TIMEOUT).setcallback(counter.take)
            return channel

        return _rates(params, _blocking_rounds(params, counter, start))


def run_blocking(params: dict[str, Any]) -> Samples:
    """txexecnet.blocking: remote print(); the gateway's output callback counts."""
    from txexecnet import blocking

    counter = LineCounter()
    gw = blocking.makegateway(
        spec_for("txexecnet", params), output=lambda output: counter.take(output.text)
    )
    try:
        return _rates(params, _blocking_rounds(params, counter, lambda: gw.remote_exec(PRINTS)))
    finally:
        gw.exit()


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API: remote print(); the gateway's output callback counts."""
    import txexecnet
    from twisted.internet.defer import Deferred

    counted: dict[str, Any] = {"lines": 0, "wanted": 0, "done": None}

    def take(output: Any) -> None:
        counted["lines"] += output.text.count("\n")
        if counted["lines"] >= counted["wanted"] and counted["done"] is not None:
            counted["done"], done = None, counted["done"]
            done.callback(None)

    gw = await txexecnet.Group(reactor=reactor).makegateway(
        spec_for("txexecnet", params), output=take
    )
    try:
        seconds = []
        for count in _round_counts(params):
            channel = gw.remote_exec(PRINTS)
            done: Deferred[None] = Deferred()
            counted.update(lines=0, wanted=count, done=done)
            began = time.perf_counter()
            await channel.send(count)
            await done.addTimeout(ROUND_TIMEOUT, reactor)
            seconds.append(time.perf_counter() - began)
            await channel.waitclose(ROUND_TIMEOUT)
        return _rates(params, seconds)
    finally:
        await gw.exit()


def _params(quick: bool) -> dict[str, Any]:
    return {"spec": "popen", "count": 50_000 if quick else 200_000, "rounds": 1 if quick else 2}


register(
    Metric(
        name="output",
        title="remote print() lines remote->local",
        measures=(Measure("lines", "rate", "lines/s", HIGHER, target=1.0),),
        workloads={EXECNET: run_execnet, TX_DEFERRED: run_deferred, TX_BLOCKING: run_blocking},
        params=_params,
        repetitions=repeat(3, 2),
    )
)

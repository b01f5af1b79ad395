"""
Metric 3, throughput of bytes items, local -> remote ("up") and remote ->
local ("down"), 1 MiB and 64 KiB items; the transfer workloads here also
serve metric 4 (streams of small items, see L{.stream}).

Up: the local side sends a count, then that many items; the remote side
receives them and answers the count.  Down: the remote side builds the items
first; the local side asks for them and receives them.  Each worker run
moves an untimed warm-up round of 1/32 of the items (pipes, buffers and
allocator settle there), then C{rounds} timed rounds of C{count} items.
MB are 10**6 bytes, counting item payloads only.

Raw limit: os.write/os.read of item-sized chunks through a pipe between this
process and a bare child interpreter (the clock starts once the child says
it is ready, so its start is not timed).
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any, Awaitable, Callable

from ..common import (
    SINK,
    SOURCE,
    Samples,
    bare_python,
    deferred,
    gateway,
    library_workloads,
    local_items,
    spec_for,
    tx_gateway,
)
from ..registry import HIGHER, RAW, Measure, Metric, register, repeat


_RAW_SINK = """
import os, sys
size = int(sys.argv[1])
os.write(1, b"r")
total = 0
while True:
    data = os.read(0, size)
    if not data:
        break
    total += len(data)
os.write(1, b"%d\\n" % total)
"""

_RAW_SOURCE = """
import os, sys
size, count = int(sys.argv[1]), int(sys.argv[2])
chunk = b"x" * size
os.write(1, b"r")
os.read(0, 1)
for _ in range(count):
    view = memoryview(chunk)
    while view:
        view = view[os.write(1, view):]
"""


def rates(params: dict[str, Any], seconds: list[float]) -> Samples:
    """Samples of MB/s (bytes items only) and items/s for timed rounds."""
    count = params["count"]
    rates = {"items": [count / s for s in seconds]}
    if params["kind"] != "small":
        rates["mbps"] = [count * params["size"] / s / 1e6 for s in seconds]
    return rates


def warmup_count(params: dict[str, Any]) -> int:
    """How many items the untimed warm-up round moves."""
    return max(4, params["count"] // 32)


def _round_counts(params: dict[str, Any]) -> list[int]:
    """The items of each round: the untimed warm-up, then the timed rounds."""
    return [warmup_count(params)] + [params["count"]] * params["rounds"]


def _timed_rounds(params: dict[str, Any], one_round: Callable[[int], float]) -> list[float]:
    return [one_round(count) for count in _round_counts(params)][1:]


async def _timed_rounds_async(
    params: dict[str, Any], one_round: Callable[[int], Awaitable[float]]
) -> list[float]:
    return [await one_round(count) for count in _round_counts(params)][1:]


# --- blocking libraries ------------------------------------------------------


def _up_blocking(gw: Any, params: dict[str, Any]) -> list[float]:
    channel = gw.remote_exec(SINK)
    items = local_items(params["kind"], params["size"], params["count"])

    def one_round(count: int) -> float:
        start = time.perf_counter()
        channel.send(count)
        for item in items[:count]:
            channel.send(item)
        channel.receive()
        return time.perf_counter() - start

    seconds = _timed_rounds(params, one_round)
    channel.close()
    return seconds


def _down_blocking(gw: Any, params: dict[str, Any]) -> list[float]:
    channel = gw.remote_exec(SOURCE)
    channel.send((params["kind"], params["size"], params["count"]))

    def one_round(count: int) -> float:
        start = time.perf_counter()
        channel.send(count)
        for _ in range(count):
            channel.receive()
        return time.perf_counter() - start

    seconds = _timed_rounds(params, one_round)
    channel.close()
    return seconds


def transfer_blocking(gw: Any, params: dict[str, Any]) -> list[float]:
    """The seconds of each timed round of C{params["direction"]} on C{gw}."""
    return (_up_blocking if params["direction"] == "up" else _down_blocking)(gw, params)


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet or txexecnet.blocking: channel.send(item) per item / channel.receive() per item."""
    with gateway(lib, lib.spec(params)) as gw:
        return rates(params, transfer_blocking(gw, params))


# --- Deferred API ------------------------------------------------------------


async def _up_deferred(gw: Any, params: dict[str, Any]) -> list[float]:
    channel = gw.remote_exec(SINK)
    items = local_items(params["kind"], params["size"], params["count"])

    async def one_round(count: int) -> float:
        start = time.perf_counter()
        await channel.send(count)
        for item in items[:count]:
            await channel.send(item)
        await channel.receive()
        return time.perf_counter() - start

    seconds = await _timed_rounds_async(params, one_round)
    channel.close()
    return seconds


async def _down_deferred(gw: Any, params: dict[str, Any]) -> list[float]:
    channel = gw.remote_exec(SOURCE)
    await channel.send((params["kind"], params["size"], params["count"]))

    async def one_round(count: int) -> float:
        start = time.perf_counter()
        await channel.send(count)
        for _ in range(count):
            await channel.receive()
        return time.perf_counter() - start

    seconds = await _timed_rounds_async(params, one_round)
    channel.close()
    return seconds


async def transfer_deferred(gw: Any, params: dict[str, Any]) -> list[float]:
    """L{transfer_blocking} with txexecnet's Deferred API."""
    return await (_up_deferred if params["direction"] == "up" else _down_deferred)(gw, params)


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API: await channel.send(item) / await channel.receive()."""
    async with tx_gateway(reactor, spec_for("txexecnet", params)) as gw:
        return rates(params, await transfer_deferred(gw, params))


#: The transfer workloads of execnet and txexecnet (both APIs), shared with
#: the stream metrics.
TRANSFER_WORKLOADS = library_workloads(_blocking, run_deferred)


# --- raw pipe ----------------------------------------------------------------


def _raw_child(params: dict[str, Any], source: str, *args: int) -> subprocess.Popen:
    return subprocess.Popen(
        bare_python(params, "-c", source, *map(str, args)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def _raw_up(params: dict[str, Any], count: int) -> float:
    size = params["size"]
    child = _raw_child(params, _RAW_SINK, size)
    chunk = b"x" * size
    wfd = child.stdin.fileno()
    child.stdout.read(1)  # ready
    start = time.perf_counter()
    for _ in range(count):
        view = memoryview(chunk)
        while view:
            view = view[os.write(wfd, view) :]
    child.stdin.close()
    child.stdout.readline()  # the total, once the child has read everything
    seconds = time.perf_counter() - start
    child.wait()
    child.stdout.close()
    return seconds


def _raw_down(params: dict[str, Any], count: int) -> float:
    size = params["size"]
    child = _raw_child(params, _RAW_SOURCE, size, count)
    rfd = child.stdout.fileno()
    remaining = size * count
    os.read(rfd, 1)  # ready
    start = time.perf_counter()
    os.write(child.stdin.fileno(), b"g")
    while remaining:
        remaining -= len(os.read(rfd, size))
    seconds = time.perf_counter() - start
    child.stdin.close()
    child.wait()
    child.stdout.close()
    return seconds


def run_raw(params: dict[str, Any]) -> Samples:
    """Bare pipe: item-sized os.write/os.read chunks to/from a bare child."""
    transfer = _raw_up if params["direction"] == "up" else _raw_down
    return rates(params, _timed_rounds(params, lambda count: transfer(params, count)))


# --- registration ------------------------------------------------------------

_DIRECTIONS = {"up": "local->remote", "down": "remote->local"}
#: Item size, target ratio to execnet, target ratio to the raw pipe.
_SIZES = {"1MiB": (1 << 20, 1.2, 0.8), "64KiB": (1 << 16, 1.3, None)}


def _params_for(direction: str, size: int) -> Callable[[bool], dict[str, Any]]:
    def params(quick: bool) -> dict[str, Any]:
        total = (128 if quick else 256) << 20
        return {
            "spec": "popen",
            "direction": direction,
            "kind": "bytes",
            "size": size,
            "count": total // size,
            "rounds": 1 if quick else 2,
        }

    return params


for _size_name, (_size, _target, _raw_target) in _SIZES.items():
    for _direction, _arrow in _DIRECTIONS.items():
        register(
            Metric(
                name=f"throughput-{_direction}-{_size_name}",
                title=f"throughput {_arrow}, {_size_name} items",
                measures=(Measure("mbps", "rate", "MB/s", HIGHER, _target, _raw_target),),
                workloads={**TRANSFER_WORKLOADS, RAW: run_raw},
                params=_params_for(_direction, _size),
                repetitions=repeat(3, 2),
            )
        )

"""
Nothing leaks: many gateway cycles (make, exec, round trip, exit) leave
this process's children, file descriptors, threads and memory where they
were; and one gateway carries thousands of channels on a fixed number of
local threads.
"""

from __future__ import annotations

import os
import threading

import pytest
import pytest_twisted
from twisted.internet import defer

import txexecnet
from processes import children

T = 30


def snapshot() -> dict[str, int]:
    with open("/proc/self/status") as f:
        rss = [int(line.split()[1]) for line in f if line.startswith("VmRSS:")][0]
    return {
        "children": len(children()),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),
        "rss_kib": rss,
    }


async def cycle(spec: str) -> None:
    gw = await txexecnet.makegateway(spec)
    ch = gw.remote_exec("channel.send(channel.receive() * 2)")
    ch.send(21)
    assert await ch.receive(T) == 42
    await gw.exit(timeout=T)


async def cycles(spec: str, count: int) -> tuple[dict[str, int], dict[str, int]]:
    for _ in range(10):  # warm up: caches, the first imports, pools
        await cycle(spec)
    before = snapshot()
    for _ in range(count):
        await cycle(spec)
    return before, snapshot()


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "kind, count", [("popen", 1000), ("socket", 200), ("ssh", 200)], ids=["popen", "socket", "ssh"]
)
@pytest_twisted.ensureDeferred
async def test_many_gateway_cycles_leak_nothing(kind, count, request):
    spec = {
        "popen": lambda: "popen",
        "socket": lambda: request.getfixturevalue("execnet_server").spec(),
        "ssh": lambda: request.getfixturevalue("sshd").spec(),
    }[kind]()
    before, after = await cycles(spec, count)
    print(f"{count} {kind} cycles: before {before}, after {after}")
    assert after["children"] == before["children"]
    assert after["fds"] <= before["fds"] + 2
    assert after["threads"] <= before["threads"] + 1
    assert after["rss_kib"] - before["rss_kib"] < 16 * 1024


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_two_thousand_channels_on_one_gateway_on_a_fixed_number_of_threads(popen_gw):
    threads = threading.active_count()
    channels = [popen_gw.remote_exec("channel.send(channel.receive() + 1)") for _ in range(2000)]
    for i, ch in enumerate(channels):
        ch.send(i)
    answers = await defer.gatherResults([ch.receive(T) for ch in channels])
    assert answers == [i + 1 for i in range(2000)]
    assert threading.active_count() == threads
    await defer.gatherResults([ch.waitclose(T) for ch in channels])

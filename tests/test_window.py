"""
Per-channel windows: a receiver that does not receive holds at most a
window's worth of a channel's items; the sender waits, other channels go
on, and once the receiver receives, every byte arrives.
"""

from __future__ import annotations

import hashlib
import os

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

import txexecnet
from conftest import sleep

T = 30
MiB = 1024 * 1024

#: What the remote side sends and checks: 1 MiB items, each different.
ITEMS = """
import hashlib, os
seed = os.urandom(1024 * 1024)
def item(i):
    return i.to_bytes(8, "big") + seed[8:]
"""


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def volume(gw) -> int:
    """MiB to move over C{gw}: less where the transport is slow."""
    return 256 if gw.spec.type == "ssh" else 512


async def fired(d, seconds: float) -> bool:
    done = defer.Deferred()
    d.addBoth(lambda result: done.called or done.callback(True) or result)
    reactor.callLater(seconds, lambda: done.called or done.callback(False))
    return await done


@pytest_twisted.ensureDeferred
async def test_a_receiver_that_waits_holds_one_window_and_then_gets_every_byte(gw):
    count = volume(gw)
    before = rss()
    flood = gw.remote_exec(
        ITEMS + "h = hashlib.sha256()\nfor i in range(channel.receive()):\n"
        "    data = item(i)\n    h.update(data)\n    channel.send(data)\n"
        "channel.send(h.hexdigest())"
    )
    flood.send(count)
    echo = gw.remote_exec("for x in channel:\n    channel.send(x)")
    peak = 0
    for i in range(15):  # not receiving the flood for 3 s, answering meanwhile
        await sleep(0.2)
        echo.send(i)
        assert await echo.receive(T) == i
        peak = max(peak, rss() - before)
    assert peak < 64 * MiB, f"the receiver grew by {peak / MiB:.0f} MiB"
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(await flood.receive(T))
    assert await flood.receive(T) == digest.hexdigest()
    echo.close()


@pytest_twisted.ensureDeferred
async def test_a_sender_waits_for_a_remote_that_does_not_receive(gw):
    count = volume(gw) // 2
    ch = gw.remote_exec(
        "import hashlib, time\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'):\n"
        "            return int(line.split()[1]) * 1024\n"
        "started = channel.receive()\nbefore = rss()\ntime.sleep(2)\ngrown = rss() - before\n"
        "h = hashlib.sha256()\nsize = 0\nfor data in iter(channel.receive, None):\n"
        "    h.update(data)\n    size += len(data)\n"
        "channel.send((size, h.hexdigest(), grown))"
    )
    await ch.send("start")
    seed = os.urandom(MiB)
    digest = hashlib.sha256()
    waited = 0
    for i in range(count):
        data = i.to_bytes(8, "big") + seed[8:]
        digest.update(data)
        d = ch.send(data)
        if not await fired(d, 0.5 if i < 40 else T):
            waited += 1
            await d
    ch.send(None)
    size, hexdigest, grown = await ch.receive(T)
    assert (size, hexdigest) == (count * MiB, digest.hexdigest())
    assert waited > 0, "no send waited for the window"
    assert grown < 64 * MiB, f"the receiver grew by {grown / MiB:.0f} MiB"


@pytest_twisted.ensureDeferred
async def test_a_slow_channel_does_not_hold_back_the_others(popen_gw):
    stuck = popen_gw.remote_exec("import time\ntime.sleep(30)")
    for _ in range(40):  # more than a window: the last sends wait
        last = stuck.send(b"x" * MiB)
    assert not last.called
    echo = popen_gw.remote_exec("channel.send(channel.receive() * 2)")
    echo.send(21)
    assert await echo.receive(T) == 42


@pytest_twisted.ensureDeferred
async def test_both_sides_sending_a_window_before_receiving_waits_unless_the_window_is_off():
    # An echo loop fed more than a window before its first reply is read:
    # each side waits for the other to receive.
    for spec, stalls in (("popen//window=4M", True), ("popen//window=off", False)):
        gw = await txexecnet.makegateway(spec)
        try:
            ch = gw.remote_exec("for x in channel:\n    channel.send(x)")
            sends = [ch.send(b"x" * MiB) for _ in range(32)]
            everything = defer.gatherResults(sends)
            assert (not await fired(everything, 1.0)) is stalls, spec
            if not stalls:
                assert [len(await ch.receive(T)) for _ in range(32)] == [MiB] * 32
        finally:
            await gw.exit(timeout=3)


def test_window_sizes_in_specs():
    assert txexecnet.XSpec("popen//window=16M").window == "16M"
    from txexecnet.transports.registry import parseSize

    assert [parseSize(v) for v in ("16M", "512k", "1G", "4096", "off", "0")] == [
        16 * MiB,
        512 * 1024,
        1024 * MiB,
        4096,
        0,
        0,
    ]
    with pytest.raises(ValueError, match="window='lots'.*is not a size"):
        txexecnet.XSpec("popen//window=lots")

"""
Groups and multichannels: gateways started together (a bound on the
handshakes in flight per host, failures kept apart), used together, ended
together; in the Twisted API and the blocking facade.
"""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
import txexecnet
from txexecnet import GatewayStartError, Group, MultiChannel, RemoteError, blocking

T = 30  # seconds any single wait may take

ECHO_PID = "import os\nchannel.send((os.getpid(), channel.receive()))"


def deadPort() -> int:
    """A loopback port nothing listens on (it was just free)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest_twisted.ensureDeferred
async def test_the_specs_given_to_a_group_start_gateways_with_their_ids():
    group = Group(["popen//id=a", "thread//id=b", "popen"])
    try:
        gateways = await group.whenStarted()
        assert [gw.id for gw in gateways] == ["a", "b", "gw0"]
        assert len(group) == 3 and "a" in group and "b" in group and "nope" not in group
        assert group["a"] is gateways[0] and group[1] is gateways[1]
        assert list(group) == gateways
    finally:
        await group.terminate(T)
    assert len(group) == 0


@pytest_twisted.ensureDeferred
async def test_a_multichannel_sends_to_each_and_receives_from_each():
    group = Group(["popen//id=a", "popen//id=b"])
    try:
        await group.whenStarted()
        mch = group.remote_exec(ECHO_PID)
        assert isinstance(mch, MultiChannel) and len(mch) == 2
        await mch.send_each("hi")
        pairs = await mch.receive_each(withchannel=True, timeout=T)
        assert [ch for ch, _ in pairs] == list(mch)
        assert [item[1] for _, item in pairs] == ["hi", "hi"]
        assert [item[0] for _, item in pairs] == [gw.remoteinfo["pid"] for gw in group]
        await mch.waitclose(T)
    finally:
        await group.terminate(T)


@pytest_twisted.ensureDeferred
async def test_a_receive_queue_gives_items_with_their_channels_then_the_endmarkers():
    group = Group(["popen", "popen", "thread"])
    try:
        await group.whenStarted()
        mch = group.remote_exec("channel.send(channel.receive() * 2)")
        queue = mch.make_receive_queue(endmarker=None)
        for i, ch in enumerate(mch):
            await ch.send(i)
        seen = [await queue.get() for _ in range(6)]
        items = sorted(item for _, item in seen if item is not None)
        assert items == [0, 2, 4]
        assert {ch for ch, _ in seen} == {mch[0], mch[1], mch[2]}
        assert sum(1 for _, item in seen if item is None) == 3
    finally:
        await group.terminate(T)


@pytest_twisted.ensureDeferred
async def test_async_iteration_over_a_multichannel_ends_when_every_channel_closed():
    group = Group(["popen", "popen"])
    try:
        await group.whenStarted()
        mch = group.remote_exec("for i in range(3): channel.send(i)")
        got = [(ch, item) async for ch, item in mch]
        assert sorted(item for _, item in got) == [0, 0, 1, 1, 2, 2]
        assert {ch for ch, _ in got} == set(mch)
    finally:
        await group.terminate(T)


@pytest_twisted.ensureDeferred
async def test_multichannel_waitclose_raises_the_first_remote_error_after_all_closed():
    group = Group(["popen//id=ok", "popen//id=bad"])
    try:
        await group.whenStarted()
        mch = group.remote_exec(
            "if channel.receive(): raise ValueError('boom')\nimport time; time.sleep(0.5)"
        )
        await mch[0].send(False)
        await mch[1].send(True)
        with pytest.raises(RemoteError, match="ValueError: boom"):
            await mch.waitclose(T)
        assert all(ch.isclosed() for ch in mch)
    finally:
        await group.terminate(T)


@pytest_twisted.ensureDeferred
async def test_makegateways_starts_many_and_keeps_the_failures_apart():
    group = Group()
    dead = deadPort()
    specs = [f"popen//id=w{i}" for i in range(10)] + [
        f"socket=127.0.0.1:{dead}//id=dead{i}" for i in range(3)
    ]
    try:
        results = await group.makegateways(specs, concurrency=4)
        assert len(results) == 13
        up = [r for r in results if isinstance(r, txexecnet.Gateway)]
        down = [r for r in results if isinstance(r, GatewayStartError)]
        assert [gw.id for gw in up] == [f"w{i}" for i in range(10)]
        assert [e.spec for e in down] == specs[10:]
        assert all("failed to start" in str(e) for e in down)
        mch = group.remote_exec("channel.send(1)")
        assert await mch.receive_each(timeout=T) == [1] * 10
    finally:
        await group.terminate(T)


@pytest_twisted.ensureDeferred
async def test_makegateways_has_at_most_concurrency_handshakes_in_flight_per_host():
    group = Group()
    inFlight = []
    most = []
    original = group._start  # where each start begins and ends, to count them

    def counting(xspec, transport, maxFrameSize):
        inFlight.append(xspec)
        most.append(len(inFlight))
        d = original(xspec, transport, maxFrameSize)
        return d.addBoth(lambda result: (inFlight.remove(xspec), result)[1])

    group._start = counting
    try:
        results = await group.makegateways(["popen"] * 9, concurrency=3)
        assert all(isinstance(r, txexecnet.Gateway) for r in results)
        assert max(most) == 3
    finally:
        await group.terminate(T)


def test_makegateways_refuses_a_bad_spec_before_starting_anything():
    group = Group()
    with pytest.raises(ValueError, match="unknown key 'bogus'"):
        group.makegateways(["popen", "popen//bogus=1"])
    with pytest.raises(ValueError, match="concurrency"):
        group.makegateways(["popen"], concurrency=0)
    assert len(group) == 0


@pytest_twisted.ensureDeferred
async def test_a_group_whose_spec_fails_says_which_and_keeps_the_others():
    dead = deadPort()
    group = Group(["popen//id=fine", f"socket=127.0.0.1:{dead}//id=gone"])
    try:
        with pytest.raises(GatewayStartError) as info:
            await group.whenStarted()
        assert info.value.spec == f"socket=127.0.0.1:{dead}//id=gone"
        assert [gw.id for gw in group] == ["fine"]
    finally:
        await group.terminate(T)


@pytest_twisted.ensureDeferred
async def test_terminate_ends_the_gateways_that_hop_through_others_first():
    group = Group(["popen//id=hop"])
    await group.whenStarted()
    ended = []
    try:
        await group.makegateways(["popen//via=hop//id=inner1", "popen//via=hop//id=inner2"])
        for gw in group:
            gw.whenTerminated().addCallback(lambda _, gw=gw: ended.append(gw.id))
    finally:
        await group.terminate(T)
    assert sorted(ended[:2]) == ["inner1", "inner2"] and ended[2] == "hop"


@pytest_twisted.ensureDeferred
async def test_terminate_kills_what_does_not_exit_within_the_timeout():
    group = Group(["popen", "popen"])
    await group.whenStarted()
    mch = group.remote_exec("import time\nwhile True: time.sleep(0.1)")
    await group.terminate(0.5)
    assert len(group) == 0
    assert all(ch.isclosed() for ch in mch)


def test_a_blocking_group_starts_its_specs_and_fans_out():
    group = blocking.Group(["popen//id=a", "popen//id=b"])
    try:
        assert [gw.id for gw in group] == ["a", "b"]
        assert group["a"].remoteinfo["pid"] != group["b"].remoteinfo["pid"]
        mch = group.remote_exec(ECHO_PID)
        assert isinstance(mch, blocking.MultiChannel)
        mch.send_each(7)
        assert [item[1] for item in mch.receive_each(timeout=T)] == [7, 7]
        mch.waitclose(T)
        queue = group.remote_exec("channel.send('item')").make_receive_queue("end")
        got = sorted(queue.get(timeout=T)[1] for _ in range(4))
        assert got == ["end", "end", "item", "item"]
    finally:
        group.terminate(T)
    assert len(group) == 0


def test_a_blocking_group_with_a_failing_spec_raises_naming_it():
    dead = deadPort()
    with pytest.raises(GatewayStartError) as info:
        blocking.Group([f"socket=127.0.0.1:{dead}"])
    assert info.value.spec == f"socket=127.0.0.1:{dead}"


def test_blocking_makegateways_gives_one_result_per_spec():
    group = blocking.Group()
    dead = deadPort()
    try:
        results = group.makegateways(["popen", f"socket=127.0.0.1:{dead}", "popen"])
        assert isinstance(results[0], blocking.Gateway) and isinstance(results[2], blocking.Gateway)
        assert isinstance(results[1], GatewayStartError)
        assert group.remote_exec("channel.send(2)").receive_each(timeout=T) == [2, 2]
    finally:
        group.terminate(T)

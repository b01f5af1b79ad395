"""
channel.cancel(): KeyboardInterrupt in the remote code of one channel; the
gateway and its other channels go on.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from txexecnet import RemoteError, blocking

T = 10


async def still_answers(gw) -> None:
    ch = gw.remote_exec("channel.send(channel.receive() + 1)")
    ch.send(41)
    assert await ch.receive(T) == 42


@pytest_twisted.ensureDeferred
async def test_cancel_interrupts_spinning_code_and_nothing_else(gw):
    other = gw.remote_exec("for x in channel:\n    channel.send(x)")
    spinning = gw.remote_exec("channel.send('spinning')\nwhile True:\n    pass")
    assert await spinning.receive(T) == "spinning"
    spinning.cancel()
    with pytest.raises(RemoteError, match="KeyboardInterrupt"):
        await spinning.waitclose(T)
    other.send("still here")
    assert await other.receive(T) == "still here"
    await still_answers(gw)
    other.close()


@pytest_twisted.ensureDeferred
async def test_cancel_wakes_code_waiting_in_receive(gw):
    ch = gw.remote_exec(
        "try:\n    channel.send('ready')\n    channel.receive()\n"
        "except KeyboardInterrupt:\n    channel.send('interrupted')"
    )
    assert await ch.receive(T) == "ready"
    await still_answers(gw)  # the remote code is in its receive() by now
    ch.cancel()
    assert await ch.receive(T) == "interrupted"
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_cancelling_code_that_sends_keeps_the_stream_whole(gw):
    ch = gw.remote_exec("while True:\n    channel.send(b'x' * 1000)")
    for _ in range(50):
        assert await ch.receive(T) == b"x" * 1000
    ch.cancel()
    with pytest.raises(RemoteError, match="KeyboardInterrupt"):
        while True:
            await ch.receive(T)
    await still_answers(gw)


@pytest_twisted.ensureDeferred
async def test_a_cancel_that_arrives_before_the_code_starts_keeps_it_from_running(gw):
    # Many at once, so that some cancels overtake the start of their code.
    # Each either never runs or is interrupted where it waits: none is left
    # waiting with its cancel lost.
    channels = [gw.remote_exec("channel.receive()") for _ in range(20)]
    for ch in channels:
        ch.cancel()
    for ch in channels:
        with pytest.raises(RemoteError, match="KeyboardInterrupt"):
            await ch.waitclose(T)
    await still_answers(gw)


@pytest_twisted.ensureDeferred
async def test_cancel_after_the_code_ended_does_nothing(gw):
    ch = gw.remote_exec("channel.send(1)")
    assert await ch.receive(T) == 1
    await ch.waitclose(T)
    ch.cancel()
    await still_answers(gw)


def test_cancel_through_the_blocking_facade():
    gw = blocking.makegateway("popen")
    try:
        ch = gw.remote_exec("import time\nchannel.send(0)\nwhile True:\n    time.sleep(0.01)")
        assert ch.receive(T) == 0
        ch.cancel()
        with pytest.raises(RemoteError, match="KeyboardInterrupt"):
            ch.waitclose(T)
        assert gw.remote_exec("channel.send(7)").receive(T) == 7
    finally:
        gw.exit(timeout=3)

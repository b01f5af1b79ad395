"""
Hostile bytes: whatever a peer sends, the frame parser and the gateway end
in a protocol error and a closed gateway, never an uncaught exception, a
hang, or an allocation larger than what arrived (and the frame limit); a
fake interpreter fails the start at once; remote code that corrupts the
stream ends its gateway alone.
"""

from __future__ import annotations

import stat
import tracemalloc

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

import txexecnet
from txexecnet import GatewayClosed, GatewayStartError, RemoteError
from txexecnet._remote import (
    CHANNEL_DATA,
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    MESSAGE_NAMES,
    FrameBuffer,
    ProtocolError,
    loads,
    LoadError,
)
from txexecnet.testing import ScriptedPeer

T = 10

#: Streams that look like frames more often than random bytes do.
frames = st.lists(
    st.tuples(
        st.sampled_from(sorted(MESSAGE_NAMES) + [99]),
        st.integers(0, 7),
        st.binary(max_size=40),
        st.integers(-2, 2),  # a length that lies by a little
    ),
    max_size=8,
).map(lambda parts: b"".join(HEADER.pack(t, c, max(0, len(p) + lie)) + p for t, c, p, lie in parts))
streams = st.one_of(st.binary(max_size=512), frames)


def feed(buffer: FrameBuffer, data: bytes, step: int) -> None:
    while data:
        room = buffer.room()
        n = min(len(room), len(data), step)
        room[:n] = data[:n]
        data = data[n:]
        buffer.filled(n)


@settings(max_examples=500, deadline=None)
@given(streams, st.integers(1, 64))
def test_the_frame_parser_delivers_frames_or_raises_a_protocol_error(data, step):
    delivered = []

    def deliver(msgtype, cid, payload):
        assert len(payload) <= 1024
        delivered.append((msgtype, cid, bytes(payload)))

    buffer = FrameBuffer(1024, deliver)
    try:
        feed(buffer, data, step)
    except ProtocolError:
        pass
    assert all(msgtype in MESSAGE_NAMES for msgtype, _, _ in delivered)


def test_a_frame_claiming_200_mib_allocates_little_until_the_bytes_come():
    buffer = FrameBuffer(DEFAULT_MAX_FRAME_SIZE, lambda *frame: None)
    tracemalloc.start()
    try:
        feed(buffer, HEADER.pack(CHANNEL_DATA, 1, 200 * 1024 * 1024) + b"x" * 10, 4096)
        buffer.room()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB allocated for 19 bytes"


def test_a_claimed_huge_string_is_refused_without_allocating_it():
    tracemalloc.start()
    try:
        with pytest.raises(LoadError):
            loads(b"s\xff\xff\xff\xf0abcde")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@settings(max_examples=300, deadline=None)
@given(streams)
def test_a_gateway_fed_anything_ends_in_a_protocol_error_or_goes_on(data):
    errors = []

    def observe(event):
        if event.get("log_failure") is not None or event.get("isError"):
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        peer = ScriptedPeer(Clock(), spec="thread//id=fed")
        peer.hello()
        gateway = peer.started.result
        ch = gateway.remote_exec("pass")
        outcome = []
        ch.waitclose().addBoth(outcome.append)
        peer.sendBytes(data)
        if gateway.isTerminated():
            assert peer.connection.killed
        for ended in outcome:  # a bad item ends its channel alone, a bad frame the gateway
            if ended is not None and not ended.check(LoadError, RemoteError):
                assert ended.check(GatewayClosed) and "protocol error" in str(ended.value)
    finally:
        globalLogPublisher.removeObserver(observe)
    unexpected = [e for e in errors if "protocol error" not in str(e.get("why", ""))]
    assert unexpected == []


FAKES = {
    "garbage": "#!/bin/sh\necho 'Traceback (most recent call last):'\nsleep 30\n",
    "nothing, then exit": "#!/bin/sh\nexit 3\n",
    "nothing, and alive": "#!/bin/sh\nexec sleep 30\n",
    "an endless stream": "#!/bin/sh\nexec yes\n",
    "a huge hello": (
        "#!/usr/bin/env python3\nimport struct, sys, time\n"
        "sys.stdout.buffer.write(struct.pack('>BII', 0, 0, 200 * 1024 * 1024))\n"
        "sys.stdout.flush()\ntime.sleep(30)\n"
    ),
}


@pytest.mark.parametrize("fake", sorted(FAKES))
@pytest_twisted.ensureDeferred
async def test_a_fake_interpreter_fails_the_start_with_a_clear_error(fake, tmp_path):
    path = tmp_path / "python"
    path.write_text(FAKES[fake])
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(GatewayStartError) as info:
        await txexecnet.makegateway(f"popen//python={path}")
    message = str(info.value)
    assert "failed to start" in message
    assert any(
        word in message
        for word in ("protocol error", "exited with status 3", "no hello within 8.0 seconds")
    )


@pytest_twisted.ensureDeferred
async def test_remote_code_that_corrupts_the_stream_ends_its_gateway_alone(popen_gw):
    other = await txexecnet.makegateway("popen")
    try:
        ch = popen_gw.remote_exec(
            "import os\nfd = channel.gateway._io._wfd\nos.write(fd, b'not a frame' * 10)\n"
            "channel.receive()"
        )
        with pytest.raises(GatewayClosed, match="protocol error"):
            await ch.receive(T)
        await popen_gw.whenTerminated()
        probe = other.remote_exec("channel.send(os.getpid())".replace("os.", "__import__('os')."))
        assert await probe.receive(T) == other.remoteinfo["pid"]
    finally:
        await other.exit()


def test_the_protocol_error_names_the_bad_bytes():
    buffer = FrameBuffer(1024, lambda *frame: None)
    with pytest.raises(ProtocolError, match="unknown message type 99"):
        feed(buffer, HEADER.pack(99, 0, 0), 64)

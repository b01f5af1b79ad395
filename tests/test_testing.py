"""
The gateway on a clock of the test's own: in memory, joined to the real
runtime or to a peer the test plays (txexecnet.testing).  Timeouts, the
start deadline, the kill grace and protocol errors, deterministically.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from txexecnet import GatewayClosed, GatewayStartError, RemoteError, TimeoutError
from txexecnet._remote import CHANNEL_DATA, CHANNEL_EXEC, HEADER, HEARTBEAT, HELLO
from txexecnet.gateway import DEFAULT_EXIT_TIMEOUT, START_TIMEOUT
from txexecnet.testing import InMemoryRuntime, ScriptedPeer


def result(d):
    """The result of a Deferred that has fired, or its error raised."""
    box = []
    d.addBoth(box.append)
    assert box, f"{d!r} has not fired"
    if hasattr(box[0], "raiseException"):
        box[0].raiseException()
    return box[0]


def failure(d, kind):
    """The error of a Deferred that has failed with C{kind}."""
    with pytest.raises(kind) as info:
        result(d)
    return info.value


@pytest.fixture
def runtime():
    clock = Clock()
    runtime = InMemoryRuntime(clock)
    runtime.clock = clock
    runtime.start()
    yield runtime
    runtime.stop()


def test_a_round_trip_with_the_real_runtime(runtime):
    ch = runtime.gateway.remote_exec("channel.send(channel.receive() * 2)")
    ch.send(21)
    assert runtime.runUntil(ch.receive()) == 42
    assert runtime.gateway.remoteinfo["version"] == 1


def test_a_receive_times_out_when_the_clock_says_so_and_not_before(runtime):
    ch = runtime.gateway.remote_exec("channel.receive()")
    d = ch.receive(timeout=5)
    runtime.pump()
    runtime.clock.advance(4.9)
    assert not d.called
    runtime.clock.advance(0.1)
    assert "no item on channel" in str(failure(d, TimeoutError))
    ch.send("go on")
    runtime.runUntil(ch.waitclose())


def test_cancelling_a_receive_gives_up_that_wait_only(runtime):
    ch = runtime.gateway.remote_exec("channel.send(channel.receive())")
    first = ch.receive()
    second = ch.receive()
    first.cancel()
    ch.send("item")
    assert runtime.runUntil(second) == "item"


def test_a_remote_exception_is_a_remote_error(runtime):
    ch = runtime.gateway.remote_exec("raise ValueError('no')")
    with pytest.raises(RemoteError, match="ValueError: no"):
        runtime.runUntil(ch.waitclose())


def test_no_hello_within_the_start_deadline_kills_and_fails_the_start():
    clock = Clock()
    peer = ScriptedPeer(clock)
    clock.advance(START_TIMEOUT - 1)
    assert not peer.started.called and not peer.connection.killed
    clock.advance(1)
    assert peer.connection.killed
    error = failure(peer.started, GatewayStartError)
    assert f"no hello from the remote side within {START_TIMEOUT} seconds" in str(error)


def test_exit_gives_remote_code_its_grace_then_kills():
    clock = Clock()
    peer = ScriptedPeer(clock)
    peer.hello()
    gateway = result(peer.started)
    ended = gateway.exit(timeout=DEFAULT_EXIT_TIMEOUT)
    assert [frame.type for frame in peer.frames()] == ["GATEWAY_EXIT"]
    assert peer.connection.writeClosed and not peer.connection.killed
    clock.advance(DEFAULT_EXIT_TIMEOUT - 0.5)
    assert not peer.connection.killed and not ended.called
    clock.advance(0.5)
    assert peer.connection.killed and ended.called and gateway.isTerminated()


def test_a_clean_exit_within_the_grace_is_not_killed():
    clock = Clock()
    peer = ScriptedPeer(clock)
    peer.hello()
    gateway = result(peer.started)
    ended = gateway.exit(timeout=5)
    peer.disconnect()
    assert ended.called and not peer.connection.killed
    clock.advance(10)
    assert not peer.connection.killed


def test_frames_sent_before_the_hello_wait_for_it():
    peer = ScriptedPeer(Clock())
    assert peer.frames() == []
    peer.hello(pid=4242)
    gateway = result(peer.started)
    assert gateway.remoteinfo["pid"] == 4242
    ch = gateway.remote_exec("pass")
    [frame] = peer.frames()
    assert frame.type == "CHANNEL_EXEC" and frame.channelId == ch.id
    assert frame.payload[0] == "pass"


@pytest.mark.parametrize(
    "bytes_, message",
    [
        (HEADER.pack(99, 0, 0), "unknown message type 99"),
        (HEADER.pack(CHANNEL_DATA, 1, 2**31), "exceeds the limit"),
        (HEADER.pack(HELLO, 0, 1) + b"N", "a second hello frame"),
        (HEADER.pack(CHANNEL_EXEC, 2, 0), "unexpected message type 1"),
    ],
)
def test_a_protocol_error_fails_every_wait_and_kills(bytes_, message):
    peer = ScriptedPeer(Clock())
    peer.hello()
    gateway = result(peer.started)
    ch = gateway.remote_exec("channel.receive()")
    waiting = ch.receive()
    peer.sendBytes(bytes_)
    assert peer.connection.killed and gateway.isTerminated()
    error = failure(waiting, GatewayClosed)
    assert message in str(error)


def test_garbage_instead_of_a_hello_is_a_start_error():
    peer = ScriptedPeer(Clock())
    peer.sendBytes(b"Traceback (most recent call last):\n")
    assert "expected a hello frame" in str(failure(peer.started, GatewayStartError))


def test_an_undecodable_item_fails_its_channel_only():
    peer = ScriptedPeer(Clock())
    peer.hello()
    gateway = result(peer.started)
    bad, good = gateway.remote_exec("pass"), gateway.remote_exec("pass")
    peer.sendFrame(CHANNEL_DATA, bad.id, b"\xff")
    peer.send(good.id, "fine")
    assert "unknown tag" in str(failure(bad.receive(), Exception))
    assert result(good.receive()) == "fine"
    assert not gateway.isTerminated()


def test_a_remote_close_with_an_error_reaches_the_channel():
    peer = ScriptedPeer(Clock())
    peer.hello()
    gateway = result(peer.started)
    ch = gateway.remote_exec("pass")
    peer.send(ch.id, 1)
    peer.close(ch.id, "Traceback: boom")
    assert result(ch.receive()) == 1
    assert str(failure(ch.receive(), RemoteError)) == "Traceback: boom"


def test_the_remote_side_going_away_fails_every_wait():
    peer = ScriptedPeer(Clock())
    peer.hello()
    gateway = result(peer.started)
    waits = [gateway.remote_exec("pass").receive() for _ in range(3)]
    peer.disconnect()
    for d in waits:
        assert "closed" in str(failure(d, GatewayClosed))
    assert result(gateway.whenTerminated()) is None


def test_the_client_gives_up_a_server_that_never_greets():
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from txexecnet.gateway import Gateway
    from txexecnet.transports.socket import DEFAULT_TIMEOUT, SocketTransport
    from txexecnet.xspec import XSpec

    reactor = MemoryReactorClock()
    gateway = Gateway(XSpec("socket=unix:path=/nowhere//id=silent"), reactor)
    started = gateway.start(SocketTransport("unix:path=/nowhere", server="txexecnet"))
    [(path, factory, *_)] = reactor.unixClients
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    reactor.advance(DEFAULT_TIMEOUT - 1)
    assert not started.called
    reactor.advance(1)
    error = failure(started, GatewayStartError)
    assert f"no handshake from unix:path=/nowhere within {DEFAULT_TIMEOUT:g} s" in str(error)


def test_a_client_without_a_secret_takes_a_silent_server_for_one_of_execnets_kind():
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from twisted.internet.error import ConnectionAborted
    from twisted.python.failure import Failure

    from txexecnet.gateway import START_TIMEOUT, Gateway
    from txexecnet.transports.socket import GREETING_WAIT, SocketTransport
    from txexecnet.xspec import XSpec

    reactor = MemoryReactorClock()
    gateway = Gateway(XSpec("socket=unix:path=/nowhere//id=quiet"), reactor)
    started = gateway.start(SocketTransport("unix:path=/nowhere"))
    [(path, factory, *_)] = reactor.unixClients
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    reactor.advance(GREETING_WAIT - 0.01)
    assert transport.value() == b""
    reactor.advance(0.01)
    # One line, the repr of a program that serves on the server's socket.
    line = transport.value()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert "serve_socket(clientsock, " in eval(line)
    reactor.advance(START_TIMEOUT)
    # The start timeout drops the connection, as the reactor would report.
    assert transport.disconnecting
    protocol.connectionLost(Failure(ConnectionAborted()))
    error = failure(started, GatewayStartError)
    assert f"within {START_TIMEOUT} seconds" in str(error)


def test_the_server_drops_a_client_that_does_not_authenticate_in_time():
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from txexecnet.server import ExecnetServerFactory

    clock = Clock()
    factory = ExecnetServerFactory(reactor=clock, secret=b"sesame", idleTimeout=30)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
    transport = StringTransport()
    protocol.makeConnection(transport)
    assert transport.value().startswith(b"TXEXECNET/1 hmac-sha256 ")
    clock.advance(29.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting


def test_the_example_in_the_module_docstring_runs():
    import textwrap

    import txexecnet.testing

    doc = txexecnet.testing.__doc__
    example = textwrap.dedent(doc[doc.index("fire::") + len("fire::") :])
    namespace = {}
    exec(compile(example, "txexecnet.testing example", "exec"), namespace)
    namespace["runtime"].stop()


def test_a_hello_that_claims_to_be_huge_is_refused_at_once():
    peer = ScriptedPeer(Clock())
    peer.sendBytes(HEADER.pack(HELLO, 0, 200 * 1024 * 1024))
    error = failure(peer.started, GatewayStartError)
    assert "a hello frame of 209715200 bytes announced; it is at most 65536" in str(error)
    assert peer.connection.killed


def test_sends_that_wait_for_the_window_say_so_until_the_other_side_receives():
    from twisted.logger import globalLogPublisher

    from txexecnet._remote import CHANNEL_CREDIT, CREDIT, WINDOW_WARNING

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        clock = Clock()
        peer = ScriptedPeer(clock, spec="thread//id=windowed//window=1M")
        peer.hello()
        gateway = result(peer.started)
        ch = gateway.remote_exec("pass")
        first = ch.send(b"x" * (1024 * 1024))
        held = ch.send(b"y")
        assert first.called and not held.called
        assert [f.type for f in peer.frames()] == ["CHANNEL_EXEC", "CHANNEL_DATA"]
        clock.advance(WINDOW_WARNING)
        warnings = [e for e in events if "has waited" in e.get("log_format", "")]
        assert len(warnings) == 1 and warnings[0]["waited"] == WINDOW_WARNING
        peer.sendFrame(CHANNEL_CREDIT, ch.id, CREDIT.pack(1024 * 1024 + 13))
        assert held.called
        assert [f.type for f in peer.frames()] == ["CHANNEL_DATA"]
        clock.advance(WINDOW_WARNING * 3)
        assert len([e for e in events if "has waited" in e.get("log_format", "")]) == 1
    finally:
        globalLogPublisher.removeObserver(events.append)


def test_the_receiver_tells_the_sender_every_quarter_window():
    peer = ScriptedPeer(Clock(), spec="thread//id=credits//window=1M")
    peer.hello()
    gateway = result(peer.started)
    ch = gateway.remote_exec("pass")
    peer.frames()
    for _ in range(3):
        peer.send(ch.id, b"z" * 100_000)
    for _ in range(3):
        result(ch.receive())
    [credit] = [f for f in peer.frames() if f.type == "CHANNEL_CREDIT"]
    # Told once, past a quarter of the window: three items of a tag byte, a
    # 4-byte length and 100,000 bytes each.
    assert credit.payload == 3 * (1 + 4 + 100_000)


def test_heartbeats_go_out_and_a_peer_silent_for_three_is_given_up():
    clock = Clock()
    peer = ScriptedPeer(clock, spec="thread//id=beating//heartbeat=5")
    peer.hello()
    gateway = result(peer.started)
    waiting = gateway.remote_exec("channel.receive()").receive()
    peer.frames()
    for _ in range(10):  # a peer that answers stays
        clock.advance(5)
        assert [f.type for f in peer.frames()] == ["HEARTBEAT"]
        peer.sendFrame(HEARTBEAT, 0)
    assert not gateway.isTerminated()
    clock.advance(10)
    assert not gateway.isTerminated()
    clock.advance(5)
    assert gateway.isTerminated() and peer.connection.killed
    error = failure(waiting, GatewayClosed)
    assert "no sign of the remote side for 15.0 s (3 heartbeats of 5 s)" in str(error)


def test_heartbeats_are_off_unless_asked_for_popen_and_on_for_ssh_and_socket():
    from txexecnet.gateway import Gateway
    from txexecnet.xspec import XSpec

    assert Gateway(XSpec("popen"), Clock()).heartbeat == 0
    assert Gateway(XSpec("thread"), Clock()).heartbeat == 0
    assert Gateway(XSpec("ssh=h"), Clock()).heartbeat == 15
    assert Gateway(XSpec("socket=h:1"), Clock()).heartbeat == 15
    assert Gateway(XSpec("ssh=h//heartbeat=off"), Clock()).heartbeat == 0
    assert Gateway(XSpec("popen//heartbeat=0.5"), Clock()).heartbeat == 0.5
    with pytest.raises(ValueError, match="heartbeat='soon'.*is not a number of seconds"):
        XSpec("popen//heartbeat=soon")

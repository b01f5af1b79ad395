"""
Testing code that uses gateways, in memory and on a clock of the test's
own (C{twisted.internet.task.Clock}), as C{treq.testing} does for treq.

  - L{InMemoryRuntime}: a gateway joined to the real remote runtime, which
    runs in a thread of this process, over a socket pair.  Nothing moves
    until the test says so: L{InMemoryRuntime.pump} hands the gateway what
    the runtime has sent, and L{InMemoryRuntime.runUntil} pumps until a
    Deferred fires.
  - L{ScriptedPeer}: a gateway joined to a peer the test plays frame by
    frame, for what a well-behaved runtime never does (a silent
    interpreter, a malformed frame, a remote that dies mid-stream).

Timers (C{receive(timeout)}, the start deadline, the grace C{exit()} gives
before it kills) run on the reactor given, so a C{Clock} decides when they
fire::

    from twisted.internet.task import Clock
    from txexecnet.testing import InMemoryRuntime

    clock = Clock()
    runtime = InMemoryRuntime(clock)
    gw = runtime.start()
    ch = gw.remote_exec("channel.send(channel.receive() * 2)")
    ch.send(21)
    assert runtime.runUntil(ch.receive()) == 42
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer, IProducer, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from . import _remote
from ._remote import (
    CHANNEL_CREDIT,
    CREDIT,
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    HEADER_SIZE,
    HELLO,
    MESSAGE_NAMES,
    PROTOCOL_VERSION,
    dumps,
    loads,
)
from .gateway import Gateway
from .interfaces import IGatewayConnection, IGatewayTransport
from .transports.messages import MessageTransport
from .xspec import XSpec

__all__ = ["InMemoryRuntime", "ScriptedPeer", "Frame"]

_READ = 1024 * 1024


@implementer(ITransport, IConsumer, IGatewayConnection)
class _TestConnection(MessageTransport):
    """
    The framing protocol's transport in a test: what it writes goes to
    C{write}'s target; what reaches it is handed over by the test.  Also
    the gateway's connection, recording C{closeWrite} and C{kill}.
    """

    def __init__(self, protocol: Any, send: Any, closeWrite: Any, kill: Any) -> None:
        self.protocol = protocol
        self.producer: IProducer | None = None
        self.killed = False
        self.writeClosed = False
        self._send = send
        self._closeWrite = closeWrite
        self._kill = kill
        self._lost = False

    def write(self, data: bytes) -> None:
        if not (self.killed or self._lost):
            self._send(bytes(data))

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def closeWrite(self) -> None:
        self.writeClosed = True
        self._closeWrite()

    def kill(self) -> None:
        if self.killed:
            return
        self.killed = True
        self._kill()
        self.lost(Failure(ConnectionLost("killed")))

    def lost(self, reason: Failure) -> None:
        """The connection is gone: tell the protocol, once."""
        if not self._lost:
            self._lost = True
            self.protocol.connectionLost(reason)

    def stderrTail(self) -> str:
        return ""


@implementer(IGatewayTransport)
class _TestTransport:
    """Connects a gateway's protocol to a L{_TestConnection} made by C{make}."""

    description = "in memory"
    helloTimeout = None  # the start timeout alone, so a test with a Clock controls it

    def __init__(self, make: Any) -> None:
        self._make = make
        self.config: dict[str, Any] = {}

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        self.config = config
        return b""

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        connection = self._make(protocol, self.config)
        protocol.makeConnection(connection)
        return succeed(connection)


class InMemoryRuntime:
    """
    A gateway and the real remote runtime, in a thread of this process,
    joined by a socket pair that the test pumps.

    @ivar gateway: the L{Gateway}, once L{start}ed.
    """

    def __init__(
        self,
        reactor: Any = None,
        spec: str = "thread//id=in-memory",
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        """
        @param reactor: the reactor the gateway's timers run on (a C{Clock}).
        @param spec: the gateway's spec (its id names it in messages).
        @param maxFrameSize: the largest frame either side may send.
        """
        self._reactor = reactor
        self._spec = XSpec(spec)
        self._maxFrameSize = maxFrameSize
        self._ours: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._connection: _TestConnection | None = None
        self.gateway: Gateway | None = None

    def start(self, timeout: float = 10.0) -> Gateway:
        """
        Start the runtime and the gateway, and pump until it is ready.

        @param timeout: seconds of real time to wait for the runtime's hello.
        """
        self.gateway = Gateway(self._spec, self._reactor, self._maxFrameSize)
        started = self.gateway.start(_TestTransport(self._connect))
        result: Gateway = self.runUntil(started, timeout)
        return result

    def _connect(self, protocol: Any, config: dict[str, Any]) -> _TestConnection:
        ours, theirs = socket.socketpair()
        self._ours = ours
        self._thread = threading.Thread(
            target=_remote.serve,
            args=(_remote.SocketIO(theirs), config),
            name="txexecnet-in-memory",
            daemon=True,
        )
        self._thread.start()
        self._connection = _TestConnection(
            protocol, ours.sendall, lambda: ours.shutdown(socket.SHUT_WR), ours.close
        )
        return self._connection

    def pump(self) -> int:
        """
        Hand the gateway what the runtime has sent so far (without waiting
        for more); return how many bytes that was.
        """
        ours, connection = self._ours, self._connection
        if ours is None or connection is None or connection.killed:
            return 0
        total = 0
        ours.setblocking(False)
        try:
            while True:
                try:
                    data = ours.recv(_READ)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    connection.lost(Failure(ConnectionDone("the runtime closed the connection")))
                    break
                total += len(data)
                connection.protocol.dataReceived(data)
        finally:
            if ours.fileno() >= 0:
                ours.setblocking(True)
        return total

    def runUntil(self, d: Deferred[Any], timeout: float = 10.0) -> Any:
        """
        Pump until C{d} has fired; return its result, or raise its error.

        @param d: the Deferred to wait for.
        @param timeout: seconds of real time to wait.
        @raise AssertionError: if C{d} has not fired by then.
        """
        results: list[Any] = []
        d.addBoth(results.append)
        deadline = time.monotonic() + timeout
        while not results:
            if time.monotonic() > deadline:
                raise AssertionError(f"{d!r} did not fire within {timeout} seconds")
            if not self.pump():
                time.sleep(0.001)
        result = results[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def stop(self, timeout: float = 10.0) -> None:
        """
        End the gateway (as C{exit()} does) and wait for the runtime's thread.

        @param timeout: seconds of real time to wait.
        """
        if self.gateway is not None and not self.gateway.isTerminated():
            self.runUntil(self.gateway.exit(), timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._ours is not None:
            self._ours.close()


class Frame:
    """
    A frame the gateway sent to a L{ScriptedPeer}.

    @ivar type: the message type's name (C{"CHANNEL_EXEC"}, C{"CHANNEL_DATA"}...).
    @ivar channelId: the channel it is for.
    @ivar payload: its payload, decoded: an item, or for a C{CHANNEL_CREDIT}
        the bytes it acknowledges.
    @ivar raw: its payload as sent.
    """

    def __init__(self, msgtype: int, channelId: int, payload: bytes) -> None:
        """
        @param msgtype: the message type.
        @param channelId: the channel it is for.
        @param payload: its payload as sent.
        """
        self.type = MESSAGE_NAMES[msgtype]
        self.channelId = channelId
        self.raw = payload
        self.payload: Any = None
        if msgtype == CHANNEL_CREDIT:
            self.payload = CREDIT.unpack(payload)[0]
        elif payload:
            self.payload = loads(payload, lambda cid: ("channel", cid))

    def __repr__(self) -> str:
        return f"<Frame {self.type} {self.channelId} {self.payload!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, tuple):
            return NotImplemented
        return (self.type, self.channelId, self.payload) == other


class ScriptedPeer:
    """
    A gateway whose remote side is played by the test.

    @ivar gateway: the L{Gateway}.
    @ivar started: the Deferred of its start.
    @ivar connection: its connection, with C{killed} and C{writeClosed}.
    """

    def __init__(self, reactor: Any = None, spec: str = "thread//id=scripted") -> None:
        """
        @param reactor: the reactor the gateway's timers run on (a C{Clock}).
        @param spec: the gateway's spec (its id names it in messages).
        """
        self._received = bytearray()
        self._frames: list[Frame] = []
        self.connection: _TestConnection | None = None
        self.gateway = Gateway(XSpec(spec), reactor)
        self.started: Deferred[Gateway] = self.gateway.start(_TestTransport(self._connect))

    def _connect(self, protocol: Any, config: dict[str, Any]) -> _TestConnection:
        self.connection = _TestConnection(protocol, self._receive, lambda: None, lambda: None)
        return self.connection

    def _receive(self, data: bytes) -> None:
        self._received += data
        while len(self._received) >= HEADER_SIZE:
            msgtype, channelId, length = HEADER.unpack_from(self._received)
            if len(self._received) < HEADER_SIZE + length:
                break
            payload = bytes(self._received[HEADER_SIZE : HEADER_SIZE + length])
            del self._received[: HEADER_SIZE + length]
            self._frames.append(Frame(msgtype, channelId, payload))

    def frames(self) -> list[Frame]:
        """The frames the gateway has sent since the last call."""
        frames, self._frames = self._frames, []
        return frames

    def sendBytes(self, data: bytes) -> None:
        """
        Hand the gateway C{data}, as if the remote side had written it.

        @param data: bytes in the frame format, or anything else.
        """
        assert self.connection is not None
        self.connection.protocol.dataReceived(data)

    def sendFrame(self, msgtype: int, channelId: int, payload: bytes = b"") -> None:
        """
        Send one frame.

        @param msgtype: the message type, a number: 0 C{HELLO}, 1 C{CHANNEL_EXEC},
            2 C{CHANNEL_DATA}, 3 C{CHANNEL_CLOSE}, 4 C{CHANNEL_CLOSE_ERROR},
            5 C{CHANNEL_LAST_MESSAGE}, 6 C{GATEWAY_EXIT}.
        @param channelId: the channel it is for.
        @param payload: its payload.
        """
        self.sendBytes(HEADER.pack(msgtype, channelId, len(payload)) + payload)

    def hello(self, **info: Any) -> None:
        """
        Say hello (the runtime's first frame), with C{info} added to it.

        @param info: what the hello says besides the protocol version (C{pid}, C{python}...).
        """
        hello = {"version": PROTOCOL_VERSION, "pid": 0, "python": [3, 8, 0], **info}
        self.sendFrame(HELLO, 0, dumps(hello))

    def send(self, channelId: int, item: Any) -> None:
        """
        Send C{item} on channel C{channelId}.

        @param channelId: the channel.
        @param item: the item, serialized here.
        """
        self.sendFrame(_remote.CHANNEL_DATA, channelId, dumps(item))

    def close(self, channelId: int, error: str | None = None) -> None:
        """
        Close channel C{channelId}, with the remote traceback C{error} if given.

        @param channelId: the channel.
        @param error: the error text, or C{None} for a plain close.
        """
        if error is None:
            self.sendFrame(_remote.CHANNEL_CLOSE, channelId)
        else:
            self.sendFrame(_remote.CHANNEL_CLOSE_ERROR, channelId, dumps(error))

    def disconnect(self, reason: Failure | None = None) -> None:
        """
        The remote side goes away: the connection ends.

        @param reason: how it ends (default: a clean close).
        """
        assert self.connection is not None
        self.connection.lost(reason or Failure(ConnectionDone("the peer went away")))

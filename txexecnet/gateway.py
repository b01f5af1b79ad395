"""
The local end of a gateway: owns the channels of one remote interpreter.
"""

from __future__ import annotations

import builtins
import dis
import inspect
import textwrap
import threading
import types
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ProcessDone, ProcessTerminated
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._remote import (
    CHANNEL_CLOSE,
    CHANNEL_CLOSE_ERROR,
    CHANNEL_CREDIT,
    CHANNEL_DATA,
    CHANNEL_EXEC,
    CHANNEL_LAST_MESSAGE,
    CREDIT,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW,
    GATEWAY_EXIT,
    GATEWAY_STATUS,
    HEARTBEAT,
    HELLO,
    LOG_RECORD,
    OUTPUT,
    OUTPUT_CREDIT,
    PROTOCOL_VERSION,
    STREAM_NAMES,
    DumpError,
    LoadError,
    dumps,
    error_from_payload,
    loads,
)
from .channel import Channel
from .errors import GatewayClosed, GatewayStartError
from .interfaces import (
    IChannelHost,
    IFrameReceiver,
    IGatewayConnection,
    IGatewayTransport,
    IProxy,
    IThreadSafeTransport,
)
from .output import ChannelOutput, OutputHandler, RemoteOutput, emitLogRecord, logOutput
from .protocol import FrameProtocol
from .transports.registry import parseLogLevel, parseSeconds, parseSize
from .xspec import XSpec

__all__ = ["Gateway", "DEFAULT_EXIT_TIMEOUT", "RemoteStatus", "SEND_BUFFER_LIMIT", "START_TIMEOUT"]

#: Seconds C{exit()} gives remote code to finish before the process is killed.
DEFAULT_EXIT_TIMEOUT = 5.0

#: Seconds a new gateway may take to say hello before it is given up (and
#: its process killed): a hung interpreter must not leave makegateway waiting.
START_TIMEOUT = 60.0

#: Bytes that threads sending with L{Channel.sendFromThread} may have handed
#: over but not yet written before they wait: bounds memory when a thread
#: sends faster than the transport drains.
SEND_BUFFER_LIMIT = 8 * 1024 * 1024

log = Logger(namespace="txexecnet.gateway")


@dataclass(frozen=True)
class RemoteStatus:
    """
    What L{Gateway.remote_status} reports of the remote side.

    @ivar numchannels: channels the remote side holds open.
    @ivar numexecuting: remote_exec calls whose code is running (or queued,
        with C{main_thread_only}).
    @ivar execmodel: C{"thread"} or C{"main_thread_only"}.
    """

    numchannels: int
    numexecuting: int
    execmodel: str


@implementer(IFrameReceiver, IChannelHost)
class Gateway:
    """
    A connection to one remote Python interpreter.

    Made by L{txexecnet.makegateway} (or L{PopenGateway} and friends), whose
    Deferred fires with the gateway once the remote side has said hello.

    It is the L{IFrameReceiver} of its framing protocol and the
    L{IChannelHost} of its channels; those methods are theirs to call.

    @ivar id: the gateway's name (C{id=} in the spec, else C{gw0}, C{gw1}...).
    @ivar spec: the L{XSpec} it was made from.
    @ivar reactor: the reactor it runs on.
    @ivar remoteinfo: what the remote side said in its hello: C{pid},
        C{python} (version as a list), C{executable}, C{platform}, C{cwd}.
    @ivar heartbeat: seconds between heartbeats (spec C{heartbeat=}; 0 for
        none): a remote side silent for 3 of them is given up, and fails
        what waits on it with L{GatewayClosed}.
    @ivar window: bytes of items a channel's receiver may hold, not received
        yet, before its sender waits (spec C{window=}; 0: no limit).
    @ivar channelWrapper: C{None}, or a function applied to each channel
        that arrives inside an item, whose result takes the channel's place
        there (the blocking facade hands out its own channels this way).
    @ivar via: the gateway this one was started through (C{via=}), or C{None}.
    @ivar group: the L{txexecnet.Group} it belongs to, or C{None}.
    @ivar output: the L{OutputHandler} that takes what remote code writes
        (C{None}: L{logOutput}, events of the twisted.logger namespace
        C{txexecnet.remote}).
    @ivar codeMayClose: whether code sent by L{remote_exec} may close its
        own channel before it ends; where not, its C{channel.close()}
        raises C{IOError}, as in execnet (L{txexecnet.compat}'s gateways).
    """

    codeMayClose = True

    def __init__(
        self,
        spec: XSpec,
        reactor: Any = None,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        output: OutputHandler | None = None,
    ) -> None:
        """
        @param spec: the spec the gateway is made from (its C{id} names it).
        @param reactor: the reactor to run on (default: the global one).
        @param maxFrameSize: the largest frame either side may send.
        @param output: what takes remote output (see L{output}).
        """
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.spec = spec
        self.id: str = spec.id or "gw?"
        self.remoteinfo: dict[str, Any] = {}
        self.channelWrapper: Callable[[Channel], Any] | None = None
        self.via: Gateway | None = None
        self.group: Any = None
        self.output = output
        self._outputUntold = 0  # bytes of output taken, not yet told
        self._channelOutputs: dict[int, ChannelOutput] = {}
        self.window: int = parseSize(spec.window) if spec.window else DEFAULT_WINDOW
        self.heartbeat: float = (
            parseSeconds(spec.heartbeat) if spec.heartbeat is not None else spec.kind.heartbeat
        )
        self._lastHeard = 0.0
        self._beatCall: Any = None
        self._maxFrameSize = maxFrameSize
        self._channels: dict[int, Channel] = {}
        self._nextId = 1
        self._protocol: FrameProtocol | None = None
        self._connection: IGatewayConnection | None = None
        self._pending: list[tuple[int, int, list[bytes], int]] | None = []
        self._ready: Deferred[Gateway] = Deferred()
        self._terminated = False
        self._terminatedWaiters: list[Deferred[None]] = []
        self._exiting = False
        self._killCall: Any = None
        self._endReason: str | None = None
        self._writable = True
        self._writableWaiters: list[Deferred[None]] = []
        self._toWake: list[Channel] = []
        self._threadSafeTransport: Any = None
        self._backlog = 0
        self._backlogShrunk = threading.Condition()

    def __repr__(self) -> str:
        state = "terminated" if self._terminated else "open"
        return f"<Gateway id={self.id} {state} spec={self.spec}>"

    # --- starting ----------------------------------------------------------

    def start(self, transport: IGatewayTransport) -> Deferred[Gateway]:
        """
        Connect through C{transport}; fire with self once the remote side
        has said hello (a L{Group} calls this).

        @param transport: how to reach the remote interpreter.
        @return: a Deferred firing with this gateway, or failing with
            L{GatewayStartError} saying why not.
        """
        protocol = FrameProtocol(
            self, transport.bootstrap(self._remoteConfig()), self._maxFrameSize
        )
        self._protocol = protocol

        timeouts = []

        def connected(connection: IGatewayConnection) -> None:
            self._connection = connection
            if (self._terminated or self._exiting) and connection is not None:
                connection.kill()  # exit() or the start timeout came first
            elif transport.helloTimeout is not None and not self._ready.called:
                timeouts.append(
                    self.reactor.callLater(
                        transport.helloTimeout,
                        self._startTimedOut,
                        f"no hello within {transport.helloTimeout} seconds of the start"
                        f" of {transport.description}",
                    )
                )

        def failed(f: Failure) -> None:
            if not self._terminated:
                assert f.value is not None
                self._failEverything(f.value)

        transport.connect(self.reactor, protocol, self).addCallbacks(connected, failed)
        timeouts.append(
            self.reactor.callLater(
                START_TIMEOUT,
                self._startTimedOut,
                f"no hello from the remote side within {START_TIMEOUT} seconds",
            )
        )

        def started(result: Any) -> Any:
            for timeout in timeouts:
                if timeout.active():
                    timeout.cancel()
            return result

        return self._ready.addBoth(started)

    def _startTimedOut(self, reason: str) -> None:
        if self._terminated or self._ready.called:
            return
        self._endReason = reason
        if self._connection is not None:
            self.kill()
        else:
            self._failEverything(
                GatewayStartError(f"gateway {self.id} failed to start: {self._endReason}")
            )

    def _remoteConfig(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "env": dict(self.spec.env),
            "window": self.window,
            "heartbeat": self.heartbeat,
            "id": f"{self.id}-worker",  # as execnet names the remote end
        }
        if self.spec.chdir:
            config["chdir"] = self.spec.chdir
        if self.spec.nice:
            config["nice"] = int(self.spec.nice)
        if self._maxFrameSize != DEFAULT_MAX_FRAME_SIZE:
            config["max_frame_size"] = self._maxFrameSize
        if self.spec.execmodel:
            config["execmodel"] = self.spec.execmodel
        if self.spec.logging:
            config["logging"] = parseLogLevel(self.spec.logging)
        return config

    # --- public API ---------------------------------------------------------

    def remote_exec(
        self, source: str | Callable[..., Any] | types.ModuleType, **kwargs: Any
    ) -> Channel:
        """
        Run C{source} in a thread of the remote interpreter, with a global
        C{channel} connected to the channel returned here.

        @param source: a source string; a function, whose source is sent and
            which is called as C{function(channel, **kwargs)}; or a module,
            whose source is sent.
        @param kwargs: keyword arguments for a function (serializable items).
        @raise GatewayClosed: if the gateway has ended.
        @raise ValueError: for a function that cannot run remotely (see
            L{sourceOfFunction}).
        """
        code, filename, callName = _sourceOf(source, kwargs)
        if self._terminated:
            raise GatewayClosed(f"gateway {self.id} is closed: {self._endReason}")
        channel = self.newchannel()
        sent: tuple[Any, ...] = (code, filename, callName, kwargs)
        if not self.codeMayClose:
            sent += ({"code_may_close": False},)
        payload = dumps(sent, self.channelIdOf)
        self.sendFrame(CHANNEL_EXEC, channel.id, [payload])
        return channel

    def remote_status(self, timeout: float | None = None) -> Deferred[RemoteStatus]:
        """
        Ask the remote side how it is: its open channels, the code it runs
        and its execution model.  It answers from its reader, so even a
        main thread busy with remote code does not hold the answer back.

        @param timeout: seconds to wait before failing with
            L{txexecnet.TimeoutError}; C{None} waits for ever.
        @raise GatewayClosed: if the gateway has ended.
        """
        if self._terminated:
            raise GatewayClosed(f"gateway {self.id} is closed: {self._endReason}")
        channel = self.newchannel()
        self.sendFrame(GATEWAY_STATUS, channel.id, [])
        # The remote side closes the channel after its answer: waiting for
        # that too means the channel is gone when the caller has the answer.
        return channel.receive(timeout).addCallback(
            lambda status: channel.waitclose(timeout).addCallback(lambda _: RemoteStatus(**status))
        )

    def newchannel(self) -> Channel:
        """
        A channel with no remote code behind it yet: send it inside an item
        over another channel, and the far side can use it.
        """
        channel = Channel(self, self._nextId)
        self._nextId += 2
        self._channels[channel.id] = channel
        return channel

    def openChannels(self) -> list[Channel]:
        """This gateway's channels that neither side has closed, by id."""
        return [ch for cid, ch in sorted(self._channels.items()) if not ch.isclosed()]

    def exit(self, timeout: float = DEFAULT_EXIT_TIMEOUT) -> Deferred[None]:
        """
        Ask the remote side to finish, and fire once it has ended and (for a
        process) been reaped.

        @param timeout: seconds remote code may go on running before it is
            killed.
        """
        if self._terminated:
            return succeed(None)
        if not self._exiting:
            self._exiting = True
            if self._connection is None or self._pending is not None:
                self.kill()
            else:
                self.sendFrame(GATEWAY_EXIT, 0, [])
                self._connection.closeWrite()
                self._killCall = self.reactor.callLater(timeout, self.kill)
        return self.whenTerminated()

    def kill(self) -> None:
        """
        End the remote side now, without letting its code finish: the
        process is killed, the connection dropped.
        """
        if self._connection is not None and not self._terminated:
            self._connection.kill()

    def whenTerminated(self) -> Deferred[None]:
        """Fire once the remote side has ended, however it ended."""
        if self._terminated:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._terminatedWaiters.append(d)
        return d

    def isTerminated(self) -> bool:
        """Whether the remote side has ended."""
        return self._terminated

    def sendBacklog(self) -> int:
        """
        Bytes that other threads have sent (L{Channel.sendFromThread}) and
        that wait for the reactor to write them: at most about
        L{SEND_BUFFER_LIMIT}.
        """
        return self._backlog

    # --- IChannelHost -------------------------------------------------------

    def channelIdOf(self, channel: Any) -> int | None:
        """
        The id of C{channel} for sending it inside an item, or C{None} for
        an object that is not a channel.
        """
        if IProxy.providedBy(channel):
            channel = channel.wrapped
        if not isinstance(channel, Channel):
            return None
        if channel.gateway is not self:
            raise DumpError("cannot send a channel that belongs to another gateway")
        return channel.id

    def outputOf(self, channelId: int) -> ChannelOutput:
        """
        The output of channel C{channelId}'s code from now on, as an async
        iterator, in place of L{output}; the same one each time.
        """
        iterator = self._channelOutputs.get(channelId)
        if iterator is None:
            iterator = self._channelOutputs[channelId] = ChannelOutput(self.outputTaken)
            channel = self._channels.get(channelId)
            if self._terminated or channel is None or channel.endError() is not None:
                iterator.end()
        return iterator

    def outputTaken(self, size: int) -> None:
        """
        C{size} bytes of output (or log records) were taken: tell the
        remote side every quarter window, so it may send more.

        @param size: the bytes taken, as they were on the wire.
        """
        if not self.window:
            return
        self._outputUntold += size
        if self._outputUntold >= self.window >> 2 and not self._terminated:
            size, self._outputUntold = self._outputUntold, 0
            self.sendFrame(OUTPUT_CREDIT, 0, [CREDIT.pack(size)], CREDIT.size)

    def stderrReceived(self, text: str) -> None:
        """
        Lines the remote process wrote to its stderr (fd 2), as its
        transport read them: output of no channel.

        @param text: the lines, decoded.
        """
        self._outputReceived(None, "stderr", text, 0)

    def _outputReceived(self, channelId: int | None, stream: str, text: str, size: int) -> None:
        iterator = self._channelOutputs.get(channelId) if channelId is not None else None
        if iterator is not None:
            iterator.put(stream, text, size)
            return
        handler = self.output or logOutput
        try:
            result = handler(RemoteOutput(self.id, channelId, stream, text))
        except Exception:
            log.failure("the output handler of {gateway} failed", gateway=self.id)
            result = None
        if isinstance(result, Deferred):

            def done(outcome: Any) -> None:
                if isinstance(outcome, Failure):
                    log.failure("the output handler of {gateway} failed", outcome, gateway=self.id)
                self.outputTaken(size)

            result.addBoth(done)
        else:
            self.outputTaken(size)

    def _endChannelOutput(self, channelId: int) -> None:
        iterator = self._channelOutputs.pop(channelId, None)
        if iterator is not None:
            iterator.end()

    def channelEnded(self, channel: Channel) -> None:
        """C{channel} receives nothing more: forget it."""
        if self._channels.get(channel.id) is channel:
            del self._channels[channel.id]

    def sendFrame(
        self, msgtype: int, channelId: int, parts: list[bytes], size: int | None = None
    ) -> Deferred[None]:
        """
        Send a frame whose payload is C{parts} (see L{dumps_parts}); the
        Deferred fires when the transport can take more.
        """
        if size is None or size > self._maxFrameSize:
            size = self._frameSize(parts)
        if self._terminated:
            return fail(GatewayClosed(f"gateway {self.id} is closed: {self._endReason}"))
        if self._pending is not None:
            self._pending.append((msgtype, channelId, parts, size))
        else:
            assert self._protocol is not None
            self._protocol.sendFrame(msgtype, channelId, parts, size)
            if self._writable:
                return succeed(None)
        d: Deferred[None] = Deferred()
        self._writableWaiters.append(d)
        return d

    def sendFrameFromThread(
        self, msgtype: int, channelId: int, parts: list[bytes], size: int | None = None
    ) -> None:
        """
        L{sendFrame} from another thread: written from the calling thread
        when the transport takes writes from any thread, else handed to the
        reactor, waiting while more than L{SEND_BUFFER_LIMIT} bytes are.
        """
        if size is None or size > self._maxFrameSize:
            size = self._frameSize(parts)
        transport = self._threadSafeTransport
        if transport is not None:
            # Written straight from this thread: no hop through the reactor.
            transport.waitForRoom(SEND_BUFFER_LIMIT)
            assert self._protocol is not None
            self._protocol.sendFrame(msgtype, channelId, parts, size)
            return
        with self._backlogShrunk:
            while self._backlog > SEND_BUFFER_LIMIT and not self._terminated:
                self._backlogShrunk.wait(0.1)
            self._backlog += size
        self.reactor.callFromThread(self._sendForThread, msgtype, channelId, parts, size)

    def _sendForThread(self, msgtype: int, channelId: int, parts: list[bytes], size: int) -> None:
        def sent(_: object) -> None:
            with self._backlogShrunk:
                self._backlog -= size
                self._backlogShrunk.notify_all()

        self.sendFrame(msgtype, channelId, parts).addBoth(sent)

    def wakeAfterRead(self, channel: Channel) -> None:
        """Wake C{channel}'s receivers once the current read is delivered."""
        self._toWake.append(channel)

    def _frameSize(self, parts: list[bytes]) -> int:
        """The payload size of a frame of C{parts}; L{DumpError} if too large."""
        size = sum(map(len, parts))
        if size > self._maxFrameSize:
            raise DumpError(
                f"item of {size} bytes exceeds the frame limit of {self._maxFrameSize} bytes"
            )
        return size

    def _channelFromItem(self, channelId: int) -> Any:
        channel = self._channelFor(channelId)
        wrap = self.channelWrapper
        return channel if wrap is None else wrap(channel)

    def _channelFor(self, channelId: int) -> Channel:
        channel = self._channels.get(channelId)
        if channel is None:
            channel = self._channels[channelId] = Channel(self, channelId)
        return channel

    # --- IFrameReceiver -----------------------------------------------------

    def writableChanged(self, writable: bool) -> None:
        """The transport can take more, or is full."""
        self._writable = writable
        if writable:
            waiters, self._writableWaiters = self._writableWaiters, []
            for d in waiters:
                d.callback(None)

    def readDelivered(self) -> None:
        """Every frame of one read is delivered: wake the receivers now."""
        if self.heartbeat:
            self._lastHeard = self.reactor.seconds()
        if self._toWake:
            channels, self._toWake = self._toWake, []
            for channel in channels:
                channel.wakeReceivers()

    def frameReceived(self, msgtype: int, channelId: int, payload: memoryview) -> None:
        """Act on one frame from the remote side."""
        if msgtype == CHANNEL_DATA:
            if channelId % 2 and channelId not in self._channels:
                return  # a channel we have closed: late data is dropped
            channel = self._channelFor(channelId)
            try:
                item = loads(payload, self._channelFromItem)
            except LoadError as e:
                channel.receiveEnded(e)
                return
            channel.itemReceived(item, len(payload))
        elif msgtype == CHANNEL_CREDIT:
            sending = self._channels.get(channelId)
            if len(payload) != CREDIT.size:
                self._brokenProtocol(f"a credit frame of {len(payload)} bytes")
            elif sending is not None:
                sending.creditReceived(CREDIT.unpack(payload)[0])
        elif msgtype == OUTPUT:
            stream = STREAM_NAMES.get(payload[0]) if len(payload) else None
            if stream is None:
                self._brokenProtocol("an output frame of no known stream")
                return
            text = bytes(payload[1:]).decode("utf-8", "replace")
            self._outputReceived(channelId or None, stream, text, len(payload))
        elif msgtype == LOG_RECORD:
            try:
                fields = loads(payload)
            except LoadError as e:
                fields = e
            if not emitLogRecord(self.id, channelId or None, fields):
                log.warn(
                    "{gateway}: a malformed log record: {fields!r}", gateway=self.id, fields=fields
                )
            self.outputTaken(len(payload))
        elif msgtype in (CHANNEL_CLOSE, CHANNEL_LAST_MESSAGE):
            self._endChannelOutput(channelId)
            ending = self._channels.get(channelId)
            if ending is not None:
                ending.receiveEnded(None)
        elif msgtype == CHANNEL_CLOSE_ERROR:
            self._endChannelOutput(channelId)
            ending = self._channels.get(channelId)
            if ending is not None:
                ending.receiveEnded(error_from_payload(payload, self.id))
        elif msgtype == HELLO:
            self._helloReceived(payload)
        elif msgtype in (GATEWAY_EXIT, HEARTBEAT):
            pass  # a heartbeat's news is that it came: see readDelivered
        else:
            self._brokenProtocol(f"unexpected message type {msgtype} from the remote side")

    def _helloReceived(self, payload: memoryview) -> None:
        if self._pending is None:
            self._brokenProtocol("a second hello frame")
            return
        try:
            info = loads(payload)
        except LoadError as e:
            self._brokenProtocol(f"bad hello frame: {e}")
            return
        if not isinstance(info, dict) or info.get("version") != PROTOCOL_VERSION:
            version = info.get("version") if isinstance(info, dict) else info
            self._brokenProtocol(f"remote protocol version {version!r} is not {PROTOCOL_VERSION}")
            return
        self.remoteinfo = info
        pending, self._pending = self._pending, None
        assert self._protocol is not None
        transport = self._protocol.transport
        if IThreadSafeTransport.providedBy(transport):
            self._threadSafeTransport = transport
        for frame in pending:
            self._protocol.sendFrame(*frame)
        self.writableChanged(self._writable)
        log.debug("{gateway} ready: {info}", gateway=self.id, info=info)
        if self.heartbeat:
            self._lastHeard = self.reactor.seconds()
            self._beatCall = self.reactor.callLater(self.heartbeat, self._beat)
        self._ready.callback(self)

    def _beat(self) -> None:
        """Send a heartbeat; give the remote side up if it was silent for 3."""
        silent = self.reactor.seconds() - self._lastHeard
        if silent >= 3 * self.heartbeat:
            self._endReason = (
                f"no sign of the remote side for {silent:.1f} s "
                f"(3 heartbeats of {self.heartbeat:g} s)"
            )
            log.warn("{gateway}: {why}; killing it", gateway=self.id, why=self._endReason)
            connection = self._connection
            self._failEverything(GatewayClosed(f"gateway {self.id} closed: {self._endReason}"))
            if connection is not None:
                connection.kill()
            return
        self.sendFrame(HEARTBEAT, 0, [], 0)
        self._beatCall = self.reactor.callLater(self.heartbeat, self._beat)

    def _brokenProtocol(self, why: str) -> None:
        assert self._protocol is not None
        self._protocol.protocolError(why)

    def protocolFailed(self, why: str) -> None:
        """The remote side broke the protocol: drop it, failing every waiter."""
        log.error("{gateway}: protocol error: {why}", gateway=self.id, why=why)
        if self._endReason is None:
            self._endReason = f"protocol error: {why}"
        self.kill()

    def connectionEnded(self, reason: Failure) -> None:
        """The connection is gone: fail whatever still waits on it."""
        if self._terminated:
            return
        self._terminated = True
        if self._killCall is not None and self._killCall.active():
            self._killCall.cancel()
        if self._endReason is None:
            self._endReason = _describeEnd(reason, self._exiting)
        stderr = self._connection.stderrTail() if self._connection is not None else ""
        if not self._ready.called:
            message = f"gateway {self.id} failed to start: {self._endReason}"
            if stderr:
                message += f"; remote stderr:\n{stderr}"
            self._failEverything(GatewayStartError(message))
        else:
            self._failEverything(GatewayClosed(f"gateway {self.id} closed: {self._endReason}"))

    def _failEverything(self, error: BaseException) -> None:
        """The gateway has ended: fail its start, its channels and its waiters."""
        self._terminated = True
        if self._beatCall is not None and self._beatCall.active():
            self._beatCall.cancel()
        if self._endReason is None:
            self._endReason = str(error)
        if not self._ready.called:
            self._ready.errback(Failure(error))
        for channel in list(self._channels.values()):
            channel.receiveEnded(error)
        self._channels.clear()
        for channelId in list(self._channelOutputs):
            self._endChannelOutput(channelId)
        self.writableChanged(True)
        with self._backlogShrunk:
            self._backlogShrunk.notify_all()
        waiters, self._terminatedWaiters = self._terminatedWaiters, []
        for d in waiters:
            d.callback(None)


def _describeEnd(reason: Failure, exiting: bool) -> str:
    value = reason.value
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            return f"remote process killed by signal {value.signal}"
        return f"remote process exited with status {value.exitCode}"
    if isinstance(value, ProcessDone):
        return "remote process exited" + (" after exit()" if exiting else "")
    if isinstance(value, ConnectionDone):
        return "connection closed" + (" after exit()" if exiting else " by the remote side")
    return f"connection lost: {value}"


def _sourceOf(
    source: str | Callable[..., Any] | types.ModuleType, kwargs: dict[str, Any]
) -> tuple[str, str, str | None]:
    """What C{remote_exec} sends for C{source}: (code, filename, name to call)."""
    if isinstance(source, str):
        if kwargs:
            raise TypeError("keyword arguments are only accepted with a function")
        return textwrap.dedent(source), "<remote exec>", None
    if isinstance(source, types.FunctionType):
        code, filename = sourceOfFunction(source)
        return code, filename, source.__name__
    if isinstance(source, types.ModuleType):
        if kwargs:
            raise TypeError("keyword arguments are only accepted with a function")
        return inspect.getsource(source), getattr(source, "__file__", None) or source.__name__, None
    raise TypeError(
        f"remote_exec() takes a source string, a function or a module, not {type(source).__name__}"
    )


def sourceOfFunction(function: types.FunctionType) -> tuple[str, str]:
    """
    What C{remote_exec(function)} sends: the function's source, at its own
    line numbers, and its file's name.  The function runs remotely with
    nothing of its module, so it must be self-contained.

    @param function: the function to send.
    @raise ValueError: for a lambda, a closure, a function whose first
        parameter is not C{channel}, one that reads global names other
        than builtins, or one whose source cannot be found.
    """
    name = function.__name__
    if name == "<lambda>":
        raise ValueError("remote_exec() needs a named function, not a lambda")
    if function.__closure__:
        raise ValueError(f"function {name} is a closure; only plain functions can be sent")
    params = list(inspect.signature(function).parameters)
    if not params or params[0] != "channel":
        raise ValueError(f"function {name} must take 'channel' as its first argument")
    missing = globalNames(function.__code__)
    if missing:
        raise ValueError(
            f"function {name} reads the global names {', '.join(missing)}, which the remote "
            "side does not have: import or define them inside the function"
        )
    try:
        lines, first = inspect.getsourcelines(function)
    except OSError as e:
        raise ValueError(f"the source of function {name} cannot be found: {e}") from None
    # Sent at its own line numbers in its own file's name, so remote
    # tracebacks point at the lines the caller wrote.
    code = "\n" * (first - 1) + textwrap.dedent("".join(lines))
    return code, inspect.getsourcefile(function) or f"<remote function {name}>"


def globalNames(code: types.CodeType) -> list[str]:
    """
    The global names that C{code}, and the functions and classes defined in
    it, read without defining them, builtins left out, in the order of
    their first use.

    @param code: a function's code object.
    """
    names: list[str] = []
    defined: set[str] = set()
    _collectGlobals(code, names, defined)
    return [n for n in names if n not in defined]


def _collectGlobals(code: types.CodeType, names: list[str], defined: set[str]) -> None:
    instructions = list(dis.get_instructions(code))
    # A class body reads its own names with LOAD_NAME.
    local = {i.argval for i in instructions if i.opname == "STORE_NAME"}
    for i in instructions:
        if i.opname == "STORE_GLOBAL":
            defined.add(i.argval)
        elif i.opname == "LOAD_GLOBAL" or (i.opname == "LOAD_NAME" and i.argval not in local):
            if i.argval not in names and i.argval not in vars(builtins):
                names.append(i.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _collectGlobals(const, names, defined)

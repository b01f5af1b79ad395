"""
The SSH session channel that carries one gateway: the remote interpreter's
stdout feeds the framing protocol, its stderr the log, and writes are
queued without copying and sent as the server's window allows.
"""

from __future__ import annotations

import signal
import struct
from collections import deque
from typing import Any, Sequence

from twisted.conch.ssh.channel import SSHChannel
from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ...errors import GatewayStartError
from ...interfaces import IGatewayConnection
from .._stderr import StderrLog
from ..flow import ProducerValve
from .connection import SshConnection

__all__ = [
    "GatewaySession",
    "CommandSession",
    "CHANNEL_WINDOW",
    "CHANNEL_MAX_PACKET",
    "HIGH_WATER",
    "LOW_WATER",
    "KILL_GRACE",
]

log = Logger(namespace="txexecnet.ssh")

#: Bytes the remote side may send before we re-open the window (per
#: channel).  Conch's default of 128 KiB stalls the sender on every few
#: packets; OpenSSH uses 2 MiB.
CHANNEL_WINDOW = 2 * 1024 * 1024

#: The largest data packet we accept.  OpenSSH's sshd sends at most 32 KiB
#: per packet on session channels whatever we allow.
CHANNEL_MAX_PACKET = 32 * 1024

#: Unsent bytes on one channel above which the gateway's senders are
#: paused, and below which they are resumed.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024

#: Seconds a killed session waits for the server to confirm the close
#: before the whole (then unresponsive) connection is dropped.
KILL_GRACE = 10.0


@implementer(IGatewayConnection, IConsumer)
class GatewaySession(SSHChannel):
    """
    A session channel running the remote interpreter for one gateway: its
    stdout feeds the framing protocol, its stderr the log, and writes are
    queued without copying and sent as the server's window allows.  When
    more than L{HIGH_WATER} bytes wait, the registered producer (the
    framing protocol) is paused until they drop below L{LOW_WATER}.
    """

    name = b"session"
    conn: SshConnection  # set by Conch before the channel is used

    def __init__(
        self,
        command: bytes,
        frames: Any,
        gateway: Any,
        reactor: Any,
        opened: Deferred[IGatewayConnection],
        where: str,
    ) -> None:
        """
        @param command: the remote command that starts the interpreter.
        @param frames: the framing protocol.
        @param gateway: the gateway (its id and, to kill it, its remote pid).
        @param reactor: the reactor to run on.
        @param opened: fires with this session once the command runs, or fails.
        @param where: the target, for messages.
        """
        SSHChannel.__init__(self, localWindow=CHANNEL_WINDOW, localMaxPacket=CHANNEL_MAX_PACKET)
        self.frames = frames
        self.stderr = StderrLog(gateway.id, gateway.stderrReceived)
        self._gateway = gateway
        self._command = command
        self._reactor = reactor
        self._opened = opened
        self._where = where
        self._running = False
        self._queue: deque[bytes | memoryview] = deque()
        self._queued = 0
        self._valve = ProducerValve("an SSH gateway session")
        self._eofWanted = False
        self._end: BaseException | None = None
        self._killCall: Any = None

    # opening

    def channelOpen(self, specificData: bytes) -> None:
        d = self.conn.sendRequest(self, b"exec", NS(self._command), wantReply=True)
        d.addCallbacks(self._execStarted, self._execRefused)

    def openFailed(self, reason: Any) -> None:
        lost = self.conn.lostReason
        if lost is not None:
            why = lost.getErrorMessage()
        else:
            value = reason.value if isinstance(reason, Failure) else reason
            why = f"the server refused a session channel: {value}"
        self.conn.release()
        self._opened.errback(GatewayStartError(why))

    def _execStarted(self, ignored: object) -> None:
        self._running = True
        try:
            self.frames.makeConnection(self)
        except Exception:
            self._opened.errback()
            self.kill()
            return
        self._opened.callback(self)

    def _execRefused(self, reason: Failure) -> None:
        lost = self.conn.lostReason
        if lost is not None:
            why = lost.getErrorMessage()
        else:
            why = f"the server refused to run the remote python: {reason.getErrorMessage()}"
        self._opened.errback(GatewayStartError(why))
        self.conn.sendClose(self)

    # incoming

    def dataReceived(self, data: bytes) -> None:
        self.frames.dataReceived(data)

    def extReceived(self, dataType: int, data: bytes) -> None:
        if dataType == EXTENDED_DATA_STDERR:
            self.stderr.received(data)
        else:
            log.debug("ignoring extended data of type {type}", type=dataType)

    def request_exit_status(self, data: bytes) -> int:
        """
        @param data: the request's payload: the exit status.
        """
        (status,) = struct.unpack(">L", data[:4])
        self._end = ProcessDone(status) if status == 0 else ProcessTerminated(exitCode=status)
        return 1

    def request_exit_signal(self, data: bytes) -> int:
        """
        @param data: the request's payload: the signal's name first.
        """
        name, rest = getNS(data)
        signum = getattr(signal, "SIG" + name.decode("ascii", "replace"), None)
        self._end = ProcessTerminated(signal=int(signum) if signum is not None else name.decode())
        return 1

    def eofReceived(self) -> None:
        pass

    def closeReceived(self) -> None:
        # Nothing more can be delivered: drop what waits and close our side.
        self._queue.clear()
        self._queued = 0
        self._eofWanted = False
        self.conn.sendClose(self)

    def closed(self) -> None:
        if self._killCall is not None and self._killCall.active():
            self._killCall.cancel()
        self._queue.clear()
        self._queued = 0
        self.stderr.flush()
        self.conn.release()
        if not self._running:
            return  # the exec reply's errback reports it
        self._running = False
        reason = self._end
        if reason is None:
            lost = self.conn.lostReason
            reason = lost.value if lost is not None else ConnectionDone("ssh channel closed")
        self.frames.connectionLost(Failure(reason))

    # outgoing (ITransport, IConsumer)

    def write(self, data: bytes) -> None:
        if data and not self.localClosed:
            self._queue.append(data)
            self._queued += len(data)
            self._flush()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        if not self.localClosed:
            for chunk in data:
                if chunk:
                    self._queue.append(chunk)
                    self._queued += len(chunk)
            self._flush()

    def addWindowBytes(self, data: int) -> None:
        self.remoteWindowLeft += data
        self._flush()

    def _flush(self) -> None:
        while self._queue and self.remoteWindowLeft > 0 and not self.localClosed:
            packet = self._nextPacket(min(self.remoteWindowLeft, self.remoteMaxPacket))
            self.conn.sendData(self, packet)
            self.remoteWindowLeft -= len(packet)
            self._queued -= len(packet)
        if not self._queue:
            if self._eofWanted:
                self._eofWanted = False
                self.conn.sendEOF(self)
            if self.closing:
                self.conn.sendClose(self)
        self._steerProducer()

    def _nextPacket(self, limit: int) -> bytes | memoryview:
        """
        Take up to C{limit} queued bytes: a slice of one big write, or several
        small ones joined.
        """
        queue = self._queue
        first = queue[0]
        if len(first) >= limit or len(queue) == 1:
            if len(first) <= limit:
                return queue.popleft()
            view = memoryview(first)
            queue[0] = view[limit:]
            return view[:limit]
        pieces = []
        size = 0
        while queue and size < limit:
            chunk = queue[0]
            take = min(len(chunk), limit - size)
            if take == len(chunk):
                pieces.append(queue.popleft())
            else:
                view = memoryview(chunk)
                pieces.append(view[:take])
                queue[0] = view[take:]
            size += take
        return b"".join(pieces)

    def _steerProducer(self) -> None:
        self._valve.steer(self._queued > HIGH_WATER, self._queued <= LOW_WATER)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._valve.register(producer, streaming)
        self._steerProducer()

    def unregisterProducer(self) -> None:
        self._valve.unregister()

    def loseConnection(self) -> None:
        self.closing = True
        if not self._queue:
            self.conn.sendClose(self)

    # IGatewayConnection

    def closeWrite(self) -> None:
        if not self.localClosed:
            self._eofWanted = True
            self._flush()

    def kill(self) -> None:
        """
        SIGKILL the remote interpreter and close the channel; if the server
        does not confirm within L{KILL_GRACE} seconds, drop the whole
        connection, which is then unresponsive.

        The standard way is a C{signal} request, but OpenSSH's sshd refuses
        it for root logins (and versions before 7.9 ignore it), so the
        interpreter, whose pid its hello told us, is also killed with
        C{kill} run in a channel of its own.
        """
        if self.localClosed or self._killCall is not None:
            return
        self._queue.clear()
        self._queued = 0
        self.conn.sendRequest(self, b"signal", NS(b"KILL"))
        pid = self._gateway.remoteinfo.get("pid")
        if self._end is None and isinstance(pid, int):
            self.conn.openChannel(CommandSession(b"kill -KILL %d" % (pid,)))
        self.conn.sendClose(self)
        if self.conn.channels.get(self.id) is self:
            self._killCall = self._reactor.callLater(KILL_GRACE, self._abandon)

    def _abandon(self) -> None:
        log.warn(
            "{where}: the server did not close a killed session; dropping the connection",
            where=self._where,
        )
        self.conn.abort()

    def stderrTail(self) -> str:
        return self.stderr.tail()

    def logPrefix(self) -> str:
        return f"txexecnet-ssh {self._where}"


class CommandSession(SSHChannel):
    """A session channel that runs one command, ignores its output, and closes."""

    name = b"session"
    conn: SshConnection  # set by Conch before the channel is used

    def __init__(self, command: bytes) -> None:
        """
        @param command: the command to run.
        """
        SSHChannel.__init__(self)
        self._command = command

    def channelOpen(self, specificData: bytes) -> None:
        d = self.conn.sendRequest(self, b"exec", NS(self._command), wantReply=True)
        d.addErrback(
            lambda f: log.debug(
                "{command!r} not run: {why}", command=self._command, why=f.getErrorMessage()
            )
        )

    def openFailed(self, reason: Any) -> None:
        log.debug("no channel for {command!r}: {why}", command=self._command, why=reason)

    def dataReceived(self, data: bytes) -> None:
        pass

    def extReceived(self, dataType: int, data: bytes) -> None:
        pass

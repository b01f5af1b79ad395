"""
A frame-carrying transport over a pair of pipes, faster than Twisted's
process pipes for this job.

Twisted's process transport reads 8 KiB per reactor turn and writes only on
the next turn; a gateway moving megabyte items spends its time there.  This
transport reads as much as the pipe holds (adapting the read size), writes
immediately when the pipe has room, and may be written to from any thread, so
the blocking facade sends without a hop through the reactor.  Pipes are
enlarged to 1 MiB where Linux allows, which cuts wake-ups on both sides.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Sequence

from twisted.internet.address import _ProcessAddress
from twisted.internet.interfaces import IConsumer, IReadDescriptor, ITransport, IWriteDescriptor
from twisted.python import threadable
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["PipeTransport", "makePipe", "spawnWithPipes"]

_F_SETPIPE_SZ = 1031
PIPE_SIZE = 1024 * 1024
_MIN_READ = 65536
_MAX_READ = 4 * 1024 * 1024

#: Unsent bytes above which the registered producer is paused...
HIGH_WATER = 4 * 1024 * 1024
#: ...and below which it is resumed.
LOW_WATER = 1024 * 1024


def makePipe() -> tuple[int, int]:
    """A close-on-exec pipe, enlarged to L{PIPE_SIZE} where possible."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        import fcntl

        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass  # a smaller pipe only costs speed
    return r, w


def spawnWithPipes(
    reactor: Any,
    processProtocol: Any,
    executable: str,
    args: list[str],
    env: dict[str, str] | None,
    protocol: Any,
    onReadEnd: Callable[[], None],
) -> PipeTransport:
    """
    Spawn a process whose stdin and stdout are pipes of a new
    L{PipeTransport} delivering to C{protocol}; its stderr (and its end) go
    to C{processProtocol} as usual.  Call C{startReading()} on the result.

    @raise OSError: if the process cannot be started.
    """
    stdinRead, stdinWrite = makePipe()
    stdoutRead, stdoutWrite = makePipe()
    pipes = PipeTransport(reactor, stdoutRead, stdinWrite, protocol, onReadEnd)
    try:
        reactor.spawnProcess(
            processProtocol, executable, args, env=env,
            childFDs={0: stdinRead, 1: stdoutWrite, 2: "r"},
        )
    except OSError:
        os.close(stdinWrite)
        os.close(stdoutRead)
        raise
    finally:
        os.close(stdinRead)
        os.close(stdoutWrite)
    return pipes


@implementer(ITransport, IConsumer, IReadDescriptor, IWriteDescriptor)
class PipeTransport:
    """
    The transport of a L{FrameProtocol}: reads C{readFd}, writes C{writeFd}.

    @ivar threadSafeWrites: True: C{write} and C{writeSequence} may be called
        from any thread.
    """

    threadSafeWrites = True

    def __init__(
        self, reactor: Any, readFd: int, writeFd: int, protocol: Any, onReadEnd: Callable[[], None]
    ) -> None:
        self._reactor = reactor
        self._readFd = readFd
        self._writeFd = writeFd
        self.protocol = protocol
        self._onReadEnd = onReadEnd
        self._readSize = _MIN_READ
        # Protocols that offer a buffer (FrameProtocol) are read into it.
        self._readOnce = self._readInto if hasattr(protocol, "getReadBuffer") else self._readChunk
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._buffer: list[Any] = []
        self._buffered = 0
        self._writing = False
        self._closeWhenDrained = False
        self._producer: Any = None
        self._producerPaused = False
        self._writeEnd = _WriteEnd(self)
        os.set_blocking(writeFd, False)
        os.set_blocking(readFd, False)

    # --- reading ------------------------------------------------------------

    def startReading(self) -> None:
        """Begin delivering what arrives to the protocol."""
        if self._readFd >= 0:
            self._reactor.addReader(self)

    def fileno(self) -> int:
        # Reads and writes use different fds, and the reactor asks each
        # registered object for one: this is the read side; _WriteEnd the other.
        return self._readFd

    def doRead(self) -> Any:
        self._readOnce()
        return None

    def _readChunk(self) -> bool:
        """
        Read what the pipe holds (up to an adaptive size) and deliver it;
        return whether anything was read.
        """
        try:
            data = os.read(self._readFd, self._readSize)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._endReading()
            return False
        if len(data) == self._readSize and self._readSize < _MAX_READ:
            self._readSize *= 2
        elif len(data) < self._readSize // 4 and self._readSize > _MIN_READ:
            self._readSize //= 2
        self.protocol.dataReceived(data)
        return True

    def _readInto(self) -> bool:
        """
        Read straight into the protocol's buffer (see
        L{FrameProtocol.getReadBuffer}); return whether anything was read.
        """
        try:
            n = os.readv(self._readFd, [self.protocol.getReadBuffer()])
        except BlockingIOError:
            return False
        except OSError:
            n = 0
        if not n:
            self._endReading()
            return False
        self.protocol.bufferFilled(n)
        return True

    def drain(self) -> None:
        """Deliver what the pipe still holds, then stop reading."""
        while self._readFd >= 0 and self._readOnce():
            pass
        self._endReading()

    def _endReading(self) -> None:
        if self._readFd < 0:
            return
        self._reactor.removeReader(self)
        os.close(self._readFd)
        self._readFd = -1
        self._onReadEnd()

    def connectionLost(self, reason: Failure) -> None:
        self._endReading()

    def logPrefix(self) -> str:
        return "txexecnet-pipe"

    def pauseProducing(self) -> None:
        """Stop reading: the remote side blocks once the pipe is full."""
        if self._readFd >= 0:
            self._reactor.removeReader(self)

    def resumeProducing(self) -> None:
        self.startReading()

    # --- writing ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.writeSequence((data,))

    def writeSequence(self, data: Sequence[bytes]) -> None:
        pause = startWriter = False
        with self._lock:
            if self._writeFd < 0 or self._closeWhenDrained:
                return
            parts = [memoryview(d).cast("B") for d in data if len(d)]
            if not self._buffer:
                parts = self._writeSome(parts)
            if parts:
                self._buffer.extend(parts)
                self._buffered += sum(len(p) for p in parts)
                startWriter = not self._writing
                self._writing = True
                if self._buffered > HIGH_WATER and not self._producerPaused:
                    pause = self._producerPaused = self._producer is not None
        if startWriter:
            self._inReactor(self._reactor.addWriter, self._writeEnd)
        if pause:
            self._inReactor(self._producer.pauseProducing)

    def _writeSome(self, parts: list[memoryview]) -> list[memoryview]:
        """Write what the pipe takes now; return what is left.  Lock held."""
        while parts:
            try:
                n = os.writev(self._writeFd, parts[:512])
            except BlockingIOError:
                break
            except OSError:
                # The reader is gone (EPIPE): the process's end is reported
                # by the process protocol; what is unsent is moot.
                return []
            while n:
                first = parts[0]
                if n >= len(first):
                    n -= len(first)
                    parts.pop(0)
                else:
                    parts[0] = first[n:]
                    n = 0
        return parts

    def doWrite(self) -> Any:
        resume = False
        with self._lock:
            if self._writeFd >= 0:
                self._buffer = self._writeSome(self._buffer)
            else:
                self._buffer = []
            self._buffered = sum(len(p) for p in self._buffer)
            done = not self._buffer
            if done:
                self._writing = False
            if self._producerPaused and self._buffered < LOW_WATER:
                self._producerPaused = False
                resume = self._producer is not None
            self._drained.notify_all()
            closeNow = done and self._closeWhenDrained
        if done:
            self._reactor.removeWriter(self._writeEnd)
        if closeNow:
            self._closeWrite()
        if resume:
            self._producer.resumeProducing()
        return None

    def waitForRoom(self, limit: int) -> None:
        """Block the calling (non-reactor) thread while more than C{limit} bytes are unsent."""
        if self._buffered <= limit:
            return  # the common case, without the lock: a stale value costs one item's delay
        with self._drained:
            while self._buffered > limit and self._writeFd >= 0:
                self._drained.wait(1.0)

    def _inReactor(self, f: Callable[..., Any], *args: Any) -> None:
        if threadable.isInIOThread():
            f(*args)
        else:
            self._reactor.callFromThread(f, *args)

    def loseWriteConnection(self) -> None:
        """Close the write side once everything buffered is written."""
        with self._lock:
            self._closeWhenDrained = True
            closeNow = not self._buffer
        if closeNow:
            self._closeWrite()

    def _closeWrite(self) -> None:
        with self._lock:
            fd, self._writeFd = self._writeFd, -1
            self._drained.notify_all()
        if fd >= 0:
            os.close(fd)

    def loseConnection(self) -> None:
        """Close both sides now, dropping unsent data."""
        if self._writing:
            self._reactor.removeWriter(self._writeEnd)
            self._writing = False
        self._closeWrite()
        self._endReading()

    abortConnection = loseConnection

    # --- IConsumer ----------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def getPeer(self) -> _ProcessAddress:
        return _ProcessAddress()

    def getHost(self) -> _ProcessAddress:
        return _ProcessAddress()


@implementer(IWriteDescriptor)
class _WriteEnd:
    """The write fd of a L{PipeTransport}, as the reactor sees it."""

    def __init__(self, transport: PipeTransport) -> None:
        self._transport = transport

    def fileno(self) -> int:
        return self._transport._writeFd

    def doWrite(self) -> Any:
        return self._transport.doWrite()

    def connectionLost(self, reason: Failure) -> None:
        self._transport._closeWrite()

    def logPrefix(self) -> str:
        return "txexecnet-pipe-write"

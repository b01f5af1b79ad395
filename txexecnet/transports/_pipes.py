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
from typing import Any, Callable, Iterable

from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IReadDescriptor,
    ITransport,
    IWriteDescriptor,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import IBufferedReceiver, IThreadSafeTransport

__all__ = ["PipeAddress", "PipeTransport", "makePipe", "READS_PER_TURN"]

_F_SETPIPE_SZ = 1031
PIPE_SIZE = 1024 * 1024
_MIN_READ = 65536
_MAX_READ = 4 * 1024 * 1024
#: Reads made in one reactor turn while each fills the room the protocol
#: offers: the protocol offers about a frame (or 64 KiB) at a time, and a
#: reactor turn per read would cost more than the reads.
READS_PER_TURN = 16

#: Bytes of small writes made in one reactor turn that are gathered before
#: they are written.
CORK_LIMIT = 65536
#: At most this many buffers go to one writev (Linux's IOV_MAX is 1024).
_IOV_MAX = 512

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


@implementer(IAddress)
class PipeAddress:
    """The address of either end of a pipe: there is nothing to say."""

    def __repr__(self) -> str:
        return "<PipeAddress>"


@implementer(ITransport, IConsumer, IThreadSafeTransport, IReadDescriptor, IWriteDescriptor)
class PipeTransport:
    """
    The transport of a L{FrameProtocol}: reads C{readFd}, writes C{writeFd}.
    C{write} and C{writeSequence} may be called from any thread.

    It is made in the thread that runs C{reactor}.
    """

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
        self._readOnce = (
            self._readInto if IBufferedReceiver.providedBy(protocol) else self._readChunk
        )
        self._reactorThread = threading.get_ident()
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._buffer: list[Any] = []
        self._buffered = 0
        self._writing = False
        self._turnOpen = False
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
        L{FrameProtocol.getReadBuffer}), again while each read fills the
        room offered; return whether anything was read.
        """
        got = False
        for _ in range(READS_PER_TURN):
            room = self.protocol.getReadBuffer()
            try:
                n = os.readv(self._readFd, [room])
            except BlockingIOError:
                break
            except OSError:
                n = 0
            if not n:
                self._endReading()
                break
            got = True
            self.protocol.bufferFilled(n)
            if n < len(room) or self._readFd < 0:
                break
        return got

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

    def writeSequence(self, data: Iterable[bytes]) -> None:
        inReactor = threading.get_ident() == self._reactorThread
        pause = flushNow = False
        with self._lock:
            if self._writeFd < 0 or self._closeWhenDrained:
                return
            for part in data:
                d = part if type(part) is bytes else memoryview(part).cast("B")
                if d:
                    self._buffer.append(d)
                    self._buffered += len(d)
            if self._writing:
                # The reactor writes when the pipe has room.
                pause = self._pauseWhenFull()
            elif inReactor and self._turnOpen and self._buffered < CORK_LIMIT:
                # Later small writes of the same reactor turn are gathered and
                # go out together at its end (see _endTurn): one syscall here,
                # and one read on the other side, for a burst of frames.
                return
            else:
                # The first write of a turn goes at once, so a lone reply
                # waits for nothing; so do writes from other threads (there
                # is no turn to wait for) and bursts that reach CORK_LIMIT.
                if inReactor and not self._turnOpen:
                    self._turnOpen = True
                    self._reactor.callLater(0, self._endTurn)
                self._writeSome()
                if not self._buffer:
                    return
                flushNow = True  # the rest waits for room: see _flush
        if flushNow:
            self._flush()
        elif pause:
            self._inReactor(self._syncProducer)

    def _writeSome(self) -> None:
        """Write what the pipe takes now from the buffer.  Lock held."""
        parts = self._buffer
        done = 0
        while done < len(parts):
            try:
                n = os.writev(self._writeFd, parts[done : done + _IOV_MAX])
            except BlockingIOError:
                break
            except OSError:
                # The reader is gone (EPIPE): the process's end is reported
                # by the process protocol; what is unsent is moot.
                done = len(parts)
                self._buffered = 0
                break
            self._buffered -= n
            while n:
                first = parts[done]
                if n >= len(first):
                    n -= len(first)
                    done += 1
                else:
                    parts[done] = first[n:]
                    n = 0
        del parts[:done]

    def _pauseWhenFull(self) -> bool:
        """Whether the producer must be paused now (unsent bytes above HIGH_WATER).  Lock held."""
        if self._buffered > HIGH_WATER and not self._producerPaused:
            self._producerPaused = self._producer is not None
            return self._producerPaused
        return False

    def _endTurn(self) -> None:
        with self._lock:
            self._turnOpen = False
            corked = bool(self._buffer) and not self._writing
        if corked:
            self._flush()

    def _flush(self) -> None:
        """
        Write what the pipe takes; leave the rest to the reactor's write
        notifications, pausing or resuming the producer as the buffer grows
        or drains.  Any thread.
        """
        pause = resume = startWriter = stopWriter = closeNow = False
        with self._lock:
            if self._writeFd >= 0:
                self._writeSome()
            else:
                del self._buffer[:]
                self._buffered = 0
            if self._buffer:
                startWriter = not self._writing
                self._writing = True
                pause = self._pauseWhenFull()
            else:
                stopWriter = self._writing
                self._writing = False
                closeNow = self._closeWhenDrained
            if self._producerPaused and self._buffered < LOW_WATER:
                self._producerPaused = False
                resume = self._producer is not None
            self._drained.notify_all()
        # What is handed to the reactor is "make it so", never "add" or
        # "remove": a change made here and one made meanwhile in the reactor
        # thread may reach it in either order, and the last word must be
        # the state as it is then (else a writer removed after it was added
        # again leaves the buffer unsent for ever).
        if startWriter or stopWriter:
            self._inReactor(self._syncWriter)
        if pause or resume:
            self._inReactor(self._syncProducer)
        if closeNow:
            self._closeWrite()

    def _syncWriter(self) -> None:
        """Register the write end with the reactor while there is a backlog.  Reactor thread."""
        with self._lock:
            writing = self._writing and self._writeFd >= 0
        if writing:
            self._reactor.addWriter(self._writeEnd)
        else:
            self._reactor.removeWriter(self._writeEnd)

    def _syncProducer(self) -> None:
        """Pause or resume the producer as the backlog now says.  Reactor thread."""
        with self._lock:
            paused = self._producerPaused
            producer = self._producer
        if producer is None:
            return
        if paused:
            producer.pauseProducing()
        else:
            producer.resumeProducing()

    def doWrite(self) -> Any:
        self._flush()
        return None

    def waitForRoom(self, limit: int) -> None:
        """Block the calling (non-reactor) thread while more than C{limit} bytes are unsent."""
        if self._buffered <= limit:
            return  # the common case, without the lock: a stale value costs one item's delay
        with self._drained:
            while self._buffered > limit and self._writeFd >= 0:
                self._drained.wait(1.0)

    def _inReactor(self, f: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._reactorThread:
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

    def getPeer(self) -> PipeAddress:
        return PipeAddress()

    def getHost(self) -> PipeAddress:
        return PipeAddress()


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

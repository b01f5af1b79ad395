"""
The framing protocol: one L{IProtocol} that every transport (a child
process's pipes, an SSH channel, a TCP or unix socket) feeds.

It writes the bootstrap line, then cuts the incoming byte stream into frames
and hands them to its L{Gateway}.  Anything malformed is a protocol error:
the connection is dropped, the gateway fails every waiter, nothing from the
bad frame is acted on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ._remote import HEADER, HELLO, FrameBuffer, ProtocolError

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["FrameProtocol"]

# Small frames are joined with their header into one write; large payloads
# are handed over as they are, so they are not copied once more.
_JOIN_LIMIT = 16384


@implementer(IPushProducer)
class FrameProtocol(Protocol):
    """
    Frames in both directions for one gateway.

    It is also the push producer registered with its transport, so that a
    full transport buffer pauses the gateway's senders.

    @ivar gateway: the L{Gateway} frames are delivered to.
    """

    def __init__(self, gateway: Gateway, bootstrap: bytes, maxFrameSize: int) -> None:
        self.gateway = gateway
        self._bootstrap = bootstrap
        self._frames = FrameBuffer(maxFrameSize, self._deliver, expect_first=HELLO)
        self._failed = False

    def connectionMade(self) -> None:
        register = getattr(self.transport, "registerProducer", None)
        if register is not None:
            register(self, True)
        # Written once and let go: a gateway keeping its copy of the runtime
        # (65 KB) is most of what many open gateways cost in memory.
        bootstrap, self._bootstrap = self._bootstrap, b""
        if bootstrap:
            self.transport.write(bootstrap)

    def sendFrame(self, msgtype: int, channelId: int, parts: list[bytes], size: int) -> None:
        """Write one frame whose payload is C{parts} (C{size} bytes in all), one after the other."""
        header = HEADER.pack(msgtype, channelId, size)
        if size < _JOIN_LIMIT:
            self.transport.write(header + b"".join(parts))
        else:
            self.transport.writeSequence([header, *parts])

    def dataReceived(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._failed:
            room = self.getReadBuffer()
            n = min(len(room), len(view))
            room[:n] = view[:n]
            view = view[n:]
            self.bufferFilled(n)

    def getReadBuffer(self) -> memoryview:
        """
        Room at the end of the receive buffer, for a transport to read into
        directly (see L{PipeTransport}), so received bytes are copied once.
        """
        return self._frames.room()

    def bufferFilled(self, n: int) -> None:
        """C{n} more bytes were read into the room L{getReadBuffer} offered."""
        if self._failed:
            return
        try:
            self._frames.filled(n)
        except ProtocolError as e:
            self.protocolError(str(e))
        self.gateway._readDelivered()

    def _deliver(self, msgtype: int, channelId: int, payload: memoryview) -> bool:
        self.gateway._frameReceived(msgtype, channelId, payload)
        return self._failed

    def protocolError(self, why: str) -> None:
        """
        The peer broke the protocol: stop reading, tell the gateway, and
        drop the connection.
        """
        if self._failed:
            return
        self._failed = True
        self.gateway._protocolError(why)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.gateway._connectionLost(reason)

    # IPushProducer: our transport's write buffer is full, or drained.
    def pauseProducing(self) -> None:
        self.gateway._setWritable(False)

    def resumeProducing(self) -> None:
        self.gateway._setWritable(True)

    def stopProducing(self) -> None:
        self.gateway._setWritable(True)

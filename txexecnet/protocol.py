"""
The framing protocol: one Twisted C{IProtocol} that every transport (a child
process's pipes, an SSH channel, a TCP or unix socket) feeds.

It writes the bootstrap line, then cuts the incoming byte stream into frames
and hands them to its owner, an L{IFrameReceiver}.  Anything malformed is a
protocol error: the owner is told, nothing from the bad frame is acted on,
and nothing more is read.
"""

from __future__ import annotations

from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ._remote import HEADER, HELLO, FrameBuffer, ProtocolError
from .interfaces import IBufferedReceiver, IFrameReceiver

__all__ = ["FrameProtocol"]

# Small frames are joined with their header into one write; large payloads
# are handed over as they are, so they are not copied once more.
_JOIN_LIMIT = 16384


@implementer(IPushProducer, IBufferedReceiver)
class FrameProtocol(Protocol):
    """
    Frames in both directions for one gateway.

    It is also the push producer registered with its transport, so that a
    full transport pauses the gateway's senders: a transport must provide
    C{IConsumer}.

    @ivar receiver: the L{IFrameReceiver} frames are delivered to.
    """

    transport: ITransport  # once connected, which is when it is used

    def __init__(self, receiver: IFrameReceiver, bootstrap: bytes, maxFrameSize: int) -> None:
        """
        @param receiver: the L{IFrameReceiver} to deliver frames to.
        @param bootstrap: the bytes to write once connected (they start the remote runtime).
        @param maxFrameSize: the largest frame payload accepted.
        """
        self.receiver = receiver
        self._bootstrap = bootstrap
        self._frames = FrameBuffer(maxFrameSize, self._deliver, expect_first=HELLO)
        self._failed = False

    def connectionMade(self) -> None:
        # Without back-pressure a fast sender fills memory: every transport
        # must take a producer (a TypeError names one that does not).
        IConsumer(self.transport).registerProducer(self, True)
        # Written once and let go: a gateway keeping its copy of the runtime
        # (65 KB) is most of what many open gateways cost in memory.
        bootstrap, self._bootstrap = self._bootstrap, b""
        if bootstrap:
            self.transport.write(bootstrap)

    def sendFrame(self, msgtype: int, channelId: int, parts: list[bytes], size: int) -> None:
        """
        Write one frame whose payload is C{parts} (C{size} bytes in all), one after the other.

        @param msgtype: the message type.
        @param channelId: the channel the frame is for.
        @param parts: the payload, as byte strings.
        @param size: the payload's length.
        """
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
        self.receiver.readDelivered()

    def _deliver(self, msgtype: int, channelId: int, payload: memoryview) -> bool:
        self.receiver.frameReceived(msgtype, channelId, payload)
        return self._failed

    def protocolError(self, why: str) -> None:
        """
        The peer broke the protocol (found here, or by the receiver in a
        frame's contents): stop reading and tell the receiver, once.

        @param why: what was wrong, for the error messages.
        """
        if self._failed:
            return
        self._failed = True
        self.receiver.protocolFailed(why)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.receiver.connectionEnded(reason)

    # IPushProducer: our transport's write buffer is full, or drained.
    def pauseProducing(self) -> None:
        self.receiver.writableChanged(False)

    def resumeProducing(self) -> None:
        self.receiver.writableChanged(True)

    def stopProducing(self) -> None:
        self.receiver.writableChanged(True)

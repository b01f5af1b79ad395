"""
The seams of txexecnet, declared.

A gateway is built from parts that meet only here:

  - a transport (L{IGatewayTransport}) starts the remote interpreter and
    hands back an L{IGatewayConnection} to end it;
  - whatever carries the bytes is the framing protocol's Twisted transport,
    and must offer back-pressure (Twisted's C{IConsumer}); it may also offer
    writes from any thread (L{IThreadSafeTransport});
  - the framing protocol cuts the bytes into frames for its owner, an
    L{IFrameReceiver}, and may be read into directly (L{IBufferedReceiver});
  - channels talk to their gateway through an L{IChannelHost}, and the
    gateway to them through L{IChannelEnd};
  - objects that stand for a Twisted-API object (the blocking facade's
    proxies) provide L{IProxy}.

Everything is checked with C{providedBy} or C{verifyObject}, never by
looking for attributes.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

__all__ = [
    "IBufferedReceiver",
    "IChannelEnd",
    "IChannelHost",
    "IFrameReceiver",
    "IGatewayConnection",
    "IGatewayTransport",
    "IProxy",
    "IThreadSafeTransport",
]


class IGatewayConnection(Interface):
    """A started transport, as its gateway sees it."""

    def closeWrite() -> None:
        """
        Signal end-of-input to the remote runtime (close the child's stdin,
        half-close the socket), leaving the read side open for what remains.
        """

    def kill() -> None:
        """
        End the remote runtime now: SIGKILL the process, abort the connection.
        The protocol's C{connectionLost} follows.
        """

    def stderrTail() -> str:
        """The last few lines the remote side wrote to stderr, for error messages."""


class IGatewayTransport(Interface):
    """A way to reach a fresh remote interpreter."""

    description = Attribute("A short text naming where this transport goes, for messages.")
    helloTimeout = Attribute(
        "Seconds the remote side has to say hello once C{connect} has succeeded,"
        " or C{None} to leave it the whole start timeout: a bound of its own"
        " where connecting means the interpreter already runs."
    )

    def bootstrap(config):
        """
        The bytes to write first, which make the remote interpreter load and
        run the remote runtime with C{config} (a dict of plain values).

        @param config: the remote settings: C{env}, C{chdir}, C{nice}, C{max_frame_size}.
        """

    def connect(reactor, protocol, gateway):
        """
        Start the remote side and connect C{protocol} to it.

        @param reactor: the reactor to run on.
        @param protocol: the framing protocol; its transport must provide
            Twisted's C{IConsumer}, so that a full transport pauses senders.
        @param gateway: the gateway being started (for its C{id}, in messages).
        @return: a Deferred firing with an L{IGatewayConnection} once the
            protocol is connected, or failing with a
            L{txexecnet.errors.GatewayStartError} subclass saying why not.
        """


class IThreadSafeTransport(Interface):
    """
    A transport whose C{write} and C{writeSequence} may be called from any
    thread, so that a thread sending through the blocking facade writes
    without a hop through the reactor.
    """

    def write(data):
        """
        Write C{data}, from any thread.

        @param data: the bytes.
        """

    def writeSequence(data):
        """
        Write each of C{data} in turn, from any thread.

        @param data: byte strings, written one after the other.
        """

    def waitForRoom(limit):
        """
        Block the calling (non-reactor) thread while more than C{limit} bytes are unsent.

        @param limit: the unsent bytes to wait below.
        """


class IBufferedReceiver(Interface):
    """
    A protocol that offers its receive buffer, so that a transport reads
    straight into it and received bytes are copied once.
    """

    def getReadBuffer():
        """A writable C{memoryview} to read into."""

    def bufferFilled(n):
        """
        C{n} bytes were read into the view L{getReadBuffer} gave.

        @param n: how many bytes.
        """


class IFrameReceiver(Interface):
    """The owner of a framing protocol: what the protocol tells it."""

    def frameReceived(msgtype, channelId, payload):
        """
        One whole frame arrived.  C{payload} is a C{memoryview} valid only
        during the call.

        @param msgtype: the message type (see the runtime's constants).
        @param channelId: the channel it is for (0 for the gateway itself).
        @param payload: its payload.
        """

    def readDelivered():
        """Every frame of one read has been handed to L{frameReceived}."""

    def protocolFailed(why):
        """
        The peer broke the protocol (C{why} says how): the protocol has
        stopped reading, and the connection must be dropped.

        @param why: what was wrong.
        """

    def connectionEnded(reason):
        """
        The connection is gone; C{reason} is a C{Failure} saying how.

        @param reason: how it ended.
        """

    def writableChanged(writable):
        """
        The transport can take more (C{True}) or is full (C{False}).

        @param writable: whether the transport can take more.
        """


class IChannelHost(Interface):
    """What a channel needs of its gateway, and all it uses."""

    id = Attribute("The gateway's name, for messages.")
    reactor = Attribute("The reactor the gateway runs on (its clock for timeouts).")
    window = Attribute(
        "Bytes of items a channel's receiver may hold not received before its sender waits;"
        " 0 for no limit."
    )

    def sendFrame(msgtype, channelId, parts, size=None):
        """
        Send a frame whose payload is C{parts}, byte strings written one
        after the other.

        @param msgtype: the message type.
        @param channelId: the channel.
        @param parts: the payload, as byte strings.
        @param size: their length in all, if the caller knows it.
        @return: a Deferred firing when the transport can take more.
        @raise DumpError: if the frame is larger than the frame limit.
        """

    def sendFrameFromThread(msgtype, channelId, parts, size=None):
        """
        L{sendFrame} for a thread other than the reactor's: returns once the
        frame is handed over, blocking while too much is handed over but
        not yet written.

        @param msgtype: the message type.
        @param channelId: the channel.
        @param parts: the payload, as byte strings.
        @param size: their length in all, if the caller knows it.
        """

    def channelIdOf(channel):
        """
        The id of C{channel} (one of this gateway's, or an L{IProxy} of
        one), for sending it inside an item.

        @param channel: the object a serialized item holds.
        @raise DumpError: for a channel of another gateway.
        """

    def isTerminated():
        """Whether the gateway has ended."""

    def outputOf(channelId):
        """
        The output of channel C{channelId}'s code from now on, as an async
        iterator of C{(stream, text)} pairs.

        @param channelId: the channel.
        """

    def channelEnded(channel):
        """
        C{channel} will receive nothing more: the gateway may forget it.

        @param channel: the channel.
        """

    def wakeAfterRead(channel):
        """
        Call C{channel.wakeReceivers()} once the current read is delivered.

        @param channel: the channel that has items for waiting receivers.
        """


class IChannelEnd(Interface):
    """What a gateway tells one of its channels."""

    def itemReceived(item, size):
        """
        The other side sent C{item}.

        @param item: the item, decoded.
        @param size: its size in bytes, as serialized (what the window counts).
        """

    def creditReceived(size):
        """
        The other side has received C{size} more bytes of this side's items.

        @param size: bytes, as serialized.
        """

    def receiveEnded(error):
        """
        The other side will send no more: C{error} is C{None} for a plain
        close, else the exception to raise once queued items are drained.

        @param error: how the other side ended, or C{None} for a plain close.
        """

    def wakeReceivers():
        """Hand queued items to waiting receivers."""


class IProxy(Interface):
    """An object that stands for a Twisted-API object (see L{txexecnet.blocking})."""

    wrapped = Attribute("The Twisted-API object it stands for.")

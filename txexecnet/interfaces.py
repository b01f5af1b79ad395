"""
The seam between gateways and the transports that carry their frames.

A transport (a child process, an SSH channel, a socket) only has to deliver
bytes to a L{txexecnet.protocol.FrameProtocol} and say how to end the
remote side; everything above it is shared.
"""

from zope.interface import Attribute, Interface

__all__ = ["IGatewayTransport", "IGatewayConnection"]


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

    def bootstrap(config):
        """
        The bytes to write first, which make the remote interpreter load and
        run the remote runtime with C{config} (a dict of plain values).
        """

    def connect(reactor, protocol, gateway):
        """
        Start the remote side and connect C{protocol} to it.

        @return: a Deferred firing with an L{IGatewayConnection} once the
            protocol is connected, or failing with a
            L{txexecnet.errors.GatewayStartError} subclass saying why not.
        """

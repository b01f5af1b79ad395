"""
The common part of transports that hand each write on as one message (over
a channel of another gateway, to a test) rather than to a file descriptor:
they have no address, and losing the connection kills the remote side.
"""

from __future__ import annotations

from typing import Iterable

from ._pipes import PipeAddress

__all__ = ["MessageTransport"]


class MessageTransport:
    """The C{ITransport} methods such a transport shares; it writes C{write} and C{kill}."""

    def write(self, data: bytes) -> None:
        """
        Hand C{data} on.

        @param data: the bytes.
        """
        raise NotImplementedError(f"{type(self).__name__} must define write()")

    def kill(self) -> None:
        """End the remote side now."""
        raise NotImplementedError(f"{type(self).__name__} must define kill()")

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """
        Hand C{data} on, joined into one message.

        @param data: byte strings.
        """
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Kill the remote side: there is no clean way to close half of a message stream."""
        self.kill()

    def getPeer(self) -> PipeAddress:
        return PipeAddress()

    def getHost(self) -> PipeAddress:
        return PipeAddress()

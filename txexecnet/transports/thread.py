"""
Thread gateways: the remote runtime in threads of this very process,
talking over a socketpair.  No process to start, so they are cheap; the
channel semantics are exactly those of the other gateways.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from .. import _remote
from ..errors import GatewayStartError
from ..interfaces import IGatewayConnection, IGatewayTransport
from .factories import quietFactory

__all__ = ["ThreadTransport", "SocketConnection", "transportForSpec"]


@implementer(IGatewayTransport)
class ThreadTransport:
    """Run the remote runtime in a thread of this process."""

    description = "thread"
    helloTimeout = 8.0  # the runtime is already loaded: only a stuck thread is slower

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        # Nothing to send: the runtime is started directly, with this config.
        self._config = config
        return b""

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        ours, theirs = socket.socketpair()
        try:
            reactor.adoptStreamConnection(
                ours.fileno(), socket.AF_UNIX, quietFactory(lambda: protocol)
            )
        except Exception as e:
            ours.close()
            theirs.close()
            return fail(GatewayStartError(f"gateway {gateway.id} failed to start: {e}"))
        finally:
            ours.close()
        thread = threading.Thread(
            target=_remote.serve,
            args=(_remote.SocketIO(theirs), self._config),
            name=f"txexecnet-{gateway.id}",
            daemon=True,
        )
        thread.start()
        return succeed(SocketConnection(protocol))


@implementer(IGatewayConnection)
class SocketConnection:
    """Ends a socket-carried gateway by half-closing or aborting the socket."""

    def __init__(self, protocol: Any) -> None:
        """
        @param protocol: the protocol whose transport is the socket.
        """
        self._protocol = protocol

    def closeWrite(self) -> None:
        self._protocol.transport.loseWriteConnection()

    def kill(self) -> None:
        self._protocol.transport.abortConnection()

    def stderrTail(self) -> str:
        return ""


def transportForSpec(spec: Any, group: Any) -> ThreadTransport:
    """
    The transport of a C{thread} spec.

    @param spec: the L{XSpec}.
    @param group: the group the gateway joins (not used).
    """
    return ThreadTransport()

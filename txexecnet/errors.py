"""
The exceptions txexecnet raises.

Those that both sides of a gateway raise (L{RemoteError}, L{TimeoutError},
L{DataFormatError}) are defined once, in the remote runtime, and re-exported
here, so a remote and a local C{RemoteError} are the same class; so is
L{RemoteFrame}, a frame of a remote traceback.
"""

from __future__ import annotations

from ._remote import (
    DataFormatError,
    DumpError,
    LoadError,
    ProtocolError,
    RemoteError,
    RemoteFrame,
    TimeoutError,
)

__all__ = [
    "DataFormatError",
    "DumpError",
    "LoadError",
    "ProtocolError",
    "RemoteError",
    "RemoteFrame",
    "TimeoutError",
    "GatewayClosed",
    "GatewayStartError",
    "HostKeyError",
    "AuthenticationError",
]


class GatewayClosed(Exception):
    """
    The gateway ended (the remote process exited or was killed, the
    connection dropped, or the peer broke the protocol) while something was
    still waiting on it.  The message says how it ended.
    """


class GatewayStartError(GatewayClosed):
    """
    The remote interpreter never said hello: the executable is missing, the
    bootstrap failed, or the remote side refused us.  The message quotes the
    remote stderr where there was any.

    @ivar spec: the spec string of the gateway, when a L{txexecnet.Group}
        started it.
    """

    spec: str | None = None


class HostKeyError(GatewayStartError):
    """An SSH host key is unknown or has changed."""


class AuthenticationError(GatewayStartError):
    """The remote side refused our credentials."""

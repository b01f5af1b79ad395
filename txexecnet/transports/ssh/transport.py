"""
The Conch transport of SSH gateways: one session channel per gateway, on a
connection shared with other gateways to the same place.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure
from zope.interface import implementer

from ...bootstrap import sourceBootstrap
from ...errors import GatewayStartError
from ...interfaces import IGatewayConnection, IGatewayTransport
from .auth import Credentials
from .connection import SshConnection, SshConnectionPool, defaultPool, openConnection
from .options import SshOptions, remoteCommand
from .session import GatewaySession
from .target import SshTarget

__all__ = ["SshTransport", "transportFor", "transportForSpec"]


@implementer(IGatewayTransport)
class SshTransport:
    """
    Start the remote interpreter on an SSH server through Conch.
    """

    def __init__(self, options: SshOptions, pool: SshConnectionPool | None = None) -> None:
        """
        @param options: where to go and how (see L{SshOptions}); host keys
            and keys not given are found as C{ssh} finds them.
        @param pool: the L{SshConnectionPool} to share connections through.
        @raise ValueError: for an ssh_config that needs what Conch cannot do
            (ProxyJump, ProxyCommand).
        """
        self.options = options
        self.target = SshTarget.fromOptions(options)
        self.command = remoteCommand(options.python, options.dont_write_bytecode)
        self._pool = pool if pool is not None else defaultPool
        self.description = f"ssh {self.target}"
        self.helloTimeout: float | None = None  # the remote host may need the whole start timeout

    def __repr__(self) -> str:
        return f"<SshTransport {self.target} python={self.options.python!r}>"

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        return sourceBootstrap(config)

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        try:
            connection = self._pool.reserve(
                reactor, self._sharingKey(), lambda: self._connect(reactor, gateway.heartbeat)
            )
        except GatewayStartError as e:
            return fail(_forGateway(e, gateway.id, self.target))
        opened: Deferred[IGatewayConnection] = Deferred()

        def ready(connection: SshConnection) -> Deferred[IGatewayConnection]:
            connection.openChannel(
                GatewaySession(self.command, protocol, gateway, reactor, opened, str(self.target))
            )
            return opened

        def failed(f: Failure) -> Failure:
            if isinstance(f.value, GatewayStartError):
                return Failure(_forGateway(f.value, gateway.id, self.target))
            return f

        return connection.whenReady().addCallback(ready).addErrback(failed)

    def _sharingKey(self) -> tuple[Any, ...]:
        """
        Gateways share a connection only if each would have made the same
        one: same server and user, and the same keys, host-key policy and
        password, so a stricter gateway never rides on a laxer connection.
        """
        target = self.target
        return target.key + (
            tuple(target.identityFiles),
            tuple(target.knownHosts.files),
            target.acceptNewHostKeys,
            self.options.password,
            self.options.passphrase,
        )

    def _connect(self, reactor: Any, keepalive: float) -> SshConnection:
        """Start a new SSH connection to our target, with keepalives every C{keepalive} s."""
        password = self.options.password
        credentials = Credentials(
            self.target,
            password.encode("utf-8") if password is not None else None,
            self.options.passphrase,
        )
        return openConnection(reactor, self._pool, self.target, credentials, keepalive)


def _forGateway(error: GatewayStartError, gatewayId: str, target: SshTarget) -> GatewayStartError:
    """The same kind of error, saying which gateway and where."""
    return type(error)(f"gateway {gatewayId} failed to start: ssh {target}: {error}")


def transportFor(options: SshOptions) -> IGatewayTransport:
    """
    The transport C{options} ask for: Conch's, or the system C{ssh} binary's.

    @param options: the SSH options.
    """
    if options.client == "openssh":
        from .openssh import OpenSshTransport

        return OpenSshTransport(options)
    return SshTransport(options)


def transportForSpec(spec: Any, group: Any) -> IGatewayTransport:
    """
    The transport of an C{ssh=} spec (see L{SshOptions.fromSpec} for its keys).

    @param spec: the L{XSpec}.
    @param group: the group the gateway joins (not used).
    """
    return transportFor(SshOptions.fromSpec(spec))

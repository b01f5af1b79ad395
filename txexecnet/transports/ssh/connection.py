"""
SSH connections: the client side of the SSH transport layer (host key
check, then authentication), and the pool through which gateways to the
same place share one connection, a session channel each.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.conch.error import ConchError
from twisted.conch.ssh.common import getNS
from twisted.conch.ssh.connection import SSHConnection
from twisted.conch.ssh.transport import SSHClientTransport
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure

from ...errors import AuthenticationError, GatewayStartError, HostKeyError
from ..factories import quietFactory
from .auth import Credentials, UserAuthClient
from .knownhosts import hostKeyAlgorithms
from .target import SshTarget

__all__ = ["SshConnection", "SshConnectionPool", "defaultPool", "openConnection", "MAX_SESSIONS"]

log = Logger(namespace="txexecnet.ssh")

#: Sessions per SSH connection: OpenSSH's sshd refuses more than
#: C{MaxSessions} (default 10) channels on one connection.
MAX_SESSIONS = 10


class SshConnectionPool:
    """
    The live SSH connections, by reactor and (user, host, port), so that
    gateways to the same place share one: each gateway takes a session
    slot (L{reserve}); a connection closes when its last slot is released.

    @ivar maxSessions: slots per connection before another is opened.
    """

    def __init__(self, maxSessions: int = MAX_SESSIONS) -> None:
        """
        @param maxSessions: session slots per connection.
        """
        self.maxSessions = maxSessions
        self._connections: dict[tuple[Any, ...], list[SshConnection]] = {}

    def reserve(
        self, reactor: Any, key: tuple[Any, ...], connect: Callable[[], SshConnection]
    ) -> SshConnection:
        """
        A connection to C{key} with a session slot taken for the caller:
        one already open (or opening) with a free slot, else a new one made
        by C{connect()}.

        @param reactor: the reactor the connection runs on.
        @param key: what connections to the same place with the same credentials share.
        @param connect: makes a new connection when none has a free slot.
        """
        poolKey = (id(reactor),) + key
        connections = self._connections.setdefault(poolKey, [])
        for connection in connections:
            if connection.sessions < self.maxSessions:
                break
        else:
            connection = connect()
            connection.poolKey = poolKey
            connections.append(connection)
        connection.sessions += 1
        return connection

    def connections(self) -> list[SshConnection]:
        """The connections open or opening now."""
        return [c for cs in self._connections.values() for c in cs]

    def _forget(self, connection: SshConnection) -> None:
        connections = self._connections.get(connection.poolKey, [])
        if connection in connections:
            connections.remove(connection)
            if not connections:
                del self._connections[connection.poolKey]


#: The pool L{SshTransport}s share unless given another.
defaultPool = SshConnectionPool()


class SshConnection(SSHConnection):
    """
    The C{ssh-connection} service of one SSH connection, shared by the
    gateways whose sessions it carries.

    @ivar target: the L{SshTarget} it reaches.
    @ivar sessions: session slots taken (by gateways starting or running).
    @ivar lostReason: why the connection ended, once it has.
    """

    transport: Any  # the SSH transport layer, once the service runs

    def __init__(
        self, pool: SshConnectionPool, target: SshTarget, reactor: Any, keepalive: float = 0.0
    ) -> None:
        """
        @param pool: the pool that keeps it.
        @param target: where it goes.
        @param reactor: the reactor it runs on (the keepalives' clock).
        @param keepalive: seconds between SSH keepalives (OpenSSH's
            C{ServerAliveInterval}); a server that answers none of 3 is
            dropped.  0: none.
        """
        SSHConnection.__init__(self)
        self._reactor = reactor
        self._keepalive = keepalive
        self._unanswered = 0
        self._keepaliveCall: Any = None
        self.target = target
        self.sessions = 0
        self.poolKey: tuple[Any, ...] = ()
        self.lostReason: Failure | None = None
        self._pool = pool
        self._closing = False
        self._started = False
        self._startError: GatewayStartError | None = None
        self._waiters: list[Deferred[SshConnection]] = []

    def __repr__(self) -> str:
        return f"<SshConnection {self.target} sessions={self.sessions}>"

    def whenReady(self) -> Deferred[SshConnection]:
        """Fire with self once authenticated, or fail with why not."""
        if self._started:
            return succeed(self)
        if self._startError is not None:
            return fail(self._startError)
        d: Deferred[SshConnection] = Deferred()
        self._waiters.append(d)
        return d

    def serviceStarted(self) -> None:
        SSHConnection.serviceStarted(self)
        self._started = True
        if self._keepalive:
            self._keepaliveCall = self._reactor.callLater(self._keepalive, self._keepAlive)
        log.debug("ssh connection to {target} ready", target=self.target)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self)

    def startFailed(self, error: GatewayStartError) -> None:
        """
        The connection could not be made ready: fail every waiter.

        @param error: why.
        """
        self._pool._forget(self)
        if self._started or self._startError is not None:
            return
        self._startError = error
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(error)

    def release(self) -> None:
        """A gateway is done with its slot; close with the last one."""
        self.sessions -= 1
        if self.sessions <= 0 and self._started and not self._closing:
            self._closing = True
            self._pool._forget(self)
            log.debug("closing ssh connection to {target}: no gateways left", target=self.target)
            self.transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection at once: the server has stopped answering."""
        if self.transport is not None and self.transport.transport is not None:
            self.transport.transport.abortConnection()

    def _keepAlive(self) -> None:
        """Ask the server for an answer, as C{ssh -o ServerAliveInterval} does."""
        if self._unanswered >= 3:
            log.warn(
                "{target}: no answer to 3 SSH keepalives of {seconds:g} s; dropping it",
                target=self.target,
                seconds=self._keepalive,
            )
            self.abort()
            return
        self._unanswered += 1

        def answered(_: object) -> None:
            # A refusal is an answer too: OpenSSH refuses this request.
            self._unanswered = 0

        self.sendGlobalRequest(b"keepalive@openssh.com", b"", wantReply=1).addBoth(answered)
        self._keepaliveCall = self._reactor.callLater(self._keepalive, self._keepAlive)

    def serviceStopped(self) -> None:
        self._closing = True
        if self._keepaliveCall is not None and self._keepaliveCall.active():
            self._keepaliveCall.cancel()
        self._pool._forget(self)
        SSHConnection.serviceStopped(self)


def openConnection(
    reactor: Any,
    pool: SshConnectionPool,
    target: SshTarget,
    credentials: Credentials,
    keepalive: float = 0.0,
) -> SshConnection:
    """
    Start a new SSH connection to C{target}, to be kept in C{pool}.

    @param reactor: the reactor to run on.
    @param pool: the pool that keeps it.
    @param target: where it goes.
    @param credentials: what to authenticate with.
    @param keepalive: seconds between SSH keepalives (0: none).
    """
    connection = SshConnection(pool, target, reactor, keepalive)
    client = _ClientTransport(target, reactor, credentials, connection)
    client.start(
        HostnameEndpoint(reactor, target.hostname, target.port, timeout=target.connectTimeout)
    )
    return connection


class _ClientTransport(SSHClientTransport):
    """
    The SSH transport layer of one connection: checks the host key against
    known_hosts, then authenticates and starts the L{SshConnection}.  Why
    it failed, if it did, becomes a typed L{GatewayStartError}.
    """

    # A TCP connection.
    transport: Any

    def __init__(
        self, target: SshTarget, reactor: Any, credentials: Credentials, connection: SshConnection
    ) -> None:
        self._target = target
        self._reactor = reactor
        self._credentials = credentials
        self._connection = connection
        self._stage = "connecting"
        self._error: GatewayStartError | None = None
        self._remoteError: str | None = None
        self._userauth: UserAuthClient | None = None
        # Offer first the host key types known_hosts has for this host, so a
        # server with several host keys shows one we can check.
        self.supportedPublicKeys = hostKeyAlgorithms(
            target.knownHosts.knownTypes(target.hostKeyName), SSHClientTransport.supportedPublicKeys
        )
        self.supportedCiphers = _preferred(_CIPHERS, SSHClientTransport.supportedCiphers)
        self.supportedMACs = _preferred(_MACS, SSHClientTransport.supportedMACs)
        self._deadline: Any = None
        self._connecting: Deferred[Any] | None = None

    def start(self, endpoint: Any) -> None:
        """Connect through C{endpoint}; give up after the connect timeout."""
        self._deadline = self._reactor.callLater(self._target.connectTimeout, self._timedOut)
        self._connecting = endpoint.connect(quietFactory(lambda: self))
        self._connecting.addErrback(self._connectFailed)

    def _connectFailed(self, reason: Failure) -> None:
        self._cancelDeadline()
        self._connection.startFailed(
            self._error
            or GatewayStartError(
                f"cannot connect to {self._target.hostPort}: {reason.getErrorMessage()}"
            )
        )

    def connectionMade(self) -> None:
        self._stage = "key exchange"
        # A frame is often one short packet waiting for its answer (a
        # receive() round trip, a window adjust): Nagle would hold it back.
        self.transport.setTcpNoDelay(True)
        SSHClientTransport.connectionMade(self)

    def verifyHostKey(self, hostKey: bytes, fingerprint: bytes) -> Deferred[bool]:
        self._stage = "host key check"
        try:
            keyType = getNS(hostKey)[0].decode("ascii", "replace")
            self._target.knownHosts.check(
                self._target.hostKeyName, keyType, hostKey, self._target.acceptNewHostKeys
            )
        except HostKeyError as e:
            self._error = e
        except OSError as e:
            self._error = HostKeyError(
                f"cannot record the host key of {self._target.hostKeyName}: {e}"
            )
        else:
            return succeed(True)
        # Conch quotes this failure to the server as the disconnect reason:
        # it gets no more than that (not our paths); our caller gets _error.
        return fail(ConchError("host key not accepted"))

    def connectionSecure(self) -> None:
        self._stage = "authentication"
        userauth = self._userauth = UserAuthClient(
            self._target, self._credentials, self._connection
        )

        def prepared(_: object) -> None:
            self.requestService(userauth)

        userauth.prepare(self._reactor).addCallback(prepared)

    def setService(self, service: Any) -> None:
        if service is self._connection:
            self._stage = "ready"
            self._cancelDeadline()
        SSHClientTransport.setService(self, service)

    def receiveError(self, reasonCode: int, description: bytes) -> None:
        self._remoteError = description.decode("utf-8", "replace")
        SSHClientTransport.receiveError(self, reasonCode, description)

    def _timedOut(self) -> None:
        self._error = GatewayStartError(
            f"no SSH connection to {self._target.hostPort} after "
            f"{self._target.connectTimeout:g} s (stuck in {self._stage})"
        )
        if self.transport is not None:
            self.transport.abortConnection()
        elif self._connecting is not None:
            self._connecting.cancel()

    def _cancelDeadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancelDeadline()
        self._connection.lostReason = Failure(
            ConnectionLost(
                f"SSH connection to {self._target.hostPort} lost: "
                f"{reason.getErrorMessage() if reason else 'closed'}"
            )
        )
        SSHClientTransport.connectionLost(self, reason)
        self._connection.startFailed(self._startError(reason))

    def _startError(self, reason: Failure | None) -> GatewayStartError:
        if self._error is not None:
            return self._error
        if self._stage == "authentication":
            assert self._userauth is not None
            return AuthenticationError(self._userauth.describeFailure(self._remoteError))
        why = self._remoteError or (reason.getErrorMessage() if reason else "closed")
        return GatewayStartError(
            f"the SSH connection to {self._target.hostPort} ended during {self._stage}: {why}"
        )


#: OpenSSH's order of preference among what Conch offers.  Conch's own puts
#: AES-256 and HMAC-SHA2-512 first; HMAC-SHA2-256 is more than twice as fast
#: on CPUs with SHA extensions, and this MAC is where bulk transfer spends.
_CIPHERS = (b"aes128-ctr", b"aes192-ctr", b"aes256-ctr")
_MACS = (b"hmac-sha2-256", b"hmac-sha2-512", b"hmac-sha1")


def _preferred(first: Sequence[bytes], supported: Sequence[bytes]) -> list[bytes]:
    """C{supported}, reordered to start with those of C{first} it has."""
    head = [a for a in first if a in supported]
    return head + [a for a in supported if a not in head]

"""
SSH gateways over Twisted Conch: the remote interpreter is started by an
OpenSSH (or any SSH-2) server, its stdin/stdout carried by an SSH session
channel.

What C{ssh user@host} would do, this does without the C{ssh} binary:

  - host aliases, users, ports and keys come from C{~/.ssh/config}
    (L{txexecnet.transports._sshconfig});
  - host keys are checked against OpenSSH's known_hosts files, hashed and
    C{[host]:port} entries included, and an unknown or changed key fails
    with L{HostKeyError} instead of a prompt
    (L{txexecnet.transports._knownhosts});
  - authentication tries the ssh-agent's keys, then key files (ed25519,
    ECDSA, RSA with SHA-2 signatures, passphrase-protected ones), then a
    password;
  - gateways to the same (user, host, port) share one SSH connection, one
    session channel each, and the connection closes with its last gateway.

The parts of Conch that do not fit a gateway are replaced here:
C{SSHCommandClientEndpoint} connects over IPv4 only and its session channel
drops stderr, has no producer support and buffers writes without limit;
L{SshTransport} connects with a C{HostnameEndpoint} and runs each gateway
on a L{_GatewaySession}, a session channel that logs remote stderr, pauses
the gateway's senders when its buffer is full, and sends large frames
without copying them over and over.
"""

from __future__ import annotations

import getpass
import os
import shlex
import signal
import struct
from collections import deque
from typing import Any, Callable, Sequence

from twisted.conch.client.agent import SSHAgentClient
from twisted.conch.error import ConchError
from twisted.conch.ssh import agent as _agent
from twisted.conch.ssh.channel import SSHChannel
from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR, SSHConnection
from twisted.conch.ssh.keys import BadKeyError, EncryptedKeyError, Key
from twisted.conch.ssh.transport import SSHClientTransport
from twisted.conch.ssh.userauth import MSG_USERAUTH_REQUEST, SSHUserAuthClient
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost, ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..bootstrap import pythonArgs, sourceBootstrap
from ..errors import AuthenticationError, GatewayStartError, HostKeyError
from ..interfaces import IGatewayConnection, IGatewayTransport
from ._knownhosts import KnownHosts, fingerprint, hostKeyAlgorithms, hostKeyName
from ._sshconfig import DEFAULT_CONFIG_FILES, SshConfig, expandTokens, localTokens
from ._stderr import StderrLog

__all__ = [
    "SshTransport",
    "SshTarget",
    "SshConnectionPool",
    "defaultPool",
    "parseDestination",
    "remoteCommand",
    "sshTransportForSpec",
]

log = Logger(namespace="txexecnet.ssh")

#: Bytes the remote side may send before we re-open the window (per
#: channel).  Conch's default of 128 KiB stalls the sender on every few
#: packets; OpenSSH uses 2 MiB.
CHANNEL_WINDOW = 2 * 1024 * 1024

#: The largest data packet we accept.  OpenSSH's sshd sends at most 32 KiB
#: per packet on session channels whatever we allow.
CHANNEL_MAX_PACKET = 32 * 1024

#: Unsent bytes on one channel above which the gateway's senders are
#: paused, and below which they are resumed.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024

#: Sessions per SSH connection: OpenSSH's sshd refuses more than
#: C{MaxSessions} (default 10) channels on one connection.
MAX_SESSIONS = 10

#: Seconds a killed session waits for the server to confirm the close
#: before the whole (then unresponsive) connection is dropped.
KILL_GRACE = 10.0

#: Seconds from TCP connect to a ready SSH connection (key exchange and
#: authentication) unless ssh_config says C{ConnectTimeout}.
DEFAULT_CONNECT_TIMEOUT = 30.0

#: Identity files tried when neither the caller nor ssh_config names any,
#: as C{ssh} does.
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")

#: known_hosts files read when none is named.
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")

_SSH_AGENT_RSA_SHA2_256 = 2
_SSH_AGENT_RSA_SHA2_512 = 4
_AGENT_SIGN_RESPONSE = 14


# --- where to go ------------------------------------------------------------


def parseDestination(destination: str) -> tuple[str | None, str, int | None]:
    """
    Split C{[user@]host[:port]} into its parts.  An IPv6 address takes
    brackets when a port follows (C{root@[::1]:2222}); a bare one
    (C{::1}) is taken as a host without a port.

    @raise ValueError: for an empty host or a port that is not a number.
    """
    user, at, hostport = destination.rpartition("@")
    if not at:
        user = ""
    port: str | None = None
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad ssh destination {destination!r}")
        port = rest[1:] or None
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    else:
        host = hostport
    if not host:
        raise ValueError(f"ssh destination {destination!r} names no host")
    if port is not None and not port.isdigit():
        raise ValueError(f"bad port {port!r} in ssh destination {destination!r}")
    return user or None, host, int(port) if port is not None else None


class SshTarget:
    """
    Everything needed to reach one SSH server as one user, resolved from
    the caller's arguments and ssh_config the way C{ssh} resolves them.

    @ivar alias: the host as the caller named it.
    @ivar user: the remote user.
    @ivar hostname: the host to connect to (ssh_config C{HostName}).
    @ivar port: the port.
    @ivar identityFiles: private key files to try, in order.
    @ivar identitiesOnly: use only C{identityFiles}, not every agent key.
    @ivar agentSocket: the ssh-agent socket to use, or L{None}.
    @ivar knownHosts: the L{KnownHosts} that vouch for host keys.
    @ivar hostKeyName: the name host keys are filed under.
    @ivar acceptNewHostKeys: add an unknown host key instead of refusing.
    @ivar connectTimeout: seconds to a ready, authenticated connection.
    @ivar sshConfig: the ssh_config file named by the caller, if any.
    """

    def __init__(
        self,
        destination: str,
        port: int | None = None,
        identity: str | Sequence[str] | None = None,
        knownHosts: str | None = None,
        acceptNewHostKeys: bool = False,
        sshConfig: str | None = None,
    ) -> None:
        user, self.alias, destPort = parseDestination(destination)
        self.sshConfig = sshConfig
        files = [sshConfig] if sshConfig else list(DEFAULT_CONFIG_FILES)
        if sshConfig and not os.path.exists(os.path.expanduser(sshConfig)):
            raise ValueError(f"ssh_config file {sshConfig!r} does not exist")
        options = SshConfig.fromFiles(files).lookup(self.alias)
        for unsupported in ("proxyjump", "proxycommand"):
            if options.get(unsupported, "none") != "none":
                raise ValueError(
                    f"ssh_config sets {unsupported} for {self.alias!r}, which the Conch "
                    f"transport cannot follow; use the system ssh (spec //ssh_client=openssh)"
                )
        tokens = localTokens()
        tokens["n"] = self.alias
        tokens["h"] = self.alias
        self.hostname = expandTokens(_option(options, "hostname", self.alias), tokens)
        tokens["h"] = self.hostname
        self.user = user or _option(options, "user", "") or getpass.getuser()
        tokens["r"] = self.user
        configPort = _option(options, "port", "")
        if port is None:
            port = destPort
        if port is None and configPort:
            if not configPort.isdigit():
                raise ValueError(
                    f"ssh_config Port {configPort!r} for {self.alias!r} is not a number"
                )
            port = int(configPort)
        self.port = port if port is not None else 22
        tokens["p"] = str(self.port)
        self._resolveCredentials(options, tokens, identity)
        self._resolveHostKeys(options, tokens, knownHosts, acceptNewHostKeys)
        timeout = _option(options, "connecttimeout", "")
        self.connectTimeout = float(timeout) if timeout.isdigit() else DEFAULT_CONNECT_TIMEOUT

    def _resolveCredentials(
        self, options: dict[str, Any], tokens: dict[str, str], identity: str | Sequence[str] | None
    ) -> None:
        """Key files (the caller's first, as with C{ssh -i}) and the agent."""
        explicit = [identity] if isinstance(identity, str) else list(identity or ())
        configured = options.get("identityfile", [])
        assert isinstance(configured, list)
        files = [expandTokens(f, tokens) for f in explicit + configured]
        self.explicitIdentities = {expandTokens(f, tokens) for f in explicit}
        if not files:
            files = [os.path.expanduser(f) for f in DEFAULT_IDENTITIES]
        self.identityFiles = [f for i, f in enumerate(files) if f not in files[:i]]
        self.identitiesOnly = _option(options, "identitiesonly", "no").lower() == "yes"
        agent = _option(options, "identityagent", "SSH_AUTH_SOCK")
        if agent.lower() == "none":
            self.agentSocket: str | None = None
        elif agent in ("SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"):
            self.agentSocket = os.environ.get("SSH_AUTH_SOCK") or None
        else:
            self.agentSocket = expandTokens(agent, tokens)

    def _resolveHostKeys(
        self,
        options: dict[str, Any],
        tokens: dict[str, str],
        knownHosts: str | None,
        acceptNewHostKeys: bool,
    ) -> None:
        """
        The known_hosts files: the caller's one alone, or ssh_config's (or
        the default) user files plus the system-wide ones.
        """
        if knownHosts:
            userFiles = [os.path.expanduser(knownHosts)]
            systemFiles: list[str] = []
        else:
            configured = _option(options, "userknownhostsfile", "")
            userFiles = [expandTokens(f, tokens) for f in configured.split()] or list(
                DEFAULT_KNOWN_HOSTS
            )
            systemFiles = _option(options, "globalknownhostsfile", "").split() or list(
                SYSTEM_KNOWN_HOSTS
            )
        hashNames = _option(options, "hashknownhosts", "yes").lower() != "no"
        self.knownHosts = KnownHosts(userFiles, systemFiles, hashNames)
        alias = _option(options, "hostkeyalias", "")
        self.hostKeyName = alias or hostKeyName(self.hostname, self.port)
        strict = _option(options, "stricthostkeychecking", "ask").lower()
        self.acceptNewHostKeys = acceptNewHostKeys or strict in ("accept-new", "no", "off")

    def __repr__(self) -> str:
        return f"<SshTarget {self}>"

    def __str__(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"

    @property
    def key(self) -> tuple[str, str, int]:
        """What gateways that may share a connection have in common."""
        return (self.user, self.hostname.lower(), self.port)


def _option(options: dict[str, Any], name: str, default: str) -> str:
    value = options.get(name, default)
    assert isinstance(value, str)
    return value


def remoteCommand(python: str, dontWriteBytecode: bool = False) -> bytes:
    """
    The command line the remote login shell runs to start a bootstrap-ready
    interpreter: C{python} split into words as a shell would, then every
    word quoted, so that nothing in it is expanded but a leading C{~/}.
    """
    words = shlex.split(python)
    if not words:
        raise ValueError("python= is empty")
    return " ".join(_shellWord(w) for w in pythonArgs(words, dontWriteBytecode)).encode("utf-8")


def _shellWord(word: str) -> str:
    if word.startswith("~/"):
        return "~/" + shlex.quote(word[2:])
    return shlex.quote(word)


# --- the transport -----------------------------------------------------------


@implementer(IGatewayTransport)
class SshTransport:
    """
    Start C{python} on an SSH server through Conch.

    @param destination: C{[user@]host[:port]}; C{host} may be an ssh_config
        alias.
    @param port: the port, overriding the destination's and ssh_config's.
    @param identity: a private key file (or several) to try before those
        ssh_config names.  Without any, C{~/.ssh/id_*} are tried.
    @param knownHosts: the known_hosts file to check host keys against
        (and add accepted keys to); default: ssh_config's
        C{UserKnownHostsFile} or C{~/.ssh/known_hosts}, plus the system's.
    @param password: a password to try after the keys.
    @param passphrase: the passphrase of encrypted key files.
    @param acceptNewHostKeys: add an unknown host key to known_hosts (and
        log it) instead of failing.  A changed key always fails.
    @param python: the remote interpreter command (default C{python3}).
    @param sshConfig: the ssh_config file to read instead of
        C{~/.ssh/config} and C{/etc/ssh/ssh_config}.
    @param dontWriteBytecode: pass C{-B} to the remote interpreter.
    @param pool: the L{SshConnectionPool} to share connections through.
    @raise ValueError: for a malformed destination, or an ssh_config that
        needs what Conch cannot do (ProxyJump, ProxyCommand).
    """

    def __init__(
        self,
        destination: str,
        port: int | None = None,
        identity: str | Sequence[str] | None = None,
        knownHosts: str | None = None,
        password: str | None = None,
        passphrase: str | None = None,
        acceptNewHostKeys: bool = False,
        python: str = "python3",
        sshConfig: str | None = None,
        dontWriteBytecode: bool = False,
        pool: SshConnectionPool | None = None,
    ) -> None:
        self.target = SshTarget(
            destination, port, identity, knownHosts, acceptNewHostKeys, sshConfig
        )
        self.command = remoteCommand(python, dontWriteBytecode)
        self.python = python
        self._specParts = _specParts(
            destination,
            port,
            identity,
            knownHosts,
            acceptNewHostKeys,
            python,
            sshConfig,
            dontWriteBytecode,
        )
        self._password = password
        self._passphrase = passphrase
        self._pool = pool if pool is not None else defaultPool
        self.description = f"ssh {self.target}"

    def __repr__(self) -> str:
        return f"<SshTransport {self.target} python={self.python!r}>"

    def spec(self) -> str:
        """A spec string for a gateway made with this transport (no secrets in it)."""
        return "//".join(self._specParts)

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        return sourceBootstrap(config)

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        try:
            connection = self._pool.reserve(
                reactor, self._sharingKey(), lambda: self._connect(reactor)
            )
        except GatewayStartError as e:
            return fail(_forGateway(e, gateway.id, self.target))
        opened: Deferred[IGatewayConnection] = Deferred()

        def ready(connection: SshConnection) -> Deferred[IGatewayConnection]:
            connection.openChannel(
                _GatewaySession(self.command, protocol, gateway, reactor, opened, str(self.target))
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
            self._password,
            self._passphrase,
        )

    def _connect(self, reactor: Any) -> SshConnection:
        """Start a new SSH connection to our target."""
        credentials = _Credentials(
            self.target,
            self._password.encode("utf-8") if self._password is not None else None,
            self._passphrase,
        )
        connection = SshConnection(self._pool, self.target)
        client = _ClientTransport(self.target, reactor, credentials, connection)
        client.start(
            HostnameEndpoint(
                reactor, self.target.hostname, self.target.port, timeout=self.target.connectTimeout
            )
        )
        return connection


def _specParts(
    destination: str,
    port: int | None,
    identity: str | Sequence[str] | None,
    knownHosts: str | None,
    acceptNewHostKeys: bool,
    python: str,
    sshConfig: str | None,
    dontWriteBytecode: bool,
) -> list[str]:
    """The parts of a spec string that says what these arguments say."""
    if port is not None:
        user, host, _ = parseDestination(destination)
        host = f"[{host}]" if ":" in host else host
        destination = f"{user}@{host}:{port}" if user else f"{host}:{port}"
    parts = [f"ssh={destination}", f"python={python}"]
    if isinstance(identity, str):
        parts.append(f"ssh_identity={identity}")
    if knownHosts:
        parts.append(f"ssh_known_hosts={knownHosts}")
    if sshConfig:
        parts.append(f"ssh_config={sshConfig}")
    if acceptNewHostKeys:
        parts.append("ssh_accept_new")
    if dontWriteBytecode:
        parts.append("dont_write_bytecode")
    return parts


def _forGateway(error: GatewayStartError, gatewayId: str, target: SshTarget) -> GatewayStartError:
    """The same kind of error, saying which gateway and where."""
    return type(error)(f"gateway {gatewayId} failed to start: ssh {target}: {error}")


def sshTransportForSpec(spec: Any) -> IGatewayTransport:
    """
    The transport for an C{ssh=} spec: Conch, or the system C{ssh} binary
    with C{//ssh_client=openssh}.

    Spec keys: C{ssh=[user@]host[:port]}, C{python=}, C{ssh_identity=} (a
    key file), C{ssh_known_hosts=} (a known_hosts file),
    C{ssh_accept_new}, C{ssh_config=} (an ssh_config file),
    C{ssh_client=conch|openssh}, C{dont_write_bytecode}.  Passwords and
    passphrases have no spec key (a spec is shown in logs): use the agent,
    or L{txexecnet.SshGateway}.
    """
    client = spec.ssh_client or "conch"
    options = dict(
        identity=spec.ssh_identity,
        knownHosts=spec.ssh_known_hosts,
        acceptNewHostKeys=bool(spec.ssh_accept_new),
        python=spec.python or "python3",
        sshConfig=spec.ssh_config,
        dontWriteBytecode=bool(spec.dont_write_bytecode),
    )
    if client == "conch":
        return SshTransport(spec.ssh, **options)
    if client == "openssh":
        from .openssh import OpenSshTransport

        return OpenSshTransport(spec.ssh, **options)
    raise ValueError(f"ssh_client={client!r} in {spec}: use 'conch' or 'openssh'")


# --- sharing connections -------------------------------------------------------


class SshConnectionPool:
    """
    The live SSH connections, by reactor and (user, host, port), so that
    gateways to the same place share one: each gateway takes a session
    slot (L{reserve}); a connection closes when its last slot is released.

    @ivar maxSessions: slots per connection before another is opened.
    """

    def __init__(self, maxSessions: int = MAX_SESSIONS) -> None:
        self.maxSessions = maxSessions
        self._connections: dict[tuple[Any, ...], list[SshConnection]] = {}

    def reserve(
        self, reactor: Any, key: tuple[Any, ...], connect: Callable[[], SshConnection]
    ) -> SshConnection:
        """
        A connection to C{key} with a session slot taken for the caller:
        one already open (or opening) with a free slot, else a new one made
        by C{connect()}.
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

    def __init__(self, pool: SshConnectionPool, target: SshTarget) -> None:
        SSHConnection.__init__(self)
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
        log.debug("ssh connection to {target} ready", target=self.target)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self)

    def startFailed(self, error: GatewayStartError) -> None:
        """The connection could not be made ready: fail every waiter."""
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

    def serviceStopped(self) -> None:
        self._closing = True
        self._pool._forget(self)
        SSHConnection.serviceStopped(self)


# --- the SSH client ----------------------------------------------------------------


class _ClientTransport(SSHClientTransport):
    """
    The SSH transport layer of one connection: checks the host key against
    known_hosts, then authenticates and starts the L{SshConnection}.  Why
    it failed, if it did, becomes a typed L{GatewayStartError}.
    """

    def __init__(
        self, target: SshTarget, reactor: Any, credentials: _Credentials, connection: SshConnection
    ) -> None:
        self._target = target
        self._reactor = reactor
        self._credentials = credentials
        self._connection = connection
        self._stage = "connecting"
        self._error: GatewayStartError | None = None
        self._remoteError: str | None = None
        self._userauth: _UserAuth | None = None
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
        self._connecting = connectProtocol(endpoint, self)
        self._connecting.addErrback(self._connectFailed)

    def _connectFailed(self, reason: Failure) -> None:
        self._cancelDeadline()
        self._connection.startFailed(
            self._error
            or GatewayStartError(
                f"cannot connect to {_hostPort(self._target)}: {reason.getErrorMessage()}"
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
        self._userauth = _UserAuth(self._target, self._credentials, self._connection)
        self._userauth.prepare(self._reactor).addCallback(
            lambda _: self.requestService(self._userauth)
        )

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
            f"no SSH connection to {_hostPort(self._target)} after "
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
                f"SSH connection to {_hostPort(self._target)} lost: "
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
            f"the SSH connection to {_hostPort(self._target)} ended during {self._stage}: {why}"
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


def _hostPort(target: SshTarget) -> str:
    host = f"[{target.hostname}]" if ":" in target.hostname else target.hostname
    return f"{host}:{target.port}"


class _Identity:
    """
    A key to offer: its public half at once, its signature when the server
    has said it would accept the key.

    @ivar public: the public L{Key}.
    @ivar source: where it comes from, for messages.
    """

    def __init__(self, public: Key, source: str) -> None:
        self.public = public
        self.source = source

    def sign(self, data: bytes, algorithm: bytes) -> Deferred[bytes]:
        raise NotImplementedError()


class _FileIdentity(_Identity):
    """A private key file, decrypted only when its signature is needed."""

    def __init__(self, public: Key, path: str, passphrase: str | None, private: Key | None) -> None:
        _Identity.__init__(self, public, path)
        self._path = path
        self._passphrase = passphrase
        self._private = private

    def sign(self, data: bytes, algorithm: bytes) -> Deferred[bytes]:
        if self._private is None:
            passphrase = self._passphrase.encode("utf-8") if self._passphrase is not None else None
            try:
                self._private = Key.fromFile(self._path, passphrase=passphrase)
            except EncryptedKeyError:
                return fail(
                    ValueError(f"{self._path} is accepted by the server but needs a passphrase")
                )
            except (BadKeyError, OSError) as e:
                return fail(ValueError(f"cannot load {self._path}: {e}"))
        return succeed(self._private.sign(data, signatureType=algorithm))


class _AgentIdentity(_Identity):
    """A key held by the ssh-agent, which signs for us."""

    def __init__(self, public: Key, comment: str, agent: SSHAgentClient) -> None:
        _Identity.__init__(self, public, f"agent key {comment or fingerprint(public.blob())}")
        self._agent = agent

    def sign(self, data: bytes, algorithm: bytes) -> Deferred[bytes]:
        flags = {b"rsa-sha2-256": _SSH_AGENT_RSA_SHA2_256, b"rsa-sha2-512": _SSH_AGENT_RSA_SHA2_512}
        request = NS(self.public.blob()) + NS(data) + struct.pack(">L", flags.get(algorithm, 0))

        def signed(response: bytes) -> bytes:
            if response[:1] != bytes((_AGENT_SIGN_RESPONSE,)):
                raise ValueError(f"the ssh-agent refused to sign with {self.source}")
            return getNS(response[1:])[0]

        return self._agent.sendRequest(_agent.AGENTC_SIGN_REQUEST, request).addCallback(signed)


class _Credentials:
    """
    The keys and password to authenticate with, loaded when a connection is
    made: key files now (their public halves), agent keys once the
    connection is secure.

    @raise GatewayStartError: for an identity file the caller named that
        cannot be read.
    """

    def __init__(self, target: SshTarget, password: bytes | None, passphrase: str | None) -> None:
        self.password = password
        self.notes: list[str] = []
        self.files: list[_FileIdentity] = []
        for path in target.identityFiles:
            identity = self._load(path, passphrase, path in target.explicitIdentities)
            if identity is not None:
                self.files.append(identity)
        self._target = target

    def _load(self, path: str, passphrase: str | None, explicit: bool) -> _FileIdentity | None:
        if not os.path.exists(path):
            if explicit:
                raise GatewayStartError(f"identity file {path} does not exist")
            return None
        public = private = None
        try:
            if os.path.exists(path + ".pub") and passphrase is None:
                public = Key.fromFile(path + ".pub")
            else:
                private = Key.fromFile(
                    path, passphrase=passphrase.encode("utf-8") if passphrase is not None else None
                )
                public = private.public()
        except EncryptedKeyError:
            self.notes.append(f"{path} needs a passphrase (and has no {path}.pub)")
            return None
        except (BadKeyError, ValueError, OSError) as e:
            if explicit:
                raise GatewayStartError(f"cannot load identity file {path}: {e}") from None
            self.notes.append(f"{path} skipped: {e}")
            return None
        return _FileIdentity(public, path, passphrase, private)

    def agentIdentities(
        self, reactor: Any
    ) -> Deferred[tuple[list[_Identity], SSHAgentClient | None]]:
        """The agent's keys (only those of our files if IdentitiesOnly)."""
        socketPath = self._target.agentSocket
        if socketPath is None:
            return succeed(([], None))
        endpoint = UNIXClientEndpoint(reactor, socketPath, timeout=5)
        d = endpoint.connect(Factory.forProtocol(SSHAgentClient))

        def connected(agentClient: SSHAgentClient) -> Deferred[Any]:
            return agentClient.requestIdentities().addCallback(lambda ids: (ids, agentClient))

        def listed(result: tuple[list[tuple[bytes, bytes]], SSHAgentClient]) -> Any:
            ids, agentClient = result
            own = {f.public.blob() for f in self.files}
            identities: list[_Identity] = []
            for blob, comment in ids:
                if self._target.identitiesOnly and blob not in own:
                    continue
                try:
                    public = Key.fromString(blob)
                except BadKeyError:
                    continue
                identities.append(
                    _AgentIdentity(public, comment.decode("utf-8", "replace"), agentClient)
                )
            return identities, agentClient

        def noAgent(f: Failure) -> tuple[list[_Identity], None]:
            self.notes.append(f"ssh-agent at {socketPath} unusable: {f.getErrorMessage()}")
            return [], None

        return d.addCallback(connected).addCallback(listed).addErrback(noAgent)


class _UserAuth(SSHUserAuthClient):
    """
    The client side of C{ssh-userauth}, in the order C{ssh} uses: agent
    keys, then key files (each offered first, signed only if the server
    would accept it), then the password (also for keyboard-interactive).

    RSA keys sign with SHA-2 (C{rsa-sha2-512}/C{-256}) when the server says
    it accepts that, as OpenSSH servers have required since 8.8.
    """

    def __init__(
        self, target: SshTarget, credentials: _Credentials, connection: SshConnection
    ) -> None:
        SSHUserAuthClient.__init__(self, target.user.encode("utf-8"), connection)
        self._target = target
        self._credentials = credentials
        self._identities: deque[_Identity] = deque()
        self._current: tuple[_Identity, bytes] | None = None
        self._agent: SSHAgentClient | None = None
        self._tried: list[str] = []
        self._passwordTried = False
        self._kbdTried = False
        self._serverMethods = b""

    def prepare(self, reactor: Any) -> Deferred[None]:
        """Gather the keys to offer: the agent's first, then files."""

        def gathered(result: tuple[list[_Identity], SSHAgentClient | None]) -> None:
            agentIdentities, self._agent = result
            seen = {i.public.blob() for i in agentIdentities}
            self._identities.extend(agentIdentities)
            self._identities.extend(
                f for f in self._credentials.files if f.public.blob() not in seen
            )

        return self._credentials.agentIdentities(reactor).addCallback(gathered)

    def serviceStopped(self) -> None:
        if self._agent is not None and self._agent.transport is not None:
            self._agent.transport.loseConnection()
            self._agent = None

    def ssh_USERAUTH_FAILURE(self, packet: bytes) -> Any:
        self._serverMethods = getNS(packet)[0]
        return SSHUserAuthClient.ssh_USERAUTH_FAILURE(self, packet)

    def _algorithm(self, key: Key) -> bytes:
        keyType = key.sshType()
        if keyType != b"ssh-rsa":
            return keyType
        accepted = self.transport.peerExtensions.get(b"server-sig-algs", b"").split(b",")
        for algorithm in (b"rsa-sha2-512", b"rsa-sha2-256"):
            if algorithm in accepted:
                return algorithm
        return keyType

    def auth_publickey(self) -> bool:  # type: ignore[override]
        if not self._identities:
            return False
        identity = self._identities.popleft()
        algorithm = self._algorithm(identity.public)
        self._current = (identity, algorithm)
        self._tried.append(identity.source)
        self.askForAuth(b"publickey", b"\x00" + NS(algorithm) + NS(identity.public.blob()))
        return True

    def ssh_USERAUTH_PK_OK_publickey(self, packet: bytes) -> None:
        assert self._current is not None
        identity, algorithm = self._current
        blob = identity.public.blob()
        data = (
            NS(self.transport.sessionID)
            + bytes((MSG_USERAUTH_REQUEST,))
            + NS(self.user)
            + NS(self.instance.name)
            + NS(b"publickey")
            + b"\x01"
            + NS(algorithm)
            + NS(blob)
        )

        def signed(signature: bytes) -> None:
            self.askForAuth(b"publickey", b"\x01" + NS(algorithm) + NS(blob) + NS(signature))

        def unsigned(f: Failure) -> None:
            self._credentials.notes.append(f.getErrorMessage())
            self.askForAuth(b"none", b"")

        maybeDeferred(identity.sign, data, algorithm).addCallbacks(signed, unsigned)

    def getPassword(self, prompt: bytes | None = None) -> Deferred[bytes] | None:
        if self._credentials.password is None or self._passwordTried:
            return None
        self._passwordTried = True
        self._tried.append("password")
        return succeed(self._credentials.password)

    def auth_keyboard_interactive(self) -> bool:  # type: ignore[override]
        if self._credentials.password is None or self._kbdTried:
            return False
        self._kbdTried = True
        self._tried.append("keyboard-interactive password")
        return SSHUserAuthClient.auth_keyboard_interactive(self)

    def getGenericAnswers(
        self, name: bytes, instruction: bytes, prompts: list[tuple[bytes, int]]
    ) -> Deferred[list[str]]:
        password = self._credentials.password
        if password is not None and all(not echo for _, echo in prompts) and len(prompts) <= 1:
            return succeed([password.decode("utf-8")] * len(prompts))
        return fail(
            ValueError(f"cannot answer keyboard-interactive prompts {[p for p, _ in prompts]}")
        )

    def describeFailure(self, serverSaid: str | None) -> str:
        """Why authentication failed, for an L{AuthenticationError}."""
        tried = ", ".join(self._tried) or "nothing (no keys, agent or password)"
        message = f"the server refused to authenticate {self._target.user}: tried {tried}"
        if self._serverMethods:
            message += f"; it accepts {self._serverMethods.decode('ascii', 'replace')}"
        if serverSaid:
            message += f"; it said: {serverSaid}"
        if self._credentials.notes:
            message += "; " + "; ".join(self._credentials.notes)
        return message


# --- one gateway's channel ---------------------------------------------------------


@implementer(IGatewayConnection, IConsumer)
class _GatewaySession(SSHChannel):
    """
    A session channel running the remote interpreter for one gateway: its
    stdout feeds the framing protocol, its stderr the log, and writes are
    queued without copying and sent as the server's window allows.  When
    more than L{HIGH_WATER} bytes wait, the registered producer (the
    framing protocol) is paused until they drop below L{LOW_WATER}.
    """

    name = b"session"

    def __init__(
        self,
        command: bytes,
        frames: Any,
        gateway: Any,
        reactor: Any,
        opened: Deferred[IGatewayConnection],
        where: str,
    ) -> None:
        SSHChannel.__init__(self, localWindow=CHANNEL_WINDOW, localMaxPacket=CHANNEL_MAX_PACKET)
        self.frames = frames
        self.stderr = StderrLog(gateway.id)
        self._gateway = gateway
        self._command = command
        self._reactor = reactor
        self._opened = opened
        self._where = where
        self._running = False
        self._queue: deque[bytes | memoryview] = deque()
        self._queued = 0
        self._producer: IPushProducer | None = None
        self._producerPaused = False
        self._eofWanted = False
        self._end: BaseException | None = None
        self._killCall: Any = None

    # opening

    def channelOpen(self, specificData: bytes) -> None:
        d = self.conn.sendRequest(self, b"exec", NS(self._command), wantReply=True)
        d.addCallbacks(self._execStarted, self._execRefused)

    def openFailed(self, reason: Any) -> None:
        lost = self.conn.lostReason
        if lost is not None:
            why = lost.getErrorMessage()
        else:
            value = reason.value if isinstance(reason, Failure) else reason
            why = f"the server refused a session channel: {value}"
        self.conn.release()
        self._opened.errback(GatewayStartError(why))

    def _execStarted(self, ignored: object) -> None:
        self._running = True
        self.frames.makeConnection(self)
        self._opened.callback(self)

    def _execRefused(self, reason: Failure) -> None:
        lost = self.conn.lostReason
        if lost is not None:
            why = lost.getErrorMessage()
        else:
            why = f"the server refused to run the remote python: {reason.getErrorMessage()}"
        self._opened.errback(GatewayStartError(why))
        self.conn.sendClose(self)

    # incoming

    def dataReceived(self, data: bytes) -> None:
        self.frames.dataReceived(data)

    def extReceived(self, dataType: int, data: bytes) -> None:
        if dataType == EXTENDED_DATA_STDERR:
            self.stderr.received(data)
        else:
            log.debug("ignoring extended data of type {type}", type=dataType)

    def request_exit_status(self, data: bytes) -> int:
        (status,) = struct.unpack(">L", data[:4])
        self._end = ProcessDone(status) if status == 0 else ProcessTerminated(exitCode=status)
        return 1

    def request_exit_signal(self, data: bytes) -> int:
        name, rest = getNS(data)
        signum = getattr(signal, "SIG" + name.decode("ascii", "replace"), None)
        self._end = ProcessTerminated(signal=int(signum) if signum is not None else name.decode())
        return 1

    def eofReceived(self) -> None:
        pass

    def closeReceived(self) -> None:
        # Nothing more can be delivered: drop what waits and close our side.
        self._queue.clear()
        self._queued = 0
        self._eofWanted = False
        self.conn.sendClose(self)

    def closed(self) -> None:
        if self._killCall is not None and self._killCall.active():
            self._killCall.cancel()
        self._queue.clear()
        self._queued = 0
        self.stderr.flush()
        self.conn.release()
        if not self._running:
            return  # the exec reply's errback reports it
        self._running = False
        reason = self._end
        if reason is None:
            lost = self.conn.lostReason
            reason = lost.value if lost is not None else ConnectionDone("ssh channel closed")
        self.frames.connectionLost(Failure(reason))

    # outgoing (ITransport, IConsumer)

    def write(self, data: bytes) -> None:
        if data and not self.localClosed:
            self._queue.append(data)
            self._queued += len(data)
            self._flush()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        if not self.localClosed:
            for chunk in data:
                if chunk:
                    self._queue.append(chunk)
                    self._queued += len(chunk)
            self._flush()

    def addWindowBytes(self, data: int) -> None:
        self.remoteWindowLeft += data
        self._flush()

    def _flush(self) -> None:
        while self._queue and self.remoteWindowLeft > 0 and not self.localClosed:
            packet = self._nextPacket(min(self.remoteWindowLeft, self.remoteMaxPacket))
            self.conn.sendData(self, packet)
            self.remoteWindowLeft -= len(packet)
            self._queued -= len(packet)
        if not self._queue:
            if self._eofWanted:
                self._eofWanted = False
                self.conn.sendEOF(self)
            if self.closing:
                self.conn.sendClose(self)
        self._steerProducer()

    def _nextPacket(self, limit: int) -> bytes | memoryview:
        """Take up to C{limit} queued bytes: a slice of one big write, or several small ones joined."""
        queue = self._queue
        first = queue[0]
        if len(first) >= limit or len(queue) == 1:
            if len(first) <= limit:
                return queue.popleft()
            view = memoryview(first)
            queue[0] = view[limit:]
            return view[:limit]
        pieces = []
        size = 0
        while queue and size < limit:
            chunk = queue[0]
            take = min(len(chunk), limit - size)
            if take == len(chunk):
                pieces.append(queue.popleft())
            else:
                view = memoryview(chunk)
                pieces.append(view[:take])
                queue[0] = view[take:]
            size += take
        return b"".join(pieces)

    def _steerProducer(self) -> None:
        if self._producer is None:
            return
        if not self._producerPaused and self._queued > HIGH_WATER:
            self._producerPaused = True
            self._producer.pauseProducing()
        elif self._producerPaused and self._queued <= LOW_WATER:
            self._producerPaused = False
            self._producer.resumeProducing()

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        if not streaming:
            raise ValueError("an SSH gateway session takes push producers only")
        self._producer = producer
        self._producerPaused = False
        self._steerProducer()

    def unregisterProducer(self) -> None:
        self._producer = None

    def loseConnection(self) -> None:
        self.closing = True
        if not self._queue:
            self.conn.sendClose(self)

    # IGatewayConnection

    def closeWrite(self) -> None:
        if not self.localClosed:
            self._eofWanted = True
            self._flush()

    def kill(self) -> None:
        """
        SIGKILL the remote interpreter and close the channel; if the server
        does not confirm within L{KILL_GRACE} seconds, drop the whole
        connection, which is then unresponsive.

        The standard way is a C{signal} request, but OpenSSH's sshd refuses
        it for root logins (and versions before 7.9 ignore it), so the
        interpreter, whose pid its hello told us, is also killed with
        C{kill} run in a channel of its own.
        """
        if self.localClosed or self._killCall is not None:
            return
        self._queue.clear()
        self._queued = 0
        self.conn.sendRequest(self, b"signal", NS(b"KILL"))
        pid = self._gateway.remoteinfo.get("pid")
        if self._end is None and isinstance(pid, int):
            self.conn.openChannel(_CommandSession(b"kill -KILL %d" % (pid,)))
        self.conn.sendClose(self)
        if self.conn.channels.get(self.id) is self:
            self._killCall = self._reactor.callLater(KILL_GRACE, self._abandon)

    def _abandon(self) -> None:
        log.warn(
            "{where}: the server did not close a killed session; dropping the connection",
            where=self._where,
        )
        self.conn.transport.transport.abortConnection()

    def stderrTail(self) -> str:
        return self.stderr.tail()

    def logPrefix(self) -> str:
        return f"txexecnet-ssh {self._where}"


class _CommandSession(SSHChannel):
    """A session channel that runs one command, ignores its output, and closes."""

    name = b"session"

    def __init__(self, command: bytes) -> None:
        SSHChannel.__init__(self)
        self._command = command

    def channelOpen(self, specificData: bytes) -> None:
        d = self.conn.sendRequest(self, b"exec", NS(self._command), wantReply=True)
        d.addErrback(
            lambda f: log.debug(
                "{command!r} not run: {why}", command=self._command, why=f.getErrorMessage()
            )
        )

    def openFailed(self, reason: Any) -> None:
        log.debug("no channel for {command!r}: {why}", command=self._command, why=reason)

    def dataReceived(self, data: bytes) -> None:
        pass

    def extReceived(self, dataType: int, data: bytes) -> None:
        pass

"""
Socket gateways: a connection to a txexecnet socket server
(C{twistd execnet-server}, or the standalone L{txexecnet.script.socketserver}),
which starts a fresh interpreter for it; the client then bootstraps that
interpreter as it would a popen child.

Where to connect is written C{HOST:PORT} (C{[::1]:7770} for IPv6), or as a
Twisted client endpoint string for anything else::

    socket=127.0.0.1:7770
    socket=tls:example.org:7771:trustRoots=/etc/execnet/ca:certificate=me.pem:privateKey=me.key
    socket=unix:path=/run/execnet.sock

Before the bootstrap, the server greets the client and, if it has a shared
secret, challenges it (see L{txexecnet.script.socketserver} for the wire
format).  A client that has a secret insists on the server proving it has
the same one.

The socket servers execnet users run (execnet's C{socketserver.py}) say
nothing and wait for one line, a program they run in their own process: a
client without a secret that hears no greeting within L{GREETING_WAIT}
seconds sends them the runtime that way, and serves over that socket.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, clientFromString
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import (
    IConsumer,
    IStreamClientEndpointStringParserWithReactor,
    ITCPTransport,
)
from twisted.plugin import getPlugins
from twisted.internet.protocol import Protocol
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from ..bootstrap import compiledBootstrap, execnetServerBootstrap, sourceBootstrap
from ..errors import AuthenticationError, GatewayStartError
from ..interfaces import IGatewayConnection, IGatewayTransport
from ..script import socketserver as handshake
from .factories import quietFactory
from .thread import SocketConnection

__all__ = [
    "SocketTransport",
    "checkAddress",
    "endpointTypes",
    "parseHostPort",
    "tcpTransportOf",
    "transportForSpec",
    "DEFAULT_TIMEOUT",
    "GREETING_WAIT",
    "SERVER_KINDS",
]

#: Seconds to connect and complete the handshake before giving up.
DEFAULT_TIMEOUT = 30.0

#: Seconds a client without a secret waits for a txexecnet server's
#: greeting before it takes the server for one of execnet's kind, which
#: greets nobody (a txexecnet server greets as it accepts).
GREETING_WAIT = 1.0

#: Which servers a L{SocketTransport} may expect.
SERVER_KINDS = ("auto", "txexecnet", "execnet")

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]/]+)):(?P<port>[0-9]+)$")


def tcpTransportOf(transport: Any) -> ITCPTransport | None:
    """
    The TCP connection under C{transport} (itself, or under its TLS), if it is one.

    @param transport: a protocol's transport.
    """
    if isinstance(transport, TLSMemoryBIOProtocol):
        transport = transport.transport
    return transport if ITCPTransport.providedBy(transport) else None


def endpointTypes() -> list[str]:
    """The prefixes of the client endpoint strings Twisted can parse here (C{tcp}, C{tls}...)."""
    plugins = getPlugins(IStreamClientEndpointStringParserWithReactor)
    return ["tcp", "ssl", "unix"] + sorted(plugin.prefix for plugin in plugins)


def checkAddress(address: str) -> None:
    """
    @param address: the address.
    @raise ValueError: unless C{address} is C{HOST:PORT}, C{[V6ADDR]:PORT},
        or a client endpoint string of a type Twisted knows.
    """
    if parseHostPort(address) is not None:
        return
    types = endpointTypes()
    if address.partition(":")[0].lower() not in types:
        raise ValueError(
            f"socket={address}: write HOST:PORT (e.g. 127.0.0.1:7770), [V6ADDR]:PORT, "
            f"or a client endpoint string of type {', '.join(types)} "
            f"(e.g. unix:path=/run/execnet.sock)"
        )


def parseHostPort(address: str) -> tuple[str, int] | None:
    """
    Split C{"host:port"} or C{"[v6addr]:port"}; C{None} for anything else
    (which is then taken as a Twisted endpoint string).

    @param address: the address.
    """
    match = _HOST_PORT.match(address)
    if match is None:
        return None
    return match.group("v6") or match.group("host"), int(match.group("port"))


@implementer(IGatewayTransport)
class SocketTransport:
    """
    Connect to a txexecnet socket server.

    @param address: C{"host:port"}, C{"[v6addr]:port"}, or a Twisted client
        endpoint string (C{tls:...}, C{unix:path=...}, C{tcp:host=...:port=...}).
    @param secret: the server's shared secret (bytes, or text that is
        encoded as UTF-8), or C{None} for a server without one.
    @param timeout: seconds to connect and finish the handshake.
    @param server: C{"txexecnet"} for a txexecnet socket server,
        C{"execnet"} for one of execnet's kind (which runs what it is sent
        in its own process, without authentication), C{"auto"} to tell
        them apart by the greeting (see L{GREETING_WAIT}); a client with a
        secret expects a txexecnet server.
    @raise ValueError: for a malformed address, an empty secret, an
        unknown C{server}, or a secret for an execnet server.
    """

    def __init__(
        self,
        address: str,
        secret: bytes | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        server: str = "auto",
    ) -> None:
        checkAddress(address)
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if secret is not None and not secret:
            raise ValueError("the secret is empty")
        if server not in SERVER_KINDS:
            raise ValueError(f"server={server!r}: use one of {', '.join(SERVER_KINDS)}")
        if secret is not None and server == "execnet":
            raise ValueError("execnet's socket servers take no secret")
        self.server = "txexecnet" if secret is not None and server == "auto" else server
        self.address = address
        self._secret = secret
        self._timeout = timeout
        self._config: dict[str, Any] = {}
        self.description = f"socket {address}"
        self.helloTimeout: float | None = None  # the remote host may need the whole start timeout

    @classmethod
    def fromSecretFile(
        cls, address: str, path: str, timeout: float = DEFAULT_TIMEOUT
    ) -> SocketTransport:
        """
        A transport whose secret is kept in the file C{path}.

        @param address: the server's address, as for L{SocketTransport}.
        @param path: the file holding the shared secret (surrounding
            whitespace, such as a final newline, is not part of it).
        @param timeout: seconds to connect and finish the handshake.
        @raise ValueError: if the file cannot be read or is empty.
        """
        try:
            secret = handshake.read_secret_file(path)
        except OSError as e:
            raise ValueError(f"cannot read secret_file {path!r}: {e.strerror}") from None
        return cls(address, secret, timeout)

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        # Which bootstrap to send is only known once the server has greeted
        # us; the handshake sends it.
        self._config = config
        return b""

    def endpoint(self, reactor: Any) -> Any:
        """
        The client endpoint that reaches the server.

        @param reactor: the reactor to connect with.
        """
        hostPort = parseHostPort(self.address)
        if hostPort is not None:
            host, port = hostPort
            return HostnameEndpoint(reactor, host, port, timeout=self._timeout)
        return clientFromString(reactor, self.address)

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        prefix = f"gateway {gateway.id} failed to start"
        try:
            endpoint = self.endpoint(reactor)
        except Exception as e:
            return fail(GatewayStartError(f"{prefix}: bad endpoint {self.address!r}: {e}"))
        handshakeProtocol = _ClientHandshake(
            protocol,
            self._config,
            self._secret,
            prefix,
            self.address,
            reactor,
            self._timeout,
            self.server,
        )

        def connectFailed(f: Failure) -> Failure:
            if f.check(ConnectError, DNSLookupError):
                why = f"{prefix}: cannot connect to {self.address}: {f.value}"
                return Failure(GatewayStartError(why))
            return f

        d = endpoint.connect(quietFactory(lambda: handshakeProtocol))
        d.addCallbacks(lambda _: handshakeProtocol.opened, connectFailed)
        return d


class _ServerConnection(SocketConnection):
    """
    Ends a socket gateway.  It never half-closes: the server takes a
    client's end of input for the client going away, and kills its child at
    once; the gateway-exit frame alone asks the remote side to finish.
    """

    def closeWrite(self) -> None:
        pass


class _ClientHandshake(Protocol):
    """
    Speaks the client's part of the handshake, then hands the connection to
    the gateway's frame protocol and passes everything on to it.

    @ivar opened: fires with the L{IGatewayConnection} once the server has
        accepted us, or fails with L{AuthenticationError} or
        L{GatewayStartError}.
    """

    # A TCP, TLS or unix connection: it can be aborted.
    transport: Any

    def __init__(
        self,
        frames: Any,
        config: dict[str, Any],
        secret: bytes | None,
        prefix: str,
        address: str,
        reactor: Any,
        timeout: float,
        server: str,
    ) -> None:
        self._frames = frames
        self._server = server
        self._greetingTimer: Any = None
        self._config = config
        self._secret = secret
        self._prefix = prefix
        self._address = address
        self._reactor = reactor
        self._timeout = timeout
        self._timer: Any = None
        self._buffer = b""
        self._serverNonce = b""
        self._clientNonce = b""
        self._bytecode: bytes | None = None
        self._open = False
        self.opened: Deferred[IGatewayConnection] = Deferred()

    def connectionMade(self) -> None:
        # A frame is often one short packet waiting for its answer: Nagle
        # would hold it back.
        tcp = tcpTransportOf(self.transport)
        if tcp is not None:
            tcp.setTcpNoDelay(True)
        self._timer = self._reactor.callLater(self._timeout, self._timedOut)
        if self._server == "execnet":
            self._startExecnet()
        elif self._server == "auto":
            self._greetingTimer = self._reactor.callLater(GREETING_WAIT, self._startExecnet)

    def _startExecnet(self) -> None:
        self._greetingTimer = None
        self._open = True
        self._cancelTimer()
        self.transport.write(execnetServerBootstrap(self._config))
        self._frames.makeConnection(self.transport)
        self.opened.callback(_ServerConnection(self))

    def dataReceived(self, data: bytes) -> None:
        if self._open:
            self._frames.dataReceived(data)
            return
        if self._greetingTimer is not None:
            self._greetingTimer.cancel()
            self._greetingTimer = None
        self._buffer += data
        while not self._open and not self.opened.called:
            line, newline, rest = self._buffer.partition(b"\n")
            if not newline:
                if len(self._buffer) > handshake.MAX_LINE:
                    self._fail(
                        GatewayStartError(
                            f"{self._prefix}: {self._address} is not a txexecnet server"
                        )
                    )
                return
            self._buffer = rest
            try:
                self._lineReceived(line.rstrip(b"\r"))
            except handshake.Refused as e:
                error = AuthenticationError if "authentication" in str(e) else GatewayStartError
                self._fail(error(f"{self._prefix}: the server refused us: {e}"))
            except handshake.HandshakeError as e:
                self._fail(GatewayStartError(f"{self._prefix}: {e}"))

    def _lineReceived(self, line: bytes) -> None:
        if not self._serverNonce:
            nonce, self._bytecode = handshake.parse_greeting(line)
            if nonce is None:
                if self._secret is not None:
                    self._fail(
                        AuthenticationError(
                            f"{self._prefix}: we have a secret but the server at {self._address} "
                            "asks for none, so it cannot prove it is the server we mean"
                        )
                    )
                    return
                self._start()
                return
            if self._secret is None:
                self._fail(
                    AuthenticationError(
                        f"{self._prefix}: the server at {self._address} requires a shared "
                        "secret (give secret= or secret_file=)"
                    )
                )
                return
            self._serverNonce = nonce
            response, self._clientNonce = handshake.auth_response(self._secret, nonce)
            self.transport.write(response)
            return
        try:
            handshake.check_ok_line(self._secret, self._serverNonce, self._clientNonce, line)
        except handshake.Refused:
            raise
        except handshake.HandshakeError as e:
            self._fail(AuthenticationError(f"{self._prefix}: {e}"))
            return
        self._start()

    def _start(self) -> None:
        self._cancelTimer()
        self._open = True
        rest, self._buffer = self._buffer, b""
        # A server whose children run our Python version gets the runtime
        # compiled, which saves each child compiling it.
        if self._bytecode == importlib.util.MAGIC_NUMBER:
            self.transport.write(compiledBootstrap(self._config))
        else:
            self.transport.write(sourceBootstrap(self._config))
        if isinstance(self.transport, TLSMemoryBIOProtocol):
            # Twisted's TLS transport takes producers (and passes the pauses
            # on) without declaring it.
            alsoProvides(self.transport, IConsumer)
        self._frames.makeConnection(self.transport)
        self.opened.callback(_ServerConnection(self))
        if rest:
            self._frames.dataReceived(rest)

    def _fail(self, error: Exception) -> None:
        self._cancelTimer()
        if not self.opened.called:
            self.opened.errback(Failure(error))
        self.transport.abortConnection()

    def _timedOut(self) -> None:
        self._timer = None
        self._fail(
            GatewayStartError(
                f"{self._prefix}: no handshake from {self._address} within {self._timeout:g} s"
            )
        )

    def _cancelTimer(self) -> None:
        for timer in (self._timer, self._greetingTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._greetingTimer = None

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._open:
            self._frames.connectionLost(reason)
            return
        self._cancelTimer()
        if not self.opened.called:
            self.opened.errback(
                Failure(
                    GatewayStartError(
                        f"{self._prefix}: {self._address} closed the connection during the "
                        f"handshake ({reason.getErrorMessage() if reason else 'no reason'})"
                    )
                )
            )


def transportForSpec(spec: Any, group: Any) -> SocketTransport:
    """
    The transport of a C{socket=} spec, with the secret of its C{secret_file=}.

    @param spec: the L{XSpec}.
    @param group: the group the gateway joins (not used).
    """
    if spec.secret_file:
        return SocketTransport.fromSecretFile(spec.socket, spec.secret_file)
    return SocketTransport(spec.socket)

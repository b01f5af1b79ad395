"""
The socket server behind C{twistd execnet-server}.

Each accepted connection is authenticated first (when the server has a
secret), then gets a fresh child interpreter whose stdin and stdout the
server bridges to the socket; the client bootstraps that child exactly as
it bootstraps a popen gateway.  The server keeps out of the way of the
frames but reads their headers on the way in, so it can drop a client that
sends a malformed or oversized frame before the child has to.

A connection and its child live and die together: the child ending closes
the connection, the connection dropping kills the child (and its process
group), and stopping the server kills every child.  A client's end of input
counts as the client going away, since a killed client's socket ends just
so; txexecnet clients never half-close, they end a gateway with its exit
frame.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from typing import Any, Callable

from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import ProcessTerminated
from twisted.internet.interfaces import IPushProducer, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._remote import DEFAULT_MAX_FRAME_SIZE, HEADER, HEADER_SIZE, ProtocolError, check_header
from .script import socketserver as handshake
from .transports._stderr import StderrLog
from .transports.socket import tcpTransportOf
from .transports.spawn import SpawnedProcess

__all__ = [
    "ExecnetServerFactory",
    "ExecnetServerProtocol",
    "ExecnetServerService",
    "bootstrapBodySize",
]

log = Logger(namespace="txexecnet.server")

#: Seconds L{ExecnetServerFactory.stopAll} waits for killed children to be reaped.
STOP_TIMEOUT = 10.0


class ExecnetServerFactory(Factory["ExecnetServerProtocol"]):
    """
    Makes an L{ExecnetServerProtocol} for each connection, and keeps them
    so that they can be counted and stopped together.

    @param reactor: the reactor children are spawned with (default: the
        global one).
    @param python: the child interpreter's argument list (default: this
        interpreter).
    @param secret: the shared secret clients must prove they know, or
        C{None} to let anyone who can connect in.
    @param maxConnections: connections beyond this many are refused.
    @param idleTimeout: seconds a new connection may take to authenticate
        and send its whole bootstrap line.
    @param maxFrameSize: the largest frame payload a client may send.
    @param memoryLimit: each child's address space cap, in MiB (0: none).
    """

    def __init__(
        self,
        reactor: Any = None,
        python: list[str] | None = None,
        secret: bytes | None = None,
        maxConnections: int = 64,
        idleTimeout: float = 30.0,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        memoryLimit: int = 0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.python = list(python or [sys.executable])
        self.secret = secret
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.maxFrameSize = maxFrameSize
        self.memoryLimit = memoryLimit
        self.bytecode = bytecodeMagic(self.python)
        self.connections: set[ExecnetServerProtocol] = set()
        self.noisy = False
        self._counter = 0

    def buildProtocol(self, addr: Any) -> ExecnetServerProtocol:
        self._counter += 1
        return ExecnetServerProtocol(self, f"c{self._counter}", addr)

    def childArgs(self) -> list[str]:
        """The argument vector of a per-connection child."""
        program = handshake.child_program(os.getpid(), self.memoryLimit)
        return self.python + ["-u", "-c", program]

    def stopAll(self) -> Deferred[None]:
        """
        Kill every child and drop every connection; fire once the children
        have been reaped (or after L{STOP_TIMEOUT} seconds).
        """
        connections = list(self.connections)
        waits = [connection.shutDown("the server is stopping") for connection in connections]
        d: Deferred[Any] = DeferredList(waits, consumeErrors=True)
        d.addTimeout(STOP_TIMEOUT, self.reactor)
        return d.addBoth(lambda _: None)


class ExecnetServerProtocol(Protocol):
    """
    One client: the handshake, then a child bridged to the socket.

    What the client sends goes through three stages, each a method that
    takes the bytes received: the authentication line (with a secret), the
    bootstrap (its line checked, and the runtime the line announces, then
    both handed to a freshly started child), and frames (their headers
    checked on the way to the child).

    @ivar id: the connection's name in log lines (C{c1}, C{c2}...).
    """

    factory: ExecnetServerFactory

    # A TCP, TLS or unix connection: it takes producers and can be aborted.
    transport: Any

    def __init__(self, factory: ExecnetServerFactory, connectionId: str, address: Any) -> None:
        """
        @param factory: the factory that keeps the server's settings and connections.
        @param connectionId: the connection's name in the log.
        @param address: the client's address.
        """
        self.factory = factory
        self.id = connectionId
        self._peer = _describeAddress(address)
        self._received: Callable[[bytes], None] = self._ignore
        self._buffer = bytearray()
        self._nonce = b""
        self._bootstrapSize: int | None = None
        self._deadline: Any = None
        self._child: _Child | None = None
        self._scanner = _FrameScanner(factory.maxFrameSize)
        self._closed = False

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        tcp = tcpTransportOf(self.transport)
        if tcp is not None:
            tcp.setTcpNoDelay(True)
            tcp.setTcpKeepAlive(True)
        if len(self.factory.connections) > self.factory.maxConnections:
            self._refuse(
                f"too many connections ({self.factory.maxConnections} allowed)",
                "server busy: too many connections",
            )
            return
        log.info("{connection}: connection from {peer}", connection=self.id, peer=self._peer)
        self._deadline = self.factory.reactor.callLater(self.factory.idleTimeout, self._timedOut)
        if self.factory.secret is None:
            self.transport.write(handshake.greeting(None, self.factory.bytecode))
            self._received = self._bootstrapData
        else:
            self._nonce = handshake.new_nonce()
            self.transport.write(handshake.greeting(self._nonce, self.factory.bytecode))
            self._received = self._authData

    def dataReceived(self, data: bytes) -> None:
        self._received(data)

    # --- the stages ----------------------------------------------------------

    def _ignore(self, data: bytes) -> None:
        pass

    def _authData(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > handshake.MAX_LINE:
                self._refuse("authentication failed: no response line", "authentication failed")
            return
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        rest = bytes(self._buffer[end + 1 :])
        self._buffer = bytearray()
        assert self.factory.secret is not None
        try:
            clientNonce = handshake.check_auth_response(self.factory.secret, self._nonce, line)
        except handshake.HandshakeError as e:
            self._refuse(f"authentication failed: {e}", "authentication failed")
            return
        log.info("{connection}: authenticated", connection=self.id)
        self.transport.write(handshake.ok_line(self.factory.secret, self._nonce, clientNonce))
        self._received = self._bootstrapData
        if rest:
            self._bootstrapData(rest)

    def _bootstrapData(self, data: bytes) -> None:
        # The whole bootstrap is gathered before a child is started for it,
        # so a client that stalls or sends junk costs no process.
        searchFrom = len(self._buffer)
        self._buffer += data
        if self._bootstrapSize is None:
            end = self._buffer.find(b"\n", searchFrom)
            if end < 0:
                if len(self._buffer) > handshake.MAX_BOOTSTRAP_SIZE:
                    limit = handshake.MAX_BOOTSTRAP_SIZE
                    self._drop(f"no bootstrap line in the first {limit} bytes")
                return
            try:
                bodySize = bootstrapBodySize(bytes(self._buffer[:end]))
            except ValueError as e:
                self._drop(f"bad bootstrap: {e}")
                return
            self._bootstrapSize = end + 1 + bodySize
        if len(self._buffer) < self._bootstrapSize:
            return
        bootstrap = bytes(self._buffer[: self._bootstrapSize])
        rest = bytes(self._buffer[self._bootstrapSize :])
        self._buffer = bytearray()
        self._cancelDeadline()
        self._startChild(bootstrap)
        if self._child is None:
            return
        self._received = self._frameData
        if rest:
            self._frameData(rest)

    def _frameData(self, data: bytes) -> None:
        try:
            self._scanner.scan(data)
        except ProtocolError as e:
            self._drop(f"protocol error: {e}")
            return
        assert self._child is not None
        self._child.write(data)

    # --- the child -----------------------------------------------------------

    def _startChild(self, bootstrap: bytes) -> None:
        child = _Child(self)
        args = self.factory.childArgs()
        try:
            child.start(self.factory.reactor, args)
        except OSError as e:
            self._drop(f"cannot start {args[0]}: {e}")
            return
        self._child = child
        log.info(
            "{connection}: child {pid} started for {peer}",
            connection=self.id,
            pid=child.pid,
            peer=self._peer,
        )
        child.write(bootstrap)

    def childEnded(self, reason: Failure) -> None:
        """
        The child has exited and its output has all been forwarded.

        @param reason: how the child ended.
        """
        log.info(
            "{connection}: child {pid} {how}; closing the connection",
            connection=self.id,
            pid=self._child.pid if self._child else "?",
            how=_describeExit(reason),
        )
        self._close()

    # --- ending --------------------------------------------------------------

    def _refuse(self, why: str, tell: str) -> None:
        """Refuse the client before any child exists: say why, and close."""
        log.warn(
            "{connection}: refused {peer}: {why}", connection=self.id, peer=self._peer, why=why
        )
        self._received = self._ignore
        self.transport.write(handshake.refusal(tell))
        self._close()

    def _drop(self, why: str) -> None:
        """The client misbehaved: log it, kill its child, close."""
        log.warn("{connection}: closing: {why}", connection=self.id, why=why)
        self._received = self._ignore
        self._close()

    def _timedOut(self) -> None:
        self._deadline = None
        stage = "authenticate" if self._received == self._authData else "send its bootstrap"
        self._drop(f"the client did not {stage} within {self.factory.idleTimeout:g} s")

    def _cancelDeadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancelDeadline()
        if self._child is not None:
            self._child.kill()
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def shutDown(self, why: str) -> Deferred[None]:
        """
        End this connection now (C{why} goes to the log); fire once its
        child, if any, has been reaped.

        @param why: the reason, for the log.
        """
        log.info("{connection}: closing: {why}", connection=self.id, why=why)
        self._received = self._ignore
        self._close()
        self.transport.abortConnection()
        if self._child is None:
            return succeed(None)
        return self._child.whenEnded()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.connections.discard(self)
        if not self._closed:
            log.info("{connection}: the client went away", connection=self.id)
        self._closed = True
        self._cancelDeadline()
        if self._child is not None:
            self._child.kill()


@implementer(IPushProducer)
class _Valve:
    """
    Passes pause and resume on to another producer, but not stop: when one
    side of the bridge ends, the bridge decides what happens to the other.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer

    def pauseProducing(self) -> None:
        self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        self._producer.resumeProducing()

    def stopProducing(self) -> None:
        pass


class _Child:
    """
    The per-connection child.  Its stdin and stdout are pipes of our own
    (a L{PipeTransport}, which reads and writes them without the delays of
    Twisted's process pipes) bridged to the socket; its stderr goes to the
    log.

    It counts as ended once it has exited I{and} its stdout has closed, so
    that everything it wrote reaches the client; its stderr may be held open
    longer by a grandchild, which is not waited for.

    @ivar pid: the child's process id, once started.
    """

    def __init__(self, connection: ExecnetServerProtocol) -> None:
        self._connection = connection
        self._stderr = StderrLog(connection.id)
        self._process: SpawnedProcess | None = None
        self._exitReason: Failure | None = None
        self._stdoutClosed = False
        self._ended = False
        self._endWaiters: list[Deferred[None]] = []
        self.pid: int | None = None

    def start(self, reactor: Any, args: list[str]) -> None:
        """
        Start the child running C{args}, bridged to the connection's socket.

        @raise OSError: if it cannot be started.
        """
        socket = self._connection.transport
        process = SpawnedProcess(
            reactor,
            args[0],
            args,
            None,
            _ToSocket(socket),
            self._stdoutEnded,
            self._stderr.received,
            self._exited,
        )
        self.pid = process.pid
        self._process = process
        pipes = process.pipes
        # Each side pauses the other when its own buffer fills up, so the
        # server holds a bounded amount of a fast sender's data.
        socket.registerProducer(_Valve(pipes), True)
        pipes.registerProducer(_Valve(socket), True)
        pipes.startReading()

    def write(self, data: bytes) -> None:
        if not self._ended and self._process is not None:
            self._process.pipes.write(data)

    def kill(self) -> None:
        """Kill the child and whatever else is in its process group."""
        if self._ended or self._process is None:
            return
        _killGroup(self._process.pid)
        self._process.signal()

    def whenEnded(self) -> Deferred[None]:
        if self._ended:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._endWaiters.append(d)
        return d

    def _stdoutEnded(self) -> None:
        self._stdoutClosed = True
        self._maybeEnded()

    def _exited(self, reason: Failure) -> None:
        self._exitReason = reason
        self._maybeEnded()

    def _maybeEnded(self) -> None:
        if self._ended or self._exitReason is None or not self._stdoutClosed:
            return
        self._ended = True
        self._stderr.flush()
        assert self._process is not None
        _killGroup(self._process.pid)
        self._process.pipes.loseConnection()
        self._connection.childEnded(self._exitReason)
        waiters, self._endWaiters = self._endWaiters, []
        for d in waiters:
            d.callback(None)


class _ToSocket:
    """What the child writes to its stdout, written to the socket."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket

    def dataReceived(self, data: bytes) -> None:
        self._socket.write(data)


#: How a bootstrap line (see L{txexecnet.bootstrap}) says how many bytes of
#: runtime follow it.
_BODY_SIZE = re.compile(rb"sys\.stdin\.read\(([0-9]+)\)")


def bootstrapBodySize(line: bytes) -> int:
    """
    Check that C{line} (without its newline) is what a txexecnet client
    sends first, the C{repr} of a short program in ASCII, and return the
    size of the runtime that program reads after it.

    @param line: the first line a client sent.
    @raise ValueError: if it is not, or the runtime it announces is larger
        than L{handshake.MAX_BOOTSTRAP_SIZE}.
    """
    if len(line) < 2 or line[:1] not in (b"'", b'"') or line[-1:] != line[:1]:
        raise ValueError("the bootstrap line is not a Python string literal")
    if not line.isascii():
        raise ValueError("the bootstrap line is not ASCII")
    match = _BODY_SIZE.search(line)
    size = int(match.group(1)) if match else 0
    if len(line) + 1 + size > handshake.MAX_BOOTSTRAP_SIZE:
        raise ValueError(f"a bootstrap of {size} more bytes is too large")
    return size


class _FrameScanner:
    """
    Follows the frame stream a client sends, reading only the headers (the
    payloads pass through untouched), and rejects a frame of an unknown type
    or above the size limit as soon as its header arrives.
    """

    def __init__(self, maxFrameSize: int) -> None:
        self._maxFrameSize = maxFrameSize
        self._header = b""
        self._remaining = 0

    def scan(self, data: bytes) -> None:
        """
        Account for C{data}, the next bytes of the stream.

        @raise ProtocolError: if a header in it is not acceptable.
        """
        pos = 0
        end = len(data)
        while pos < end:
            if self._remaining:
                step = min(self._remaining, end - pos)
                self._remaining -= step
                pos += step
                continue
            need = HEADER_SIZE - len(self._header)
            self._header += data[pos : pos + need]
            pos += need
            if len(self._header) < HEADER_SIZE:
                return
            msgtype, _, length = HEADER.unpack(self._header)
            self._header = b""
            check_header(msgtype, length, self._maxFrameSize)
            self._remaining = length


class ExecnetServerService(MultiService):
    """
    Listens on each endpoint with one L{ExecnetServerFactory}; stopping it
    stops listening, then kills every child.

    @param endpoints: C{(endpoint, description)} pairs; the description
        names the endpoint in log lines.
    @param open: whether a listener lets clients in with neither a secret
        nor a client certificate, which is warned about at start.
    """

    def __init__(
        self,
        factory: ExecnetServerFactory,
        endpoints: list[tuple[IStreamServerEndpoint, str]],
        open: bool = False,
    ) -> None:
        """
        @param factory: the factory of the connections.
        """
        super().__init__()
        self.factory = factory
        self.open = open
        for endpoint, description in endpoints:
            _ListeningService(endpoint, factory, description).setServiceParent(self)

    def startService(self) -> None:
        if self.open:
            log.warn(
                "execnet-server: no --secret-file or --client-ca: anyone who can connect "
                "can run code as user {uid}",
                uid=os.getuid(),
            )
        super().startService()

    def stopService(self) -> Deferred[None]:
        d = super().stopService()
        d.addBoth(lambda _: self.factory.stopAll())
        return d


class _ListeningService(Service):
    """
    Listens on one endpoint while running, and logs the address it got
    (which tells a port chosen by the system, as with C{-p 0}).

    Listening starts in L{privilegedStartService}, so that twistd binds
    before it drops privileges, and a failure to bind stops twistd there.
    """

    def __init__(
        self, endpoint: IStreamServerEndpoint, factory: ExecnetServerFactory, description: str
    ) -> None:
        self._endpoint = endpoint
        self._factory = factory
        self._description = description
        self._listening: Deferred[Any] | None = None
        self._port: Any = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def _listen(self) -> None:
        if self._listening is not None:
            return
        failures: list[Failure] = []
        self._listening = self._endpoint.listen(self._factory)
        self._listening.addCallbacks(self._listeningOn, failures.append)
        if failures:
            failures[0].raiseException()

    def _listeningOn(self, port: Any) -> None:
        self._port = port
        log.info(
            "execnet-server listening on {address} ({description})",
            address=_describeAddress(port.getHost()),
            description=self._description,
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        if self._port is None:
            listening.cancel()
            return succeed(None)
        port, self._port = self._port, None
        return port.stopListening()


def bytecodeMagic(python: list[str]) -> bytes | None:
    """
    The bytecode magic number of the interpreter C{python} starts, which the
    server tells clients so that those running the same version can send
    the runtime already compiled; C{None} if it cannot be learnt.

    @param python: the interpreter's command line, as words.
    """
    if python == [sys.executable]:
        return importlib.util.MAGIC_NUMBER
    ask = "import importlib.util,sys;sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    try:
        answer = subprocess.run(
            python + ["-c", ask],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        magic = bytes.fromhex(answer.stdout.decode("ascii"))
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return magic if answer.returncode == 0 and len(magic) == 4 else None


def _killGroup(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _describeAddress(address: Any) -> str:
    if isinstance(address, (IPv4Address, IPv6Address)):
        kind = address.type.lower()
        host = address.host
        return f"{kind}:[{host}]:{address.port}" if ":" in host else f"{kind}:{host}:{address.port}"
    if isinstance(address, UNIXAddress) and address.name is not None:
        name = address.name
        return f"unix:{name.decode() if isinstance(name, bytes) else name}"
    return str(address)


def _describeExit(reason: Failure) -> str:
    value = reason.value
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            return f"was killed by signal {value.signal}"
        return f"exited with status {value.exitCode}"
    return "exited with status 0"

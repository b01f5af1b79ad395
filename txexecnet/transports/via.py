"""
Gateways started through another gateway (spec C{via=ID}): the other
gateway's interpreter spawns the new child and relays its stdio over a
channel, so a host reached once (over SSH, say) can start more interpreters.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IConsumer, IProducer, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from ..bootstrap import pythonArgs, sourceBootstrap
from ..errors import GatewayStartError
from ..interfaces import IGatewayConnection, IGatewayTransport
from .messages import MessageTransport
from ._stderr import StderrLog
from .flow import ProducerValve

__all__ = ["ViaTransport", "HIGH_WATER", "LOW_WATER"]

#: Bytes written to the relayed child but not yet taken by its stdin, above
#: which the child gateway's senders are paused...
HIGH_WATER = 4 * 1024 * 1024
#: ...and below which they are resumed.
LOW_WATER = 1024 * 1024
#: The relay acknowledges what it has written to the child's stdin in steps
#: of at least this many bytes (and L{LOW_WATER} is well above it, so what
#: is never acknowledged never holds the senders back).
_ACK_STEP = 65536


def _relay(channel, argv, env, stderr, ack_step):
    """
    Runs in the parent gateway's interpreter: start C{argv} with C{env} added
    to the environment, relay its stdout and stderr as bytes items, write
    bytes items to its stdin (C{None} closes stdin), acknowledge what its
    stdin has taken as C{("ack", nbytes)} every C{ack_step} bytes or more,
    and report its exit as C{("exit", returncode)}.
    """
    import os
    import subprocess
    import threading

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **env),
        )
    except OSError as e:
        stderr.send(("cannot start %s: %s\n" % (argv[0], e)).encode())
        channel.send(("exit", 127))
        return

    def pump(fd, out):
        while True:
            data = os.read(fd, 1048576)
            if not data:
                return
            out.send(data)

    stdin, stdout, stderr_pipe = proc.stdin, proc.stdout, proc.stderr
    assert stdin is not None and stdout is not None and stderr_pipe is not None
    pumps = [
        threading.Thread(target=pump, args=(stdout.fileno(), channel)),
        threading.Thread(target=pump, args=(stderr_pipe.fileno(), stderr)),
    ]
    for t in pumps:
        t.daemon = True
        t.start()

    def feed():
        written = 0
        try:
            for data in channel:
                if data is None:
                    stdin.close()
                else:
                    stdin.write(data)
                    stdin.flush()
                    written += len(data)
                    if written >= ack_step:
                        channel.send(("ack", written))
                        written = 0
        except (OSError, ValueError):
            pass
        # The channel is closed: by this relay's end, or by a gateway that
        # wants the child gone.
        if proc.poll() is None:
            proc.kill()

    feeder = threading.Thread(target=feed)
    feeder.daemon = True
    feeder.start()
    for t in pumps:
        t.join()
    code = proc.wait()
    if not channel.isclosed():
        channel.send(("exit", code))


@implementer(IGatewayTransport)
class ViaTransport:
    """
    Start a fresh interpreter from the interpreter behind C{parent}.

    @param parent: the L{Gateway} whose interpreter spawns the new one.
    @param python: the interpreter to start there (default: C{python3}).
    @param dontWriteBytecode: pass C{-B} to it.
    @param env: variables added to its environment before it starts.
    """

    def __init__(
        self,
        parent: Any,
        python: str | None = None,
        dontWriteBytecode: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.parent = parent
        self.python = python or "python3"
        self.dontWriteBytecode = dontWriteBytecode
        self.env = dict(env or {})
        self.description = f"via {parent.id}"
        self.helloTimeout: float | None = None  # the remote host may need the whole start timeout

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        return sourceBootstrap(config)

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        import shlex

        if self.parent.isTerminated():
            return fail(
                GatewayStartError(f"gateway {gateway.id}: via gateway {self.parent.id} is closed")
            )
        argv = pythonArgs(shlex.split(self.python), self.dontWriteBytecode)
        stderr = self.parent.newchannel()
        channel = self.parent.remote_exec(
            _relay, argv=argv, env=self.env, stderr=stderr, ack_step=_ACK_STEP
        )
        connection = _RelayedProcess(channel, stderr, protocol, gateway)
        protocol.makeConnection(connection)
        return succeed(connection)


@implementer(ITransport, IConsumer, IGatewayConnection)
class _RelayedProcess(MessageTransport):
    """
    The relayed child's stdio as the framing protocol's transport.

    Back-pressure runs end to end: the registered producer (the child
    gateway's framing protocol) is paused while more than L{HIGH_WATER}
    bytes are written but not acknowledged by the relay, or while the parent
    gateway's own transport is full.
    """

    _END = object()

    def __init__(self, channel: Any, stderr: Any, protocol: Any, gateway: Any) -> None:
        self._parentId = channel.gateway.id
        self._channel = channel
        self._protocol = protocol
        self._stderr = StderrLog(gateway.id, gateway.stderrReceived)
        self._exitCode: int | None = None
        self._lost = False
        self._unacknowledged = 0
        self._parentFull = False
        self._valve = ProducerValve("a relayed gateway")
        channel.setcallback(self._received, endmarker=self._END)
        stderr.setcallback(self._stderrReceived, endmarker=self._END)

    def _received(self, item: Any) -> None:
        if item is self._END:
            error = self._channel.endError()
            if not isinstance(error, EOFError):  # the relay itself failed
                self._stderr.received(f"relay failed: {error}\n".encode())
            self._connectionLost()
        elif isinstance(item, bytes):
            self._protocol.dataReceived(item)
        elif isinstance(item, tuple) and item[0] == "ack":
            self._unacknowledged -= item[1]
            self._steerProducer()
        elif isinstance(item, tuple) and item[0] == "exit":
            self._exitCode = item[1]

    def _stderrReceived(self, item: Any) -> None:
        if isinstance(item, bytes):
            self._stderr.received(item)

    def _connectionLost(self, signal: int | None = None) -> None:
        if self._lost:
            return
        self._lost = True
        self._stderr.flush()
        if signal is not None:
            reason = Failure(ProcessTerminated(signal=signal))
        elif self._exitCode == 0:
            reason = Failure(ProcessDone(0))
        elif self._exitCode is not None:
            reason = Failure(ProcessTerminated(exitCode=self._exitCode))
        else:
            reason = Failure(ConnectionLost(f"the relay through gateway {self._parentId} ended"))
        self._protocol.connectionLost(reason)

    def _steerProducer(self) -> None:
        self._valve.steer(
            self._parentFull or self._unacknowledged > HIGH_WATER,
            not self._parentFull and self._unacknowledged < LOW_WATER,
        )

    def _parentDrained(self, result: object) -> None:
        self._parentFull = False
        self._steerProducer()

    # ITransport
    def write(self, data: bytes) -> None:
        if self._channel.isclosed():
            return
        self._unacknowledged += len(data)
        d = self._channel.send(bytes(data))
        if not d.called:
            self._parentFull = True
            d.addBoth(self._parentDrained)
        self._steerProducer()

    # IConsumer
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._valve.register(producer, streaming)
        self._steerProducer()

    def unregisterProducer(self) -> None:
        self._valve.unregister()

    # IGatewayConnection
    def closeWrite(self) -> None:
        if not self._channel.isclosed():
            self._channel.send(None)

    def kill(self) -> None:
        # The relay kills the child when its channel closes; it can report
        # nothing after that, so the end is reported here.
        self._channel.close()
        self._connectionLost(signal=9)

    def stderrTail(self) -> str:
        return self._stderr.tail()

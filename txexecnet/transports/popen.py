"""
Popen gateways: a fresh child Python on this machine, started with
C{reactor.spawnProcess}, its stdin/stdout carrying the frames.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ..bootstrap import compiledBootstrap, pythonArgs, sourceBootstrap
from ..errors import GatewayStartError
from ..interfaces import IGatewayConnection, IGatewayTransport
from ._pipes import PipeTransport, spawnWithPipes
from ._stderr import StderrLog

__all__ = ["PopenTransport", "ChildProcess", "startChild"]


@implementer(IGatewayTransport)
class PopenTransport:
    """
    Start C{python} (default: this interpreter) as a child process.

    When the child runs this very interpreter, it is sent the remote runtime
    compiled rather than as source.

    @param python: the interpreter command line, split like a shell would
        (C{"python3.12"}, C{"nice python3"}), or L{None} for this one.
    @param dontWriteBytecode: pass C{-B} to the child.
    @param env: variables added to this process's environment for the
        child, set before it starts (so C{PYTHONPATH} and the like apply).
    """

    def __init__(
        self,
        python: str | None = None,
        dontWriteBytecode: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        if python is None:
            self.argv = [sys.executable]
        else:
            self.argv = shlex.split(python)
            if not self.argv:
                raise ValueError("python= is empty")
        self.dontWriteBytecode = dontWriteBytecode
        self.env = dict(env or {})
        self.description = f"popen {' '.join(self.argv)}"

    def _executable(self) -> str | None:
        return shutil.which(self.argv[0])

    def _runsThisInterpreter(self, executable: str | None) -> bool:
        return executable is not None and os.path.realpath(executable) == os.path.realpath(
            sys.executable
        )

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        if self._runsThisInterpreter(self._executable()):
            return compiledBootstrap(config)
        return sourceBootstrap(config)

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        executable = self._executable()
        if executable is None:
            return fail(
                GatewayStartError(
                    f"gateway {gateway.id} failed to start: python executable "
                    f"{self.argv[0]!r} not found (not a file, or not on PATH)"
                )
            )
        args = pythonArgs([executable] + self.argv[1:], self.dontWriteBytecode)
        env = {**os.environ, **self.env} if self.env else None
        return startChild(reactor, protocol, gateway.id, executable, args, env)


def startChild(
    reactor: Any,
    protocol: Any,
    gatewayId: str,
    executable: str,
    args: list[str],
    env: dict[str, str] | None = None,
) -> Deferred[IGatewayConnection]:
    """
    Start C{args} as a child process whose stdin/stdout carry C{protocol}'s
    frames; fire with its L{ChildProcess} connection.
    """
    child = ChildProcess(protocol, gatewayId, reactor)
    try:
        pipes = spawnWithPipes(reactor, child, executable, args, env, protocol, child.framesEnded)
    except OSError as e:
        return fail(GatewayStartError(f"gateway {gatewayId} failed to start {executable}: {e}"))
    child.startFrames(pipes)
    return succeed(child)


@implementer(IGatewayConnection)
class ChildProcess(ProcessProtocol):
    """
    A child process as a gateway connection: frames travel over its
    stdin/stdout pipes (a L{PipeTransport}), stderr goes to the log, and the
    connection ends once the process has ended and its stdout is drained.
    """

    def __init__(self, frames: Any, gatewayId: str, reactor: Any) -> None:
        self.frames = frames
        self.stderr = StderrLog(gatewayId)
        self._reactor = reactor
        self._exitWatcher: _ExitWatcher | None = None
        self._pipes: PipeTransport | None = None
        self._framesEnded = False
        self._endReason: Failure | None = None

    def connectionMade(self) -> None:
        self._exitWatcher = _ExitWatcher.start(self._reactor, self.transport)

    def startFrames(self, pipes: PipeTransport) -> None:
        """Connect the framing protocol to the child's pipes."""
        self._pipes = pipes
        self.frames.makeConnection(pipes)
        pipes.startReading()

    def framesEnded(self) -> None:
        """The child's stdout reached its end."""
        self._framesEnded = True
        self._maybeLost()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.stderr.received(data)

    def processEnded(self, reason: Failure) -> None:
        if self._exitWatcher is not None:
            self._exitWatcher.stop()
        self.stderr.flush()
        self._endReason = reason
        if self._pipes is not None:
            # What the child wrote before it died is in the pipe; anything a
            # grandchild holding the pipe writes later is not ours to wait for.
            self._pipes.drain()
        self._maybeLost()

    def _maybeLost(self) -> None:
        if self._framesEnded and self._endReason is not None:
            reason, self._endReason = self._endReason, None
            self.frames.connectionLost(reason)

    def closeWrite(self) -> None:
        if self._pipes is not None:
            self._pipes.loseWriteConnection()

    def kill(self) -> None:
        try:
            self.transport.signalProcess("KILL")
        except (ProcessExitedAlready, OSError):
            pass
        # A grandchild may hold the pipes open after the child is dead; the
        # gateway ends when the child does, not when they let go.
        if self._pipes is not None:
            self._pipes.loseConnection()
        self.transport.loseConnection()

    def stderrTail(self) -> str:
        return self.stderr.tail()


@implementer(IReadDescriptor)
class _ExitWatcher:
    """
    Reaps the child as soon as it exits, through a Linux pidfd.

    Twisted learns of child exits from SIGCHLD, which it only handles when
    the reactor runs in the main thread; the blocking facade runs it in
    another thread, where exits would otherwise be noticed late or never.
    """

    def __init__(self, reactor: Any, process: Any, fd: int) -> None:
        self._reactor = reactor
        self._process = process
        self._fd = fd

    @classmethod
    def start(cls, reactor: Any, process: Any) -> _ExitWatcher | None:
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None or not IReactorFDSet.providedBy(reactor):
            return None
        try:
            fd = pidfd_open(process.pid)
        except OSError:
            return None
        watcher = cls(reactor, process, fd)
        reactor.addReader(watcher)
        return watcher

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        self.stop()
        if self._process.pid is not None:  # else SIGCHLD handling reaped it first
            self._process.reapProcess()

    def stop(self) -> None:
        if self._fd >= 0:
            self._reactor.removeReader(self)
            os.close(self._fd)
            self._fd = -1

    def connectionLost(self, reason: Failure) -> None:
        self.stop()

    def logPrefix(self) -> str:
        return "txexecnet-pidfd"

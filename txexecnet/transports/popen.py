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
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ..bootstrap import importBootstrap, pythonArgs, sourceBootstrap
from ..errors import GatewayStartError
from ..interfaces import IGatewayConnection, IGatewayTransport
from ._stderr import StderrLog

__all__ = ["PopenTransport"]


@implementer(IGatewayTransport)
class PopenTransport:
    """
    Start C{python} (default: this interpreter) as a child process.

    When the child runs this very interpreter, it imports the installed
    remote runtime instead of being sent its source.

    @param python: the interpreter command line, split like a shell would
        (C{"python3.12"}, C{"nice python3"}), or L{None} for this one.
    @param dontWriteBytecode: pass C{-B} to the child.
    """

    def __init__(self, python: str | None = None, dontWriteBytecode: bool = False) -> None:
        if python is None:
            self.argv = [sys.executable]
        else:
            self.argv = shlex.split(python)
            if not self.argv:
                raise ValueError("python= is empty")
        self.dontWriteBytecode = dontWriteBytecode
        self.description = f"popen {' '.join(self.argv)}"

    def _executable(self) -> str | None:
        return shutil.which(self.argv[0])

    def _runsThisInterpreter(self, executable: str | None) -> bool:
        return executable is not None and os.path.realpath(executable) == os.path.realpath(
            sys.executable
        )

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        if self._runsThisInterpreter(self._executable()):
            return importBootstrap(config)
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
        child = ChildProcess(protocol, gateway.id, reactor)
        args = pythonArgs([executable] + self.argv[1:], self.dontWriteBytecode)
        try:
            reactor.spawnProcess(child, executable, args, env=None)
        except OSError as e:
            return fail(GatewayStartError(f"gateway {gateway.id} failed to start {executable}: {e}"))
        return succeed(child)


@implementer(IGatewayConnection)
class ChildProcess(ProcessProtocol):
    """
    Adapts a child process to the framing protocol: stdout carries frames,
    stderr goes to the log, the process's end is the connection's end.
    """

    def __init__(self, frames: Any, gatewayId: str, reactor: Any) -> None:
        self.frames = frames
        self.stderr = StderrLog(gatewayId)
        self._reactor = reactor
        self._exitWatcher: _ExitWatcher | None = None

    def connectionMade(self) -> None:
        self._exitWatcher = _ExitWatcher.start(self._reactor, self.transport)
        self.frames.makeConnection(self.transport)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 1:
            self.frames.dataReceived(data)
        else:
            self.stderr.received(data)

    def processEnded(self, reason: Failure) -> None:
        if self._exitWatcher is not None:
            self._exitWatcher.stop()
        self.stderr.flush()
        self.frames.connectionLost(reason)

    def closeWrite(self) -> None:
        self.transport.closeStdin()

    def kill(self) -> None:
        try:
            self.transport.signalProcess("KILL")
        except (ProcessExitedAlready, OSError):
            pass
        # A grandchild may hold the pipes open after the child is dead; the
        # gateway ends when the child does, not when they let go.
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
        if pidfd_open is None or not hasattr(reactor, "addReader"):
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

"""
Child processes of our own: started with C{subprocess}, their stdin and
stdout a L{PipeTransport}, their stderr read by the reactor, their exit
found through a Linux pidfd (or, without one, by polling).

Twisted's C{spawnProcess} learns of exits from C{SIGCHLD}, which only the
reactor running in the main thread receives, and its handler reaps every
process Twisted knows of from that thread, whichever reactor started it.
Children started here belong to the reactor that started them alone, so a
reactor of our own in another thread (the blocking facade's) and a program's
reactor in the main thread never reap each other's children.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Callable

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from ._pipes import PipeTransport, makePipe

__all__ = ["SpawnedProcess", "POLL_INTERVAL"]

#: Seconds between checks for the exit of a child when there is no pidfd.
POLL_INTERVAL = 0.05

_STDERR_READ = 65536


class SpawnedProcess:
    """
    A running child process.

    @ivar pid: its process id.
    @ivar pipes: the L{PipeTransport} of its stdin and stdout, delivering to
        the protocol given; call its C{startReading()} to begin.
    """

    def __init__(
        self,
        reactor: Any,
        executable: str,
        args: list[str],
        env: dict[str, str] | None,
        protocol: Any,
        stdoutEnded: Callable[[], None],
        stderrReceived: Callable[[bytes], None],
        exited: Callable[[Failure], None],
    ) -> None:
        """
        Start C{executable} with argument vector C{args}.

        @param reactor: the reactor that reads its pipes and learns of its exit.
        @param executable: the program's path.
        @param args: its argument vector.
        @param env: its whole environment, or C{None} for this process's.
        @param protocol: what its stdout is delivered to.
        @param stdoutEnded: called once its stdout is closed and drained.
        @param stderrReceived: called with what it writes to stderr.
        @param exited: called once with a C{Failure} of C{ProcessDone} or
            C{ProcessTerminated} when it has exited and been reaped.
        @raise OSError: if it cannot be started.
        """
        self._reactor = reactor
        self._exited = exited
        stdinRead, stdinWrite = makePipe()
        stdoutRead, stdoutWrite = makePipe()
        stderrRead, stderrWrite = os.pipe2(os.O_CLOEXEC)
        try:
            self._process = subprocess.Popen(
                args,
                executable=executable,
                stdin=stdinRead,
                stdout=stdoutWrite,
                stderr=stderrWrite,
                env=env,
                close_fds=True,
                # A group of its own: killing it kills what it started too,
                # and a terminal's Ctrl-C goes to the program, which ends
                # its gateways, rather than past it to them.
                start_new_session=True,
            )
        except BaseException:
            for fd in (stdinWrite, stdoutRead, stderrRead):
                os.close(fd)
            raise
        finally:
            for fd in (stdinRead, stdoutWrite, stderrWrite):
                os.close(fd)
        self.pid: int = self._process.pid
        self.pipes = PipeTransport(reactor, stdoutRead, stdinWrite, protocol, stdoutEnded)
        self._stderr = _StderrReader(reactor, stderrRead, stderrReceived)
        self._poll: Any = None
        self._watcher = _PidfdWatcher.start(reactor, self.pid, self._reap)
        if self._watcher is None:
            self._poll = reactor.callLater(POLL_INTERVAL, self._reap)

    def signal(self, signum: int = signal.SIGKILL) -> None:
        """
        Send C{signum} to the child and the processes of its group (those it
        started), unless it has already been reaped.

        @param signum: the signal.
        """
        if self._process.poll() is not None:
            return  # reaped: its pid may be someone else's by now
        try:
            os.killpg(self.pid, signum)
        except OSError:
            pass

    def hasExited(self) -> bool:
        """Whether the child has exited and been reaped."""
        return self._process.returncode is not None

    def _reap(self) -> None:
        self._poll = None
        try:
            returncode = self._process.poll()
        except ChildProcessError:  # someone else reaped it: status unknown
            returncode = self._process.returncode = -signal.SIGKILL
        if returncode is None:
            if self._watcher is None:
                self._poll = self._reactor.callLater(POLL_INTERVAL, self._reap)
            return
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self._stderr.drain()
        if returncode == 0:
            reason = Failure(ProcessDone(0))
        elif returncode > 0:
            reason = Failure(ProcessTerminated(exitCode=returncode))
        else:
            reason = Failure(ProcessTerminated(signal=-returncode))
        self._exited(reason)


@implementer(IReadDescriptor)
class _ReadEnd:
    """A file descriptor that the reactor watches for reading, closed once."""

    def __init__(self, reactor: Any, fd: int, prefix: str) -> None:
        self._reactor = reactor
        self._fd = fd
        self._prefix = prefix

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define doRead()")

    def close(self) -> None:
        """Stop watching the descriptor and close it."""
        if self._fd >= 0:
            self._reactor.removeReader(self)
            os.close(self._fd)
            self._fd = -1

    def connectionLost(self, reason: Failure) -> None:
        self.close()

    def logPrefix(self) -> str:
        return self._prefix


class _StderrReader(_ReadEnd):
    """Delivers what a child writes to its stderr pipe."""

    def __init__(self, reactor: Any, fd: int, received: Callable[[bytes], None]) -> None:
        _ReadEnd.__init__(self, reactor, fd, "txexecnet-stderr")
        self._received = received
        os.set_blocking(fd, False)
        reactor.addReader(self)

    def doRead(self) -> None:
        self._readOnce()

    def _readOnce(self) -> bool:
        try:
            data = os.read(self._fd, _STDERR_READ)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self.close()
            return False
        self._received(data)
        return True

    def drain(self) -> None:
        """
        Deliver what the pipe holds now, then stop: a grandchild may hold
        the pipe open, and what it writes later is not ours to wait for.
        """
        while self._fd >= 0 and self._readOnce():
            pass
        self.close()


class _PidfdWatcher(_ReadEnd):
    """Calls C{exited()} when the process behind a Linux pidfd exits."""

    def __init__(self, reactor: Any, fd: int, exited: Callable[[], None]) -> None:
        _ReadEnd.__init__(self, reactor, fd, "txexecnet-pidfd")
        self._exited = exited

    @classmethod
    def start(cls, reactor: Any, pid: int, exited: Callable[[], None]) -> _PidfdWatcher | None:
        """A watcher for C{pid}, or C{None} where there are no pidfds."""
        pidfd_open = getattr(os, "pidfd_open", None)  # Linux 5.3 and later
        if pidfd_open is None or not IReactorFDSet.providedBy(reactor):
            return None
        try:
            fd = pidfd_open(pid)
        except OSError:
            return None
        watcher = cls(reactor, fd, exited)
        reactor.addReader(watcher)
        return watcher

    def doRead(self) -> None:
        self._exited()

"""
The generic command transport: a command line whose stdin and stdout are a
pipe to a Python that waits for the bootstrap (see L{txexecnet.bootstrap}).

Popen gateways run the interpreter itself; the OpenSSH client runs C{ssh}
with the interpreter as its remote command; a container or privilege hop
(C{docker exec -i}, C{sudo -n}) is one more word list in front.  Whatever
the command, the child's stdout feeds the framing protocol, its stderr
(which carries the remote stderr too) goes to the log, and the gateway ends
once the child has exited and its stdout is drained.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from ..bootstrap import compiledBootstrap, sourceBootstrap
from ..errors import GatewayStartError
from ..interfaces import IGatewayConnection, IGatewayTransport
from ._stderr import StderrLog
from .spawn import SpawnedProcess

__all__ = ["CommandTransport", "CommandConnection"]


@implementer(IGatewayTransport)
class CommandTransport:
    """
    Run C{argv}, whose stdin and stdout reach a bootstrap-ready Python.

    @ivar argv: the command line; its first word is looked up on C{PATH}.
    @ivar env: variables added to this process's environment for the
        command, or an empty dict.
    @ivar description: where the command goes, for messages.
    @ivar helloTimeout: seconds the command has to say hello once started;
        C{None} (the start timeout alone), since a command may still have a
        network to cross.
    """

    helloTimeout: float | None = None

    def __init__(
        self,
        argv: Sequence[str],
        description: str,
        env: dict[str, str] | None = None,
        compiled: bool = False,
        missing: str = "{executable!r} not found (not a file, or not on PATH)",
    ) -> None:
        """
        @param argv: the command line.
        @param description: where it goes, for messages (C{"popen python3"}).
        @param env: variables to add to the environment of the command.
        @param compiled: send the runtime compiled: only for a command that
            runs this very interpreter.
        @param missing: the message when C{argv[0]} is not found, with
            C{{executable!r}} in it.
        @raise ValueError: for an empty command line.
        """
        if not argv:
            raise ValueError(f"{description}: empty command line")
        self.argv = list(argv)
        self.description = description
        self.env = dict(env or {})
        self._compiled = compiled
        self._missing = missing

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.argv!r}>"

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        if self._compiled:
            return compiledBootstrap(config)
        return sourceBootstrap(config)

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        executable = shutil.which(self.argv[0])
        prefix = f"gateway {gateway.id} failed to start"
        if executable is None:
            why = self._missing.format(executable=self.argv[0])
            return fail(GatewayStartError(f"{prefix}: {why}"))
        env = {**os.environ, **self.env} if self.env else None
        connection = CommandConnection(protocol, gateway)
        try:
            connection.start(reactor, executable, [executable, *self.argv[1:]], env)
        except OSError as e:
            return fail(GatewayStartError(f"{prefix}: cannot start {executable}: {e}"))
        return succeed(connection)


@implementer(IGatewayConnection)
class CommandConnection:
    """
    A running command as a gateway connection: frames travel over its
    stdin/stdout, its stderr goes to the log, and the connection ends once
    the process has exited and its stdout is drained.
    """

    def __init__(self, frames: Any, gateway: Any) -> None:
        """
        @param frames: the framing protocol.
        @param gateway: the gateway, whose output its stderr is.
        """
        self._frames = frames
        self._stderr = StderrLog(gateway.id, gateway.stderrReceived)
        self._process: SpawnedProcess | None = None
        self._framesEnded = False
        self._endReason: Failure | None = None

    def start(self, reactor: Any, executable: str, args: list[str], env: Any) -> None:
        """
        Start the command and connect the framing protocol to its pipes.

        @param reactor: the reactor to run on.
        @param executable: the program, as found on C{PATH}.
        @param args: its argument vector.
        @param env: its whole environment, or C{None} for this process's.
        @raise OSError: if it cannot be started.
        """
        process = SpawnedProcess(
            reactor,
            executable,
            args,
            env,
            self._frames,
            self._stdoutEnded,
            self._stderr.received,
            self._exited,
        )
        self._process = process
        self._frames.makeConnection(process.pipes)
        process.pipes.startReading()

    @property
    def pid(self) -> int | None:
        """The process id of the command."""
        return self._process.pid if self._process is not None else None

    def _stdoutEnded(self) -> None:
        self._framesEnded = True
        self._maybeLost()

    def _exited(self, reason: Failure) -> None:
        self._stderr.flush()
        self._endReason = reason
        assert self._process is not None
        # What the child wrote before it died is in the pipe; anything a
        # grandchild holding the pipe writes later is not ours to wait for.
        self._process.pipes.drain()
        self._maybeLost()

    def _maybeLost(self) -> None:
        if self._framesEnded and self._endReason is not None:
            reason, self._endReason = self._endReason, None
            self._frames.connectionLost(reason)

    def closeWrite(self) -> None:
        if self._process is not None:
            self._process.pipes.loseWriteConnection()

    def kill(self) -> None:
        if self._process is None:
            return
        self._process.signal()
        # A grandchild may hold the pipes open after the child is dead; the
        # gateway ends when the child does, not when they let go.
        self._process.pipes.loseConnection()

    def stderrTail(self) -> str:
        return self._stderr.tail()

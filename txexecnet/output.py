"""
What remote code writes, as it reaches this side: to its C{sys.stdout} and
C{sys.stderr}, to its file descriptors 1 and 2, and (when asked for) through
its C{logging} module.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from dataclasses import dataclass
from typing import IO, Any, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel

__all__ = [
    "RemoteOutput",
    "OutputHandler",
    "OutputWriter",
    "ChannelOutput",
    "logOutput",
    "emitLogRecord",
]

log = Logger(namespace="txexecnet.remote")


@dataclass(frozen=True)
class RemoteOutput:
    """
    A piece of what remote code wrote: usually one or more whole lines.

    @ivar gateway: the id of the gateway whose remote side wrote it.
    @ivar channel: the id of the channel whose code wrote it, or C{None}
        for output no channel's code is known to have written (fd 1 and 2,
        threads the code started, the interpreter itself).
    @ivar stream: C{"stdout"} or C{"stderr"}.
    @ivar text: what was written.
    """

    gateway: str
    channel: int | None
    stream: str
    text: str


#: What takes remote output: called in the reactor thread with each
#: L{RemoteOutput}; it may return a Deferred, and more output from that
#: gateway waits (once a window's worth is in flight) until it fires.
OutputHandler = Callable[[RemoteOutput], object]


def logOutput(output: RemoteOutput) -> None:
    """
    The Deferred API's default L{OutputHandler}: each line is an event of
    the C{txexecnet.remote} namespace, with C{gateway}, C{channel},
    C{stream} and C{text} fields.

    @param output: what arrived.
    """
    for line in output.text.splitlines():
        log.info(
            "[{gateway}] {text}",
            gateway=output.gateway,
            channel=output.channel,
            stream=output.stream,
            text=line,
            remote_output=True,
        )


class OutputWriter:
    """
    An L{OutputHandler} that writes remote output to this process's stdout
    and stderr, each line prefixed with the gateway's id (C{[gw0] }) and
    flushed: the blocking API's and the command line's default.
    """

    def __init__(self, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        """
        @param stdout: where remote stdout goes (default: C{sys.stdout} at
            the time of each write).
        @param stderr: where remote stderr goes (default: C{sys.stderr}).
        """
        self._files = {"stdout": stdout, "stderr": stderr}
        # Whether the next text of (gateway, stream) starts a line.
        self._atLineStart: dict[tuple[str, str], bool] = {}

    def __call__(self, output: RemoteOutput) -> None:
        file = self._files.get(output.stream) or getattr(sys, output.stream)
        key = (output.gateway, output.stream)
        prefix = f"[{output.gateway}] "
        start = self._atLineStart.get(key, True)
        pieces = []
        lines = output.text.split("\n")
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if last and not line:
                break
            if start:
                pieces.append(prefix)
            pieces.append(line)
            if not last:
                pieces.append("\n")
            start = not last
        self._atLineStart[key] = start
        try:
            file.write("".join(pieces))
            file.flush()
        except (OSError, ValueError):
            pass  # a closed stdout must not stop the gateway


class ChannelOutput:
    """
    The output of one channel's code, as an async iterator of C{(stream,
    text)} pairs; it ends once the channel has closed and all its output
    is taken.  Made by L{txexecnet.Channel.output}.
    """

    def __init__(self, taken: Callable[[int], None]) -> None:
        """
        @param taken: called with the size of each piece as it is taken,
            so that the remote side may send more.
        """
        self._taken = taken
        self._pieces: deque[tuple[tuple[str, str], int]] = deque()
        self._waiters: deque[Deferred[None]] = deque()
        self._ended = False

    def put(self, stream: str, text: str, size: int) -> None:
        """
        A piece arrived.

        @param stream: C{"stdout"} or C{"stderr"}.
        @param text: what was written.
        @param size: its size on the wire, given to C{taken} once it is.
        """
        self._pieces.append(((stream, text), size))
        self._wake()

    def end(self) -> None:
        """The channel has closed: nothing more will arrive."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        # Taken first: a woken reader may run straight on into __anext__
        # and wait again, and that new waiter is for the next piece.
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.callback(None)

    def __aiter__(self) -> ChannelOutput:
        return self

    async def __anext__(self) -> tuple[str, str]:
        while not self._pieces:
            if self._ended:
                raise StopAsyncIteration
            d: Deferred[None] = Deferred()
            self._waiters.append(d)
            await d
        piece, size = self._pieces.popleft()
        self._taken(size)
        return piece


_TWISTED_LEVELS = (
    (logging.CRITICAL, LogLevel.critical),
    (logging.ERROR, LogLevel.error),
    (logging.WARNING, LogLevel.warn),
    (logging.INFO, LogLevel.info),
)

#: What a forwarded record must hold, and of what type.
_RECORD_FIELDS: dict[str, Any] = {
    "name": str,
    "levelno": int,
    "levelname": str,
    "msg": str,
    "created": float,
}


def emitLogRecord(gatewayId: str, channelId: int | None, fields: Any) -> bool:
    """
    Re-emit a record of a remote C{logging} module: into this process's
    C{logging} under C{txexecnet.remote.<gateway id>.<logger name>}, at the
    remote level, and into twisted.logger.  Return whether C{fields} was a
    well-formed record (one that is not is dropped).

    @param gatewayId: the gateway's id.
    @param channelId: the channel whose code logged it, or C{None}.
    @param fields: the record as the remote side sent it (a dict).
    """
    if not isinstance(fields, dict) or not all(
        isinstance(fields.get(name), kind) for name, kind in _RECORD_FIELDS.items()
    ):
        return False
    levelno: int = fields["levelno"]
    excText = fields.get("exc_text")
    logger = logging.getLogger(f"txexecnet.remote.{gatewayId}.{fields['name']}")
    if logger.isEnabledFor(levelno):
        lineno = fields.get("lineno")
        record = logger.makeRecord(
            logger.name,
            levelno,
            str(fields.get("pathname", "")),
            lineno if isinstance(lineno, int) else 0,
            fields["msg"],
            (),
            None,
            str(fields.get("funcName", "")),
            extra={"gateway": gatewayId, "channel": channelId},
        )
        record.created = fields["created"]
        record.msecs = (record.created % 1) * 1000
        record.exc_text = excText if isinstance(excText, str) else None
        for name in ("threadName", "process", "stack_info"):
            if name in fields:
                setattr(record, name, fields[name])
        logger.handle(record)
    level = next((twisted for std, twisted in _TWISTED_LEVELS if levelno >= std), LogLevel.debug)
    log.emit(
        level,
        "[{gateway}] {logger}: {message}",
        gateway=gatewayId,
        channel=channelId,
        logger=fields["name"],
        message=fields["msg"] + (f"\n{excText}" if isinstance(excText, str) and excText else ""),
        remote_log=True,
        remote_levelname=fields["levelname"],
    )
    return True

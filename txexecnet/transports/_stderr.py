"""
Remote stderr, delivered line by line (to the gateway's output, or the
log) and kept (its tail) for error messages.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

__all__ = ["StderrLog"]

log = Logger(namespace="txexecnet.remote")

_TAIL_BYTES = 4096


class StderrLog:
    """
    Splits a remote stderr stream into lines and hands each on, or logs it
    tagged with the gateway id; keeps the last few KiB for L{tail}.
    """

    def __init__(self, gatewayId: str, deliver: Callable[[str], None] | None = None) -> None:
        """
        @param gatewayId: the id of the gateway (or connection) it is of.
        @param deliver: called with each line (its newline kept); without
            it, lines are logged.
        """
        self.gatewayId = gatewayId
        self._deliver = deliver
        self._partial = b""
        self._tail = b""

    def received(self, data: bytes) -> None:
        """Log the complete lines in C{data}; keep a partial line for later."""
        self._tail = (self._tail + data)[-_TAIL_BYTES:]
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        """Log a last line that had no newline."""
        if self._partial:
            self._emit(self._partial)
            self._partial = b""

    def tail(self) -> str:
        """The end of what the remote side wrote, decoded for messages."""
        return self._tail.decode("utf-8", "replace").strip()

    def _emit(self, line: bytes) -> None:
        if self._deliver is not None:
            self._deliver(line.decode("utf-8", "replace") + "\n")
            return
        log.info(
            "[{gateway}] {line}",
            gateway=self.gatewayId,
            line=line.decode("utf-8", "replace").rstrip("\r"),
            remote_stderr=True,
        )

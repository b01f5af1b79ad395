"""execnet's C{RSync}: the blocking facade's, with execnet's signature and hooks."""

from __future__ import annotations

import os
from typing import Any, Callable

from .. import blocking

__all__ = ["RSync"]


class RSync(blocking.RSync):
    """
    Send a directory tree to gateways, as execnet's C{RSync}: override
    C{filter(path)} (given full paths) to leave things out, and
    C{_report_send_file(gateway, relpath)} to report each file written;
    C{callback("list", total, channel)} and C{callback("ack", size,
    channel)} as the targets say what they need and write it.
    """

    def __init__(
        self,
        sourcedir: str | os.PathLike[str],
        callback: Callable[[str, int, Any], object] | None = None,
        verbose: bool = True,
    ) -> None:
        """
        @param sourcedir: the directory whose contents are sent.
        @param callback: called as C{callback(kind, size, channel)}.
        @param verbose: print each file sent (see L{_report_send_file}).
        """
        self._sourcedir = str(sourcedir)
        self._verbose = verbose
        self._added = 0
        super().__init__(sourcedir, callback)

    def _report_send_file(self, gateway: Any, modified_rel_path: str) -> None:
        if self._verbose:
            print(f"{gateway} <= {modified_rel_path}")

    def fileWritten(self, path: str, size: int, channel: Any) -> None:
        """
        Report C{path} with L{_report_send_file}.

        @param path: the file, relative to the source directory.
        @param size: its size.
        @param channel: the channel of that target.
        """
        self._report_send_file(channel.gateway, path)

    def add_target(  # type: ignore[override]
        self,
        gateway: Any,
        destdir: str | os.PathLike[str],
        finishedcallback: Callable[[], object] | None = None,
        **options: Any,
    ) -> None:
        """
        Send to C{destdir} on the remote side of C{gateway}.

        @param gateway: the gateway.
        @param destdir: the remote directory (created if missing).
        @param finishedcallback: called once this target has everything.
        @param options: C{delete=True} removes what C{destdir} holds beyond the source.
        @raise TypeError: for another option.
        """
        unknown = set(options) - {"delete"}
        if unknown:
            raise TypeError(f"add_target() got unknown options: {', '.join(sorted(unknown))}")
        super().add_target(gateway, destdir, finishedcallback, bool(options.get("delete")))
        self._added += 1

    def send(self, raises: bool = True) -> None:
        """
        Send the tree to every target added, and forget them.

        @param raises: raise C{OSError} when there is no target (else return).
        """
        if not self._added:
            if raises:
                raise OSError("no targets available, maybe you are trying call send() twice?")
            return
        self._added = 0
        super().send()

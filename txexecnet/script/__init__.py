"""
Scripts that run where txexecnet is not installed.

L{socketserver} is a standalone, stdlib-only socket server; ship it through
a gateway with C{gateway.remote_exec(txexecnet.script.socketserver)}, or
copy L{socketserverSource} to a host and run it there with C{python3}.
"""

from __future__ import annotations

from functools import lru_cache

from . import socketserver

__all__ = ["socketserver", "socketserverSource"]


@lru_cache(maxsize=None)
def socketserverSource() -> str:
    """The source text of the standalone socket server script."""
    with open(socketserver.__file__, encoding="ascii") as f:
        return f.read()

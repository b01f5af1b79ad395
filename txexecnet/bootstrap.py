"""
How a fresh interpreter becomes a txexecnet remote.

Every transport starts C{PYTHON -u -c BOOTSTRAP_COMMAND} and writes one line:
the C{repr} of a program that loads the remote runtime and serves.  The line
either carries the runtime's whole source (so nothing need be installed on
the remote side), or, when the child runs this very interpreter, imports the
installed file, which skips compiling it (the bytecode is cached).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from . import _remote

__all__ = ["BOOTSTRAP_COMMAND", "remoteSource", "sourceBootstrap", "importBootstrap", "pythonArgs"]

#: What the remote Python runs: read one line, evaluate it to source, run it.
BOOTSTRAP_COMMAND = "import sys;exec(eval(sys.stdin.readline()))"


@lru_cache(maxsize=None)
def remoteSource() -> str:
    """The source text of the remote runtime, as shipped."""
    with open(_remote.__file__, encoding="ascii") as f:
        return f.read()


def sourceBootstrap(config: dict[str, Any], entry: str = "serve_popen") -> bytes:
    """A bootstrap line that ships the runtime's source and calls C{entry(config)}."""
    code = f"{remoteSource()}\n{entry}({config!r})\n"
    return (repr(code) + "\n").encode("ascii")


def importBootstrap(config: dict[str, Any], entry: str = "serve_popen") -> bytes:
    """
    A bootstrap line that loads the installed runtime file (for a child
    running this same interpreter) and calls C{entry(config)}.
    """
    path = os.path.abspath(_remote.__file__)
    code = (
        "import importlib.util as u\n"
        f"s=u.spec_from_file_location('txexecnet_remote',{path!r})\n"
        "m=u.module_from_spec(s)\n"
        "s.loader.exec_module(m)\n"
        f"m.{entry}({config!r})\n"
    )
    return (repr(code) + "\n").encode("ascii")


def pythonArgs(python: list[str], dontWriteBytecode: bool = False) -> list[str]:
    """The argument vector that starts C{python} as a bootstrap-ready child."""
    args = list(python) + ["-u"]
    if dontWriteBytecode:
        args.append("-B")
    return args + ["-c", BOOTSTRAP_COMMAND]

"""
How a fresh interpreter becomes a txexecnet remote.

Every transport starts C{PYTHON -u -c BOOTSTRAP_COMMAND} and writes one line,
the C{repr} of a short program, followed by the remote runtime, which that
program reads by its known length, loads, and serves.  The runtime goes as
source (so nothing need be installed on the remote side), or, when the child
runs this very interpreter, already compiled, so the child skips compiling it.
"""

from __future__ import annotations

import binascii
import marshal
import os
from functools import lru_cache
from typing import Any

from . import _remote

__all__ = [
    "BOOTSTRAP_COMMAND",
    "remoteSource",
    "sourceBootstrap",
    "compiledBootstrap",
    "execnetServerBootstrap",
    "pythonArgs",
]

#: What the remote Python runs: read one line, evaluate it to source, run it.
BOOTSTRAP_COMMAND = "import sys;exec(eval(sys.stdin.readline()))"


@lru_cache(maxsize=None)
def remoteSource() -> str:
    """The source text of the remote runtime, as shipped."""
    with open(_remote.__file__, encoding="ascii") as f:
        return f.read()


def _bootstrap(load: str, body: str, config: dict[str, Any], entry: str) -> bytes:
    """
    The line, then C{body}: the line reads exactly C{len(body)} characters
    from stdin, turns them into the runtime with C{load}, and calls
    C{entry(config)}.  C{body} is ASCII, so reading it as text is exact.
    """
    line = (
        "import sys,types;m=types.ModuleType('txexecnet_remote');"
        f"exec({load.format(f'sys.stdin.read({len(body)})')},m.__dict__);"
        f"m.{entry}({config!r})"
    )
    return (repr(line) + "\n" + body).encode("ascii")


def sourceBootstrap(config: dict[str, Any], entry: str = "serve_popen") -> bytes:
    """
    Bootstrap bytes that ship the runtime's source and call C{entry(config)}.

    @param config: the remote settings (plain values) the runtime starts with.
    @param entry: the runtime's function to call with C{config}.
    """
    return _bootstrap("compile({},'txexecnet_remote','exec')", remoteSource(), config, entry)


@lru_cache(maxsize=None)
def _compiledRuntime() -> str:
    # dont_inherit: the runtime gets none of this module's __future__ flags.
    code = compile(remoteSource(), os.path.abspath(_remote.__file__), "exec", dont_inherit=True)
    return binascii.b2a_base64(marshal.dumps(code), newline=False).decode("ascii")


def compiledBootstrap(config: dict[str, Any], entry: str = "serve_popen") -> bytes:
    """
    Bootstrap bytes for a child running this very interpreter: the runtime
    goes already compiled, which saves the child compiling it (about 15 ms;
    no bytecode cache can be relied on).  Marshal data is only ever sent to
    the child, never read from it.

    @param config: the remote settings (plain values) the runtime starts with.
    @param entry: the runtime's function to call with C{config}.
    """
    return _bootstrap(
        "__import__('marshal').loads(__import__('binascii').a2b_base64({}))",
        _compiledRuntime(),
        config,
        entry,
    )


def execnetServerBootstrap(config: dict[str, Any]) -> bytes:
    """
    What a socket server of execnet's kind is sent: one line, the C{repr}
    of a program that it evaluates and runs with the connected socket as
    C{clientsock}; here, the whole runtime and a call that serves on that
    socket.

    @param config: the remote settings (plain values) the runtime starts with.
    """
    program = f"{remoteSource()}\nserve_socket(clientsock, {config!r})\n"
    return (repr(program) + "\n").encode("ascii")


def pythonArgs(python: list[str], dontWriteBytecode: bool = False) -> list[str]:
    """
    The argument vector that starts C{python} as a bootstrap-ready child.

    @param python: the interpreter's command line, as words.
    @param dontWriteBytecode: add C{-B}.
    """
    args = list(python) + ["-u"]
    if dontWriteBytecode:
        args.append("-B")
    return args + ["-c", BOOTSTRAP_COMMAND]

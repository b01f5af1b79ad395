"""
Popen gateways: a fresh child Python on this machine, its stdin and stdout
carrying the frames (a L{CommandTransport} running the interpreter itself).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import Any

from ..bootstrap import pythonArgs
from ..interfaces import IGatewayTransport
from .command import CommandTransport
from .containers import sudoCommand, sudoPython

__all__ = ["PopenTransport", "transportForSpec"]


class PopenTransport(CommandTransport):
    """
    Start C{python} (default: this interpreter) as a child process.

    When the child runs this very interpreter, it is sent the remote runtime
    compiled rather than as source.
    """

    # A local interpreter says hello within a second even on a loaded
    # machine; one silent for this long is not a Python (or is stuck), and
    # makegateway must not wait the minute a remote host may need.
    helloTimeout: float | None = 8.0

    def __init__(
        self,
        python: str | None = None,
        dontWriteBytecode: bool = False,
        env: dict[str, str] | None = None,
        sudo: str | None = None,
    ) -> None:
        """
        @param python: the interpreter command line, split like a shell
            would (C{"python3.12"}, C{"nice python3"}), or C{None} for this
            one.
        @param dontWriteBytecode: pass C{-B} to the child.
        @param env: variables added to this process's environment for the
            child, set before it starts (so C{PYTHONPATH} and the like apply;
            C{sudo} resets them, but for the runtime's own setting of them).
        @param sudo: run the interpreter as this user, with C{sudo -n}.
        @raise ValueError: for an empty C{python}.
        """
        words = [sys.executable] if python is None else shlex.split(python)
        if not words:
            raise ValueError("python= is empty")
        if sudo:
            words = sudoPython(sudo, words)
        executable = shutil.which(words[0])
        runsThis = executable is not None and os.path.realpath(executable) == os.path.realpath(
            sys.executable
        )
        CommandTransport.__init__(
            self,
            pythonArgs(words, dontWriteBytecode),
            f"popen {' '.join(words)}",
            env,
            compiled=runsThis,
            missing="python executable {executable!r} not found (not a file, or not on PATH)",
        )


def transportForSpec(spec: Any, group: Any) -> IGatewayTransport:
    """
    The transport of a C{popen} spec (through another gateway with C{via=}).

    @param spec: the L{XSpec}.
    @param group: the group the gateway joins, where a C{via=} gateway is found.
    """
    if spec.via:
        from .via import ViaTransport

        python = sudoCommand(spec.sudo, spec.python) if spec.sudo else spec.python
        return ViaTransport(
            group.viaGateway(spec), python, bool(spec.dont_write_bytecode), spec.env
        )
    return PopenTransport(spec.python, bool(spec.dont_write_bytecode), spec.env, spec.sudo)

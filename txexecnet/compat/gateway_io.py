"""
Where execnet keeps the command lines its gateways run: here, the ones
txexecnet's run for the same spec.
"""

from __future__ import annotations

import shlex
import sys

from ..bootstrap import BOOTSTRAP_COMMAND, pythonArgs
from ..transports.ssh.openssh import OpenSshTransport
from ..transports.ssh.options import SshOptions
from ..xspec import XSpec as CoreSpec
from .xspec import XSpec

__all__ = ["popen_args", "popen_bootstrapline", "ssh_args", "vagrant_ssh_args"]

#: What a fresh interpreter is told to run: read a line, evaluate it, run it.
popen_bootstrapline = BOOTSTRAP_COMMAND


def popen_args(spec: XSpec) -> list[str]:
    """
    The command line of a popen gateway for C{spec}.

    @param spec: a popen spec.
    """
    python = shlex.split(spec.python) if spec.python else [sys.executable]
    return pythonArgs(python, bool(spec.dont_write_bytecode))


def ssh_args(spec: XSpec) -> list[str]:
    """
    The command line of an ssh gateway for C{spec} run through the system
    C{ssh} binary (C{ssh_client=openssh}; the default client, Conch, runs
    none).

    @param spec: an ssh spec.
    """
    from .multi import coreSpec

    transport = OpenSshTransport(SshOptions.fromSpec(CoreSpec(coreSpec(spec))))
    return list(transport.argv)


def vagrant_ssh_args(spec: XSpec) -> list[str]:
    """
    @param spec: a vagrant_ssh spec.
    @raise ValueError: always: txexecnet has no vagrant_ssh gateways.
    """
    from .multi import coreSpec

    coreSpec(spec)
    raise ValueError(f"vagrant_ssh= is not supported ({spec})")

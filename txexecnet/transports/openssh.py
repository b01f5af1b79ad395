"""
SSH gateways through the system C{ssh} binary (spec C{//ssh_client=openssh}).

Conch stays the default; this is for what only OpenSSH's client can do:
ProxyJump and ProxyCommand, ControlMaster, Kerberos/GSSAPI, FIDO and
PKCS#11 keys, and whatever else C{~/.ssh/config} sets up.  C{ssh} is
spawned like a popen child, with the same pipes and L{ChildProcess}
adapter: its stdout feeds the framing protocol, its stderr (which carries
the remote stderr too) the log.  It never prompts: C{BatchMode=yes}.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Sequence

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from ..bootstrap import sourceBootstrap
from ..errors import GatewayStartError
from ..interfaces import IGatewayConnection, IGatewayTransport
from .popen import startChild
from .ssh import parseDestination, remoteCommand

__all__ = ["OpenSshTransport"]


@implementer(IGatewayTransport)
class OpenSshTransport:
    """
    Start C{python} on an SSH server with C{ssh [options] destination
    command}.  Only what the caller gives is passed as options; everything
    else is left to C{ssh} and its configuration.

    @param destination: C{[user@]host[:port]}, as for L{SshTransport}.
    @param port: the port (C{-p}).
    @param identity: a private key file (C{-i}), or several.
    @param knownHosts: the known_hosts file (C{UserKnownHostsFile}).
    @param acceptNewHostKeys: C{StrictHostKeyChecking=accept-new}.
    @param python: the remote interpreter command.
    @param sshConfig: the ssh_config file (C{-F}).
    @param dontWriteBytecode: pass C{-B} to the remote interpreter.
    @param ssh: the client binary to run.
    """

    def __init__(
        self,
        destination: str,
        port: int | None = None,
        identity: str | Sequence[str] | None = None,
        knownHosts: str | None = None,
        acceptNewHostKeys: bool = False,
        python: str = "python3",
        sshConfig: str | None = None,
        dontWriteBytecode: bool = False,
        ssh: str = "ssh",
    ) -> None:
        user, host, destPort = parseDestination(destination)
        port = port if port is not None else destPort
        self.ssh = ssh
        options = ["-T", "-x", "-e", "none", "-o", "BatchMode=yes"]
        if sshConfig:
            options += ["-F", os.path.expanduser(sshConfig)]
        if port is not None:
            options += ["-p", str(port)]
        if user:
            options += ["-l", user]
        identities = [identity] if isinstance(identity, str) else list(identity or ())
        for path in identities:
            options += ["-i", os.path.expanduser(path)]
        if knownHosts:
            options += ["-o", f"UserKnownHostsFile={os.path.expanduser(knownHosts)}"]
        if acceptNewHostKeys:
            options += ["-o", "StrictHostKeyChecking=accept-new"]
        self.options = options
        self.host = host
        self.command = remoteCommand(python, dontWriteBytecode).decode("utf-8")
        where = f"{user}@{host}" if user else host
        self.description = f"openssh {where}" + (f":{port}" if port is not None else "")

    def __repr__(self) -> str:
        return f"<OpenSshTransport {self.description}>"

    def argv(self, executable: str) -> list[str]:
        """The full command line that starts the gateway."""
        return [executable, *self.options, "--", self.host, self.command]

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        return sourceBootstrap(config)

    def connect(self, reactor: Any, protocol: Any, gateway: Any) -> Deferred[IGatewayConnection]:
        executable = shutil.which(self.ssh)
        if executable is None:
            return fail(
                GatewayStartError(
                    f"gateway {gateway.id} failed to start: no {self.ssh!r} client on PATH "
                    f"(needed by ssh_client=openssh)"
                )
            )
        return startChild(reactor, protocol, gateway.id, executable, self.argv(executable))

"""
SSH gateways through the system C{ssh} binary (spec C{//ssh_client=openssh}).

Conch stays the default; this is for what only OpenSSH's client can do:
ProxyJump and ProxyCommand, ControlMaster, Kerberos/GSSAPI, FIDO and
PKCS#11 keys, and whatever else C{~/.ssh/config} sets up.  It is a
L{CommandTransport} running C{ssh} with the interpreter as its remote
command: its stdout feeds the framing protocol, its stderr (which carries
the remote stderr too) the log.  It never prompts: C{BatchMode=yes}.
"""

from __future__ import annotations

import os

from ..command import CommandTransport
from .options import SshOptions, parseDestination, remoteCommand

__all__ = ["OpenSshTransport"]


class OpenSshTransport(CommandTransport):
    """
    Start the remote interpreter with C{ssh [options] destination command}.
    Only what the caller gives is passed as options; everything else is left
    to C{ssh} and its configuration.
    """

    def __init__(self, options: SshOptions, ssh: str = "ssh") -> None:
        """
        @param options: where to go and how (passwords and passphrases are
            not for this client: use keys or the agent).
        @param ssh: the client binary to run.
        """
        user, host, destPort = parseDestination(options.destination)
        port = options.port if options.port is not None else destPort
        argv = [ssh, "-T", "-x", "-e", "none", "-o", "BatchMode=yes"]
        if options.ssh_config:
            argv += ["-F", os.path.expanduser(options.ssh_config)]
        if port is not None:
            argv += ["-p", str(port)]
        if user:
            argv += ["-l", user]
        for path in options.identities():
            argv += ["-i", os.path.expanduser(path)]
        if options.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={os.path.expanduser(options.known_hosts)}"]
        if options.accept_new_host_keys:
            argv += ["-o", "StrictHostKeyChecking=accept-new"]
        command = remoteCommand(options.python, options.dont_write_bytecode).decode("utf-8")
        where = f"{user}@{host}" if user else host
        CommandTransport.__init__(
            self,
            [*argv, "--", host, command],
            f"openssh {where}" + (f":{port}" if port is not None else ""),
            missing="no {executable!r} client on PATH (needed by ssh_client=openssh)",
        )
        self.options = options

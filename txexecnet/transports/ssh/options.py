"""
What the caller asks of an SSH gateway, as one value: built from keyword
arguments (L{txexecnet.SshGateway}) or from an C{ssh=} spec, and read by
both SSH transports (Conch's and the system C{ssh} binary's).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, fields
from typing import Any

from ...bootstrap import pythonArgs
from ..containers import sudoCommand

__all__ = ["SshOptions", "parseCommandLine", "parseDestination", "remoteCommand", "CLIENTS"]

#: The values of C{ssh_client=}: Twisted Conch, or the system C{ssh} binary.
CLIENTS = ("conch", "openssh")


@dataclass(frozen=True)
class SshOptions:
    """
    How to reach a Python over SSH.  Whatever is not given is found as
    C{ssh} finds it (ssh_config, C{~/.ssh}, the ssh-agent).

    @ivar destination: C{[user@]host[:port]}; C{host} may be an ssh_config
        alias.
    @ivar port: the port, overriding the destination's and ssh_config's.
    @ivar identity: a private key file (or several) to try first.
    @ivar known_hosts: the known_hosts file to check the host key against
        (and add accepted keys to).
    @ivar password: a password to try after the keys (Conch only).
    @ivar passphrase: the passphrase of encrypted key files (Conch only).
    @ivar accept_new_host_keys: add an unknown host key to known_hosts
        instead of failing with L{HostKeyError}.  A changed key always fails.
    @ivar python: the remote interpreter command.
    @ivar ssh_config: the ssh_config file to read instead of the usual ones.
    @ivar dont_write_bytecode: pass C{-B} to the remote interpreter.
    @ivar client: C{"conch"} (Twisted Conch) or C{"openssh"} (the system
        C{ssh} binary, for ProxyJump, ControlMaster, GSSAPI and the like).
    """

    destination: str
    port: int | None = None
    identity: str | tuple[str, ...] | None = None
    known_hosts: str | None = None
    password: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    accept_new_host_keys: bool = False
    python: str = "python3"
    ssh_config: str | None = None
    dont_write_bytecode: bool = False
    client: str = "conch"

    def __post_init__(self) -> None:
        """
        @raise ValueError: for a malformed destination, an empty C{python},
            or an unknown client.
        """
        parseDestination(self.destination)
        remoteCommand(self.python)
        if self.client not in CLIENTS:
            raise ValueError(f"ssh_client={self.client!r}: use {' or '.join(map(repr, CLIENTS))}")
        if self.client == "openssh" and (self.password is not None or self.passphrase is not None):
            raise ValueError("passwords and passphrases are for the Conch client only")
        if isinstance(self.identity, list):
            object.__setattr__(self, "identity", tuple(self.identity))

    @classmethod
    def fromSpec(cls, spec: Any) -> SshOptions:
        """
        The options an C{ssh=} spec gives: C{ssh=[user@]host[:port]},
        C{python=}, C{ssh_identity=}, C{ssh_known_hosts=}, C{ssh_accept_new},
        C{ssh_config=}, C{ssh_client=}, C{dont_write_bytecode}, C{sudo=}
        (the interpreter run by C{sudo -n -u USER} on the host).  Passwords
        and passphrases have no spec key (a spec is shown in logs).

        The C{ssh=} value may also be written as execnet users write it,
        OpenSSH command-line options before the destination
        (C{ssh=-p 2222 -i KEY -o UserKnownHostsFile=FILE user@host}): see
        L{parseCommandLine}.

        @param spec: an L{XSpec} of an ssh gateway.
        @raise ValueError: for an OpenSSH option that cannot be honoured.
        """
        destination, given = parseCommandLine(spec.ssh)
        return cls(
            destination,
            port=given.get("port"),
            identity=given.get("identity") or spec.ssh_identity,
            known_hosts=given.get("known_hosts") or spec.ssh_known_hosts,
            accept_new_host_keys=bool(spec.ssh_accept_new or given.get("accept_new_host_keys")),
            python=sudoCommand(spec.sudo, spec.python) if spec.sudo else spec.python or "python3",
            ssh_config=given.get("ssh_config") or spec.ssh_config,
            dont_write_bytecode=bool(spec.dont_write_bytecode),
            client=spec.ssh_client or "conch",
        )

    @classmethod
    def keywords(cls) -> list[str]:
        """The names of the options, as keyword arguments."""
        return [f.name for f in fields(cls)]

    @property
    def fullDestination(self) -> str:
        """The destination with L{port} written into it."""
        if self.port is None:
            return self.destination
        user, host, _ = parseDestination(self.destination)
        host = f"[{host}]" if ":" in host else host
        return f"{user}@{host}:{self.port}" if user else f"{host}:{self.port}"

    def spec(self) -> str:
        """A spec string that says the same (but for password and passphrase)."""
        parts = [f"ssh={self.fullDestination}", f"python={self.python}"]
        if isinstance(self.identity, str):
            parts.append(f"ssh_identity={self.identity}")
        if self.known_hosts:
            parts.append(f"ssh_known_hosts={self.known_hosts}")
        if self.ssh_config:
            parts.append(f"ssh_config={self.ssh_config}")
        if self.accept_new_host_keys:
            parts.append("ssh_accept_new")
        if self.dont_write_bytecode:
            parts.append("dont_write_bytecode")
        if self.client != "conch":
            parts.append(f"ssh_client={self.client}")
        return "//".join(parts)

    def identities(self) -> list[str]:
        """The key files named, as a list."""
        if self.identity is None:
            return []
        return [self.identity] if isinstance(self.identity, str) else list(self.identity)


#: OpenSSH's C{-o} options that need no counterpart here: Conch never
#: prompts and offers the keys it is given, the gateway's start has its
#: own timeout, and heartbeats keep the connection alive.
_NEEDLESS_OPTIONS = {
    "batchmode",
    "identitiesonly",
    "passwordauthentication",
    "loglevel",
    "connecttimeout",
    "serveraliveinterval",
    "serveralivecountmax",
}


def parseCommandLine(value: str) -> tuple[str, dict[str, Any]]:
    """
    Read an C{ssh=} value: a destination, or OpenSSH command-line options
    and then the destination, as execnet passes them to C{ssh}: C{-p PORT},
    C{-l USER}, C{-i KEYFILE}, C{-F CONFIGFILE} and C{-o NAME=VALUE} for
    C{Port}, C{User}, C{IdentityFile}, C{UserKnownHostsFile} and
    C{StrictHostKeyChecking} (C{no} or C{accept-new} accept a new host key;
    a changed one is always refused), while C{BatchMode}, C{IdentitiesOnly},
    C{PasswordAuthentication}, C{LogLevel}, C{ConnectTimeout},
    C{ServerAliveInterval} and C{ServerAliveCountMax} change nothing here.

    @param value: the C{ssh=} value.
    @return: the destination and the L{SshOptions} fields the options give.
    @raise ValueError: for any other option (name it in an ssh_config file
        given with C{-F} or C{ssh_config=}, or use C{ssh_client=openssh}),
        or no destination.
    """
    words = shlex.split(value)
    given: dict[str, Any] = {}
    identities: list[str] = []
    destination: str | None = None
    user: str | None = None
    i = 0

    def argument(flag: str) -> str:
        nonlocal i
        if len(word) > 2:
            return word[2:]
        i += 1
        if i >= len(words):
            raise ValueError(f"ssh option {flag} needs a value in ssh={value!r}")
        return words[i]

    while i < len(words):
        word = words[i]
        if not word.startswith("-"):
            if destination is not None:
                raise ValueError(f"ssh={value!r} names more than one destination (or a command)")
            destination = word
        elif word[:2] == "-p":
            given["port"] = _port(argument("-p"), value)
        elif word[:2] == "-l":
            user = argument("-l")
        elif word[:2] == "-i":
            identities.append(argument("-i"))
        elif word[:2] == "-F":
            given["ssh_config"] = argument("-F")
        elif word[:2] == "-o":
            name, _, setting = argument("-o").partition("=")
            key = name.strip().lower()
            setting = setting.strip()
            if key == "port":
                given["port"] = _port(setting, value)
            elif key == "user":
                user = setting
            elif key == "identityfile":
                identities.append(setting)
            elif key == "userknownhostsfile":
                given["known_hosts"] = setting
            elif key == "stricthostkeychecking":
                given["accept_new_host_keys"] = setting.lower() in ("no", "accept-new", "off")
            elif key not in _NEEDLESS_OPTIONS:
                raise ValueError(
                    f"ssh option -o {name} in ssh={value!r} is not supported by the Conch client: "
                    "put it in an ssh_config file (ssh_config=FILE), or use ssh_client=openssh"
                )
        else:
            raise ValueError(
                f"ssh option {word} in ssh={value!r} is not supported: put what it does in an "
                "ssh_config file (ssh_config=FILE), or use ssh_client=openssh"
            )
        i += 1
    if destination is None:
        raise ValueError(f"ssh={value!r} names no destination")
    if user is not None and "@" not in destination:
        destination = f"{user}@{destination}"
    if identities:
        given["identity"] = identities[0] if len(identities) == 1 else tuple(identities)
    return destination, given


def _port(text: str, value: str) -> int:
    if not text.isdigit():
        raise ValueError(f"bad port {text!r} in ssh={value!r}")
    return int(text)


def parseDestination(destination: str) -> tuple[str | None, str, int | None]:
    """
    Split C{[user@]host[:port]} into its parts.  An IPv6 address takes
    brackets when a port follows (C{root@[::1]:2222}); a bare one
    (C{::1}) is taken as a host without a port.

    @param destination: the destination.
    @raise ValueError: for an empty host or a port that is not a number.
    """
    user, at, hostport = destination.rpartition("@")
    if not at:
        user = ""
    port: str | None = None
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad ssh destination {destination!r}")
        port = rest[1:] or None
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    else:
        host = hostport
    if not host:
        raise ValueError(f"ssh destination {destination!r} names no host")
    if port is not None and not port.isdigit():
        raise ValueError(f"bad port {port!r} in ssh destination {destination!r}")
    return user or None, host, int(port) if port is not None else None


def remoteCommand(python: str, dontWriteBytecode: bool = False) -> bytes:
    """
    The command line the remote login shell runs to start a bootstrap-ready
    interpreter: C{python} split into words as a shell would, then every
    word quoted, so that nothing in it is expanded but a leading C{~/}.

    @param python: the interpreter's command, as a shell would read it.
    @param dontWriteBytecode: add C{-B}.
    """
    words = shlex.split(python)
    if not words:
        raise ValueError("python= is empty")
    return " ".join(_shellWord(w) for w in pythonArgs(words, dontWriteBytecode)).encode("utf-8")


def _shellWord(word: str) -> str:
    if word.startswith("~/"):
        return "~/" + shlex.quote(word[2:])
    return shlex.quote(word)

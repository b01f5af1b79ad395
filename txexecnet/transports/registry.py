"""
The kinds of gateway, one entry each: the spec key that names the kind, the
option keys it accepts, and the module (imported only when a gateway of the
kind is made) whose C{transportForSpec(spec, group)} gives its transport.

Adding a kind is a new transport module and one L{GatewayKind} entry, given
to L{register} (the built-in ones are at the end of this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .._remote import EXECMODELS

__all__ = [
    "GatewayKind",
    "Option",
    "kinds",
    "kindFor",
    "optionFor",
    "parseSeconds",
    "parseSize",
    "register",
    "unregister",
    "COMMON_OPTIONS",
    "PROCESS_OPTIONS",
]


@dataclass(frozen=True)
class Option:
    """
    A spec key other than a kind's own: C{python=}, C{chdir=}, C{ssh_identity=}.

    @ivar name: the key.
    @ivar description: what it means, for messages and docs.
    @ivar flag: a bare key without a value (C{dont_write_bytecode}).
    @ivar check: called with the value; a C{ValueError} it raises names the
        problem (C{int} for C{nice=}).
    """

    name: str
    description: str
    flag: bool = False
    check: Callable[[str], object] | None = None


@dataclass(frozen=True)
class GatewayKind:
    """
    One kind of gateway.

    @ivar prefix: the spec key that names it (C{popen}, C{ssh}).
    @ivar description: what it reaches, for messages and docs.
    @ivar options: the other keys its specs may hold.
    @ivar module: the module whose C{transportForSpec} makes its transport.
    @ivar flag: the prefix is a bare key (C{popen}) rather than C{ssh=HOST}.
    @ivar env: C{env:NAME=VALUE} parts are honoured.
    @ivar heartbeat: seconds between heartbeats unless the spec's
        C{heartbeat=} says otherwise (0: none).
    @ivar refusals: why a key is refused, for keys a user might expect to
        work (C{chdir} on a thread gateway).
    """

    prefix: str
    description: str
    options: tuple[Option, ...]
    module: str
    flag: bool = False
    env: bool = True
    heartbeat: float = 0.0
    refusals: dict[str, str] = field(default_factory=dict)

    def accepts(self, key: str) -> bool:
        """
        Whether specs of this kind may hold C{key}.

        @param key: an option key.
        """
        return any(option.name == key for option in self.options)


_kinds: dict[str, GatewayKind] = {}


def register(kind: GatewayKind) -> None:
    """
    Make C{kind} available to spec strings.

    @param kind: the new kind.
    @raise ValueError: if its prefix is taken, or names an option of another kind.
    """
    if kind.prefix in _kinds or optionFor(kind.prefix) is not None:
        raise ValueError(f"spec key {kind.prefix!r} is taken")
    _kinds[kind.prefix] = kind


def unregister(prefix: str) -> None:
    """
    Forget the kind that C{prefix} names (if any).

    @param prefix: its spec key.
    """
    _kinds.pop(prefix, None)


def kinds() -> list[GatewayKind]:
    """Every registered kind, in the order of registration."""
    return list(_kinds.values())


def kindFor(prefix: str) -> GatewayKind | None:
    """
    The kind that the spec key C{prefix} names, if any.

    @param prefix: a spec key.
    """
    return _kinds.get(prefix)


def optionFor(key: str) -> Option | None:
    """
    The option that C{key} is for some kind, if any.

    @param key: a spec key.
    """
    for kind in _kinds.values():
        for option in kind.options:
            if option.name == key:
                return option
    return None


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("is not an integer") from None


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parseSize(value: str) -> int:
    """
    A size in bytes written C{16777216}, C{16M}, C{512K} or C{1G}; C{off}
    (or C{0}) for none.

    @param value: the text.
    @raise ValueError: for anything else.
    """
    text = value.strip().upper()
    if text in ("OFF", "0"):
        return 0
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "")
    if not number.isdigit():
        raise ValueError("is not a size: write bytes, or a number with K, M or G, or off")
    return int(number) * _UNITS[unit]


def parseSeconds(value: str) -> float:
    """
    A duration in seconds (C{15}, C{0.5}); C{off} (or C{0}) for none.

    @param value: the text.
    @raise ValueError: for anything else.
    """
    if value.strip().lower() == "off":
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError("is not a number of seconds (or off)") from None
    if not seconds >= 0:
        raise ValueError("is not a number of seconds (or off)")
    return seconds


#: Seconds between heartbeats of the gateways that cross a network.
NETWORK_HEARTBEAT = 15.0

ID = Option("id", "the gateway's name")
HEARTBEAT = Option(
    "heartbeat",
    "seconds between heartbeats: a peer silent for 3 of them is given up"
    " (15 for ssh and socket gateways, off for the others)",
    check=parseSeconds,
)
WINDOW = Option(
    "window",
    "bytes of items a channel's receiver may hold not received before its sender waits"
    " (16M by default; off: no limit)",
    check=parseSize,
)


def _execmodel(value: str) -> None:
    if value not in EXECMODELS:
        raise ValueError(f"is not one of {', '.join(EXECMODELS)}")


EXECMODEL = Option(
    "execmodel",
    "how remote code runs: thread (each remote_exec in a thread of its own, the default)"
    " or main_thread_only (one at a time, in the remote main thread)",
    check=_execmodel,
)
#: The levels of C{logging=}, by name.
LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def parseLogLevel(value: str) -> int:
    """
    The level a C{logging=} value names: a level name (C{INFO}) or number.

    @param value: the option's value.
    @raise ValueError: for anything else.
    """
    level = LOG_LEVELS.get(value.strip().upper())
    if level is None:
        try:
            level = int(value)
        except ValueError:
            raise ValueError(
                f"is not a logging level ({', '.join(LOG_LEVELS)}, or a number)"
            ) from None
    return level


LOGGING = Option(
    "logging",
    "send the remote logging module's records at this level and up (DEBUG, INFO, ...)"
    " to this side's logging, under txexecnet.remote.<gateway id>.<logger name>",
    check=parseLogLevel,
)
PYTHON = Option("python", "the remote Python executable")
SUDO = Option("sudo", "run the remote Python as this user, with sudo -n (it never prompts)")
CHDIR = Option("chdir", "the remote working directory (created if missing)")
NICE = Option("nice", "the remote niceness increment (an integer)", check=_integer)
DONT_WRITE_BYTECODE = Option("dont_write_bytecode", "run the remote Python with -B", flag=True)

#: What every kind accepts.
COMMON_OPTIONS = (ID, WINDOW, HEARTBEAT)

#: What kinds that start a remote process of their own accept.
PROCESS_OPTIONS = COMMON_OPTIONS + (PYTHON, CHDIR, NICE, DONT_WRITE_BYTECODE, EXECMODEL, LOGGING)

_SSH_OPTIONS = (
    Option("ssh_accept_new", "accept and remember an unknown SSH host key", flag=True),
    Option("ssh_client", "'openssh' to use the system ssh binary instead of Conch"),
    Option("ssh_config", "the ssh_config file to read host aliases from"),
    Option("ssh_identity", "the private key file to authenticate with over SSH"),
    Option("ssh_known_hosts", "the known_hosts file to check SSH host keys against"),
)

_WHOLE_PROCESS = "it would change this whole process"

register(
    GatewayKind(
        "popen",
        "a child Python on this machine",
        PROCESS_OPTIONS + (SUDO, Option("via", "the id of a gateway to start this one through")),
        "txexecnet.transports.popen",
        flag=True,
    )
)
register(
    GatewayKind(
        "thread",
        "threads of this very process",
        COMMON_OPTIONS,
        "txexecnet.transports.thread",
        flag=True,
        env=False,
        refusals={
            "env:": _WHOLE_PROCESS,
            "chdir": _WHOLE_PROCESS,
            "nice": _WHOLE_PROCESS,
            "dont_write_bytecode": _WHOLE_PROCESS,
            "python": "it runs this interpreter",
            "execmodel": "its main thread is this program's",
            "logging": "its logging is this program's own",
        },
    )
)
register(
    GatewayKind(
        "ssh",
        "a Python on a host reached over SSH",
        PROCESS_OPTIONS + _SSH_OPTIONS + (SUDO,),
        "txexecnet.transports.ssh",
        heartbeat=NETWORK_HEARTBEAT,
    )
)
register(
    GatewayKind(
        "socket",
        "a Python started by a txexecnet socket server",
        COMMON_OPTIONS
        + (
            CHDIR,
            NICE,
            EXECMODEL,
            LOGGING,
            Option("secret_file", "a file holding the socket server's shared secret"),
        ),
        "txexecnet.transports.socket",
        heartbeat=NETWORK_HEARTBEAT,
        refusals={
            "python": "the socket server chooses how its Python runs",
            "dont_write_bytecode": "the socket server chooses how its Python runs",
        },
    )
)
register(
    GatewayKind(
        "docker",
        "a Python in a running container (docker exec -i)",
        PROCESS_OPTIONS,
        "txexecnet.transports.containers",
    )
)
register(
    GatewayKind(
        "kubectl",
        "a Python in a pod's container (kubectl exec -i)",
        PROCESS_OPTIONS
        + (
            Option("kubectl_namespace", "the pod's namespace"),
            Option("kubectl_context", "the kubeconfig context to use"),
            Option("container", "the container in the pod"),
        ),
        "txexecnet.transports.containers",
        heartbeat=NETWORK_HEARTBEAT,  # through the cluster's API server: a network away
    )
)

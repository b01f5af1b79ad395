"""
Where an SSH gateway goes, resolved the way C{ssh} resolves it: the user,
host name, port and keys from the caller and ssh_config, and the
known_hosts files that vouch for the host key.
"""

from __future__ import annotations

import getpass
import os
from typing import Any, Sequence

from .config import DEFAULT_CONFIG_FILES, SshConfig, expandTokens, localTokens
from .knownhosts import KnownHosts, hostKeyName
from .options import SshOptions, parseDestination

__all__ = [
    "SshTarget",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IDENTITIES",
    "DEFAULT_KNOWN_HOSTS",
    "SYSTEM_KNOWN_HOSTS",
]

#: Seconds from TCP connect to a ready SSH connection (key exchange and
#: authentication) unless ssh_config says C{ConnectTimeout}.
DEFAULT_CONNECT_TIMEOUT = 30.0

#: Identity files tried when neither the caller nor ssh_config names any,
#: as C{ssh} does.
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")

#: known_hosts files read when none is named.
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


class SshTarget:
    """
    Everything needed to reach one SSH server as one user, resolved from
    the caller's arguments and ssh_config the way C{ssh} resolves them.

    @ivar alias: the host as the caller named it.
    @ivar user: the remote user.
    @ivar hostname: the host to connect to (ssh_config C{HostName}).
    @ivar port: the port.
    @ivar identityFiles: private key files to try, in order.
    @ivar identitiesOnly: use only C{identityFiles}, not every agent key.
    @ivar agentSocket: the ssh-agent socket to use, or C{None}.
    @ivar knownHosts: the L{KnownHosts} that vouch for host keys.
    @ivar hostKeyName: the name host keys are filed under.
    @ivar acceptNewHostKeys: add an unknown host key instead of refusing.
    @ivar connectTimeout: seconds to a ready, authenticated connection.
    @ivar sshConfig: the ssh_config file named by the caller, if any.
    """

    def __init__(
        self,
        destination: str,
        port: int | None = None,
        identity: str | Sequence[str] | None = None,
        knownHosts: str | None = None,
        acceptNewHostKeys: bool = False,
        sshConfig: str | None = None,
    ) -> None:
        """
        @param destination: C{[user@]host[:port]}; C{host} may be an ssh_config alias.
        @param port: the port, overriding the destination's and ssh_config's.
        @param identity: key files to try before those ssh_config names.
        @param knownHosts: the one known_hosts file to use.
        @param acceptNewHostKeys: add an unknown host key instead of refusing it.
        @param sshConfig: the ssh_config file to read instead of the usual ones.
        """
        user, self.alias, destPort = parseDestination(destination)
        self.sshConfig = sshConfig
        files = [sshConfig] if sshConfig else list(DEFAULT_CONFIG_FILES)
        if sshConfig and not os.path.exists(os.path.expanduser(sshConfig)):
            raise ValueError(f"ssh_config file {sshConfig!r} does not exist")
        options = SshConfig.fromFiles(files).lookup(self.alias)
        for unsupported in ("proxyjump", "proxycommand"):
            if options.get(unsupported, "none") != "none":
                raise ValueError(
                    f"ssh_config sets {unsupported} for {self.alias!r}, which the Conch "
                    f"transport cannot follow; use the system ssh (spec //ssh_client=openssh)"
                )
        tokens = localTokens()
        tokens["n"] = self.alias
        tokens["h"] = self.alias
        self.hostname = expandTokens(_option(options, "hostname", self.alias), tokens)
        tokens["h"] = self.hostname
        self.user = user or _option(options, "user", "") or getpass.getuser()
        tokens["r"] = self.user
        configPort = _option(options, "port", "")
        if port is None:
            port = destPort
        if port is None and configPort:
            if not configPort.isdigit():
                raise ValueError(
                    f"ssh_config Port {configPort!r} for {self.alias!r} is not a number"
                )
            port = int(configPort)
        self.port = port if port is not None else 22
        tokens["p"] = str(self.port)
        self._resolveCredentials(options, tokens, identity)
        self._resolveHostKeys(options, tokens, knownHosts, acceptNewHostKeys)
        timeout = _option(options, "connecttimeout", "")
        self.connectTimeout = float(timeout) if timeout.isdigit() else DEFAULT_CONNECT_TIMEOUT

    def _resolveCredentials(
        self, options: dict[str, Any], tokens: dict[str, str], identity: str | Sequence[str] | None
    ) -> None:
        """Key files (the caller's first, as with C{ssh -i}) and the agent."""
        explicit = [identity] if isinstance(identity, str) else list(identity or ())
        configured = options.get("identityfile", [])
        assert isinstance(configured, list)
        files = [expandTokens(f, tokens) for f in explicit + configured]
        self.explicitIdentities = {expandTokens(f, tokens) for f in explicit}
        if not files:
            files = [os.path.expanduser(f) for f in DEFAULT_IDENTITIES]
        self.identityFiles = [f for i, f in enumerate(files) if f not in files[:i]]
        self.identitiesOnly = _option(options, "identitiesonly", "no").lower() == "yes"
        agent = _option(options, "identityagent", "SSH_AUTH_SOCK")
        if agent.lower() == "none":
            self.agentSocket: str | None = None
        elif agent in ("SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"):
            self.agentSocket = os.environ.get("SSH_AUTH_SOCK") or None
        else:
            self.agentSocket = expandTokens(agent, tokens)

    def _resolveHostKeys(
        self,
        options: dict[str, Any],
        tokens: dict[str, str],
        knownHosts: str | None,
        acceptNewHostKeys: bool,
    ) -> None:
        """
        The known_hosts files: the caller's one alone, or ssh_config's (or
        the default) user files plus the system-wide ones.
        """
        if knownHosts:
            userFiles = [os.path.expanduser(knownHosts)]
            systemFiles: list[str] = []
        else:
            configured = _option(options, "userknownhostsfile", "")
            userFiles = [expandTokens(f, tokens) for f in configured.split()] or list(
                DEFAULT_KNOWN_HOSTS
            )
            systemFiles = _option(options, "globalknownhostsfile", "").split() or list(
                SYSTEM_KNOWN_HOSTS
            )
        hashNames = _option(options, "hashknownhosts", "yes").lower() != "no"
        self.knownHosts = KnownHosts(userFiles, systemFiles, hashNames)
        alias = _option(options, "hostkeyalias", "")
        self.hostKeyName = alias or hostKeyName(self.hostname, self.port)
        strict = _option(options, "stricthostkeychecking", "ask").lower()
        self.acceptNewHostKeys = acceptNewHostKeys or strict in ("accept-new", "no", "off")

    def __repr__(self) -> str:
        return f"<SshTarget {self}>"

    def __str__(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"

    @property
    def key(self) -> tuple[str, str, int]:
        """What gateways that may share a connection have in common."""
        return (self.user, self.hostname.lower(), self.port)

    @classmethod
    def fromOptions(cls, options: SshOptions) -> SshTarget:
        """
        The target that C{options} name.

        @param options: what the caller asked for (its destination, port,
            identity, known_hosts, accept_new_host_keys and ssh_config).
        """
        return cls(
            options.destination,
            options.port,
            options.identity,
            options.known_hosts,
            options.accept_new_host_keys,
            options.ssh_config,
        )

    @property
    def hostPort(self) -> str:
        """C{host:port}, for messages."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"


def _option(options: dict[str, Any], name: str, default: str) -> str:
    value = options.get(name, default)
    assert isinstance(value, str)
    return value

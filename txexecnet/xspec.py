"""
Gateway spec strings, as execnet writes them: C{key=value} parts joined by
C{//}, e.g. C{popen//python=python3//chdir=/tmp//env:LANG=C//id=worker}.
"""

from __future__ import annotations

from typing import Any

__all__ = ["XSpec", "GATEWAY_TYPES", "OPTION_KEYS"]

#: Keys that say which kind of gateway to make; a spec names exactly one.
GATEWAY_TYPES = ("popen", "thread", "ssh", "socket")

#: Every other key a spec may hold, with what it means (used in messages).
OPTION_KEYS = {
    "python": "the remote Python executable",
    "chdir": "the remote working directory (created if missing)",
    "nice": "the remote niceness increment (an integer)",
    "id": "the gateway's name",
    "via": "the id of a gateway to start this one through",
    "dont_write_bytecode": "run the remote Python with -B",
    "ssh_accept_new": "accept and remember an unknown SSH host key",
    "ssh_client": "'openssh' to use the system ssh binary instead of Conch",
    "ssh_config": "the ssh_config file to read host aliases from",
    "ssh_identity": "the private key file to authenticate with over SSH",
    "ssh_known_hosts": "the known_hosts file to check SSH host keys against",
    "secret_file": "a file holding the socket server's shared secret",
}

_VALUED = {
    "ssh",
    "socket",
    "python",
    "chdir",
    "nice",
    "id",
    "via",
    "ssh_client",
    "ssh_config",
    "ssh_identity",
    "ssh_known_hosts",
    "secret_file",
}
_FLAGS = {"popen", "thread", "dont_write_bytecode", "ssh_accept_new"}

#: Options that mean something for one kind of gateway only.
_ONLY_FOR = {
    "ssh_accept_new": "ssh",
    "ssh_client": "ssh",
    "ssh_config": "ssh",
    "ssh_identity": "ssh",
    "ssh_known_hosts": "ssh",
    "secret_file": "socket",
    "via": "popen",
}


class XSpec:
    """
    A parsed gateway spec.  Each known key is an attribute (L{None} when
    absent, C{True} for a bare flag); C{env:NAME=VALUE} parts are collected
    in L{env}.

    @raise ValueError: naming the bad part, for an unknown or repeated key, a
        missing or unexpected value, or not exactly one gateway type.
    """

    popen: Any = None
    thread: Any = None
    ssh: Any = None
    socket: Any = None
    python: Any = None
    chdir: Any = None
    nice: Any = None
    id: Any = None
    via: Any = None
    dont_write_bytecode: Any = None
    ssh_accept_new: Any = None
    ssh_client: Any = None
    ssh_config: Any = None
    ssh_identity: Any = None
    ssh_known_hosts: Any = None
    secret_file: Any = None

    def __init__(self, string: str) -> None:
        if not isinstance(string, str):
            raise TypeError(f"a gateway spec is a string, not {type(string).__name__}")
        self._spec = string
        self.env: dict[str, str] = {}
        seen: set[str] = set()
        for part in string.split("//"):
            key, sep, value = part.partition("=")
            where = f"in gateway spec {string!r}"
            if not key:
                raise ValueError(f"empty part {part!r} {where}")
            if key.startswith("env:"):
                name = key[4:]
                if not name or not sep:
                    raise ValueError(f"bad environment part {part!r} {where}: write env:NAME=VALUE")
                self.env[name] = value
                continue
            if key in seen:
                raise ValueError(f"key {key!r} given twice {where}")
            seen.add(key)
            if key in _FLAGS:
                if sep:
                    raise ValueError(f"key {key!r} takes no value {where}, got {part!r}")
                setattr(self, key, True)
            elif key in _VALUED:
                if not value:
                    raise ValueError(f"key {key!r} needs a value {where}, e.g. {key}=...")
                setattr(self, key, value)
            else:
                known = ", ".join(GATEWAY_TYPES + tuple(OPTION_KEYS) + ("env:NAME",))
                raise ValueError(f"unknown key {key!r} {where}; known keys: {known}")
        types = [t for t in GATEWAY_TYPES if t in seen]
        if len(types) != 1:
            raise ValueError(
                f"gateway spec {string!r} must name exactly one of "
                f"{', '.join(GATEWAY_TYPES)}, it names {len(types) and ', '.join(types) or 'none'}"
            )
        if self.nice is not None:
            try:
                int(self.nice)
            except ValueError:
                raise ValueError(f"nice={self.nice!r} in gateway spec {string!r} is not an integer")
        for key, only in _ONLY_FOR.items():
            if key in seen and self.type != only:
                raise ValueError(f"{key} only applies to {only} gateways, not in {string!r}")
        if self.python is not None and self.type in ("thread", "socket"):
            raise ValueError(f"python= cannot be used with a {self.type} gateway ({string!r})")

    @property
    def type(self) -> str:
        """Which kind of gateway: C{popen}, C{thread}, C{ssh} or C{socket}."""
        for t in GATEWAY_TYPES:
            if getattr(self, t):
                return t
        raise AssertionError("unreachable: checked in __init__")

    def __str__(self) -> str:
        return self._spec

    def __repr__(self) -> str:
        return f"<XSpec {self._spec!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, XSpec) and other._spec == self._spec

    def __hash__(self) -> int:
        return hash(self._spec)

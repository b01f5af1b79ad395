"""
execnet's spec strings, read as execnet reads them: any C{key=value} (or
bare C{key}) parts joined by C{//}; a key that is not there reads as
C{None}; keys may be set afterwards.  Nothing is checked until a gateway is
made from a spec (L{txexecnet.compat.multi.Group.makegateway}), which
refuses what txexecnet cannot honour, naming the part.
"""

from __future__ import annotations

from typing import Any

__all__ = ["XSpec"]


class XSpec:
    """
    An execnet gateway spec: C{popen//python=python3//chdir=/tmp},
    C{ssh=-p 2222 user@host//python=python3}, C{socket=host:port},
    C{socket//installvia=ID}, C{env:NAME=VALUE}...

    @ivar env: the C{env:} parts, name to value.
    """

    # The keys execnet's code reads most; any other reads as None too.
    chdir: str | None = None
    dont_write_bytecode: bool | None = None
    execmodel: str | None = None
    id: str | None = None
    installvia: str | None = None
    nice: str | None = None
    popen: bool | None = None
    python: str | None = None
    socket: str | bool | None = None
    ssh: str | None = None
    ssh_config: str | None = None
    thread: bool | None = None
    vagrant_ssh: str | None = None
    via: str | None = None

    def __init__(self, string: str) -> None:
        """
        @param string: the spec string.
        @raise ValueError: for a key given twice.
        @raise AttributeError: for a key that starts with an underscore.
        """
        self._spec = string
        self.env: dict[str, Any] = {}
        for part in string.split("//"):
            key, sep, text = part.partition("=")
            value: str | bool = text if sep else True
            if key.startswith("_"):
                raise AttributeError(f"{key!r} is not a valid XSpec key")
            if key in self.__dict__:
                raise ValueError(f"duplicate key: {key!r} in {string!r}")
            if key.startswith("env:"):
                self.env[key[4:]] = value
            else:
                setattr(self, key, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return None

    def options(self) -> dict[str, Any]:
        """The keys set (in the string, or since), but C{env:} parts, with their values."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "env"}

    def __repr__(self) -> str:
        return f"<XSpec {self._spec!r}>"

    def __str__(self) -> str:
        return self._spec

    def __hash__(self) -> int:
        return hash(self._spec)

    def __eq__(self, other: object) -> bool:
        return self._spec == getattr(other, "_spec", None)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def _samefilesystem(self) -> bool:
        return self.popen is not None and self.chdir is None

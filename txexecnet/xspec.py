"""
Gateway spec strings, as execnet writes them: C{key=value} parts joined by
C{//}, e.g. C{popen//python=python3//chdir=/tmp//env:LANG=C//id=worker}.

Which keys a spec may hold depends on its kind of gateway; the kinds and
their keys are in L{txexecnet.transports.registry}.
"""

from __future__ import annotations

import importlib
from typing import Any

from .interfaces import IGatewayTransport
from .transports.registry import GatewayKind, kindFor, kinds, optionFor

__all__ = ["XSpec"]


class XSpec:
    """
    A parsed gateway spec.  The kind's key and each option is an attribute
    (C{True} for a bare flag; C{None} for an option of any kind the spec
    does not hold); C{env:NAME=VALUE} parts are collected in L{env}.

    @ivar env: the C{env:} parts, name to value.
    @ivar kind: the L{GatewayKind} the spec names.
    @ivar id: the gateway's name (C{id=}), which a L{Group} may set.
    """

    id: str | None

    def __init__(self, string: str) -> None:
        """
        @param string: the spec string.
        @raise ValueError: naming the bad part, for an unknown or repeated
            key, a missing or unexpected value, a key the kind does not
            take, or not exactly one kind of gateway.
        """
        if not isinstance(string, str):
            raise TypeError(f"a gateway spec is a string, not {type(string).__name__}")
        self._spec = string
        self.env: dict[str, str] = {}
        where = f"in gateway spec {string!r}"
        values: dict[str, str | bool] = {}
        for part in string.split("//"):
            key, sep, value = part.partition("=")
            if not key:
                raise ValueError(f"empty part {part!r} {where}")
            if key.startswith("env:"):
                name = key[4:]
                if not name or not sep:
                    raise ValueError(f"bad environment part {part!r} {where}: write env:NAME=VALUE")
                self.env[name] = value
                continue
            if key in values:
                raise ValueError(f"key {key!r} given twice {where}")
            kind = kindFor(key)
            option = optionFor(key)
            if kind is None and option is None:
                known = ", ".join(
                    [k.prefix for k in kinds()]
                    + sorted({o.name for k in kinds() for o in k.options})
                    + ["env:NAME"]
                )
                raise ValueError(f"unknown key {key!r} {where}; known keys: {known}")
            flag = kind.flag if kind is not None else option is not None and option.flag
            if flag:
                if sep:
                    raise ValueError(f"key {key!r} takes no value {where}, got {part!r}")
                values[key] = True
            else:
                if not value:
                    raise ValueError(f"key {key!r} needs a value {where}, e.g. {key}=...")
                if option is not None and option.check is not None:
                    try:
                        option.check(value)
                    except ValueError as e:
                        raise ValueError(f"{key}={value!r} {where} {e}") from None
                values[key] = value
        named = [key for key in values if kindFor(key) is not None]
        if len(named) != 1:
            every = ", ".join(k.prefix for k in kinds())
            raise ValueError(
                f"gateway spec {string!r} must name exactly one of {every}, "
                f"it names {', '.join(named) or 'none'}"
            )
        kind = kindFor(named[0])
        assert kind is not None
        self.kind: GatewayKind = kind
        for key in values:
            if key != kind.prefix and not kind.accepts(key):
                raise ValueError(self._refusal(kind, key, string))
        if self.env and not kind.env:
            raise ValueError(self._refusal(kind, "env:", string))
        self.__dict__.update(values)

    @staticmethod
    def _refusal(kind: GatewayKind, key: str, string: str) -> str:
        message = f"{key} cannot be used with a {kind.prefix} gateway"
        reason = kind.refusals.get(key)
        if reason:
            message += f": {reason}"
        takers = [k.prefix for k in kinds() if k.accepts(key)]
        if takers and len(takers) < len(kinds()) - 1:
            message += f"; it only applies to {', '.join(takers)} gateways"
        return f"{message} ({string!r})"

    def __getattr__(self, name: str) -> Any:
        # Keys of any kind that this spec does not hold read as None.
        if not name.startswith("_") and (kindFor(name) is not None or optionFor(name) is not None):
            return None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def transport(self, group: Any) -> IGatewayTransport:
        """
        The transport that reaches what this spec names: from the
        C{transportForSpec(spec, group)} of its kind's module.

        @param group: the group the gateway joins (a C{via=} gateway starts
            through another gateway of it).
        @raise ValueError: for a spec the kind cannot honour.
        """
        module = importlib.import_module(self.kind.module)
        transport: IGatewayTransport = module.transportForSpec(self, group)
        return transport

    @property
    def type(self) -> str:
        """Which kind of gateway: C{popen}, C{thread}, C{ssh}, C{socket}..."""
        return self.kind.prefix

    def __str__(self) -> str:
        return self._spec

    def __repr__(self) -> str:
        return f"<XSpec {self._spec!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, XSpec) and other._spec == self._spec

    def __hash__(self) -> int:
        return hash(self._spec)

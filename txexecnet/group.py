"""
Making gateways from spec strings, and keeping them together in groups.
"""

from __future__ import annotations

import atexit
from typing import Any, Iterator

from twisted.internet.defer import Deferred, DeferredList

from ._remote import DEFAULT_MAX_FRAME_SIZE
from .gateway import DEFAULT_EXIT_TIMEOUT, Gateway
from .interfaces import IGatewayTransport
from .transports import PopenTransport, ThreadTransport
from .xspec import XSpec

__all__ = ["Group", "makegateway", "default_group", "transportForSpec"]


def transportForSpec(spec: XSpec) -> IGatewayTransport:
    """
    The transport that reaches what C{spec} names.

    @raise ValueError: for an option that this kind of gateway cannot honour.
    """
    if spec.via:
        raise ValueError(f"via= is not supported by txexecnet yet ({spec})")
    if spec.type == "popen":
        return PopenTransport(spec.python, bool(spec.dont_write_bytecode))
    if spec.type == "thread":
        bad = [k for k in ("chdir", "nice", "dont_write_bytecode") if getattr(spec, k)]
        if spec.env:
            bad.append("env:")
        if bad:
            raise ValueError(
                f"{', '.join(bad)} would change this whole process: not allowed for a "
                f"thread gateway ({spec})"
            )
        return ThreadTransport()
    raise ValueError(f"{spec.type} gateways are not available in this version ({spec})")


class Group:
    """
    A set of gateways, addressable by id, ended together by L{terminate}.

    @param reactor: the reactor gateways run on (default: the global one).
    """

    def __init__(self, specs: tuple[str, ...] | list[str] = (), reactor: Any = None) -> None:
        self._reactor = reactor
        self._gateways: list[Gateway] = []
        self._idCounter = 0
        self._specs = list(specs)

    def __repr__(self) -> str:
        return f"<Group {[gw.id for gw in self._gateways]}>"

    def __len__(self) -> int:
        return len(self._gateways)

    def __iter__(self) -> Iterator[Gateway]:
        return iter(list(self._gateways))

    def __contains__(self, key: object) -> bool:
        return any(gw is key or gw.id == key for gw in self._gateways)

    def __getitem__(self, key: int | str) -> Gateway:
        if isinstance(key, int):
            return self._gateways[key]
        for gw in self._gateways:
            if gw.id == key:
                return gw
        raise KeyError(key)

    def allocate_id(self, spec: XSpec) -> str:
        """Give C{spec} an id (C{gw0}, C{gw1}...) unless it has one."""
        if spec.id is None:
            while True:
                candidate = f"gw{self._idCounter}"
                self._idCounter += 1
                if candidate not in self:
                    spec.id = candidate
                    break
        elif spec.id in self:
            raise ValueError(f"a gateway with id {spec.id!r} already exists in this group")
        return spec.id

    def makegateway(
        self, spec: str | XSpec | None = None, maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE
    ) -> Deferred[Gateway]:
        """
        Start a gateway as C{spec} says (default C{"popen"}).

        @return: a Deferred firing with the L{Gateway} once the remote side
            is ready, or failing with L{GatewayStartError} saying why not.
        @raise ValueError: for a malformed spec, naming the bad part.
        """
        if spec is None:
            spec = self._specs.pop(0) if self._specs else "popen"
        xspec = spec if isinstance(spec, XSpec) else XSpec(spec)
        transport = transportForSpec(xspec)
        self.allocate_id(xspec)
        gateway = Gateway(xspec, self._reactor, maxFrameSize)
        self._gateways.append(gateway)
        gateway.whenTerminated().addCallback(lambda _: self._discard(gateway))
        return gateway._start(transport)

    def _discard(self, gateway: Gateway) -> None:
        if gateway in self._gateways:
            self._gateways.remove(gateway)

    def terminate(self, timeout: float = DEFAULT_EXIT_TIMEOUT) -> Deferred[None]:
        """Exit every gateway; fire when all have ended (killing laggards)."""
        d = DeferredList([gw.exit(timeout) for gw in list(self._gateways)], consumeErrors=True)
        return d.addCallback(lambda _: None)

    def _killAll(self) -> None:
        for gw in list(self._gateways):
            gw._kill()


#: The group that module-level L{makegateway} adds to.
default_group = Group()
atexit.register(default_group._killAll)


def makegateway(
    spec: str | XSpec = "popen", reactor: Any = None, maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE
) -> Deferred[Gateway]:
    """
    Start a gateway from an execnet spec string, e.g. C{"popen"},
    C{"popen//python=python3.12//chdir=/tmp"}, C{"thread"}.

    @param reactor: the reactor to use; gateways made with a reactor other
        than the global one are kept in a group of their own.
    @return: a Deferred firing with the ready L{Gateway}.
    """
    group = default_group if reactor is None else Group(reactor=reactor)
    return group.makegateway(spec, maxFrameSize)


def PopenGateway(python: str | None = None, reactor: Any = None) -> Deferred[Gateway]:
    """The seed's C{PopenGateway}: a fresh child interpreter (C{python} or this one)."""
    return makegateway("popen" if python is None else f"popen//python={python}", reactor)


def ThreadGateway(reactor: Any = None) -> Deferred[Gateway]:
    """A gateway whose remote side runs in threads of this process."""
    return makegateway("thread", reactor)

"""
Groups of gateways: made from spec strings, addressable by id, ended
together.
"""

from __future__ import annotations

import atexit
from typing import Any, Iterator

from twisted.internet.defer import Deferred, DeferredList

from ._remote import DEFAULT_MAX_FRAME_SIZE
from .gateway import DEFAULT_EXIT_TIMEOUT, Gateway
from .interfaces import IGatewayTransport
from .xspec import XSpec

__all__ = ["Group", "default_group"]


class Group:
    """
    A set of gateways, addressable by id, ended together by L{terminate}.
    """

    def __init__(self, specs: tuple[str, ...] | list[str] = (), reactor: Any = None) -> None:
        """
        @param specs: spec strings that later C{makegateway()} calls without
            a spec use, in order.
        @param reactor: the reactor gateways run on (default: the global one).
        """
        self.reactor = reactor
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
        """
        Give C{spec} an id (C{gw0}, C{gw1}...) unless it has one.

        @param spec: the spec of a gateway about to join this group.
        @raise ValueError: if its id is taken here.
        """
        if spec.id is None:
            while True:
                candidate = f"gw{self._idCounter}"
                self._idCounter += 1
                if candidate not in self:
                    spec.id = candidate
                    break
        elif spec.id in self:
            raise ValueError(f"a gateway with id {spec.id!r} already exists in this group")
        return str(spec.id)

    def makegateway(
        self,
        spec: str | XSpec | None = None,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        transport: IGatewayTransport | None = None,
    ) -> Deferred[Gateway]:
        """
        Start a gateway as C{spec} says (default C{"popen"}).

        @param spec: a spec string or L{XSpec}; by default the next of the
            specs this group was made with, else C{"popen"}.
        @param maxFrameSize: the largest frame either side may send.
        @param transport: the transport to start it with, for what a spec
            string cannot carry (a socket gateway's secret); by default the
            one the spec names.
        @return: a Deferred firing with the L{Gateway} once the remote side
            is ready, or failing with L{GatewayStartError} saying why not.
        @raise ValueError: for a malformed spec, naming the bad part.
        """
        if spec is None:
            spec = self._specs.pop(0) if self._specs else "popen"
        xspec = spec if isinstance(spec, XSpec) else XSpec(spec)
        if transport is None:
            transport = xspec.transport(self)
        self.allocate_id(xspec)
        gateway = Gateway(xspec, self.reactor, maxFrameSize)
        self._gateways.append(gateway)
        gateway.whenTerminated().addCallback(lambda _: self._discard(gateway))
        return gateway.start(transport)

    def viaGateway(self, spec: XSpec) -> Gateway:
        """
        The gateway of this group that a C{via=} spec names.

        @param spec: a spec with C{via=ID}.
        @raise ValueError: if there is none.
        """
        if spec.via not in self:
            raise ValueError(f"via={spec.via}: no gateway with that id in this group ({spec})")
        return self[spec.via]

    def _discard(self, gateway: Gateway) -> None:
        if gateway in self._gateways:
            self._gateways.remove(gateway)

    def terminate(self, timeout: float = DEFAULT_EXIT_TIMEOUT) -> Deferred[None]:
        """
        Exit every gateway; fire when all have ended.

        @param timeout: seconds each may take before it is killed.
        """
        d = DeferredList([gw.exit(timeout) for gw in list(self._gateways)], consumeErrors=True)
        return d.addCallback(lambda _: None)

    def kill(self) -> None:
        """Kill every gateway now, without waiting."""
        for gw in list(self._gateways):
            gw.kill()


#: The group that module-level L{makegateway} adds to.
default_group = Group()
atexit.register(default_group.kill)

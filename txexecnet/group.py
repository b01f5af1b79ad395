"""
Groups of gateways: started together (with a bound on the handshakes in
flight per target host), addressable by id, used together through a
L{MultiChannel}, ended together.
"""

from __future__ import annotations

import atexit
import types
from typing import Any, Callable, Iterator

from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.python.failure import Failure

from ._remote import DEFAULT_MAX_FRAME_SIZE
from .errors import GatewayStartError
from .gateway import DEFAULT_EXIT_TIMEOUT, Gateway
from .interfaces import IGatewayTransport
from .output import OutputHandler
from .multichannel import MultiChannel, allOf
from .xspec import XSpec

__all__ = ["DEFAULT_CONCURRENCY", "Group", "default_group"]

#: Handshakes L{Group.makegateways} has in flight per target host: OpenSSH's
#: C{MaxStartups} drops unauthenticated connections beyond 10 by default.
DEFAULT_CONCURRENCY = 8


def _targetOf(spec: XSpec) -> str:
    """What a gateway's handshake loads: the host it goes to, or its hop."""
    if spec.via:
        return f"via={spec.via}"
    if spec.type in ("ssh", "socket"):
        return str(getattr(spec, spec.type)).rpartition("@")[2]
    return "this machine"


class Group:
    """
    A set of gateways, addressable by id, ended together by L{terminate}.

    @ivar output: the L{OutputHandler} its gateways hand remote output to
        unless C{makegateway} is given another (C{None}: L{logOutput}).
    """

    def __init__(
        self,
        specs: tuple[str, ...] | list[str] = (),
        reactor: Any = None,
        output: OutputHandler | None = None,
    ) -> None:
        """
        @param specs: spec strings of gateways to start now, at most
            L{DEFAULT_CONCURRENCY} at once per target host; L{whenStarted}
            says when they are up.
        @param reactor: the reactor gateways run on (default: the global one).
        @param output: what takes its gateways' remote output (see L{output}).
        @raise ValueError: for a malformed spec, before anything starts.
        """
        self.reactor = reactor
        self.output = output
        self._gateways: list[Gateway] = []
        self._idCounter = 0
        self._reserved: set[str] = set()
        self._limits: dict[str, DeferredSemaphore] = {}
        self._started = self.makegateways(specs)

    def whenStarted(self) -> Deferred[list[Gateway]]:
        """
        Fire with the gateways of the specs this group was made with once all
        are up; fail with the first L{GatewayStartError} (in spec order) once
        every start has ended, the gateways that did start staying in the
        group.
        """
        d: Deferred[list[Any]] = Deferred()

        def tell(results: list[Any]) -> list[Any]:
            d.callback(results)
            return results

        self._started.addCallback(tell)
        return d.addCallback(self._allStarted)

    @staticmethod
    def _allStarted(results: list[Any]) -> Any:
        for result in results:
            if isinstance(result, GatewayStartError):
                return Failure(result)
        return results

    def __repr__(self) -> str:
        return f"<Group {[gw.id for gw in self._gateways]}>"

    def __len__(self) -> int:
        return len(self._gateways)

    def __iter__(self) -> Iterator[Gateway]:
        return iter(list(self._gateways))

    def __contains__(self, key: object) -> bool:
        return key in self._reserved or any(gw is key or gw.id == key for gw in self._gateways)

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
        spec: str | XSpec = "popen",
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        transport: IGatewayTransport | None = None,
        output: OutputHandler | None = None,
    ) -> Deferred[Gateway]:
        """
        Start a gateway as C{spec} says.

        @param spec: a spec string or L{XSpec}.
        @param maxFrameSize: the largest frame either side may send.
        @param transport: the transport to start it with, for what a spec
            string cannot carry (a socket gateway's secret); by default the
            one the spec names.
        @param output: what takes the gateway's remote output, in place of
            the group's L{output}.
        @return: a Deferred firing with the L{Gateway} once the remote side
            is ready, or failing with L{GatewayStartError} (its C{spec} the
            spec string) saying why not.
        @raise ValueError: for a malformed spec, naming the bad part.
        """
        xspec = spec if isinstance(spec, XSpec) else XSpec(spec)
        if transport is None:
            transport = xspec.transport(self)
        self.allocate_id(xspec)
        return self._start(xspec, transport, maxFrameSize, output)

    def _start(
        self,
        xspec: XSpec,
        transport: IGatewayTransport,
        maxFrameSize: int,
        output: OutputHandler | None = None,
    ) -> Deferred[Gateway]:
        gateway = Gateway(xspec, self.reactor, maxFrameSize, output or self.output)
        gateway.group = self
        if xspec.via:
            gateway.via = self.viaGateway(xspec)
        self._reserved.discard(str(xspec.id))
        self._gateways.append(gateway)
        gateway.whenTerminated().addCallback(lambda _: self._discard(gateway))

        def failed(f: Failure) -> Failure:
            self._discard(gateway)  # at once: whoever gets the failure sees the group without it
            if isinstance(f.value, GatewayStartError):
                f.value.spec = str(xspec)
            return f

        return gateway.start(transport).addErrback(failed)

    def makegateways(
        self,
        specs: list[str] | tuple[str, ...],
        concurrency: int = DEFAULT_CONCURRENCY,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> Deferred[list[Gateway | GatewayStartError]]:
        """
        Start a gateway for each spec, all at once but for at most
        C{concurrency} handshakes in flight per target host (an SSH or
        socket host, a C{via} hop, this machine); each gets its id now, in
        spec order.

        @param specs: spec strings.
        @param concurrency: the bound per target host.
        @param maxFrameSize: the largest frame either side may send.
        @return: a Deferred firing once every start has ended with one
            result per spec, in order: the L{Gateway}, or the
            L{GatewayStartError} that says why not (its C{spec} the spec
            string).  It does not fail.
        @raise ValueError: for a malformed spec or a C{concurrency} below 1,
            before anything starts.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        xspecs = [spec if isinstance(spec, XSpec) else XSpec(spec) for spec in specs]
        for xspec in xspecs:
            self.allocate_id(xspec)
            self._reserved.add(str(xspec.id))

        def startOne(xspec: XSpec) -> Deferred[Any]:
            target = _targetOf(xspec)
            limit = self._limits.get(target)
            if limit is None:
                limit = self._limits[target] = DeferredSemaphore(concurrency)

            def start() -> Deferred[Gateway]:
                try:
                    transport = xspec.transport(self)
                except ValueError as e:  # a via= gateway that is not there (any more)
                    self._reserved.discard(str(xspec.id))
                    error = GatewayStartError(f"gateway {xspec.id} failed to start: {e}")
                    error.spec = str(xspec)
                    raise error from None
                return self._start(xspec, transport, maxFrameSize)

            return limit.run(start).addErrback(self._startError)

        return allOf([startOne(xspec) for xspec in xspecs])

    @staticmethod
    def _startError(f: Failure) -> Any:
        f.trap(GatewayStartError)
        return f.value

    def remote_exec(
        self, source: str | Callable[..., Any] | types.ModuleType, **kwargs: Any
    ) -> MultiChannel:
        """
        Run C{source} on every gateway of the group (see
        L{Gateway.remote_exec}).

        @param source: a source string, a function or a module.
        @param kwargs: keyword arguments for a function.
        @return: a L{MultiChannel} of the channels, in gateway order.
        """
        return MultiChannel([gw.remote_exec(source, **kwargs) for gw in self._gateways])

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
        Exit every gateway, those that others reach through (C{via=}) after
        those others, and fire once all have ended: within C{timeout}
        seconds, those still running then being killed.

        @param timeout: seconds the whole may take before what is left is
            killed.
        """
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        deadline = reactor.seconds() + timeout

        def exitLevel(_: object = None) -> Deferred[Any]:
            left = [gw for gw in self._gateways if not gw.isTerminated()]
            if not left:
                return succeed(None)
            hops = {gw.spec.via for gw in left if gw.spec.via}
            level = [gw for gw in left if gw.id not in hops] or left
            remaining = max(0.0, deadline - reactor.seconds())
            return allOf(gw.exit(remaining) for gw in level).addBoth(exitLevel)

        return exitLevel().addCallback(lambda _: None)

    def kill(self) -> None:
        """Kill every gateway now, without waiting."""
        for gw in list(self._gateways):
            gw.kill()


#: The group that module-level L{makegateway} adds to.
default_group = Group()
atexit.register(default_group.kill)

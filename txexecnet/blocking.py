"""
The blocking facade: txexecnet for code that is not written for a reactor
(scripts, a REPL, a test runner), with plain return values::

    from txexecnet import blocking
    gw = blocking.makegateway("popen")
    ch = gw.remote_exec("import os; channel.send(os.getpid())")
    print(ch.receive(timeout=5))
    gw.exit()

Its gateways run on a reactor of its own, in a daemon thread started on
first use and stopped at interpreter exit (see L{txexecnet.eventloop}), so
it works in any program, whatever that program does with Twisted's global
reactor.  Its classes are derived from the Twisted API: each method of
L{Gateway}, L{Channel} and L{Group} runs the method of the same name and
signature of L{txexecnet.Gateway}, L{txexecnet.Channel} or
L{txexecnet.Group} in that reactor's thread and waits for what it returns;
only sending, receiving and callbacks, which must not cost a trip to the
reactor per item, are written here.

Calling a blocking method from the reactor thread (from a channel
callback, say) would wait for ever, so it raises L{ReactorThreadError}.
Errors are raised from the caller's frame.
"""

from __future__ import annotations

import inspect
import queue
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from twisted.internet.defer import maybeDeferred
from zope.interface import implementer

from . import channel as core_channel
from . import constructors as core_constructors
from . import gateway as core_gateway
from . import group as core_group
from . import multichannel as core_multichannel
from . import rsync as core_rsync
from ._remote import NO_ENDMARKER_WANTED, ChannelFileRead, ChannelFileWrite, makefile
from .errors import TimeoutError
from .eventloop import EventLoop, ReactorThreadError
from .gateway import DEFAULT_EXIT_TIMEOUT, SEND_BUFFER_LIMIT
from .interfaces import IChannelEnd, IChannelHost, IFrameReceiver, IProxy
from .output import OutputWriter

__all__ = [
    "Channel",
    "Gateway",
    "Group",
    "MultiChannel",
    "RSync",
    "RSyncTarget",
    "ReactorThreadError",
    "SEND_BUFFER_LIMIT",
    "default_group",
    "loop",
    "makegateway",
    "PopenGateway",
    "SocketGateway",
    "SshGateway",
    "ThreadGateway",
    "terminate",
]

#: The event loop every blocking gateway runs on.
loop = EventLoop()

P = TypeVar("P", bound="_Proxy")

#: Proxies by the id of the object they stand for (each object has one).
_proxies: weakref.WeakValueDictionary[int, _Proxy] = weakref.WeakValueDictionary()

#: What the Twisted API's classes offer their transports, protocols and
#: channels, but for what is also theirs to offer users: not for blocking
#: callers.
_PLUMBING = (set(IFrameReceiver.names()) | set(IChannelHost.names()) | set(IChannelEnd.names())) - {
    "isTerminated"
}

#: Special methods that are derived too, where the Twisted class has them.
_DUNDERS = ("__len__", "__iter__", "__contains__", "__getitem__")


@implementer(IProxy)
class _Proxy:
    """Stands for one object of the Twisted API, which it calls in the reactor thread."""

    wrapped: Any

    def __repr__(self) -> str:
        return f"<blocking {self.wrapped!r}>"

    def __getattr__(self, name: str) -> Any:
        # Plain attributes (id, spec, remoteinfo) read through; methods are
        # derived, or are not part of the blocking API.
        if name.startswith("_") or name == "wrapped":
            raise AttributeError(name)
        value = getattr(self.wrapped, name)
        if callable(value):
            raise AttributeError(f"{type(self).__name__}.{name} is not part of the blocking API")
        return value


def _inLoop(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """
    Run C{f} in the reactor thread and wait for its result, in which
    objects of the Twisted API come back as their proxies.  Its callers
    raise what it raises without the frames of the facade below them, so a
    user sees the line of theirs that failed and the error, nothing else.
    """
    return loop.call(lambda: maybeDeferred(f, *args, **kwargs).addCallback(_proxyFor))


def _proxyFor(value: Any) -> Any:
    """The proxy of C{value} if it is a Twisted-API object (made once).  Reactor thread."""
    if isinstance(value, core_channel.Channel):
        gateway = _proxyFor(value.gateway)
        assert isinstance(gateway, Gateway)
        return gateway._channelFor(value)
    kind = _PROXY_TYPES.get(type(value))
    if kind is Gateway:
        # A gateway is of the class its group's proxy hands out.
        owner = _proxies.get(id(value.group))
        if isinstance(owner, Group):
            kind = owner.gatewayClass
    if kind is not None:
        proxy = _proxies.get(id(value))
        if proxy is None or proxy.wrapped is not value:
            proxy = _proxies[id(value)] = kind._around(value)
        return proxy
    if isinstance(value, core_multichannel.MultiChannel):
        return MultiChannel([_proxyFor(ch) for ch in value])
    if type(value) is list:
        return [_proxyFor(x) for x in value]
    if inspect.isgenerator(value) or type(value).__name__.endswith("iterator"):
        return iter([_proxyFor(x) for x in value])
    return value


def _returnAnnotation(annotation: Any) -> Any:
    """What a blocking call returns where the Twisted one returns C{Deferred[X]}: X."""
    if isinstance(annotation, str):
        match = re.fullmatch(r"Deferred\[(.*)\]", annotation)
        if match:
            return match.group(1)
    return annotation


def _derived(name: str, function: Callable[..., Any], direct: bool) -> Callable[..., Any]:
    """The blocking method that calls C{function}, the Twisted one named C{name}."""
    if direct:

        def method(self: _Proxy, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.wrapped, name)(*args, **kwargs)

        how = "Reads"
    else:

        def method(self: _Proxy, *args: Any, **kwargs: Any) -> Any:
            try:
                return _inLoop(getattr(self.wrapped, name), *args, **kwargs)
            except Exception as e:
                raise e.with_traceback(None)  # from the caller's frame: see _inLoop

        how = "Calls, in the reactor thread,"
    signature = inspect.signature(function)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        return_annotation=_returnAnnotation(signature.return_annotation)
    )
    method.__name__ = name
    owner = f"{function.__module__}.{function.__qualname__}"
    method.__doc__ = f"{how} L{{{owner}}}, and waits for what it gives.\n\n" + inspect.cleandoc(
        function.__doc__ or ""
    )
    return method


def _derive(twisted: type, direct: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> Any:
    """
    Give the decorated proxy class a blocking method for each method of
    the Twisted class C{twisted} that it does not write itself: those in
    C{direct} are called in the caller's thread (they only read state),
    the others in the reactor thread.
    """

    def decorate(cls: type[P]) -> type[P]:
        for name, function in inspect.getmembers(twisted, inspect.isfunction):
            public = not name.startswith("_") or name in _DUNDERS
            if not public or name in _PLUMBING or name in exclude or name in vars(cls):
                continue
            method = _derived(name, function, name in direct)
            method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)
        cls.twistedClass = twisted  # type: ignore[attr-defined]
        return cls

    return decorate


# The output plumbing is the transports' and the Deferred API's: a blocking
# caller gets output through the gateway's output callback.
@_derive(
    core_gateway.Gateway,
    direct=("isTerminated", "sendBacklog"),
    exclude=("start", "outputOf", "outputTaken", "stderrReceived"),
)
class Gateway(_Proxy):
    """
    A gateway with blocking methods: see L{txexecnet.Gateway}.

    @cvar channelClass: the class of its channels.
    @ivar wrapped: the L{txexecnet.Gateway} it stands for.
    """

    channelClass: type[Channel]

    def __init__(self, wrapped: core_gateway.Gateway) -> None:
        """
        @param wrapped: the L{txexecnet.Gateway} to stand for; made in the reactor thread.
        """
        self.wrapped = wrapped
        self._channels: weakref.WeakValueDictionary[int, Channel] = weakref.WeakValueDictionary()
        wrapped.channelWrapper = self._channelFor

    @classmethod
    def _around(cls, wrapped: core_gateway.Gateway) -> Gateway:
        """The proxy of C{wrapped}.  Reactor thread."""
        return cls(wrapped)

    def _channelFor(self, channel: core_channel.Channel) -> Channel:
        """The blocking channel of C{channel}, one of ours (made once).  Reactor thread."""
        proxy = self._channels.get(channel.id)
        if proxy is None or proxy.wrapped is not channel:
            proxy = self._channels[channel.id] = self.channelClass(self, channel)
        return proxy


_END = object()


@_derive(
    core_channel.Channel,
    direct=("isclosed", "endError"),
    exclude=("send", "sendFromThread", "receive", "setcallback", "output"),
)
class Channel(_Proxy):
    """
    A channel with blocking methods, as in execnet: C{send}, C{receive},
    C{waitclose}, C{close}, C{isclosed}, C{setcallback}, and iteration; see
    L{txexecnet.Channel}.

    @ivar gateway: the blocking L{Gateway} it belongs to.
    @ivar wrapped: the L{txexecnet.Channel} it stands for.
    """

    def __init__(self, gateway: Gateway, wrapped: core_channel.Channel) -> None:
        """
        @param gateway: the blocking L{Gateway} the channel belongs to.
        @param wrapped: the L{txexecnet.Channel} to stand for; made in the reactor
            thread, so that no item can slip past the queue.
        """
        self.gateway = gateway
        self.wrapped = wrapped
        self.id = wrapped.id
        # Items with their sizes: they count as received (for the window)
        # once receive() has returned them, told every quarter window.
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sink: Callable[[Any, int], None] = self._queue
        self._hasCallback = False
        self._quarter = wrapped.gateway.window >> 2
        # What the program received and the other side was not told of yet:
        # counted by the first thread that receives without a lock (one per
        # item would cost more than the rest of a small item's way), by any
        # other under the lock; each is told at a quarter window, so the two
        # together never hold back a whole window without either telling.
        self._receiver: int | None = None
        self._untold = 0
        self._untoldOthers = 0
        self._untoldLock = threading.Lock()
        wrapped.handOver(lambda item, size: self._sink(item, size), _END)

    def _queue(self, item: Any, size: int) -> None:
        self._items.put(item if item is _END else (item, size))

    def send(self, item: Any) -> None:
        """
        Send C{item}.  Serializes here, so a bad type raises
        L{DataFormatError} at once; blocks only while too much is unsent
        (L{SEND_BUFFER_LIMIT}).

        @param item: what to send (see L{txexecnet.Channel.send}).
        @raise IOError: if the channel is closed.
        """
        if threading.get_ident() == loop.threadIdent:
            # A callback sending: it must not wait for the reactor it runs in.
            self.wrapped.send(item)
        else:
            self.wrapped.sendFromThread(item)

    def receive(self, timeout: float | None = None) -> Any:
        """
        The next item; C{EOFError} once the other side closed,
        L{RemoteError} if it closed with an error, L{TimeoutError} after
        C{timeout} seconds.

        @param timeout: seconds to wait; C{None} waits for ever.
        @raise ReactorThreadError: when called from the reactor thread.
        """
        if loop.inReactorThread():
            raise ReactorThreadError(
                "receive() was called in the facade's reactor thread (in a channel callback?), "
                "where it would wait for ever"
            )
        if self._hasCallback:
            raise OSError("cannot receive(): the channel has a callback")
        try:
            queued = self._items.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no item on channel {self.id} after {timeout} seconds") from None
        if queued is _END:
            self._items.put(_END)
            error = self.wrapped.endError()
            assert error is not None
            raise error.with_traceback(None)
        item, size = queued
        if self._quarter:
            if threading.get_ident() == self._receiver:
                self._untold += size
                if self._untold >= self._quarter:
                    size, self._untold = self._untold, 0
                    self.wrapped.tookFromThread(size)
            else:
                self._tookElsewhere(size)
        return item

    def _tookElsewhere(self, size: int) -> None:
        """C{size} bytes received by a thread that may not be the first receiver."""
        with self._untoldLock:
            if self._receiver is None:
                self._receiver = threading.get_ident()
                self._untold += size
                if self._untold < self._quarter:
                    return
                size, self._untold = self._untold, 0
            else:
                self._untoldOthers += size
                if self._untoldOthers < self._quarter:
                    return
                size, self._untoldOthers = self._untoldOthers, 0
        self.wrapped.tookFromThread(size)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self.receive()
        except EOFError:
            raise StopIteration from None

    next = __next__

    def makefile(
        self, mode: str = "w", proxyclose: bool = False
    ) -> ChannelFileRead | ChannelFileWrite:
        """
        A file on this channel, as in execnet: C{"w"} sends each write as an
        item (C{write}, C{writelines}, C{flush}, C{close}); C{"r"} reads the
        items received, strings or bytes, until the channel closes
        (C{read}, C{readline}, iteration, C{close}).

        @param mode: C{"r"} or C{"w"}.
        @param proxyclose: closing the file closes the channel too.
        @raise ValueError: for another mode.
        """
        return makefile(self, mode, proxyclose)

    def setcallback(
        self, callback: Callable[[Any], object], endmarker: Any = NO_ENDMARKER_WANTED
    ) -> None:
        """
        Call C{callback(item)} for each item, in the reactor thread, starting
        with those already received; C{callback(endmarker)} at close.

        @param callback: called with each item; it must not block.
        @param endmarker: passed to C{callback} once the channel closes;
            by default, nothing is.
        """

        def install() -> None:
            if self._hasCallback:
                raise OSError("a callback is already set")

            def sink(item: Any, size: int) -> None:
                if item is _END:
                    if endmarker is not NO_ENDMARKER_WANTED:
                        callback(endmarker)
                else:
                    callback(item)
                    self.wrapped.took(size)

            while True:
                try:
                    queued = self._items.get_nowait()
                except queue.Empty:
                    break
                sink(*((queued, 0) if queued is _END else queued))
            self._sink = sink
            self._hasCallback = True

        loop.call(install)


Gateway.channelClass = Channel


class MultiChannel(core_multichannel.ChannelSequence[Channel]):
    """
    Channels of many gateways with blocking methods, as in execnet: see
    L{txexecnet.MultiChannel}.
    """

    def send_each(self, item: Any) -> None:
        """
        Send C{item} on every channel.

        @param item: what to send (see L{Channel.send}).
        """
        for ch in self._channels:
            ch.send(item)

    def receive_each(self, withchannel: bool = False, timeout: float | None = None) -> list[Any]:
        """
        The next item of every channel, in channel order.

        @param withchannel: give C{(channel, item)} pairs rather than items.
        @param timeout: seconds each channel may take (see L{Channel.receive}).
        """
        # Without a timeout, as execnet calls it: channels of any kind will do.
        items = [ch.receive() if timeout is None else ch.receive(timeout) for ch in self._channels]
        return list(zip(self._channels, items)) if withchannel else items

    def make_receive_queue(self, endmarker: Any = NO_ENDMARKER_WANTED) -> queue.Queue[Any]:
        """
        A queue of C{(channel, item)} for the items of every channel, in the
        order they arrive; C{(channel, endmarker)} once a channel closes, if
        an endmarker is given.

        @param endmarker: put in the queue with a channel once it closes;
            by default, nothing is.
        """
        items: queue.Queue[Any] = queue.Queue()

        def putter(ch: Channel) -> Callable[[Any], None]:
            return lambda item: items.put((ch, item))

        for ch in self._channels:
            ch.setcallback(putter(ch), endmarker)
        return items

    def waitclose(self, timeout: float | None = None) -> None:
        """
        Wait until every channel has closed; then raise the first
        L{RemoteError} (in channel order), if any.

        @param timeout: seconds each channel may take (see L{Channel.waitclose}).
        """
        first: BaseException | None = None
        for ch in self._channels:
            try:
                ch.waitclose() if timeout is None else ch.waitclose(timeout)
            except Exception as e:
                if first is None:
                    first = e
        if first is not None:
            raise first.with_traceback(None)


@_derive(core_group.Group, exclude=("viaGateway",))
class Group(_Proxy):
    """
    Gateways together, with blocking methods: see L{txexecnet.Group}.

    @cvar gatewayClass: the class of its gateways.
    @ivar wrapped: the L{txexecnet.Group} it stands for, on the facade's
        reactor (made on first use).
    """

    gatewayClass: type[Gateway] = Gateway

    def __init__(self, specs: tuple[str, ...] | list[str] = ()) -> None:
        """
        @param specs: spec strings of gateways to start now, at most
            L{txexecnet.group.DEFAULT_CONCURRENCY} at once per target host;
            it returns once all are up.
        @raise GatewayStartError: for the first spec (in order) whose
            gateway did not start; those that did are in the group.
        @raise ValueError: for a malformed spec, before anything starts.
        """
        self._specs = list(specs)
        self._wrapped: core_group.Group | None = None
        if self._specs:
            try:
                _inLoop(self.wrapped.whenStarted)
            except Exception as e:
                raise e.with_traceback(None)  # from the caller's frame: see _inLoop

    @classmethod
    def _around(cls, wrapped: core_group.Group) -> Group:
        """The proxy of C{wrapped}.  Reactor thread."""
        group = cls()
        group._wrapped = wrapped
        _groups.add(wrapped)
        return group

    @property
    def wrapped(self) -> core_group.Group:
        if self._wrapped is None:
            self._wrapped = loop.call(self._make)
        return self._wrapped

    def _make(self) -> core_group.Group:
        if self._wrapped is None:
            self._wrapped = core_group.Group(self._specs, reactor=loop.reactor, output=writeOutput)
            _proxies[id(self._wrapped)] = self
            _groups.add(self._wrapped)
        return self._wrapped


@dataclass(frozen=True)
class RSyncTarget:
    """
    Which target of an L{RSync} a callback is about: the RSync's own
    channel to it is the RSync's to read, so callbacks get this instead.

    @ivar gateway: the blocking L{Gateway} of the target.
    @ivar id: the id of the RSync's channel to it.
    """

    gateway: Gateway
    id: int


def _targetOf(channel: core_channel.Channel) -> RSyncTarget:
    gateway = _proxyFor(channel.gateway)
    return RSyncTarget(gateway, channel.id)


class RSync:
    """
    Copy a directory tree to many gateways at once, blocking until done:
    see L{txexecnet.rsync.RSync}, whose callbacks run in the facade's
    reactor thread (and get an L{RSyncTarget} for the channel).
    """

    def __init__(
        self,
        sourcedir: str | Any,
        callback: Callable[[str, int, RSyncTarget], object] | None = None,
        progress: Callable[[core_rsync.Progress], object] | None = None,
    ) -> None:
        """
        @param sourcedir: the directory whose contents are sent.
        @param callback: called as C{callback("list" or "ack", size, target)},
            with the L{RSyncTarget}.
        @param progress: called with a L{txexecnet.rsync.Progress} as files are written.
        """
        told = None
        if callback is not None:
            told = lambda kind, size, ch: callback(kind, size, _targetOf(ch))  # noqa: E731
        self.wrapped = loop.call(
            lambda: core_rsync.RSync(sourcedir, told, progress, reactor=loop.reactor)
        )
        self.wrapped.filter = self.filter
        self.wrapped.fileWritten = lambda path, size, ch: self.fileWritten(
            path, size, _targetOf(ch)
        )

    def filter(self, path: str) -> bool:
        """
        Whether to send C{path}: override to leave things out.

        @param path: a path under the source directory.
        """
        return True

    def fileWritten(self, path: str, size: int, channel: RSyncTarget) -> None:
        """
        A target has written C{path}: override to report it.  It runs in
        the facade's reactor thread.

        @param path: the file, relative to the source directory (with C{/}).
        @param size: its size.
        @param channel: which target.
        """

    def add_target(
        self,
        gateway: Gateway,
        destdir: str | Any,
        finishedcallback: Callable[[], object] | None = None,
        delete: bool = False,
    ) -> None:
        """
        Send to C{destdir} on the remote side of C{gateway}.

        @param gateway: a blocking gateway.
        @param destdir: the remote directory (created if missing).
        @param finishedcallback: called once this target has everything.
        @param delete: remove what C{destdir} holds beyond the source.
        """
        _inLoop(self.wrapped.add_target, gateway.wrapped, destdir, finishedcallback, delete)

    def send(self) -> None:
        """Send the tree to every target added; return once each has it all."""
        try:
            _inLoop(self.wrapped.send)
        except Exception as e:
            raise e.with_traceback(None)  # from the caller's frame: see _inLoop


#: Where the facade's gateways write remote output unless told otherwise:
#: this process's stdout and stderr, each line prefixed C{[gw0] }.
writeOutput = OutputWriter()

_PROXY_TYPES: dict[type, Any] = {core_gateway.Gateway: Gateway, core_group.Group: Group}

#: Every group made through the facade: their gateways end at exit.
_groups: weakref.WeakSet[core_group.Group] = weakref.WeakSet()


def _endEverything() -> Any:
    from twisted.internet.defer import DeferredList

    return DeferredList([group.terminate(1.0) for group in list(_groups)], consumeErrors=True)


loop.atShutdown(_endEverything)

#: The group the module-level functions add gateways to.
default_group = Group()


def _constructor(function: Callable[..., Any]) -> Callable[..., Gateway]:
    """
    The blocking form of a gateway constructor of the Twisted API: the
    same parameters but C{reactor}, with C{group} a blocking L{Group}
    (default: L{default_group}).
    """

    def construct(*args: Any, group: Group | None = None, **kwargs: Any) -> Gateway:
        target = (group if group is not None else default_group).wrapped
        try:
            gateway: Gateway = _inLoop(function, *args, group=target, **kwargs)
        except Exception as e:
            raise e.with_traceback(None)  # from the caller's frame: see _inLoop
        return gateway

    signature = inspect.signature(function)
    parameters = [p for p in signature.parameters.values() if p.name != "reactor"]
    construct.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation="Gateway"
    )
    construct.__name__ = construct.__qualname__ = function.__name__
    construct.__doc__ = (
        f"Calls L{{txexecnet.{function.__name__}}} on the facade's reactor, and waits for "
        f"the gateway.\n\n" + inspect.cleandoc(function.__doc__ or "")
    )
    return construct


makegateway = _constructor(core_constructors.makegateway)
PopenGateway = _constructor(core_constructors.PopenGateway)
ThreadGateway = _constructor(core_constructors.ThreadGateway)
SocketGateway = _constructor(core_constructors.SocketGateway)
SshGateway = _constructor(core_constructors.SshGateway)


def terminate(timeout: float = DEFAULT_EXIT_TIMEOUT) -> None:
    """
    Exit every gateway of L{default_group}, killing those still running
    after C{timeout} seconds.

    @param timeout: seconds each may take.
    """
    default_group.terminate(timeout)

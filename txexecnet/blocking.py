"""
The blocking facade: txexecnet for code that is not written for a reactor
(scripts, a REPL, a pytest plugin), with plain return values::

    from txexecnet import blocking
    gw = blocking.makegateway("popen")
    ch = gw.remote_exec("import os; channel.send(os.getpid())")
    print(ch.receive(timeout=5))
    gw.exit()

If no reactor is running, one is started in a daemon thread on first use
and stopped at interpreter exit; if the program already runs a reactor in
another thread, that one is used.  Calling this module from the reactor
thread itself would deadlock, so it raises L{ReactorThreadError} instead.
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from typing import Any, Callable, Iterator

from twisted.internet.threads import blockingCallFromThread
from twisted.python import threadable

from . import channel as _channel
from . import gateway as _gateway
from . import constructors as _constructors
from . import group as _group
from zope.interface import implementer

from ._remote import DEFAULT_MAX_FRAME_SIZE, NO_ENDMARKER_WANTED
from .errors import TimeoutError
from .gateway import SEND_BUFFER_LIMIT
from .interfaces import IProxy

__all__ = [
    "Channel",
    "Gateway",
    "ReactorThreadError",
    "makegateway",
    "PopenGateway",
    "SocketGateway",
    "SshGateway",
    "ThreadGateway",
    "terminate",
]


class ReactorThreadError(RuntimeError):
    """The blocking facade was called from the reactor thread."""


_END = object()
_lock = threading.Lock()
_state: dict[str, Any] = {}


def _reactor() -> Any:
    """The reactor, started in a daemon thread if nothing runs it yet."""
    with _lock:
        reactor = _state.get("reactor")
        if reactor is not None:
            return reactor
        from twisted.internet import reactor

        if not reactor.running:
            started = threading.Event()
            reactor.callWhenRunning(started.set)
            thread = threading.Thread(
                target=reactor.run,
                kwargs={"installSignalHandlers": False},
                name="txexecnet-reactor",
                daemon=True,
            )
            thread.start()
            started.wait()
            _state["thread"] = thread
            from twisted.internet.process import reapAllProcesses
            from twisted.internet.task import LoopingCall

            # Without SIGCHLD off the main thread, exits are found by a pidfd
            # watcher (see transports.popen); this poll is the fallback.
            reaper = LoopingCall(reapAllProcesses)
            reactor.callFromThread(reaper.start, 0.5, now=False)
            atexit.register(_shutdown)
        _state["reactor"] = reactor
        _state["group"] = _group.Group(reactor=reactor)
        return reactor


def _call(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run C{f} in the reactor thread and wait for its (Deferred) result."""
    if threadable.isInIOThread():
        raise ReactorThreadError(
            "txexecnet.blocking was called from the reactor thread, where waiting "
            "would deadlock; use the Deferred API (txexecnet.makegateway) there"
        )
    return blockingCallFromThread(_reactor(), f, *args, **kwargs)


def _shutdown() -> None:
    reactor = _state.get("reactor")
    if reactor is None or not reactor.running:
        return
    try:
        blockingCallFromThread(reactor, _state["group"].terminate, 1.0)
    finally:
        reactor.callFromThread(reactor.stop)
        thread = _state.get("thread")
        if thread is not None:
            thread.join(5)


class Gateway:
    """
    A gateway, with blocking methods.

    @ivar id: the gateway's name.
    @ivar spec: the L{XSpec} it was made from.
    @ivar remoteinfo: what the remote side said in its hello (pid, python...).
    """

    def __init__(self, gateway: _gateway.Gateway) -> None:
        self._gateway = gateway
        self._channels: weakref.WeakValueDictionary[int, Channel] = weakref.WeakValueDictionary()
        gateway.channelWrapper = self._wrap

    def _wrap(self, channel: _channel.Channel) -> Channel:
        """The blocking channel of C{channel}, made once.  Reactor thread."""
        wrapped = self._channels.get(channel.id)
        if wrapped is None or wrapped.wrapped is not channel:
            wrapped = self._channels[channel.id] = Channel(self, channel)
        return wrapped

    def __repr__(self) -> str:
        return f"<blocking {self._gateway!r}>"

    @property
    def id(self) -> str:
        return self._gateway.id

    @property
    def spec(self) -> Any:
        return self._gateway.spec

    @property
    def remoteinfo(self) -> dict[str, Any]:
        return self._gateway.remoteinfo

    def remote_exec(self, source: Any, **kwargs: Any) -> Channel:
        """Run C{source} remotely; see L{txexecnet.Gateway.remote_exec}."""

        return _call(lambda: self._wrap(self._gateway.remote_exec(source, **kwargs)))

    def newchannel(self) -> Channel:
        """A channel to send over another channel."""
        return _call(lambda: self._wrap(self._gateway.newchannel()))

    def exit(self, timeout: float = _gateway.DEFAULT_EXIT_TIMEOUT) -> None:
        """End the remote side (killing it after C{timeout} seconds) and wait."""
        _call(self._gateway.exit, timeout)

    def isTerminated(self) -> bool:
        """Whether the remote side has ended."""
        return self._gateway.isTerminated()


@implementer(IProxy)
class Channel:
    """
    A channel with blocking methods, as in execnet: C{send}, C{receive},
    C{waitclose}, C{close}, C{isclosed}, C{setcallback}, and iteration.
    """

    def __init__(self, gateway: Gateway, channel: _channel.Channel) -> None:
        # Runs in the reactor thread, so no item can slip past the queue.
        self.gateway = gateway
        self.wrapped = channel
        self._channel = channel
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sink: Callable[[Any], None] = self._items.put
        self._hasCallback = False
        channel.setcallback(lambda item: self._sink(item), _END)

    def __repr__(self) -> str:
        return f"<blocking {self._channel!r}>"

    @property
    def id(self) -> int:
        return self._channel.id

    def isclosed(self) -> bool:
        """Whether this channel is closed on this side or by the other."""
        return self._channel.isclosed()

    def send(self, item: Any) -> None:
        """
        Send C{item}.  Serializes here, so a bad type raises
        L{DataFormatError} at once; blocks only while too much is unsent.
        """
        self._channel.sendFromThread(item)

    def receive(self, timeout: float | None = None) -> Any:
        """
        The next item; C{EOFError} once the other side closed,
        L{RemoteError} if it closed with an error, L{TimeoutError} after
        C{timeout} seconds.
        """
        if self._hasCallback:
            raise OSError("cannot receive(): the channel has a callback")
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no item on channel {self.id} after {timeout} seconds")
        if item is _END:
            self._items.put(_END)
            raise self._channel.endError()  # type: ignore[misc]
        return item

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self.receive()
        except EOFError:
            raise StopIteration

    next = __next__

    def waitclose(self, timeout: float | None = None) -> None:
        """Wait until the other side closed; raise L{RemoteError} if with an error."""
        _call(self._channel.waitclose, timeout)

    def close(self, error: str | None = None) -> None:
        """Close on both sides; with C{error}, the far side's receive raises it."""
        _call(self._channel.close, error)

    def setcallback(
        self, callback: Callable[[Any], object], endmarker: Any = NO_ENDMARKER_WANTED
    ) -> None:
        """
        Call C{callback(item)} for each item, in the reactor thread, starting
        with those already received; C{callback(endmarker)} at close.
        """

        def install() -> None:
            if self._hasCallback:
                raise OSError("a callback is already set")

            def sink(item: Any) -> None:
                if item is _END:
                    if endmarker is not NO_ENDMARKER_WANTED:
                        callback(endmarker)
                else:
                    callback(item)

            while True:
                try:
                    sink(self._items.get_nowait())
                except queue.Empty:
                    break
            self._sink = sink
            self._hasCallback = True

        _call(install)


def _start(start: Callable[..., Any], *args: Any, **kwargs: Any) -> Gateway:
    """Start a gateway with C{start} in this module's group; return it ready."""
    _reactor()
    return Gateway(_call(start, *args, group=_state["group"], **kwargs))


def makegateway(spec: str = "popen", maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE) -> Gateway:
    """Start a gateway from a spec string and return it once ready."""
    return _start(lambda group: group.makegateway(spec, maxFrameSize))


def PopenGateway(python: str | None = None) -> Gateway:
    """The seed's C{PopenGateway}: a fresh child interpreter."""
    return makegateway("popen" if python is None else f"popen//python={python}")


def SocketGateway(
    host: str,
    port: int | None = None,
    secret: bytes | str | None = None,
    secret_file: str | None = None,
) -> Gateway:
    """
    The seed's C{SocketGateway}: a fresh interpreter from the socket server
    at C{host:port} (or at the endpoint string C{host}, with no C{port}); see
    L{txexecnet.SocketGateway}.
    """
    return _start(_constructors.SocketGateway, host, port, secret=secret, secret_file=secret_file)


def SshGateway(destination: str, **options: Any) -> Gateway:
    """
    C{python} on C{destination} (C{[user@]host[:port]}), reached through
    Twisted Conch; the options are those of L{txexecnet.SshGateway}.
    """
    return _start(_constructors.SshGateway, destination, **options)


def ThreadGateway() -> Gateway:
    """A gateway whose remote side runs in threads of this process."""
    return makegateway("thread")


def terminate(timeout: float = _gateway.DEFAULT_EXIT_TIMEOUT) -> None:
    """Exit every gateway made through this module."""
    if "group" in _state:
        _call(_state["group"].terminate, timeout)

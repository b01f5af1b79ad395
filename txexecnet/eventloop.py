"""
A reactor of our own, running in a thread of its own, for callers that
block (in the manner of crochet's event loop).

The blocking facade runs every gateway it makes on such a reactor.  It is
not the global reactor, so the facade works in any program, whatever that
program does with the global one: run it in the main thread (a Twisted
application, C{task.react}, a pytest-twisted session), run it later, or
never.  The reactor's factory, the exit hook and the child reaping are
given to L{EventLoop}, so tests can replace them.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any, Callable

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure

from .errors import DataFormatError, GatewayClosed, ProtocolError, RemoteError, TimeoutError

__all__ = ["EventLoop", "ReactorThreadError", "ReactorSideError", "newReactor"]

#: Errors that say all there is to say: raised from the caller's frame
#: without the reactor-side traceback that led to them.
_PLAIN_ERRORS = (
    GatewayClosed,
    DataFormatError,
    RemoteError,
    TimeoutError,
    ProtocolError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    OSError,
)


class ReactorThreadError(RuntimeError):
    """
    A blocking call was made from the event loop's own reactor thread
    (a channel callback, say), where waiting would deadlock.
    """


class ReactorSideError(Exception):
    """
    The traceback, in the reactor thread, of an unexpected error that a
    blocking call raised: set as its C{__cause__}.
    """


def _reactorClass() -> type:
    """epoll where there is epoll, else poll, else select."""
    try:
        from twisted.internet.epollreactor import EPollReactor

        return EPollReactor
    except ImportError:
        pass
    try:
        from twisted.internet.pollreactor import PollReactor

        return PollReactor
    except ImportError:
        from twisted.internet.selectreactor import SelectReactor

        return SelectReactor


#: The class of the reactors L{newReactor} makes.  Imported with this module
#: (Twisted's reactor modules import its TCP and TLS support, about 80 ms),
#: so that a program's first blocking call does not wait for that.
#: C{_registerAsIOThread} is documented on C{ReactorBase}: whether the
#: thread that runs the reactor is registered as Twisted's one I/O thread.
#: The global reactor may run in another thread and keeps that title.
OWN_REACTOR = type("OwnReactor", (_reactorClass(),), {"_registerAsIOThread": False})


def newReactor() -> Any:
    """
    A new reactor, not installed as the global one, which leaves Twisted's
    record of "the I/O thread" to the global reactor.
    """
    return OWN_REACTOR()


class EventLoop:
    """
    A reactor in a daemon thread, started on first use and stopped at
    interpreter exit; L{call} runs a function there and waits for it.

    @ivar threadIdent: the C{threading.get_ident()} of the reactor thread,
        once started.
    """

    def __init__(
        self,
        reactorFactory: Callable[[], Any] = newReactor,
        atexitRegister: Callable[[Callable[[], None]], Any] = atexit.register,
        reap: Callable[[], None] | None = None,
        reapInterval: float = 0.5,
        threadName: str = "txexecnet-reactor",
    ) -> None:
        """
        @param reactorFactory: makes the reactor, in the calling thread.
        @param atexitRegister: registers the function that stops the loop
            at interpreter exit.
        @param reap: called every C{reapInterval} seconds in the reactor
            thread, to reap children that nothing else reaps (without
            C{SIGCHLD} in its thread, Twisted's own C{spawnProcess} children
            need it; txexecnet's gateways watch their children themselves).
        @param reapInterval: seconds between calls of C{reap}.
        @param threadName: the name of the reactor thread.
        """
        self._reactorFactory = reactorFactory
        self._atexitRegister = atexitRegister
        self._reap = reap
        self._reapInterval = reapInterval
        self._threadName = threadName
        self._lock = threading.Lock()
        self._reactor: Any = None
        self._thread: threading.Thread | None = None
        self.threadIdent: int | None = None
        self._shutdownHooks: list[Callable[[], Any]] = []

    @property
    def reactor(self) -> Any:
        """The reactor, started if it is not running yet."""
        reactor = self._reactor
        if reactor is None:
            reactor = self._start()
        return reactor

    def _start(self) -> Any:
        with self._lock:
            if self._reactor is not None:
                return self._reactor
            reactor = self._reactorFactory()
            started = threading.Event()
            reactor.callWhenRunning(started.set)
            if self._reap is not None:
                from twisted.internet.task import LoopingCall

                reaper = LoopingCall(self._reap)
                reaper.clock = reactor
                reactor.callWhenRunning(reaper.start, self._reapInterval, now=False)
            thread = threading.Thread(
                target=reactor.run,
                kwargs={"installSignalHandlers": False},
                name=self._threadName,
                daemon=True,
            )
            thread.start()
            started.wait()
            self.threadIdent = thread.ident
            self._thread = thread
            self._reactor = reactor
            self._atexitRegister(self.stop)
            return reactor

    def isRunning(self) -> bool:
        """Whether the loop has been started and not stopped."""
        return self._reactor is not None and self._thread is not None and self._thread.is_alive()

    def inReactorThread(self) -> bool:
        """Whether the calling thread is the loop's reactor thread (see L{threadIdent})."""
        return threading.get_ident() == self.threadIdent

    def atShutdown(self, hook: Callable[[], Any]) -> None:
        """
        Run C{hook} in the reactor thread when the loop stops, and wait (a
        little) for the Deferred it may return: gateways end there.

        @param hook: called with no arguments; may return a Deferred.
        """
        self._shutdownHooks.append(hook)

    def call(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """
        Run C{f(*args, **kwargs)} in the reactor thread; wait for its result,
        and for the result of a Deferred it returns.

        An exception is raised here, from the caller's frame, without the
        reactor-side frames; for an unexpected one those frames are kept,
        as a L{ReactorSideError} that is its C{__cause__}.

        @param f: the function to run.
        @param args: its positional arguments.
        @param kwargs: its keyword arguments.
        @raise ReactorThreadError: when called from the reactor thread.
        """
        if self.inReactorThread():
            raise ReactorThreadError(
                "a blocking txexecnet call was made from the facade's reactor thread (in a "
                "channel callback?), where waiting would deadlock; hand the work to "
                "another thread, or use the Deferred API there"
            )
        reactor = self.reactor
        done = threading.Event()
        box: list[Any] = []

        def inReactor() -> None:
            maybeDeferred(f, *args, **kwargs).addBoth(finished)

        def finished(result: Any) -> None:
            box.append(result)
            done.set()

        reactor.callFromThread(inReactor)
        done.wait()
        result = box[0]
        if isinstance(result, Failure):
            raise _fromCallerFrame(result)
        return result

    def stop(self, timeout: float = 5.0) -> None:
        """
        Run the shutdown hooks (waiting at most C{timeout} seconds), then
        stop the reactor and wait for its thread.

        @param timeout: seconds to wait for the hooks, and then for the thread.
        """
        reactor, thread = self._reactor, self._thread
        if reactor is None or thread is None or not thread.is_alive():
            return
        if self.inReactorThread():
            raise ReactorThreadError("the event loop cannot be stopped from its own thread")
        done = threading.Event()

        def shutdown() -> None:
            from twisted.internet.defer import DeferredList

            waits = [maybeDeferred(hook) for hook in self._shutdownHooks]
            d = DeferredList(waits, consumeErrors=True)
            d.addTimeout(timeout, reactor)
            d.addBoth(lambda _: done.set())

        reactor.callFromThread(shutdown)
        done.wait(timeout + 1)
        reactor.callFromThread(reactor.stop)
        thread.join(timeout)


def _fromCallerFrame(failure: Failure) -> BaseException:
    """The exception of C{failure}, ready to be raised in another thread."""
    error = failure.value
    assert error is not None
    cause = None
    if not isinstance(error, _PLAIN_ERRORS):
        cause = ReactorSideError(
            "in the reactor thread:\n" + failure.getTraceback(elideFrameworkCode=True)
        )
    error = error.with_traceback(None)
    if cause is not None:
        error.__cause__ = cause
    return error

"""
The local end of a channel: the same verbs as execnet's, returning Deferreds.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from ._remote import (
    CHANNEL_CLOSE,
    CHANNEL_CLOSE_ERROR,
    CHANNEL_DATA,
    NO_ENDMARKER_WANTED,
    TimeoutError,
    dumps,
    dumps_parts,
)
from .interfaces import IChannelEnd, IChannelHost

__all__ = ["Channel", "NO_ENDMARKER_WANTED"]


@implementer(IChannelEnd)
class Channel:
    """
    One end of a channel, living in the reactor thread.

    Items arrive in order; once the other side closes, C{receive} drains the
    items that arrived first and then fails: C{EOFError} for a plain close,
    L{RemoteError} for a close with an error (a remote exception), and
    L{GatewayClosed} if the whole gateway went away.

    @ivar gateway: the gateway this channel belongs to (its L{IChannelHost}).
    @ivar id: the channel id, unique within its gateway.
    """

    def __init__(self, gateway: IChannelHost, id: int) -> None:
        """
        @param gateway: the gateway (its L{IChannelHost}) the channel belongs to.
        @param id: the channel's id, unique within its gateway.
        """
        self.gateway = gateway
        self.id = id
        self._items: deque[Any] = deque()
        self._waiters: deque[Deferred[Any]] = deque()
        self._closeWaiters: list[Deferred[None]] = []
        self._closed = False
        self._receiveClosed = False
        self._endError: BaseException | None = None
        self._callback: Callable[[Any], object] | None = None
        self._endmarker: Any = NO_ENDMARKER_WANTED
        self._wakePending = False

    def __repr__(self) -> str:
        state = "closed" if self.isclosed() else "open"
        return f"<Channel id={self.id} {state} on {self.gateway.id}>"

    def isclosed(self) -> bool:
        """Whether this channel is closed on this side or by the other."""
        return self._closed or self._receiveClosed

    def send(self, item: Any) -> Deferred[None]:
        """
        Send C{item} to the other side.

        The item is serialized at once, so an unsupported type raises
        L{DataFormatError} here, on the sending side.  The returned Deferred
        fires when the transport can take more: a producer that waits on it
        cannot fill memory faster than the remote side reads.

        @param item: what to send: None, bool, int, float, complex, str,
            bytes, bytearray, list, tuple, dict, set, frozenset, channels of
            this gateway, nested.
        @raise IOError: if the channel is closed.
        """
        if self.isclosed():
            raise OSError(f"cannot send to {self!r}")
        host = self.gateway
        return host.sendFrame(CHANNEL_DATA, self.id, dumps_parts(item, host.channelIdOf))

    def sendFromThread(self, item: Any) -> None:
        """
        Send C{item} from a thread other than the reactor's, without waiting
        for the reactor: the item is serialized in the calling thread, and
        written from it where the transport allows.  Returns once the item
        is handed over; blocks while too much is handed over but unsent.

        @param item: what to send, as for L{send}.
        @raise IOError: if the channel is closed.
        """
        if self._closed or self._receiveClosed:
            raise OSError(f"cannot send to {self!r}")
        host = self.gateway
        host.sendFrameFromThread(CHANNEL_DATA, self.id, dumps_parts(item, host.channelIdOf))

    def receive(self, timeout: float | None = None) -> Deferred[Any]:
        """
        The next item from the other side.

        Cancelling the Deferred gives up this wait only.

        @param timeout: seconds to wait before failing with
            L{txexecnet.TimeoutError}; C{None} waits for ever.
        """
        if self._callback is not None:
            return fail(OSError("cannot receive(): the channel has a callback"))
        if self._items:
            if self._waiters:
                self.wakeReceivers()
            if self._items:
                return succeed(self._items.popleft())
        if self._receiveClosed:
            return fail(self._endFailure())
        d: Deferred[Any] = Deferred(self._waiters.remove)
        self._waiters.append(d)
        if timeout is not None:
            self._addTimeout(d, timeout, f"no item on channel {self.id}")
        return d

    def waitclose(self, timeout: float | None = None) -> Deferred[None]:
        """
        Fire when the other side has closed this channel (or this side did);
        fail with L{RemoteError} if it closed with an error.

        @param timeout: seconds to wait before failing with
            L{txexecnet.TimeoutError}; C{None} waits for ever.
        """
        if self._receiveClosed:
            return self._closeResult()
        d: Deferred[None] = Deferred(self._closeWaiters.remove)
        self._closeWaiters.append(d)
        if timeout is not None:
            self._addTimeout(d, timeout, f"channel {self.id} still open")
        return d

    def close(self, error: str | None = None) -> None:
        """
        Close the channel on both sides.  A remote C{receive()} then raises
        C{EOFError}, or L{RemoteError} carrying C{error} if one is given.

        @param error: the error text for the other side, or C{None}.
        """
        if self._closed:
            return
        self._closed = True
        host = self.gateway
        if not host.isTerminated():
            if error is None:
                host.sendFrame(CHANNEL_CLOSE, self.id, [])
            else:
                host.sendFrame(CHANNEL_CLOSE_ERROR, self.id, [dumps(str(error))])
        self.receiveEnded(None)

    def setcallback(
        self, callback: Callable[[Any], object], endmarker: Any = NO_ENDMARKER_WANTED
    ) -> None:
        """
        Call C{callback(item)} for each item, starting with those already
        received; once the channel closes, C{callback(endmarker)} if an
        endmarker was given.  C{receive()} is refused afterwards.

        @param callback: called in the reactor thread with each item.
        @param endmarker: passed to C{callback} once the channel closes;
            by default, nothing is.
        """
        if self._callback is not None:
            raise OSError("a callback is already set")
        self.wakeReceivers()
        self._callback = callback
        self._endmarker = endmarker
        while self._items:
            callback(self._items.popleft())
        if self._receiveClosed and endmarker is not NO_ENDMARKER_WANTED:
            callback(endmarker)

    def endError(self) -> BaseException | None:
        """
        The exception C{receive()} raises once queued items are drained:
        C{EOFError} after a plain close, L{RemoteError} after a remote
        exception, L{GatewayClosed} when the gateway ended; C{None} while
        the other side may still send.
        """
        if not self._receiveClosed:
            return None
        return self._endFailure().value

    def __aiter__(self) -> Channel:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except EOFError:
            raise StopAsyncIteration

    # --- IChannelEnd: called by the gateway ---------------------------------

    def itemReceived(self, item: Any) -> None:
        """The other side sent C{item}."""
        if self._receiveClosed:
            return
        if self._callback is not None:
            self._callback(item)
            return
        self._items.append(item)
        # Waiters are woken once the whole read is delivered: the first one
        # resumes its coroutine, whose next receive() calls then find items
        # already queued, instead of each item waking a Deferred of its own.
        if self._waiters and not self._wakePending:
            self._wakePending = True
            self.gateway.wakeAfterRead(self)

    def wakeReceivers(self) -> None:
        """Hand queued items to waiting receivers, oldest first."""
        self._wakePending = False
        items, waiters = self._items, self._waiters
        while items and waiters:
            waiters.popleft().callback(items.popleft())

    def receiveEnded(self, error: BaseException | None) -> None:
        """
        The other side will send no more: C{error} is None for a plain close,
        or the exception to raise once queued items are drained.
        """
        if self._receiveClosed:
            return
        self.wakeReceivers()
        self._receiveClosed = True
        self._endError = error
        self.gateway.channelEnded(self)
        # The endmarker goes first, so code after a waitclose() has seen it.
        if self._callback is not None and self._endmarker is not NO_ENDMARKER_WANTED:
            self._callback(self._endmarker)
        waiters, self._waiters = self._waiters, deque()
        for d in waiters:
            d.errback(self._endFailure())
        closeWaiters, self._closeWaiters = self._closeWaiters, []
        for d in closeWaiters:
            self._closeResult().chainDeferred(d)

    def _endFailure(self) -> Failure:
        if self._endError is not None:
            return Failure(self._endError)
        return Failure(EOFError(f"channel {self.id} is closed"))

    def _closeResult(self) -> Deferred[None]:
        if self._endError is not None:
            return fail(self._endError)
        return succeed(None)

    def _addTimeout(self, d: Deferred[Any], timeout: float, what: str) -> None:
        def timedOut(result: Any, timeout: float) -> Any:
            if isinstance(result, Failure) and result.check(CancelledError):
                return Failure(TimeoutError(f"{what} after {timeout} seconds"))
            return result

        d.addTimeout(timeout, self.gateway.reactor, timedOut)

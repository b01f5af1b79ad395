"""
The local end of a channel: the same verbs as execnet's, returning Deferreds.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted.logger import Logger

from ._remote import (
    CHANNEL_CLOSE,
    CHANNEL_CANCEL,
    CHANNEL_CLOSE_ERROR,
    CHANNEL_CREDIT,
    CHANNEL_DATA,
    CREDIT,
    ChannelFileRead,
    ChannelFileWrite,
    NO_ENDMARKER_WANTED,
    WINDOW_WARNING,
    TimeoutError,
    dumps,
    dumps_parts,
    makefile,
)
from .interfaces import IChannelEnd, IChannelHost
from .output import ChannelOutput

__all__ = ["Channel", "NO_ENDMARKER_WANTED"]

log = Logger(namespace="txexecnet.channel")


@implementer(IChannelEnd)
class Channel:
    """
    One end of a channel, living in the reactor thread.

    Items arrive in order; once the other side closes, C{receive} drains the
    items that arrived first and then fails: C{EOFError} for a plain close,
    L{RemoteError} for a close with an error (a remote exception), and
    L{GatewayClosed} if the whole gateway went away.

    Each direction of a channel has a window (the gateway's C{window}, 16
    MiB unless its spec says otherwise): once the receiver holds that many
    bytes of items it has not received, the sender waits, and resumes as
    they are received.  Other channels of the gateway go on meanwhile.

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
        self._callback: Callable[[Any, int], object] | None = None
        self._endmarker: Any = NO_ENDMARKER_WANTED
        self._wakePending = False
        # Receiving: the size of each queued item, and what was taken but
        # not yet told to the other side (which it is every quarter window).
        self._window = gateway.window
        self._quarter = self._window >> 2
        self._sizes: deque[int] = deque()
        self._untold = 0
        self._counted = True
        # Sending: what the other side has not taken yet, and the frames
        # (with the Deferreds of their sends) that wait for it to.
        # Bytes sent, and bytes the other side has said it received: the
        # first written by senders (the reactor, or threads sending through
        # sendFromThread), the second by the reactor alone, so that the
        # common case takes no lock (a thread that loses a race to another
        # overshoots the window by an item; nothing waits for ever).
        self._sent = 0
        self._acked = 0
        self._held: deque[tuple[int, list[bytes], int, Deferred[None] | None]] = deque()
        self._windowLock = threading.Lock()
        self._credited = threading.Condition(self._windowLock)
        self._heldWarning: Any = None

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
        fires when the item is written and the transport can take more: a
        producer that waits on it cannot fill memory faster than the remote
        side reads.  While the other side holds a window's worth of items it
        has not received, the item waits here, and so does the Deferred.

        @param item: what to send: None, bool, int, float, complex, str,
            bytes, bytearray, list, tuple, dict, set, frozenset, channels of
            this gateway, nested.
        @raise IOError: if the channel is closed.
        """
        if self._closed or self._receiveClosed:
            raise OSError(f"cannot send to {self!r}")
        host = self.gateway
        parts = dumps_parts(item, host.channelIdOf)
        size = len(parts[0]) if len(parts) == 1 else sum(map(len, parts))
        window = self._window
        if window:
            if self._held or self._sent - self._acked >= window:
                d: Deferred[None] = Deferred()
                self._held.append((CHANNEL_DATA, parts, size, d))
                if self._heldWarning is None:
                    self._heldWarning = host.reactor.callLater(
                        WINDOW_WARNING, self._stillHeld, WINDOW_WARNING
                    )
                return d
            self._sent += size
        return host.sendFrame(CHANNEL_DATA, self.id, parts, size)

    def _stillHeld(self, waited: float) -> None:
        """Items have waited C{waited} seconds for the other side to receive any: say so."""
        self._warnWaiting(waited)
        self._heldWarning = self.gateway.reactor.callLater(
            WINDOW_WARNING, self._stillHeld, waited + WINDOW_WARNING
        )

    def _stopHeldWarning(self) -> None:
        if self._heldWarning is not None:
            if self._heldWarning.active():
                self._heldWarning.cancel()
            self._heldWarning = None

    def sendFromThread(self, item: Any) -> None:
        """
        Send C{item} from a thread other than the reactor's, without waiting
        for the reactor: the item is serialized in the calling thread, and
        written from it where the transport allows.  Returns once the item
        is handed over; blocks while too much is handed over but unsent, and
        while the other side holds a window's worth of items not received.

        @param item: what to send, as for L{send}.
        @raise IOError: if the channel is closed.
        """
        if self._closed or self._receiveClosed:
            raise OSError(f"cannot send to {self!r}")
        host = self.gateway
        parts = dumps_parts(item, host.channelIdOf)
        size = len(parts[0]) if len(parts) == 1 else sum(map(len, parts))
        window = self._window
        if window:
            if self._held or self._sent - self._acked >= window:
                with self._credited:
                    self._waitForWindow(window)
            self._sent += size
        host.sendFrameFromThread(CHANNEL_DATA, self.id, parts, size)

    def _waitForWindow(self, window: int) -> None:
        """Wait (in a thread, lock held) for the other side to take items; say so when long."""
        waited = 0.0
        while (self._held or self._sent - self._acked >= window) and not self.isclosed():
            if not self._credited.wait(WINDOW_WARNING):
                waited += WINDOW_WARNING
                self._warnWaiting(waited)
        if self.isclosed():
            raise OSError(f"cannot send to {self!r}")

    def _warnWaiting(self, waited: float) -> None:
        log.warn(
            "send() on channel {channel} of {gateway} has waited {waited:g} s: the other side "
            "holds {outstanding} bytes of its items, not received yet (if both sides send "
            "before they receive, each waits for the other: see the window= spec option)",
            channel=self.id,
            gateway=self.gateway.id,
            waited=waited,
            outstanding=self._sent - self._acked,
        )

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
                item = self._items.popleft()
                if self._quarter:
                    self._untold += self._sizes.popleft()
                    if self._untold >= self._quarter:
                        self._tellTaken()
                return succeed(item)
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
                msgtype, parts = CHANNEL_CLOSE, []
            else:
                msgtype, parts = CHANNEL_CLOSE_ERROR, [dumps(str(error))]
            if self._held:
                # Behind the items it must not overtake; a size of 0 lets it
                # go as soon as they have.
                self._held.append((msgtype, parts, 0, None))
            else:
                host.sendFrame(msgtype, self.id, parts)
        self.receiveEnded(None)

    def cancel(self) -> None:
        """
        Raise C{KeyboardInterrupt} in the remote code of this channel, once:
        at once where it runs Python code, when it wakes where it waits in
        C{receive()}, after the call where it is blocked in another one.
        The gateway and its other channels go on; unless the code catches
        it, the channel then closes with L{RemoteError} C{KeyboardInterrupt}.
        Nothing happens if the code has ended.
        """
        host = self.gateway
        if not self._receiveClosed and not host.isTerminated():
            host.sendFrame(CHANNEL_CANCEL, self.id, [], 0)

    def makefile(
        self, mode: str = "w", proxyclose: bool = False
    ) -> ChannelFileWrite | DeferredChannelFileRead:
        """
        A file on this channel: C{"w"} sends each write as an item
        (C{write}, C{writelines}, C{flush}, C{close}), for code that writes
        to a file, such as C{print(..., file=f)}; C{"r"} reads the items
        received, strings or bytes, until the channel closes, its C{read}
        and C{readline} giving Deferreds and C{async for} giving lines.

        @param mode: C{"r"} or C{"w"}.
        @param proxyclose: closing the file closes the channel too.
        @raise ValueError: for another mode.
        """
        if mode == "r":
            return DeferredChannelFileRead(self, proxyclose)
        return makefile(self, mode, proxyclose)

    def output(self) -> ChannelOutput:
        """
        What this channel's code writes to C{sys.stdout} and C{sys.stderr}
        from now on, as an async iterator of C{(stream, text)} pairs
        (C{stream} is C{"stdout"} or C{"stderr"}), in place of the gateway's
        L{output<txexecnet.Gateway.output>} handler; it ends once the
        channel has closed.  Call it right after C{remote_exec} to miss
        nothing.  Output not taken holds back the remote side's output once
        a window's worth is waiting.
        """
        return self.gateway.outputOf(self.id)

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
        self._deliverTo(lambda item, size: callback(item), endmarker, counted=True)

    def handOver(
        self, sink: Callable[[Any, int], object], endmarker: Any = NO_ENDMARKER_WANTED
    ) -> None:
        """
        L{setcallback} for code that queues the items itself (the blocking
        facade): C{sink(item, size)} gets each item and its size in bytes,
        and the item counts as received only once L{took} or
        L{tookFromThread} says so, so that the window still holds.

        @param sink: called in the reactor thread with each item and its size.
        @param endmarker: passed to C{sink} (with size 0) once the channel
            closes; by default, nothing is.
        """
        self._deliverTo(sink, endmarker, counted=False)

    def _deliverTo(self, sink: Callable[[Any, int], object], endmarker: Any, counted: bool) -> None:
        if self._callback is not None:
            raise OSError("a callback is already set")
        self.wakeReceivers()
        self._callback = sink
        self._counted = counted
        self._endmarker = endmarker
        while self._items:
            size = self._sizes.popleft() if self._quarter else 0
            sink(self._items.popleft(), size)
            if counted:
                self._took(size)
        if self._receiveClosed and endmarker is not NO_ENDMARKER_WANTED:
            sink(endmarker, 0)

    def took(self, size: int) -> None:
        """
        C{size} bytes of items were received by the program (after
        L{handOver}).  Reactor thread.

        @param size: the sum of the sizes L{handOver}'s sink was given.
        """
        self._took(size)

    def tookFromThread(self, size: int) -> None:
        """
        L{took}, from another thread.

        @param size: the sum of the sizes L{handOver}'s sink was given.
        """
        self.gateway.reactor.callFromThread(self._took, size)

    def _took(self, size: int) -> None:
        if self._quarter:
            self._untold += size
            if self._untold >= self._quarter:
                self._tellTaken()

    def _tellTaken(self) -> None:
        """Tell the other side how much of its items was received since it was last told."""
        size, self._untold = self._untold, 0
        if not self.gateway.isTerminated():
            self.gateway.sendFrame(CHANNEL_CREDIT, self.id, [CREDIT.pack(size)])

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

    def itemReceived(self, item: Any, size: int) -> None:
        """The other side sent C{item}, of C{size} bytes."""
        if self._receiveClosed:
            return
        callback = self._callback
        if callback is not None:
            callback(item, size)
            if self._counted:
                self._took(size)
            return
        self._items.append(item)
        if self._quarter:
            self._sizes.append(size)
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
        quarter = self._quarter
        while items and waiters:
            if quarter:
                self._untold += self._sizes.popleft()
                if self._untold >= quarter:
                    self._tellTaken()
            waiters.popleft().callback(items.popleft())

    def creditReceived(self, size: int) -> None:
        """The other side has received C{size} bytes of our items: send what waits."""
        window = self._window
        released = []
        self._acked += size
        with self._credited:
            self._credited.notify_all()
        held = self._held
        while held and (self._sent - self._acked < window or held[0][2] == 0):
            frame = held.popleft()
            self._sent += frame[2]
            released.append(frame)
        host = self.gateway
        # The other side receives: a warning waits for the next standstill.
        self._stopHeldWarning()
        if self._held:
            self._heldWarning = host.reactor.callLater(
                WINDOW_WARNING, self._stillHeld, WINDOW_WARNING
            )
        for msgtype, parts, _, d in released:
            sent = host.sendFrame(msgtype, self.id, parts)
            if d is not None:
                sent.chainDeferred(d)
        if self._receiveClosed and not self._held:
            host.channelEnded(self)

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
        if error is not None or not self._closed:
            self._dropHeld(error or OSError(f"channel {self.id} was closed by the other side"))
        if not self._held:
            # Else it waits for credit: the gateway must still route it.
            self.gateway.channelEnded(self)
        # The endmarker goes first, so code after a waitclose() has seen it.
        if self._callback is not None and self._endmarker is not NO_ENDMARKER_WANTED:
            self._callback(self._endmarker, 0)
        waiters, self._waiters = self._waiters, deque()
        for d in waiters:
            d.errback(self._endFailure())
        closeWaiters, self._closeWaiters = self._closeWaiters, []
        for d in closeWaiters:
            self._closeResult().chainDeferred(d)

    def _dropHeld(self, error: BaseException) -> None:
        """The items that wait for credit will never be sent: fail their sends."""
        self._stopHeldWarning()
        with self._credited:
            held, self._held = self._held, deque()
            self._credited.notify_all()
        for _, _, _, d in held:
            if d is not None:
                d.errback(Failure(error))

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


class DeferredChannelFileRead(ChannelFileRead):
    """
    A reading file on a Twisted-API channel: C{read(size=-1)} and
    C{readline()} give Deferreds, C{async for} gives lines.  Each fills
    what it needs with L{Channel.receive} first, so that the reading itself
    never waits.
    """

    async def _fill(self, enough: Callable[[Any], bool]) -> None:
        while not self.at_eof() and not enough(self.pending()):
            try:
                item = await self.channel.receive()
            except EOFError:
                self.feed_eof()
            else:
                self.feed(item)

    def read(self, size: int | None = -1) -> Deferred[Any]:
        """
        Up to C{size} characters or bytes (all, until the close, by default).

        @param size: how much at most; negative or C{None} for everything.
        """
        whole = size is None or size < 0

        async def read() -> Any:
            await self._fill(lambda data: not whole and len(data) >= (size or 0))
            return ChannelFileRead.read(self, size)

        return Deferred.fromCoroutine(read())

    def readline(self) -> Deferred[Any]:
        """The next line, with its line end (empty at the end)."""

        async def readline() -> Any:
            await self._fill(lambda data: ("\n" if isinstance(data, str) else b"\n") in data)
            return ChannelFileRead.readline(self)

        return Deferred.fromCoroutine(readline())

    def readlines(self) -> Deferred[list[Any]]:
        """Every line left, until the close."""

        async def readlines() -> list[Any]:
            return [line async for line in self]

        return Deferred.fromCoroutine(readlines())

    def __iter__(self) -> Any:
        raise TypeError("a Twisted channel's file gives lines with async for, not for")

    def __aiter__(self) -> DeferredChannelFileRead:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

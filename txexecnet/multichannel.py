"""
Channels of many gateways at once: what L{Group.remote_exec} returns, as in
execnet.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Generic, Iterable, Iterator, TypeVar

from twisted.internet.defer import Deferred, DeferredList, DeferredQueue

from .channel import NO_ENDMARKER_WANTED, Channel

__all__ = ["ChannelSequence", "MultiChannel", "allOf"]

C = TypeVar("C")


def allOf(deferreds: Iterable[Deferred[Any]]) -> Deferred[list[Any]]:
    """
    Fire with every result, in order, once all have fired; fail with the
    first failure (in order) once all have fired, so nothing is left
    running behind an error.

    @param deferreds: the Deferreds to wait for.
    """

    def collect(results: list[tuple[bool, Any]]) -> Any:
        for ok, result in results:
            if not ok:
                return result
        return [result for _, result in results]

    return DeferredList(list(deferreds), consumeErrors=True).addCallback(collect)


class _End:
    """Marks the end of one channel in a multichannel's own queue."""


class ChannelSequence(Generic[C]):
    """The channels of a multichannel, in gateway order: C{len}, iteration, indexing."""

    def __init__(self, channels: Iterable[C]) -> None:
        """
        @param channels: the channels, in the order of their gateways.
        """
        self._channels = list(channels)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self._channels)} channels>"

    def __len__(self) -> int:
        return len(self._channels)

    def __iter__(self) -> Iterator[C]:
        return iter(list(self._channels))

    def __getitem__(self, index: int) -> C:
        return self._channels[index]


class MultiChannel(ChannelSequence[Channel]):
    """
    One channel per gateway, used together: send to each, receive from
    each, wait for all to close.
    """

    def send_each(self, item: Any) -> Deferred[None]:
        """
        Send C{item} on every channel; fire once each send has.

        @param item: what to send (see L{Channel.send}).
        """
        return allOf(ch.send(item) for ch in self._channels).addCallback(lambda _: None)

    def receive_each(
        self, withchannel: bool = False, timeout: float | None = None
    ) -> Deferred[list[Any]]:
        """
        The next item of every channel, in channel order.

        @param withchannel: give C{(channel, item)} pairs rather than items.
        @param timeout: seconds each channel may take before the whole
            fails with L{txexecnet.TimeoutError}; C{None} waits for ever.
        """

        def received(item: Any, ch: Channel) -> Any:
            return (ch, item) if withchannel else item

        return allOf(ch.receive(timeout).addCallback(received, ch) for ch in self._channels)

    def make_receive_queue(self, endmarker: Any = NO_ENDMARKER_WANTED) -> DeferredQueue[Any]:
        """
        A queue of C{(channel, item)} for the items of every channel, in the
        order they arrive; C{(channel, endmarker)} once a channel closes, if
        an endmarker is given.  The channels get a callback each, so they
        cannot be received from afterwards.

        @param endmarker: put in the queue with a channel once it closes;
            by default, nothing is.
        """
        queue: DeferredQueue[Any] = DeferredQueue()

        def putter(ch: Channel) -> Callable[[Any], None]:
            return lambda item: queue.put((ch, item))

        for ch in self._channels:
            ch.setcallback(putter(ch), endmarker)
        return queue

    def waitclose(self, timeout: float | None = None) -> Deferred[None]:
        """
        Fire once every channel has closed; fail with the first
        L{RemoteError} (in channel order), once all have closed.

        @param timeout: seconds each channel may take before the whole
            fails with L{txexecnet.TimeoutError}; C{None} waits for ever.
        """
        return allOf(ch.waitclose(timeout) for ch in self._channels).addCallback(lambda _: None)

    async def __aiter__(self) -> AsyncIterator[tuple[Channel, Any]]:
        # Items of all channels as they arrive, until every channel closed.
        end = _End()
        queue = self.make_receive_queue(end)
        open = len(self._channels)
        while open:
            ch, item = await queue.get()
            if item is end:
                open -= 1
            else:
                yield ch, item

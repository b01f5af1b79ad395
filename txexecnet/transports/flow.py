"""
Back-pressure for transports that keep a buffer of their own: the push
producer they were given (the framing protocol) is paused while the buffer
is full, and resumed once it has drained.
"""

from __future__ import annotations

from twisted.internet.interfaces import IProducer, IPushProducer

__all__ = ["ProducerValve"]


class ProducerValve:
    """The registered producer of one transport, paused and resumed as it says."""

    def __init__(self, what: str) -> None:
        """
        @param what: the transport, for the error a pull producer gets.
        """
        self._what = what
        self._producer: IPushProducer | None = None
        self._paused = False

    def register(self, producer: IProducer, streaming: bool) -> None:
        """
        Take C{producer}, running (what C{registerProducer} is given).

        @param producer: the producer.
        @param streaming: whether it is a push producer (the only kind taken).
        @raise ValueError: for a pull producer.
        """
        if not streaming:
            raise ValueError(f"{self._what} takes push producers only")
        self._producer = IPushProducer(producer)
        self._paused = False

    def unregister(self) -> None:
        """Forget the producer."""
        self._producer = None

    def steer(self, full: bool, drained: bool) -> None:
        """
        Pause the producer if the buffer is C{full}, resume it once it is
        C{drained} (two marks apart, so that it does not flap).

        @param full: the buffer is above its high-water mark.
        @param drained: the buffer is below its low-water mark.
        """
        if self._producer is None:
            return
        if full and not self._paused:
            self._paused = True
            self._producer.pauseProducing()
        elif drained and self._paused:
            self._paused = False
            self._producer.resumeProducing()

"""
Protocol factories for the connections a gateway makes.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.protocol import Factory

__all__ = ["quietFactory"]


def quietFactory(build: Callable[[], Any]) -> Factory:
    """
    A factory of what C{build()} returns, that logs nothing.  A factory's
    "starting" and "stopping" messages carry the factory (and through it
    the protocol and its gateway): kept in Twisted's log buffer, which
    holds the last 65,536 events until logging begins, they would keep
    every gateway of a program that logs nothing alive.

    @param build: makes the protocol.
    """
    factory = Factory.forProtocol(build)
    factory.noisy = False
    return factory

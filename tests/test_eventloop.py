"""
The event loop of the blocking facade: a reactor of its own in a thread of
its own, with its reactor factory, exit hook and reaping given to it.
"""

from __future__ import annotations

import threading

import pytest
from twisted.internet import defer, task

from txexecnet.eventloop import EventLoop, ReactorSideError, ReactorThreadError, newReactor

T = 10


@pytest.fixture
def loop():
    hooks = []
    reaped = threading.Event()
    made = []

    def factory():
        made.append(newReactor())
        return made[0]

    loop = EventLoop(
        factory, hooks.append, reap=reaped.set, reapInterval=0.01, threadName="test-loop"
    )
    loop.hooks, loop.reaped, loop.made = hooks, reaped, made
    yield loop
    loop.stop()


def test_it_starts_on_first_use_with_what_it_was_given(loop):
    assert loop.hooks == [] and not loop.isRunning()
    assert loop.call(lambda: threading.current_thread().name) == "test-loop"
    assert loop.reactor is loop.made[0] and len(loop.made) == 1
    assert loop.hooks == [loop.stop]
    assert loop.reaped.wait(T)


def test_its_reactor_is_not_the_global_one(loop):
    from twisted.internet import reactor

    assert loop.reactor is not reactor


def test_it_waits_for_deferreds(loop):
    assert loop.call(lambda: task.deferLater(loop.reactor, 0.01, lambda: "later")) == "later"


def test_a_call_from_its_own_thread_is_refused(loop):
    def inside():
        try:
            loop.call(lambda: None)
        except ReactorThreadError as e:
            return str(e)

    assert "would deadlock" in loop.call(inside)


def test_errors_are_raised_from_the_callers_frame_with_the_reactor_side_as_cause(loop):
    def broken():
        return {}["missing"] + 1

    with pytest.raises(KeyError) as info:
        loop.call(broken)
    assert info.value.__cause__ is None  # a plain error says what it needs to
    assert info.traceback[-1].name == "call"

    def bug():
        return None.nope

    with pytest.raises(AttributeError) as info:
        loop.call(bug)
    cause = info.value.__cause__
    assert isinstance(cause, ReactorSideError) and "in bug" in str(cause)


def test_stop_runs_the_shutdown_hooks_in_the_reactor_thread_and_waits_for_them(loop):
    seen = []

    def hook():
        seen.append(threading.current_thread().name)
        return task.deferLater(loop.reactor, 0.05, seen.append, "done")

    loop.atShutdown(hook)
    loop.call(lambda: None)
    loop.stop()
    assert seen == ["test-loop", "done"]
    assert not loop.isRunning()


def test_a_hook_that_never_finishes_does_not_hold_up_the_stop(loop):
    loop.atShutdown(defer.Deferred)
    loop.call(lambda: None)
    loop.stop(timeout=0.2)
    assert not loop.isRunning()

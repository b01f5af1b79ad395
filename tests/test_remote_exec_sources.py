"""
What remote_exec sends for a function: its own source, checked here so a
function that cannot run remotely fails at once, with the reason.
"""

import sys

import pytest

from txexecnet import blocking
from txexecnet.gateway import globalNames, sourceOfFunction

T = 30


def self_contained(channel, n):
    import os

    class Box:
        size = n
        double = size * 2

    def twice(x):
        return [x] * 2

    global counter
    counter = len(twice(Box.double))
    channel.send((Box.double, counter, os.getpid() > 0))


def reads_a_module_global(channel):
    channel.send(sys.version)


def test_a_self_contained_function_runs_remotely_with_its_classes_functions_and_globals():
    gw = blocking.makegateway("popen")
    try:
        assert gw.remote_exec(self_contained, n=4).receive(T) == (8, 2, True)
    finally:
        gw.exit()


def test_a_function_reading_module_globals_is_refused_naming_them():
    assert globalNames(reads_a_module_global.__code__) == ["sys"]
    with pytest.raises(ValueError, match="reads the global names sys"):
        sourceOfFunction(reads_a_module_global)


def test_builtins_names_it_defines_and_attribute_names_are_not_globals():
    assert globalNames(self_contained.__code__) == []


def closure_maker():
    captured = 1

    def closure(channel):
        channel.send(captured)

    return closure


def no_channel(other):
    pass


@pytest.mark.parametrize(
    "function, says",
    [
        (lambda channel: None, "not a lambda"),
        (closure_maker(), "is a closure"),
        (no_channel, "must take 'channel'"),
    ],
)
def test_functions_that_cannot_run_remotely_are_refused_with_the_reason(function, says):
    with pytest.raises(ValueError, match=says):
        sourceOfFunction(function)


def test_a_function_without_source_is_a_value_error():
    namespace: dict = {}
    exec("def made(channel): pass", namespace)
    with pytest.raises(ValueError, match="source of function made cannot be found"):
        sourceOfFunction(namespace["made"])


def test_the_source_keeps_the_functions_line_numbers_and_file():
    code, filename = sourceOfFunction(self_contained)
    assert filename == __file__
    first = self_contained.__code__.co_firstlineno
    assert code.splitlines()[first - 1] == "def self_contained(channel, n):"

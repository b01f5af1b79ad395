"""
The serializer (txexecnet.dumps/loads): exact round trips of every supported
type, clear errors for everything else, and safety against malformed bytes.
"""

import math
import struct
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import txexecnet
from txexecnet import DataFormatError, DumpError, LoadError, dumps, loads
from txexecnet import _remote

hashable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: st.tuples(children, children) | st.frozensets(children, max_size=4),
    max_leaves=10,
)

anything = st.recursive(
    hashable | st.builds(bytearray, st.binary()),
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(hashable, children, max_size=5)
        | st.sets(hashable, max_size=5)
        | st.frozensets(hashable, max_size=5)
    ),
    max_leaves=30,
)


def same(a, b):
    """Equal, and of exactly the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    return a == b


@settings(max_examples=150, deadline=None)
@given(anything)
def test_round_trip_exact(obj):
    assert same(loads(dumps(obj)), obj)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**31 - 1,
        -(2**31),
        2**31,
        -(2**31) - 1,
        2**64,
        -(2**200),
        10**1000,
        float("inf"),
        float("-inf"),
        -0.0,
        "",
        "\udcff surrogate",
        "\u00e9\u4e2d\U0001f600",
        b"",
        bytearray(),
        [],
        (),
        {},
        set(),
        frozenset(),
        True,
        False,
        None,
        complex(-0.0, float("inf")),
    ],
)
def test_round_trip_edges(value):
    assert same(loads(dumps(value)), value)


def test_nan_round_trips():
    assert math.isnan(loads(dumps(float("nan"))))


@pytest.mark.parametrize(
    "value",
    [
        object(),
        OrderedDict(a=1),
        type("MyStr", (str,), {})("x"),
        [1, {2: object}],
        lambda: 1,
        1.5j.__class__.__mro__,
    ],
)
def test_unsupported_types_name_the_type(value):
    with pytest.raises(DumpError) as info:
        dumps(value)
    assert isinstance(info.value, DataFormatError)
    assert "can't serialize" in str(info.value)


def test_unsupported_type_message_names_it():
    with pytest.raises(DumpError, match="OrderedDict"):
        dumps({"nested": [OrderedDict()]})


def test_depth_is_bounded_both_ways():
    deep = []
    for _ in range(_remote.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(DumpError, match="deeper"):
        dumps(deep)
    evil = b"l\x00\x00\x00\x01" * 10000 + b"N"
    with pytest.raises(LoadError, match="deeper"):
        loads(evil)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"X",
        b"s\x00\x00\x00\x10abc",
        b"l\xff\xff\xff\xff",
        b"d\x00\x00\x00\x01N",
        b"NN",
        b"i\x00",
        b"I\x00\x00\x00\x00",
        b"S\x00\x00\x00\x01l\x00\x00\x00\x00",
        b"d\x00\x00\x00\x01l\x00\x00\x00\x00N",
        b"s\x00\x00\x00\x01\xff",
        b"C\x00\x00\x00\x01",
    ],
)
def test_malformed_bytes_give_load_error(data):
    with pytest.raises(LoadError):
        loads(data)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_crash(data):
    try:
        loads(data)
    except LoadError:
        pass


@settings(max_examples=200, deadline=None)
@given(anything, st.data())
def test_corrupted_valid_data_never_crashes(obj, data):
    raw = bytearray(dumps(obj))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        loads(bytes(raw[:cut]))
    except LoadError:
        pass


def test_huge_claimed_count_is_rejected_without_allocating():
    with pytest.raises(LoadError, match="exceeds"):
        loads(b"l\x7f\xff\xff\xff")


def test_loads_rejects_non_bytes():
    with pytest.raises(LoadError):
        loads("not bytes")


def test_public_names():
    assert txexecnet.loads(txexecnet.dumps({"a": [1, (2.5, b"x")]})) == {"a": [1, (2.5, b"x")]}
    assert issubclass(LoadError, DataFormatError) and issubclass(DumpError, DataFormatError)

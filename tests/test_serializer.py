"""
The serializer (txexecnet.dumps/loads): exact round trips of every supported
type, clear errors for everything else, and safety against malformed bytes.
"""

import datetime
import decimal
import math
import pathlib
import struct
import uuid
from collections import OrderedDict, namedtuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import containers

import txexecnet
from txexecnet import DataFormatError, DumpError, LoadError, dumps, loads
from txexecnet import _remote

#: Fixed offsets as datetime.timezone takes them: strictly within a day.
offsets = st.timedeltas(
    min_value=datetime.timedelta(hours=-24, microseconds=1),
    max_value=datetime.timedelta(hours=24, microseconds=-1),
)
timezones = st.builds(datetime.timezone, offsets) | st.builds(
    datetime.timezone, offsets, st.text(max_size=5)
)
tzinfos = st.none() | timezones | st.just(datetime.timezone.utc)
folds = st.integers(0, 1)


def with_zone(value, tzinfo, fold):
    """A datetime or time given a tzinfo and a fold."""
    return value.replace(tzinfo=tzinfo, fold=fold)


@st.composite
def stdlib_values(draw):
    """
    One of the standard library's types the serializer carries, with fold
    and odd offsets; far enough from the ends of time that an offset cannot
    push an instant past them, which hashing it would.  (A composite keeps
    the strategy's repr short where st.recursive repeats it.)
    """
    return draw(
        st.builds(
            with_zone,
            st.datetimes(datetime.datetime(2, 1, 1), datetime.datetime(9998, 12, 31)),
            tzinfos,
            folds,
        )
        | st.dates()
        | st.builds(with_zone, st.times(), tzinfos, folds)
        | st.timedeltas()
        | timezones
        | st.decimals(allow_nan=False)
        | st.uuids()
        | st.builds(pathlib.PurePosixPath, st.text())
        | st.builds(pathlib.PureWindowsPath, st.text())
    )


#: Decimals that do not equal themselves; a signalling NaN cannot be hashed.
nan_decimals = st.sampled_from(
    [
        decimal.Decimal("NaN"),
        decimal.Decimal("-NaN12"),
        decimal.Decimal("sNaN"),
        decimal.Decimal("-sNaN7"),
    ]
)

hashable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary()
    | stdlib_values(),
    lambda children: st.tuples(children, children) | st.frozensets(children, max_size=4),
    max_leaves=10,
)

anything = containers(
    hashable | st.builds(bytearray, st.binary()) | nan_decimals, hashable, max_size=5, max_leaves=30
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
    if isinstance(a, EXACT_BY_REPR):
        return repr(a) == repr(b)
    return a == b


#: Types whose equality ignores what must come back too: fold, the tzinfo
#: of an instant, a timezone's name, a NaN's sign and payload.
EXACT_BY_REPR = (
    datetime.datetime,
    datetime.time,
    datetime.timezone,
    decimal.Decimal,
    pathlib.PurePath,
)


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


Pair = namedtuple("Pair", "left right")

#: Names a named item may carry: the standard library's, one this test
#: registers, one nobody registers, a reserved one that is not a type, bytes
#: that are not UTF-8, anything.
wire_names = st.sampled_from(
    [
        b"datetime.datetime",
        b"datetime.date",
        b"datetime.time",
        b"datetime.timedelta",
        b"datetime.timezone",
        b"decimal.Decimal",
        b"uuid.UUID",
        b"pathlib.PurePosixPath",
        b"pathlib.PureWindowsPath",
        b"test.Pair",
        b"nobody.Registered",
        b"datetime.nothing",
        b"\xff\xfe",
    ]
) | st.binary(max_size=20)
#: States: any item; tuples of ints, the shape of most standard states, with
#: values out of range; bytes that are no item at all.
wire_states = (
    anything.map(dumps)
    | st.lists(st.integers() | st.none() | st.text(max_size=3), max_size=10).map(
        lambda values: dumps(tuple(values))
    )
    | st.binary(max_size=40)
)


@settings(max_examples=1000, deadline=None)
@given(wire_names, wire_states, st.integers(-3, 3))
def test_random_named_items_load_or_give_load_error(name, state, skew):
    data = b"n" + struct.pack(">I", max(0, len(name) + skew)) + name + state
    txexecnet.register_type("test.Pair", Pair, tuple, lambda s: Pair(*s))
    try:
        loads(data)
    except LoadError:
        pass
    finally:
        txexecnet.unregister_type("test.Pair")


def test_huge_claimed_count_is_rejected_without_allocating():
    with pytest.raises(LoadError, match="exceeds"):
        loads(b"l\x7f\xff\xff\xff")


def test_loads_rejects_non_bytes():
    with pytest.raises(LoadError):
        loads("not bytes")


def test_public_names():
    assert txexecnet.loads(txexecnet.dumps({"a": [1, (2.5, b"x")]})) == {"a": [1, (2.5, b"x")]}
    assert issubclass(LoadError, DataFormatError) and issubclass(DumpError, DataFormatError)

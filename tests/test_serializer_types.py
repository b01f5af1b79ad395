"""
The standard library's types and registered types in the serializer: exact
round trips, the registry's rules, and clear errors for what it refuses.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import io
import pathlib
import subprocess
import sys
import uuid
from collections import namedtuple
from typing import Any, Callable

import pytest

import txexecnet
from txexecnet import DumpError, LoadError, dumps, loads, register_type, unregister_type
from txexecnet import _remote
from txexecnet.compat import gateway_base

UTC = datetime.timezone.utc
NAMED_ZONE = datetime.timezone(datetime.timedelta(hours=5, minutes=30, microseconds=7), "IST")


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2024, 2, 29, 23, 59, 58, 999999),
        datetime.datetime(2024, 11, 3, 1, 30, fold=1),
        datetime.datetime(1, 1, 1, tzinfo=NAMED_ZONE),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 1, UTC, fold=1),
        datetime.date(1970, 1, 1),
        datetime.time(12, 0, 0, 1, NAMED_ZONE, fold=1),
        datetime.time(),
        datetime.timedelta(days=-1, microseconds=1),
        datetime.timedelta.max,
        datetime.timezone(datetime.timedelta(hours=-23, minutes=-59)),
        NAMED_ZONE,
        decimal.Decimal("-0.000"),
        decimal.Decimal("1E+999999"),
        decimal.Decimal("-Infinity"),
        decimal.Decimal("-sNaN123"),
        decimal.Decimal("3.14159265358979323846264338327950288419716939937510"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        uuid.UUID(int=0),
        pathlib.PurePosixPath("//two/leading/slashes"),
        pathlib.PurePosixPath("relative/\udcff"),
        pathlib.PureWindowsPath(r"\\server\share\file.txt"),
        pathlib.PureWindowsPath("c:relative"),
    ],
    ids=repr,
)
def test_each_standard_type_comes_back_exactly(value):
    back = loads(dumps(value))
    assert type(back) is type(value)
    assert repr(back) == repr(value)


def test_utc_comes_back_as_the_utc_singleton():
    back = loads(dumps(datetime.datetime(2000, 1, 1, tzinfo=UTC)))
    assert back.tzinfo is UTC


def test_concrete_paths_arrive_as_pure_paths():
    here = pathlib.Path.cwd()
    back = loads(dumps([here]))[0]
    assert type(back) is pathlib.PurePosixPath
    assert str(back) == str(here)


def test_standard_types_nest_in_containers_and_as_keys():
    value = {
        datetime.date(2020, 1, 1): [decimal.Decimal("1.5"), {uuid.UUID(int=1)}],
        "path": (pathlib.PurePosixPath("/tmp"), datetime.timedelta(seconds=1)),
    }
    assert loads(dumps(value)) == value


class Zone(datetime.tzinfo):
    """A tzinfo that is not a fixed offset."""

    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
        return datetime.timedelta(hours=1)


def test_a_tzinfo_other_than_timezone_is_refused_naming_it():
    for value in (datetime.datetime(2020, 1, 1, tzinfo=Zone()), datetime.time(tzinfo=Zone())):
        with pytest.raises(DumpError, match=r"tzinfo is a test_serializer_types\.Zone"):
            dumps(value)


@pytest.fixture
def registered() -> Any:
    """register_type, with every name it registered unregistered after the test."""
    names = []

    def register(name: str, cls: type, to_state: Callable, from_state: Callable) -> None:
        register_type(name, cls, to_state, from_state)
        names.append(name)

    yield register
    for name in set(names):
        try:
            unregister_type(name)
        except KeyError:
            pass  # the test unregistered it itself


def test_a_registered_tzinfo_travels_with_its_datetime(registered):
    registered("test.Zone", Zone, lambda z: None, lambda s: Zone())
    back = loads(dumps(datetime.datetime(2020, 1, 1, tzinfo=Zone())))
    assert type(back.tzinfo) is Zone
    assert back.utcoffset() == datetime.timedelta(hours=1)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


Pair = namedtuple("Pair", "left right")


class Name(str):
    pass


class Count(int):
    pass


@pytest.mark.parametrize(
    "cls, to_state, from_state, value",
    [
        (Color, lambda c: c.value, Color, Color.GREEN),
        (Level, int, Level, Level.HIGH),
        (Point, dataclasses.astuple, lambda s: Point(*s), Point(3, -4)),
        (Pair, tuple, lambda s: Pair(*s), Pair("a", [1])),
        (Name, str, Name, Name("x")),
        (Count, int, Count, Count(2**40)),
    ],
    ids=["enum", "intenum", "dataclass", "namedtuple", "str-subclass", "int-subclass"],
)
def test_registered_types_come_back_as_themselves(registered, cls, to_state, from_state, value):
    with pytest.raises(DumpError, match="register_type"):
        dumps(value)
    registered(f"test.{cls.__name__}", cls, to_state, from_state)
    back = loads(dumps({"item": [value, (value,)]}))
    assert type(back["item"][0]) is cls and type(back["item"][1][0]) is cls
    assert back == {"item": [value, (value,)]}


def test_an_enum_member_comes_back_as_the_same_member(registered):
    registered("test.Color", Color, lambda c: c.name, lambda s: Color[s])
    assert loads(dumps(Color.RED)) is Color.RED


def test_registered_types_nest_in_each_other_and_as_keys(registered):
    registered("test.Point", Point, dataclasses.astuple, lambda s: Point(*s))
    registered("test.Pair", Pair, tuple, lambda s: Pair(*s))
    value = {Point(1, 2): Pair(Point(0, 0), datetime.date(2000, 1, 1))}
    assert loads(dumps(value)) == value


def test_items_with_named_types_read_back_one_by_one_from_a_file(registered):
    registered("test.Point", Point, dataclasses.astuple, lambda s: Point(*s))
    items = [Point(1, 2), datetime.datetime(2020, 1, 1, tzinfo=NAMED_ZONE), [Point(3, 4)]]
    f = io.BytesIO()
    for item in items:
        _remote.dump(f, item)
    f.seek(0)
    assert [_remote.load(f) for _ in items] == items
    with pytest.raises(EOFError):
        _remote.load(f)


def test_a_state_that_contains_itself_is_bounded(registered):
    class Loop:
        pass

    registered("test.Loop", Loop, lambda obj: obj, Loop)
    with pytest.raises(DumpError, match="deeper"):
        dumps(Loop())


def test_names_nest_no_deeper_than_the_limit_on_load(registered):
    registered("test.Pair", Pair, tuple, lambda s: Pair(*s))
    name = b"test.Pair"
    evil = (b"n" + len(name).to_bytes(4, "big") + name) * (_remote.MAX_DEPTH + 5) + b"N"
    with pytest.raises(LoadError, match="deeper"):
        loads(evil)


def test_an_unregistered_name_is_a_load_error_naming_it(registered):
    registered("test.Point", Point, dataclasses.astuple, lambda s: Point(*s))
    data = dumps(Point(1, 2))
    unregister_type("test.Point")
    with pytest.raises(LoadError, match="'test.Point'.*register_type"):
        loads(data)
    with pytest.raises(DumpError, match="register_type"):
        dumps(Point(1, 2))


def test_what_from_state_raises_is_a_load_error(registered):
    registered("test.Color", Color, lambda c: "purple", Color)
    with pytest.raises(LoadError, match=r"'test.Color'.*ValueError.*purple"):
        loads(dumps(Color.RED))


def test_registering_a_name_again_replaces_it(registered):
    registered("test.Thing", Point, dataclasses.astuple, lambda s: Point(*s))
    registered("test.Thing", Pair, tuple, lambda s: Pair(*s))
    assert loads(dumps(Pair(1, 2))) == Pair(1, 2)
    with pytest.raises(DumpError, match="register_type"):
        dumps(Point(1, 2))


def test_a_class_is_registered_under_one_name_only(registered):
    registered("test.Point", Point, dataclasses.astuple, lambda s: Point(*s))
    with pytest.raises(ValueError, match="'test.Point' already"):
        register_type("test.Other", Point, dataclasses.astuple, lambda s: Point(*s))


@pytest.mark.parametrize(
    "name",
    [
        "datetime.datetime",
        "datetime.timezone",
        "decimal.Decimal",
        "uuid.UUID",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "datetime.mine",
        "pathlib",
    ],
)
def test_the_standard_names_are_reserved(name):
    with pytest.raises(ValueError, match="reserved"):
        register_type(name, Point, dataclasses.astuple, lambda s: Point(*s))
    with pytest.raises(ValueError, match="reserved"):
        unregister_type(name)
    assert loads(dumps(datetime.date(2000, 1, 2))) == datetime.date(2000, 1, 2)


@pytest.mark.parametrize(
    "cls", [int, str, dict, type(None), datetime.date, decimal.Decimal, pathlib.PosixPath]
)
def test_types_sent_without_registering_cannot_be_registered(cls):
    with pytest.raises(ValueError, match="sent as"):
        register_type("test.Mine", cls, str, str)
    with pytest.raises(KeyError):
        unregister_type("test.Mine")


@pytest.mark.parametrize(
    "args",
    [
        ("", Point, str, str),
        (b"test.Point", Point, str, str),
        ("test.Point", Point(1, 2), str, str),
        ("test.Point", Point, None, str),
        ("test.Point", Point, str, "not callable"),
    ],
)
def test_bad_arguments_are_a_type_error(args):
    with pytest.raises(TypeError):
        register_type(*args)
    with pytest.raises(KeyError):
        unregister_type("test.Point")


def test_unregistering_an_unknown_name_is_a_key_error():
    with pytest.raises(KeyError, match="test.Nobody"):
        unregister_type("test.Nobody")


def test_the_registry_is_public():
    assert "register_type" in txexecnet.__all__ and "unregister_type" in txexecnet.__all__
    assert txexecnet.register_type is register_type


def test_the_standard_modules_are_imported_only_when_an_item_needs_them():
    program = (
        "import sys, runpy\n"
        f"r = runpy.run_path({_remote.__file__!r})\n"
        "names = ('datetime', 'decimal', 'uuid', 'pathlib')\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
        "r['loads'](r['dumps'](1))\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
        "r['loads'](b'n\\x00\\x00\\x00\\x09uuid.UUIDb\\x00\\x00\\x00\\x10' + bytes(16))\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=30
    )
    assert out.stdout.splitlines() == ["[]", "[]", "['uuid']"], out.stderr


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2020, 1, 1),
        datetime.date(2020, 1, 1),
        decimal.Decimal(1),
        uuid.UUID(int=1),
        pathlib.PurePosixPath("/"),
        [datetime.timedelta(1)],
    ],
)
def test_compat_dumps_refuses_them_as_execnet_does(value):
    import execnet as real

    with pytest.raises(real.DumpError):
        real.dumps(value)
    with pytest.raises(gateway_base.DumpError, match="can't serialize <class '"):
        gateway_base.dumps(value)


def test_compat_dumps_refuses_registered_types(registered):
    registered("test.Point", Point, dataclasses.astuple, lambda s: Point(*s))
    assert loads(dumps(Point(1, 2))) == Point(1, 2)
    with pytest.raises(gateway_base.DumpError, match="can't serialize <class '.*Point'>"):
        gateway_base.dumps({"p": Point(1, 2)})

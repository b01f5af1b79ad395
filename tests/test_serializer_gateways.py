"""
The standard library's types and registered types over real gateways, both
ways: the remote runtime builds and rebuilds them as the local side does.
"""

from __future__ import annotations

import dataclasses
import enum
import pathlib

import pytest
import pytest_twisted

import txexecnet
from txexecnet import LoadError, RemoteError

from conftest import SPEC_FACTORIES

T = 10  # seconds any single wait may take before the test fails

#: The same items, built by the same source on each side.
ITEMS_SOURCE = """
import datetime, decimal, pathlib, uuid
zone = datetime.timezone(datetime.timedelta(hours=-3, microseconds=5), "odd")
items = [
    datetime.datetime(2024, 11, 3, 1, 30, 0, 123456, zone, fold=1),
    datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),
    datetime.date(1999, 12, 31),
    datetime.time(23, 59, 59, 999999, datetime.timezone.utc, fold=1),
    datetime.timedelta(days=-2, seconds=3, microseconds=4),
    zone,
    decimal.Decimal("-1.500"),
    decimal.Decimal("-sNaN9"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    pathlib.PurePosixPath("/etc/hosts"),
    pathlib.PureWindowsPath("C:/Users/x"),
    {datetime.date(2020, 1, 1): [decimal.Decimal("0.1")]},
]
"""


def local_items() -> list[object]:
    namespace: dict[str, object] = {}
    exec(ITEMS_SOURCE, namespace)
    items = namespace["items"]
    assert isinstance(items, list)
    return items


@pytest_twisted.ensureDeferred
async def test_standard_types_travel_both_ways(gw):
    ch = gw.remote_exec(
        ITEMS_SOURCE
        + """
received = channel.receive()
channel.send(repr(received) == repr(items) and [type(x) for x in received] == [type(x) for x in items])
channel.send(items)
"""
    )
    items = local_items()
    ch.send(items)
    assert await ch.receive(T) is True
    back = await ch.receive(T)
    assert repr(back) == repr(items)
    assert [type(x) for x in back] == [type(x) for x in items]
    assert back[1].tzinfo is items[1].tzinfo  # timezone.utc itself
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_a_concrete_path_arrives_as_a_pure_path(gw):
    ch = gw.remote_exec(
        "import pathlib\n"
        "received = channel.receive()\n"
        "channel.send((type(received).__name__, str(received)))\n"
        "channel.send(pathlib.Path('/remote/file'))\n"
    )
    ch.send(pathlib.Path("/local/file"))
    assert await ch.receive(T) == ("PurePosixPath", "/local/file")
    back = await ch.receive(T)
    assert type(back) is pathlib.PurePosixPath and back == pathlib.PurePosixPath("/remote/file")
    await ch.waitclose(T)


# A thread gateway's remote code runs in this process and shares its
# registry: its classes and these would take each other's names.
@pytest.fixture(params=sorted(set(SPEC_FACTORIES) - {"thread"}))
def separate_spec(request) -> str:
    """A spec for each transport whose remote side is a process of its own."""
    return SPEC_FACTORIES[request.param](request)


@pytest_twisted.async_yield_fixture()
async def separate_gw(separate_spec):
    """A ready gateway whose remote side is another process, exited after the test."""
    gateway = await txexecnet.makegateway(separate_spec)
    yield gateway
    await gateway.exit(timeout=3)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


#: Remote code that defines Point and Color as this module does, and
#: registers them under the same names.
REGISTERING_SOURCE = """
import dataclasses, enum

@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int

class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"

channel.gateway.register_type("test.Point", Point, dataclasses.astuple, lambda s: Point(*s))
channel.gateway.register_type("test.Color", Color, lambda c: c.value, Color)
"""


@pytest.fixture
def registered():
    """Point and Color registered here as the remote code registers them."""
    txexecnet.register_type("test.Point", Point, dataclasses.astuple, lambda s: Point(*s))
    txexecnet.register_type("test.Color", Color, lambda c: c.value, Color)
    yield
    txexecnet.unregister_type("test.Point")
    txexecnet.unregister_type("test.Color")


@pytest_twisted.ensureDeferred
async def test_registered_types_travel_both_ways(separate_gw, registered):
    ch = separate_gw.remote_exec(
        REGISTERING_SOURCE
        + """
for point, color in channel:
    assert type(point) is Point and type(color) is Color, (point, color)
    channel.send({Point(point.x + 1, point.y): [color, Color.BLUE]})
"""
    )
    ch.send((Point(1, 2), Color.RED))
    assert await ch.receive(T) == {Point(2, 2): [Color.RED, Color.BLUE]}
    ch.send((Point(-5, 0), Color.BLUE))
    back = await ch.receive(T)
    assert back == {Point(-4, 0): [Color.BLUE, Color.BLUE]}
    assert next(iter(back.values()))[0] is Color.BLUE
    ch.close()
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_a_name_registered_only_remotely_is_a_load_error_here(separate_gw):
    ch = separate_gw.remote_exec(REGISTERING_SOURCE + "channel.send(Point(1, 2))\n")
    with pytest.raises(LoadError, match="'test.Point'"):
        await ch.receive(T)


@pytest_twisted.ensureDeferred
async def test_a_name_registered_only_here_fails_that_remote_receive_alone(separate_gw, registered):
    ch = separate_gw.remote_exec(
        """
try:
    channel.receive()
except Exception as e:
    channel.send((type(e).__name__, str(e)))
channel.send(channel.receive())
"""
    )
    ch.send(Point(1, 2))
    ch.send("next")
    kind, text = await ch.receive(T)
    assert kind == "LoadError" and "'test.Point'" in text
    assert await ch.receive(T) == "next"
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_a_name_registered_only_here_fails_a_remote_callback(separate_gw, registered):
    ch = separate_gw.remote_exec(
        "import threading\n"
        "done = threading.Event()\n"
        "channel.setcallback(channel.send)\n"
        "done.wait(10)\n"
    )
    ch.send(Point(1, 2))
    with pytest.raises(RemoteError, match="'test.Point'"):
        await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_remote_code_gets_the_registry_errors(separate_gw):
    ch = separate_gw.remote_exec(
        """
errors = []
for name, cls in [("datetime.datetime", int), ("test.Int", int)]:
    try:
        channel.gateway.register_type(name, cls, str, str)
    except ValueError as e:
        errors.append(str(e))
try:
    channel.gateway.unregister_type("test.Nobody")
except KeyError as e:
    errors.append(repr(e))
try:
    channel.send(object())
except Exception as e:
    errors.append(str(e))
channel.send(errors)
"""
    )
    reserved, builtin, unknown, unsendable = await ch.receive(T)
    assert "reserved" in reserved
    assert "sent as itself" in builtin
    assert "test.Nobody" in unknown
    assert "register_type" in unsendable
    await ch.waitclose(T)

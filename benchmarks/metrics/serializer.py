"""
Metric 5, the serializer alone: dumps + loads of one mixed structure of about
1 MB (a dict of dicts of lists of str, int and float), in operations per
second; dumps and loads are also reported on their own.  txexecnet.dumps/loads
against execnet.dumps/loads, in a worker process each, no gateway involved.
Each worker run does one untimed warm-up, then C{count} timed operations.

A second metric does the same with records of the standard library's types
and a registered dataclass, which execnet cannot send: txexecnet alone.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import pathlib
import time
import uuid
from typing import Any, Callable

from ..registry import EXECNET, HIGHER, TXEXECNET, Measure, Metric, register, repeat


def mixed_structure() -> dict[str, dict[str, list[Any]]]:
    """About 1 MB serialized: 110 records of 10 fields of 100 str/int/float values."""
    values = []
    for i in range(100):
        kind = i % 3
        values.append("value-%d" % i if kind == 0 else i * 7919 if kind == 1 else i / 7.0)
    return {"record-%d" % r: {"field-%d" % f: list(values) for f in range(10)} for r in range(110)}


@dataclasses.dataclass(frozen=True)
class Point:
    """A user type, sent through txexecnet.register_type."""

    x: int
    y: int


def typed_structure() -> list[tuple[Any, ...]]:
    """About 1 MB serialized: 3500 records of datetime, date, Decimal, UUID, path, Point."""
    zone = datetime.timezone(datetime.timedelta(hours=2))
    start = datetime.datetime(2024, 1, 1, tzinfo=zone)
    return [
        (
            start + datetime.timedelta(seconds=i),
            datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 365),
            decimal.Decimal(i) / 100,
            uuid.UUID(int=i),
            pathlib.PurePosixPath(f"/data/{i}"),
            Point(i, -i),
        )
        for i in range(3500)
    ]


def _measure(
    dumps: Callable[[Any], bytes],
    loads: Callable[[bytes], Any],
    count: int,
    structure: Callable[[], Any] = mixed_structure,
) -> dict[str, list[float]]:
    obj = structure()
    loads(dumps(obj))
    samples: dict[str, list[float]] = {"both": [], "dumps": [], "loads": []}
    clock = time.perf_counter
    for _ in range(count):
        start = clock()
        data = dumps(obj)
        middle = clock()
        loads(data)
        end = clock()
        samples["both"].append(1 / (end - start))
        samples["dumps"].append(1 / (middle - start))
        samples["loads"].append(1 / (end - middle))
    return samples


def run_txexecnet(params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet.dumps / txexecnet.loads."""
    import txexecnet

    return _measure(txexecnet.dumps, txexecnet.loads, params["count"])


def run_execnet(params: dict[str, Any]) -> dict[str, list[float]]:
    """execnet.dumps / execnet.loads."""
    import execnet

    return _measure(execnet.dumps, execnet.loads, params["count"])


register(
    Metric(
        name="serializer",
        title="serializer, ~1 MB mixed structure",
        measures=(
            Measure("both", "dumps+loads", "ops/s", HIGHER, target=1.5),
            Measure("dumps", "dumps", "ops/s", HIGHER),
            Measure("loads", "loads", "ops/s", HIGHER),
        ),
        workloads={EXECNET: run_execnet, TXEXECNET: run_txexecnet},
        params=lambda quick: {"count": 3 if quick else 5},
        repetitions=repeat(3, 2),
    )
)


def run_txexecnet_types(params: dict[str, Any]) -> dict[str, list[float]]:
    """txexecnet.dumps / txexecnet.loads of the standard library's types and a registered one."""
    import txexecnet

    txexecnet.register_type("bench.Point", Point, dataclasses.astuple, lambda s: Point(*s))
    return _measure(txexecnet.dumps, txexecnet.loads, params["count"], typed_structure)


register(
    Metric(
        name="serializer-types",
        title="serializer, ~1 MB of datetime, Decimal, UUID, path, registered",
        measures=(
            Measure("both", "dumps+loads", "ops/s", HIGHER),
            Measure("dumps", "dumps", "ops/s", HIGHER),
            Measure("loads", "loads", "ops/s", HIGHER),
        ),
        workloads={TXEXECNET: run_txexecnet_types},
        params=lambda quick: {"count": 3 if quick else 5},
        repetitions=repeat(3, 2),
    )
)

"""
Turning metric results into table rows, a text table and JSON.

One row per measure and txexecnet API: the txexecnet median, the execnet
median of the same run, their ratio, which direction is better, the target
for that ratio and whether it is met, and the raw limit where one applies.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from .registry import API_LABELS, EXECNET, HIGHER, RAW
from .runner import MetricResult


@dataclass
class Row:
    """One line of the table."""

    metric: str
    measure: str
    label: str
    implementation: str
    unit: str
    better: str
    txexecnet: float | None
    execnet: float | None
    ratio: float | None
    target: float | None
    met: bool | None
    raw: float | None
    raw_ratio: float | None
    raw_target: float | None
    raw_met: bool | None


def _label(result: MetricResult, measure: Any, implementation: str) -> str:
    label = result.metric.title
    if len(result.metric.measures) > 1:
        label += f": {measure.label}"
    api = API_LABELS[implementation]
    return f"{label} [{api}]" if api else label


def rows(result: MetricResult) -> list[Row]:
    """The table rows of one metric."""
    found = []
    for measure in result.metric.measures:
        execnet = result.median(EXECNET, measure.key)
        raw = result.median(RAW, measure.key)
        for implementation in API_LABELS:
            if implementation not in result.metric.workloads:
                continue
            tx = result.median(implementation, measure.key)
            ratio = _ratio(tx, execnet)
            raw_ratio = _ratio(tx, raw)
            found.append(
                Row(
                    result.metric.name,
                    measure.key,
                    _label(result, measure, implementation),
                    implementation,
                    measure.unit,
                    measure.better,
                    tx,
                    execnet,
                    ratio,
                    measure.target,
                    _verdict(measure, ratio, measure.target),
                    raw,
                    raw_ratio,
                    measure.raw_target,
                    _verdict(measure, raw_ratio, measure.raw_target),
                )
            )
    return found


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _verdict(measure: Any, ratio: float | None, target: float | None) -> bool | None:
    if ratio is None or target is None:
        return None
    return measure.reaches(ratio, target)


def number(x: float | None) -> str:
    """A number with three or so significant digits; '-' for none."""
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _target(better: str, target: float | None, met: bool | None) -> str:
    if target is None:
        return ""
    sign = ">=" if better == HIGHER else "<="
    verdict = "" if met is None else (" met" if met else " not met")
    return f"{sign}{target:.2f}{verdict}"


#: Column titles, and whether each column is right-aligned.
COLUMNS = (
    ("metric", False),
    ("unit", False),
    ("txexecnet", True),
    ("execnet", True),
    ("tx/execnet", True),
    ("better", False),
    ("target", False),
    ("raw limit", True),
    ("tx/raw", True),
    ("raw target", False),
)


def cells(row: Row) -> tuple[str, ...]:
    """The text of each column of C{row}."""
    return (
        row.label,
        row.unit,
        number(row.txexecnet),
        number(row.execnet),
        number(row.ratio),
        row.better,
        _target(row.better, row.target, row.met),
        "" if row.raw is None else number(row.raw),
        "" if row.raw_ratio is None else number(row.raw_ratio),
        _target(row.better, row.raw_target, row.raw_met),
    )


def table_lines(all_rows: list[Row], rst: bool = False) -> list[str]:
    """
    The rows as an aligned text table; with C{rst}, as a reStructuredText
    simple table (for docs/performance.rst).
    """
    body = [tuple(title for title, _ in COLUMNS)] + [cells(r) for r in all_rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    rule = "  ".join(("=" if rst else "-") * w for w in widths)
    lines = [rule] if rst else []
    for i, line in enumerate(body):
        parts = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, (_, right) in zip(line, widths, COLUMNS)
        ]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append(rule)
    return lines + [rule] if rst else lines


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import importlib.metadata as md

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "txexecnet": md.version("txexecnet"),
        "execnet": md.version("execnet"),
        "twisted": md.version("twisted"),
    }


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def load_rows(document: str) -> list[Row]:
    """The rows of a run saved by L{to_json}."""
    return [Row(**row) for row in json.loads(document)["rows"]]


def to_json(results: list[MetricResult], quick: bool) -> str:
    """Everything a later run needs for comparison: machine, rows, sample summaries."""
    document = {
        "machine": machine(),
        "quick": quick,
        "rows": [asdict(r) for result in results for r in rows(result)],
        "metrics": [
            {
                "name": result.metric.name,
                "title": result.metric.title,
                "params": result.params,
                "repetitions": result.repetitions,
                "seconds": round(result.seconds, 2),
                "samples": {
                    impl: {key: _summary(values) for key, values in by_key.items()}
                    for impl, by_key in result.samples.items()
                },
            }
            for result in results
        ],
    }
    return json.dumps(document, indent=2)

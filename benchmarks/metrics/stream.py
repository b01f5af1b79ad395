"""
Metric 4, a one-way stream of small items (ints, short strs and small tuples
in turn), local -> remote and remote -> local, in items per second.  The
workloads are the transfer workloads of L{.throughput}; the time of a
round includes one round trip (the final answer, or the request).
"""

from __future__ import annotations

from typing import Any, Callable

from ..registry import HIGHER, Measure, Metric, register, repeat
from .throughput import TRANSFER_WORKLOADS

_DIRECTIONS = {"up": "local->remote", "down": "remote->local"}


def _params_for(direction: str) -> Callable[[bool], dict[str, Any]]:
    def params(quick: bool) -> dict[str, Any]:
        return {
            "spec": "popen",
            "direction": direction,
            "kind": "small",
            "size": 0,
            "count": 30_000 if quick else 100_000,
            "rounds": 1 if quick else 2,
        }

    return params


for _direction, _arrow in _DIRECTIONS.items():
    register(
        Metric(
            name=f"stream-{_direction}",
            title=f"stream of small items {_arrow}",
            measures=(Measure("items", "rate", "items/s", HIGHER, target=1.3),),
            workloads=TRANSFER_WORKLOADS,
            params=_params_for(_direction),
            repetitions=repeat(3, 2),
        )
    )

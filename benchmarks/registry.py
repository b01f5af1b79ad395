"""
The registry of metrics: what each benchmark measures, in which units, which
direction is better, and which function measures it for each implementation.

A metric module (C{benchmarks/metrics/*.py}) calls L{register} at import
time.  To add one, write a module with one workload function per
implementation (L{benchmarks.common.library_workloads} makes the execnet and
txexecnet ones from one blocking and one Deferred function) and register
it; L{benchmarks.metrics} imports every module listed in its C{MODULES}.  Workload modules must import
txexecnet, execnet and Twisted inside their functions, never at module level,
so that a worker process measuring one library does not load the other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

#: The implementations a metric can be measured with, in table order.
#: C{raw} is the physical limit (bare interpreters, bare pipes), not a library.
EXECNET = "execnet"
TX_DEFERRED = "txexecnet-deferred"
TX_BLOCKING = "txexecnet-blocking"
TXEXECNET = "txexecnet"
#: txexecnet's Deferred API with SSH gateways through the system C{ssh}
#: binary (C{//ssh_client=openssh}) instead of Conch.
TX_OPENSSH = "txexecnet-openssh"
RAW = "raw"

#: How each txexecnet implementation is labelled in the table.
API_LABELS = {
    TX_DEFERRED: "Deferred",
    TX_BLOCKING: "blocking",
    TX_OPENSSH: "Deferred, ssh_client=openssh",
    TXEXECNET: "",
}

#: Workloads of these implementations return a Deferred and need a reactor.
REACTOR_IMPLEMENTATIONS = frozenset({TX_DEFERRED, TX_OPENSSH})

LOWER = "lower"
HIGHER = "higher"


@dataclass(frozen=True)
class Measure:
    """
    One number a metric reports, e.g. the wall time of starting 50 gateways.

    @ivar key: the key the workload uses for this measure's samples.
    @ivar label: what the table calls it.
    @ivar unit: the unit of the samples (C{ms}, C{us}, C{MB/s}...).
    @ivar better: L{LOWER} or L{HIGHER}.
    @ivar target: the ratio txexecnet/execnet to reach (a ceiling when lower
        is better, a floor when higher is), or None.
    @ivar raw_target: the ratio txexecnet/raw limit to reach, or None.
    """

    key: str
    label: str
    unit: str
    better: str
    target: float | None = None
    raw_target: float | None = None

    def reaches(self, ratio: float, target: float) -> bool:
        """Whether C{ratio} is on the better side of C{target}."""
        return ratio <= target if self.better == LOWER else ratio >= target


@dataclass(frozen=True)
class Metric:
    """
    A benchmark: one or more measures, taken by one workload per implementation.

    A workload is called as C{workload(params)} (or C{workload(reactor,
    params)} for implementations in L{REACTOR_IMPLEMENTATIONS}, returning
    a Deferred) in a fresh worker process, and returns C{{measure key: [sample,
    ...]}}.  The runner repeats it C{repetitions} times per implementation,
    alternating implementations, and reports the median of all samples.

    @ivar name: a short identifier, used by C{--only}.
    @ivar title: what the table calls it.
    @ivar measures: the numbers it reports.
    @ivar workloads: implementation name -> workload function.
    @ivar params: C{params(quick)} -> the parameters handed to workloads.
    @ivar repetitions: C{repetitions(quick)} -> worker runs per implementation;
        0 skips the metric.
    @ivar timeout: seconds one worker run may take before it is killed.
    @ivar available: returns None, or the reason the metric cannot run here.
    @ivar fixture: C{fixture(quick)} -> a context manager that the runner
        enters once around all repetitions and that yields parameters to add
        (e.g. a server it started and the specs reaching it, as
        C{{"specs": {"execnet": ..., "txexecnet": ...}}}), or None.
    """

    name: str
    title: str
    measures: tuple[Measure, ...]
    workloads: dict[str, Callable[..., Any]]
    params: Callable[[bool], dict[str, Any]]
    repetitions: Callable[[bool], int]
    timeout: float = 300.0
    available: Callable[[], str | None] = field(default=lambda: None)
    fixture: Callable[[bool], ContextManager[dict[str, Any]]] | None = None


_METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add C{metric} to the registry; names must be unique."""
    if metric.name in _METRICS:
        raise ValueError(f"a metric named {metric.name!r} is already registered")
    _METRICS[metric.name] = metric
    return metric


def metrics() -> list[Metric]:
    """Every registered metric, in registration order."""
    importlib.import_module(f"{__package__}.metrics")  # registers the metric modules
    return list(_METRICS.values())


def metric(name: str) -> Metric:
    """The registered metric called C{name}."""
    for m in metrics():
        if m.name == name:
            return m
    raise KeyError(name)


def repeat(full: int, quick: int) -> Callable[[bool], int]:
    """A C{repetitions} function: C{full} runs, or C{quick} with --quick."""
    return lambda is_quick: quick if is_quick else full

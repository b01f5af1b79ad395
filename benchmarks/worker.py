"""
A worker process: runs one metric's workload for one implementation and
prints its samples as one line of JSON on stdout.

    python -m benchmarks.worker METRIC IMPLEMENTATION PARAMS_JSON

The runner starts a fresh worker for every repetition, so each library is
measured in a clean process (its own reactor, threads and peak RSS), and a
Deferred-API workload gets a reactor of its own through C{task.react}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from . import registry


def run_with_reactor(workload: Any, params: dict[str, Any]) -> dict[str, list[float]]:
    """Run a Deferred-returning workload under C{twisted.internet.task.react}."""
    from twisted.internet import task

    result: dict[str, list[float]] = {}

    def main(reactor: Any) -> Any:
        return workload(reactor, params).addCallback(result.update)

    try:
        task.react(main)
    except SystemExit as e:
        if e.code:
            raise
    return result


def main(argv: list[str]) -> None:
    name, implementation, params = argv[1], argv[2], json.loads(argv[3])
    workload = registry.metric(name).workloads[implementation]
    if implementation in registry.REACTOR_IMPLEMENTATIONS:
        samples = run_with_reactor(workload, params)
    else:
        samples = workload(params)
    sys.stdout.write(json.dumps(samples) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)

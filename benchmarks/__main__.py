"""
Run the benchmarks and print the table::

    python -m benchmarks [--quick] [--json FILE] [--rst] [--only NAME ...]
    python -m benchmarks --show FILE [--rst]
    python -m benchmarks --list

Progress goes to stderr, the table to stdout.  C{--only} takes metric names
or prefixes (C{throughput} selects all four throughput metrics); C{--show}
prints the table of an earlier run saved with C{--json}.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import registry, report
from .runner import WorkerError, run_metric


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="txexecnet against execnet, side by side, with the raw limits.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller transfers")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--rst", action="store_true", help="print the table as reStructuredText")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="metric names or name prefixes")
    parser.add_argument("--show", metavar="FILE", help="print the table of a run saved with --json")
    parser.add_argument("--list", action="store_true", help="list the metrics and exit")
    return parser.parse_args(argv)


def selected(only: list[str] | None) -> list[registry.Metric]:
    """The metrics C{--only} names (all by default); unknown names are an error."""
    everything = registry.metrics()
    if not only:
        return everything
    unknown = [n for n in only if not any(m.name.startswith(n) for m in everything)]
    if unknown:
        raise SystemExit(f"no metric named {', '.join(unknown)}; see --list")
    return [m for m in everything if any(m.name.startswith(n) for n in only)]


def progress(message: str) -> None:
    sys.stderr.write(f"  {message}\n")
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for m in registry.metrics():
            print(f"{m.name:24} {m.title}")
        return 0
    if args.show:
        with open(args.show) as f:
            print("\n".join(report.table_lines(report.load_rows(f.read()), rst=args.rst)))
        return 0
    results, failures = [], []
    started = time.perf_counter()
    for metric in selected(args.only):
        reason = metric.available()
        if reason is None and metric.repetitions(args.quick) == 0:
            reason = "full runs only"
        if reason is not None:
            progress(f"{metric.name}: skipped, {reason}")
            continue
        try:
            results.append(run_metric(metric, args.quick, progress))
        except WorkerError as e:
            failures.append(metric.name)
            progress(f"{metric.name}: FAILED: {e}")
    all_rows = [row for result in results for row in report.rows(result)]
    print("\n".join(report.table_lines(all_rows, rst=args.rst)))
    print(
        f"\n{'quick' if args.quick else 'full'} run, {time.perf_counter() - started:.0f} s; "
        f"medians; ratio = txexecnet/execnet; MB = 10**6 bytes"
    )
    if args.json:
        with open(args.json, "w") as f:
            f.write(report.to_json(results, args.quick))
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

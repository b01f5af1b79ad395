"""
Metric 11, pytest-xdist: C{python -m pytest -n 4 -q -p no:cacheprovider -p
no:twisted} as a whole program, its 4 workers on execnet gateways (pytest-xdist
as installed) or on txexecnet's (the same command with C{-p txexecnet.xdist},
which makes xdist's C{import execnet} give L{txexecnet.compat}).  Two test
directories, each made fresh in a temporary directory for every pytest run:

  - 2,000 trivial tests: 20 files of 100 C{def test_N(): pass};
  - a real suite: copies of txexecnet's own tests/test_serializer.py (with
    its Hypothesis tests), tests/test_framebuffer.py and tests/test_xspec.py,
    which need none of the fixtures of tests/conftest.py; the metric's
    fixture counts their tests once (C{--collect-only}).

For each, in one pytest run:

  - the wall time, from just before starting pytest until it has exited;
  - the time to the first test: from just before starting pytest until the
    first test's setup begins in any worker (a conftest.py in the directory
    appends C{time.time()} to a file once per worker, and the earliest
    counts).

pytest runs with this interpreter, in the temporary directory, without
PYTEST_ADDOPTS, PYTEST_PLUGINS or PYTEST_DISABLE_PLUGIN_AUTOLOAD, and with
pytest-twisted switched off (C{-p no:twisted}) so that neither side pays for
a plugin that imports Twisted and installs a reactor in every process.  A
run counts only if it exits 0, its summary line says every test passed
(2,000, or the suite's count), 4 workers ran tests, and xdist's C{execnet}
was the one meant (C{execnet}, or C{txexecnet.compat}); anything else fails
the metric with pytest's output.  Each pytest run may take 120 s.

With --quick: 500 trivial tests (5 files of 100), one repetition.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..common import Samples
from ..registry import EXECNET, LOWER, TXEXECNET, Measure, Metric, register, repeat

#: Seconds one pytest run may take.
PYTEST_TIMEOUT = 120.0

#: txexecnet's test modules the real suite copies: pure and fast, no fixtures.
SUITE = ("test_serializer.py", "test_framebuffer.py", "test_xspec.py")

#: Where txexecnet's tests live.
_TESTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tests"
)

#: The environment variable naming the file the workers' first tests append to.
_STARTS = "TXEXECNET_BENCH_XDIST_STARTS"

#: Records the first test of each worker, and which execnet the controller's
#: xdist uses.
_CONFTEST = f"""
import os
import time

import pytest

_first = True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _first
    if _first:
        _first = False
        with open(os.environ[{_STARTS!r}], "a") as f:
            f.write("%r %d\\n" % (time.time(), os.getpid()))


def pytest_terminal_summary(terminalreporter):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        import xdist.workermanage

        terminalreporter.write_line("bench-execnet: " + xdist.workermanage.execnet.__name__)
"""

#: The C{execnet} module xdist's controller should have, per implementation.
_EXECNET_MODULE = {EXECNET: "execnet", TXEXECNET: "txexecnet.compat"}

_WORKERS = 4


def _params(quick: bool) -> dict[str, Any]:
    return {"files": 5 if quick else 20, "tests_per_file": 100}


def _pytest_argv(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        str(_WORKERS),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:twisted",
        *extra,
    ]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    return env


def _trivial_tree(root: str, params: dict[str, Any]) -> int:
    """Write the trivial tests into C{root}; return how many there are."""
    for i in range(params["files"]):
        with open(os.path.join(root, f"test_trivial{i}.py"), "w") as f:
            f.writelines(
                f"def test_{n}():\n    pass\n\n\n" for n in range(params["tests_per_file"])
            )
    return params["files"] * params["tests_per_file"]


def _suite_tree(root: str, params: dict[str, Any]) -> int:
    """Copy the real suite into C{root}; return its test count (from the fixture)."""
    for name in SUITE:
        shutil.copy(os.path.join(_TESTS, name), root)
    return params["suite_tests"]


@contextlib.contextmanager
def _count_suite(quick: bool) -> Iterator[dict[str, Any]]:
    """Count the real suite's tests once, with C{pytest --collect-only -q}."""
    root = tempfile.mkdtemp(prefix="bench-xdist-count-")
    try:
        for name in SUITE:
            shutil.copy(os.path.join(_TESTS, name), root)
        argv = [sys.executable, "-m", "pytest", "--collect-only", "-q"]
        argv += ["-p", "no:cacheprovider", "-p", "no:twisted"]
        done = subprocess.run(
            argv,
            check=False,
            cwd=root,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=PYTEST_TIMEOUT,
        )
        found = re.search(r"^(\d+) tests? collected", done.stdout, re.MULTILINE)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"cannot collect the suite {SUITE}:\n{done.stdout[-3000:]}")
        yield {"suite_tests": int(found.group(1))}
    finally:
        shutil.rmtree(root)


def _check(
    implementation: str, done: subprocess.CompletedProcess, tests: int, starts: list[str]
) -> None:
    """Fail loudly unless the run passed all C{tests} on 4 workers with the right execnet."""
    output = done.stdout + done.stderr
    summary = re.search(
        r"^=*\s*(\d+) passed(?:, \d+ warnings?)? in [\d.]+s", done.stdout, re.MULTILINE
    )
    module = re.search(r"^bench-execnet: (\S+)$", done.stdout, re.MULTILINE)
    workers = {line.split()[1] for line in starts}
    problems = []
    if done.returncode != 0:
        problems.append(f"exit status {done.returncode}")
    if not summary or int(summary.group(1)) != tests:
        problems.append(f"the summary line does not say {tests} passed (and no failures)")
    if len(workers) != _WORKERS:
        problems.append(f"{len(workers)} workers ran tests, not {_WORKERS}")
    if not module or module.group(1) != _EXECNET_MODULE[implementation]:
        found = module.group(1) if module else "nothing"
        problems.append(f"xdist's execnet is {found}, not {_EXECNET_MODULE[implementation]}")
    if problems:
        raise RuntimeError(
            f"pytest -n {_WORKERS} ({implementation}): {'; '.join(problems)}:\n{output[-3000:]}"
        )


def _run(
    implementation: str, tree: Callable[[str, dict[str, Any]], int], params: dict[str, Any]
) -> tuple[float, float]:
    """
    Make a fresh test directory with C{tree}, run pytest in it once; return
    (wall time, time to the first test), in ms.
    """
    root = tempfile.mkdtemp(prefix="bench-xdist-")
    try:
        tests = tree(root, params)
        with open(os.path.join(root, "conftest.py"), "w") as f:
            f.write(_CONFTEST)
        starts_file = os.path.join(root, "starts.txt")
        env = {**_environment(), _STARTS: starts_file}
        argv = _pytest_argv(*(["-p", "txexecnet.xdist"] if implementation == TXEXECNET else []))
        started = time.time()
        clock = time.perf_counter()
        done = subprocess.run(
            argv,
            check=False,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=PYTEST_TIMEOUT,
        )
        wall = time.perf_counter() - clock
        starts = []
        if os.path.exists(starts_file):
            with open(starts_file) as f:
                starts = f.read().split("\n")[:-1]
        _check(implementation, done, tests, starts)
        first = min(float(line.split()[0]) for line in starts) - started
        return wall * 1e3, first * 1e3
    finally:
        shutil.rmtree(root)


def _workload(implementation: str, params: dict[str, Any]) -> Samples:
    samples: Samples = {}
    for name, tree in (("trivial", _trivial_tree), ("suite", _suite_tree)):
        wall, first = _run(implementation, tree, params)
        samples[f"{name}_wall"] = [wall]
        samples[f"{name}_first"] = [first]
    return samples


def run_execnet(params: dict[str, Any]) -> Samples:
    """C{pytest -n 4}: pytest-xdist on execnet."""
    return _workload(EXECNET, params)


def run_txexecnet(params: dict[str, Any]) -> Samples:
    """C{pytest -p txexecnet.xdist -n 4}: pytest-xdist on txexecnet.compat."""
    return _workload(TXEXECNET, params)


def _unavailable() -> str | None:
    import importlib.util

    for name in ("xdist", "execnet"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
    return None


register(
    Metric(
        name="xdist",
        title="pytest -n 4 (pytest-xdist)",
        measures=(
            Measure("trivial_wall", "2,000 trivial tests, wall time", "ms", LOWER),
            Measure("trivial_first", "2,000 trivial tests, to first test", "ms", LOWER),
            Measure("suite_wall", "3 txexecnet test modules, wall time", "ms", LOWER),
            Measure("suite_first", "3 txexecnet test modules, to first test", "ms", LOWER),
        ),
        workloads={EXECNET: run_execnet, TXEXECNET: run_txexecnet},
        params=_params,
        repetitions=repeat(3, 1),
        available=_unavailable,
        fixture=_count_suite,
    )
)

"""
Run the upstream test suites of execnet 2.1.2 and pytest-xdist 3.8.0
against the real packages and against txexecnet.compat.

    .venv/bin/python upstream/run.py execnet real
    .venv/bin/python upstream/run.py xdist compat
    .venv/bin/python upstream/run.py all            # both suites, real then compat
    .venv/bin/python upstream/run.py execnet real -- -k test_channel -x
    .venv/bin/python upstream/run.py all --check    # status 1 below the required share

A compat run reports the share of the tests passing on the real packages
that pass on compat, and whether it reaches the share required of it (90%
for execnet's suite, 95% for pytest-xdist's).

Everything it fetches or makes lives in a cache outside the repository
(C{$TXEXECNET_UPSTREAM_CACHE}, default C{~/.cache/txexecnet-upstream}):

* C{venv-pytest-8.4.2/}: a virtualenv of its own with this checkout
  (editable), its C{upstream} extra (execnet, pytest-xdist, pytest-timeout,
  filelock) and pytest 8.4.2 (C{$TXEXECNET_UPSTREAM_PYTEST} picks another),
  the rest pinned to the versions in the running environment; made again
  when pyproject.toml changes.
* C{sdists/}: the source distributions from PyPI (C{pip download}), checked
  against the pinned sha256; C{src/}: unpacked afresh for every run, with
  execnet's C{testing/conftest.py} replaced by C{upstream/execnet_conftest.py}.
* C{results/}: per run a junit XML, a log and a JSON of outcomes; for compat
  runs C{SUITE-regressions.txt}, the tests that pass on real but not on compat.

Compat mode puts C{upstream/shim} on PYTHONPATH, whose C{sitecustomize}
calls C{txexecnet.compat.install()} in every Python process of the run
(C{--via plugin} instead loads C{-p txexecnet_upstream_compat} for execnet,
C{-p txexecnet.xdist} and C{PYTEST_PLUGINS=txexecnet.xdist} for xdist).  It
refuses to start, with status 2, when txexecnet.compat cannot be imported.

The harness becomes a child subreaper, so whatever a run leaves behind (a
gateway, the suite's sshd) is re-parented to it, reported and killed.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

# What the project's tests know of processes: our children, zombies too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from processes import children  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(
    os.environ.get("TXEXECNET_UPSTREAM_CACHE", Path.home() / ".cache" / "txexecnet-upstream")
)
#: The pytest the suites run under: pytest-xdist 3.8.0 predates pytest 9, and
#: 7 of its tests fail under 9.x on the real packages (Parser._getparser is
#: gone, loadgroup and crash-report output changed).  8.4.2 is the last 8.x.
PYTEST = os.environ.get("TXEXECNET_UPSTREAM_PYTEST", "8.4.2")
VENV = CACHE / f"venv-pytest-{PYTEST}"
VPYTHON = VENV / "bin" / "python"

#: Seconds one test may take (pytest-timeout).
TEST_TIMEOUT = 60


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    dist: str
    version: str
    sdist: str
    sha256: str
    #: Seconds the whole run may take before it is killed.
    budget: int
    #: The share of the tests passing on the real packages that must pass
    #: on compat.
    required: float
    #: Our replacement for testing/conftest.py, if any.
    conftest: str | None = None

    @property
    def root(self) -> Path:
        return CACHE / "src" / self.sdist.removesuffix(".tar.gz")


SUITES = {
    "execnet": Suite(
        "execnet",
        "execnet",
        "2.1.2",
        "execnet-2.1.2.tar.gz",
        "63d83bfdd9a23e35b9c6a3261412324f964c2ec8dcd8d3c6916ee9373e0befcd",
        budget=1200,
        required=0.90,
        conftest="execnet_conftest.py",
    ),
    "xdist": Suite(
        "xdist",
        "pytest-xdist",
        "3.8.0",
        "pytest_xdist-3.8.0.tar.gz",
        "7e578125ec9bc6050861aa93f2d59f1d8d085595d6551c2c90b6f4fad8d3a9f1",
        budget=1800,
        required=0.95,
    ),
}

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")


def say(*parts: object) -> None:
    print(*parts, flush=True)


def quietly(args: list[str], what: str) -> None:
    """Run a setup command; show its output only if it fails."""
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{what} failed (status {done.returncode}): {' '.join(args)}")


# -- the harness's virtualenv ------------------------------------------------


def ensureVenv() -> None:
    """Make (or remake, when pyproject.toml changed) the harness virtualenv."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    if stamp.exists() and VPYTHON.exists():
        return
    say(f"making the harness virtualenv {VENV} ...")
    if VENV.exists():
        shutil.rmtree(VENV)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    # The versions this environment has of what both need (pytest, Twisted,
    # ...), so that real and compat runs match the project's own.
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    constraints = CACHE / "constraints.txt"
    constraints.write_text(
        "".join(
            line + "\n"
            for line in freeze.splitlines()
            if "==" in line and "@" not in line and not line.lower().startswith("pytest==")
        )
    )
    quietly(
        [
            str(VPYTHON),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(constraints),
            "-e",
            f"{REPO}[upstream]",
            f"pytest=={PYTEST}",
        ],
        "installing the harness virtualenv",
    )
    stamp.touch()


# -- the upstream source -----------------------------------------------------


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(suite: Suite) -> Path:
    """The suite's sdist in the cache, downloaded from PyPI if need be, checked."""
    sdists = CACHE / "sdists"
    path = sdists / suite.sdist
    if not (path.exists() and sha256(path) == suite.sha256):
        sdists.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        say(f"downloading {suite.dist}=={suite.version} ...")
        quietly(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{suite.dist}=={suite.version}",
                "-d",
                str(sdists),
            ],
            f"downloading {suite.sdist}",
        )
        got = sha256(path)
        if got != suite.sha256:
            path.unlink()
            raise SystemExit(f"{suite.sdist}: sha256 {got}, expected {suite.sha256}")
    return path


def unpack(suite: Suite) -> Path:
    """A fresh copy of the sdist under CACHE/src, with our conftest if any."""
    archive = fetch(suite)
    root = suite.root
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(root.parent, filter="data")
    if suite.conftest:
        shutil.copyfile(HERE / suite.conftest, root / "testing" / "conftest.py")
    return root


# -- processes ---------------------------------------------------------------


def becomeSubreaper() -> None:
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reapLeftovers() -> list[str]:
    """Kill (by pid) and reap whatever a run left behind; say what it was."""

    def reap() -> dict[int, str]:
        living = {}
        for pid, what in children().items():
            if what.startswith("[Z]"):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            else:
                living[pid] = what
        return living

    deadline = time.monotonic() + 5  # for processes on their way out
    left = reap()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = reap()
    leaked = [f"{pid} {what}" for pid, what in left.items()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = reap()
    return leaked


# -- running a suite ---------------------------------------------------------


def environment(suite: Suite, mode: str, via: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "TXEXECNET_UPSTREAM_"))
        # execnet's test_dont_write_bytecode expects bytecode to be written
        and k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONSTARTUP")
    }
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env["TXEXECNET_UPSTREAM_REPO"] = str(REPO)
    if suite.name == "execnet":
        env["PYTHONWARNDEFAULTENCODING"] = "1"  # as execnet's tox.ini (xdist's does not)
    if mode == "compat":
        env["PYTHONPATH"] = str(HERE / "shim")
        if via == "site":
            env["TXEXECNET_UPSTREAM_COMPAT"] = "site"
        elif suite.name == "xdist":
            env["PYTEST_PLUGINS"] = "txexecnet.xdist"  # pytester keeps it for inner runs
    return env


def runProbe(env: dict[str, str], suite: Suite, code: str) -> subprocess.CompletedProcess[str]:
    """Run C{code} with the suites' interpreter, where and as a run of C{suite} would."""
    return subprocess.run(
        [str(VPYTHON), "-c", code],
        check=False,
        cwd=suite.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def checkCompat(env: dict[str, str], suite: Suite, via: str) -> str | None:
    """Why compat runs cannot start, or None if `import execnet` is txexecnet's."""
    if via == "site":
        code = "import execnet; print(execnet.__name__, execnet.__file__)"
    else:
        plugin = "txexecnet.xdist" if suite.name == "xdist" else "txexecnet_upstream_compat"
        code = f"import {plugin}; import execnet; print(execnet.__name__, execnet.__file__)"
    probe = runProbe(env, suite, code)
    if probe.returncode != 0:
        return (
            "txexecnet.compat is not usable (compat runs need txexecnet/compat/ with install()):\n"
            + (probe.stderr.strip() or probe.stdout.strip())
        )
    where = probe.stdout.split(None, 1)[-1].strip()
    if not where.startswith(str(REPO / "txexecnet")):
        return f"'import execnet' still gives {probe.stdout.strip()}, not txexecnet.compat"
    return None


def checkReal(env: dict[str, str], suite: Suite) -> str | None:
    """Why real runs cannot start, or None if they get the real execnet only."""
    code = (
        "import execnet, importlib.metadata as m; print(execnet.__file__);"
        " print(*[e.value for e in m.entry_points(group='pytest11')"
        " if e.value.startswith('txexecnet')])"
    )
    probe = runProbe(env, suite, code)
    if probe.returncode != 0:
        return f"'import execnet' fails:\n{probe.stderr.strip()}"
    where, _, plugins = probe.stdout.partition("\n")
    if where.startswith(str(REPO)):
        return f"'import execnet' gives {where}, not the real execnet"
    if plugins.strip():
        # pytester's inner runs would load them too: there is no keeping them out.
        return f"txexecnet registers pytest plugins that autoload: {plugins.strip()}"
    return None


def pytestArgs(suite: Suite, mode: str, via: str, results: Path, extra: list[str]) -> list[str]:
    args = [
        str(VPYTHON),
        "-m",
        "pytest",
        "testing",
        "-p",
        "no:cacheprovider",
        f"--timeout={TEST_TIMEOUT}",
        f"--junitxml={results / f'{suite.name}-{mode}.xml'}",
        f"--basetemp={CACHE / 'tmp' / f'{suite.name}-{mode}'}",
        # A module that fails to import (a name compat lacks) costs its own
        # tests only.
        "--continue-on-collection-errors",
        "-o",
        "junit_family=xunit1",
        "-rfEs",
    ]
    if mode == "compat" and via == "plugin":
        plugin = "txexecnet.xdist" if suite.name == "xdist" else "txexecnet_upstream_compat"
        args[3:3] = ["-p", plugin]
    return args + extra


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> the worst outcome junit XML gives it."""
    rank = {o: i for i, o in enumerate(("passed", "xfailed", "skipped", "failed", "error"))}
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "error"
            elif child.tag == "skipped":
                xfail = (child.get("type") or "") == "pytest.xfail"
                outcome = "xfailed" if xfail else "skipped"
        if test not in found or rank[outcome] > rank[found[test]]:
            found[test] = outcome
    return found


def pytestSummary(log: Path) -> str | None:
    """pytest's own closing line ("= 3 failed, 500 passed, ... in 40.2s ="), if any."""
    closing = None
    with log.open(errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("=") and line.endswith("=") and " in " in line:
                closing = line.strip("= ")
    return closing


def counts(found: dict[str, str]) -> dict[str, int]:
    return {o: sum(1 for v in found.values() if v == o) for o in OUTCOMES}


def describe(c: dict[str, int]) -> str:
    return ", ".join(f"{c[o]} {o}" for o in OUTCOMES)


def stop(proc: subprocess.Popen[bytes]) -> int:
    """End a pytest run and its process group: SIGINT (junit XML is still
    written), then SIGTERM, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def runSuite(
    suite: Suite, mode: str, via: str, extra: list[str], results: Path, check: bool = False
) -> int:
    root = unpack(suite)
    env = environment(suite, mode, via)
    why = checkCompat(env, suite, via) if mode == "compat" else checkReal(env, suite)
    if why:
        say(f"{suite.name} {mode}: NOT RUN: {why}")
        return 2
    junit = results / f"{suite.name}-{mode}.xml"
    junit.unlink(missing_ok=True)
    (CACHE / "tmp").mkdir(exist_ok=True)  # pytest makes --basetemp, not its parent
    log = results / f"{suite.name}-{mode}.log"
    args = pytestArgs(suite, mode, via, results, extra)
    say(f"{suite.name} {mode}: running in {root} (log: {log})")
    say("  " + " ".join(args))
    started = time.monotonic()
    timedOut = False
    with log.open("w") as out:
        proc = subprocess.Popen(
            args,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = proc.wait(timeout=suite.budget)
        except subprocess.TimeoutExpired:
            timedOut = True
            status = stop(proc)
        except KeyboardInterrupt:
            stop(proc)
            reapLeftovers()
            raise
    elapsed = time.monotonic() - started
    leaked = reapLeftovers()
    if timedOut:
        say(f"  KILLED after the {suite.budget} s budget")
    if leaked:
        say(f"  {len(leaked)} process(es) left behind, killed:")
        for line in leaked:
            say(f"    {line}")
    if not junit.exists():
        say(f"{suite.name} {mode}: no junit XML (status {status}); see {log}")
        return 1
    found = outcomes(junit)
    c = counts(found)
    summary = {
        "suite": suite.name,
        "mode": mode,
        "via": via if mode == "compat" else None,
        "version": suite.version,
        "pytest": PYTEST,
        "status": status,
        "seconds": round(elapsed, 1),
        "timed_out": timedOut,
        "leaked": leaked,
        "counts": c,
        "extra_args": extra,
        "outcomes": found,
    }
    (results / f"{suite.name}-{mode}.json").write_text(json.dumps(summary, indent=1) + "\n")
    say(f"{suite.name} {mode}: {describe(c)} in {elapsed:.1f} s (pytest status {status})")
    if closing := pytestSummary(log):
        say(f"  pytest: {closing}")
    if mode == "compat" and not compare(suite, found, results) and check:
        return 1
    return 0


def compare(suite: Suite, compat: dict[str, str], results: Path) -> bool:
    """Report how compat did against the real packages; whether it met the requirement."""
    realPath = results / f"{suite.name}-real.json"
    if not realPath.exists():
        say(f"  no real baseline in {realPath}: run '{suite.name} real' for the ratio")
        return False
    real = json.loads(realPath.read_text())
    if real.get("pytest") != PYTEST or real.get("extra_args"):
        say(
            f"  note: the real baseline ran under pytest {real.get('pytest')}"
            f" with extra arguments {real.get('extra_args')}"
        )
    realPassed = {t for t, o in real["outcomes"].items() if o == "passed"}
    compatPassed = {t for t, o in compat.items() if o == "passed"}
    regressions = sorted(realPassed - compatPassed)
    ratio = len(compatPassed & realPassed) / len(realPassed) if realPassed else 0.0
    path = results / f"{suite.name}-regressions.txt"
    path.write_text("".join(f"{t}\t{compat.get(t, 'not run')}\n" for t in regressions))
    say(
        f"  compat passes {len(compatPassed & realPassed)} of the {len(realPassed)} tests"
        f" real passes: {ratio:.1%} ({len(compatPassed)} passed in all);"
        f" {len(regressions)} pass on real only, listed in {path}"
    )
    met = ratio >= suite.required
    say(f"  required: {suite.required:.0%}, {'met' if met else 'NOT met'}")
    return met


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=[*SUITES, "all"])
    parser.add_argument("mode", nargs="?", choices=["real", "compat", "both"], default=None)
    parser.add_argument(
        "--via",
        choices=["site", "plugin"],
        default="site",
        help="how compat runs install txexecnet.compat (default: sitecustomize)",
    )
    parser.add_argument("--results", type=Path, default=CACHE / "results")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 if compat passes less than the required share",
    )
    opts = parser.parse_args(argv)
    if opts.suite == "all":
        suites, modes = list(SUITES.values()), ["real", "compat"]
        if opts.mode not in (None, "both"):
            modes = [opts.mode]
    else:
        if opts.mode is None:
            parser.error("give a mode: real, compat or both")
        suites = [SUITES[opts.suite]]
        modes = ["real", "compat"] if opts.mode == "both" else [opts.mode]
    becomeSubreaper()
    CACHE.mkdir(parents=True, exist_ok=True)
    opts.results.mkdir(parents=True, exist_ok=True)
    ensureVenv()
    worst = 0
    for suite in suites:
        for mode in modes:
            worst = max(worst, runSuite(suite, mode, opts.via, extra, opts.results, opts.check))
    return worst


if __name__ == "__main__":
    sys.exit(main())

"""
Real socket servers for the tests: C{twistd execnet-server} on a free
loopback port, read through its log.

A daemon that lives as long as one test runs in the foreground
(C{twistd -n}) as a child of the test process; one shared by many tests
(session or module scope) is daemonised by twistd itself (pidfile,
logfile), so that it is not counted as a child process some test leaked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from twisted.internet import defer, task

from processes import SHARED, alive, process_children

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")

#: Seconds any wait on a daemon may take before the test fails.
WAIT = 15.0


class Daemon:
    """
    One C{twistd -n execnet-server} process.

    @ivar port: the TCP port of its first listener (it is started with
        C{-p 0} unless told otherwise).
    """

    def __init__(self, args: list[str], workdir: str, listeners: int = 1) -> None:
        self.args = args
        self.logPath = os.path.join(workdir, "twistd.log")
        self.pidPath = os.path.join(workdir, "twistd.pid")
        self.listeners = listeners
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self.port: int | None = None
        self.addresses: list[str] = []

    def start(self, daemonize: bool = False) -> Daemon:
        """Start it; return once it listens on all its endpoints."""
        if daemonize:
            launcher = subprocess.run(
                [
                    TWISTD,
                    f"--pidfile={self.pidPath}",
                    f"--logfile={self.logPath}",
                    "execnet-server",
                    *self.args,
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=WAIT,
            )
            if launcher.returncode != 0:
                raise RuntimeError(f"twistd failed: {launcher.stdout!r} {launcher.stderr!r}")
            with open(self.pidPath) as f:
                self.pid = int(f.read())
        else:
            with open(self.logPath, "wb") as log:
                self.proc = subprocess.Popen(
                    [TWISTD, "-n", "--pidfile=", "execnet-server", *self.args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            self.pid = self.proc.pid
        deadline = time.monotonic() + WAIT
        while len(self.addresses) < self.listeners:
            if not alive(self.pid):
                raise RuntimeError(f"execnet-server exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"execnet-server did not start listening:\n{self.log()}")
            time.sleep(0.02)
            self.addresses = re.findall(r"listening on (\S+)", self.log())
        match = re.search(r"listening on tcp:127\.0\.0\.1:(\d+)", self.log())
        if match:
            self.port = int(match.group(1))
        return self

    def log(self) -> str:
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def spec(self, extra: str = "") -> str:
        return f"socket=127.0.0.1:{self.port}{extra}"

    def children(self) -> set[int]:
        return process_children(self.pid)

    def logged(self, pattern: str) -> bool:
        return re.search(pattern, self.log()) is not None

    def wait_for_log(self, pattern: str, timeout: float = WAIT) -> defer.Deferred[str]:
        """Fire with the log once C{pattern} is in it; fail after C{timeout} s."""
        return _poll(
            lambda: self.log() if self.logged(pattern) else None,
            timeout,
            lambda: f"{pattern!r} not logged:\n{self.log()}",
        )

    def wait_for_children(self, count: int, timeout: float = WAIT) -> defer.Deferred[set[int]]:
        """Fire once the daemon has exactly C{count} child processes."""
        return _poll(
            lambda: (lambda c: c if len(c) == count else None)(self.children()),
            timeout,
            lambda: f"daemon children {self.children()}, wanted {count}",
        )

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return alive(self.pid)

    def stop(self) -> None:
        """SIGTERM it (SIGKILL if that takes too long) and wait until it is gone."""
        if not self.pid or not self.running():
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            wait_until(lambda: not self.running(), what="execnet-server to stop")
        except AssertionError:
            os.kill(self.pid, signal.SIGKILL)
            wait_until(lambda: not self.running(), what="execnet-server to die")
        if self.proc is not None:
            self.proc.wait(WAIT)


def _poll(check, timeout, describe) -> defer.Deferred:
    """Call C{check} every 20 ms until it returns something but None."""
    from twisted.internet import reactor

    async def loop():
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(describe())
            await task.deferLater(reactor, 0.02, lambda: None)

    return defer.ensureDeferred(loop())


def wait_until(check, timeout: float = WAIT, what: str = "condition") -> None:
    """Block (outside the reactor) until C{check()} is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def start_daemon(tmp_path_factory):
    """
    A function starting an execnet-server with extra arguments (C{-p 0}
    unless they say otherwise); every daemon it started is stopped after
    the test.
    """
    started: list[Daemon] = []

    def start(*args: str, listeners: int = 1, daemonize: bool = False) -> Daemon:
        daemon = Daemon(_withPort(args), str(tmp_path_factory.mktemp("server")), listeners)
        started.append(daemon)
        return daemon.start(daemonize)

    yield start
    for daemon in started:
        daemon.stop()


def _withPort(args) -> list[str]:
    args = list(args)
    if "-p" not in args and "--listen" not in args and "--tls" not in args:
        args = ["-p", "0", *args]
    return args


def shared_daemon(tmp_path_factory, *args: str):
    """Start a daemonised execnet-server for a fixture of a wider scope."""
    daemon = Daemon(_withPort(args), str(tmp_path_factory.mktemp("server")))
    daemon.start(daemonize=True)
    SHARED.add(daemon.pid)
    return daemon


@pytest.fixture(scope="session")
def execnet_server(tmp_path_factory):
    """An execnet-server without authentication, shared by the whole session."""
    daemon = shared_daemon(tmp_path_factory, "--max-connections", "200")
    yield daemon
    daemon.stop()

"""
Shared fixtures: gateways over every transport, and the check that no test
leaves a child process behind.
"""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import defer, task

from processes import SHARED, children

#: Fixture modules: the socket server daemons (tests/fixtures_server.py) and
#: the OpenSSH server (tests/sshd.py).
pytest_plugins = ["fixtures_server", "sshd"]

#: How each transport name becomes a spec string in the parametrized channel
#: tests.  A factory takes the pytest request, so transports whose spec needs
#: a running server (ssh, socket) can ask for that server's fixture.
SPEC_FACTORIES = {
    "popen": lambda request: "popen",
    "thread": lambda request: "thread",
    "socket": lambda request: request.getfixturevalue("execnet_server").spec(),
    "ssh": lambda request: request.getfixturevalue("sshd").spec(),
    "via": lambda request: f"popen//via={request.getfixturevalue('via_parent').id}",
}


def pytest_configure(config):
    """
    Make this process a child subreaper, so that processes orphaned by a
    test (a gateway's grandchild whose parent died) are re-parented here,
    where the leak check sees them, instead of escaping to init.
    """
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def pytest_unconfigure(config):
    """Reap what stopped daemons and orphans left, so no zombie outlives us."""
    _reapStrangers(children())


def _reapStrangers(found: dict[int, str]) -> None:
    """
    Reap zombies no one else will: orphans re-parented to us, and daemons a
    fixture stopped.  Twisted reaps its own children; those are left alone.
    """
    from twisted.internet.process import reapProcessHandlers

    for pid, what in found.items():
        if what.startswith("[Z]") and pid not in reapProcessHandlers:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def sleep(seconds: float) -> defer.Deferred[None]:
    from twisted.internet import reactor

    return task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture(autouse=True)
def no_leaked_processes():
    """
    Fail a test that leaves a process behind: a child, an orphaned
    grandchild (see L{pytest_configure}), or a zombie nobody reaps.
    """
    before = set(children())
    yield
    leaked: dict[int, str] = {}
    for _ in range(100):
        leaked = {
            pid: what for pid, what in children().items() if pid not in before and pid not in SHARED
        }
        _reapStrangers(children())
        if not leaked:
            return
        pytest_twisted.blockon(sleep(0.05))
    pytest.fail(f"test left child processes behind: {leaked}")


@pytest.fixture(params=sorted(SPEC_FACTORIES))
def gateway_spec(request) -> str:
    """A spec string for each transport the channel tests run against."""
    return SPEC_FACTORIES[request.param](request)


@pytest_twisted.async_yield_fixture()
async def gw(gateway_spec):
    """A ready gateway over each transport, exited after the test."""
    import txexecnet

    gateway = await txexecnet.makegateway(gateway_spec)
    yield gateway
    await gateway.exit(timeout=3)


@pytest_twisted.async_yield_fixture()
async def via_parent():
    """A popen gateway in the default group, for via= gateways to start through."""
    import txexecnet

    gateway = await txexecnet.makegateway("popen//id=via-parent")
    yield gateway
    await gateway.exit(timeout=3)


@pytest_twisted.async_yield_fixture()
async def popen_gw():
    """A ready popen gateway, exited after the test."""
    import txexecnet

    gateway = await txexecnet.makegateway("popen")
    yield gateway
    await gateway.exit(timeout=3)

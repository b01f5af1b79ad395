"""
Shared fixtures: gateways over every transport, and the check that no test
leaves a child process behind.
"""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import defer, task

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
}


def children() -> dict[int, str]:
    """This process's child processes: pid -> state and command line."""
    me = str(os.getpid())
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me:
            found[int(entry)] = f"[{fields[0]}] {cmdline[:100]}"
    return found


def sleep(seconds: float) -> defer.Deferred[None]:
    from twisted.internet import reactor

    return task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture(autouse=True)
def no_leaked_processes():
    """Fail a test that leaves a child process (or an unreaped zombie) behind."""
    before = set(children())
    yield
    leaked: dict[int, str] = {}
    for _ in range(100):
        leaked = {pid: what for pid, what in children().items() if pid not in before}
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
async def popen_gw():
    """A ready popen gateway, exited after the test."""
    import txexecnet

    gateway = await txexecnet.makegateway("popen")
    yield gateway
    await gateway.exit(timeout=3)

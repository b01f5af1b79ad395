"""Gateways started through another gateway (spec via=ID)."""

import os
import signal

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

import txexecnet
from conftest import sleep
from txexecnet import GatewayClosed, GatewayStartError

T = 10


@pytest_twisted.async_yield_fixture()
async def group():
    g = txexecnet.Group()
    await g.makegateway("popen//id=parent")
    yield g
    await g.terminate(timeout=3)


@pytest_twisted.ensureDeferred
async def test_child_of_the_parent_gateway(group):
    child = await group.makegateway("popen//via=parent//python=/usr/bin/python3//id=child")
    ch = child.remote_exec("import os, sys\nchannel.send((os.getppid(), sys.executable))")
    assert await ch.receive(T) == (group["parent"].remoteinfo["pid"], "/usr/bin/python3")
    assert child.remoteinfo["pid"] != group["parent"].remoteinfo["pid"]

    ch = child.remote_exec("for x in channel:\n    channel.send(x)")
    big = os.urandom(3 * 1024 * 1024)
    ch.send(big)
    assert await ch.receive(T) == big
    ch.close()

    pid = child.remoteinfo["pid"]
    await child.exit()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest_twisted.ensureDeferred
async def test_env_and_dont_write_bytecode_apply_to_the_child(group, tmp_path):
    (tmp_path / "via_test_module.py").write_text("VALUE = 'via'\n")
    child = await group.makegateway(
        f"popen//via=parent//env:PYTHONPATH={tmp_path}//dont_write_bytecode"
    )
    ch = child.remote_exec(
        "import sys, via_test_module\nchannel.send((via_test_module.VALUE, sys.flags.dont_write_bytecode))"
    )
    assert await ch.receive(T) == ("via", 1)


@pytest_twisted.ensureDeferred
async def test_parent_death_closes_the_child_gateway(group):
    child = await group.makegateway("popen//via=parent")
    pending = child.remote_exec("channel.receive()").receive()
    os.kill(group["parent"].remoteinfo["pid"], signal.SIGKILL)
    with pytest.raises(GatewayClosed, match="relay through gateway parent ended"):
        await pending
    await child.whenTerminated()


@pytest_twisted.ensureDeferred
async def test_exit_kills_a_child_that_ignores_it(group):
    child = await group.makegateway("popen//via=parent")
    ch = child.remote_exec("import time\nchannel.send(1)\nwhile True:\n    time.sleep(0.05)")
    assert await ch.receive(T) == 1
    await child.exit(timeout=0.5)
    assert child.isTerminated()
    probe = group["parent"].remote_exec(
        "import os\ntry:\n    os.waitpid(%d, 0)\nexcept ChildProcessError:\n    pass\n"
        "try:\n    os.kill(%d, 0)\n    channel.send('alive')\nexcept ProcessLookupError:\n"
        "    channel.send('gone')" % (child.remoteinfo["pid"], child.remoteinfo["pid"])
    )
    assert await probe.receive(T) == "gone"


@pytest_twisted.ensureDeferred
async def test_missing_python_quotes_why(group):
    with pytest.raises(GatewayStartError, match="cannot start /no/such/python"):
        await group.makegateway("popen//via=parent//python=/no/such/python")


def test_unknown_via_id(group):
    with pytest.raises(ValueError, match="no gateway with that id"):
        group.makegateway("popen//via=nosuch")


def rss_of(pid: int) -> int:
    """The resident memory of process C{pid}, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def fired(d: defer.Deferred, seconds: float) -> bool:
    """Whether C{d} fires within C{seconds} (it is not cancelled)."""
    done = defer.Deferred()
    d.addBoth(lambda result: done.called or done.callback(True) or result)
    reactor.callLater(seconds, lambda: done.called or done.callback(False))
    return await done


@pytest_twisted.ensureDeferred
async def test_a_stopped_child_holds_back_the_sender_not_the_parent_memory(group):
    # The relay in the parent interpreter must not queue what the child
    # cannot take yet: the sender waits, and the parent's memory stays flat.
    child = await group.makegateway("popen//via=parent")
    ch = child.remote_exec(
        "total = 0\nfor x in iter(channel.receive, None):\n    total += len(x)\nchannel.send(total)"
    )
    parent = group["parent"].remoteinfo["pid"]
    before = rss_of(parent)
    os.kill(child.remoteinfo["pid"], signal.SIGSTOP)
    chunk = b"x" * (1024 * 1024)
    sent = 0
    try:
        while sent < 64:
            sent += 1
            if not await fired(ch.send(chunk), 0.5):
                break
        await sleep(0.5)  # time for the parent to read what it was sent
        grown = rss_of(parent) - before
    finally:
        os.kill(child.remoteinfo["pid"], signal.SIGCONT)
    assert grown < 16 * 1024 * 1024, f"the parent grew by {grown / 2**20:.1f} MiB"
    assert sent < 32, "every send went through to a stopped child"
    for _ in range(sent, 64):
        await ch.send(chunk)
    ch.send(None)
    assert await ch.receive(T) == 64 * len(chunk)

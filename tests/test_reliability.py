"""
Reliability: no remote outlives its client, however the client ends and
whatever the remote code is doing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import pytest_twisted

import txexecnet
from fixtures_server import wait_until
from processes import alive

#: What remote code may be doing when its client goes: sleeping, spinning,
#: blocked reading a pipe nobody writes, blocked in a C call.
BUSY_CODE = {
    "sleeping": "import time\ntime.sleep(1000)",
    "spinning": "while True:\n    pass",
    "reading": "import os\nr, w = os.pipe()\nos.read(r, 1)",
    "in a C call": "import select\nselect.select([], [], [], 1000)",
}

#: Seconds within which a remote must be gone once its client is.
ORPHAN_DEADLINE = 10


def start_client(body: str) -> tuple[subprocess.Popen, list[int]]:
    """
    Start a client script running C{body}, which prints the pids of its
    remotes, one a line, then C{ready}; return it and those pids.
    """
    client = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = client.stdout.readline()
        if not line or line.strip() == "ready":
            break
        pids.append(int(line))
    if not pids:
        client.kill()
        raise AssertionError(f"the client started no remote: {client.communicate()[1]}")
    return client, pids


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Wait until none of C{pids} runs, for at most C{seconds}; return those still running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def blocking_client(
    codes: list[str], then: str = "import time\ntime.sleep(1000)", spec: str = "popen"
) -> str:
    return f"""
        from txexecnet import blocking
        channels = []
        for code in {codes!r}:
            gw = blocking.makegateway({spec!r})
            channels.append(gw.remote_exec(code))
            print(gw.remoteinfo["pid"], flush=True)
        print("ready", flush=True)
{textwrap.indent(then, " " * 8)}
        """


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("execmodel", ["thread", "main_thread_only"])
def test_no_remote_outlives_a_killed_client_whatever_its_code_does(signum, execmodel):
    spec = f"popen//execmodel={execmodel}"
    client, pids = start_client(blocking_client(list(BUSY_CODE.values()), spec=spec))
    assert all(alive(pid) for pid in pids)
    client.send_signal(signum)
    client.wait(10)
    client.stdout.close()
    client.stderr.close()
    left = wait_gone(pids, ORPHAN_DEADLINE)
    kinds = dict(zip(pids, BUSY_CODE))
    assert left == [], f"still running: {[kinds[pid] for pid in left]}"


def test_no_remote_outlives_a_killed_twisted_client():
    client, pids = start_client(
        f"""
        from twisted.internet import defer, task
        import txexecnet

        async def main(reactor):
            for code in {list(BUSY_CODE.values())!r}:
                gw = await txexecnet.makegateway("popen", reactor)
                gw.remote_exec(code)
                print(gw.remoteinfo["pid"], flush=True)
            print("ready", flush=True)
            await defer.Deferred()

        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
        """
    )
    client.kill()
    client.wait(10)
    client.stdout.close()
    client.stderr.close()
    assert wait_gone(pids, ORPHAN_DEADLINE) == []


def test_a_forked_copy_of_the_client_does_not_keep_the_remote_alive():
    # A fork (multiprocessing does this) inherits the pipe to the remote, so
    # the remote sees no end of input when the client dies: the parent-death
    # signal ends it.
    client, pids = start_client(
        blocking_client(
            [BUSY_CODE["sleeping"]],
            then="import os, time\nif os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\n"
            "time.sleep(1000)",
        )
    )
    forked = [pid for pid in _children_of(client.pid) if pid not in pids]
    try:
        client.kill()
        client.wait(10)
        assert wait_gone(pids, ORPHAN_DEADLINE) == []
    finally:
        for pid in forked:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        client.stdout.close()
        client.stderr.close()


def _children_of(pid: int) -> list[int]:
    from processes import children

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = list(children(pid))
        if len(found) >= 2:  # the remote and the fork
            return found
        time.sleep(0.02)
    return list(children(pid))


def test_ctrl_c_in_a_blocking_receive_reaches_the_client_and_ends_the_remote():
    client, pids = start_client(
        blocking_client(
            [BUSY_CODE["sleeping"]],
            then="import time\ntry:\n    channels[0].receive()\nexcept KeyboardInterrupt:\n"
            "    print('interrupted', time.monotonic(), flush=True)",
        )
    )
    time.sleep(0.2)  # into the receive()
    sent = time.monotonic()
    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=30)
    assert out.split()[0] == "interrupted", err
    print(f"Ctrl-C reached the client after {float(out.split()[1]) - sent:.3f} s")
    assert client.returncode == 0, err
    assert wait_gone(pids, ORPHAN_DEADLINE) == []


def test_a_remote_whose_stream_ends_gives_its_code_a_grace_then_interrupts_it(tmp_path):
    # The remote's own shutdown: code that is still running when its input
    # ends gets KeyboardInterrupt, and its finally blocks run.
    marker = tmp_path / "unwound"
    code = (
        "import time\ntry:\n    channel.send('in')\n    while True:\n        time.sleep(0.01)\n"
        f"finally:\n    open({str(marker)!r}, 'w').write('yes')"
    )
    client, pids = start_client(
        blocking_client([code], then="channels[0].receive()\nimport time\ntime.sleep(1000)")
    )
    time.sleep(0.5)  # the remote code has said it runs, and is in its loop
    client.kill()
    client.wait(10)
    client.stdout.close()
    client.stderr.close()
    assert wait_gone(pids, ORPHAN_DEADLINE) == []
    assert marker.read_text() == "yes"


@pytest_twisted.ensureDeferred
async def test_a_frozen_remote_fails_every_wait_within_three_heartbeats():
    gw = await txexecnet.makegateway("popen//heartbeat=0.5")
    pid = gw.remoteinfo["pid"]
    waiting = gw.remote_exec("channel.receive()").receive()
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(txexecnet.GatewayClosed, match="3 heartbeats of 0.5 s"):
            await waiting
    finally:
        os.kill(pid, signal.SIGCONT)
    await gw.whenTerminated()


def test_a_frozen_client_is_given_up_by_its_remotes():
    client, pids = start_client(
        """
        from txexecnet import blocking
        gw = blocking.makegateway("popen//heartbeat=0.5")
        gw.remote_exec("import time\\ntime.sleep(1000)")
        print(gw.remoteinfo["pid"], flush=True)
        print("ready", flush=True)
        import time
        time.sleep(1000)
        """
    )
    try:
        client.send_signal(signal.SIGSTOP)
        assert wait_gone(pids, ORPHAN_DEADLINE) == []
    finally:
        client.kill()
        client.wait(10)
        client.stdout.close()
        client.stderr.close()


@pytest.mark.parametrize("execmodel", ["thread", "main_thread_only"])
def test_a_remote_sent_sigterm_while_its_parent_lives_ends_as_any_process_would(execmodel):
    from txexecnet import blocking

    gw = blocking.makegateway(f"popen//execmodel={execmodel}")
    pid = gw.remoteinfo["pid"]
    ch = gw.remote_exec(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(30)"
    )
    with pytest.raises(txexecnet.GatewayClosed) as info:
        ch.receive(timeout=10)
    assert "signal 15" in str(info.value) or "SIGTERM" in str(info.value), str(info.value)
    wait_until(lambda: not alive(pid), timeout=10, what="the remote to end")
    gw.exit()

"""
The blocking facade.

Scripts run in a fresh interpreter, where txexecnet.blocking starts its own
reactor thread, as a user's script would.  The in-process tests drive the
facade from a worker thread while pytest-twisted's reactor runs, which is
the "program already runs a reactor" case.
"""

import inspect
import os
import subprocess
import sys
import time
import traceback

import pytest
import pytest_twisted
from twisted.internet import threads

import txexecnet
from seed_examples import check_fileserver, run_script
from txexecnet import blocking

T = 10


def test_seed_first_example_as_a_script():
    out = run_script(
        """
        import os
        from txexecnet import blocking
        for gw in (blocking.PopenGateway(), blocking.makegateway("popen")):
            channel = gw.remote_exec('''
        import os
        channel.send(os.getpid())
        ''')
            remote_pid = channel.receive(timeout=10)
            print(remote_pid != os.getpid(), remote_pid == gw.remoteinfo["pid"])
            gw.exit()
        """
    )
    assert out.split() == ["True", "True", "True", "True"]


def test_seed_fileserver_as_a_script(tmp_path):
    check_fileserver(tmp_path, "blocking.PopenGateway()")


def test_script_exits_without_explicit_gateway_exit():
    # An unexited gateway must not hang interpreter exit nor outlive it.
    out = run_script(
        """
        from txexecnet import blocking
        gw = blocking.makegateway("popen")
        gw.remote_exec("import time\\ntime.sleep(0.2)")
        print(gw.remoteinfo["pid"])
        """
    )
    pid = int(out)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_blocking_calls_from_a_callback_raise_instead_of_hanging():
    # A channel callback runs in the facade's reactor thread: waiting there
    # would hang the program for ever, exit included.
    out = run_script(
        """
        import queue
        from txexecnet import blocking
        gw = blocking.makegateway("thread")
        ch = gw.remote_exec("channel.send(1)\\nchannel.receive()")
        said = queue.Queue()
        def callback(item):
            for call in (ch.receive, lambda: blocking.makegateway("popen"), gw.newchannel):
                try:
                    call()
                except blocking.ReactorThreadError as e:
                    said.put("refused: " + str(e))
        ch.setcallback(callback)
        for _ in range(3):
            print(said.get(timeout=10))
        ch.send("done")
        gw.exit()
        """
    )
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("refused: ") and "reactor thread" in line for line in lines)


def in_thread(f):
    """
    Run C{f} in a worker thread while pytest-twisted's reactor keeps running:
    block on it from a fixture, return it from a test.
    """
    return threads.deferToThread(f)


@pytest.fixture(params=["popen", "thread"])
def bgw(request):
    gw = pytest_twisted.blockon(in_thread(lambda: blocking.makegateway(request.param)))
    yield gw
    pytest_twisted.blockon(in_thread(lambda: gw.exit(timeout=3)))


def test_blocking_channel_semantics(bgw):
    def body():
        ch = bgw.remote_exec("for x in channel:\n    channel.send(x + 1)")
        for i in range(100):
            ch.send(i)
        assert [ch.receive(T) for _ in range(100)] == list(range(1, 101))
        with pytest.raises(txexecnet.TimeoutError):
            ch.receive(timeout=0.1)
        assert not ch.isclosed()
        ch.close()
        ch.waitclose(T)
        assert ch.isclosed()

        ch = bgw.remote_exec("raise KeyError('missing')")
        with pytest.raises(txexecnet.RemoteError, match="KeyError: 'missing'"):
            ch.receive(T)
        with pytest.raises(txexecnet.RemoteError):
            ch.waitclose(T)

        ch = bgw.remote_exec("for i in range(5):\n    channel.send(i)")
        assert list(ch) == [0, 1, 2, 3, 4]
        with pytest.raises(EOFError):
            ch.receive(T)

        with pytest.raises(txexecnet.DataFormatError):
            bgw.remote_exec("channel.receive()").send(object())

    return in_thread(body)


def test_blocking_setcallback_and_close_error(bgw):
    import queue

    def body():
        q = queue.Queue()
        ch = bgw.remote_exec("for i in range(3):\n    channel.send(i)")
        ch.setcallback(q.put, endmarker="end")
        assert [q.get(timeout=T) for _ in range(4)] == [0, 1, 2, "end"]
        with pytest.raises(OSError, match="callback"):
            ch.receive(T)

        out = bgw.newchannel()
        ch = bgw.remote_exec(
            "out = channel.receive()\ntry:\n    channel.receive()\nexcept Exception as e:\n"
            "    out.send(type(e).__name__ + ':' + str(e))"
        )
        ch.send(out)
        ch.close(error="told to stop")
        assert out.receive(T) == "RemoteError:told to stop"

    return in_thread(body)


def test_blocking_channels_travel_inside_items(bgw):
    def body():
        ch = bgw.remote_exec(
            "sub = channel.gateway.newchannel()\nchannel.send([sub])\nsub.send(sub.receive() * 2)"
        )
        (sub,) = ch.receive(T)
        assert isinstance(sub, blocking.Channel)
        sub.send(21)
        assert sub.receive(T) == 42

    return in_thread(body)


def test_blocking_send_backpressure_delivers_everything(bgw):
    def body():
        ch = bgw.remote_exec(
            "import time\ntotal = 0\nfor x in channel:\n    total += len(x)\n    time.sleep(0.001)\nchannel.send(total)"
        )
        chunk = b"x" * (1024 * 1024)
        for _ in range(40):
            ch.send(chunk)
        # Never more than the send limit (plus one item) handed over unsent.
        assert bgw.sendBacklog() <= blocking.SEND_BUFFER_LIMIT + len(chunk)
        ch.close()
        with pytest.raises(EOFError):
            while True:
                total = ch.receive(T)
                assert total == 40 * len(chunk)

    return in_thread(body)


def test_the_facade_then_task_react_in_one_script():
    # The facade runs on a reactor of its own: the program's global reactor
    # is still free to run, after the facade and beside it.
    out = run_script(
        """
        from twisted.internet import defer, task
        import txexecnet
        from txexecnet import blocking

        gw = blocking.makegateway("popen")
        print(gw.remote_exec("channel.send(6 * 7)").receive(timeout=10))

        async def main(reactor):
            twisted = await txexecnet.makegateway("popen", reactor)
            print(await twisted.remote_exec("channel.send(7 * 6)").receive(10))
            print(gw.remote_exec("channel.send('still here')").receive(timeout=10))
            await twisted.exit()

        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
        """
    )
    assert out.split("\n")[:3] == ["42", "42", "still here"]


def test_plain_tests_in_a_pytest_twisted_session_can_use_the_facade():
    # This very test: a plain function, in the thread pytest-twisted runs
    # its reactor in.
    gw = blocking.makegateway("popen")
    try:
        assert gw.remote_exec("channel.send(channel.receive() + 1)").send(1) is None
        assert gw.isTerminated() is False
    finally:
        gw.exit(timeout=3)
    assert gw.isTerminated()


def test_a_spec_typo_is_raised_from_the_callers_frame():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from txexecnet import blocking\nblocking.makegateway('popen//pyhton=x')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("ValueError: unknown key 'pyhton'")
    assert "failure.py" not in proc.stderr and "blockingCallFromThread" not in proc.stderr
    assert "The above exception" not in proc.stderr
    assert len(lines) <= 10, proc.stderr


def test_a_remote_error_is_raised_from_the_callers_frame(bgw):
    ch = bgw.remote_exec("raise KeyError('missing')")
    with pytest.raises(txexecnet.RemoteError) as info:
        ch.waitclose(T)
    files = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
    assert files[0] == __file__
    assert not any("twisted" in f or "eventloop" in f for f in files), files


def test_groups_and_the_default_group():
    group = blocking.Group()
    try:
        gw = group.makegateway("popen//id=first")
        second = group.makegateway("thread")
        assert group["first"] is gw and "first" in group and len(group) == 2
        assert list(group) == [gw, second] and group[1] is second
        assert second.id == "gw0"
        with pytest.raises(KeyError):
            group["nosuch"]
        ended = []
        assert group.allocate_id(txexecnet.XSpec("popen")) == "gw1"
    finally:
        group.terminate(timeout=3)
    assert len(group) == 0 and gw.isTerminated()
    gw.whenTerminated()  # fires at once: the gateway has ended
    ended.append(True)

    default = blocking.makegateway("thread//id=in-default")
    try:
        assert blocking.default_group["in-default"] is default
    finally:
        blocking.terminate(timeout=3)
    assert default.isTerminated()


def test_blocking_signatures_are_the_twisted_ones():
    for name in ("remote_exec", "exit", "whenTerminated", "newchannel"):
        twisted = inspect.signature(getattr(txexecnet.Gateway, name))
        derived = inspect.signature(getattr(blocking.Gateway, name))
        assert list(derived.parameters) == list(twisted.parameters), name
        assert "Deferred" not in str(derived.return_annotation)
    assert list(inspect.signature(blocking.Channel.waitclose).parameters) == ["self", "timeout"]
    assert "reactor" not in inspect.signature(blocking.SshGateway).parameters
    assert "group" in inspect.signature(blocking.SocketGateway).parameters
    assert "frameReceived" not in dir(blocking.Gateway)


def own_rss() -> int:
    with open("/proc/self/status") as f:
        return [int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")][0]


def test_the_blocking_facade_keeps_the_window_both_ways():
    MiB = 1024 * 1024
    gw = blocking.makegateway("popen//window=4M")
    try:
        # Remote -> local: a receiver that waits holds about a window; what
        # it receives opens the window again.
        before = own_rss()
        flood = gw.remote_exec("for i in range(64):\n    channel.send(bytes([i]) * (1024 * 1024))")
        time.sleep(1)
        held = own_rss() - before
        got = [flood.receive(T) for _ in range(64)]
        assert [item[0] for item in got] == list(range(64))
        # Local -> remote: the sends wait while the remote does not receive.
        sink = gw.remote_exec(
            "import time\ndef rss():\n    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmRSS:'):\n            return int(line.split()[1]) * 1024\n"
            "before = rss()\ntime.sleep(1)\ngrown = rss() - before\n"
            "n = sum(len(x) for x in iter(channel.receive, None))\nchannel.send((n, grown))"
        )
        for i in range(64):
            sink.send(bytes([i]) * MiB)
        sink.send(None)
        total, grown = sink.receive(T)
        assert total == 64 * MiB
        assert grown < 16 * MiB, f"the remote grew by {grown / MiB:.0f} MiB"
        assert held < 16 * MiB, f"the receiver grew by {held / MiB:.0f} MiB"
    finally:
        gw.exit(timeout=3)

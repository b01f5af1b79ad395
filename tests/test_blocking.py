"""
The blocking facade.

Scripts run in a fresh interpreter, where txexecnet.blocking starts its own
reactor thread, as a user's script would.  The in-process tests drive the
facade from a worker thread while pytest-twisted's reactor runs, which is
the "program already runs a reactor" case.
"""

import os

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


def test_calling_from_the_reactor_thread_raises_instead_of_deadlocking():
    out = run_script(
        """
        from txexecnet import blocking
        gw = blocking.makegateway("thread")
        from twisted.internet import reactor
        from twisted.internet.threads import blockingCallFromThread
        def inside():
            try:
                blocking.makegateway("popen")
            except blocking.ReactorThreadError as e:
                return "refused: " + str(e)
        print(blockingCallFromThread(reactor, inside))
        gw.exit()
        """
    )
    assert out.startswith("refused: txexecnet.blocking was called from the reactor thread")


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
        assert bgw._gateway.sendBacklog() <= blocking.SEND_BUFFER_LIMIT + len(chunk)
        ch.close()
        with pytest.raises(EOFError):
            while True:
                total = ch.receive(T)
                assert total == 40 * len(chunk)

    return in_thread(body)

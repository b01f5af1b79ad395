"""
Channel semantics through the Deferred API, against every transport
(the C{gw} fixture is parametrized over them in conftest.py).
"""

import builtins
import os

import pytest
import pytest_twisted
from twisted.internet import defer

import txexecnet
from txexecnet import RemoteError, TimeoutError

from conftest import sleep

T = 10  # seconds any single wait may take before the test fails


@pytest_twisted.ensureDeferred
async def test_seed_first_example(gw):
    ch = gw.remote_exec("import os\nchannel.send(os.getpid())")
    remote_pid = await ch.receive(T)
    assert isinstance(remote_pid, int)
    if gw.spec.type != "thread":
        assert remote_pid != os.getpid()
    assert gw.remoteinfo["pid"] == remote_pid


@pytest_twisted.ensureDeferred
async def test_echo_items_of_every_type(gw):
    ch = gw.remote_exec("for item in channel:\n    channel.send(item)")
    items = [
        None,
        True,
        2**100,
        -1.5,
        1j,
        "text",
        b"\x00\xff",
        bytearray(b"ba"),
        [1, [2]],
        (3, (4,)),
        {"k": {1: 2}},
        {5, 6},
        frozenset({7}),
    ]
    for item in items:
        ch.send(item)
        assert await ch.receive(T) == item
    ch.close()
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_fileserver(gw, tmp_path):
    names = []
    for i in range(3):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * (1000 * i + 1))
        names.append(str(p))
    ch = gw.remote_exec(
        """
        for fn in channel:
            f = open(fn, 'rb')
            try:
                channel.send(f.read())
            finally:
                f.close()
        """
    )
    for fn in names:
        ch.send(fn)
        assert await ch.receive(T) == open(fn, "rb").read()
    ch.close()
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_remote_exception_is_remote_error(gw):
    ch = gw.remote_exec("def f():\n    raise ValueError('boom 42')\nf()")
    with pytest.raises(RemoteError) as info:
        await ch.receive(T)
    assert "ValueError: boom 42" in str(info.value)
    assert "Traceback" in info.value.formatted
    with pytest.raises(RemoteError):
        await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_local_close_gives_remote_eoferror(gw):
    ch = gw.remote_exec(
        """
        result = channel.gateway.newchannel()
        channel.send(result)
        try:
            channel.receive()
        except EOFError:
            result.send("eof")
        """
    )
    result = await ch.receive(T)
    ch.close()
    assert await result.receive(T) == "eof"


@pytest_twisted.ensureDeferred
async def test_close_with_error_gives_remote_error_there(gw):
    ch = gw.remote_exec(
        """
        out = channel.receive()
        try:
            channel.receive()
        except Exception as e:
            out.send((type(e).__name__, str(e)))
        """
    )
    out = gw.newchannel()
    ch.send(out)
    ch.close(error="stop now")
    assert await out.receive(T) == ("RemoteError", "stop now")


@pytest_twisted.ensureDeferred
async def test_remote_close_with_error_reaches_us(gw):
    ch = gw.remote_exec("channel.close(error='remote says no')")
    with pytest.raises(RemoteError, match="remote says no"):
        await ch.receive(T)


@pytest_twisted.ensureDeferred
async def test_remote_code_returning_closes_channel(gw):
    ch = gw.remote_exec("channel.send(1)")
    assert await ch.receive(T) == 1
    await ch.waitclose(T)
    assert ch.isclosed()
    with pytest.raises(EOFError):
        await ch.receive(T)


@pytest_twisted.ensureDeferred
async def test_receive_timeout(gw):
    ch = gw.remote_exec("channel.receive()")
    with pytest.raises(TimeoutError) as info:
        await ch.receive(timeout=0.2)
    # The built-in TimeoutError catches it too, as in execnet.
    assert isinstance(info.value, builtins.TimeoutError)
    assert "no item on channel" in str(info.value)
    ch.send("go on")
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_waitclose_timeout(gw):
    ch = gw.remote_exec("channel.receive()")
    with pytest.raises(TimeoutError):
        await ch.waitclose(timeout=0.2)
    ch.close()
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_setcallback_with_endmarker(gw):
    ch = gw.remote_exec("for i in range(5):\n    channel.send(i)")
    got = []
    done = defer.Deferred()

    def callback(item):
        got.append(item)
        if item == "END":
            done.callback(None)

    ch.setcallback(callback, endmarker="END")
    await done.addTimeout(T, __import__("twisted.internet.reactor").internet.reactor)
    assert got == [0, 1, 2, 3, 4, "END"]
    with pytest.raises(OSError):
        await ch.receive(T)


@pytest_twisted.ensureDeferred
async def test_async_iteration(gw):
    ch = gw.remote_exec("for i in range(10):\n    channel.send(i * i)")
    got = [item async for item in ch]
    assert got == [i * i for i in range(10)]


@pytest_twisted.ensureDeferred
async def test_waiting_receivers_get_a_burst_in_order(gw):
    # Waiters are woken after a whole read is delivered; a receive() made
    # while the oldest waiter's callback runs must still come after the
    # other waiters, not jump ahead of them.
    ch = gw.remote_exec("channel.receive()\nfor i in range(200):\n    channel.send(i)")
    waiting = [ch.receive(T) for _ in range(3)]
    fromCallback = []
    waiting[0].addCallback(lambda item: fromCallback.append(ch.receive(T)) or item)
    await ch.send("go")
    got = [await d for d in waiting] + [await fromCallback[0]]
    got += [item async for item in ch]
    assert got == list(range(200))


@pytest_twisted.ensureDeferred
async def test_remote_setcallback(gw):
    ch = gw.remote_exec(
        """
        import threading
        reply = channel.receive()
        got = []
        done = threading.Event()
        def cb(item):
            got.append(item)
            if item == "END":
                done.set()
        channel.setcallback(cb, endmarker="END")
        done.wait(10)
        reply.send(got)
        """
    )
    reply = gw.newchannel()
    ch.send(reply)
    for i in (1, 2, 3):
        ch.send(i)
    ch.close()
    assert await reply.receive(T) == [1, 2, 3, "END"]


@pytest_twisted.ensureDeferred
async def test_concurrent_remote_execs(gw):
    # Two remote_execs wait for each other: only possible if they run at once.
    a = gw.remote_exec(
        "other = channel.receive()\nother.send('from a')\nchannel.send(channel.receive())"
    )
    b = gw.remote_exec("channel.send(channel.receive())")
    relay = gw.newchannel()
    a.send(relay)
    a.send("a done")
    assert await a.receive(T) == "a done"
    assert await relay.receive(T) == "from a"
    b.send("b done")
    assert await b.receive(T) == "b done"


@pytest_twisted.ensureDeferred
async def test_remote_waiters_of_every_kind_are_served_together(gw):
    # Remote code waiting in receive() reads frames for the whole gateway
    # meanwhile: a new remote_exec, an item for a receive with a timeout, a
    # callback's items and a close, all arriving while it waits.
    waiting = gw.remote_exec("channel.send(('untimed', channel.receive()))")
    await sleep(0.1)  # let it start waiting
    timed = gw.remote_exec("channel.send(('timed', channel.receive(timeout=20)))")
    callback = gw.remote_exec(
        """
        import threading
        seen = []
        done = threading.Event()
        def got(item):
            seen.append(item)
            if len(seen) == 3:
                done.set()
        channel.setcallback(got)
        done.wait(20)
        channel.send(seen)
        """
    )
    closer = gw.remote_exec("ch = channel.receive()\nch.waitclose(20)\nchannel.send('closed')")
    closing = gw.newchannel()
    await closer.send(closing)
    for i in range(3):
        await callback.send(i)
    await timed.send("t")
    closing.close()
    assert await callback.receive(T) == [0, 1, 2]
    assert await timed.receive(T) == ("timed", "t")
    assert await closer.receive(T) == "closed"
    await waiting.send("u")
    assert await waiting.receive(T) == ("untimed", "u")


@pytest_twisted.ensureDeferred
async def test_200_channels_interleaved(gw):
    channels = [gw.remote_exec("for x in channel:\n    channel.send(x + 1)") for _ in range(200)]
    for round_ in range(3):
        for i, ch in enumerate(channels):
            ch.send(i * 10 + round_)
        results = await defer.gatherResults([ch.receive(T) for ch in channels])
        assert results == [i * 10 + round_ + 1 for i in range(200)]
    for ch in channels:
        ch.close()
    await defer.gatherResults([ch.waitclose(T) for ch in channels])


@pytest_twisted.ensureDeferred
async def test_newchannel_sent_over_channel(gw):
    ch = gw.remote_exec("sub = channel.receive()\nfor x in sub:\n    sub.send(x * 2)")
    sub = gw.newchannel()
    ch.send(sub)
    sub.send(21)
    assert await sub.receive(T) == 42
    sub.close()
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_channel_inside_container(gw):
    ch = gw.remote_exec("d = channel.receive()\nd['reply'].send(d['x'] + 1)")
    reply = gw.newchannel()
    ch.send({"x": 1, "reply": reply})
    assert await reply.receive(T) == 2


def _square_all(channel, factor, offset=0):
    for x in channel:
        channel.send(x * factor + offset)


@pytest_twisted.ensureDeferred
async def test_remote_exec_function_with_kwargs(gw):
    ch = gw.remote_exec(_square_all, factor=3, offset=1)
    ch.send(2)
    assert await ch.receive(T) == 7
    ch.close()
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_remote_exec_module(gw):
    import remote_module_example

    ch = gw.remote_exec(remote_module_example)
    assert await ch.receive(T) == "module ran as __channelexec__"


@pytest_twisted.ensureDeferred
async def test_remote_print_does_not_corrupt(gw):
    ch = gw.remote_exec(
        """
        import os, sys
        print("hello from print")
        sys.stdout.write("more\\n")
        sys.stdout.flush()
        os.write(1, b"raw fd 1 write\\n")
        channel.send("still fine")
        """
    )
    assert await ch.receive(T) == "still fine"


@pytest_twisted.ensureDeferred
async def test_unsupported_object_fails_at_send(gw):
    ch = gw.remote_exec("channel.receive()")
    with pytest.raises(txexecnet.DataFormatError, match="object"):
        ch.send(object())
    ch.send("ok")
    await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_remote_unsupported_object_is_remote_error(gw):
    ch = gw.remote_exec("channel.send(object())")
    with pytest.raises(RemoteError, match="DumpError"):
        await ch.receive(T)


@pytest_twisted.ensureDeferred
async def test_large_items_both_ways(gw):
    ch = gw.remote_exec("for x in channel:\n    channel.send(x[::-1])")
    big = os.urandom(8 * 1024 * 1024)
    ch.send(big)
    assert await ch.receive(T) == big[::-1]
    ch.close()


@pytest_twisted.ensureDeferred
async def test_send_after_close_raises(gw):
    ch = gw.remote_exec("pass")
    await ch.waitclose(T)
    with pytest.raises(OSError):
        ch.send(1)


@pytest_twisted.ensureDeferred
async def test_exit_fails_pending_receives(gw):
    ch = gw.remote_exec("channel.receive()")
    pending = ch.receive()
    await gw.exit(timeout=3)
    # The remote receive() sees EOFError at exit; that reaches us as a
    # RemoteError if the remote code lets it escape before the end.
    with pytest.raises((txexecnet.GatewayClosed, RemoteError)):
        await pending
    with pytest.raises(txexecnet.GatewayClosed):
        gw.remote_exec("pass")


@pytest_twisted.ensureDeferred
async def test_send_respects_backpressure(gw):
    # A slow remote reader: the Deferreds send() returns must start to wait,
    # and everything must still arrive.
    ch = gw.remote_exec(
        "import time\ntotal = 0\nwhile True:\n    x = channel.receive()\n    if x is None:\n        break\n"
        "    total += len(x)\n    time.sleep(0.005)\nchannel.send(total)"
    )
    chunk = b"x" * (1024 * 1024)
    waited = 0
    for _ in range(24):
        d = ch.send(chunk)
        if not d.called:
            waited += 1
        await d
    ch.send(None)
    assert await ch.receive(30) == 24 * len(chunk)
    assert waited > 0

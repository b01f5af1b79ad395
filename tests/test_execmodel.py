"""
Execution models: remote code in threads of its own (the default), or one
remote_exec at a time in the remote main thread; and the remote status.
Over every transport that starts an interpreter of its own.
"""

from __future__ import annotations

import signal

import pytest
import pytest_twisted

import txexecnet
from conftest import SPEC_FACTORIES
from txexecnet import RemoteError, blocking

T = 30

IN_MAIN = "import threading\nchannel.send(threading.current_thread() is threading.main_thread())"


@pytest.fixture(params=["popen", "socket", "ssh", "via"])
def main_spec(request) -> str:
    return SPEC_FACTORIES[request.param](request) + "//execmodel=main_thread_only"


@pytest_twisted.ensureDeferred
async def test_main_thread_only_runs_code_in_the_remote_main_thread_one_at_a_time(main_spec):
    gw = await txexecnet.makegateway(main_spec)
    try:
        first = gw.remote_exec(IN_MAIN)
        assert await first.receive(T) is True
        await first.waitclose(T)  # then the main thread is free
        held = gw.remote_exec("channel.send('running'); channel.receive()")
        assert await held.receive(T) == "running"
        status = await gw.remote_status(T)
        assert (status.execmodel, status.numexecuting) == ("main_thread_only", 1)
        second = gw.remote_exec("channel.send('never')")
        with pytest.raises(RemoteError, match="concurrent remote_exec would cause deadlock"):
            await second.receive(T)
        await held.send(None)
        await held.waitclose(T)
        code = "import signal\nsignal.signal(signal.SIGUSR1, signal.SIG_IGN)\nchannel.send('ok')"
        handler = gw.remote_exec(code)
        assert await handler.receive(T) == "ok"
        await handler.waitclose(T)
        assert (await gw.remote_status(T)).numexecuting == 0
    finally:
        await gw.exit(T)


@pytest_twisted.ensureDeferred
async def test_the_default_model_runs_each_remote_exec_in_a_thread_of_its_own(gateway_spec):
    gw = await txexecnet.makegateway(gateway_spec)
    try:
        held = [gw.remote_exec("channel.send(1); channel.receive()") for _ in range(3)]
        for ch in held:
            assert await ch.receive(T) == 1
        status = await gw.remote_status(T)
        assert status.execmodel == "thread"
        assert status.numexecuting == 3 and status.numchannels >= 3
        assert await gw.remote_exec(IN_MAIN).receive(T) is False
        for ch in held:
            await ch.send(None)
            await ch.waitclose(T)
    finally:
        await gw.exit(T)


@pytest_twisted.ensureDeferred
async def test_code_in_the_main_thread_is_ended_by_exit_within_its_timeout():
    gw = await txexecnet.makegateway("popen//execmodel=main_thread_only")
    ch = gw.remote_exec("import time\nwhile True: time.sleep(0.05)")
    await gw.exit(1)
    assert gw.isTerminated()
    with pytest.raises(txexecnet.GatewayClosed):
        await ch.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_a_cancel_reaches_code_in_the_main_thread():
    gw = await txexecnet.makegateway("popen//execmodel=main_thread_only")
    try:
        ch = gw.remote_exec("import time\nchannel.send(1)\nwhile True: time.sleep(0.05)")
        assert await ch.receive(T) == 1
        ch.cancel()
        with pytest.raises(RemoteError, match="KeyboardInterrupt"):
            await ch.waitclose(T)
        assert await gw.remote_exec(IN_MAIN).receive(T) is True
    finally:
        await gw.exit(T)


def test_the_blocking_facade_reports_the_remote_status():
    gw = blocking.makegateway("popen//execmodel=main_thread_only")
    try:
        status = gw.remote_status(T)
        assert status == txexecnet.gateway.RemoteStatus(0, 0, "main_thread_only")
        assert gw.remote_exec(IN_MAIN).receive(T) is True
    finally:
        gw.exit(T)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("thread//execmodel=main_thread_only", "its main thread is this program's"),
        ("popen//execmodel=gevent", "is not one of thread, main_thread_only"),
    ],
)
def test_an_execmodel_that_cannot_be_honoured_is_refused_in_the_spec(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        txexecnet.XSpec(spec)


def test_signal_handlers_can_be_installed_only_in_the_main_thread_model():
    gw = blocking.makegateway("popen")
    try:
        code = "import signal\nsignal.signal(signal.SIGUSR1, signal.SIG_IGN)"
        with pytest.raises(RemoteError, match="main thread"):
            gw.remote_exec(code).waitclose(T)
    finally:
        gw.exit(T)
    assert signal.SIGUSR1  # the signal the remote code tried to handle

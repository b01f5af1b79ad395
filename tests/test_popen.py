"""
Popen gateways: how they start, fail, end and report, and how the local side
treats a remote that breaks the protocol.
"""

import os
import signal
import stat
import sys

import pytest
import pytest_twisted
from twisted.logger import globalLogPublisher

import txexecnet
from txexecnet import GatewayClosed, GatewayStartError
from txexecnet._remote import HEADER

from conftest import sleep

T = 10


def fake_python(tmp_path, body):
    """An executable standing in for python, doing C{body} (shell)."""
    path = tmp_path / "fakepython"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest_twisted.ensureDeferred
async def test_popen_gateway_function_and_remoteinfo():
    gw = await txexecnet.PopenGateway()
    try:
        assert gw.remoteinfo["pid"] != os.getpid()
        assert gw.remoteinfo["python"][:2] == list(sys.version_info[:2])
        assert gw.id.startswith("gw")
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_other_interpreter_gets_the_source_shipped():
    # /usr/bin/python3 is not this venv's interpreter: the runtime's source is
    # sent in the bootstrap line instead of being imported from the package.
    gw = await txexecnet.makegateway("popen//python=/usr/bin/python3")
    try:
        ch = gw.remote_exec(
            "import sys\nchannel.send((sys.executable, 'txexecnet' in sys.modules))"
        )
        executable, imported = await ch.receive(T)
        assert executable == "/usr/bin/python3"
        assert imported is False
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_env_applies_to_the_interpreter_itself(tmp_path):
    (tmp_path / "extra_module_for_test.py").write_text("VALUE = 'found'\n")
    gw = await txexecnet.makegateway(f"popen//env:PYTHONPATH={tmp_path}")
    try:
        ch = gw.remote_exec("import extra_module_for_test as m\nchannel.send(m.VALUE)")
        assert await ch.receive(T) == "found"
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_spec_options_chdir_env_nice_id(tmp_path):
    target = tmp_path / "new" / "dir"
    gw = await txexecnet.makegateway(
        f"popen//chdir={target}//env:TXEXECNET_T=hello//nice=3//id=worker"
    )
    try:
        assert gw.id == "worker"
        ch = gw.remote_exec(
            "import os\nchannel.send((os.getcwd(), os.environ['TXEXECNET_T'], os.nice(0)))"
        )
        cwd, env, nice = await ch.receive(T)
        assert cwd == str(target)
        assert env == "hello"
        assert nice == os.nice(0) + 3
        assert txexecnet.default_group["worker"] is gw
    finally:
        await gw.exit()


def test_bad_spec_is_value_error():
    with pytest.raises(ValueError, match="unknown key 'pyhton'"):
        txexecnet.makegateway("popen//pyhton=python3")


@pytest_twisted.ensureDeferred
async def test_missing_python_fails_with_reason():
    with pytest.raises(GatewayStartError, match="/no/such/python.*not found"):
        await txexecnet.makegateway("popen//python=/no/such/python")


@pytest_twisted.ensureDeferred
async def test_failing_bootstrap_quotes_remote_stderr(tmp_path):
    python = fake_python(tmp_path, 'echo "this python is broken" >&2; exit 3')
    with pytest.raises(GatewayStartError) as info:
        await txexecnet.makegateway(f"popen//python={python}")
    assert "this python is broken" in str(info.value)
    assert "status 3" in str(info.value)


@pytest_twisted.ensureDeferred
async def test_silent_interpreter_times_out(tmp_path, monkeypatch):
    import txexecnet.gateway

    monkeypatch.setattr(txexecnet.gateway, "START_TIMEOUT", 0.5)
    python = fake_python(tmp_path, 'echo "stuck" >&2; exec sleep 30')
    with pytest.raises(GatewayStartError, match="no hello.*within 0.5 seconds(.|\n)*stuck"):
        await txexecnet.makegateway(f"popen//python={python}")


@pytest_twisted.ensureDeferred
async def test_garbage_instead_of_hello_is_a_clear_error(tmp_path):
    python = fake_python(tmp_path, 'echo "Welcome to my shell banner"; exec sleep 30')
    with pytest.raises(GatewayStartError, match="expected a hello frame.*Welcome"):
        await txexecnet.makegateway(f"popen//python={python}")


@pytest_twisted.ensureDeferred
async def test_sigkill_mid_conversation_fails_pending_waiters(popen_gw):
    ch = popen_gw.remote_exec("channel.send('ready')\nchannel.receive()")
    other = popen_gw.remote_exec("channel.receive()")
    assert await ch.receive(T) == "ready"
    pending = [ch.receive(), ch.waitclose(), other.receive()]
    os.kill(popen_gw.remoteinfo["pid"], signal.SIGKILL)
    for d in pending:
        with pytest.raises(GatewayClosed, match="signal 9"):
            await d.addTimeout(T, __import__("twisted.internet.reactor").internet.reactor)
    assert popen_gw.isTerminated()


@pytest_twisted.ensureDeferred
async def test_exit_kills_remote_code_that_ignores_it():
    gw = await txexecnet.makegateway("popen")
    ch = gw.remote_exec("import time\nchannel.send(1)\nwhile True:\n    time.sleep(0.05)")
    assert await ch.receive(T) == 1
    pid = gw.remoteinfo["pid"]
    await gw.exit(timeout=0.5)
    assert gw.isTerminated()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest_twisted.ensureDeferred
async def test_exit_is_clean_and_idempotent():
    gw = await txexecnet.makegateway("popen")
    pid = gw.remoteinfo["pid"]
    await gw.exit()
    await gw.exit()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest_twisted.ensureDeferred
async def test_remote_output_reaches_the_log_with_gateway_id_and_stream(popen_gw):
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        ch = popen_gw.remote_exec(
            "import sys\nprint('printed line')\nsys.stderr.write('stderr line\\n')\nsys.stderr.flush()\nchannel.send(1)"
        )
        await ch.receive(T)
        for _ in range(100):
            lines = {
                (e["stream"], e["text"])
                for e in events
                if e.get("remote_output") and e.get("gateway") == popen_gw.id
            }
            if len(lines) >= 2:
                break
            await sleep(0.02)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert {("stdout", "printed line"), ("stderr", "stderr line")} <= lines


async def _write_raw_frame(gw, frame):
    """Have remote code write C{frame} on the private protocol fd."""
    ch = gw.remote_exec(
        "import os\nio = channel.gateway._io\nwith channel.gateway._writelock:\n"
        "    os.write(io._wfd, channel.receive())\nchannel.receive()"
    )
    ch.send(frame)
    return ch


@pytest.mark.parametrize(
    "frame, message",
    [
        (HEADER.pack(99, 1, 0), "unknown message type 99"),
        (HEADER.pack(2, 1, 2**31), "exceeds the limit"),
        (HEADER.pack(0, 0, 1) + b"N", "second hello"),
        (HEADER.pack(1, 2, 1) + b"N", "unexpected message type 1"),
    ],
    ids=["unknown-type", "oversized", "second-hello", "remote-exec-from-remote"],
)
@pytest_twisted.ensureDeferred
async def test_protocol_errors_close_the_gateway_loudly(frame, message):
    gw = await txexecnet.makegateway("popen")
    pending = gw.remote_exec("channel.receive()").receive()
    ch = await _write_raw_frame(gw, frame)
    with pytest.raises(GatewayClosed, match=message):
        await ch.receive().addTimeout(T, __import__("twisted.internet.reactor").internet.reactor)
    with pytest.raises(GatewayClosed, match="protocol error"):
        await pending
    await gw.whenTerminated()


@pytest_twisted.ensureDeferred
async def test_undecodable_item_fails_only_its_channel(popen_gw):
    ch = await _write_raw_frame(popen_gw, HEADER.pack(2, 2, 3) + b"XYZ")
    victim = popen_gw._channelFor(2)
    with pytest.raises(txexecnet.LoadError):
        await victim.receive(T)
    ch.send("go")
    await ch.waitclose(T)
    assert await popen_gw.remote_exec("channel.send(5)").receive(T) == 5


@pytest_twisted.ensureDeferred
async def test_frame_size_limit_applies_both_ways():
    gw = await txexecnet.makegateway("popen", maxFrameSize=4096)
    try:
        ch = gw.remote_exec("for x in channel:\n    channel.send(x * 2)")
        with pytest.raises(txexecnet.DumpError, match="exceeds the frame limit"):
            ch.send(b"x" * 5000)
        ch.send(b"x" * 3000)
        with pytest.raises(txexecnet.RemoteError, match="exceeds the frame limit"):
            await ch.receive(T)
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_group_terminate():
    group = txexecnet.Group()
    gws = [await group.makegateway("popen") for _ in range(3)]
    assert len(group) == 3 and group["gw1"] is gws[1] and group[2] is gws[2]
    with pytest.raises(ValueError, match="already exists"):
        group.makegateway("popen//id=gw0")
    await group.terminate(timeout=2)
    assert all(gw.isTerminated() for gw in gws)
    assert len(group) == 0

"""
What remote code writes reaches this side: its stdout and stderr, fd 1,
its logging when asked for, tagged with the gateway and the channel, and
held back (never dropped) when this side does not keep up.
"""

import logging
import os
import sys

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher

import txexecnet
from conftest import SPEC_FACTORIES, sleep
from txexecnet.output import OutputWriter, RemoteOutput, emitLogRecord

T = 10  # seconds any single wait may take before the test fails

#: Where remote output is sent on as frames: a thread gateway's code is
#: this very process, and writes to its stdout directly.
OUTPUT_TRANSPORTS = sorted(set(SPEC_FACTORIES) - {"thread"})


@pytest.fixture(params=OUTPUT_TRANSPORTS)
def output_spec(request) -> str:
    """A spec string for each transport whose remote output travels as frames."""
    return SPEC_FACTORIES[request.param](request)


class Collected:
    """An output handler that keeps what it is given."""

    def __init__(self):
        self.pieces: list[RemoteOutput] = []

    def __call__(self, output: RemoteOutput) -> None:
        self.pieces.append(output)

    def text(self, stream="stdout", channel=...):
        return "".join(
            p.text
            for p in self.pieces
            if p.stream == stream and (channel is ... or p.channel == channel)
        )

    async def waitFor(self, expected, stream="stdout", channel=...):
        for _ in range(int(T / 0.02)):
            if expected in self.text(stream, channel):
                return
            await sleep(0.02)
        raise AssertionError(f"{expected!r} never arrived; got {self.pieces!r}")


@pytest_twisted.async_yield_fixture()
async def collected(output_spec):
    """A gateway over each transport whose output a L{Collected} keeps."""
    handler = Collected()
    gateway = await txexecnet.makegateway(output_spec, output=handler)
    yield gateway, handler
    await gateway.exit(timeout=3)


@pytest_twisted.ensureDeferred
async def test_print_and_stderr_arrive_tagged_with_gateway_and_channel(collected):
    gw, handler = collected
    ch = gw.remote_exec(
        "import sys\nprint('hello', 42)\nsys.stderr.write('oops\\n')\nchannel.send(None)"
    )
    await ch.receive(T)
    await ch.waitclose(T)
    assert handler.text("stdout", ch.id) == "hello 42\n"
    assert handler.text("stderr", ch.id) == "oops\n"
    assert {p.gateway for p in handler.pieces} == {gw.id}


@pytest_twisted.ensureDeferred
async def test_what_c_code_writes_to_fd_1_arrives_as_stdout_of_no_channel(collected):
    gw, handler = collected
    ch = gw.remote_exec("import os\nos.write(1, b'from C\\n')")
    await ch.waitclose(T)
    await handler.waitFor("from C\n", "stdout", None)


@pytest_twisted.ensureDeferred
async def test_output_of_two_channels_interleaved_keeps_each_channels_lines_and_order(
    collected,
):
    gw, handler = collected
    code = (
        "name = channel.receive()\n"
        "for i in range(200):\n"
        "    print(name, i)\n"
        "    if i == 100: channel.send('half'); channel.receive()\n"
    )
    a, b = gw.remote_exec(code), gw.remote_exec(code)
    a.send("a")
    b.send("b")
    assert await a.receive(T) == "half"
    assert await b.receive(T) == "half"
    a.send("go")
    b.send("go")
    await a.waitclose(T)
    await b.waitclose(T)
    for ch, name in ((a, "a"), (b, "b")):
        assert handler.text("stdout", ch.id) == "".join(f"{name} {i}\n" for i in range(200))


@pytest_twisted.ensureDeferred
async def test_output_written_right_before_os_exit_is_not_lost(collected):
    gw, handler = collected
    ch = gw.remote_exec(
        "import os, sys\nprint('last words')\nsys.stdout.write('no newline')\n"
        "os.write(1, b'from fd 1\\n')\nos._exit(0)"
    )
    with pytest.raises(txexecnet.GatewayClosed):
        await ch.waitclose(T)
    assert handler.text("stdout", ch.id) == "last words\nno newline"
    assert handler.text("stdout", None) == "from fd 1\n"


@pytest_twisted.ensureDeferred
async def test_output_of_one_channel_can_be_iterated_and_ends_with_the_channel(collected):
    gw, handler = collected
    ch = gw.remote_exec("import sys\nprint('one')\nsys.stderr.write('two\\n')\nprint('three')")
    pieces = [piece async for piece in ch.output()]
    assert pieces == [("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n")]
    assert handler.text("stdout", ch.id) == ""  # it went to the iterator instead


@pytest_twisted.ensureDeferred
async def test_remote_logging_records_reach_local_logging_under_the_gateway_with_their_level(
    output_spec, caplog
):
    gw = await txexecnet.makegateway(output_spec + "//logging=INFO", output=Collected())
    try:
        with caplog.at_level(logging.DEBUG, logger="txexecnet.remote"):
            ch = gw.remote_exec(
                "import logging\nlog = logging.getLogger('app.db')\n"
                "log.debug('not sent')\nlog.warning('slow query %d ms', 250)\n"
                "try:\n    1/0\nexcept ZeroDivisionError:\n    log.exception('failed')\n"
            )
            await ch.waitclose(T)
            for _ in range(int(T / 0.02)):
                if len(caplog.records) >= 2:
                    break
                await sleep(0.02)
    finally:
        await gw.exit(timeout=3)
    records = [r for r in caplog.records if r.name == f"txexecnet.remote.{gw.id}.app.db"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "slow query 250 ms"),
        (logging.ERROR, "failed"),
    ]
    assert "ZeroDivisionError" in records[1].exc_text
    assert records[0].channel == ch.id


@pytest_twisted.ensureDeferred
async def test_remote_logging_is_off_unless_asked_for(popen_gw, caplog):
    with caplog.at_level(logging.DEBUG, logger="txexecnet.remote"):
        ch = popen_gw.remote_exec("import logging\nlogging.getLogger('app').error('unseen')")
        await ch.waitclose(T)
        await sleep(0.1)
    assert not [r for r in caplog.records if r.name.startswith("txexecnet.remote.")]


@pytest_twisted.ensureDeferred
async def test_remote_logging_records_also_reach_twisted_logger_with_their_level():
    events = []
    globalLogPublisher.addObserver(events.append)
    gw = await txexecnet.makegateway("popen//logging=DEBUG", output=Collected())
    try:
        ch = gw.remote_exec("import logging\nlogging.getLogger('app').debug('details')")
        await ch.waitclose(T)
        for _ in range(int(T / 0.02)):
            found = [e for e in events if e.get("remote_log") and e.get("gateway") == gw.id]
            if found:
                break
            await sleep(0.02)
    finally:
        globalLogPublisher.removeObserver(events.append)
        await gw.exit(timeout=3)
    assert [(e["logger"], e["message"], e["log_level"].name) for e in found] == [
        ("app", "details", "debug")
    ]


@pytest_twisted.ensureDeferred
async def test_a_slow_output_handler_holds_the_remote_writer_back_to_its_window():
    held: list[defer.Deferred[None]] = []
    sizes: list[int] = []

    def slow(output: RemoteOutput) -> defer.Deferred[None]:
        sizes.append(len(output.text))
        d: defer.Deferred[None] = defer.Deferred()
        held.append(d)
        return d

    gw = await txexecnet.makegateway("popen//window=1M", output=slow)
    try:
        ch = gw.remote_exec(
            "line = 'x' * 1023 + '\\n'\n"
            "for i in range(8 * 1024):\n"
            "    print(line, end='')\n"
            "channel.send('done')"
        )
        await sleep(1.0)
        writtenWhileHeld = sum(sizes)
        assert writtenWhileHeld <= 1024 * 1024 + 65536  # a window, and a frame in flight
        assert not ch.isclosed()
        for _ in range(int(T / 0.02)):
            while held:
                held.pop().callback(None)
            if ch.isclosed() or sum(sizes) >= 8 * 1024 * 1024:
                break
            await sleep(0.02)
        assert await ch.receive(T) == "done"
        assert sum(sizes) == 8 * 1024 * 1024
    finally:
        while held:
            held.pop().callback(None)
        await gw.exit(timeout=3)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest_twisted.ensureDeferred
async def test_a_remote_printing_a_gibibyte_does_not_grow_this_process_beyond_its_window():
    from twisted.internet import reactor

    received = [0]
    peak = [_rss()]
    baseline = peak[0]

    def count(output: RemoteOutput) -> None:
        received[0] += len(output.text)

    def sample() -> None:
        peak[0] = max(peak[0], _rss())

    sampler = task.LoopingCall(sample)
    sampler.clock = reactor
    sampler.start(0.05)
    gw = await txexecnet.makegateway("popen", output=count)
    try:
        ch = gw.remote_exec(
            "import sys\nchunk = ('y' * 1023 + '\\n') * 1024\n"
            "for i in range(1024):\n    sys.stdout.write(chunk)\n"
        )
        await ch.waitclose(120)
    finally:
        sampler.stop()
        await gw.exit(timeout=3)
    assert received[0] == 1024**3
    # The default window is 16 MiB: a few windows' worth of slack, not 1 GiB.
    assert peak[0] - baseline < 200 * 1024 * 1024


def test_the_blocking_api_writes_remote_output_to_stdout_prefixed_with_the_gateway_id(capfd):
    from txexecnet import blocking

    gw = blocking.makegateway("popen")
    try:
        ch = gw.remote_exec("import sys\nprint('line one\\nline two')\nsys.stderr.write('err\\n')")
        ch.waitclose(T)
    finally:
        gw.exit()
    out, err = capfd.readouterr()
    assert f"[{gw.id}] line one\n[{gw.id}] line two\n" in out
    assert f"[{gw.id}] err\n" in err


def test_the_blocking_api_takes_an_output_callback_instead():
    from txexecnet import blocking

    got: list[RemoteOutput] = []
    gw = blocking.makegateway("popen", output=got.append)
    try:
        gw.remote_exec("print('to the callback')").waitclose(T)
    finally:
        gw.exit()
    assert [(p.stream, p.text) for p in got] == [("stdout", "to the callback\n")]


def test_the_writer_prefixes_each_line_once_across_pieces():
    class File:
        text = ""

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    out = File()
    writer = OutputWriter(stdout=out)
    for text in ("a\nb", "c\n", "\n", "d"):
        writer(RemoteOutput("gw3", 1, "stdout", text))
    assert out.text == "[gw3] a\n[gw3] bc\n[gw3] \n[gw3] d"


@pytest.mark.parametrize(
    "fields",
    [
        None,
        "text",
        {},
        {"name": "x", "levelno": "10", "levelname": "DEBUG", "msg": "m", "created": 1.0},
    ],
)
def test_a_malformed_log_record_is_dropped(fields):
    assert emitLogRecord("gw0", None, fields) is False


def test_cli_exec_shows_what_remote_code_prints_prefixed_with_the_gateway_id():
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "txexecnet", "exec", "-g", "popen", "-c", "print('hi there')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[gw0] hi there\n" in proc.stdout

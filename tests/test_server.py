"""
The C{twistd execnet-server} daemon: its plugin and options, how it runs,
what bad clients cannot do to it, and how connections are isolated.

Every daemon here is a real C{twistd} process on a loopback port, and every
client a real socket (see fixtures_server.py).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import pytest_twisted
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage

import txexecnet
from fixtures_server import TWISTD, WAIT, shared_daemon, wait_until
from processes import alive
from txexecnet import GatewayClosed, GatewayStartError, RemoteError, RemoteOutput, tap

from txexecnet._remote import CHANNEL_DATA, HEADER, HEADER_SIZE
from txexecnet import bootstrap
from txexecnet.bootstrap import sourceBootstrap
from txexecnet.server import bootstrapBodySize
from txexecnet.script import socketserver as handshake

T = 10  # seconds any single wait on a gateway may take


async def assert_serves(daemon, spec_extra=""):
    """A fresh gateway through C{daemon} runs code and exits cleanly."""
    gw = await txexecnet.makegateway(daemon.spec(spec_extra))
    ch = gw.remote_exec("channel.send(channel.receive() + 1)")
    ch.send(41)
    assert await ch.receive(T) == 42
    await gw.exit(timeout=T)


def raw_connect(daemon, timeout=WAIT):
    """A plain socket to C{daemon}, with its greeting line read."""
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout)
    greeting = read_line(sock)
    assert greeting.startswith(handshake.MAGIC), greeting
    return sock


def read_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def wait_closed(sock, timeout=WAIT):
    """Read until the server closes C{sock}; fail if it does not in time."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass


# --- the plugin and its options ------------------------------------------------


def test_plugin_is_found_by_twistd():
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert IServiceMaker.providedBy(makers["execnet-server"])
    assert makers["execnet-server"].options is tap.Options
    out = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=WAIT)
    assert "execnet-server" in out.stdout


def test_plugin_directory_is_a_namespace():
    # An __init__.py in twisted/ or twisted/plugins/ would shadow Twisted's own.
    root = os.path.dirname(os.path.dirname(txexecnet.__file__))
    assert os.path.isfile(os.path.join(root, "twisted", "plugins", "txexecnet_plugin.py"))
    assert not os.path.exists(os.path.join(root, "twisted", "__init__.py"))
    assert not os.path.exists(os.path.join(root, "twisted", "plugins", "__init__.py"))


def parse(*args):
    options = tap.Options()
    options.parseOptions(list(args))
    return options


def test_options_defaults_listen_on_loopback_7770():
    options = parse()
    assert options["listen"] == ["tcp:7770:interface=127.0.0.1"]
    assert options["tls"] == []
    assert options["secret"] is None
    assert options["max-connections"] == 64
    assert options["idle-timeout"] == 30.0


def test_options_port_interface_and_listen():
    options = parse(
        "-p", "7771", "--interface", "::1", "--listen", "unix:/tmp/x.sock", "--listen", "tcp:7772"
    )
    assert options["listen"] == [
        "tcp6:7771:interface=\\:\\:1",
        "unix:/tmp/x.sock",
        "tcp:7772:interface=127.0.0.1",
    ]
    # --listen alone replaces the default port.
    assert parse("--listen", "tcp:7772")["listen"] == ["tcp:7772:interface=127.0.0.1"]
    # Every interface only when asked for.
    assert parse("--listen", "tcp:7772:interface=0.0.0.0")["listen"] == [
        "tcp:7772:interface=0.0.0.0"
    ]
    assert parse("--listen", "tcp6:7772")["listen"] == ["tcp6:7772:interface=\\:\\:1"]
    from txexecnet.tap import _loopbackUnlessSaid

    assert _loopbackUnlessSaid("tcp:7773:127.0.0.2") == "tcp:7773:127.0.0.2"
    assert _loopbackUnlessSaid("unix:/tmp/s") == "unix:/tmp/s"


def test_options_python_secret_and_limits(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"s3cret\n")
    secret.chmod(0o600)
    options = parse(
        "--python",
        sys.executable + " -X dev",
        "--secret-file",
        str(secret),
        "--max-connections",
        "3",
        "--idle-timeout",
        "2.5",
        "--memory-limit",
        "100",
    )
    assert options["python"] == [sys.executable, "-X", "dev"]
    assert options["secret"] == b"s3cret"
    limits = (options["max-connections"], options["idle-timeout"], options["memory-limit"])
    assert limits == (3, 2.5, 100)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--python", "no-such-python-here"], "no such executable"),
        (["--secret-file", "/nonexistent/secret"], "--secret-file"),
        (["--max-connections", "0"], "--max-connections must be positive"),
        (["--idle-timeout", "-1"], "--idle-timeout must be positive"),
        (["-p", "70000"], "is not a TCP port"),
        (["--listen", "nosuch:1234"], "bad endpoint"),
        (["--tls", "tcp:0"], "--tls needs --certificate"),
        (["--client-ca", "ca.pem"], "give --tls too"),
    ],
)
def test_options_errors(args, message):
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


def test_options_empty_secret_file(tmp_path):
    (tmp_path / "secret").write_bytes(b"\n")
    with pytest.raises(usage.UsageError, match="empty"):
        parse("--secret-file", str(tmp_path / "secret"))


def test_make_service_has_a_listener_per_endpoint(tmp_path):
    options = parse("-p", "0", "--listen", f"unix:{tmp_path}/s.sock")
    service = tap.makeService(options)
    assert len(list(service)) == 2
    assert service.factory.maxConnections == 64


@pytest_twisted.ensureDeferred
async def test_python_option(start_daemon):
    daemon = start_daemon("--python", f"{sys.executable} -X utf8")
    gw = await txexecnet.makegateway(daemon.spec())
    ch = gw.remote_exec("import sys\nchannel.send((sys.executable, sys.flags.utf8_mode))")
    assert await ch.receive(T) == (sys.executable, 1)
    await gw.exit(timeout=T)


def test_bytecode_magic_of_the_children():
    import importlib.util

    from txexecnet.server import bytecodeMagic

    assert bytecodeMagic([sys.executable]) == importlib.util.MAGIC_NUMBER
    assert bytecodeMagic([sys.executable, "-X", "utf8"]) == importlib.util.MAGIC_NUMBER
    assert bytecodeMagic(["/nonexistent/python"]) is None


@pytest_twisted.ensureDeferred
async def test_ipv6_loopback(start_daemon):
    daemon = start_daemon("-p", "0", "--interface", "::1")
    port = int(daemon.addresses[0].rsplit(":", 1)[1])
    assert daemon.addresses == [f"tcp:[::1]:{port}"]
    gw = await txexecnet.SocketGateway("::1", port)
    taken: list[RemoteOutput] = []
    gw.output = taken.append
    ch = gw.remote_exec("import os\nprint('printed', 123)\nos.write(2, b'written 456\\n')")
    await ch.waitclose(T)
    await gw.exit(timeout=T)
    # What remote code prints goes to the client, which its close follows...
    assert [(o.stream, o.text) for o in taken] == [("stdout", "printed 123\n")]
    # ...and what is written to fd 2 to the daemon's log, tagged with the connection.
    await daemon.wait_for_log(r"\[c1\] written 456")
    assert "anyone who can connect can run code" in daemon.log()


def test_port_in_use_fails_at_start():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        proc = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "execnet-server", "-p", str(taken.getsockname()[1])],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    finally:
        taken.close()
    assert proc.returncode != 0
    assert "Address already in use" in proc.stdout + proc.stderr


@pytest_twisted.ensureDeferred
async def test_daemonised_with_pidfile_and_logfile(start_daemon):
    daemon = start_daemon(daemonize=True)
    assert daemon.proc is None and alive(daemon.pid)
    with open(daemon.pidPath) as f:
        assert int(f.read()) == daemon.pid
    await assert_serves(daemon)
    await daemon.wait_for_log(r"c1: child \d+ exited with status 0")
    os.kill(daemon.pid, signal.SIGTERM)
    wait_until(lambda: not alive(daemon.pid), what="the daemon to stop")
    wait_until(lambda: not os.path.exists(daemon.pidPath), what="the pidfile to go")
    assert "Server Shut Down" in daemon.log()


# --- bad input -------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """A daemon with a short idle timeout and a small frame limit."""
    daemon = shared_daemon(tmp_path_factory, "--idle-timeout", "1", "--max-frame-size", "65536")
    yield daemon
    daemon.stop()


def no_child_started(daemon, connection):
    return not daemon.logged(rf"\b{connection}: child \d+ started")


def connection_id(daemon, before):
    """The id the daemon gave the first connection logged after C{before} log bytes."""
    import re

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        match = re.search(r"(c\d+): connection from", daemon.log()[before:])
        if match:
            return match.group(1)
        time.sleep(0.02)
    raise AssertionError("connection not logged")


@pytest_twisted.ensureDeferred
async def test_random_bytes_are_refused_without_a_child(strict_server):
    before = len(strict_server.log())
    sock = raw_connect(strict_server)
    sock.sendall(b"\x8f\x00garbage\xff" * 50 + b"\n")
    wait_closed(sock)
    cid = connection_id(strict_server, before)
    await strict_server.wait_for_log(rf"{cid}: closing: bad bootstrap: the bootstrap line is not a")
    assert no_child_started(strict_server, cid)
    await assert_serves(strict_server)


@pytest_twisted.ensureDeferred
async def test_endless_line_is_refused(strict_server):
    before = len(strict_server.log())
    sock = raw_connect(strict_server)
    try:
        sock.sendall(b"'" + b"x" * (handshake.MAX_BOOTSTRAP_SIZE + 10))
    except (BrokenPipeError, ConnectionResetError):
        pass
    wait_closed(sock)
    cid = connection_id(strict_server, before)
    await strict_server.wait_for_log(rf"{cid}: closing: no bootstrap line in the first")
    assert no_child_started(strict_server, cid)
    await assert_serves(strict_server)


@pytest_twisted.ensureDeferred
async def test_idle_client_is_dropped(strict_server):
    before = len(strict_server.log())
    started = time.monotonic()
    sock = raw_connect(strict_server)
    wait_closed(sock)
    assert 0.5 < time.monotonic() - started < 5
    cid = connection_id(strict_server, before)
    await strict_server.wait_for_log(
        rf"{cid}: closing: the client did not send its bootstrap within 1 s"
    )
    await assert_serves(strict_server)


def half_bootstrap(where):
    """A bootstrap cut inside its line, or inside the runtime after it."""
    data = sourceBootstrap({})
    return data[:50] if where == "line" else data[: len(data) // 2]


@pytest.mark.parametrize("where", ["line", "runtime"])
@pytest_twisted.ensureDeferred
async def test_half_bootstrap_then_silence_is_dropped(strict_server, where):
    before = len(strict_server.log())
    sock = raw_connect(strict_server)
    sock.sendall(half_bootstrap(where))
    wait_closed(sock)
    cid = connection_id(strict_server, before)
    await strict_server.wait_for_log(rf"{cid}: closing: the client did not send its bootstrap")
    assert no_child_started(strict_server, cid)
    await assert_serves(strict_server)


@pytest.mark.parametrize("where", ["line", "runtime"])
@pytest_twisted.ensureDeferred
async def test_half_bootstrap_then_close(strict_server, where):
    before = len(strict_server.log())
    sock = raw_connect(strict_server)
    sock.sendall(half_bootstrap(where))
    sock.shutdown(socket.SHUT_WR)
    wait_closed(sock)
    cid = connection_id(strict_server, before)
    await strict_server.wait_for_log(rf"{cid}: the client went away")
    assert no_child_started(strict_server, cid)
    await assert_serves(strict_server)


def test_bootstrap_body_size_matches_what_clients_send():
    for make in (bootstrap.sourceBootstrap, bootstrap.compiledBootstrap):
        data = make({"env": {"A": "B"}})
        line, _, body = data.partition(b"\n")
        assert bootstrapBodySize(line) == len(body) > 10000
    with pytest.raises(ValueError, match="too large"):
        bootstrapBodySize(b"'sys.stdin.read(600000)'")
    with pytest.raises(ValueError, match="not a Python string literal"):
        bootstrapBodySize(b"import os")
    with pytest.raises(ValueError, match="not ASCII"):
        bootstrapBodySize("'\u00e9'".encode())


def bootstrapped(daemon):
    """A raw connection whose child has bootstrapped and said hello."""
    sock = raw_connect(daemon)
    sock.sendall(sourceBootstrap({}))
    header = b""
    while len(header) < HEADER_SIZE:
        header += sock.recv(HEADER_SIZE - len(header))
    _, _, length = HEADER.unpack(header)
    while length:
        length -= len(sock.recv(length))
    return sock


@pytest_twisted.ensureDeferred
async def test_oversized_frame_closes_and_kills_the_child(strict_server):
    before = len(strict_server.log())
    sock = bootstrapped(strict_server)
    cid = connection_id(strict_server, before)
    assert len(strict_server.children()) == 1
    # Only the header: the daemon refuses the frame before its payload comes.
    sock.sendall(HEADER.pack(CHANNEL_DATA, 1, 65537))
    wait_closed(sock)
    await strict_server.wait_for_log(
        rf"{cid}: closing: protocol error: frame of 65537 bytes exceeds the limit of 65536"
    )
    await strict_server.wait_for_children(0)
    await assert_serves(strict_server)


@pytest_twisted.ensureDeferred
async def test_unknown_frame_type_closes(strict_server):
    before = len(strict_server.log())
    sock = bootstrapped(strict_server)
    cid = connection_id(strict_server, before)
    sock.sendall(HEADER.pack(200, 1, 0))
    wait_closed(sock)
    await strict_server.wait_for_log(rf"{cid}: closing: protocol error: unknown message type 200")
    await strict_server.wait_for_children(0)


@pytest_twisted.ensureDeferred
async def test_gateway_sending_an_item_over_the_limit_is_cut_off(strict_server):
    gw = await txexecnet.makegateway(strict_server.spec())
    ch = gw.remote_exec("channel.send(len(channel.receive()))")
    ch.send(b"x" * 100_000)
    with pytest.raises(GatewayClosed):
        await ch.receive(T)
    await gw.whenTerminated()
    await strict_server.wait_for_log(r"frame of \d+ bytes exceeds the limit of 65536")


@pytest_twisted.ensureDeferred
async def test_max_connections(start_daemon):
    daemon = start_daemon("--max-connections", "2")
    first = await txexecnet.makegateway(daemon.spec())
    second = await txexecnet.makegateway(daemon.spec())
    with pytest.raises(GatewayStartError, match="too many connections"):
        await txexecnet.makegateway(daemon.spec())
    await daemon.wait_for_log(r"refused tcp:127\.0\.0\.1:\d+: too many connections \(2 allowed\)")
    assert len(daemon.children()) == 2
    await first.exit(timeout=T)
    await daemon.wait_for_children(1)
    await assert_serves(daemon)
    await second.exit(timeout=T)


# --- isolation -------------------------------------------------------------------


@pytest.fixture(scope="module")
def isolation_server(tmp_path_factory):
    """A daemon whose children may use 512 MiB of address space each."""
    daemon = shared_daemon(tmp_path_factory, "--memory-limit", "512")
    yield daemon
    daemon.stop()


@pytest_twisted.async_yield_fixture()
async def bystander(isolation_server):
    """A second connection, which must not notice what happens to the first."""
    gw = await txexecnet.makegateway(isolation_server.spec())
    ch = gw.remote_exec("for x in channel:\n    channel.send(x * 2)")
    ch.send(1)
    assert await ch.receive(T) == 2
    yield ch
    ch.send(21)
    assert await ch.receive(T) == 42
    ch.close()
    await gw.exit(timeout=T)


@pytest.mark.parametrize(
    "code, logged",
    [
        ("import os\nos._exit(1)", "exited with status 1"),
        ("import ctypes\nctypes.string_at(0)", "was killed by signal 11"),
    ],
    ids=["os._exit", "segfault"],
)
@pytest_twisted.ensureDeferred
async def test_dying_child_ends_its_connection_only(isolation_server, bystander, code, logged):
    gw = await txexecnet.makegateway(isolation_server.spec())
    pid = gw.remoteinfo["pid"]
    ch = gw.remote_exec(code)
    with pytest.raises(GatewayClosed):
        await ch.receive(T)
    await gw.whenTerminated()
    await isolation_server.wait_for_log(rf"child {pid} {logged}; closing the connection")
    assert pid not in isolation_server.children()


@pytest_twisted.ensureDeferred
async def test_exception_and_memory_leak_stay_in_their_channel(isolation_server, bystander):
    gw = await txexecnet.makegateway(isolation_server.spec())
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        await gw.remote_exec("1/0").waitclose(T)
    leak = "hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 2**20))"
    with pytest.raises(RemoteError, match="MemoryError"):
        await gw.remote_exec(leak).waitclose(T)
    ch = gw.remote_exec("channel.send('still here')")
    assert await ch.receive(T) == "still here"
    await gw.exit(timeout=T)


CLIENT_SCRIPT = """
import sys
from txexecnet import blocking
gw = blocking.SocketGateway("127.0.0.1", int(sys.argv[1]))
ch = gw.remote_exec('''
import os, subprocess, time
grandchild = subprocess.Popen(["sleep", "60"])
channel.send((os.getpid(), grandchild.pid))
time.sleep(60)
''')
print(*ch.receive(timeout=10), flush=True)
sys.stdin.read()
"""


def test_dropped_client_kills_its_child_and_grandchildren(isolation_server):
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, str(isolation_server.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert select.select([client.stdout], [], [], WAIT)[0], "the client did not start"
        child, grandchild = map(int, client.stdout.readline().split())
        assert child in isolation_server.children()
        assert alive(grandchild)
    finally:
        client.kill()
        client.wait(WAIT)
    wait_until(lambda: not alive(child), what="the child to be killed")
    wait_until(lambda: not alive(grandchild), what="the grandchild to be killed")
    # The daemon logs the death once it has reaped the child: wait for it.
    wait_until(
        lambda: isolation_server.logged(rf"child {child} was killed by signal 9"),
        what="the daemon to log the child's death",
    )


@pytest_twisted.ensureDeferred
async def test_stopping_the_daemon_kills_every_child(start_daemon):
    daemon = start_daemon()
    gateways = [await txexecnet.makegateway(daemon.spec()) for _ in range(2)]
    channels = [gw.remote_exec("import time\nchannel.send(1)\ntime.sleep(60)") for gw in gateways]
    for ch in channels:
        assert await ch.receive(T) == 1
    pids = {gw.remoteinfo["pid"] for gw in gateways}
    assert daemon.children() == pids
    daemon.stop()
    assert not any(alive(pid) for pid in pids)
    for gw, ch in zip(gateways, channels):
        await gw.whenTerminated()
        with pytest.raises(GatewayClosed):
            await ch.receive(T)
    assert "the server is stopping" in daemon.log()


def test_child_program_is_valid_python():
    source = handshake.child_program(1234, memory_limit=64)
    compile(source, "<child>", "exec")
    assert source.endswith(handshake.BOOTSTRAP_COMMAND)
    # A child whose server is gone before it starts does not run.
    proc = subprocess.run(
        [sys.executable, "-c", handshake.child_program(1)],
        input=b"'print(1)'\n",
        capture_output=True,
        timeout=WAIT,
    )
    assert proc.returncode == 1 and proc.stdout == b""

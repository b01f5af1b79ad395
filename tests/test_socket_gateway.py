"""
Socket gateways from the client's side: spec strings, the shared-secret
handshake, TLS with client certificates, unix sockets, the standalone
stdlib-only server and the seed's "triangle", and a fuzzed handshake.
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import protocol

import txexecnet
from fixtures_server import WAIT, shared_daemon, wait_until
from processes import process_children
from txexecnet import AuthenticationError, GatewayStartError, bootstrap
from txexecnet.bootstrap import sourceBootstrap
from txexecnet.script import socketserver as handshake
from txexecnet.script import socketserverSource
from txexecnet.transports.socket import SocketTransport, parseHostPort

T = 10


async def run_code(gw):
    ch = gw.remote_exec("import os\nchannel.send((os.getpid(), channel.receive() * 2))")
    ch.send(21)
    pid, answer = await ch.receive(T)
    assert answer == 42 and pid == gw.remoteinfo["pid"]
    await gw.exit(timeout=T)


# --- spec strings ----------------------------------------------------------------


def test_parse_host_port():
    assert parseHostPort("127.0.0.1:7770") == ("127.0.0.1", 7770)
    assert parseHostPort("localhost:1") == ("localhost", 1)
    assert parseHostPort("[::1]:7770") == ("::1", 7770)
    assert parseHostPort("tls:example.org:7771:trustRoots=/ca") is None
    assert parseHostPort("unix:path=/run/x.sock") is None
    assert parseHostPort("tcp:host=h:port=1") is None


def test_socket_spec():
    from txexecnet.constructors import socketSpec

    assert socketSpec("127.0.0.1", 7770) == "socket=127.0.0.1:7770"
    assert socketSpec("::1", 7770) == "socket=[::1]:7770"
    assert socketSpec("unix:path=/x") == "socket=unix:path=/x"
    assert socketSpec("h", 1, secret_file="/s") == "socket=h:1//secret_file=/s"
    spec = txexecnet.XSpec("socket=tls:h:1:trustRoots=/ca//secret_file=/s//id=x")
    assert (spec.socket, spec.secret_file, spec.id) == ("tls:h:1:trustRoots=/ca", "/s", "x")


def test_bad_socket_specs():
    with pytest.raises(ValueError, match="python="):
        txexecnet.makegateway("socket=127.0.0.1:1//python=python3")
    with pytest.raises(ValueError, match="cannot read secret_file"):
        txexecnet.makegateway("socket=127.0.0.1:1//secret_file=/nonexistent/secret")
    with pytest.raises(ValueError, match="secret or secret_file"):
        txexecnet.SocketGateway("127.0.0.1", 1, secret="a", secret_file="/b")


@pytest.mark.parametrize("address", ["nosuchtype:whatever", "nohostport", "127.0.0.1"])
def test_a_malformed_address_is_a_value_error_before_anything_starts(address):
    with pytest.raises(ValueError, match="write HOST:PORT"):
        txexecnet.makegateway(f"socket={address}")


@pytest_twisted.ensureDeferred
async def test_nobody_listening():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(GatewayStartError, match=f"cannot connect to 127.0.0.1:{port}"):
        await txexecnet.SocketGateway("127.0.0.1", port)


@pytest_twisted.ensureDeferred
async def test_not_a_txexecnet_server():
    from twisted.internet import reactor

    class Chatty(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(b"SSH-2.0-OpenSSH_9.2\r\n")

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Chatty), interface="127.0.0.1")
    try:
        with pytest.raises(GatewayStartError, match="not a txexecnet server"):
            await txexecnet.SocketGateway("127.0.0.1", port.getHost().port)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_socket_gateway_function_and_spec(execnet_server):
    await run_code(await txexecnet.SocketGateway("127.0.0.1", execnet_server.port))
    gw = await txexecnet.makegateway(execnet_server.spec("//id=sock//chdir=/tmp//env:X=1"))
    assert gw.id == "sock" and gw.remoteinfo["cwd"] == "/tmp"
    ch = gw.remote_exec("import os\nchannel.send(os.environ['X'])")
    assert await ch.receive(T) == "1"
    await gw.exit(timeout=T)


RUNTIME_FILE = "channel.send(type(channel).__init__.__code__.co_filename)"


@pytest_twisted.ensureDeferred
async def test_runtime_goes_compiled_to_the_same_python(execnet_server):
    # The server's greeting names its children's bytecode magic number.
    gw = await txexecnet.makegateway(execnet_server.spec())
    assert (await gw.remote_exec(RUNTIME_FILE).receive(T)).endswith("_remote.py")
    await gw.exit(timeout=T)


def test_blocking_socket_gateway_as_a_script(execnet_server):
    script = f"""
from txexecnet import blocking
gw = blocking.SocketGateway("127.0.0.1", {execnet_server.port})
ch = gw.remote_exec("channel.send(channel.receive() + 1)")
ch.send(1)
print(ch.receive(timeout=10))
gw.exit()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2\n"


# --- the shared secret -------------------------------------------------------------


SECRET = b"correct horse battery staple"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secret") / "secret"
    path.write_bytes(SECRET + b"\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def secret_server(tmp_path_factory, secret_file):
    daemon = shared_daemon(tmp_path_factory, "--secret-file", secret_file, "--idle-timeout", "2")
    yield daemon
    daemon.stop()


@pytest_twisted.ensureDeferred
async def test_right_secret(secret_server, secret_file):
    await run_code(await txexecnet.SocketGateway("127.0.0.1", secret_server.port, secret=SECRET))
    await run_code(
        await txexecnet.SocketGateway("127.0.0.1", secret_server.port, secret=SECRET.decode())
    )
    await run_code(await txexecnet.makegateway(secret_server.spec(f"//secret_file={secret_file}")))
    await secret_server.wait_for_log(r"c\d+: authenticated")
    assert "anyone who can connect" not in secret_server.log()


@pytest_twisted.ensureDeferred
async def test_wrong_secret_is_refused_and_spawns_nothing(secret_server):
    before = len(secret_server.log())
    with pytest.raises(AuthenticationError, match="refused us: authentication failed"):
        await txexecnet.SocketGateway("127.0.0.1", secret_server.port, secret=b"guess")
    log = await secret_server.wait_for_log(r"refused tcp:127\.0\.0\.1:\d+: authentication failed")
    assert "HMAC does not match" in log[before:]
    assert "started" not in log[before:]
    assert not secret_server.children()


@pytest_twisted.ensureDeferred
async def test_no_secret_is_refused(secret_server):
    with pytest.raises(AuthenticationError, match="requires a shared secret"):
        await txexecnet.SocketGateway("127.0.0.1", secret_server.port)
    assert not secret_server.children()


@pytest_twisted.ensureDeferred
async def test_secret_against_a_server_without_one(execnet_server):
    # The server cannot prove it knows the secret: it may be an impostor.
    with pytest.raises(AuthenticationError, match="asks for none"):
        await txexecnet.SocketGateway("127.0.0.1", execnet_server.port, secret=SECRET)


@pytest_twisted.ensureDeferred
async def test_server_must_prove_it_has_the_secret():
    from twisted.internet import reactor

    class Impostor(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(handshake.greeting(handshake.new_nonce()))

        def dataReceived(self, data):
            self.transport.write(b"ok " + b"0" * 64 + b"\n")

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Impostor), interface="127.0.0.1")
    try:
        with pytest.raises(AuthenticationError, match="does not know the secret"):
            await txexecnet.SocketGateway("127.0.0.1", port.getHost().port, secret=SECRET)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_idle_client_is_dropped_before_authenticating(secret_server):
    sock = socket.create_connection(("127.0.0.1", secret_server.port), timeout=WAIT)
    assert sock.recv(100).startswith(b"TXEXECNET/1 hmac-sha256 ")
    assert sock.recv(100) == b""  # closed after --idle-timeout 2
    await secret_server.wait_for_log(r"the client did not authenticate within 2 s")


def test_empty_secret_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        SocketTransport("127.0.0.1:1", secret=b"")
    (tmp_path / "secret").write_bytes(b"\n")
    with pytest.raises(ValueError, match="empty"):
        SocketTransport.fromSecretFile("127.0.0.1:1", str(tmp_path / "secret"))


def test_handshake_functions_round_trip():
    nonce = handshake.new_nonce()
    assert handshake.parse_greeting(handshake.greeting(nonce)[:-1]) == (nonce, None)
    assert handshake.parse_greeting(handshake.greeting()[:-1]) == (None, None)
    assert handshake.parse_greeting(handshake.greeting(nonce, b"\xa7\r\r\n")[:-1]) == (
        nonce,
        b"\xa7\r\r\n",
    )
    line, client_nonce = handshake.auth_response(SECRET, nonce)
    assert handshake.check_auth_response(SECRET, nonce, line[:-1]) == client_nonce
    assert SECRET not in line
    with pytest.raises(handshake.HandshakeError):
        handshake.check_auth_response(b"other", nonce, line[:-1])
    ok = handshake.ok_line(SECRET, nonce, client_nonce)
    handshake.check_ok_line(SECRET, nonce, client_nonce, ok[:-1])
    with pytest.raises(handshake.HandshakeError):
        handshake.check_ok_line(SECRET, handshake.new_nonce(), client_nonce, ok[:-1])
    with pytest.raises(handshake.Refused, match="busy"):
        handshake.parse_greeting(handshake.refusal("busy")[:-1])


# --- TLS and unix sockets -----------------------------------------------------------


def make_certificates(directory):
    """A CA, a server certificate for 127.0.0.1, a client certificate; and a stranger."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)

    def write(name, cert, key):
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def issue(name, issuer=None, ca=False, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        signer_name, signer_key = issuer if issuer else (subject, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(signer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(signer_key, hashes.SHA256())
        write(name, cert, key)
        return subject, key

    ca = issue("ca", ca=True)
    issue(
        "server",
        ca,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    issue("client", ca)
    stranger_ca = issue("stranger-ca", ca=True)
    issue("stranger", stranger_ca)
    trust = directory / "trust"
    trust.mkdir()
    (trust / "ca.pem").write_bytes((directory / "ca.pem").read_bytes())


#: Twisted's tls: client endpoint hands pyOpenSSL objects to pyOpenSSL,
#: which now prefers cryptography's.
pyopenssl_objects = pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    certs = tmp_path_factory.mktemp("certs")
    make_certificates(certs)
    daemon = shared_daemon(
        tmp_path_factory,
        "--tls",
        "tcp:0:interface=127.0.0.1",
        "--certificate",
        str(certs / "server.pem"),
        "--private-key",
        str(certs / "server.key"),
        "--client-ca",
        str(certs / "ca.pem"),
    )
    daemon.port = int(re.search(r"listening on tcp:127\.0\.0\.1:(\d+)", daemon.log()).group(1))
    daemon.certs = certs
    yield daemon
    daemon.stop()


def tls_spec(daemon, who=None):
    spec = f"socket=tls:127.0.0.1:{daemon.port}:trustRoots={daemon.certs / 'trust'}"
    if who:
        spec += f":certificate={daemon.certs / who}.pem:privateKey={daemon.certs / who}.key"
    return spec


@pyopenssl_objects
@pytest_twisted.ensureDeferred
async def test_tls_with_a_client_certificate(tls_server):
    assert "anyone who can connect" not in tls_server.log()
    await run_code(await txexecnet.makegateway(tls_spec(tls_server, "client")))
    await run_code(await txexecnet.SocketGateway(tls_spec(tls_server, "client")[len("socket=") :]))


@pyopenssl_objects
@pytest.mark.parametrize("who", [None, "stranger"], ids=["no-certificate", "other-ca"])
@pytest_twisted.ensureDeferred
async def test_tls_without_an_accepted_certificate_is_refused(tls_server, who):
    with pytest.raises(GatewayStartError, match="closed the connection during the handshake"):
        await txexecnet.makegateway(tls_spec(tls_server, who))
    assert not tls_server.children()
    await run_code(await txexecnet.makegateway(tls_spec(tls_server, "client")))


@pyopenssl_objects
@pytest_twisted.ensureDeferred
async def test_tls_client_refuses_an_unknown_server(tls_server, tmp_path):
    (tmp_path / "empty-trust").mkdir()
    (tmp_path / "empty-trust" / "stranger.pem").write_bytes(
        (tls_server.certs / "stranger-ca.pem").read_bytes()
    )
    spec = (
        f"socket=tls:127.0.0.1:{tls_server.port}:trustRoots={tmp_path / 'empty-trust'}"
        f":certificate={tls_server.certs}/client.pem:privateKey={tls_server.certs}/client.key"
    )
    with pytest.raises(GatewayStartError):
        await txexecnet.makegateway(spec)


@pytest_twisted.ensureDeferred
async def test_unix_socket(start_daemon, tmp_path):
    path = tmp_path / "execnet.sock"
    daemon = start_daemon("--listen", f"unix:{path}:mode=600")
    assert daemon.addresses == [f"unix:{path}"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    await run_code(await txexecnet.makegateway(f"socket=unix:path={path}"))


# --- the standalone server ------------------------------------------------------------


def test_script_source_is_shipped_with_the_package():
    assert socketserverSource() == open(handshake.__file__).read()
    assert handshake.BOOTSTRAP_COMMAND == bootstrap.BOOTSTRAP_COMMAND
    # Only the standard library: it runs with site-packages out of reach.
    out = subprocess.run(
        [sys.executable, "-I", "-S", handshake.__file__, "--help"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 0 and "stdlib only" in out.stdout


@pytest_twisted.ensureDeferred
async def test_triangle():
    """
    The seed's triangle: a popen gateway runs the standalone server, which
    tells its port; a socket gateway connects to it and runs code there.
    """
    proxy = await txexecnet.makegateway("popen")
    server = proxy.remote_exec(txexecnet.script.socketserver)
    server.send(("127.0.0.1", 0))
    status, port = await server.receive(T)
    assert status == "ok"
    gw = await txexecnet.SocketGateway("127.0.0.1", port)
    assert gw.remoteinfo["pid"] in process_children(proxy.remoteinfo["pid"])
    await run_code(gw)
    server.close()
    await server.waitclose(T)
    await proxy.exit(timeout=T)


@pytest.fixture
def standalone_server(secret_file):
    """The script run as a program, with a secret."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-S",
            handshake.__file__,
            "--secret-file",
            secret_file,
            "--idle-timeout",
            "2",
            "--python",
            f"{sys.executable} -X utf8",
            "127.0.0.1:0",
        ],
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        bufsize=0,
    )
    output = [b""]

    def read_until(pattern):
        # Unbuffered reads, so that select() sees every line not yet read.
        while True:
            match = re.search(pattern, output[0].decode())
            if match:
                output[0] = output[0][match.end() :]
                return match
            ready = select.select([proc.stderr], [], [], WAIT)[0]
            assert ready, f"{pattern!r} not in {output[0]!r}"
            data = os.read(proc.stderr.fileno(), 65536)
            assert data, f"the server ended: {output[0]!r}"
            output[0] += data

    proc.port = int(read_until(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    proc.read_until = read_until
    yield proc
    proc.send_signal(signal.SIGINT)
    proc.wait(WAIT)


@pytest_twisted.ensureDeferred
async def test_standalone_server_with_a_secret(standalone_server):
    gw = await txexecnet.SocketGateway("127.0.0.1", standalone_server.port, secret=SECRET)
    # Its children run another command line than its own, so it does not
    # vouch for their bytecode: the runtime goes as source.
    assert await gw.remote_exec(RUNTIME_FILE).receive(T) == "txexecnet_remote"
    assert await gw.remote_exec("import sys\nchannel.send(sys.flags.utf8_mode)").receive(T) == 1
    await run_code(gw)
    with pytest.raises(AuthenticationError):
        await txexecnet.SocketGateway("127.0.0.1", standalone_server.port, secret=b"wrong")
    standalone_server.read_until(r"authentication failed")
    assert not process_children(standalone_server.pid)


def test_standalone_server_kills_the_child_of_a_dropped_client(standalone_server):
    sock = socket.create_connection(("127.0.0.1", standalone_server.port), timeout=WAIT)
    greeting = sock.recv(200).rstrip(b"\n")
    line, _ = handshake.auth_response(SECRET, handshake.parse_greeting(greeting)[0])
    sock.sendall(line)
    assert sock.recv(200).startswith(b"ok ")
    sock.sendall(sourceBootstrap({}))
    child = int(standalone_server.read_until(r"child (\d+) started").group(1))
    wait_until(lambda: child in process_children(standalone_server.pid), what="the child")
    sock.close()
    standalone_server.read_until(rf"the client went away; killing child {child}")
    wait_until(lambda: not process_children(standalone_server.pid), what="the child to go")


# --- fuzzing the handshake ---------------------------------------------------------------

BOOTSTRAP = sourceBootstrap({})


@pytest.fixture(scope="module")
def fuzz_servers(tmp_path_factory, secret_file):
    daemons = [
        shared_daemon(tmp_path_factory, "--idle-timeout", "2"),
        shared_daemon(tmp_path_factory, "--idle-timeout", "2", "--secret-file", secret_file),
    ]
    yield daemons
    for daemon in daemons:
        daemon.stop()


def junk():
    """Random bytes, and random bytes after plausible beginnings."""
    response = st.from_regex(rb"\A[0-9a-f]{32} [0-9a-f]{64}\n\Z")
    truncated = st.integers(0, len(BOOTSTRAP)).map(lambda n: BOOTSTRAP[:n])
    prefix = st.one_of(st.just(b""), response, truncated, st.just(b"''\n"), st.just(BOOTSTRAP))
    return st.tuples(prefix, st.binary(max_size=300)).map(b"".join)


#: Seconds each fuzzed connection may take to be closed by the daemon (its
#: idle timeout is 2 s): bounds the whole test well inside its own timeout,
#: so that pytest-timeout's alarm never lands inside Hypothesis, which takes
#: it for a failing example and goes on shrinking.
FUZZ_WAIT = 4.0


@pytest.mark.timeout(80 * FUZZ_WAIT + 60)
@pytest_twisted.ensureDeferred
async def test_fuzzed_handshake_leaves_the_daemon_serving(fuzz_servers):
    @settings(
        max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(junk(), st.sampled_from([0, 1]))
    def send(data, which):
        daemon = fuzz_servers[which]
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=FUZZ_WAIT) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            except (ConnectionResetError, BrokenPipeError):
                pass
            except OSError as e:
                # The daemon may drop junk before our shutdown() gets to it.
                if e.errno != errno.ENOTCONN:
                    raise

    send()
    for daemon in fuzz_servers:
        wait_until(lambda: not daemon.children(), what="the fuzzed connections' children to go")
        assert daemon.running()
    await run_code(await txexecnet.makegateway(fuzz_servers[0].spec()))
    await run_code(await txexecnet.SocketGateway("127.0.0.1", fuzz_servers[1].port, secret=SECRET))


def _greeted(server):
    """A raw connection to C{server} and the nonce of its challenge."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=T)
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    nonce, _ = handshake.parse_greeting(line.rstrip(b"\n"))
    return sock, nonce


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return [int(line.split()[1]) for line in f if line.startswith("VmRSS:")][0]


def test_a_replayed_authentication_is_refused_and_spawns_nothing(secret_server):
    # An answer recorded from one connection does not open another: each
    # has a nonce of its own.
    first, nonce = _greeted(secret_server)
    answer, _ = handshake.auth_response(SECRET, nonce)
    first.close()
    second, other = _greeted(secret_server)
    assert other != nonce
    second.sendall(answer)
    reply = second.recv(4096)
    second.close()
    assert b"authentication failed" in reply or reply == b""
    assert not secret_server.children()


def test_200_junk_connections_are_refused_with_flat_memory_and_no_child(secret_server):
    junk = [b"\x00" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"x" * 5000, b"\n", b""]
    pid = secret_server.pid
    before = _rss_kib(pid)
    spawned = set()
    for i in range(200):
        sock, _ = _greeted(secret_server)
        if junk[i % len(junk)]:
            try:
                sock.sendall(junk[i % len(junk)])
            except OSError:
                pass
        sock.close()
        if i % 20 == 0:
            spawned |= secret_server.children()
    deadline = time.monotonic() + T
    while time.monotonic() < deadline and len(open_connections(secret_server)) > 1:
        time.sleep(0.05)
    grown = _rss_kib(pid) - before
    print(f"server RSS {before} KiB before, {before + grown} KiB after 200 junk connections")
    assert not spawned and not secret_server.children()
    assert grown < 4096, f"the server grew by {grown} KiB"


def open_connections(server):
    """The server's TCP connections, as /proc sees them (its own listener included)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{server.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{server.pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes

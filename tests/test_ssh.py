"""
SSH gateways against a real OpenSSH server (the session's C{sshd} fixture):
host key checking, authentication, ssh_config aliases, connection sharing,
failures, IPv6, the seed's fileserver example, and the system-ssh transport.

The channel semantics themselves run over SSH in C{test_channel.py} (the
C{ssh} entry of C{conftest.SPEC_FACTORIES}).  The last part has the pure
pieces (ssh_config, known_hosts, destinations) without a server.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import textwrap
import time

import pytest
import pytest_twisted
from twisted.internet import defer, threads
from twisted.logger import globalLogPublisher

import txexecnet
from txexecnet import AuthenticationError, GatewayClosed, GatewayStartError, HostKeyError, XSpec
from txexecnet.group import Group
from txexecnet.transports.ssh import (
    HIGH_WATER,
    SshConnectionPool,
    SshOptions,
    SshTarget,
    SshTransport,
    defaultPool,
    parseDestination,
    remoteCommand,
)
from txexecnet.transports.ssh.config import SshConfig
from txexecnet.transports.ssh.knownhosts import KnownHosts, fingerprint, hostKeyAlgorithms

from conftest import sleep
from processes import alive
from seed_examples import check_fileserver
from sshd import PASSPHRASE

#: Seconds any single wait in these tests may take.
T = 15


@pytest.fixture(autouse=True)
def hermetic_home(tmp_path, monkeypatch):
    """
    A fresh, empty home directory and no ssh-agent, so that the user's own
    keys, agent and ~/.ssh/config cannot make a test pass (or fail).
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture(autouse=True)
def connections_closed(request):
    """Every SSH connection a test opened is closed once its gateways are."""
    yield
    deadline = time.monotonic() + 5
    while defaultPool.connections() and time.monotonic() < deadline:
        pytest_twisted.blockon(sleep(0.02))
    assert defaultPool.connections() == []
    if "sshd" in request.fixturenames:
        server = request.getfixturevalue("sshd")
        while server.connections() and time.monotonic() < deadline:
            pytest_twisted.blockon(sleep(0.02))
        assert server.connections() == 0


def known_hosts(tmp_path, *lines):
    path = tmp_path / "known_hosts"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


async def assert_runs(gw):
    """The gateway runs code; return the remote SSH_CONNECTION."""
    ch = gw.remote_exec("import os\nchannel.send(os.environ.get('SSH_CONNECTION'))")
    return await ch.receive(T)


# --- starting and running -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_ssh_gateway_function(sshd):
    gw = await txexecnet.SshGateway(
        f"{sshd.user}@127.0.0.1",
        port=sshd.port,
        identity=sshd.clientKey,
        known_hosts=sshd.knownHosts,
        password="never-sent-because-the-key-works",
        python=sshd.python,
        ssh_config=sshd.clientConfig,
    )
    try:
        assert gw.remoteinfo["executable"] == sshd.python
        connection = await assert_runs(gw)
        assert connection.split()[2:] == ["127.0.0.1", str(sshd.port)]
        assert str(gw.spec).startswith(f"ssh={sshd.user}@127.0.0.1:{sshd.port}//python=")
        assert "never-sent" not in str(gw.spec)
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_ipv6(sshd):
    gw = await txexecnet.makegateway(sshd.spec(host="::1"))
    try:
        connection = await assert_runs(gw)
        assert connection.split()[0] == "::1"
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_remote_output_reaches_the_log_with_the_gateway_id(sshd):
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        gw = await txexecnet.makegateway(sshd.spec(id="stderrgw"))
        ch = gw.remote_exec("import sys\nsys.stderr.write('to stderr\\n')\nprint('to stdout')")
        await ch.waitclose(T)
        await gw.exit()
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [(e["gateway"], e["stream"], e["text"]) for e in events if e.get("remote_output")]
    assert ("stderrgw", "stderr", "to stderr") in lines
    assert ("stderrgw", "stdout", "to stdout") in lines


@pytest_twisted.ensureDeferred
async def test_sender_waits_while_the_channel_buffer_is_full(sshd):
    gw = await txexecnet.makegateway(sshd.spec())
    try:
        # The remote side reads nothing for a while: what we send piles up in
        # the SSH channel, and our sends must wait instead of piling on.
        ch = gw.remote_exec(
            "import time\ntime.sleep(0.5)\ntotal = 0\nfor x in channel:\n"
            "    if x is None: break\n    total += len(x)\nchannel.send(total)"
        )
        item = b"x" * (1024 * 1024)
        session = gw._connection
        waited = 0
        for _ in range(16):
            d = ch.send(item)
            assert session._queued <= HIGH_WATER + len(item) + 64
            waited += not d.called
            await d
        ch.send(None)
        assert await ch.receive(T) == 16 * len(item)
        assert waited > 0
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_exit_kills_a_remote_that_does_not_end(sshd):
    gw = await txexecnet.makegateway(sshd.spec())
    pid = gw.remoteinfo["pid"]
    gw.remote_exec("import time\ntime.sleep(60)")
    started = time.monotonic()
    await gw.exit(timeout=0.3)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        await sleep(0.02)
    assert not alive(pid)


# --- host keys ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_unknown_host_key_is_refused(sshd, tmp_path):
    path = known_hosts(tmp_path)
    with pytest.raises(HostKeyError) as e:
        await txexecnet.makegateway(sshd.spec(ssh_known_hosts=path))
    message = str(e.value)
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert sshd.fingerprint() in message
    assert "not known" in message
    assert open(path).read() == ""


@pytest_twisted.ensureDeferred
async def test_changed_host_key_is_refused_even_with_accept_new(sshd, tmp_path):
    other = open(sshd.strangerKey + ".pub").read().split()
    path = known_hosts(tmp_path, "# first line", f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}")
    with pytest.raises(HostKeyError) as e:
        await txexecnet.makegateway(sshd.spec(ssh_known_hosts=path, ssh_accept_new=True))
    message = str(e.value)
    assert "CHANGED" in message
    assert sshd.fingerprint() in message
    assert f"{path}:2" in message


@pytest_twisted.ensureDeferred
async def test_accept_new_host_key_writes_what_openssh_reads(sshd, tmp_path):
    path = str(tmp_path / "new" / "known_hosts")
    gw = await txexecnet.makegateway(sshd.spec(ssh_known_hosts=path, ssh_accept_new=True))
    await gw.exit()
    written = open(path).read()
    assert written.startswith("|1|")  # hashed, as with HashKnownHosts yes
    # OpenSSH's own tools find the entry for the host and port...
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", path],
        capture_output=True,
        text=True,
        timeout=T,
    )
    assert found.returncode == 0 and sshd.hostKey()[1] in found.stdout
    # ...and so do we, without being told to accept anything.
    gw = await txexecnet.makegateway(sshd.spec(ssh_known_hosts=path))
    await gw.exit()
    assert open(path).read() == written


@pytest_twisted.ensureDeferred
async def test_the_host_key_type_on_file_is_the_one_asked_for(sshd, tmp_path):
    # The server has ed25519 and ECDSA host keys; with only the ECDSA one on
    # file, that is the one to negotiate (and the reverse in every other test).
    keyType, key = sshd.hostKey("ecdsa")
    path = known_hosts(tmp_path, f"[127.0.0.1]:{sshd.port} {keyType} {key}")
    gw = await txexecnet.makegateway(sshd.spec(ssh_known_hosts=path))
    await gw.exit()


# --- authentication ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_wrong_key_is_an_authentication_error(sshd):
    with pytest.raises(AuthenticationError) as e:
        await txexecnet.makegateway(sshd.spec(ssh_identity=sshd.strangerKey))
    assert sshd.strangerKey in str(e.value)
    assert "publickey" in str(e.value)


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_an_authentication_error(sshd):
    with pytest.raises(AuthenticationError) as e:
        await txexecnet.SshGateway(
            sshd.destination(),
            identity=sshd.strangerKey,
            known_hosts=sshd.knownHosts,
            password="wrong",
            python=sshd.python,
            ssh_config=sshd.clientConfig,
        )
    assert "password" in str(e.value)


@pytest_twisted.ensureDeferred
async def test_rsa_key_signs_with_sha2(sshd):
    # OpenSSH >= 8.8 refuses ssh-rsa (SHA-1) signatures, Conch's default.
    gw = await txexecnet.makegateway(sshd.spec(ssh_identity=sshd.rsaKey))
    await gw.exit()
    assert f"Accepted publickey for {sshd.user}" in sshd.log()


@pytest_twisted.ensureDeferred
async def test_passphrase_protected_key(sshd):
    common = dict(known_hosts=sshd.knownHosts, python=sshd.python, ssh_config=sshd.clientConfig)
    gw = await txexecnet.SshGateway(
        sshd.destination(), identity=sshd.ecdsaKey, passphrase=PASSPHRASE, **common
    )
    await gw.exit()
    with pytest.raises(AuthenticationError) as e:
        await txexecnet.SshGateway(sshd.destination(), identity=sshd.ecdsaKey, **common)
    assert "passphrase" in str(e.value)


@pytest_twisted.ensureDeferred
async def test_agent_authentication(sshd, tmp_path, monkeypatch):
    agentSocket = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", agentSocket], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + T
        while not os.path.exists(agentSocket) and time.monotonic() < deadline:
            await sleep(0.01)
        env = dict(os.environ, SSH_AUTH_SOCK=agentSocket)
        subprocess.run(
            ["ssh-add", "-q", sshd.clientKey], env=env, check=True, capture_output=True, timeout=T
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", agentSocket)
        # No key file anywhere (an empty home, an empty ssh_config): only the
        # agent holds the key.
        emptyConfig = tmp_path / "empty_config"
        emptyConfig.write_text("")
        gw = await txexecnet.makegateway(sshd.spec(ssh_identity=None, ssh_config=str(emptyConfig)))
        await gw.exit()
    finally:
        agent.terminate()
        agent.wait(T)


@pytest_twisted.ensureDeferred
async def test_ssh_config_alias(sshd, hermetic_home):
    dotssh = hermetic_home / ".ssh"
    dotssh.mkdir(mode=0o700)
    with open(sshd.clientKey) as f:
        (dotssh / "id_test").write_text(f.read())
    (dotssh / "id_test").chmod(0o600)
    (dotssh / "config").write_text(
        textwrap.dedent(
            f"""\
            Host other
                HostName 192.0.2.1
            Host test-alias !nomatch
                HostName 127.0.0.1
                Port {sshd.port}
                User {sshd.user}
                IdentityFile %d/.ssh/id_test
                UserKnownHostsFile {sshd.knownHosts}
            Host *
                Port 1
                IdentityAgent none
            """
        )
    )
    gw = await txexecnet.makegateway(f"ssh=test-alias//python={sshd.python}")
    try:
        connection = await assert_runs(gw)
        assert connection.split()[2:] == ["127.0.0.1", str(sshd.port)]
    finally:
        await gw.exit()


# --- sharing connections -----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_gateways_share_one_connection(sshd):
    gateways = await defer.gatherResults(
        [txexecnet.makegateway(sshd.spec()) for _ in range(3)], consumeErrors=True
    )
    try:
        assert len({gw.remoteinfo["pid"] for gw in gateways}) == 3
        assert sshd.connections() == 1
        [connection] = defaultPool.connections()
        assert connection.sessions == 3
        await gateways[0].exit()
        await gateways[1].exit()
        assert sshd.connections() == 1
        assert await assert_runs(gateways[2])
    finally:
        for gw in gateways:
            await gw.exit()
    # The last gateway out closes the connection.
    deadline = time.monotonic() + T
    while sshd.connections() and time.monotonic() < deadline:
        await sleep(0.02)
    assert sshd.connections() == 0


@pytest_twisted.ensureDeferred
async def test_a_full_connection_makes_another(sshd):
    pool = SshConnectionPool(maxSessions=2)
    group = Group()

    def start():
        options = SshOptions(
            sshd.destination(),
            identity=sshd.clientKey,
            known_hosts=sshd.knownHosts,
            python=sshd.python,
            ssh_config=sshd.clientConfig,
        )
        transport = SshTransport(options, pool=pool)
        return group.makegateway(options.spec(), transport=transport)

    await defer.gatherResults([start() for _ in range(3)], consumeErrors=True)
    try:
        assert sorted(c.sessions for c in pool.connections()) == [1, 2]
        assert sshd.connections() == 2
    finally:
        await group.terminate()
    assert pool.connections() == []


@pytest_twisted.ensureDeferred
async def test_different_host_key_policies_do_not_share(sshd, tmp_path):
    # A gateway that checks against another known_hosts file must not ride on
    # a connection whose host key was vouched for by a different one.
    other = tmp_path / "known_hosts"
    other.write_bytes(open(sshd.knownHosts, "rb").read())
    pool = SshConnectionPool()
    group = Group()

    def start(knownHosts):
        options = SshOptions(
            sshd.destination(),
            identity=sshd.clientKey,
            known_hosts=knownHosts,
            python=sshd.python,
            ssh_config=sshd.clientConfig,
        )
        transport = SshTransport(options, pool=pool)
        return group.makegateway(options.spec(), transport=transport)

    await defer.gatherResults([start(sshd.knownHosts), start(str(other))], consumeErrors=True)
    try:
        assert sorted(c.sessions for c in pool.connections()) == [1, 1]
    finally:
        await group.terminate()


# --- failures ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_nothing_listening_names_host_and_port(sshd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = sshd.spec().replace(f":{sshd.port}//", f":{port}//", 1)
    with pytest.raises(GatewayStartError) as e:
        await txexecnet.makegateway(spec)
    assert f"127.0.0.1:{port}" in str(e.value)
    assert "refused" in str(e.value)


@pytest_twisted.ensureDeferred
async def test_a_server_that_never_speaks_ssh_times_out(sshd, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n    ConnectTimeout 1\n    IdentityAgent none\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody answers
        port = silent.getsockname()[1]
        spec = sshd.spec(ssh_config=str(config)).replace(f":{sshd.port}//", f":{port}//", 1)
        started = time.monotonic()
        with pytest.raises(GatewayStartError) as e:
            await txexecnet.makegateway(spec)
    assert time.monotonic() - started < 5
    assert "after 1 s" in str(e.value)


@pytest_twisted.ensureDeferred
async def test_remote_python_not_found_quotes_remote_stderr(sshd):
    with pytest.raises(GatewayStartError) as e:
        await txexecnet.makegateway(sshd.spec(python="/nonexistent/python3"))
    message = str(e.value)
    assert "/nonexistent/python3: No such file or directory" in message
    assert "status 127" in message


@pytest_twisted.ensureDeferred
async def test_remote_python_killed_mid_stream(sshd):
    gw = await txexecnet.makegateway(sshd.spec())
    ch = gw.remote_exec(
        "import time\nwhile True:\n    channel.send(b'x' * 65536)\n    time.sleep(0.001)"
    )
    for _ in range(5):
        await ch.receive(T)
    closed = ch.waitclose()
    os.kill(gw.remoteinfo["pid"], signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(GatewayClosed) as e:
        while True:
            await ch.receive(T)
    assert "signal 9" in str(e.value)
    with pytest.raises(GatewayClosed):
        await closed
    assert time.monotonic() - started < 5
    assert gw.isTerminated()


def sshd_processes_serving(pid):
    """The sshd processes between sshd's listener and process C{pid}."""
    found = []
    while True:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        if b"sshd" not in cmdline or b"[listener]" in cmdline or b"-f" in cmdline.split(b"\0"):
            return found
        found.append(pid)


@pytest_twisted.ensureDeferred
async def test_sshd_killed_mid_conversation(sshd):
    first = await txexecnet.makegateway(sshd.spec())
    second = await txexecnet.makegateway(sshd.spec())
    pending = [
        first.remote_exec("channel.receive()").receive(),
        second.remote_exec("channel.receive()").waitclose(),
    ]
    serving = sshd_processes_serving(first.remoteinfo["pid"])
    assert serving
    for pid in serving:
        os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    for d in pending:
        with pytest.raises(GatewayClosed) as e:
            await d
        assert f"127.0.0.1:{sshd.port}" in str(e.value)
    assert time.monotonic() - started < 5
    assert first.isTerminated() and second.isTerminated()


# --- as the seed and execnet users write it --------------------------------------------


def test_fileserver_example_as_a_script(sshd, tmp_path):
    # The seed's fileserver example, through the blocking facade, in a fresh
    # interpreter as a user's script would run it.
    check_fileserver(
        tmp_path,
        f"blocking.SshGateway({sshd.destination()!r}, identity={sshd.clientKey!r}, "
        f"known_hosts={sshd.knownHosts!r}, python={sshd.python!r}, "
        f"ssh_config={sshd.clientConfig!r})",
    )


@pytest_twisted.ensureDeferred
async def test_blocking_makegateway_ssh_spec(sshd):
    from txexecnet import blocking

    def use():
        gw = blocking.makegateway(sshd.spec())
        try:
            ch = gw.remote_exec("channel.send(channel.receive() * 2)")
            ch.send(21)
            return ch.receive(timeout=T)
        finally:
            gw.exit()

    assert await threads.deferToThread(use) == 42


@pytest_twisted.ensureDeferred
async def test_openssh_client_transport(sshd):
    gw = await txexecnet.makegateway(sshd.spec(ssh_client="openssh"))
    try:
        assert gw.spec.ssh_client == "openssh"
        ch = gw.remote_exec("for x in channel:\n    channel.send(x[::-1])")
        big = os.urandom(4 * 1024 * 1024)
        ch.send(big)
        assert await ch.receive(T) == big[::-1]
        ch.close()
        assert (await assert_runs(gw)).split()[2:] == ["127.0.0.1", str(sshd.port)]
    finally:
        await gw.exit()


@pytest_twisted.ensureDeferred
async def test_openssh_client_unknown_host_quotes_ssh(sshd, tmp_path):
    path = known_hosts(tmp_path)
    with pytest.raises(GatewayStartError) as e:
        await txexecnet.makegateway(sshd.spec(ssh_client="openssh", ssh_known_hosts=path))
    assert "Host key verification failed" in str(e.value)


# --- the pieces, without a server -------------------------------------------------------


@pytest.mark.parametrize(
    "destination, expected",
    [
        ("host", (None, "host", None)),
        ("user@host", ("user", "host", None)),
        ("user@host:2222", ("user", "host", 2222)),
        ("me@corp@host:22", ("me@corp", "host", 22)),
        ("::1", (None, "::1", None)),
        ("root@[::1]:2222", ("root", "::1", 2222)),
        ("[fe80::1]", (None, "fe80::1", None)),
    ],
)
def test_parse_destination(destination, expected):
    assert parseDestination(destination) == expected


@pytest.mark.parametrize("bad", ["", "user@", "host:port", "[::1", "[::1]x"])
def test_parse_destination_rejects(bad):
    with pytest.raises(ValueError):
        parseDestination(bad)


def test_spec_keys():
    spec = XSpec(
        "ssh=a@b:3//ssh_identity=/k//ssh_known_hosts=/kh//ssh_accept_new//ssh_client=openssh"
    )
    assert (spec.ssh, spec.ssh_identity, spec.ssh_known_hosts) == ("a@b:3", "/k", "/kh")
    assert spec.ssh_accept_new is True and spec.ssh_client == "openssh"
    with pytest.raises(ValueError):
        txexecnet.makegateway("ssh=a@b//ssh_client=putty")


def test_remote_command_is_quoted_for_the_login_shell():
    command = remoteCommand("env PYTHONHASHSEED=0 '/opt/my python/bin/python3'").decode()
    import shlex

    assert shlex.split(command) == [
        "env",
        "PYTHONHASHSEED=0",
        "/opt/my python/bin/python3",
        "-u",
        "-c",
        "import sys;exec(eval(sys.stdin.readline()))",
    ]
    assert remoteCommand("~/venv/bin/python").startswith(b"~/venv/bin/python ")


def test_ssh_config_lookup(tmp_path):
    (tmp_path / "extra").write_text("Host inc\n    User included\n")
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(
            """\
            # comment
            Include extra
            Host web* !webtest
                User=webuser
                IdentityFile ~/.ssh/web
            Host web1
                User ignored-first-wins
                Port 2201
                IdentityFile /keys/web1
            Match exec "true"
                User never
            Match all
                Compression yes
            Host *
                User fallback
                Port 22
            """
        )
    )
    lookup = SshConfig.fromFiles([str(config)]).lookup
    web1 = lookup("web1")
    assert web1["user"] == "webuser"
    assert web1["port"] == "2201"
    assert web1["identityfile"] == ["~/.ssh/web", "/keys/web1"]
    assert web1["compression"] == "yes"
    assert lookup("webtest")["user"] == "fallback"
    assert lookup("inc")["user"] == "included"


def test_ssh_target_resolution(tmp_path, hermetic_home):
    config = tmp_path / "config"
    config.write_text(
        "Host box\n    HostName %h.example\n    User u\n    Port 2022\n"
        "    IdentityFile ~/.ssh/k_%r_%p\n    UserKnownHostsFile %d/kh\n    IdentityAgent none\n"
    )
    target = SshTarget("box", sshConfig=str(config))
    assert str(target) == "u@box.example:2022"
    assert target.identityFiles == [f"{hermetic_home}/.ssh/k_u_2022"]
    assert target.knownHosts.files == [f"{hermetic_home}/kh"]
    assert target.hostKeyName == "[box.example]:2022"
    assert target.agentSocket is None
    explicit = SshTarget("v@box:23", port=24, identity="/id", sshConfig=str(config))
    assert (explicit.user, explicit.port) == ("v", 24)
    assert explicit.identityFiles[0] == "/id"
    config.write_text("Host box\n    ProxyJump gateway\n")
    with pytest.raises(ValueError, match="ssh_client=openssh"):
        SshTarget("box", sshConfig=str(config))


def test_known_hosts_matching(tmp_path):
    blob = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + b"k" * 32
    other = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + b"o" * 32
    b64 = base64.b64encode(blob).decode()
    path = known_hosts(
        tmp_path,
        "# comment",
        "garbage",
        f"*.example.org,!bad.example.org ssh-ed25519 {b64}",
        f"[10.0.0.1]:2222 ssh-ed25519 {b64}",
        f"@revoked revoked.example ssh-ed25519 {b64}",
    )
    hosts = KnownHosts([path])
    hosts.check("a.example.org", "ssh-ed25519", blob)
    hosts.check("[10.0.0.1]:2222", "ssh-ed25519", blob)
    for name in ("bad.example.org", "10.0.0.1", "[10.0.0.1]:22"):
        with pytest.raises(HostKeyError, match="not known"):
            hosts.check(name, "ssh-ed25519", blob)
    with pytest.raises(HostKeyError, match="CHANGED"):
        hosts.check("a.example.org", "ssh-ed25519", other)
    with pytest.raises(HostKeyError, match="@revoked"):
        hosts.check("revoked.example", "ssh-ed25519", blob)
    assert hosts.knownTypes("[10.0.0.1]:2222") == ["ssh-ed25519"]
    # Accepting a new key appends a hashed entry that matches only that name.
    hosts.check("[new.host]:2200", "ssh-ed25519", other, acceptNew=True)
    hosts.check("[new.host]:2200", "ssh-ed25519", other)
    assert "new.host" not in open(path).read()
    with pytest.raises(HostKeyError):
        hosts.check("new.host", "ssh-ed25519", other)


def test_fingerprint_is_openssh_style(sshd):
    keyType, key = sshd.hostKey()
    assert fingerprint(base64.b64decode(key)) == sshd.fingerprint()


def test_host_key_algorithms_prefer_known_types():
    supported = [
        b"ecdsa-sha2-nistp256",
        b"rsa-sha2-512",
        b"rsa-sha2-256",
        b"ssh-rsa",
        b"ssh-ed25519",
    ]
    assert hostKeyAlgorithms([], supported)[0] == b"ssh-ed25519"
    assert hostKeyAlgorithms(["ssh-rsa"], supported)[:3] == [
        b"rsa-sha2-512",
        b"rsa-sha2-256",
        b"ssh-rsa",
    ]
    assert hostKeyAlgorithms(["ecdsa-sha2-nistp256"], supported)[0] == b"ecdsa-sha2-nistp256"
    assert sorted(hostKeyAlgorithms(["ssh-ed25519"], supported)) == sorted(supported)


class RecordingTransport:
    """The SSH transport layer under a connection, as far as keepalives need it."""

    def __init__(self):
        self.packets = []
        self.aborted = False
        self.transport = self

    def sendPacket(self, messageType, payload):
        self.packets.append((messageType, payload))

    def abortConnection(self):
        self.aborted = True


def test_conch_connections_send_keepalives_and_drop_a_server_that_answers_none(tmp_path):
    from twisted.conch.ssh.connection import MSG_GLOBAL_REQUEST
    from twisted.internet.task import Clock

    from txexecnet.transports.ssh import SshConnection

    config = tmp_path / "ssh_config"
    config.write_text("")
    clock = Clock()
    connection = SshConnection(
        SshConnectionPool(), SshTarget("box", sshConfig=str(config)), clock, keepalive=5
    )
    transport = connection.transport = RecordingTransport()
    connection.serviceStarted()
    clock.advance(5)
    assert transport.packets[-1][0] == MSG_GLOBAL_REQUEST
    assert b"keepalive@openssh.com" in transport.packets[-1][1]
    connection.ssh_REQUEST_FAILURE(b"")  # OpenSSH's answer: still there
    for _ in range(3):
        clock.advance(5)
    assert not transport.aborted
    clock.advance(5)
    assert transport.aborted

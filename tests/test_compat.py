"""
txexecnet.compat: execnet's API on txexecnet, over every transport, with
execnet code written as execnet's users write it.  Comparisons with the real
execnet (its serializer, its socket server) use the execnet installed for
the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

import txexecnet.compat as execnet
from fixtures_server import wait_until
from sshd import REMOTE_PYTHON
from txexecnet.compat import gateway_base
from txexecnet.compat.multi import coreSpec
from txexecnet.transports.ssh.options import parseCommandLine

T = 10


@pytest.fixture
def group():
    group = execnet.Group()
    yield group
    group.terminate(3)


@pytest.fixture
def execnet_socketserver():
    """execnet's own socket server script, serving connections in a loop on a free port."""
    import socket

    import execnet as real  # the real one: compat's install() is only ever called in subprocesses

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = os.path.join(os.path.dirname(real.__file__), "script", "socketserver.py")
    server = subprocess.Popen(
        [sys.executable, script, f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    # A probe connection is served (and ended) like any other.
    wait_until(listening, what="execnet's socket server to listen")
    yield f"socket=127.0.0.1:{port}"
    server.kill()
    server.wait(T)


def sshSpec(sshd) -> str:
    """An ssh spec as execnet users write it: OpenSSH options, then the destination."""
    options = f"-p {sshd.port} -i {sshd.clientKey} -o UserKnownHostsFile={sshd.knownHosts}"
    return f"ssh={options} {sshd.user}@127.0.0.1//python={REMOTE_PYTHON}"


def throughHop(spec):
    """A spec factory that first starts the popen gateway C{hop}, which C{spec} names."""

    def make(group, request):
        group.makegateway("popen//id=hop")
        return spec

    return make


#: How to get an execnet spec for each transport, given the group and the request.
SPECS = {
    "popen": lambda group, request: "popen",
    "via": throughHop("popen//via=hop"),
    "ssh": lambda group, request: sshSpec(request.getfixturevalue("sshd")),
    "socket": lambda group, request: request.getfixturevalue("execnet_server").spec(),
    "installvia": throughHop("socket//installvia=hop"),
    "execnet-socketserver": lambda group, request: request.getfixturevalue("execnet_socketserver"),
}


@pytest.fixture(params=sorted(SPECS))
def spec(request, group):
    return SPECS[request.param](group, request)


REMOTE = """
import threading
import execnet
assert __name__ == "__channelexec__"
model = channel.gateway.execmodel
lock, rlock, event = model.RLock(), model.Lock(), model.Event()
with lock, rlock:
    event.set()
q = model.queue.Queue()
q.put(execnet.dumps([1, "two"]))
channel.send((
    model.backend,
    event.is_set(),
    execnet.loads(q.get()),
    channel.gateway.id,
    threading.current_thread() is threading.main_thread(),
))
for item in channel:
    channel.send(item * 2)
"""


@pytest.mark.parametrize("execmodel", ["thread", "main_thread_only"])
def test_execnet_code_runs_unchanged_over_every_transport(group, spec, execmodel):
    gw = group.makegateway(f"execmodel={execmodel}//{spec}")
    assert gw.spec.execmodel == execmodel and str(gw.spec).startswith(f"execmodel={execmodel}//")
    assert gw.id == "gw0" or gw.id == "gw1"  # gw0 may be the via hop
    assert gw.hasreceiver()
    rinfo = gw._rinfo()
    assert gw._rinfo() is rinfo and len(rinfo.version_info) == 5
    assert rinfo.pid == gw.remoteinfo["pid"] and rinfo.cwd and rinfo.executable
    assert gw._rinfo(update=True) is not rinfo and gw._rinfo().pid == rinfo.pid
    ch = gw.remote_exec(REMOTE)
    backend, isSet, loaded, remoteId, inMainThread = ch.receive(T)
    assert (backend, isSet, loaded, remoteId) == (execmodel, True, [1, "two"], f"{gw.id}-worker")
    # Over execnet's socket servers the code runs where the server lets it.
    if "socket" not in spec:
        assert inMainThread == (execmodel == "main_thread_only")
    ch.send(21)
    assert ch.receive(T) == 42
    ch.close()
    assert ch.isclosed()
    assert gw.remote_status().numexecuting in (0, 1)
    gw.exit()
    gw.join(T)
    assert not gw.hasreceiver()


def test_remote_code_may_not_close_its_own_channel_as_in_execnet(group, spec):
    gw = group.makegateway(spec)
    with pytest.raises(execnet.RemoteError) as info:
        gw.remote_exec("channel.close()").waitclose(T)
    assert "cannot explicitly close channel within remote_exec" in info.value.formatted
    ch = gw.remote_exec(
        """
        f = channel.makefile("w", proxyclose=True)
        f.write("hello world")
        f.close()
        """
    )
    assert ch.receive(T) == "hello world"
    with pytest.raises(execnet.RemoteError, match="OSError"):
        ch.receive(T)
    # Any other channel it may close, and the runtime closes its own after it.
    other = gw.newchannel()
    done = gw.remote_exec("c = channel.receive(); c.close(); channel.send('closed')")
    done.send(other)
    assert done.receive(T) == "closed"
    other.waitclose(T)
    done.waitclose(T)


def test_a_gateways_channels_are_where_execnet_keeps_them_on_both_sides(group, spec):
    gw = group.makegateway(spec)
    factory = gw._channelfactory
    before = factory.channels()
    gw.remote_status()
    assert factory.channels() == before
    waiting = factory.new()
    assert waiting in factory.channels() and factory._channels[waiting.id] is waiting
    factory._local_close(waiting.id, waiting.RemoteError("told so"))
    with pytest.raises(execnet.RemoteError, match="told so"):
        waiting.waitclose(T)
    assert waiting.id not in factory._channels
    first = gw.remote_exec("channel.send(channel.gateway._channelfactory._channels[channel.id].id)")
    assert first.receive(T) == first.id
    first.waitclose(T)
    second = gw.remote_exec(
        "channel.send(%d in channel.gateway._channelfactory._channels)" % first.id
    )
    assert second.receive(T) is False
    assert first.id not in factory._channels


def test_remote_errors_timeouts_and_channel_calls_behave_as_in_execnet(group):
    gw = group.makegateway()
    ch = gw.remote_exec("channel.receive()\n1/0")
    with pytest.raises(execnet.TimeoutError):
        ch.receive(0.05)
    with pytest.raises(ch.TimeoutError):
        ch.waitclose(0.05)
    ch.send(None)
    with pytest.raises(execnet.RemoteError) as info:
        ch.waitclose(T)
    assert 'File "<remote exec>", line 2' in str(info.value) and "ZeroDivisionError" in str(
        info.value
    )
    assert isinstance(ch._getremoteerror(), gateway_base.RemoteError)
    assert ch.RemoteError is execnet.RemoteError

    plain = gw.remote_exec("channel.send(channel.receive())")
    plain.send("x")
    assert plain.receive(T) == "x"
    plain.waitclose(T)
    assert plain._getremoteerror() is None

    items = []
    cb = gw.remote_exec("for i in range(3): channel.send(i)")
    cb.setcallback(items.append, endmarker="END")
    cb.waitclose(T)
    wait_until(lambda: items == [0, 1, 2, "END"], what="the callback's items")

    closer = gw.remote_exec("channel.receive()")
    closer.close("told to stop")
    files = gw.remote_exec("f = channel.makefile('w'); f.write('a\\nb\\n'); f.close()")
    assert files.makefile("r").readlines() == ["a\n", "b\n"]
    assert list(gw.remote_exec("for i in range(3): channel.send(i)")) == [0, 1, 2]

    def function(channel, factor):
        channel.send(factor * 2)

    assert gw.remote_exec(function, factor=4).receive(T) == 8
    import remote_module_example

    assert gw.remote_exec(remote_module_example).receive(T) is not None
    sub = gw.newchannel()
    relay = gw.remote_exec("c = channel.receive(); c.send('through')")
    relay.send(sub)
    assert sub.receive(T) == "through"


def test_a_gateway_whose_remote_process_dies_reports_it_to_a_callback(group):
    gw = group.makegateway()
    seen = []
    ch = gw.remote_exec("import os; channel.receive(); os._exit(3)")
    ch.setcallback(seen.append, endmarker="END")
    ch.send(1)
    wait_until(lambda: seen == ["END"], what="the endmarker")
    error = ch._getremoteerror()
    assert error is not None and "gw0" in str(error)


def test_main_thread_only_group_ids_and_the_deadlock_refusal(group):
    g = execnet.Group(execmodel="main_thread_only")
    try:
        specs = [execnet.XSpec("popen") for _ in range(2)]
        for s in specs:
            g.allocate_id(s)
        assert [s.id for s in specs] == ["gw0", "gw1"]
        gateways = [g.makegateway(s) for s in specs]
        assert [gw.id for gw in gateways] == ["gw0", "gw1"] and g["gw1"] is gateways[1]
        assert gateways[0].spec.execmodel == "main_thread_only"
        assert gateways[0].remote_status().execmodel == "main_thread_only"
        busy = gateways[0].remote_exec("channel.receive()")
        second = gateways[0].remote_exec("pass")
        with pytest.raises(execnet.RemoteError) as info:
            second.waitclose(T)
        assert str(info.value) == gateway_base.MAIN_THREAD_ONLY_DEADLOCK_TEXT
        busy.send(None)
        busy.waitclose(T)
        gateways[0].node = "gateways take new attributes"
        assert gateways[0].node == "gateways take new attributes"
        mch = g.remote_exec("channel.send(channel.gateway.id)")
        assert sorted(mch.receive_each()) == ["gw0-worker", "gw1-worker"]
    finally:
        g.terminate(3)
    assert len(g) == 0


def test_specs_read_as_execnet_reads_them():
    spec = execnet.XSpec("popen//python=python3//env:A=1//chdir=/tmp")
    assert (spec.popen, spec.python, spec.chdir, spec.env) == (True, "python3", "/tmp", {"A": "1"})
    assert spec.ssh is None and spec.anything_at_all is None
    spec.chdir = "elsewhere"
    spec.id = "gw7"
    again = execnet.XSpec(f"execmodel=main_thread_only//{spec}")
    assert str(again) == "execmodel=main_thread_only//popen//python=python3//env:A=1//chdir=/tmp"
    assert again == execnet.XSpec(str(again)) and hash(again) == hash(execnet.XSpec(str(again)))
    assert coreSpec(spec) == "popen//python=python3//chdir=elsewhere//id=gw7//env:A=1"
    with pytest.raises(ValueError, match="duplicate key: 'popen'"):
        execnet.XSpec("popen//popen")
    with pytest.raises(AttributeError):
        execnet.XSpec("_private=1")
    with pytest.raises(ValueError, match="vagrant_ssh= is not supported"):
        coreSpec(execnet.XSpec("vagrant_ssh=default"))


def test_ssh_values_with_openssh_options_are_read_as_ssh_reads_them():
    destination, given = parseCommandLine(
        "-p 2222 -i key -o UserKnownHostsFile=kh -oStrictHostKeyChecking=accept-new "
        "-o BatchMode=yes -F cfg -l bob example.org"
    )
    assert destination == "bob@example.org"
    assert given == {
        "port": 2222,
        "identity": "key",
        "known_hosts": "kh",
        "accept_new_host_keys": True,
        "ssh_config": "cfg",
    }
    assert parseCommandLine("user@host:22") == ("user@host:22", {})
    with pytest.raises(ValueError, match="-o ProxyJump"):
        parseCommandLine("-o ProxyJump=bastion host")
    with pytest.raises(ValueError, match="ssh option -A"):
        parseCommandLine("-A host")
    with pytest.raises(ValueError, match="names no destination"):
        parseCommandLine("-p 22")


def test_an_unreachable_ssh_host_is_host_not_found(group):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(execnet.HostNotFound):
        group.makegateway(f"ssh=-p {port} nobody@127.0.0.1")


def test_execnets_own_socketserver_module_serves_an_installvia_gateway(group):
    import execnet as real
    from execnet.script import socketserver

    assert real is not execnet
    hop = group.makegateway("popen//id=hop")
    channel = hop.remote_exec(socketserver)
    channel.send(("127.0.0.1", 0))
    host, port = channel.receive(T)
    gw = group.makegateway(f"socket={host}:{port}")
    assert gw.remote_exec("channel.send(channel.gateway.id)").receive(T) == f"{gw.id}-worker"
    gw.exit()
    channel.waitclose(T)


VALUES = [
    None,
    True,
    False,
    0,
    -(2**31),
    2**100,
    -1.5,
    1 + 2j,
    "text \u20ac",
    b"\x00bytes",
    [1, [2]],
    (1, (2,)),
    {"a": {1: None}},
    {1, 2},
    frozenset({3}),
]

REFUSED = [object(), lambda: 1, type, ValueError("x"), range(3), {"key": object()}]
REFUSED += [bytearray(b"x"), [memoryview(b"x")], {1: (bytearray(),)}]


def test_the_serializer_takes_and_refuses_what_execnets_does(tmp_path):
    import execnet as real

    for value in VALUES:
        real.dumps(value)
        assert execnet.loads(execnet.dumps(value)) == value
    for value in REFUSED:
        with pytest.raises(real.DumpError):
            real.dumps(value)
        with pytest.raises(execnet.DumpError):
            execnet.dumps(value)
    with pytest.raises(execnet.DataFormatError):
        execnet.loads(execnet.dumps(42)[:-1])
    path = tmp_path / "items"
    with open(path, "wb") as f:
        for value in VALUES:
            execnet.dump(f, value)
    with open(path, "rb") as f:
        assert [execnet.load(f) for _ in VALUES] == VALUES
        with pytest.raises(EOFError):
            execnet.load(f)


def test_install_makes_import_execnet_give_the_compat_module(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import txexecnet.compat
                txexecnet.compat.install()
                import execnet
                from execnet import gateway, gateway_base, multi, rsync, xspec
                from execnet.gateway_base import MAIN_THREAD_ONLY_DEADLOCK_TEXT
                assert execnet is txexecnet.compat
                assert execnet.multi.Group is execnet.Group
                assert execnet.xspec.XSpec is execnet.XSpec and execnet.rsync.RSync is execnet.RSync
                gw = execnet.makegateway()
                print(gw.remote_exec("channel.send(1)").receive(10))
                execnet.default_group.terminate(3)
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"]


def test_remote_code_imports_execnet_where_it_is_not_installed(group):
    gw = group.makegateway()
    ch = gw.remote_exec(
        """
        import sys
        sys.path[:] = [p for p in sys.path if "-packages" not in p]
        sys.modules.pop("execnet", None)
        import execnet
        from execnet.gateway_base import MAIN_THREAD_ONLY_DEADLOCK_TEXT
        assert not hasattr(execnet, "__file__")
        try:
            execnet.dumps(object())
        except execnet.DumpError:
            channel.send(execnet.loads(execnet.dumps(MAIN_THREAD_ONLY_DEADLOCK_TEXT)))
        channel.send(execnet.dumps({"a": [1, 2.5, (b"x", None)]}))
        """
    )
    assert ch.receive(T) == gateway_base.MAIN_THREAD_ONLY_DEADLOCK_TEXT
    # In execnet's format, as an installed execnet would write it.
    assert ch.receive(T) == execnet.dumps({"a": [1, 2.5, (b"x", None)]})


class HostRSync(execnet.RSync):
    """Subclassed as pytest-xdist does: a filter, _report_send_file, _sourcedir and _verbose."""

    def __init__(self, sourcedir, **kwargs):
        self.reported = []
        super().__init__(sourcedir, **kwargs)

    def filter(self, path):
        return not os.path.basename(path).endswith(".pyc")

    def _report_send_file(self, gateway, modified_rel_path):
        if self._verbose:
            self.reported.append(
                (gateway.spec.popen, os.path.basename(self._sourcedir), modified_rel_path)
            )


def test_rsync_subclassed_as_pytest_xdist_does(group, tmp_path):
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "a.py").write_text("a" * 100)
    (source / "sub" / "b.py").write_text("b" * 10)
    (source / "c.pyc").write_text("compiled")
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    (dest / "extra").write_text("gone after delete=True")
    gw = group.makegateway()
    told = []
    finished = []
    rsync = HostRSync(
        source, verbose=True, callback=lambda kind, size, ch: told.append((kind, size))
    )
    rsync.add_target(gw, dest, finishedcallback=lambda: finished.append(True), delete=True)
    rsync.send()
    assert sorted(os.listdir(dest)) == ["a.py", "sub"]
    assert (dest / "sub" / "b.py").read_text() == "b" * 10
    assert sorted(told) == [("ack", 10), ("ack", 100), ("list", 110)]
    assert sorted(rsync.reported) == [(True, "source", "a.py"), (True, "source", "sub/b.py")]
    assert finished == [True]
    with pytest.raises(OSError, match="no targets"):
        rsync.send()
    rsync.send(raises=False)
    with pytest.raises(TypeError):
        rsync.add_target(gw, dest, bogus=True)


XDIST_TESTS = """
import os
import pytest

@pytest.mark.parametrize("i", range(12))
def test_many(i):
    assert os.environ["PYTEST_XDIST_WORKER"].startswith("gw")

def test_fails():
    assert 0, "a failure reported from a worker"

def test_crashes_its_worker():
    if os.environ.get("CRASH"):
        os._exit(1)
"""

XDIST_CONFTEST = """
def pytest_xdist_newgateway(gateway):
    print("GATEWAY", type(gateway).__module__)
"""


def runXdist(cwd, *args, **env):
    """pytest with the plugin in C{cwd}, outside this run's PYTEST_ settings: its status and output."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environ.update(env)
    command = [sys.executable, "-m", "pytest", "-p", "txexecnet.xdist", "-p", "no:cacheprovider"]
    out = subprocess.run(
        command + list(args), cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize("dist", ["load", "loadscope", "worksteal", "each"])
def test_pytest_xdist_runs_its_workers_on_txexecnet(tmp_path, dist):
    (tmp_path / "test_x.py").write_text(XDIST_TESTS)
    (tmp_path / "conftest.py").write_text(XDIST_CONFTEST)
    status, text = runXdist(
        tmp_path,
        "-n",
        "2",
        f"--dist={dist}",
        "-s",
        "--max-worker-restart=1",
        "-rf",
        CRASH="1" if dist == "load" else "",
    )
    assert text.count("GATEWAY txexecnet.compat.gateway") >= 2, text
    assert "a failure reported from a worker" in text
    if dist == "load":
        assert "crashed" in text and "2 failed, 12 passed" in text, text
    elif dist == "each":
        assert "26 passed" in text and "2 failed" in text, text
    else:
        assert "13 passed" in text and "1 failed" in text, text
    assert status == 1


XDIST_PRINTS = """
import os

def test_prints():
    print("printed by", os.environ["PYTEST_XDIST_WORKER"])
    os.write(1, b"written to fd 1\\n")
"""


@pytest.mark.parametrize("capture", ["-s", "--capture=fd"])
def test_pytest_xdist_with_s_shows_what_tests_print_tagged_with_their_worker(tmp_path, capture):
    (tmp_path / "test_p.py").write_text(XDIST_PRINTS)
    status, text = runXdist(tmp_path, "-n", "2", capture)
    assert status == 0 and "1 passed" in text, text
    # (The controller's own progress dots may come first on a line.)
    printed = re.findall(r"\[(gw\d)\] printed by (gw\d)$", text, re.M)
    if capture == "-s":
        assert len(printed) == 1 and printed[0][0] == printed[0][1], text
        assert re.search(r"\[gw\d\] written to fd 1$", text, re.M), text
    else:
        assert printed == [] and "written to fd 1" not in text, text
    # The workers' own reports are not shown twice.
    assert not re.search(r"\[gw\d\] .*passed", text), text


def test_pytest_xdist_over_ssh_with_rsyncdir_and_over_an_authenticated_daemon(
    tmp_path, sshd, start_daemon
):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "test_remote.py").write_text(
        "import os\n\ndef test_where():\n    assert os.path.exists('proj/test_remote.py')\n"
    )
    (tmp_path / "conftest.py").write_text(XDIST_CONFTEST)
    remote = tmp_path / "remote"
    options = f"-p {sshd.port} -i {sshd.clientKey} -o UserKnownHostsFile={sshd.knownHosts}"
    ssh = f"ssh={options} {sshd.user}@127.0.0.1//python={sys.executable}//chdir={remote}"
    status, text = runXdist(
        tmp_path, "-d", "--tx", ssh, "--rsyncdir", str(project), str(project), "-W", "ignore"
    )
    assert status == 0 and "1 passed" in text, text
    assert (remote / "proj" / "test_remote.py").exists(), text

    secret = tmp_path / "secret"
    secret.write_text("an xdist secret\n")
    secret.chmod(0o600)
    daemon = start_daemon("--secret-file", str(secret))
    spec = f"{daemon.spec()}//secret_file={secret}//chdir={remote}"
    status, text = runXdist(
        tmp_path, "-d", "--tx", spec, "--rsyncdir", str(project), str(project), "-W", "ignore"
    )
    assert status == 0 and "1 passed" in text, text
    assert "GATEWAY txexecnet.compat.gateway" in text

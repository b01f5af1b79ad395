"""
The registry of gateway kinds: every spec is checked against the kind it
names before anything starts, and a new kind is one module and one entry.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import pytest_twisted

import txexecnet
from txexecnet import XSpec
from txexecnet.transports import registry

T = 10


def test_the_built_in_kinds_and_their_modules():
    assert [kind.prefix for kind in registry.kinds()][:4] == ["popen", "thread", "ssh", "socket"]
    for kind in registry.kinds():
        assert kind.module.startswith("txexecnet.transports.")
    assert XSpec("ssh=h//ssh_identity=k").kind is registry.kindFor("ssh")


def test_modules_of_kinds_are_imported_only_when_used():
    import subprocess

    code = (
        "import sys, txexecnet\n"
        "txexecnet.XSpec('ssh=h//ssh_identity=k')\n"
        "print('txexecnet.transports.ssh' in sys.modules, 'twisted.conch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("socket=nohostport", "write HOST:PORT"),
        ("socket=127.0.0.1", "write HOST:PORT"),
        ("socket=nosuchtype:x", "write HOST:PORT"),
        ("ssh=user@", "names no host"),
        ("ssh=host:port", "bad port"),
        ("ssh=h//ssh_client=putty", "ssh_client='putty'"),
        ("ssh=h//python=", "needs a value"),
        ("popen//via=nosuch", "no gateway with that id"),
        ("thread//chdir=/tmp", "would change this whole process"),
        ("thread//env:A=1", "would change this whole process"),
        ("socket=h:1//python=p", "the socket server chooses"),
        ("popen//ssh_identity=k", "only applies to ssh gateways"),
        ("popen//nice=low", "not an integer"),
    ],
)
def test_a_malformed_spec_is_a_value_error_before_anything_starts(spec, fragment):
    # No Deferred, no process, no connection: the error comes from the call.
    with pytest.raises(ValueError) as info:
        txexecnet.makegateway(spec)
    assert fragment in str(info.value)


def test_unset_keys_of_any_kind_read_as_none_and_others_are_attribute_errors():
    spec = XSpec("popen")
    assert spec.ssh_identity is None and spec.secret_file is None and spec.socket is None
    with pytest.raises(AttributeError):
        spec.no_such_key


ECHO_KIND = '''
"""A kind of gateway for the test: a popen child that is told a word."""
from txexecnet.transports.popen import PopenTransport


def transportForSpec(spec, group):
    return PopenTransport(env={"ECHO_WORD": spec.echo_word or "none"})
'''


@pytest.fixture
def echo_kind(tmp_path, monkeypatch):
    """A new kind, C{echo}, from a module of its own and one registry entry."""
    (tmp_path / "echo_kind.py").write_text(textwrap.dedent(ECHO_KIND))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register(
        registry.GatewayKind(
            "echo",
            "a popen child told a word",
            registry.COMMON_OPTIONS + (registry.Option("echo_word", "the word"),),
            "echo_kind",
            flag=True,
        )
    )
    yield
    registry.unregister("echo")
    sys.modules.pop("echo_kind", None)


@pytest_twisted.ensureDeferred
async def test_a_new_kind_is_one_module_and_one_entry(echo_kind):
    with pytest.raises(ValueError, match="only applies to echo gateways"):
        XSpec("popen//echo_word=x")
    gw = await txexecnet.makegateway("echo//echo_word=hello//id=echoed")
    try:
        ch = gw.remote_exec("import os\nchannel.send(os.environ['ECHO_WORD'])")
        assert await ch.receive(T) == "hello"
        assert gw.spec.type == "echo" and gw.id == "echoed"
    finally:
        await gw.exit()


def test_a_taken_prefix_is_refused():
    with pytest.raises(ValueError, match="taken"):
        registry.register(registry.GatewayKind("popen", "again", (), "x"))
    with pytest.raises(ValueError, match="taken"):
        registry.register(registry.GatewayKind("python", "an option's name", (), "x"))

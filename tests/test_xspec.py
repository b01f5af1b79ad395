"""Gateway spec strings, as execnet writes them."""

import pytest

from txexecnet import XSpec


def test_popen_with_options():
    spec = XSpec("popen//python=python3//chdir=/tmp//env:A=1//env:B=x=y//id=w1//nice=5")
    assert spec.type == "popen"
    assert spec.python == "python3"
    assert spec.chdir == "/tmp"
    assert spec.env == {"A": "1", "B": "x=y"}
    assert spec.id == "w1"
    assert spec.nice == "5"
    assert str(spec) == "popen//python=python3//chdir=/tmp//env:A=1//env:B=x=y//id=w1//nice=5"


def test_defaults_are_none():
    spec = XSpec("popen")
    assert spec.python is None and spec.chdir is None and spec.id is None and spec.env == {}


def test_ssh_and_socket_values():
    assert XSpec("ssh=user@host:2222//python=python3").ssh == "user@host:2222"
    assert XSpec("socket=127.0.0.1:7770").socket == "127.0.0.1:7770"


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("popen//bogus=1", "unknown key 'bogus'"),
        ("popen//python=", "needs a value"),
        ("popen=3", "takes no value"),
        ("popen//popen", "given twice"),
        ("python=python3", "exactly one of"),
        ("popen//thread", "exactly one of"),
        ("popen//nice=high", "not an integer"),
        ("popen//env:=1", "env:NAME=VALUE"),
        ("popen////id=x", "empty part"),
        ("ssh=", "needs a value"),
        ("thread//python=python3", "cannot be used"),
        ("popen//ssh_accept_new", "only applies to ssh gateways"),
        ("socket=h:1//ssh_identity=k", "only applies to ssh gateways"),
        ("popen//secret_file=/s", "only applies to socket gateways"),
        ("ssh=h//via=gw0", "only applies to popen gateways"),
    ],
)
def test_bad_specs_name_the_bad_part(bad, fragment):
    with pytest.raises(ValueError) as info:
        XSpec(bad)
    assert fragment in str(info.value)


def test_spec_must_be_a_string():
    with pytest.raises(TypeError):
        XSpec(None)

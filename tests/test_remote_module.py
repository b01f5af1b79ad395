"""The remote runtime must ship as one stdlib-only, Python 3.8 source file."""

import ast
import subprocess
import sys

import pytest

from txexecnet import _remote
from txexecnet._remote import HEADER, HELLO, PROTOCOL_VERSION, loads
from txexecnet.bootstrap import compiledBootstrap, pythonArgs, remoteSource, sourceBootstrap


def test_parses_as_python_38():
    ast.parse(remoteSource(), feature_version=(3, 8))


def test_is_ascii():
    remoteSource().encode("ascii")


def test_imports_only_the_standard_library():
    imported = set()
    for node in ast.walk(ast.parse(remoteSource())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in the remote module"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


@pytest.mark.parametrize("make", [sourceBootstrap, compiledBootstrap])
def test_bootstrap_runs_in_a_bare_interpreter(make):
    # The line plus the runtime, fed to the bootstrap command, must say hello
    # and end cleanly at end of input.
    proc = subprocess.run(
        pythonArgs(["/usr/bin/python3" if make is sourceBootstrap else sys.executable]),
        input=make({"env": {"A": "b"}}),
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    msgtype, channel, length = HEADER.unpack_from(proc.stdout)
    assert (msgtype, channel) == (HELLO, 0)
    assert loads(proc.stdout[HEADER.size : HEADER.size + length])["version"] == PROTOCOL_VERSION


def test_local_side_uses_the_same_module():
    import txexecnet

    assert txexecnet.RemoteError is _remote.RemoteError
    assert txexecnet.dumps(1) == _remote.dumps(1)

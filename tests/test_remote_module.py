"""The remote runtime must ship as one stdlib-only, Python 3.8 source file."""

import ast
import sys

from txexecnet import _remote
from txexecnet.bootstrap import remoteSource, sourceBootstrap


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


def test_bootstrap_line_is_one_line():
    line = sourceBootstrap({"env": {"A": "b"}})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert "serve_popen" in eval(line)


def test_local_side_uses_the_same_module():
    import txexecnet

    assert txexecnet.RemoteError is _remote.RemoteError
    assert txexecnet.dumps(1) == _remote.dumps(1)

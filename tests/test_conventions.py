"""
The conventions the package keeps, checked: modules meet only through
public names, capabilities are declared interfaces, and the remote runtime
stays what any remote Python can run.
"""

from __future__ import annotations

import ast
import os

import pytest
from twisted.internet.interfaces import IConsumer
from twisted.internet.testing import StringTransport
from zope.interface.verify import verifyClass, verifyObject

import txexecnet
from txexecnet import interfaces
from txexecnet.channel import Channel
from txexecnet.gateway import Gateway
from txexecnet.protocol import FrameProtocol
from txexecnet.transports._pipes import PipeTransport
from txexecnet.xspec import XSpec

PACKAGE = os.path.dirname(os.path.abspath(txexecnet.__file__))


def package_modules() -> list[str]:
    paths = []
    for directory, _, files in os.walk(PACKAGE):
        paths += [os.path.join(directory, f) for f in files if f.endswith(".py")]
    return sorted(paths)


def names_defined_in(tree: ast.AST) -> set[str]:
    """Every name a module binds: functions, classes, variables, attributes, arguments."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


#: Names of the standard library that are public in spite of their underscore.
PUBLIC_DESPITE_UNDERSCORE = {"os._exit"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: str) -> list[str]:
    """
    Where the module at C{path} uses a private name bound elsewhere: an
    imported C{_name}, or C{obj._name} on anything but C{self} or C{cls}
    when the module itself never binds C{_name}.  Private modules of the
    package (C{_remote}, C{_pipes}) may be imported: their public names
    are the package's shared internals.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    own = names_defined_in(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if is_private(alias.name) and not (node.module is None and node.level):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            target = node.value
            if isinstance(target, ast.Name) and target.id in ("self", "cls"):
                continue
            if node.attr not in own and ast.unparse(node) not in PUBLIC_DESPITE_UNDERSCORE:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: os.path.relpath(p, PACKAGE))
def test_no_module_uses_another_modules_private_names(path):
    assert private_uses(path) == []


def test_the_private_name_check_finds_a_private_use(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from .gateway import _sourceOf\n"
        "def f(gateway):\n    return gateway._protocol, self_like._kill\n"
    )
    assert private_uses(str(module)) == [
        "1: from gateway import _sourceOf",
        "3: gateway._protocol",
        "3: self_like._kill",
    ]


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: os.path.relpath(p, PACKAGE))
def test_capabilities_are_not_sniffed_with_hasattr(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "hasattr"
    ]
    assert calls == []


@pytest.mark.parametrize("name", ["_remote.py", "_rsync_remote.py"])
def test_the_remote_runtime_is_python_3_8_and_ascii(name):
    with open(os.path.join(PACKAGE, name), "rb") as f:
        source = f.read()
    text = source.decode("ascii")  # raises for any other byte
    ast.parse(text, feature_version=(3, 8))


def test_the_core_classes_provide_their_declared_seams():
    verifyClass(interfaces.IFrameReceiver, Gateway)
    verifyClass(interfaces.IChannelHost, Gateway)
    verifyClass(interfaces.IChannelEnd, Channel)
    verifyClass(interfaces.IBufferedReceiver, FrameProtocol)
    verifyClass(interfaces.IThreadSafeTransport, PipeTransport)
    verifyClass(IConsumer, PipeTransport)
    gateway = Gateway(XSpec("popen//id=seams"))
    verifyObject(interfaces.IChannelHost, gateway)
    verifyObject(interfaces.IChannelEnd, gateway.newchannel())


class NoBackPressure:
    """A transport that cannot pause its producer."""

    def write(self, data: bytes) -> None:
        pass


def test_a_transport_without_back_pressure_is_refused():
    gateway = Gateway(XSpec("popen//id=nobackpressure"))
    protocol = FrameProtocol(gateway, b"", 1024)
    transport = StringTransport()
    assert IConsumer.providedBy(transport)
    protocol.makeConnection(transport)
    assert transport.producer is protocol

    with pytest.raises(TypeError):
        FrameProtocol(gateway, b"", 1024).makeConnection(NoBackPressure())


def test_the_package_says_it_is_typed():
    assert os.path.exists(os.path.join(PACKAGE, "py.typed"))


def module_imports(path: str) -> set[str]:
    """
    The txexecnet modules that the module at C{path} imports anywhere: at
    import time, in functions, or for type checking only (a circle hidden
    there is a circle still).
    """
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))[: -len(".py")]
    name = relative.replace(os.sep, ".").removesuffix(".__init__")
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("txexecnet"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("txexecnet"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
    return found


def test_the_modules_import_each_other_without_a_circle():
    graph = {}
    for path in package_modules():
        relative = os.path.relpath(path, os.path.dirname(PACKAGE))[: -len(".py")]
        graph[relative.replace(os.sep, ".").removesuffix(".__init__")] = module_imports(path)
    for name in graph:
        graph[name] = {m for m in graph[name] if m in graph and m != name}
    # A package imports its submodules on purpose; a submodule importing
    # its own package's __init__ back is what would be a circle.
    seen: dict[str, int] = {}
    circles = []

    def visit(name: str, stack: list[str]) -> None:
        seen[name] = 1
        for other in sorted(graph[name]):
            if seen.get(other) == 1 and not name.startswith(other + "."):
                circles.append(" -> ".join(stack[stack.index(other) :] + [other]))
            elif other not in seen:
                visit(other, stack + [other])
        seen[name] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])
    assert circles == [], circles

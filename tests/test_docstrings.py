"""
Every public function and method documents every parameter (C{@param}),
unless it implements a method of a declared interface, or overrides one of
a base class: there, the parameters are documented where it is declared.
The fields of a dataclass, documented with C{@ivar}, are its parameters.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil

import pytest
from zope.interface import implementedBy
from zope.interface.interface import InterfaceClass

import txexecnet


def public_modules() -> list[str]:
    names = ["txexecnet"]
    for info in pkgutil.walk_packages(txexecnet.__path__, "txexecnet."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def declared_elsewhere(cls: type, name: str) -> bool:
    """Whether C{cls.name} implements an interface's method or overrides a base's."""
    if any(name in interface for interface in implementedBy(cls).flattened()):
        return True
    return any(name in vars(base) for base in cls.__mro__[1:] if base is not object)


def parameters(function) -> list[str]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    return [name for name in signature.parameters if name not in ("self", "cls")]


def undocumented(function, doc: str) -> list[str]:
    return [name for name in parameters(function) if f"@param {name}:" not in doc]


def interface_parameters(module, interface: str) -> dict[str, list[str]]:
    """
    The parameters of each method of C{interface}, read from the source:
    zope.interface's signature info misnames keyword-only parameters (they
    come out as C{varargs} and C{kwargs}).
    """
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ClassDef) and node.name == interface:
            found = {}
            for method in node.body:
                if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = method.args
                    every = args.posonlyargs + args.args + args.kwonlyargs
                    every += [a for a in (args.vararg, args.kwarg) if a is not None]
                    found[method.name] = [a.arg for a in every]
            return found
    raise LookupError(f"no class {interface} in the source of {module.__name__}")


def unwrapped(value):
    """The function under C{functools} wrappers such as C{lru_cache}."""
    return inspect.unwrap(value) if callable(value) else value


def functions_of(module) -> list[tuple[str, list[str]]]:
    """(qualified name, the parameters its docstring leaves undocumented) for each."""
    found = []
    for name, value in list(vars(module).items()):
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if isinstance(value, InterfaceClass):
            signatures = interface_parameters(module, name)
            for method in value.names():
                element = value[method]
                if hasattr(element, "getSignatureInfo"):
                    missing = [
                        p
                        for p in signatures[method]
                        if f"@param {p}:" not in (element.__doc__ or "")
                    ]
                    found.append((f"{name}.{method}", missing))
        elif inspect.isclass(value):
            for attr, member in list(vars(value).items()):
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if not inspect.isfunction(member) or (attr.startswith("_") and attr != "__init__"):
                    continue
                if attr != "__init__" and declared_elsewhere(value, attr):
                    continue
                doc = inspect.getdoc(member) or ""
                if attr == "__init__":
                    classDoc = inspect.getdoc(value) or ""
                    if dataclasses.is_dataclass(value):
                        # The fields are the parameters: @ivar documents both.
                        classDoc = classDoc.replace("@ivar ", "@param ")
                    doc += classDoc
                found.append((f"{name}.{attr}", undocumented(member, doc)))
        elif inspect.isfunction(unwrapped(value)):
            function = unwrapped(value)
            found.append((name, undocumented(function, inspect.getdoc(function) or "")))
    return found


@pytest.mark.parametrize("module", public_modules())
def test_every_parameter_is_documented(module):
    missing = {
        name: params for name, params in functions_of(importlib.import_module(module)) if params
    }
    assert missing == {}

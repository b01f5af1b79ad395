"""
Every public function and method documents every parameter (C{@param}),
unless it implements a method of a declared interface, or overrides one of
a base class: there, the parameters are documented where it is declared.
The fields of a dataclass, documented with C{@ivar}, are its parameters.
"""

from __future__ import annotations

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


def functions_of(module) -> list[tuple[str, object, str]]:
    """(qualified name, function, the docstring that must document it)."""
    found = []
    for name, value in list(vars(module).items()):
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if isinstance(value, InterfaceClass):
            for method in value.names():
                element = value[method]
                if hasattr(element, "getSignatureInfo"):
                    info = element.getSignatureInfo()
                    missing = [
                        p
                        for p in info["positional"] + (info["kwargs"],)
                        if p and f"@param {p}:" not in (element.__doc__ or "")
                    ]
                    found.append((f"{name}.{method}", missing, ""))
        elif inspect.isclass(value):
            for attr, member in list(vars(value).items()):
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
                found.append((f"{name}.{attr}", undocumented(member, doc), ""))
        elif inspect.isfunction(value):
            found.append((name, undocumented(value, inspect.getdoc(value) or ""), ""))
    return found


@pytest.mark.parametrize("module", public_modules())
def test_every_parameter_is_documented(module):
    missing = {
        name: params for name, params, _ in functions_of(importlib.import_module(module)) if params
    }
    assert missing == {}

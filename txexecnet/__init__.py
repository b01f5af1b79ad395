"""
txexecnet: run parts of a Python program in other interpreters (a child
process, a host over SSH, a socket server) with nothing installed there but
Python.  py.execnet, rebuilt on Twisted.

The Twisted API returns Deferreds; L{txexecnet.blocking} mirrors it with
plain return values for scripts.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ._remote import dumps as _dumps, loads as _loads
from ._remote import register_type as _register_type, unregister_type as _unregister_type

if TYPE_CHECKING:
    from .channel import NO_ENDMARKER_WANTED, Channel
    from .constructors import (
        PopenGateway,
        SocketGateway,
        SshGateway,
        ThreadGateway,
        makegateway,
    )
    from .errors import (
        AuthenticationError,
        DataFormatError,
        DumpError,
        GatewayClosed,
        GatewayStartError,
        HostKeyError,
        LoadError,
        ProtocolError,
        RemoteError,
        RemoteFrame,
        TimeoutError,
    )
    from .gateway import Gateway
    from .group import Group, default_group
    from .multichannel import MultiChannel
    from .output import ChannelOutput, OutputWriter, RemoteOutput
    from .xspec import XSpec

#: Where each name of the package lives: imported on first use, so that
#: importing a part of txexecnet (the pytest plugin in a test worker, the
#: remote runtime's serializer) does not import Twisted.
_HOMES = {
    "Channel": ".channel",
    "NO_ENDMARKER_WANTED": ".channel",
    "PopenGateway": ".constructors",
    "SocketGateway": ".constructors",
    "SshGateway": ".constructors",
    "ThreadGateway": ".constructors",
    "makegateway": ".constructors",
    "AuthenticationError": ".errors",
    "DataFormatError": ".errors",
    "DumpError": ".errors",
    "GatewayClosed": ".errors",
    "GatewayStartError": ".errors",
    "HostKeyError": ".errors",
    "LoadError": ".errors",
    "ProtocolError": ".errors",
    "RemoteError": ".errors",
    "RemoteFrame": ".errors",
    "TimeoutError": ".errors",
    "Gateway": ".gateway",
    "Group": ".group",
    "default_group": ".group",
    "MultiChannel": ".multichannel",
    "ChannelOutput": ".output",
    "OutputWriter": ".output",
    "RemoteOutput": ".output",
    "XSpec": ".xspec",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'txexecnet' has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "Channel",
    "ChannelOutput",
    "DataFormatError",
    "DumpError",
    "Gateway",
    "GatewayClosed",
    "GatewayStartError",
    "Group",
    "HostKeyError",
    "LoadError",
    "MultiChannel",
    "NO_ENDMARKER_WANTED",
    "OutputWriter",
    "PopenGateway",
    "SocketGateway",
    "SshGateway",
    "ProtocolError",
    "RemoteError",
    "RemoteFrame",
    "RemoteOutput",
    "ThreadGateway",
    "TimeoutError",
    "XSpec",
    "default_group",
    "dumps",
    "loads",
    "makegateway",
    "register_type",
    "unregister_type",
]


def dumps(obj: object) -> bytes:
    """
    Serialize C{obj} (None, bool, int, float, complex, str, bytes, bytearray,
    list, tuple, dict, set, frozenset, nested; the date and time types of
    C{datetime}, C{decimal.Decimal}, C{uuid.UUID}, pure paths; types given
    to L{register_type}) to bytes.

    @param obj: the object to serialize.
    @raise DumpError: naming the type of an object that cannot be sent.
    """
    return _dumps(obj)


def loads(data: bytes) -> object:
    """
    Rebuild an object from L{dumps} output.  Never runs code.

    @param data: bytes made by L{dumps}.
    @raise LoadError: for anything that is not exactly one valid item.
    """
    return _loads(data)


_T = TypeVar("_T")


def register_type(
    name: str, cls: type[_T], to_state: Callable[[_T], object], from_state: Callable[[Any], _T]
) -> None:
    """
    Let objects of exactly the class C{cls} travel over channels (and
    through L{dumps}) as C{name} and C{to_state(obj)}; the receiving side
    rebuilds them with C{from_state(state)}.  Both sides register the same
    name: remote code calls C{channel.gateway.register_type} with the same
    arguments.  Registering a name again replaces it.

    @param name: the name on the wire.  Names starting with C{datetime.},
        C{decimal.}, C{uuid.} or C{pathlib.} are reserved.
    @param cls: the class; its subclasses need registering on their own.
    @param to_state: returns the state of an object of C{cls}: anything
        that can be sent.
    @param from_state: rebuilds an object from its state.  It runs as the
        item is received, in the reactor thread, so it must not block;
        whatever it raises makes the item a L{LoadError}.
    @raise ValueError: for a reserved name, a type sent without
        registering (C{int}, C{datetime.date}...), or a class registered
        under another name.
    @raise TypeError: if C{name} is not a non-empty str, C{cls} not a
        class, or C{to_state} or C{from_state} not callable.
    """
    _register_type(name, cls, to_state, from_state)


def unregister_type(name: str) -> None:
    """
    Forget the type registered as C{name} by L{register_type}: its objects
    can no longer be sent, and items that name it fail to load.

    @param name: the name it was registered under.
    @raise KeyError: if no type is registered as C{name}.
    @raise ValueError: for a reserved name.
    """
    _unregister_type(name)

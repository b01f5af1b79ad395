"""
txexecnet: run parts of a Python program in other interpreters (a child
process, a host over SSH, a socket server) with nothing installed there but
Python.  py.execnet, rebuilt on Twisted.

The Twisted API returns Deferreds; L{txexecnet.blocking} mirrors it with
plain return values for scripts.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._remote import dumps as _dumps, loads as _loads

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
]


def dumps(obj: object) -> bytes:
    """
    Serialize C{obj} (None, bool, int, float, complex, str, bytes, bytearray,
    list, tuple, dict, set, frozenset, nested) to bytes.

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

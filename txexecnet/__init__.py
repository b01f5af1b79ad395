"""
txexecnet: run parts of a Python program in other interpreters (a child
process, a host over SSH, a socket server) with nothing installed there but
Python.  py.execnet, rebuilt on Twisted.

The Twisted API returns Deferreds; L{txexecnet.blocking} mirrors it with
plain return values for scripts.
"""

from ._remote import dumps as _dumps, loads as _loads
from .channel import NO_ENDMARKER_WANTED, Channel
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
    TimeoutError,
)
from .constructors import PopenGateway, SocketGateway, SshGateway, ThreadGateway, makegateway
from .gateway import Gateway
from .group import Group, default_group
from .multichannel import MultiChannel
from .xspec import XSpec

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "Channel",
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
    "PopenGateway",
    "SocketGateway",
    "SshGateway",
    "ProtocolError",
    "RemoteError",
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

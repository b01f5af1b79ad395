"""
execnet's API on txexecnet: change one import and execnet code runs on
txexecnet's gateways::

    import txexecnet.compat as execnet

    gw = execnet.makegateway("popen//python=python3")
    channel = gw.remote_exec("channel.send(channel.receive() + 1)")
    channel.send(1)
    assert channel.receive() == 2

Code that does C{import execnet} itself (a library, a test plugin) gets
this module under that name after L{install}, and its submodules
(C{execnet.gateway}, C{execnet.gateway_base}, C{execnet.gateway_io},
C{execnet.multi}, C{execnet.rsync}, C{execnet.xspec}) under theirs.
"""

from __future__ import annotations

import sys

from . import gateway, gateway_base, gateway_bootstrap, gateway_io, multi, rsync, xspec
from .gateway import Gateway
from .gateway_base import (
    Channel,
    DataFormatError,
    DumpError,
    LoadError,
    RemoteError,
    TimeoutError,
    dump,
    dumps,
    load,
    loads,
)
from .gateway_bootstrap import HostNotFound
from .multi import Group, MultiChannel, default_group, makegateway, set_execmodel
from .rsync import RSync
from .xspec import XSpec

__version__ = "2.1.2"

__all__ = [
    "Channel",
    "DataFormatError",
    "DumpError",
    "Gateway",
    "Group",
    "HostNotFound",
    "LoadError",
    "MultiChannel",
    "RSync",
    "RemoteError",
    "TimeoutError",
    "XSpec",
    "default_group",
    "dump",
    "dumps",
    "install",
    "load",
    "loads",
    "makegateway",
    "set_execmodel",
]

#: The submodules, by the names execnet's users import them as.
SUBMODULES = {
    "gateway": gateway,
    "gateway_base": gateway_base,
    "gateway_bootstrap": gateway_bootstrap,
    "gateway_io": gateway_io,
    "multi": multi,
    "rsync": rsync,
    "xspec": xspec,
}


def install() -> None:
    """
    Make C{import execnet} (and C{import execnet.gateway_base} and the
    other submodules) give this module from now on, in this process.  Code
    that imported the real execnet before keeps it; call this first.
    """
    module = sys.modules[__name__]
    sys.modules["execnet"] = module
    for name, submodule in SUBMODULES.items():
        sys.modules[f"execnet.{name}"] = submodule

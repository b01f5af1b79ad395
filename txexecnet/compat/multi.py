"""
execnet's C{Group}, C{MultiChannel} and module-level gateway functions,
on the blocking facade.

A group turns each execnet spec into a txexecnet one as it makes the
gateway (so attributes set on an L{XSpec} after parsing count, as they do
in execnet): C{ssh=} values keep OpenSSH's command-line options, and
C{socket//installvia=ID} starts a socket server of execnet's kind on
gateway C{ID} and connects to it.
"""

from __future__ import annotations

from typing import Any

from .. import blocking
from ..errors import AuthenticationError, GatewayStartError, HostKeyError
from ..transports.registry import kindFor
from ..transports.socket import SocketTransport
from .gateway import Gateway
from .gateway_base import ExecModel, WorkerPool, get_execmodel
from .gateway_bootstrap import HostNotFound
from .xspec import XSpec

__all__ = [
    "Group",
    "MultiChannel",
    "default_group",
    "makegateway",
    "safe_terminate",
    "set_execmodel",
]

MultiChannel = blocking.MultiChannel

#: The keys of execnet's kinds of gateway that txexecnet has not.
_UNSUPPORTED = {
    "vagrant_ssh": "vagrant_ssh= is not supported: use ssh= with the output of "
    "`vagrant ssh-config` in an ssh_config file (ssh_config=FILE)",
}

#: What a gateway started with installvia= runs: a socket server of
#: execnet's kind (one line, a program to run with the socket as
#: C{clientsock}) that serves one connection.
SOCKET_SERVER = """
import socket

host, port = channel.receive()
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, port))
server.listen(1)
channel.send(server.getsockname()[:2])
clientsock, address = server.accept()
server.close()
line = b""
while not line.endswith(b"\\n"):
    more = clientsock.recv(65536)
    if not more:
        raise EOFError("the client went away before sending its program")
    line += more
exec(eval(line.decode("ascii")), {"clientsock": clientsock, "address": address})
"""


def coreSpec(xspec: XSpec) -> str:
    """
    The txexecnet spec string that says what the execnet spec C{xspec}
    says (as its attributes are now).

    @param xspec: an execnet spec.
    @raise ValueError: for a key txexecnet does not know, naming it.
    """
    parts = []
    for key, value in xspec.options().items():
        if key in _UNSUPPORTED and value:
            raise ValueError(f"{_UNSUPPORTED[key]} ({xspec})")
        if key == "installvia" or value is None or value is False:
            continue
        kind = kindFor(key)
        if value is True and (kind is None or kind.flag):
            parts.append(key)
        else:
            parts.append(f"{key}={value}")
    parts += [f"env:{name}={value}" for name, value in xspec.env.items()]
    return "//".join(parts)


class Group(blocking.Group):
    """
    An execnet group: gateways made with C{makegateway(spec)}, ids given
    by C{allocate_id} (C{gw0}, C{gw1}...), C{remote_exec} on all,
    C{terminate}, indexing by id or position, C{in}, C{len}, iteration.

    @ivar execmodel: this side's L{ExecModel}.
    @ivar remote_execmodel: the L{ExecModel} of gateways whose spec names none.
    @ivar defaultspec: the spec of C{makegateway()} without one.
    """

    gatewayClass = Gateway
    defaultspec = "popen"

    def __init__(self, xspecs: Any = (), execmodel: str | ExecModel = "thread") -> None:
        """
        @param xspecs: specs (strings or L{XSpec}) of gateways to make now.
        @param execmodel: the execution model of this side and, unless a
            spec names another, of the remote sides.
        """
        super().__init__()
        self.set_execmodel(execmodel)
        for spec in xspecs:
            self.makegateway(spec)

    def set_execmodel(
        self, execmodel: str | ExecModel, remote_execmodel: str | ExecModel | None = None
    ) -> None:
        """
        Set the execution models, before any gateway is made.

        @param execmodel: this side's (C{"thread"} or C{"main_thread_only"}).
        @param remote_execmodel: that of remote sides whose spec names
            none; by default C{execmodel}.
        @raise ValueError: once the group has gateways, or for an unknown model.
        """
        if len(self):
            raise ValueError("can not set execution models if gateways have been created already")
        self.execmodel = get_execmodel(execmodel)
        self.remote_execmodel = get_execmodel(remote_execmodel or execmodel)

    def makegateway(self, spec: str | XSpec | None = None) -> Gateway:
        """
        Make a gateway as the execnet spec C{spec} says, and wait until it is up.

        @param spec: a spec string or L{XSpec}; by default L{defaultspec}.
        @raise HostNotFound: if an ssh or socket host cannot be reached.
        @raise ValueError: for a spec txexecnet cannot honour, naming the part.
        """
        xspec = spec if isinstance(spec, XSpec) else XSpec(spec or self.defaultspec)
        self.allocate_id(xspec)
        transport = None
        if xspec.socket and xspec.installvia:
            host, port = self._startSocketServer(xspec.installvia)
            xspec.socket = f"{host}:{port}"
            transport = SocketTransport(xspec.socket, server="execnet")
        if xspec.execmodel is None and not xspec.thread:
            xspec.execmodel = self.remote_execmodel.backend
        string = coreSpec(xspec)
        try:
            gateway: Gateway = self._facade.makegateway(string, transport=transport)
        except (HostKeyError, AuthenticationError):
            raise
        except GatewayStartError as e:
            if xspec.ssh or xspec.socket:
                raise HostNotFound(str(e)).with_traceback(None) from None
            raise
        gateway.spec = xspec
        gateway.group = self
        if xspec.ssh:
            gateway.remoteaddress = xspec.ssh
        elif xspec.socket:
            gateway.remoteaddress = str(xspec.socket) if transport is None else transport.address
        gateway.execmodel = self.execmodel
        gateway.remote_execmodel = get_execmodel(xspec.execmodel or "thread")
        return gateway

    def __repr__(self) -> str:
        return f"<Group {[gw.id for gw in self._facade.__iter__()]!r}>"

    def __contains__(self, key: object) -> bool:
        if isinstance(key, Gateway):
            return any(gw is key for gw in self._facade.__iter__())
        return bool(self._facade.__contains__(key))

    def _startSocketServer(self, viaId: str) -> tuple[str, int]:
        channel = self._facade.__getitem__(viaId).remote_exec(SOCKET_SERVER)
        channel.send(("127.0.0.1", 0))
        host, port = channel.receive()
        return ("127.0.0.1" if host in ("", "0.0.0.0") else host), port

    def terminate(self, timeout: float | None = None) -> None:
        """
        Exit every gateway, killing those still running after C{timeout}
        seconds; with C{None}, after txexecnet's default exit timeout (it
        never waits for ever).

        @param timeout: seconds each may take.
        """
        if timeout is None:
            self._facade.terminate()
        else:
            self._facade.terminate(timeout)

    @property
    def _facade(self) -> Any:
        # The blocking group's methods, derived at run time, which type
        # checkers do not see.
        return super()


#: The group of the module-level functions.
default_group = Group()


def makegateway(spec: str | XSpec | None = None) -> Gateway:
    """
    Make a gateway in L{default_group}.

    @param spec: a spec string or L{XSpec}; by default C{popen}.
    """
    return default_group.makegateway(spec)


def set_execmodel(
    execmodel: str | ExecModel, remote_execmodel: str | ExecModel | None = None
) -> None:
    """
    Set L{default_group}'s execution models (see L{Group.set_execmodel}).

    @param execmodel: this side's.
    @param remote_execmodel: that of remote sides whose spec names none.
    """
    default_group.set_execmodel(execmodel, remote_execmodel)


def safe_terminate(
    execmodel: str | ExecModel,
    timeout: float | None,
    list_of_paired_functions: Any,
) -> None:
    """
    Call every C{termfunc} at once, each in a thread, and the C{killfunc}
    of each that has not returned within C{timeout} seconds; return once
    all are done.

    @param execmodel: the execution model whose threads run them.
    @param timeout: seconds each C{termfunc} may take; C{None} waits for ever.
    @param list_of_paired_functions: C{(termfunc, killfunc)} pairs.
    """
    pool = WorkerPool(get_execmodel(execmodel))

    def endOne(termfunc: Any, killfunc: Any) -> None:
        try:
            pool.spawn(termfunc).get(timeout=timeout)
        except OSError:
            killfunc()

    for reply in [pool.spawn(endOne, *pair) for pair in list_of_paired_functions]:
        reply.get()
    pool.waitall(timeout=timeout)

"""
Making gateways from spec strings, and keeping them together in groups.
"""

from __future__ import annotations

import atexit
from typing import Any, Iterator

from twisted.internet.defer import Deferred, DeferredList

from ._remote import DEFAULT_MAX_FRAME_SIZE
from .gateway import DEFAULT_EXIT_TIMEOUT, Gateway
from .interfaces import IGatewayTransport
from .transports import PopenTransport, ThreadTransport
from .transports.via import ViaTransport
from .transports.socket import SocketTransport
from .xspec import XSpec

__all__ = [
    "Group",
    "makegateway",
    "default_group",
    "transportForSpec",
    "PopenGateway",
    "SocketGateway",
    "SshGateway",
    "ThreadGateway",
    "socketSpec",
]


def transportForSpec(spec: XSpec) -> IGatewayTransport:
    """
    The transport that reaches what C{spec} names.

    @raise ValueError: for an option that this kind of gateway cannot honour.
    """
    if spec.type == "popen":
        return PopenTransport(spec.python, bool(spec.dont_write_bytecode), spec.env)
    if spec.type == "thread":
        bad = [k for k in ("chdir", "nice", "dont_write_bytecode") if getattr(spec, k)]
        if spec.env:
            bad.append("env:")
        if bad:
            raise ValueError(
                f"{', '.join(bad)} would change this whole process: not allowed for a "
                f"thread gateway ({spec})"
            )
        return ThreadTransport()
    if spec.type == "ssh":
        from .transports.ssh import sshTransportForSpec

        return sshTransportForSpec(spec)
    if spec.type == "socket":
        if spec.dont_write_bytecode:
            raise ValueError(f"the socket server chooses how its Python runs: {spec}")
        if spec.secret_file:
            return SocketTransport.fromSecretFile(spec.socket, spec.secret_file)
        return SocketTransport(spec.socket)
    raise ValueError(f"{spec.type} gateways are not available in this version ({spec})")


class Group:
    """
    A set of gateways, addressable by id, ended together by L{terminate}.

    @param reactor: the reactor gateways run on (default: the global one).
    """

    def __init__(self, specs: tuple[str, ...] | list[str] = (), reactor: Any = None) -> None:
        self._reactor = reactor
        self._gateways: list[Gateway] = []
        self._idCounter = 0
        self._specs = list(specs)

    def __repr__(self) -> str:
        return f"<Group {[gw.id for gw in self._gateways]}>"

    def __len__(self) -> int:
        return len(self._gateways)

    def __iter__(self) -> Iterator[Gateway]:
        return iter(list(self._gateways))

    def __contains__(self, key: object) -> bool:
        return any(gw is key or gw.id == key for gw in self._gateways)

    def __getitem__(self, key: int | str) -> Gateway:
        if isinstance(key, int):
            return self._gateways[key]
        for gw in self._gateways:
            if gw.id == key:
                return gw
        raise KeyError(key)

    def allocate_id(self, spec: XSpec) -> str:
        """Give C{spec} an id (C{gw0}, C{gw1}...) unless it has one."""
        if spec.id is None:
            while True:
                candidate = f"gw{self._idCounter}"
                self._idCounter += 1
                if candidate not in self:
                    spec.id = candidate
                    break
        elif spec.id in self:
            raise ValueError(f"a gateway with id {spec.id!r} already exists in this group")
        return spec.id

    def makegateway(
        self,
        spec: str | XSpec | None = None,
        maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
        transport: IGatewayTransport | None = None,
    ) -> Deferred[Gateway]:
        """
        Start a gateway as C{spec} says (default C{"popen"}).

        @param transport: the transport to start it with, for what a spec
            string cannot carry (a socket gateway's secret); by default the
            one the spec names.
        @return: a Deferred firing with the L{Gateway} once the remote side
            is ready, or failing with L{GatewayStartError} saying why not.
        @raise ValueError: for a malformed spec, naming the bad part.
        """
        if spec is None:
            spec = self._specs.pop(0) if self._specs else "popen"
        xspec = spec if isinstance(spec, XSpec) else XSpec(spec)
        if transport is None:
            transport = self._viaTransport(xspec) if xspec.via else transportForSpec(xspec)
        self.allocate_id(xspec)
        gateway = Gateway(xspec, self._reactor, maxFrameSize)
        self._gateways.append(gateway)
        gateway.whenTerminated().addCallback(lambda _: self._discard(gateway))
        return gateway.start(transport)

    def _viaTransport(self, spec: XSpec) -> IGatewayTransport:
        if spec.type != "popen":
            raise ValueError(f"via= only starts popen gateways ({spec})")
        if spec.via not in self:
            raise ValueError(f"via={spec.via}: no gateway with that id in this group ({spec})")
        return ViaTransport(self[spec.via], spec.python, bool(spec.dont_write_bytecode), spec.env)

    def _discard(self, gateway: Gateway) -> None:
        if gateway in self._gateways:
            self._gateways.remove(gateway)

    def terminate(self, timeout: float = DEFAULT_EXIT_TIMEOUT) -> Deferred[None]:
        """Exit every gateway; fire when all have ended (killing laggards)."""
        d = DeferredList([gw.exit(timeout) for gw in list(self._gateways)], consumeErrors=True)
        return d.addCallback(lambda _: None)

    def _killAll(self) -> None:
        for gw in list(self._gateways):
            gw.kill()


#: The group that module-level L{makegateway} adds to.
default_group = Group()
atexit.register(default_group._killAll)


def _groupFor(reactor: Any, group: Group | None) -> Group:
    """The group a new gateway joins: C{group}, else one that fits C{reactor}."""
    if group is not None:
        return group
    return default_group if reactor is None else Group(reactor=reactor)


def makegateway(
    spec: str | XSpec = "popen", reactor: Any = None, maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE
) -> Deferred[Gateway]:
    """
    Start a gateway from an execnet spec string, e.g. C{"popen"},
    C{"popen//python=python3.12//chdir=/tmp"}, C{"thread"}.

    @param reactor: the reactor to use; gateways made with a reactor other
        than the global one are kept in a group of their own.
    @return: a Deferred firing with the ready L{Gateway}.
    """
    return _groupFor(reactor, None).makegateway(spec, maxFrameSize)


def PopenGateway(python: str | None = None, reactor: Any = None) -> Deferred[Gateway]:
    """The seed's C{PopenGateway}: a fresh child interpreter (C{python} or this one)."""
    return makegateway("popen" if python is None else f"popen//python={python}", reactor)


def socketSpec(host: str, port: int | None = None, secret_file: str | None = None) -> str:
    """
    The spec string of a socket gateway: to C{host:port}, or, without a
    C{port}, to C{host} taken as a Twisted client endpoint string.
    """
    if port is None:
        address = host
    elif ":" in host:
        address = f"[{host}]:{port}"
    else:
        address = f"{host}:{port}"
    spec = f"socket={address}"
    if secret_file is not None:
        spec += f"//secret_file={secret_file}"
    return spec


def SocketGateway(
    host: str,
    port: int | None = None,
    secret: bytes | str | None = None,
    secret_file: str | None = None,
    reactor: Any = None,
    group: Group | None = None,
) -> Deferred[Gateway]:
    """
    The seed's C{SocketGateway}: a fresh interpreter started for us by the
    socket server at C{host:port} (C{twistd execnet-server}, or the
    standalone C{txexecnet/script/socketserver.py}).

    @param host: a host name or address; or, with no C{port}, a Twisted client
        endpoint string (C{"tls:host:7771:trustRoots=DIR"},
        C{"unix:path=/run/execnet.sock"}).
    @param secret: the server's shared secret; or give C{secret_file}.
    @param group: the L{Group} to add the gateway to (default: the default
        group, or a new one when C{reactor} is given).
    @return: a Deferred firing with the ready L{Gateway}, or failing with
        L{AuthenticationError} when the server refuses our secret (or has
        none when we do), or L{GatewayStartError}.
    """
    if secret is not None and secret_file is not None:
        raise ValueError("give secret or secret_file, not both")
    spec = socketSpec(host, port, secret_file)
    transport = None
    if secret is not None:
        transport = SocketTransport(XSpec(spec).socket, secret)
    return _groupFor(reactor, group).makegateway(spec, transport=transport)


def ThreadGateway(reactor: Any = None) -> Deferred[Gateway]:
    """A gateway whose remote side runs in threads of this process."""
    return makegateway("thread", reactor)


def SshGateway(
    destination: str,
    port: int | None = None,
    identity: str | None = None,
    known_hosts: str | None = None,
    password: str | None = None,
    passphrase: str | None = None,
    accept_new_host_keys: bool = False,
    python: str = "python3",
    ssh_config: str | None = None,
    reactor: Any = None,
    group: Group | None = None,
) -> Deferred[Gateway]:
    """
    The seed's C{SshGateway}: C{python} on C{destination}
    (C{[user@]host[:port]}, C{host} possibly an ssh_config alias), reached
    through Twisted Conch.  Whatever is not given is found as C{ssh} finds
    it (ssh_config, C{~/.ssh}, the ssh-agent); see
    L{txexecnet.transports.ssh.SshTransport}.

    @param identity: a private key file to try first.
    @param known_hosts: the known_hosts file to check the host key against.
    @param password: a password to try after the keys.
    @param passphrase: the passphrase of encrypted key files.
    @param accept_new_host_keys: add an unknown host key to known_hosts
        instead of failing with L{HostKeyError}.
    @param ssh_config: the ssh_config file to read instead of the usual ones.
    @param group: the L{Group} to add the gateway to (default: the default
        group, or a new one when C{reactor} is given).
    @return: a Deferred firing with the ready L{Gateway}, or failing with
        L{HostKeyError}, L{AuthenticationError} or L{GatewayStartError}.
    """
    from .transports.ssh import SshTransport

    transport = SshTransport(
        destination,
        port=port,
        identity=identity,
        knownHosts=known_hosts,
        password=password,
        passphrase=passphrase,
        acceptNewHostKeys=accept_new_host_keys,
        python=python,
        sshConfig=ssh_config,
    )
    return _groupFor(reactor, group).makegateway(transport.spec(), transport=transport)

"""
Making gateways: L{makegateway} from a spec string, and the constructors
named after py.execnet's (L{PopenGateway}, L{SshGateway}, L{SocketGateway},
L{ThreadGateway}) from keyword arguments.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ._remote import DEFAULT_MAX_FRAME_SIZE
from .gateway import Gateway
from .group import Group, default_group
from .output import OutputHandler
from .xspec import XSpec

__all__ = [
    "makegateway",
    "PopenGateway",
    "SocketGateway",
    "SshGateway",
    "ThreadGateway",
    "socketAddress",
    "socketSpec",
]


def _groupFor(reactor: Any, group: Group | None) -> Group:
    """The group a new gateway joins: C{group}, else one that fits C{reactor}."""
    if group is not None:
        return group
    return default_group if reactor is None else Group(reactor=reactor)


def makegateway(
    spec: str | XSpec = "popen",
    reactor: Any = None,
    maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE,
    group: Group | None = None,
    output: OutputHandler | None = None,
) -> Deferred[Gateway]:
    """
    Start a gateway from an execnet spec string, e.g. C{"popen"},
    C{"popen//python=python3.12//chdir=/tmp"}, C{"thread"},
    C{"ssh=user@host"}, C{"socket=127.0.0.1:7770"}.

    @param spec: the spec string (or L{XSpec}).
    @param reactor: the reactor to use; gateways made with a reactor other
        than the global one are kept in a group of their own.
    @param maxFrameSize: the largest frame either side may send.
    @param group: the L{Group} to add the gateway to (default: the default
        group, or a new one when C{reactor} is given).
    @param output: called with each L{RemoteOutput} of what remote code
        writes, in place of the group's handler (by default twisted.logger
        events; in the blocking API, lines on this process's stdout and
        stderr prefixed with the gateway id).
    @return: a Deferred firing with the ready L{Gateway}.
    @raise ValueError: for a malformed spec, before anything starts.
    """
    return _groupFor(reactor, group).makegateway(spec, maxFrameSize, output=output)


def PopenGateway(
    python: str | None = None, reactor: Any = None, group: Group | None = None
) -> Deferred[Gateway]:
    """
    A fresh child interpreter, as py.execnet's C{PopenGateway}.

    @param python: the interpreter command (default: this interpreter).
    @param reactor: the reactor to use.
    @param group: the L{Group} to add the gateway to.
    @return: a Deferred firing with the ready L{Gateway}.
    """
    spec = "popen" if python is None else f"popen//python={python}"
    return makegateway(spec, reactor, group=group)


def ThreadGateway(reactor: Any = None, group: Group | None = None) -> Deferred[Gateway]:
    """
    A gateway whose remote side runs in threads of this process.

    @param reactor: the reactor to use.
    @param group: the L{Group} to add the gateway to.
    @return: a Deferred firing with the ready L{Gateway}.
    """
    return makegateway("thread", reactor, group=group)


def socketAddress(host: str, port: int | None = None) -> str:
    """
    Where a socket gateway connects: C{host:port}, or, without a C{port},
    C{host} taken as a Twisted client endpoint string.

    @param host: a host name or address, or an endpoint string.
    @param port: the port, if C{host} is a host.
    """
    if port is None:
        return host
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def socketSpec(host: str, port: int | None = None, secret_file: str | None = None) -> str:
    """
    The spec string of a socket gateway (see L{socketAddress}).

    @param host: a host name or address, or an endpoint string.
    @param port: the port, if C{host} is a host.
    @param secret_file: a file holding the server's shared secret.
    """
    spec = f"socket={socketAddress(host, port)}"
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
    A fresh interpreter started for us by the socket server at C{host:port}
    (C{twistd execnet-server}, or the standalone
    C{txexecnet/script/socketserver.py}), as py.execnet's C{SocketGateway}.

    @param host: a host name or address; or, with no C{port}, a Twisted client
        endpoint string (C{"tls:host:7771:trustRoots=DIR"},
        C{"unix:path=/run/execnet.sock"}).
    @param port: the server's port.
    @param secret: the server's shared secret; or give C{secret_file}.
    @param secret_file: a file holding the server's shared secret.
    @param reactor: the reactor to use.
    @param group: the L{Group} to add the gateway to (default: the default
        group, or a new one when C{reactor} is given).
    @return: a Deferred firing with the ready L{Gateway}, or failing with
        L{AuthenticationError} when the server refuses our secret (or has
        none when we do), or L{GatewayStartError}.
    @raise ValueError: for a malformed address, or both secrets given.
    """
    from .transports.socket import SocketTransport

    if secret is not None and secret_file is not None:
        raise ValueError("give secret or secret_file, not both")
    address = socketAddress(host, port)
    if secret_file is not None:
        transport = SocketTransport.fromSecretFile(address, secret_file)
    else:
        transport = SocketTransport(address, secret)
    spec = XSpec(socketSpec(host, port, secret_file))
    return _groupFor(reactor, group).makegateway(spec, transport=transport)


def SshGateway(
    destination: str, reactor: Any = None, group: Group | None = None, **options: Any
) -> Deferred[Gateway]:
    """
    C{python} on C{destination} (C{[user@]host[:port]}, C{host} possibly an
    ssh_config alias), reached through Twisted Conch (or the system C{ssh}
    with C{client="openssh"}), as py.execnet's C{SshGateway}.  Whatever is
    not given is found as C{ssh} finds it (ssh_config, C{~/.ssh}, the
    ssh-agent).

    @param destination: where to go.
    @param reactor: the reactor to use.
    @param group: the L{Group} to add the gateway to (default: the default
        group, or a new one when C{reactor} is given).
    @param options: the keyword arguments of L{SshOptions}: C{port},
        C{identity}, C{known_hosts}, C{password}, C{passphrase},
        C{accept_new_host_keys}, C{python}, C{ssh_config},
        C{dont_write_bytecode}, C{client}.
    @return: a Deferred firing with the ready L{Gateway}, or failing with
        L{HostKeyError}, L{AuthenticationError} or L{GatewayStartError}.
    @raise ValueError: for a malformed destination or option.
    """
    from .transports.ssh import SshOptions, transportFor

    sshOptions = SshOptions(destination, **options)
    transport = transportFor(sshOptions)
    return _groupFor(reactor, group).makegateway(XSpec(sshOptions.spec()), transport=transport)

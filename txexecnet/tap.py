"""
The C{twistd execnet-server} plugin's options and service::

    twistd -n execnet-server -p 7770                        # foreground
    twistd execnet-server -p 7770 --secret-file ~/.secret   # daemon, twistd.pid, twistd.log
    twistd -n execnet-server --listen unix:/run/execnet.sock:mode=600
    twistd -n execnet-server --tls tcp:7771 --certificate server.pem \\
        --client-ca clients-ca.pem

C{twisted/plugins/txexecnet_plugin.py} points twistd here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
from typing import Any

from twisted.internet import endpoints
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage
from zope.interface import implementer

from ._remote import DEFAULT_MAX_FRAME_SIZE
from .script.socketserver import read_secret_file
from .server import ExecnetServerFactory, ExecnetServerService

__all__ = ["Options", "makeService"]

log = Logger(namespace="txexecnet.server")

DEFAULT_PORT = 7770


class Options(usage.Options):
    """The command line of C{twistd execnet-server}."""

    synopsis = "[options]"
    longdesc = (
        "Serve txexecnet socket gateways: every connection gets a fresh child "
        "Python that the client bootstraps and runs code in.  Anyone who can "
        "connect can run code as this user, so listen on loopback (the default) "
        "or require a secret (--secret-file) or client certificates (--client-ca)."
    )

    optParameters = [
        [
            "port",
            "p",
            None,
            f"TCP port to listen on, on --interface (default {DEFAULT_PORT} "
            "when no --listen or --tls is given; 0 picks a free port)",
            int,
        ],
        [
            "interface",
            None,
            "127.0.0.1",
            "the address -p listens on; 0.0.0.0 or :: exposes the server to the network",
        ],
        [
            "python",
            None,
            None,
            "the children's interpreter, e.g. 'python3.12' (default: the one running twistd)",
        ],
        [
            "secret-file",
            None,
            None,
            "require clients to prove (HMAC-SHA256 "
            "challenge-response) that they know the secret kept in this file",
        ],
        ["max-connections", None, 64, "refuse connections beyond this many", int],
        [
            "idle-timeout",
            None,
            30.0,
            "seconds a new connection may take to authenticate and send its bootstrap",
            float,
        ],
        [
            "max-frame-size",
            None,
            DEFAULT_MAX_FRAME_SIZE,
            "the largest frame (bytes) a client may send",
            int,
        ],
        [
            "memory-limit",
            None,
            0,
            "cap each child's address space at this many MiB (0: no cap)",
            int,
        ],
        [
            "certificate",
            None,
            None,
            "PEM file with the server's certificate (and chain) for --tls listeners",
        ],
        [
            "private-key",
            None,
            None,
            "PEM file with the certificate's private key (default: the --certificate file)",
        ],
        [
            "client-ca",
            None,
            None,
            "PEM file of CA certificates: --tls clients must "
            "present a certificate one of them signed",
        ],
    ]

    compData = usage.Completions(
        optActions={
            "secret-file": usage.CompleteFiles(),
            "certificate": usage.CompleteFiles("*.pem"),
            "private-key": usage.CompleteFiles("*.pem"),
            "client-ca": usage.CompleteFiles("*.pem"),
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["tls"] = []

    def opt_listen(self, description: str) -> None:
        """
        Listen on a Twisted endpoint (tcp:7770, unix:/run/x.sock:mode=600...);
        repeatable.  A tcp endpoint without interface= listens on loopback.

        @param description: a Twisted server endpoint string.
        """
        self["listen"].append(_loopbackUnlessSaid(description))

    def opt_tls(self, description: str) -> None:
        """
        Listen with TLS (see --certificate) on a plain endpoint (tcp:7771...);
        repeatable.  A tcp endpoint without interface= listens on loopback.

        @param description: a plain Twisted server endpoint string, to wrap in TLS.
        """
        self["tls"].append(_loopbackUnlessSaid(description))

    def postOptions(self) -> None:
        self["python"] = self._python(self["python"])
        self["secret"] = self._secret(self["secret-file"])
        for name in ("max-connections", "idle-timeout", "max-frame-size"):
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        if self["memory-limit"] < 0:
            raise usage.UsageError("--memory-limit must be 0 (no cap) or positive")
        if self["port"] is not None and not 0 <= self["port"] <= 65535:
            raise usage.UsageError(f"--port {self['port']} is not a TCP port")
        if self["port"] is None and not self["listen"] and not self["tls"]:
            self["port"] = DEFAULT_PORT
        if self["port"] is not None:
            self["listen"].insert(0, _tcpDescription(self["port"], self["interface"]))
        self["tlsOptions"] = self._tlsOptions()
        for description in self["listen"] + self["tls"]:
            _checkDescription(description)

    @staticmethod
    def _python(python: str | None) -> list[str] | None:
        if python is None:
            return None
        argv = shlex.split(python)
        executable = shutil.which(argv[0]) if argv else None
        if executable is None:
            raise usage.UsageError(f"--python {python!r}: no such executable")
        return [executable] + argv[1:]

    @staticmethod
    def _secret(path: str | None) -> bytes | None:
        if path is None:
            return None
        try:
            secret = read_secret_file(path)
            mode = os.stat(path).st_mode
        except (OSError, ValueError) as e:
            raise usage.UsageError(f"--secret-file: {e}")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warn("secret file {path} can be read by other users (chmod 600 it)", path=path)
        return secret

    def _tlsOptions(self) -> Any:
        if not self["tls"]:
            for name in ("certificate", "private-key", "client-ca"):
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} applies to --tls listeners; give --tls too")
            return None
        if self["certificate"] is None:
            raise usage.UsageError("--tls needs --certificate")
        if self["client-ca"] is not None:
            plain = [d for d in self["listen"] if d.split(":", 1)[0] in ("ssl", "tls")]
            if plain:
                raise usage.UsageError(
                    f"--client-ca applies to --tls listeners only; {plain[0]!r} would accept "
                    "clients without a certificate"
                )
        try:
            return serverTLSOptions(self["certificate"], self["private-key"], self["client-ca"])
        except Exception as e:
            raise usage.UsageError(f"cannot load the TLS certificate, key or CA: {e}")


def serverTLSOptions(
    certificate: str, privateKey: str | None = None, clientCA: str | None = None
) -> Any:
    """
    The TLS settings of a C{--tls} listener.

    @param certificate: a PEM file holding the server certificate, then any
        intermediate certificates (and the key, if C{privateKey} is C{None}).
    @param privateKey: a PEM file holding the certificate's key.
    @param clientCA: a PEM file of CA certificates; if given, a client must
        present a certificate signed by one of them, or the TLS handshake fails.
    @return: a C{twisted.internet.ssl.CertificateOptions}.
    """
    from twisted.internet import ssl

    certificates = _pemCertificates(certificate)
    with open(privateKey or certificate, "rb") as f:
        server = ssl.PrivateCertificate.loadPEM(certificates[0].dumpPEM() + f.read())
    options: dict[str, Any] = {
        "privateKey": server.privateKey.original,
        "certificate": server.original,
        "extraCertChain": [c.original for c in certificates[1:]],
    }
    if clientCA is not None:
        # A trust root makes the server ask for, and require, a client certificate.
        options["trustRoot"] = ssl.trustRootFromCertificates(_pemCertificates(clientCA))
    return ssl.CertificateOptions(**options)


def _pemCertificates(path: str) -> list[Any]:
    from twisted.internet import ssl

    with open(path, "rb") as f:
        data = f.read()
    marker = b"-----END CERTIFICATE-----"
    begin = b"-----BEGIN CERTIFICATE-----"
    blocks = [block + marker for block in data.split(marker) if begin in block]
    if not blocks:
        raise ValueError(f"no certificate in {path}")
    return [ssl.Certificate.loadPEM(block) for block in blocks]


def _tcpDescription(port: int, interface: str) -> str:
    kind = "tcp6" if ":" in interface else "tcp"
    return f"{kind}:{port}:interface={endpoints.quoteStringArgument(interface)}"


def _loopbackUnlessSaid(description: str) -> str:
    """
    C{description}, bound to loopback if it is a TCP endpoint naming no
    interface: Twisted's default is every interface, and exposing a server
    that runs code for its clients must be an explicit choice.
    """
    kind, _, rest = description.partition(":")
    positional = [arg for arg in rest.split(":") if "=" not in arg]
    if kind in ("tcp", "tcp6") and "interface=" not in rest and len(positional) < 2:
        loopback = "\\:\\:1" if kind == "tcp6" else "127.0.0.1"
        return f"{description}:interface={loopback}"
    return description


def _checkDescription(description: str) -> None:
    # Endpoint objects are only made here, not used, so no reactor is needed:
    # a typo fails the command line instead of the start of the daemon.
    try:
        endpoints.serverFromString(None, description)
    except Exception as e:
        raise usage.UsageError(f"bad endpoint {description!r}: {e}")


def makeService(options: Options) -> ExecnetServerService:
    """
    The service C{twistd execnet-server} runs, from parsed L{Options}.

    @param options: the parsed command line.
    """
    from twisted.internet import reactor

    factory = ExecnetServerFactory(
        reactor,
        python=options["python"],
        secret=options["secret"],
        maxConnections=options["max-connections"],
        idleTimeout=options["idle-timeout"],
        maxFrameSize=options["max-frame-size"],
        memoryLimit=options["memory-limit"],
    )
    listeners = [
        (endpoints.serverFromString(reactor, description), description)
        for description in options["listen"]
    ]
    for description in options["tls"]:
        endpoint = endpoints.serverFromString(reactor, description)
        listeners.append((_TLSEndpoint(endpoint, options["tlsOptions"]), f"TLS over {description}"))
    clientCertificates = options["client-ca"] is not None and not options["listen"]
    return ExecnetServerService(
        factory, listeners, open=options["secret"] is None and not clientCertificates
    )


@implementer(IStreamServerEndpoint)
class _TLSEndpoint:
    """Listens on a plain endpoint and speaks TLS over each connection."""

    def __init__(self, endpoint: Any, tlsOptions: Any) -> None:
        self._endpoint = endpoint
        self._tlsOptions = tlsOptions

    def listen(self, factory: Any) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self._endpoint.listen(TLSMemoryBIOFactory(self._tlsOptions, False, factory))

"""
SSH gateways over Twisted Conch: the remote interpreter is started by an
OpenSSH (or any SSH-2) server, its stdin/stdout carried by an SSH session
channel.

What C{ssh user@host} would do, this does without the C{ssh} binary:

  - host aliases, users, ports and keys come from C{~/.ssh/config}
    (L{txexecnet.transports.ssh.config});
  - host keys are checked against OpenSSH's known_hosts files, hashed and
    C{[host]:port} entries included, and an unknown or changed key fails
    with L{HostKeyError} instead of a prompt
    (L{txexecnet.transports.ssh.knownhosts});
  - authentication tries the ssh-agent's keys, then key files (ed25519,
    ECDSA, RSA with SHA-2 signatures, passphrase-protected ones), then a
    password (L{txexecnet.transports.ssh.auth});
  - gateways to the same (user, host, port) share one SSH connection, one
    session channel each, and the connection closes with its last gateway
    (L{txexecnet.transports.ssh.connection}).

The parts of Conch that do not fit a gateway are replaced here:
C{SSHCommandClientEndpoint} connects over IPv4 only and its session channel
drops stderr, has no producer support and buffers writes without limit;
L{SshTransport} connects with a C{HostnameEndpoint} and runs each gateway
on a L{GatewaySession}, a session channel that logs remote stderr, pauses
the gateway's senders when its buffer is full, and sends large frames
without copying them over and over.

With C{//ssh_client=openssh}, the system C{ssh} binary is run instead
(L{txexecnet.transports.ssh.openssh}).

The modules, each importing only those before it: C{options} (what the
caller asks), C{config} and C{knownhosts} (OpenSSH's files), C{target}
(where that leads), C{auth}, C{session}, C{connection} (and its pool),
C{transport}.
"""

from .connection import SshConnection, SshConnectionPool, defaultPool
from .options import SshOptions, parseDestination, remoteCommand
from .session import HIGH_WATER, LOW_WATER, GatewaySession
from .target import SshTarget
from .transport import SshTransport, transportFor, transportForSpec

__all__ = [
    "GatewaySession",
    "HIGH_WATER",
    "LOW_WATER",
    "SshConnection",
    "SshConnectionPool",
    "SshOptions",
    "SshTarget",
    "SshTransport",
    "defaultPool",
    "parseDestination",
    "remoteCommand",
    "transportFor",
    "transportForSpec",
]

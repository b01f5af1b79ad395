"""
SSH user authentication, in the order C{ssh} uses: the ssh-agent's keys,
then key files, then a password (also for keyboard-interactive).
"""

from __future__ import annotations

import os
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.conch.client.agent import SSHAgentClient
from twisted.conch.ssh.agent import AGENTC_SIGN_REQUEST
from twisted.conch.ssh.common import NS, getNS
from twisted.conch.ssh.keys import BadKeyError, EncryptedKeyError, Key
from twisted.conch.ssh.userauth import MSG_USERAUTH_REQUEST, SSHUserAuthClient
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.python.failure import Failure

from ...errors import GatewayStartError
from ..factories import quietFactory
from .knownhosts import fingerprint
from .target import SshTarget

if TYPE_CHECKING:
    from twisted.conch.ssh.connection import SSHConnection

__all__ = ["Credentials", "UserAuthClient"]

_SSH_AGENT_RSA_SHA2_256 = 2
_SSH_AGENT_RSA_SHA2_512 = 4
_AGENT_SIGN_RESPONSE = 14


class _Identity:
    """
    A key to offer: its public half at once, its signature when the server
    has said it would accept the key.

    @ivar public: the public C{twisted.conch.ssh.keys.Key}.
    @ivar source: where it comes from, for messages.
    """

    def __init__(self, public: Key, source: str) -> None:
        self.public = public
        self.source = source

    def sign(self, data: bytes, algorithm: bytes) -> Deferred[bytes]:
        raise NotImplementedError()


class _FileIdentity(_Identity):
    """A private key file, decrypted only when its signature is needed."""

    def __init__(self, public: Key, path: str, passphrase: str | None, private: Key | None) -> None:
        _Identity.__init__(self, public, path)
        self._path = path
        self._passphrase = passphrase
        self._private = private

    def sign(self, data: bytes, algorithm: bytes) -> Deferred[bytes]:
        if self._private is None:
            passphrase = self._passphrase.encode("utf-8") if self._passphrase is not None else None
            try:
                self._private = Key.fromFile(self._path, passphrase=passphrase)
            except EncryptedKeyError:
                return fail(
                    ValueError(f"{self._path} is accepted by the server but needs a passphrase")
                )
            except (BadKeyError, OSError) as e:
                return fail(ValueError(f"cannot load {self._path}: {e}"))
        return succeed(self._private.sign(data, signatureType=algorithm))


class _AgentIdentity(_Identity):
    """A key held by the ssh-agent, which signs for us."""

    def __init__(self, public: Key, comment: str, agent: SSHAgentClient) -> None:
        _Identity.__init__(self, public, f"agent key {comment or fingerprint(public.blob())}")
        self._agent = agent

    def sign(self, data: bytes, algorithm: bytes) -> Deferred[bytes]:
        flags = {b"rsa-sha2-256": _SSH_AGENT_RSA_SHA2_256, b"rsa-sha2-512": _SSH_AGENT_RSA_SHA2_512}
        request = NS(self.public.blob()) + NS(data) + struct.pack(">L", flags.get(algorithm, 0))

        def signed(response: bytes) -> bytes:
            if response[:1] != bytes((_AGENT_SIGN_RESPONSE,)):
                raise ValueError(f"the ssh-agent refused to sign with {self.source}")
            return getNS(response[1:])[0]

        return self._agent.sendRequest(AGENTC_SIGN_REQUEST, request).addCallback(signed)


class Credentials:
    """
    The keys and password to authenticate with, loaded when a connection is
    made: key files now (their public halves), agent keys once the
    connection is secure.

    @raise GatewayStartError: for an identity file the caller named that
        cannot be read.
    """

    def __init__(self, target: SshTarget, password: bytes | None, passphrase: str | None) -> None:
        """
        @param target: where the connection goes (its key files and agent).
        @param password: a password to offer, or C{None}.
        @param passphrase: the passphrase of encrypted key files, or C{None}.
        """
        self.password = password
        self.notes: list[str] = []
        self.files: list[_FileIdentity] = []
        for path in target.identityFiles:
            identity = self._load(path, passphrase, path in target.explicitIdentities)
            if identity is not None:
                self.files.append(identity)
        self._target = target

    def _load(self, path: str, passphrase: str | None, explicit: bool) -> _FileIdentity | None:
        if not os.path.exists(path):
            if explicit:
                raise GatewayStartError(f"identity file {path} does not exist")
            return None
        public = private = None
        try:
            if os.path.exists(path + ".pub") and passphrase is None:
                public = Key.fromFile(path + ".pub")
            else:
                private = Key.fromFile(
                    path, passphrase=passphrase.encode("utf-8") if passphrase is not None else None
                )
                public = private.public()
        except EncryptedKeyError:
            self.notes.append(f"{path} needs a passphrase (and has no {path}.pub)")
            return None
        except (BadKeyError, ValueError, OSError) as e:
            if explicit:
                raise GatewayStartError(f"cannot load identity file {path}: {e}") from None
            self.notes.append(f"{path} skipped: {e}")
            return None
        return _FileIdentity(public, path, passphrase, private)

    def agentIdentities(
        self, reactor: Any
    ) -> Deferred[tuple[list[_Identity], SSHAgentClient | None]]:
        """
        The agent's keys (only those of our files if IdentitiesOnly).

        @param reactor: the reactor to reach the agent's socket with.
        """
        socketPath = self._target.agentSocket
        if socketPath is None:
            return succeed(([], None))
        endpoint = UNIXClientEndpoint(reactor, socketPath, timeout=5)
        d = endpoint.connect(quietFactory(SSHAgentClient))

        def connected(agentClient: SSHAgentClient) -> Deferred[Any]:
            return agentClient.requestIdentities().addCallback(lambda ids: (ids, agentClient))

        def listed(result: tuple[list[tuple[bytes, bytes]], SSHAgentClient]) -> Any:
            ids, agentClient = result
            own = {f.public.blob() for f in self.files}
            identities: list[_Identity] = []
            for blob, comment in ids:
                if self._target.identitiesOnly and blob not in own:
                    continue
                try:
                    public = Key.fromString(blob)
                except BadKeyError:
                    continue
                identities.append(
                    _AgentIdentity(public, comment.decode("utf-8", "replace"), agentClient)
                )
            return identities, agentClient

        def noAgent(f: Failure) -> tuple[list[_Identity], None]:
            self.notes.append(f"ssh-agent at {socketPath} unusable: {f.getErrorMessage()}")
            return [], None

        return d.addCallback(connected).addCallback(listed).addErrback(noAgent)


class UserAuthClient(SSHUserAuthClient):
    """
    The client side of C{ssh-userauth}, in the order C{ssh} uses: agent
    keys, then key files (each offered first, signed only if the server
    would accept it), then the password (also for keyboard-interactive).

    RSA keys sign with SHA-2 (C{rsa-sha2-512}/C{-256}) when the server says
    it accepts that, as OpenSSH servers have required since 8.8.
    """

    transport: Any  # the SSH transport layer, once the service runs

    def __init__(
        self, target: SshTarget, credentials: Credentials, connection: SSHConnection
    ) -> None:
        """
        @param target: where the connection goes.
        @param credentials: what to authenticate with.
        @param connection: the service to start once authenticated.
        """
        SSHUserAuthClient.__init__(self, target.user.encode("utf-8"), connection)
        self._target = target
        self._credentials = credentials
        self._identities: deque[_Identity] = deque()
        self._current: tuple[_Identity, bytes] | None = None
        self._agent: SSHAgentClient | None = None
        self._tried: list[str] = []
        self._passwordTried = False
        self._kbdTried = False
        self._serverMethods = b""

    def prepare(self, reactor: Any) -> Deferred[None]:
        """
        Gather the keys to offer: the agent's first, then files.

        @param reactor: the reactor to reach the agent with.
        """

        def gathered(result: tuple[list[_Identity], SSHAgentClient | None]) -> None:
            agentIdentities, self._agent = result
            seen = {i.public.blob() for i in agentIdentities}
            self._identities.extend(agentIdentities)
            self._identities.extend(
                f for f in self._credentials.files if f.public.blob() not in seen
            )

        return self._credentials.agentIdentities(reactor).addCallback(gathered)

    def serviceStopped(self) -> None:
        if self._agent is not None and self._agent.transport is not None:
            self._agent.transport.loseConnection()
            self._agent = None

    def ssh_USERAUTH_FAILURE(self, packet: bytes) -> Any:
        self._serverMethods = getNS(packet)[0]
        return SSHUserAuthClient.ssh_USERAUTH_FAILURE(self, packet)

    def _algorithm(self, key: Key) -> bytes:
        keyType = key.sshType()
        if keyType != b"ssh-rsa":
            return keyType
        accepted = self.transport.peerExtensions.get(b"server-sig-algs", b"").split(b",")
        for algorithm in (b"rsa-sha2-512", b"rsa-sha2-256"):
            if algorithm in accepted:
                return algorithm
        return keyType

    def auth_publickey(self) -> bool:  # type: ignore[override]
        if not self._identities:
            return False
        identity = self._identities.popleft()
        algorithm = self._algorithm(identity.public)
        self._current = (identity, algorithm)
        self._tried.append(identity.source)
        self.askForAuth(b"publickey", b"\x00" + NS(algorithm) + NS(identity.public.blob()))
        return True

    def ssh_USERAUTH_PK_OK_publickey(self, packet: bytes) -> None:
        assert self._current is not None
        identity, algorithm = self._current
        assert self.transport is not None
        blob = identity.public.blob()
        data = (
            NS(self.transport.sessionID)
            + bytes((MSG_USERAUTH_REQUEST,))
            + NS(self.user)
            + NS(self.instance.name)
            + NS(b"publickey")
            + b"\x01"
            + NS(algorithm)
            + NS(blob)
        )

        def signed(signature: bytes) -> None:
            self.askForAuth(b"publickey", b"\x01" + NS(algorithm) + NS(blob) + NS(signature))

        def unsigned(f: Failure) -> None:
            self._credentials.notes.append(f.getErrorMessage())
            self.askForAuth(b"none", b"")

        maybeDeferred(identity.sign, data, algorithm).addCallbacks(signed, unsigned)

    def getPassword(self, prompt: bytes | None = None) -> Deferred[bytes] | None:
        if self._credentials.password is None or self._passwordTried:
            return None
        self._passwordTried = True
        self._tried.append("password")
        return succeed(self._credentials.password)

    def auth_keyboard_interactive(self) -> bool:
        if self._credentials.password is None or self._kbdTried:
            return False
        self._kbdTried = True
        self._tried.append("keyboard-interactive password")
        return SSHUserAuthClient.auth_keyboard_interactive(self)

    def getGenericAnswers(
        self, name: bytes, instruction: bytes, prompts: list[tuple[bytes, int]]
    ) -> Deferred[list[str]]:
        password = self._credentials.password
        if password is not None and all(not echo for _, echo in prompts) and len(prompts) <= 1:
            return succeed([password.decode("utf-8")] * len(prompts))
        return fail(
            ValueError(f"cannot answer keyboard-interactive prompts {[p for p, _ in prompts]}")
        )

    def describeFailure(self, serverSaid: str | None) -> str:
        """
        Why authentication failed, for an L{AuthenticationError}.

        @param serverSaid: the server's disconnect message, if any.
        """
        tried = ", ".join(self._tried) or "nothing (no keys, agent or password)"
        message = f"the server refused to authenticate {self._target.user}: tried {tried}"
        if self._serverMethods:
            message += f"; it accepts {self._serverMethods.decode('ascii', 'replace')}"
        if serverSaid:
            message += f"; it said: {serverSaid}"
        if self._credentials.notes:
            message += "; " + "; ".join(self._credentials.notes)
        return message

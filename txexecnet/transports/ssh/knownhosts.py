"""
Host key checking against OpenSSH C{known_hosts} files, as C{ssh} does it.

Conch's C{KnownHostsFile} looks hosts up by bare name, so the
C{[host]:port} entries that OpenSSH writes for every non-default port never
match, and its unknown-key path prompts on /dev/tty.  This module matches
what OpenSSH writes (hashed C{|1|salt|hash} names, C{[host]:port},
wildcard and negated patterns, C{@revoked} lines), never prompts, and turns
every refusal into a L{HostKeyError} that names the host and the key's
fingerprint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import NamedTuple, Sequence

from twisted.logger import Logger

from ...errors import HostKeyError
from .config import hostMatches

__all__ = ["KnownHosts", "fingerprint", "hostKeyName", "hostKeyAlgorithms"]

log = Logger(namespace="txexecnet.ssh")

_HASH_MAGIC = "|1|"

#: OpenSSH's preference among host key algorithms, used when known_hosts
#: says nothing about a host.
_DEFAULT_ALGORITHMS = (
    b"ssh-ed25519",
    b"ecdsa-sha2-nistp256",
    b"ecdsa-sha2-nistp384",
    b"ecdsa-sha2-nistp521",
    b"rsa-sha2-512",
    b"rsa-sha2-256",
)

#: The host key algorithms that produce a key of each known_hosts key type.
_ALGORITHMS_FOR_TYPE = {
    "ssh-rsa": (b"rsa-sha2-512", b"rsa-sha2-256", b"ssh-rsa"),
}


def fingerprint(blob: bytes) -> str:
    """
    A key's fingerprint as C{ssh-keygen -l} prints it: C{SHA256:...}.

    @param blob: the public key, in SSH wire format.
    """
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def hostKeyName(host: str, port: int) -> str:
    """
    The name a host's key is filed under: C{host}, or C{[host]:port}.

    @param host: the host name or address.
    @param port: the port.
    """
    host = host.lower()
    return host if port == 22 else f"[{host}]:{port}"


def hostKeyAlgorithms(knownTypes: Sequence[str], supported: Sequence[bytes]) -> list[bytes]:
    """
    The host key algorithms to offer, best first: those whose keys
    known_hosts already holds for the host (so that a server with several
    host keys shows the one we can check), then OpenSSH's usual order, then
    whatever else C{supported} has.

    @param knownTypes: the key types known_hosts has for the host.
    @param supported: the algorithms the client supports, in its order.
    """
    order: list[bytes] = []
    for keyType in knownTypes:
        order.extend(_ALGORITHMS_FOR_TYPE.get(keyType, (keyType.encode("ascii"),)))
    order.extend(_DEFAULT_ALGORITHMS)
    order.extend(supported)
    result: list[bytes] = []
    for algorithm in order:
        if algorithm in supported and algorithm not in result:
            result.append(algorithm)
    return result


class _Entry(NamedTuple):
    """One usable known_hosts line."""

    marker: str | None
    patterns: str
    keyType: str
    blob: bytes
    path: str
    line: int

    def matchesName(self, name: str) -> bool:
        if self.patterns.startswith(_HASH_MAGIC):
            try:
                salt64, digest64 = self.patterns[len(_HASH_MAGIC) :].split("|")
                salt, digest = base64.b64decode(salt64), base64.b64decode(digest64)
            except ValueError:
                return False
            mac = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
            return hmac.compare_digest(mac, digest)
        return hostMatches(self.patterns.split(","), name)


class KnownHosts:
    """
    The known_hosts files that vouch for hosts' keys.

    @param files: the user's files, read in order; a newly accepted key is
        appended to the first.
    @param systemFiles: further files that are only read
        (C{/etc/ssh/ssh_known_hosts}).
    @param hashNames: write new entries with hashed host names, as OpenSSH
        does with C{HashKnownHosts yes}.
    """

    def __init__(
        self, files: Sequence[str], systemFiles: Sequence[str] = (), hashNames: bool = True
    ) -> None:
        if not files:
            raise ValueError("at least one known_hosts file is needed")
        self.files = [os.path.expanduser(f) for f in files]
        self.systemFiles = [os.path.expanduser(f) for f in systemFiles]
        self.hashNames = hashNames

    def __repr__(self) -> str:
        return f"<KnownHosts {self.files + self.systemFiles}>"

    def _entries(self) -> list[_Entry]:
        entries = []
        for path in self.files + self.systemFiles:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines = f.readlines()
            except FileNotFoundError:
                continue
            except OSError as e:
                log.warn("cannot read {path}: {error}", path=path, error=e)
                continue
            for number, line in enumerate(lines, 1):
                entry = _parse(line, path, number)
                if entry is not None:
                    entries.append(entry)
        return entries

    def knownTypes(self, name: str) -> list[str]:
        """
        The key types known_hosts holds for C{name}, in file order.

        @param name: the host's name in known_hosts (see L{hostKeyName}).
        """
        types: list[str] = []
        for entry in self._entries():
            if entry.marker is None and entry.keyType not in types and entry.matchesName(name):
                types.append(entry.keyType)
        return types

    def check(self, name: str, keyType: str, blob: bytes, acceptNew: bool = False) -> None:
        """
        Accept the host key C{blob} of type C{keyType} offered by C{name}
        (see L{hostKeyName}), or raise.

        @param acceptNew: when known_hosts holds no key of this type for the
            host, add this one (and log that it did) instead of refusing.
        @param name: the host's name in known_hosts.
        @param keyType: the key's type (C{ssh-ed25519}...).
        @param blob: the key, in SSH wire format.
        @raise HostKeyError: when the key is revoked, differs from the one on
            file for the host, or is unknown (and C{acceptNew} is false).
        """
        keyPrint = fingerprint(blob)
        changed: _Entry | None = None
        for entry in self._entries():
            if not entry.matchesName(name):
                continue
            if entry.marker == "@revoked":
                if entry.blob == blob:
                    raise HostKeyError(
                        f"the {keyType} host key of {name} ({keyPrint}) is marked "
                        f"@revoked in {entry.path}:{entry.line}"
                    )
                continue
            if entry.marker is not None or entry.keyType != keyType:
                continue
            if entry.blob == blob:
                return
            if changed is None:
                changed = entry
        if changed is not None:
            raise HostKeyError(
                f"REMOTE HOST IDENTIFICATION HAS CHANGED for {name}: it offers the "
                f"{keyType} key {keyPrint}, but {changed.path}:{changed.line} holds a "
                f"different {keyType} key for it.  Someone could be intercepting the "
                f"connection, or the host key was replaced; if you are sure, remove "
                f"that line (ssh-keygen -R '{name}')"
            )
        if not acceptNew:
            raise HostKeyError(
                f"the host key of {name} is not known: its {keyType} key {keyPrint} is "
                f"not in {', '.join(self.files + self.systemFiles)}.  Check the "
                f"fingerprint, then accept it explicitly (accept_new_host_keys=True, "
                f"spec //ssh_accept_new) or add it with ssh-keyscan"
            )
        self.add(name, keyType, blob)
        log.warn(
            "permanently added the {keyType} host key {fingerprint} of {name} to {path}",
            keyType=keyType,
            fingerprint=keyPrint,
            name=name,
            path=self.files[0],
        )

    def add(self, name: str, keyType: str, blob: bytes) -> None:
        """
        Append a known_hosts line for C{name} to the first file.

        @param name: the host's name in known_hosts.
        @param keyType: the key's type.
        @param blob: the key, in SSH wire format.
        """
        path = self.files[0]
        if self.hashNames:
            salt = os.urandom(20)
            digest = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
            host = f"{_HASH_MAGIC}{_b64(salt)}|{_b64(digest)}"
        else:
            host = name
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700)
        line = f"{host} {keyType} {_b64(blob)}\n"
        with open(path, "a+", encoding="utf-8") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(f.tell() - 1)
                if f.read(1) != "\n":
                    line = "\n" + line
            f.write(line)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse(line: str, path: str, number: int) -> _Entry | None:
    """One line of a known_hosts file, or C{None} for a comment or junk."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = None
    if fields[0].startswith("@"):
        marker = fields.pop(0)
    if len(fields) < 3:
        return None
    patterns, keyType, key = fields[:3]
    try:
        blob = base64.b64decode(key, validate=True)
    except ValueError:
        log.debug("{path}:{line}: undecodable key, line ignored", path=path, line=number)
        return None
    return _Entry(marker, patterns, keyType, blob, path, number)

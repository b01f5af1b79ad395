"""
A real OpenSSH server for the tests: C{/usr/sbin/sshd} on a free loopback
port (127.0.0.1 and ::1), with throwaway host and client keys and its own
config, pid file and log in a temp directory, shared by the whole session.

sshd daemonises itself (no C{-D}), like the shared socket server daemons in
C{fixtures_server.py}, so that it and its per-connection processes are not
children of the test process, which the leak check would count.  It is
stopped by the pid in its pid file when the session ends.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time

import pytest

from processes import SHARED, alive

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"

#: The remote interpreter: the system one, not a pyenv shim (which costs a
#: quarter of a second per start).
REMOTE_PYTHON = "/usr/bin/python3"

#: The passphrase of the test's encrypted client key.
PASSPHRASE = "txexecnet-test"

#: Seconds any wait on sshd may take before the fixture fails.
WAIT = 15.0

_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
ListenAddress ::1
HostKey {dir}/host_ed25519
HostKey {dir}/host_ecdsa
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
LogLevel VERBOSE
# Root's login shell is bash, which sources ~/.bashrc for ssh commands only
# when SHLVL is unset: skip it (on this machine it runs pyenv init, ~130 ms
# per gateway start).
SetEnv SHLVL=1
"""

#: Newer sshd versions (9.8+) penalise sources that fail to authenticate;
#: the tests fail on purpose, from 127.0.0.1, many times.
_PENALTIES_OFF = "PerSourcePenalties no\n"


def keygen(path: str, keyType: str, passphrase: str = "", bits: int | None = None) -> str:
    """Make a key pair at C{path} (and C{path}.pub); return the public line."""
    args = [
        SSH_KEYGEN,
        "-q",
        "-t",
        keyType,
        "-N",
        passphrase,
        "-C",
        os.path.basename(path),
        "-f",
        path,
    ]
    if bits:
        args[4:4] = ["-b", str(bits)]
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, timeout=WAIT)
    with open(path + ".pub") as f:
        return f.read().strip()


def tcpConnections(port: int) -> int:
    """How many established TCP connections (client ends) go to C{port}."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def _freePort() -> int:
    """A port free on both 127.0.0.1 and ::1 (for a moment)."""
    while True:
        with socket.socket(socket.AF_INET) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6) as s6:
                    s6.bind(("::1", port))
            except OSError:
                continue
            return port


def _banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


class SshServer:
    """
    One running sshd and what a client needs to reach it.

    @ivar port: its port, on 127.0.0.1 and ::1.
    @ivar user: the user to log in as (whoever runs the tests).
    @ivar clientKey: an authorised ed25519 key (no passphrase).
    @ivar rsaKey: an authorised RSA key.
    @ivar ecdsaKey: an authorised ECDSA key, encrypted with L{PASSPHRASE}.
    @ivar strangerKey: a key the server does not know.
    @ivar knownHosts: a known_hosts file vouching for the server: a hashed
        C{[127.0.0.1]:port} entry and a plain C{[::1]:port} one, for its
        ed25519 key only (it also has an ECDSA key).
    @ivar clientConfig: an ssh_config that keeps the client to the given
        keys: no ssh-agent, no C{~/.ssh/config}.
    """

    host = "127.0.0.1"
    python = REMOTE_PYTHON

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.user = getpass.getuser()
        self.port = 0
        self.pid = 0
        self.logPath = os.path.join(directory, "sshd.log")
        self.configPath = os.path.join(directory, "sshd_config")
        self.hostKeyLine = keygen(os.path.join(directory, "host_ed25519"), "ed25519")
        self.hostEcdsaLine = keygen(os.path.join(directory, "host_ecdsa"), "ecdsa")
        self.clientKey = os.path.join(directory, "client_ed25519")
        self.rsaKey = os.path.join(directory, "client_rsa")
        self.ecdsaKey = os.path.join(directory, "client_ecdsa")
        self.strangerKey = os.path.join(directory, "stranger_ed25519")
        authorized = [
            keygen(self.clientKey, "ed25519"),
            keygen(self.rsaKey, "rsa", bits=2048),
            keygen(self.ecdsaKey, "ecdsa", passphrase=PASSPHRASE),
        ]
        keygen(self.strangerKey, "ed25519")
        with open(os.path.join(directory, "authorized_keys"), "w") as f:
            f.write("\n".join(authorized) + "\n")
        self.knownHosts = os.path.join(directory, "known_hosts")
        self.clientConfig = os.path.join(directory, "ssh_config")
        with open(self.clientConfig, "w") as f:
            f.write("Host *\n    IdentityAgent none\n    IdentitiesOnly yes\n")

    def hostKey(self, which: str = "ed25519") -> tuple[str, str]:
        """The server's (key type, base64 key) of that kind."""
        line = self.hostKeyLine if which == "ed25519" else self.hostEcdsaLine
        keyType, key = line.split()[:2]
        return keyType, key

    def fingerprint(self, which: str = "ed25519") -> str:
        """The host key's fingerprint, as C{ssh-keygen -l} says it."""
        path = os.path.join(self.dir, f"host_{which}.pub")
        out = subprocess.run(
            [SSH_KEYGEN, "-l", "-f", path], check=True, capture_output=True, text=True, timeout=WAIT
        )
        return out.stdout.split()[1]

    def destination(self, host: str | None = None) -> str:
        """C{user@host:port}, brackets around an IPv6 host."""
        host = host or self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{self.user}@{host}:{self.port}"

    def spec(self, host: str | None = None, **options: object) -> str:
        """
        A spec string for a gateway on this server: our key, known_hosts
        and client config unless C{options} replace them (an option set to
        L{None} is left out; C{True} is a bare flag).
        """
        values: dict[str, object] = {
            "python": self.python,
            "ssh_identity": self.clientKey,
            "ssh_known_hosts": self.knownHosts,
            "ssh_config": self.clientConfig,
        }
        values.update(options)
        parts = [f"ssh={self.destination(host)}"]
        for key, value in values.items():
            if value is True:
                parts.append(key)
            elif value is not None:
                parts.append(f"{key}={value}")
        return "//".join(parts)

    def connections(self) -> int:
        """Established TCP connections to the server now."""
        return tcpConnections(self.port)

    def log(self) -> str:
        try:
            with open(self.logPath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self) -> None:
        """Start sshd on a free port; return once it answers on both addresses."""
        for _ in range(5):
            self.port = _freePort()
            config = _CONFIG.format(port=self.port, dir=self.dir)
            with open(self.configPath, "w") as f:
                f.write(config + _PENALTIES_OFF)
            test = subprocess.run(
                [SSHD, "-t", "-f", self.configPath], capture_output=True, text=True, timeout=WAIT
            )
            if test.returncode != 0:
                with open(self.configPath, "w") as f:
                    f.write(config)
            pidPath = os.path.join(self.dir, "sshd.pid")
            for stale in (pidPath, self.logPath):
                if os.path.exists(stale):
                    os.unlink(stale)
            launch = subprocess.run(
                [SSHD, "-f", self.configPath, "-E", self.logPath],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=WAIT,
            )
            if launch.returncode != 0:
                raise RuntimeError(f"sshd did not start: {launch.stderr}{self.log()}")
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                if (
                    os.path.exists(pidPath)
                    and _banner("127.0.0.1", self.port)
                    and _banner("::1", self.port)
                ):
                    with open(pidPath) as f:
                        self.pid = int(f.read())
                    SHARED.add(self.pid)
                    self._writeKnownHosts()
                    return
                if "Address already in use" in self.log():
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError(f"sshd did not answer on port {self.port}:\n{self.log()}")
        raise RuntimeError(f"sshd found no free port:\n{self.log()}")

    def _writeKnownHosts(self) -> None:
        keyType, key = self.hostKey()
        with open(self.knownHosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {keyType} {key}\n")
        # Hash it, as OpenSSH does with HashKnownHosts yes (Debian's default)...
        subprocess.run(
            [SSH_KEYGEN, "-q", "-H", "-f", self.knownHosts],
            check=True,
            capture_output=True,
            timeout=WAIT,
        )
        os.unlink(self.knownHosts + ".old")
        # ...and add a plain one, as it writes with HashKnownHosts no.
        with open(self.knownHosts, "a") as f:
            f.write(f"[::1]:{self.port} {keyType} {key}\n")

    def stop(self) -> None:
        """Stop sshd (its connections' processes end with their clients)."""
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and alive(self.pid):
            time.sleep(0.02)
        if alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> SshServer:
    """A running sshd shared by the session, stopped at its end."""
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} is missing: install openssh-server (test.sh does, as root)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    server = SshServer(str(tmp_path_factory.mktemp("sshd")))
    server.start()
    yield server
    server.stop()

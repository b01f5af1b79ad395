"""
A throwaway OpenSSH server for the SSH benchmarks: C{/usr/sbin/sshd -D} on a
free port of 127.0.0.1, with host and client keys, config, known_hosts and
log in a temporary directory that goes when the server stops.

The recipe is the one of C{tests/sshd.py}, which cannot be imported here (it
is pytest fixture code that imports the tests' process helpers).  Unlike the
tests' server, this one stays in the foreground as a child of the benchmark
process, so that stopping it is killing one child.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Iterator

SSHD = "/usr/sbin/sshd"

#: The remote interpreter: the system one, not a pyenv shim (which costs a
#: quarter of a second per start).
REMOTE_PYTHON = "/usr/bin/python3"

#: Seconds any wait on sshd or ssh-keygen may take.
WAIT = 15.0

_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_ed25519
PidFile none
AuthorizedKeysFile {dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
# Root's login shell is bash, which sources ~/.bashrc for ssh commands only
# when SHLVL is unset: skip it (on this machine it runs pyenv init, ~130 ms
# per gateway start).
SetEnv SHLVL=1
"""

#: Newer sshd versions (9.8+) penalise sources that misbehave; a benchmark
#: opening hundreds of connections from 127.0.0.1 must not be slowed by that.
_PENALTIES_OFF = "PerSourcePenalties no\n"

#: The clients' ssh_config: only the given key, no agent, never a prompt.
_CLIENT_CONFIG = """\
Host *
    IdentityAgent none
    IdentitiesOnly yes
    BatchMode yes
    StrictHostKeyChecking yes
"""


def unavailable() -> str | None:
    """Why the SSH benchmarks cannot run here, or None."""
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing (install openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH (install openssh-client)"
    if not os.path.exists(REMOTE_PYTHON):
        return f"no {REMOTE_PYTHON} for the remote side"
    return None


def _keygen(path: str) -> str:
    """Make an ed25519 key pair without passphrase at C{path}; return the public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", os.path.basename(path), "-f", path],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=WAIT,
    )
    with open(path + ".pub") as f:
        return f.read().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    """Whether an SSH server greets on 127.0.0.1:C{port}."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


class Sshd:
    """
    One sshd and what a client needs to reach it.

    @ivar port: its port on 127.0.0.1.
    @ivar user: the user to log in as (whoever runs the benchmarks).
    @ivar key: an authorised ed25519 key without passphrase.
    @ivar known_hosts: a known_hosts file with the server's key.
    @ivar config: an ssh_config for clients (see L{_CLIENT_CONFIG}).
    """

    host = "127.0.0.1"
    python = REMOTE_PYTHON

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.user = getpass.getuser()
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(directory, "sshd.log")
        self.config_path = os.path.join(directory, "sshd_config")
        self.host_key_line = _keygen(os.path.join(directory, "host_ed25519"))
        self.key = os.path.join(directory, "client_ed25519")
        with open(os.path.join(directory, "authorized_keys"), "w") as f:
            f.write(_keygen(self.key) + "\n")
        self.known_hosts = os.path.join(directory, "known_hosts")
        self.config = os.path.join(directory, "ssh_config")
        with open(self.config, "w") as f:
            f.write(_CLIENT_CONFIG)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self) -> None:
        """Start sshd on a free port; return once it greets clients."""
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation
        for _ in range(5):
            self.port = _free_port()
            config = _CONFIG.format(port=self.port, dir=self.dir)
            with open(self.config_path, "w") as f:
                f.write(config + _PENALTIES_OFF)
            check = subprocess.run(
                [SSHD, "-t", "-f", self.config_path], capture_output=True, timeout=WAIT
            )
            if check.returncode != 0:  # an sshd older than PerSourcePenalties
                with open(self.config_path, "w") as f:
                    f.write(config)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.log_path)
            self.process = subprocess.Popen(
                [SSHD, "-D", "-f", self.config_path, "-E", self.log_path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline and self.process.poll() is None:
                if _answers(self.port):
                    with open(self.known_hosts, "w") as f:
                        f.write(f"[{self.host}]:{self.port} {self.host_key_line}\n")
                    return
                time.sleep(0.02)
            self.stop()
            if "Address already in use" not in self.log():
                raise RuntimeError(f"sshd did not start on port {self.port}:\n{self.log()}")
        raise RuntimeError(f"sshd found no free port:\n{self.log()}")

    def stop(self) -> None:
        """Stop sshd and reap it (sessions end with their clients)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def ssh_options(self) -> list[str]:
        """C{ssh} options reaching this server: config, port, key, known_hosts."""
        return [
            "-F",
            self.config,
            "-p",
            str(self.port),
            "-i",
            self.key,
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
        ]

    def destination(self) -> str:
        return f"{self.user}@{self.host}"


@contextlib.contextmanager
def running_sshd() -> Iterator[Sshd]:
    """A started L{Sshd}, stopped and its directory removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="txexecnet-bench-sshd-") as directory:
        server = Sshd(directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()

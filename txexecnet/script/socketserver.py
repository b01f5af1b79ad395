#!/usr/bin/env python3
"""
A minimal txexecnet socket server that needs nothing but the standard library.

Run it on a host that has Python (3.8 or newer) and no Twisted::

    python3 socketserver.py 127.0.0.1:7770
    python3 socketserver.py --secret-file ~/.txexecnet-secret 127.0.0.1:7770

or ship it through an existing gateway (the seed's "triangle")::

    channel = gateway.remote_exec(txexecnet.script.socketserver)
    channel.send(("127.0.0.1", 0))
    status, port = channel.receive()      # ("ok", the port it listens on)
    ...                                   # connect SocketGateways to that port
    channel.close()                       # the server stops

Every connection gets a fresh child interpreter whose stdin and stdout are
the socket itself; a txexecnet client then bootstraps it exactly as it does a
popen gateway.  The child is killed when its client goes away (on Linux).
For an exposed host prefer C{twistd execnet-server}: it adds TLS, connection
limits and checks on what clients send.

This file also holds the connection handshake that the Twisted server and
client use, so that there is one implementation of it.  The wire format, one
ASCII line each::

    server: TXEXECNET/1 none [bytecode=<magic>]    (no authentication)
    server: TXEXECNET/1 hmac-sha256 <nonce> [bytecode=<magic>]  (a secret is needed)
    client: <cnonce> <HMAC(secret, "txexecnet-client\\0" + nonce + cnonce)>
    server: ok <HMAC(secret, "txexecnet-server\\0" + nonce + cnonce)>
    server: TXEXECNET/1 refused <reason>           (then it closes)

Nonces are 16 random bytes, written (like the HMAC-SHA256 digests) in
lowercase hex; the secret itself never crosses the wire.  The optional
C{bytecode} field is the hex bytecode magic number of the server's child
interpreters: a client whose own is the same may send the runtime compiled.
After the greeting (no authentication) or the C{ok} line, the client sends
the bootstrap and frames follow in both directions.
"""

import binascii
import hashlib
import hmac
import os
import select
import socket
import subprocess
import sys
import threading
import time

MAGIC = b"TXEXECNET/1"
AUTH_NONE = b"none"
AUTH_HMAC = b"hmac-sha256"
REFUSED = b"refused"
OK = b"ok"

#: Random bytes in each nonce.
NONCE_SIZE = 16

#: The longest handshake line either side accepts, newline excluded.
MAX_LINE = 256

#: The largest bootstrap (its line and the runtime that follows) a server
#: accepts.  The runtime's source takes a twentieth of it.
MAX_BOOTSTRAP_SIZE = 512 * 1024

#: What a fresh child interpreter runs last: read the bootstrap line, run it.
#: The same as L{txexecnet.bootstrap.BOOTSTRAP_COMMAND}.
BOOTSTRAP_COMMAND = "import sys;exec(eval(sys.stdin.readline()))"

_CLIENT_LABEL = b"txexecnet-client\0"
_SERVER_LABEL = b"txexecnet-server\0"
_HEX = frozenset(b"0123456789abcdef")


class HandshakeError(Exception):
    """The peer's handshake line is malformed or its proof is wrong."""


class Refused(HandshakeError):
    """The server refused the connection; the text is its reason."""


def new_nonce():
    """Fresh random bytes for one handshake."""
    return os.urandom(NONCE_SIZE)


def greeting(nonce=None, bytecode=None):
    """
    The server's first line: no authentication, or a challenge with
    C{nonce}; with the children's bytecode magic number, if known.

    @param nonce: the challenge's nonce, or C{None} for a server without a secret.
    @param bytecode: the bytecode magic number of the children's Python, if known.
    """
    parts = [MAGIC, AUTH_NONE] if nonce is None else [MAGIC, AUTH_HMAC, _hex(nonce)]
    if bytecode:
        parts.append(b"bytecode=" + _hex(bytecode))
    return b" ".join(parts) + b"\n"


def refusal(reason):
    """
    The line a server sends before it closes a connection it refuses.

    @param reason: why, for the client's error message.
    """
    text = reason.encode("ascii", "replace").replace(b"\n", b" ")[: MAX_LINE - 20]
    return MAGIC + b" " + REFUSED + b" " + text + b"\n"


def parse_greeting(line):
    """
    Read the server's first line (without its newline).

    @param line: the line.
    @return: C{(nonce, bytecode)}: the server's nonce, or C{None} when it
        needs no secret; its children's bytecode magic number, or C{None}.
    @raise Refused: when the server refuses the connection.
    @raise HandshakeError: when the line is not a txexecnet greeting.
    """
    parts = line.split(b" ")
    if parts[0] != MAGIC:
        if parts[0].startswith(b"TXEXECNET/"):
            raise HandshakeError(
                "the server speaks handshake version %r, not %r" % (_text(parts[0]), _text(MAGIC))
            )
        raise HandshakeError("not a txexecnet server: it said %r" % (line[:80],))
    if len(parts) >= 2 and parts[1] == REFUSED:
        raise Refused(_text(b" ".join(parts[2:])))
    bytecode = None
    if parts[-1].startswith(b"bytecode="):
        bytecode = _unhex(parts.pop()[len(b"bytecode=") :], "bytecode magic", 4)
    if len(parts) == 2 and parts[1] == AUTH_NONE:
        return None, bytecode
    if len(parts) == 3 and parts[1] == AUTH_HMAC:
        return _unhex(parts[2], "server nonce"), bytecode
    raise HandshakeError("malformed server greeting %r" % (line[:80],))


def auth_response(secret, server_nonce):
    """
    The client's answer to a challenge.

    @param secret: the shared secret.
    @param server_nonce: the nonce of the server's challenge.
    @return: C{(line, client_nonce)}: the line to send, with its newline,
        and the nonce needed to check the server's C{ok} line.
    """
    client_nonce = new_nonce()
    proof = _mac(secret, _CLIENT_LABEL, server_nonce, client_nonce)
    return _hex(client_nonce) + b" " + proof + b"\n", client_nonce


def check_auth_response(secret, server_nonce, line):
    """
    Check the client's answer (a line without its newline).

    @param secret: the shared secret.
    @param server_nonce: the nonce the server sent.
    @param line: the client's answer.
    @return: the client's nonce, for L{ok_line}.
    @raise HandshakeError: for a malformed answer or a wrong proof.
    """
    parts = line.split(b" ")
    if len(parts) != 2:
        raise HandshakeError("malformed authentication response")
    client_nonce = _unhex(parts[0], "client nonce")
    expected = _mac(secret, _CLIENT_LABEL, server_nonce, client_nonce)
    if not hmac.compare_digest(expected, parts[1]):
        raise HandshakeError("wrong secret (the HMAC does not match)")
    return client_nonce


def ok_line(secret, server_nonce, client_nonce):
    """
    The server's line accepting a client; it proves the server has the secret.

    @param secret: the shared secret.
    @param server_nonce: the nonce the server sent.
    @param client_nonce: the nonce the client sent.
    """
    return OK + b" " + _mac(secret, _SERVER_LABEL, server_nonce, client_nonce) + b"\n"


def check_ok_line(secret, server_nonce, client_nonce, line):
    """
    Check the server's answer (without its newline) to our proof.

    @param secret: the shared secret.
    @param server_nonce: the nonce the server sent.
    @param client_nonce: the nonce the client sent.
    @param line: the server's answer.
    @raise Refused: when the server refused the proof.
    @raise HandshakeError: when the server failed to prove it has the secret.
    """
    if line.startswith(MAGIC + b" " + REFUSED):
        parse_greeting(line)
    parts = line.split(b" ")
    if len(parts) != 2 or parts[0] != OK:
        raise HandshakeError("malformed server answer %r" % (line[:80],))
    expected = _mac(secret, _SERVER_LABEL, server_nonce, client_nonce)
    if not hmac.compare_digest(expected, parts[1]):
        raise HandshakeError("the server does not know the secret (its HMAC does not match)")


def read_secret_file(path):
    """
    The shared secret kept in C{path}: its bytes, surrounding whitespace
    (such as a final newline) removed.

    @param path: the file.
    @raise ValueError: if the file is empty.
    @raise OSError: if it cannot be read.
    """
    with open(os.path.expanduser(path), "rb") as f:
        secret = f.read().strip()
    if not secret:
        raise ValueError("secret file %r is empty" % (path,))
    return secret


def child_program(parent_pid, memory_limit=0):
    """
    The C{-c} program of a per-connection child.

    Before it reads the bootstrap line, the child asks to be killed when its
    server dies (Linux), makes itself the leader of a process group (the
    server kills the group when the connection ends, taking any leftover
    grandchildren along), volunteers to be the first victim of the
    out-of-memory killer, and caps its address space at C{memory_limit}
    MiB (0: no cap), so a leak in remote code ends that child alone.

    @param parent_pid: the server's pid: the child ends when it goes away.
    @param memory_limit: the child's address space cap, in MiB (0: none).
    """
    lines = [
        "import os",
        "try:",
        " import ctypes",
        " ctypes.CDLL(None).prctl(1, 9)",  # PR_SET_PDEATHSIG, SIGKILL
        "except Exception:",
        " pass",
        "if os.getppid() != %d:" % parent_pid,
        " os._exit(1)",
        "try:",
        " os.setpgid(0, 0)",
        "except OSError:",  # started as the leader of a session of its own
        " pass",
        "try:",
        " with open('/proc/self/oom_score_adj', 'w') as f:",
        "  f.write('1000')",
        "except OSError:",
        " pass",
    ]
    if memory_limit:
        size = int(memory_limit) * 1024 * 1024
        lines += [
            "import resource",
            "resource.setrlimit(resource.RLIMIT_AS, (%d, %d))" % (size, size),
        ]
    lines.append(BOOTSTRAP_COMMAND)
    return "\n".join(lines)


def _mac(secret, label, server_nonce, client_nonce):
    digest = hmac.new(secret, label + server_nonce + client_nonce, hashlib.sha256)
    return digest.hexdigest().encode("ascii")


def _hex(data):
    return binascii.hexlify(data)


def _unhex(text, what, size=NONCE_SIZE):
    if len(text) != 2 * size or not set(bytearray(text)) <= _HEX:
        raise HandshakeError("malformed %s" % what)
    return binascii.unhexlify(text)


def _text(data):
    return data.decode("ascii", "replace")


# ---------------------------------------------------------------------------
# The standalone server: a thread per connection, a child per connection.
# ---------------------------------------------------------------------------


def bind_and_listen(address, backlog=64):
    """
    A listening TCP socket on C{address}: C{(host, port)}, or a
    C{"host:port"} string (C{"[::1]:7770"} for IPv6).  Port 0 picks a free one.

    @param address: where to listen.
    @param backlog: the listen queue's length.
    """
    if not isinstance(address, tuple):
        host, _, port = str(address).rpartition(":")
        address = (host.strip("[]") or "127.0.0.1", int(port))
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name == "posix":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(backlog)
    return sock


class Server(object):
    """
    Serve txexecnet clients on a listening socket.

    @param sock: the listening socket (see L{bind_and_listen}).
    @param secret: the shared secret as bytes, or C{None} for none.
    @param python: the child interpreter's argument list (default: this one).
    @param idle_timeout: seconds a client may take to authenticate and start
        sending its bootstrap line.
    @param memory_limit: the children's address space cap in MiB (0: none).
    @param log: called with each log line.
    """

    def __init__(self, sock, secret=None, python=None, idle_timeout=30.0, memory_limit=0, log=None):
        self.sock = sock
        self.secret = secret
        self.python = list(python or [sys.executable])
        self.idle_timeout = idle_timeout
        self.memory_limit = memory_limit
        self.log = log or _log_to_stderr
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._children = set()
        self._counter = 0

    def serve_forever(self):
        """Accept connections until L{stop}; then kill every child."""
        self.sock.settimeout(0.2)  # so that stop() is noticed
        self.log("listening on %s" % (_describe(self.sock.getsockname()),))
        try:
            while not self._stopping.is_set():
                try:
                    conn, address = self.sock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                self._counter += 1
                thread = threading.Thread(
                    target=self._handle,
                    args=(conn, address, "c%d" % self._counter),
                    name="txexecnet-socketserver-c%d" % self._counter,
                )
                thread.daemon = True
                thread.start()
        finally:
            self._kill_children()
            self.sock.close()

    def stop(self):
        """Stop accepting; L{serve_forever} then kills the children and returns."""
        self._stopping.set()

    def _handle(self, conn, address, name):
        try:
            conn.settimeout(self.idle_timeout)
            if not self._handshake(conn, name):
                return
            # Start the child only once the client sends its bootstrap line,
            # so that a client that connects and stalls costs no process.
            ready, _, _ = select.select([conn], [], [], self.idle_timeout)
            if not ready:
                self.log("%s: nothing received in %s s; closing" % (name, self.idle_timeout))
                return
            conn.settimeout(None)
            self._run_child(conn, name)
        except (OSError, HandshakeError) as e:
            self.log("%s: %s; closing" % (name, e))
        finally:
            conn.close()

    def _handshake(self, conn, name):
        bytecode = _bytecode_magic() if self.python == [sys.executable] else None
        if self.secret is None:
            conn.sendall(greeting(None, bytecode))
            return True
        nonce = new_nonce()
        conn.sendall(greeting(nonce, bytecode))
        line = _read_line(conn)
        try:
            client_nonce = check_auth_response(self.secret, nonce, line)
        except HandshakeError as e:
            self.log("%s: authentication failed: %s" % (name, e))
            conn.sendall(refusal("authentication failed"))
            return False
        conn.sendall(ok_line(self.secret, nonce, client_nonce))
        return True

    def _run_child(self, conn, name):
        args = self.python + ["-u", "-c", child_program(os.getpid(), self.memory_limit)]
        with self._lock:
            if self._stopping.is_set():
                return
            child = subprocess.Popen(
                args, stdin=conn.fileno(), stdout=conn.fileno(), close_fds=True
            )
            self._children.add(child)
        self.log("%s: child %d started" % (name, child.pid))
        # This thread must outlive the child: Linux delivers the parent-death
        # signal when the thread that started a child ends.
        while child.poll() is None:
            if _peer_gone(conn, 0.5):
                self.log("%s: the client went away; killing child %d" % (name, child.pid))
                _kill_group(child.pid)
                child.kill()
        status = child.wait()
        with self._lock:
            self._children.discard(child)
        _kill_group(child.pid)
        self.log("%s: child %d exited with status %d" % (name, child.pid, status))

    def _kill_children(self):
        with self._lock:
            children = list(self._children)
        for child in children:
            _kill_group(child.pid)
            try:
                child.kill()
            except OSError:
                pass


def _read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            raise HandshakeError("the client closed the connection during the handshake")
        data += chunk
        if len(data) > MAX_LINE + 1:
            raise HandshakeError("handshake line too long")
    return data[:-1].rstrip(b"\r")


def _bytecode_magic():
    import importlib.util

    return importlib.util.MAGIC_NUMBER


def _peer_gone(conn, timeout):
    """
    Whether the client closed its end of C{conn} (waiting up to C{timeout}
    seconds), found without reading what it sent, which is the child's.
    """
    poll = getattr(select, "poll", None)
    hangup = getattr(select, "POLLRDHUP", 0)
    if poll is None or not hangup:
        time.sleep(timeout)
        return False
    poller = poll()
    poller.register(conn, hangup | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(timeout * 1000))


def _kill_group(pid):
    try:
        os.killpg(pid, 9)
    except (OSError, AttributeError):
        pass


def _describe(address):
    host, port = address[:2]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def _log_to_stderr(line):
    sys.stderr.write("txexecnet socketserver: %s\n" % (line,))
    sys.stderr.flush()


def serve_channel(channel):
    """
    Run a server inside a gateway (see the module docstring): receive the
    address to bind, send C{("ok", port)}, serve until the channel closes.

    @param channel: the remote code's channel.
    """
    server = Server(bind_and_listen(channel.receive()))
    channel.send(("ok", server.sock.getsockname()[1]))
    thread = threading.Thread(target=server.serve_forever, name="txexecnet-socketserver")
    thread.daemon = True
    thread.start()
    try:
        channel.receive()
    except Exception:
        pass
    server.stop()
    thread.join()


def main(argv=None):
    """
    The command line: C{socketserver.py [options] [HOST:]PORT}.

    @param argv: the arguments (default: C{sys.argv[1:]}).
    """
    import argparse
    import shlex

    parser = argparse.ArgumentParser(description="Serve txexecnet socket gateways (stdlib only).")
    parser.add_argument(
        "address",
        nargs="?",
        default="127.0.0.1:7770",
        help="HOST:PORT to listen on (default 127.0.0.1:7770)",
    )
    parser.add_argument(
        "--secret-file", help="require clients to prove they know this file's secret"
    )
    parser.add_argument("--python", help="the children's interpreter (default: this one)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        help="seconds a client may take to start (default 30)",
    )
    parser.add_argument(
        "--memory-limit",
        type=int,
        default=0,
        help="cap each child's address space at this many MiB",
    )
    args = parser.parse_args(argv)
    address = args.address if ":" in args.address else "127.0.0.1:" + args.address
    secret = read_secret_file(args.secret_file) if args.secret_file else None
    server = Server(
        bind_and_listen(address),
        secret=secret,
        python=shlex.split(args.python) if args.python else None,
        idle_timeout=args.idle_timeout,
        memory_limit=args.memory_limit,
    )
    if secret is None:
        server.log("WARNING: no --secret-file: anyone who can connect can run code here")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
elif __name__ == "__channelexec__":
    # The global that a gateway gives remote code.
    serve_channel(channel)  # type: ignore[name-defined]  # noqa: F821

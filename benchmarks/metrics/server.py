"""
Metric 9, socket gateways against each project's own server, on 127.0.0.1:
txexecnet's daemon (C{twistd -n execnet-server -p 0}, a fresh child
interpreter per connection) and execnet's C{execnet/script/socketserver.py}
(which runs each connection's gateway inside its own process, one
connection at a time).

Every worker run starts a server of its own and stops it at the end, so that
the server's memory belongs to that run alone (txexecnet's two APIs would
otherwise share, and grow, one daemon).  In each run:

  - the server's RSS (VmRSS) once it listens;
  - C{connects} connections one after another, each: connect, bootstrap, one
    round trip of a small int on a fresh channel, close (L{gateway_starts}:
    one uncounted, then each timed alone), as connections per second;
  - the server's RSS after them, once it has no child processes left;
  - C{clients} clients at once, each: connect, bootstrap, C{trips} round
    trips, close; the wall time of all of them (a pool of threads for the
    blocking libraries, all from the reactor for the Deferred API);
  - the server's RSS after them.

execnet's server cannot serve clients at once: it accepts one connection,
runs that gateway to its end, then accepts the next, with a listen backlog
of 5.  Tried with 20 clients, some connections were reset and the rest
hung; its row has no figure ("-") for the concurrent clients.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

from ..common import (
    ECHO,
    STAT_PPID,
    Samples,
    deferred,
    gateway,
    gateway_starts,
    library_workloads,
    pids_where,
    rss_mb,
    tx_gateway_starts,
    tx_group,
)
from ..registry import HIGHER, LOWER, Measure, Metric, register, repeat

#: Seconds a server may take to listen, stop, or end its children.
WAIT = 15.0

#: How each project's server says on which port it listens.
_LISTENING = {
    "execnet": re.compile(r"Entering Accept loop \('127\.0\.0\.1', (\d+)\)"),
    "txexecnet": re.compile(r"listening on tcp:127\.0\.0\.1:(\d+)"),
}


def _params(quick: bool) -> dict[str, Any]:
    return {"connects": 5 if quick else 10, "clients": 100, "trips": 100}


def _server_argv(library: str, params: dict[str, Any]) -> list[str]:
    if library == "execnet":
        import execnet.script

        script = os.path.join(os.path.dirname(execnet.script.__file__), "socketserver.py")
        return [sys.executable, "-u", script, "127.0.0.1:0"]
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    return [
        twistd,
        "-n",
        "--pidfile=",
        "execnet-server",
        "-p",
        "0",
        "--max-connections",
        str(params["clients"] + 16),
    ]


def _settled_rss(pid: int) -> float:
    """The server's RSS in MB once it has no child processes left (at most L{WAIT} s)."""
    deadline = time.monotonic() + WAIT
    while pids_where(STAT_PPID, pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return rss_mb(pid)


@contextlib.contextmanager
def running_server(library: str, params: dict[str, Any]) -> Iterator[tuple[int, str]]:
    """
    Start C{library}'s server on a free port of 127.0.0.1; yield its pid and
    the spec reaching it; stop it (SIGTERM, SIGKILL after L{WAIT} s) on the
    way out.
    """
    with tempfile.TemporaryDirectory(prefix="txexecnet-bench-server-") as directory:
        log_path = os.path.join(directory, "server.log")
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                _server_argv(library, params),
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + WAIT
            while True:
                with open(log_path, errors="replace") as f:
                    match = _LISTENING[library].search(f.read())
                if match:
                    break
                if server.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, errors="replace") as f:
                        raise RuntimeError(f"{library} server did not listen:\n{f.read()}")
                time.sleep(0.02)
            yield server.pid, f"socket=127.0.0.1:{match.group(1)}"
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(WAIT)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _rates(milliseconds: list[float]) -> list[float]:
    return [1e3 / ms for ms in milliseconds]


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet or txexecnet.blocking against its own server."""
    with running_server(lib.library, params) as (pid, spec):
        samples = {"rss-start": [rss_mb(pid)]}
        samples["connects"] = _rates(gateway_starts(lib, spec, params["connects"]))
        samples["rss-connects"] = [_settled_rss(pid)]
        if lib.library == "execnet":
            return samples  # its server serves one connection at a time: see above

        def client(_: int) -> None:
            with gateway(lib, spec) as gw:
                channel = gw.remote_exec(ECHO)
                for i in range(params["trips"]):
                    channel.send(i)
                    channel.receive()
                channel.close()

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=params["clients"]) as pool:
            list(pool.map(client, range(params["clients"])))
        samples["clients"] = [time.perf_counter() - start]
        samples["rss-clients"] = [_settled_rss(pid)]
    return samples


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API against its daemon."""
    from twisted.internet.defer import Deferred, gatherResults

    with running_server("txexecnet", params) as (pid, spec):
        samples = {"rss-start": [rss_mb(pid)]}
        samples["connects"] = _rates(await tx_gateway_starts(reactor, spec, params["connects"]))
        samples["rss-connects"] = [_settled_rss(pid)]
        group = tx_group(reactor)

        async def client(_: int) -> None:
            gw = await group.makegateway(spec)
            channel = gw.remote_exec(ECHO)
            for i in range(params["trips"]):
                await channel.send(i)
                await channel.receive()
            channel.close()
            await gw.exit()

        start = time.perf_counter()
        await gatherResults([Deferred.fromCoroutine(client(i)) for i in range(params["clients"])])
        samples["clients"] = [time.perf_counter() - start]
        samples["rss-clients"] = [_settled_rss(pid)]
    return samples


register(
    Metric(
        name="socket-server",
        title="socket server",
        measures=(
            Measure("connects", "connect, bootstrap, round trip, close", "conn/s", HIGHER),
            Measure("clients", "100 clients at once x 100 round trips", "s", LOWER),
            Measure("rss-start", "server RSS at start", "MB", LOWER),
            Measure("rss-connects", "server RSS after the connections", "MB", LOWER),
            Measure("rss-clients", "server RSS after the clients", "MB", LOWER),
        ),
        workloads=library_workloads(_blocking, run_deferred),
        params=_params,
        repetitions=repeat(3, 1),
    )
)

"""
Helpers for workloads, used inside worker processes: the remote programs both
libraries run, the items they move, the bare interpreter of the raw limits,
facts about processes, timing loops, and the two blocking libraries (execnet
and txexecnet's blocking facade) behind one small interface so that a
blocking workload is written once for both, with the gateway set-up,
tear-down and start loop that the metrics share.

Nothing here imports txexecnet, execnet or Twisted at module level.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import resource
import shlex
import sys
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

from .registry import EXECNET, TX_BLOCKING, TX_DEFERRED

#: Samples by measure key, as workloads return them.
Samples = dict[str, list[float]]


def small_items(count):
    """C{count} small items: ints, short strs and small tuples, in turn."""
    items = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            items.append(i)
        elif kind == 1:
            items.append("item-%d" % i)
        else:
            items.append((i, "x", 0.5))
    return items


# --- remote programs: the same source runs under execnet and txexecnet ------

#: Answers one item with the same item, then ends.
ECHO_ONCE = "channel.send(channel.receive())\n"

#: Answers every item with the same item until the channel closes.
ECHO = "for item in channel:\n    channel.send(item)\n"

#: For each count received, receives that many items, then answers the count.
SINK = """
for count in channel:
    for _ in range(count):
        channel.receive()
    channel.send(count)
"""

#: Receives (kind, argument, count) and builds C{count} items: C{argument}
#: bytes each for kind "bytes" (b"x" repeated) or "random" (one block of
#: random bytes, which no compression shrinks), else L{small_items}.  Then,
#: for each count received, sends the first C{count} of them.
SOURCE = (
    inspect.getsource(small_items)
    + """
kind, argument, total = channel.receive()
if kind == "bytes":
    items = [b"x" * argument] * total
elif kind == "random":
    import os
    items = [os.urandom(argument)] * total
else:
    items = small_items(total)
for count in channel:
    for item in items[:count]:
        channel.send(item)
"""
)


def local_items(kind: str, argument: int, count: int) -> list[Any]:
    """The items SOURCE builds remotely, built here for sending."""
    if kind == "bytes":
        return [b"x" * argument] * count
    if kind == "random":
        return [os.urandom(argument)] * count
    return small_items(count)


def bare_python(params: dict[str, Any], *args: str) -> list[str]:
    """
    The command line of a bare interpreter (C{python -I -S ARGS}), the raw
    limit's child: this interpreter, or, where C{params["raw_ssh"]} gives
    an C{ssh} command line, C{params["raw_python"]} run through it.
    """
    if "raw_ssh" in params:
        return [*params["raw_ssh"], shlex.join([params["raw_python"], "-I", "-S", *args])]
    return [sys.executable, "-I", "-S", *args]


# --- process facts --------------------------------------------------------


#: Fields of /proc/PID/stat, counted after the command name.
STAT_PPID, STAT_PGRP = 1, 2


def pids_where(field: int, value: int) -> list[int]:
    """Pids of the processes whose /proc/PID/stat C{field} (L{STAT_PPID}...) is C{value}."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value:
            found.append(int(entry))
    return found


def _os_threads() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads: line in /proc/self/status")


def thread_count(settle: float = 1.0) -> int:
    """
    The number of OS threads of this process (Linux: /proc/self/status),
    once the threads Python has already joined have left the OS too: a
    joined thread may take a moment more to exit, and counting it would
    charge a thread pool's last workers to the library.  Waits at most
    C{settle} seconds for that.
    """
    import threading

    deadline = time.monotonic() + settle
    count = _os_threads()
    while count > threading.active_count() and time.monotonic() < deadline:
        time.sleep(0.005)
        count = _os_threads()
    return count


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (10**6 bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def rss_mb(pid: int) -> float:
    """The resident set size of process C{pid} now (VmRSS), in MB (10**6 bytes)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS: line in /proc/{pid}/status")


# --- timing -----------------------------------------------------------------


def timed(
    count: int, body: Callable[[int], Any], warmup: int = 0, scale: float = 1e3
) -> list[float]:
    """
    Call C{body(i)} C{warmup + count} times, timing each call alone; return
    the times of the last C{count} calls, in seconds times C{scale} (ms by
    default).
    """
    samples = []
    clock = time.perf_counter
    for i in range(warmup + count):
        start = clock()
        body(i)
        samples.append((clock() - start) * scale)
    return samples[warmup:]


async def timed_async(
    count: int, body: Callable[[int], Awaitable[Any]], warmup: int = 0, scale: float = 1e3
) -> list[float]:
    """L{timed} for a C{body} that returns something to await."""
    samples = []
    clock = time.perf_counter
    for i in range(warmup + count):
        start = clock()
        await body(i)
        samples.append((clock() - start) * scale)
    return samples[warmup:]


# --- gateways ---------------------------------------------------------------


def spec_for(library: str, params: dict[str, Any]) -> str:
    """
    The gateway spec a workload of C{library} ("execnet", "txexecnet", or
    another implementation name such as C{TX_OPENSSH}) uses:
    C{params["specs"][library]} when a metric needs a different spec per
    library (e.g. each project's SSH client), else C{params["spec"]}.
    """
    specs = params.get("specs", {})
    return specs[library] if library in specs else params["spec"]


class _Library:
    """What blocking workloads use of a library; C{library} names it for L{spec_for}."""

    library = ""

    def spec(self, params: dict[str, Any]) -> str:
        """The gateway spec this library's workloads use."""
        return spec_for(self.library, params)


class ExecnetLib(_Library):
    """execnet, in a group of its own."""

    library = "execnet"

    def __init__(self) -> None:
        import execnet

        self.group = execnet.Group()

    def makegateway(self, spec: str) -> Any:
        return self.group.makegateway(spec)

    def exit(self, gw: Any) -> None:
        """Exit C{gw} and wait until its process is reaped, as Group.terminate does."""
        gw.exit()
        gw.join()
        gw._io.wait()

    def terminate(self) -> None:
        self.group.terminate(timeout=30)


class BlockingLib(_Library):
    """txexecnet's blocking facade (its reactor runs in a daemon thread)."""

    library = "txexecnet"

    def __init__(self) -> None:
        from txexecnet import blocking

        self.blocking = blocking

    def makegateway(self, spec: str) -> Any:
        return self.blocking.makegateway(spec)

    def exit(self, gw: Any) -> None:
        """Exit C{gw}; returns once its process is reaped."""
        gw.exit()

    def terminate(self) -> None:
        self.blocking.terminate(timeout=30)


def tx_group(reactor: Any) -> Any:
    """A txexecnet Group on C{reactor}, for the Deferred API workloads."""
    import txexecnet

    return txexecnet.Group(reactor=reactor)


@contextlib.contextmanager
def gateway(lib: Any, spec: str) -> Iterator[Any]:
    """A gateway of a blocking library, exited (and reaped) on the way out."""
    gw = lib.makegateway(spec)
    try:
        yield gw
    finally:
        lib.exit(gw)


@contextlib.asynccontextmanager
async def tx_gateway(reactor: Any, spec: str) -> AsyncIterator[Any]:
    """A txexecnet gateway on C{reactor} (Deferred API), exited on the way out."""
    gw = await tx_group(reactor).makegateway(spec)
    try:
        yield gw
    finally:
        await gw.exit()


def gateway_starts(lib: Any, spec: str, count: int) -> list[float]:
    """
    Times in ms of C{count} gateway starts with a blocking library: make a
    gateway, one round trip of a small int on a fresh channel, exit (child
    reaped).  One start before them is not counted (imports, the blocking
    facade's reactor thread).
    """

    def start_one(_: int) -> None:
        with gateway(lib, spec) as gw:
            channel = gw.remote_exec(ECHO_ONCE)
            channel.send(1)
            channel.receive()

    return timed(count, start_one, warmup=1)


async def tx_gateway_starts(reactor: Any, spec: str, count: int) -> list[float]:
    """L{gateway_starts} with txexecnet's Deferred API, all in one Group."""
    group = tx_group(reactor)

    async def start_one(_: int) -> None:
        gw = await group.makegateway(spec)
        channel = gw.remote_exec(ECHO_ONCE)
        await channel.send(1)
        await channel.receive()
        await gw.exit()

    return await timed_async(count, start_one, warmup=1)


def library_workloads(
    blocking: Callable[[Any, dict[str, Any]], Samples],
    deferred: Callable[[Any, dict[str, Any]], Any],
) -> dict[str, Callable[..., Any]]:
    """
    The workloads of a metric measured with both libraries, in table order:
    C{blocking(lib, params)} run with execnet and with txexecnet's blocking
    facade (see L{ExecnetLib}, L{BlockingLib}), and C{deferred}, the
    Deferred API's workload.  Add others (C{RAW}...) after these.
    """
    return {
        EXECNET: lambda params: blocking(ExecnetLib(), params),
        TX_DEFERRED: deferred,
        TX_BLOCKING: lambda params: blocking(BlockingLib(), params),
    }


def deferred(coroutine_function: Any) -> Any:
    """
    Decorate an C{async def} workload so that calling it returns a Deferred,
    as the worker expects of Deferred-API workloads.
    """

    @functools.wraps(coroutine_function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(coroutine_function(*args, **kwargs))

    return wrapper

"""
Helpers for workloads, used inside worker processes: the remote programs both
libraries run, the items they move, and the two blocking libraries (execnet
and txexecnet's blocking facade) behind one small interface so that a
blocking workload is written once for both.

Nothing here imports txexecnet, execnet or Twisted at module level.
"""

from __future__ import annotations

import functools
import inspect
import resource
from typing import Any


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
#: bytes each for kind "bytes", else L{small_items}.  Then, for each count
#: received, sends the first C{count} of them.
SOURCE = inspect.getsource(small_items) + """
kind, argument, total = channel.receive()
if kind == "bytes":
    items = [b"x" * argument] * total
else:
    items = small_items(total)
for count in channel:
    for item in items[:count]:
        channel.send(item)
"""


def local_items(kind: str, argument: int, count: int) -> list[Any]:
    """The items SOURCE builds remotely, built here for sending."""
    if kind == "bytes":
        return [b"x" * argument] * count
    return small_items(count)


# --- process facts --------------------------------------------------------


def thread_count() -> int:
    """The number of OS threads of this process (Linux: /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads: line in /proc/self/status")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (10**6 bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


# --- gateways ---------------------------------------------------------------


def spec_for(library: str, params: dict[str, Any]) -> str:
    """
    The gateway spec a workload of C{library} ("execnet" or "txexecnet")
    uses: C{params["specs"][library]} when a metric needs a different spec per
    library (e.g. each project's own socket server), else C{params["spec"]}.
    """
    return params.get("specs", {}).get(library, params["spec"])


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

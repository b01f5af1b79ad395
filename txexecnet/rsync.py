"""
Copy a directory tree to one or many gateways at once, as execnet's RSync
does: only what changed crosses the wire (size and modification time, then
a checksum), files stream in pieces (memory stays bounded whatever their
size), symlinks and permission bits are kept, and with C{delete=True}
whatever the destination has beyond the source is removed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any, Callable, NamedTuple

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from . import _rsync_remote
from .channel import Channel
from .gateway import Gateway
from .multichannel import allOf

__all__ = ["Progress", "RSync"]

#: Bytes of a file read and sent at a time.
CHUNK = _rsync_remote.CHUNK


class Progress(NamedTuple):
    """How far a L{RSync.send} has got, over all its targets."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


class _Target:
    """One destination: its channel, and what it asked for."""

    def __init__(
        self, channel: Channel, finished: Callable[[], object] | None, hop: Gateway | None
    ) -> None:
        self.channel = channel
        self.finished = finished
        self.hop = hop
        self.wants: dict[str, str | None] = {}
        self.counts: dict[str, int] = {}


def _entries(sourcedir: str, keep: Callable[[str], bool]) -> list[tuple[Any, ...]]:
    """The manifest of C{sourcedir}: C{(path, kind, mode, size, mtime_ns, link)}, parents first."""
    entries: list[tuple[Any, ...]] = []
    for root, dirs, files in os.walk(sourcedir):
        dirs.sort()
        kept = []
        for name in dirs + sorted(files):
            full = os.path.join(root, name)
            if not keep(full):
                continue
            rel = os.path.relpath(full, sourcedir).replace(os.sep, "/")
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entries.append((rel, "l", mode, 0, 0, os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                entries.append((rel, "d", mode, 0, 0, None))
                kept.append(name)
            elif stat.S_ISREG(st.st_mode):
                entries.append((rel, "f", mode, st.st_size, st.st_mtime_ns, None))
        dirs[:] = [d for d in dirs if d in kept and not os.path.islink(os.path.join(root, d))]
    return entries


def _sharedHops(targets: list[_Target]) -> list[list[_Target]]:
    """The targets that share a C{via=} hop with another, grouped by hop."""
    hops: dict[int, list[_Target]] = {}
    for t in targets:
        if t.hop is not None:
            hops.setdefault(id(t.hop), []).append(t)
    return [members for members in hops.values() if len(members) > 1]


def _checksum(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class RSync:
    """
    Send the tree under C{sourcedir} to every target added, at once.

    The callback, as execnet's, is called as C{callback("list", bytes,
    channel)} once a target has said what it needs and C{callback("ack",
    size, channel)} as it has written each file; C{progress(Progress)} sees
    the files and bytes done and to do over all targets.
    """

    def __init__(
        self,
        sourcedir: str | os.PathLike[str],
        callback: Callable[[str, int, Channel], object] | None = None,
        progress: Callable[[Progress], object] | None = None,
        reactor: Any = None,
    ) -> None:
        """
        @param sourcedir: the directory whose contents are sent.
        @param callback: called as execnet's is (see above).
        @param progress: called with a L{Progress} as files are written.
        @param reactor: the reactor whose thread pool computes checksums.
        """
        self._sourcedir = os.path.abspath(os.fspath(sourcedir))
        self._callback = callback
        self._progress = progress
        self._targets: list[_Target] = []
        self._stages: dict[int, Channel] = {}  # a hop's id() -> its staging receiver
        self._done = Progress(0, 0, 0, 0)
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor

    def filter(self, path: str) -> bool:
        """
        Whether to send C{path} (and, for a directory, what is under it):
        override to leave things out.

        @param path: a path under the source directory.
        """
        return True

    def fileWritten(self, path: str, size: int, channel: Channel) -> None:
        """
        A target has written C{path} (relative to the source directory,
        with C{/}): override to report it.

        @param path: the file.
        @param size: its size.
        @param channel: the channel of that target (its C{gateway} says which).
        """

    def add_target(
        self,
        gateway: Gateway,
        destdir: str | os.PathLike[str],
        finishedcallback: Callable[[], object] | None = None,
        delete: bool = False,
    ) -> None:
        """
        Send to C{destdir} on the remote side of C{gateway} (created if
        missing; a relative path is relative to the remote working directory).

        @param gateway: the gateway to the target.
        @param destdir: the remote directory.
        @param finishedcallback: called once this target has everything.
        @param delete: remove what C{destdir} holds beyond the source.
        """
        channel = gateway.remote_exec(_rsync_remote)
        channel.send((os.fspath(destdir), {"delete": delete}))
        self._targets.append(_Target(channel, finishedcallback, gateway.via))

    async def _send(self) -> None:
        if not self._targets:
            raise OSError("no targets: add_target() first (or send() was called twice)")
        targets, self._targets = self._targets, []
        entries = await deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), _entries, self._sourcedir, self.filter
        )
        sizes = {e[0]: e[3] for e in entries}
        await allOf(t.channel.send(("manifest", entries)) for t in targets)
        for target in targets:
            tag, wants = await target.channel.receive()
            target.wants = dict(wants)
            total = sum(sizes[path] for path in target.wants)
            if self._callback is not None:
                self._callback("list", total, target.channel)
        self._done = Progress(
            0,
            sum(len(t.wants) for t in targets),
            0,
            sum(sum(sizes[p] for p in t.wants) for t in targets),
        )
        listening = [self._listen(target) for target in targets]
        for members in _sharedHops(targets):
            hop = members[0].hop
            assert hop is not None
            stage = self._stages[id(hop)] = hop.remote_exec(_rsync_remote)
            await stage.send((None, {"stage": True}))
        try:
            for path in sorted({p for t in targets for p in t.wants}):
                await self._sendFile(path, [t for t in targets if path in t.wants])
            await allOf(t.channel.send(("done",)) for t in targets)
            await allOf(listening)
        finally:
            stages, self._stages = list(self._stages.values()), {}
            for stage in stages:
                if not stage.isclosed():
                    stage.send(("done",))
            await allOf(stage.waitclose() for stage in stages)

    async def _sendFile(self, path: str, targets: list[_Target]) -> None:
        full = os.path.join(self._sourcedir, *path.split("/"))
        checksum: str | None = None
        if any(t.wants[path] is not None for t in targets):
            checksum = await deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), _checksum, full
            )
        same = [t for t in targets if t.wants[path] is not None and t.wants[path] == checksum]
        await allOf(t.channel.send(("same", path)) for t in same)
        receiving = [t for t in targets if t not in same]
        if not receiving:
            return
        # Targets that share a hop get the data through the hop's stage.
        staged = _sharedHops(receiving)
        stages = [self._stages[id(ts[0].hop)] for ts in staged]
        direct = [t for t in receiving if not any(t in ts for ts in staged)]
        channels = [t.channel for t in direct] + stages
        await allOf(ch.send(("file", path)) for ch in channels)
        with open(full, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                # Each send waits while its channel's window is full: one
                # slow target holds back the file, memory stays bounded.
                await allOf(ch.send(block) for ch in channels)
        await allOf(ch.send(("eof", path)) for ch in channels)
        for stage, members in zip(stages, staged):
            _, _, where = await stage.receive()
            await allOf(t.channel.send(("copy", path, where)) for t in members)

    def _listen(self, target: _Target) -> Deferred[None]:
        """Take a target's acks until it has finished; fire then."""

        async def listen() -> None:
            while True:
                message = await target.channel.receive()
                if message[0] == "finished":
                    target.counts = message[1]
                    break
                _, path, size = message
                done = self._done
                self._done = Progress(
                    done.files_done + 1, done.files_total, done.bytes_done + size, done.bytes_total
                )
                self.fileWritten(path, size, target.channel)
                if self._callback is not None:
                    self._callback("ack", size, target.channel)
                if self._progress is not None:
                    self._progress(self._done)
            await target.channel.waitclose()
            if target.finished is not None:
                target.finished()

        return Deferred.fromCoroutine(listen())

    def send(self) -> Deferred[None]:
        """
        Send the tree to every target added; fire once each has it all, or
        fail with the first error (a remote one as L{RemoteError}).  The
        targets are then forgotten: add them again to send again.
        """
        return Deferred.fromCoroutine(self._send())

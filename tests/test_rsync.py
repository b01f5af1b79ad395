"""
RSync: a tree copied to popen, via and SSH targets at once; only changes
cross the wire; deletions, symlinks and permission bits; bounded memory for
a large file; the blocking form.
"""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
import pytest_twisted
from twisted.internet import reactor, task

import txexecnet
from txexecnet import blocking
from txexecnet.rsync import RSync

T = 60
MiB = 1024 * 1024


def makeTree(root, files=1000):
    """C{files} small files in nested directories, a symlink, a read-only and an executable file."""
    for i in range(files):
        d = root / f"d{i % 10}" / f"e{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n" * (i % 5 + 1))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "frozen.txt").write_text("read only\n")
    (root / "frozen.txt").chmod(0o444)
    os.symlink("d0/e0/f0.txt", root / "link")
    os.symlink("/nonexistent/target", root / "dangling")


def listing(root) -> dict:
    """Every path under C{root}: its kind and mode, and its content's digest or link target."""
    found = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("l", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                found[rel] = ("f", stat.S_IMODE(st.st_mode), digest)
    return found


@pytest_twisted.async_yield_fixture()
async def targets(sshd, tmp_path):
    """A popen, a via and an SSH gateway (all on this machine), with a destination each."""
    group = txexecnet.Group()
    gateways = await group.makegateways(["popen//id=p", sshd.spec() + "//id=s"])
    gateways.append(await group.makegateway("popen//via=p//id=v"))
    dests = [tmp_path / f"dest-{gw.id}" for gw in gateways]
    yield list(zip(gateways, dests))
    await group.terminate(T)


@pytest_twisted.ensureDeferred
async def test_a_tree_reaches_every_target_and_a_second_send_moves_nothing(targets, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    makeTree(source)
    calls = []
    progress = []
    rsync = RSync(source, callback=lambda *a: calls.append(a[:2]), progress=progress.append)
    for gw, dest in targets:
        rsync.add_target(gw, dest)
    await rsync.send()
    for _, dest in targets:
        assert listing(dest) == listing(source)
    assert (
        progress[-1].files_done == progress[-1].files_total == 3 * 1002
    )  # the links are not files
    assert progress[-1].bytes_done == progress[-1].bytes_total
    assert sorted(k for k, _ in calls if k == "list") == ["list"] * 3

    again = []
    rsync = RSync(source, progress=again.append)
    for gw, dest in targets:
        rsync.add_target(gw, dest)
    await rsync.send()
    assert again == []  # nothing was wanted, nothing written


@pytest_twisted.ensureDeferred
async def test_only_changed_files_are_sent_and_delete_removes_the_rest(popen_gw, tmp_path):
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    makeTree(source, files=20)
    rsync = RSync(source)
    rsync.add_target(popen_gw, dest)
    await rsync.send()

    (source / "d1" / "e1" / "f1.txt").write_text("changed\n")  # another size
    same = source / "d2" / "e2" / "f2.txt"
    os.utime(same, ns=(1, 1))  # only the time: the checksum says no data need go
    (dest / "extra.txt").write_text("not in the source\n")
    (dest / "d9" / "olddir").mkdir()
    sent = []
    rsync = RSync(source, callback=lambda kind, size, ch: sent.append((kind, size)))
    rsync.add_target(popen_gw, dest, delete=True)
    await rsync.send()
    assert listing(dest) == listing(source)
    assert os.stat(dest / "d2" / "e2" / "f2.txt").st_mtime_ns == 1
    assert ("list", len("changed\n") + same.stat().st_size) in sent

    (dest / "kept.txt").write_text("stays without delete\n")
    rsync = RSync(source)
    rsync.add_target(popen_gw, dest)
    await rsync.send()
    assert (dest / "kept.txt").exists()


@pytest_twisted.ensureDeferred
async def test_a_large_file_streams_with_bounded_memory(popen_gw, tmp_path):
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    big = source / "big.bin"
    block = os.urandom(MiB)
    with open(big, "wb") as f:
        for _ in range(384):
            f.write(block)
    pid = popen_gw.remoteinfo["pid"]

    def rss(pid="self"):
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) * 1024

    peaks = {"local": 0, "remote": 0}
    before = {"local": rss(), "remote": rss(pid)}

    def sample(progress):
        peaks["local"] = max(peaks["local"], rss() - before["local"])
        peaks["remote"] = max(peaks["remote"], rss(pid) - before["remote"])

    rsync = RSync(source, progress=sample)
    rsync.add_target(popen_gw, dest)
    sending = rsync.send()
    while not sending.called:
        sample(None)
        await task.deferLater(reactor, 0.05, lambda: None)
    await sending
    assert listing(dest) == listing(source)
    assert peaks["local"] < 64 * MiB and peaks["remote"] < 64 * MiB, peaks


def test_the_blocking_rsync_and_a_filter(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    makeTree(source, files=5)
    (source / "skip.log").write_text("left out\n")

    class NoLogs(blocking.RSync):
        def filter(self, path):
            return not path.endswith(".log")

    gw = blocking.makegateway("popen")
    try:
        finished = []
        rsync = NoLogs(source)
        rsync.add_target(gw, dest, finishedcallback=lambda: finished.append(True))
        rsync.send()
        assert finished == [True]
        expected = listing(source)
        del expected["skip.log"]
        assert listing(dest) == expected
        with pytest.raises(OSError, match="no targets"):
            rsync.send()
    finally:
        gw.exit(T)


def readBytes(pid: int) -> int:
    """Bytes the process C{pid} has read (from its pipes, among others)."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


@pytest_twisted.ensureDeferred
async def test_targets_behind_one_hop_get_the_data_once_over_its_link(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(32 * MiB))
    (source / "small.txt").write_text("small\n")
    group = txexecnet.Group(["popen//id=hop"])
    try:
        [hop] = await group.whenStarted()
        inner = await group.makegateways([f"popen//via=hop//id=inner{i}" for i in range(3)])
        before = readBytes(hop.remoteinfo["pid"])
        rsync = RSync(source)
        for gw in inner:
            rsync.add_target(gw, tmp_path / f"dest-{gw.id}")
        await rsync.send()
        crossed = readBytes(hop.remoteinfo["pid"]) - before
        for gw in inner:
            assert listing(tmp_path / f"dest-{gw.id}") == listing(source)
        assert 32 * MiB <= crossed < 40 * MiB  # once, not three times
        staged = hop.remote_exec(
            "import glob, tempfile, os\n"
            "channel.send(glob.glob(os.path.join(tempfile.gettempdir(), 'txexecnet-rsync-*')))"
        )
        assert await staged.receive(T) == []  # the staging area is gone
    finally:
        await group.terminate(T)

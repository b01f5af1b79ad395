"""
The receiving end of L{txexecnet.rsync.RSync}, sent to each target with
C{remote_exec} (so it is standard library only, and Python 3.8).

The conversation on the channel, after the sender's C{(destdir, options)}:

  - sender: C{("manifest", entries)}, each C{(path, kind, mode, size,
    mtime_ns, link)} with C{kind} one of C{"d"}, C{"f"}, C{"l"} and C{path}
    relative, C{/}-separated;
  - receiver: C{("wants", [(path, checksum), ...])}: the files it lacks or
    that differ, with the sha256 of what it has where only the time differs;
  - sender, for each file wanted: C{("same", path)} when that checksum is
    the sender's too, else C{("file", path)}, the data as bytes items and
    C{("eof", path)};
  - sender: C{("done",)}; receiver: C{("ack", path, size)} per file as it
    is written, then C{("finished", counts)}, and it closes the channel.

Targets started through the same C{via=} hop share its machine, so a file
they all need crosses the link to the hop once: the hop's own receiver, in
staging mode (options C{{"stage": True}}), takes C{("file", path)}, the data
and C{("eof", path)}, answers C{("staged", path, where)}, and each target is
sent C{("copy", path, where)} instead of the data.  The staged files go at
C{("done",)}.
"""

import hashlib
import os
import shutil
import stat

CHUNK = 1024 * 1024


def _local(destdir, path):
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError("refusing the path %r: not inside the destination" % (path,))
    return os.path.join(destdir, *parts)


def _checksum(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                return h.hexdigest()
            h.update(block)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _wants(destdir, entries):
    """Make directories and links; return the files to ask for."""
    wants = []
    for path, kind, mode, size, mtime_ns, link in entries:
        target = _local(destdir, path)
        try:
            st = os.lstat(target)
        except OSError:
            st = None
        if kind == "d":
            if st is not None and not stat.S_ISDIR(st.st_mode):
                _remove(target)
                st = None
            if st is None:
                os.makedirs(target)
        elif kind == "l":
            if st is None or not stat.S_ISLNK(st.st_mode) or os.readlink(target) != link:
                if st is not None:
                    _remove(target)
                os.symlink(link, target)
        else:
            if st is not None and not stat.S_ISREG(st.st_mode):
                _remove(target)
                st = None
            if st is None or st.st_size != size:
                wants.append((path, None))
            elif st.st_mtime_ns != mtime_ns:
                wants.append((path, _checksum(target)))
            elif stat.S_IMODE(st.st_mode) != mode:
                os.chmod(target, mode)
    return wants


def _delete_others(destdir, entries):
    keep = set(_local(destdir, e[0]) for e in entries)
    deleted = 0
    for root, dirs, files in os.walk(destdir, topdown=False):
        for name in files + dirs:
            path = os.path.join(root, name)
            if path not in keep and os.path.lexists(path):
                _remove(path)
                deleted += 1
    return deleted


def _receive_file(channel, path, partial):
    with open(partial, "wb") as f:
        while True:
            data = channel.receive()
            if not isinstance(data, bytes):
                break
            f.write(data)
    assert data == ("eof", path), data


def stage(channel):
    import tempfile

    where = tempfile.mkdtemp(prefix="txexecnet-rsync-")
    try:
        count = 0
        while True:
            message = channel.receive()
            if message[0] == "done":
                break
            count += 1
            staged = os.path.join(where, str(count))
            _receive_file(channel, message[1], staged)
            os.chmod(staged, 0o644)
            channel.send(("staged", message[1], staged))
    finally:
        shutil.rmtree(where, ignore_errors=True)


def serve(channel):
    destdir, options = channel.receive()
    if options.get("stage"):
        return stage(channel)
    destdir = os.path.abspath(os.path.expanduser(destdir))
    if not os.path.isdir(destdir):
        os.makedirs(destdir)
    tag, entries = channel.receive()
    assert tag == "manifest", tag
    wants = _wants(destdir, entries)
    channel.send(("wants", wants))
    meta = dict((e[0], e) for e in entries)
    counts = {"written": 0, "touched": 0, "deleted": 0}
    while True:
        message = channel.receive()
        if message[0] == "done":
            break
        path = message[1]
        target = _local(destdir, path)
        _, _, mode, size, mtime_ns, _ = meta[path]
        if message[0] in ("file", "copy"):
            partial = target + ".txexecnet-part"
            if message[0] == "file":
                _receive_file(channel, path, partial)
            else:
                shutil.copyfile(message[2], partial)
            os.replace(partial, target)
            counts["written"] += 1
        else:
            counts["touched"] += 1
        os.chmod(target, mode)
        os.utime(target, ns=(mtime_ns, mtime_ns))
        channel.send(("ack", path, size))
    for path, kind, mode, size, mtime_ns, link in reversed(entries):
        if kind == "d":  # last, and deepest first: a read-only one may hold the others
            os.chmod(_local(destdir, path), mode)
    if options.get("delete"):
        counts["deleted"] = _delete_others(destdir, entries)
    channel.send(("finished", counts))


if __name__ == "__channelexec__":
    serve(channel)  # noqa: F821 - the global remote_exec gives the code

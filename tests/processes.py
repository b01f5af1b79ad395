"""
What the tests know about processes: children of a process, whether one
runs, and the long-lived daemons that session-wide fixtures start.
"""

from __future__ import annotations

import os

#: Pids of daemons that fixtures of a wider scope keep for many tests (the
#: test sshd, shared execnet-servers): the per-test leak check ignores them.
SHARED: set[int] = set()


def _stat(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(parent: int | None = None) -> dict[int, str]:
    """
    The child processes of C{parent} (default: this process): pid -> its
    state letter in brackets and the start of its command line.
    """
    parent = os.getpid() if parent is None else parent
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(entry)
        if fields is None or fields[1] != str(parent):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry)] = f"[{fields[0]}] {cmdline[:100]}"
    return found


def process_children(pid: int) -> set[int]:
    """The pids of C{pid}'s living (not zombie) child processes."""
    return {child for child, what in children(pid).items() if not what.startswith("[Z]")}


def alive(pid: int) -> bool:
    """Whether C{pid} runs (a zombie does not count)."""
    fields = _stat(str(pid))
    return fields is not None and fields[0] != "Z"

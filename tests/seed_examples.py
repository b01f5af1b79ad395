"""The seed document's examples, as scripts a user would write."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap


def run_script(source: str, timeout: float = 60) -> str:
    """Run C{source} in a fresh interpreter; return its stdout; fail on error."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def check_fileserver(tmp_path, gateway: str) -> None:
    """
    Run the seed's fileserver example as written, on the gateway that the
    expression C{gateway} makes (in a script that did
    C{from txexecnet import blocking}), and check every file came back whole.
    """
    files = []
    for i in range(3):
        path = tmp_path / f"file{i}"
        path.write_bytes(os.urandom(1000 * (i + 1)))
        files.append(str(path))
    out = run_script(
        f"""
        import hashlib
        from txexecnet import blocking
        contentserverbootstrap = '''
        for fn in channel:
            f = open(fn, 'rb')
            try:
                channel.send(f.read())
            finally:
                f.close()
        '''
        contentgateway = {gateway}
        channel = contentgateway.remote_exec(contentserverbootstrap)
        for fn in {files!r}:
            channel.send(fn)
            content = channel.receive(timeout=10)
            print(hashlib.sha256(content).hexdigest())
        channel.close()
        channel.waitclose(timeout=10)
        contentgateway.exit()
        """
    )
    expected = [hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files]
    assert out.split() == expected

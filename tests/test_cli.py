"""The txexecnet command line, run as a user would."""

import os
import subprocess
import sys

import pytest

BIN = os.path.join(os.path.dirname(sys.executable), "txexecnet")


def run(*args, timeout=60):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", [[BIN], [sys.executable, "-m", "txexecnet"]])
def test_exec_prints_each_item(command):
    proc = run(
        *command,
        "exec",
        "-g",
        "popen",
        "-c",
        "import sys; channel.send(sys.version); channel.send(42); channel.send(b'x')",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == sys.version + "\n42\nb'x'\n"


def test_remote_exception_prints_traceback_and_fails():
    proc = run(
        BIN, "exec", "-c", "channel.send(1)\ndef f():\n    raise RuntimeError('bad thing')\nf()"
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["1"]
    assert "Traceback" in proc.stderr and "RuntimeError: bad thing" in proc.stderr


def test_bad_spec_and_missing_python_fail_cleanly():
    proc = run(BIN, "exec", "-g", "popen//nosuch=1", "-c", "pass")
    assert proc.returncode == 2 and "unknown key 'nosuch'" in proc.stderr
    proc = run(BIN, "exec", "-g", "popen//python=/no/such/python", "-c", "pass")
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_code_from_a_file_and_stdin(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("channel.send('from file')\n")
    assert run(BIN, "exec", str(script)).stdout == "from file\n"
    proc = subprocess.run(
        [BIN, "exec", "-"],
        input="channel.send('from stdin')\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout == "from stdin\n"

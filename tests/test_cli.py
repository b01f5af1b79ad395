"""The txexecnet command line, run as a user would."""

import json
import os
import signal
import subprocess
import sys

import pytest

from processes import alive

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


def test_exec_on_several_gateways_prefixes_each_line_with_the_gateway_id():
    proc = run(BIN, "exec", "-g", "popen//id=a", "-g", "thread//id=b", "-c", "channel.send(7)")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ["a: 7", "b: 7"]


def test_json_lines_carry_the_gateway_and_the_item():
    proc = run(BIN, "exec", "-g", "popen", "-g", "popen", "--json", "-c", "channel.send((1, b'x'))")
    assert proc.returncode == 0, proc.stderr
    lines = sorted(proc.stdout.splitlines())
    assert [json.loads(line) for line in lines] == [
        {"gateway": "gw0", "item": [1, "x"]},
        {"gateway": "gw1", "item": [1, "x"]},
    ]


def test_a_hosts_file_lists_specs_and_a_summary_says_what_failed(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("# the fleet\npopen//id=one\n\nsocket=127.0.0.1:1//id=dead\nthread//id=two\n")
    proc = run(BIN, "exec", "--hosts", str(hosts), "--concurrency", "2", "-c", "channel.send(1)")
    assert proc.returncode == 2
    assert sorted(proc.stdout.splitlines()) == ["one: 1", "two: 1"]
    assert "2 of 3 gateways finished; failed: socket=127.0.0.1:1//id=dead" in proc.stderr


def test_remote_code_that_raises_anywhere_gives_status_1_and_names_the_gateway():
    code = "raise KeyError(5)"
    proc = run(BIN, "exec", "-g", "popen//id=x", "-g", "popen//id=y", "-c", code)
    assert proc.returncode == 1
    assert "remote error on x:" in proc.stderr and "remote error on y:" in proc.stderr
    assert "0 of 2 gateways finished; remote code raised on" in proc.stderr


def test_a_missing_file_is_status_2_with_a_message():
    proc = run(BIN, "exec", "/no/such/job.py")
    assert proc.returncode == 2
    assert proc.stderr == "txexecnet: cannot read /no/such/job.py: No such file or directory\n"


def test_a_timeout_gives_up_the_gateway_without_the_exit_grace():
    proc = run(BIN, "exec", "--timeout", "1", "-c", "import time; time.sleep(60)", timeout=30)
    assert proc.returncode == 2
    assert "no item on channel" in proc.stderr


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_gateways_first_and_gives_the_shells_status(signum, status):
    proc = subprocess.Popen(
        [BIN, "exec", "-c", "import os, time; channel.send(os.getpid()); time.sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        remote = int(proc.stdout.readline())
        proc.send_signal(signum)
        assert proc.wait(30) == status
    finally:
        proc.kill()
        proc.communicate()
    assert not alive(remote)


def test_help_and_version_read_well():
    proc = run(BIN, "exec", "--help")
    assert proc.returncode == 0
    for words in ("--hosts FILE", "--concurrency N", "--json", "after Ctrl-C; 143 after SIGTERM"):
        assert words in proc.stdout
    proc = run(BIN, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("txexecnet ")


def test_rsync_copies_a_tree_to_several_gateways_with_plain_progress_lines(tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("alpha\n")
    (source / "b.txt").write_text("beta\n")
    one, two = tmp_path / "one", tmp_path / "two"
    proc = run(BIN, "rsync", str(source), f"popen:{one}", f"thread//id=t:{two}")
    assert proc.returncode == 0, proc.stderr
    for dest in (one, two):
        assert (dest / "sub" / "a.txt").read_text() == "alpha\n"
        assert (dest / "b.txt").read_text() == "beta\n"
    assert proc.stdout.splitlines()[-1] == "4/4 files, 22/22 bytes"
    (one / "extra").write_text("x")
    proc = run(BIN, "rsync", "--delete", str(source), f"popen:{one}")
    assert proc.returncode == 0 and not (one / "extra").exists()
    assert proc.stdout == ""  # nothing changed, nothing sent


def test_rsync_shows_a_progress_bar_on_a_terminal(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_bytes(b"x" * 1000)
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal 100 columns wide, then the command
        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        os.execv(BIN, [BIN, "rsync", str(source), f"popen:{tmp_path / 'dest'}"])
    shown = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        shown += data
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "100%|" in shown.decode() and "1/1 files" in shown.decode()


def test_rsync_refuses_a_bad_target_and_a_missing_source(tmp_path):
    proc = run(BIN, "rsync", str(tmp_path), "nodest")
    assert proc.returncode == 2 and "write SPEC:DEST" in proc.stderr
    proc = run(BIN, "rsync", str(tmp_path / "nope"), f"popen:{tmp_path}/d")
    assert proc.returncode == 2 and "not a directory" in proc.stderr

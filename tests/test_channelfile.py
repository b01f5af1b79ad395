"""
Files on channels: C{makefile("w")} sends each write as an item,
C{makefile("r")} reads the items received until the close; on the remote
side, in the blocking facade and (writing) in the Twisted API.
"""

from __future__ import annotations

import pytest
import pytest_twisted

import txexecnet
from conftest import SPEC_FACTORIES
from txexecnet import blocking

T = 30

REMOTE_PRINTS = """
import sys
out = channel.makefile("w")
print("first line", file=out)
out.write("second ")
out.writelines(["line\\n", "no end"])
out.flush()
out.close()
"""

REMOTE_READS = """
lines = []
for line in channel.makefile("r"):
    if line == "end\\n":
        break
    lines.append(line)
channel.send(lines)
"""


@pytest.fixture(params=sorted(SPEC_FACTORIES))
def bgw(request):
    """A blocking gateway over each transport (via: through a blocking parent)."""
    parent = None
    if request.param == "via":
        parent = blocking.makegateway("popen//id=file-parent")
        spec = "popen//via=file-parent"
    else:
        spec = SPEC_FACTORIES[request.param](request)
    gw = blocking.makegateway(spec)
    yield gw
    gw.exit(T)
    if parent is not None:
        parent.exit(T)


def test_a_remote_file_written_is_read_as_a_local_file(bgw):
    ch = bgw.remote_exec(REMOTE_PRINTS)
    f = ch.makefile("r")
    assert f.readline() == "first line\n"
    assert f.read(4) == "seco"
    assert list(f) == ["nd line\n", "no end"]
    assert f.read() == "" and f.readline() == ""
    f.close()
    with pytest.raises(ValueError, match="closed"):
        f.read()


def test_a_local_file_written_is_read_as_a_remote_file(bgw):
    ch = bgw.remote_exec(REMOTE_READS)
    with ch.makefile("w") as f:
        f.write("one\ntw")
        f.write("o\nthree")
    ch.send("\nend\n")  # the file did not close the channel: it still sends
    assert ch.receive(T) == ["one\n", "two\n", "three\n"]


def test_a_file_with_proxyclose_closes_its_channel_and_bytes_stay_bytes(bgw):
    code = (
        "f = channel.makefile('w', proxyclose=True)\n"
        "f.write(b'\\x00\\xff')\nf.write(b'tail')\nf.close()"
    )
    ch = bgw.remote_exec(code)
    assert ch.makefile("r").read() == b"\x00\xfftail"
    ch.waitclose(T)
    assert ch.isclosed()


def test_reading_something_other_than_text_or_bytes_says_so(bgw):
    ch = bgw.remote_exec("channel.send(42)")
    with pytest.raises(TypeError, match="strings or bytes, not int"):
        ch.makefile("r").read()


def test_a_mode_other_than_r_or_w_is_refused(bgw):
    ch = bgw.remote_exec("pass")
    with pytest.raises(ValueError, match="'a'"):
        ch.makefile("a")
    err = bgw.remote_exec("channel.makefile('x')")
    with pytest.raises(txexecnet.RemoteError, match="a channel file is 'r' or 'w'"):
        err.waitclose(T)


@pytest_twisted.ensureDeferred
async def test_a_twisted_channel_file_sends_each_write(popen_gw):
    ch = popen_gw.remote_exec(REMOTE_READS)
    f = ch.makefile("w")
    print("hello", "world", file=f)
    f.writelines(["end\n"])
    f.close()
    assert await ch.receive(T) == ["hello world\n"]


@pytest_twisted.ensureDeferred
async def test_a_twisted_reading_file_gives_deferreds_and_lines(popen_gw):
    ch = popen_gw.remote_exec(REMOTE_PRINTS)
    f = ch.makefile("r")
    assert await f.readline() == "first line\n"
    assert await f.read(4) == "seco"
    assert [line async for line in f] == ["nd line\n", "no end"]
    assert await f.read() == "" and await f.readline() == ""
    with pytest.raises(TypeError, match="async for"):
        iter(f)
    whole = popen_gw.remote_exec("channel.send(b'ab'); channel.send(b'c\\nd')").makefile("r")
    assert await whole.readlines() == [b"abc\n", b"d"]
    closing = popen_gw.remote_exec("channel.receive()").makefile("w", proxyclose=True)
    closing.close()
    assert closing.channel.isclosed()

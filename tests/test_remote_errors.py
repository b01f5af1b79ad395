"""
What a RemoteError tells of a remote failure: the traceback text as ever,
and the exception's class, bases, arguments and frames, over every
transport (the C{gw} fixture is parametrized over them in conftest.py), in
the blocking facade and in txexecnet.compat; and what a malformed error
from the other side gives.
"""

from __future__ import annotations

import importlib.util
import linecache
import pickle
import traceback

import pytest
import pytest_twisted
from twisted.internet.task import Clock

import txexecnet
import txexecnet.compat as execnet
from txexecnet import RemoteError, RemoteFrame, blocking, dumps
from txexecnet._remote import CHANNEL_CLOSE_ERROR
from txexecnet.testing import InMemoryRuntime, ScriptedPeer

T = 10  # seconds any single wait may take before the test fails

FAILING = "def f():\n    raise ValueError('boom', 42)\n\nf()\n"

NESTED = """
class Outer:
    class MyError(LookupError):
        pass

raise Outer.MyError(1, 'two', {3}, object(), channel)
"""

#: Sent as a function and as a module, from a file that is gone by the time
#: the remote side formats the traceback.
SENT = '''"""Sent whole and as a function by test_remote_errors.py."""


def fail(channel):
    channel.receive()
    raise RuntimeError("from a function")


if __name__ == "__channelexec__":
    channel.receive()
    raise RuntimeError("from a module")
'''


class Outer:
    """A local class of the same qualified name as the one in L{NESTED}."""

    class MyError(Exception):
        pass


async def remote_error(ch) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await ch.waitclose(T)
    return info.value


def local_tail(source: str) -> str:
    """The traceback of C{source} run here, from its first frame in "<remote exec>" on."""
    linecache.cache["<remote exec>"] = (len(source), None, source.splitlines(True), "<remote exec>")
    try:
        exec(compile(source, "<remote exec>", "exec"), {"__name__": "__channelexec__"})
    except Exception as e:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    finally:
        del linecache.cache["<remote exec>"]
    head, sep, tail = text.partition('  File "<remote exec>"')
    return sep + tail


@pytest_twisted.ensureDeferred
async def test_a_remote_value_error_gives_its_class_args_frames_and_gateway(gw):
    error = await remote_error(gw.remote_exec(FAILING))
    assert (error.type_name, error.module) == ("ValueError", "builtins")
    assert error.mro[:2] == (("builtins", "ValueError"), ("builtins", "Exception"))
    assert error.args == ("boom", 42)
    assert error.frames[-2:] == [
        RemoteFrame("<remote exec>", 4, "<module>", "f()"),
        RemoteFrame("<remote exec>", 2, "f", "raise ValueError('boom', 42)"),
    ]
    assert error.frames[-1].line == "raise ValueError('boom', 42)"
    assert error.gateway_id == gw.id
    assert repr(error) == f"<RemoteError ValueError('boom', 42) from {gw.id}>"


@pytest_twisted.ensureDeferred
async def test_the_text_is_the_traceback_as_python_formats_it(gw):
    error = await remote_error(gw.remote_exec(FAILING))
    text = str(error)
    assert text == error.formatted
    assert text.startswith("Traceback (most recent call last):\n")
    head, sep, tail = text.partition('  File "<remote exec>"')
    assert sep + tail == local_tail(FAILING)
    assert "    raise ValueError('boom', 42)\n" in text
    assert text.endswith("ValueError: ('boom', 42)\n")


@pytest_twisted.ensureDeferred
async def test_a_class_of_the_remote_code_is_named_and_matched(gw):
    error = await remote_error(gw.remote_exec(NESTED))
    assert (error.type_name, error.module) == ("Outer.MyError", "__channelexec__")
    assert error.mro[:3] == (
        ("__channelexec__", "Outer.MyError"),
        ("builtins", "LookupError"),
        ("builtins", "Exception"),
    )
    assert error.args[:3] == (1, "two", {3})
    assert error.args[3].startswith("<object object at 0x")
    assert error.args[4].startswith("<Channel id=")
    assert error.matches("Outer.MyError") and error.matches("__channelexec__.Outer.MyError")
    assert error.matches(LookupError) and error.matches("LookupError", "nothing")
    assert error.matches("builtins.Exception") and error.matches(BaseException)
    assert error.matches(Outer.MyError)  # by its qualified name: the remote code's module
    assert not error.matches("MyError") and not error.matches(KeyError, "ValueError")
    assert not error.matches("other.Outer.MyError") and not error.matches()
    assert "Outer.MyError: (1, 'two', {3}, <object object at 0x" in str(error)


def sent_module(tmp_path):
    """L{SENT} imported from a file of its own, which is then deleted."""
    path = tmp_path / "sent_failing.py"
    path.write_text(SENT)
    spec = importlib.util.spec_from_file_location("sent_failing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def line_of(text: str) -> int:
    return SENT.splitlines().index(f'    raise RuntimeError("{text}")') + 1


@pytest_twisted.ensureDeferred
async def test_tracebacks_show_the_sent_lines_of_a_function_and_a_module(gw, tmp_path):
    module, path = sent_module(tmp_path)
    channels = {"function": gw.remote_exec(module.fail), "module": gw.remote_exec(module)}
    path.unlink()
    for what, ch in channels.items():
        ch.send(None)
        error = await remote_error(ch)
        name = "fail" if what == "function" else "<module>"
        line = f'raise RuntimeError("from a {what}")'
        assert error.frames[-1] == RemoteFrame(str(path), line_of(f"from a {what}"), name, line)
        assert f'File "{path}", line {line_of(f"from a {what}")}, in {name}\n    {line}\n' in str(
            error
        )


@pytest_twisted.ensureDeferred
async def test_a_close_with_an_error_string_has_no_exception_fields(gw):
    ch = gw.remote_exec("channel.close('no such file')")
    error = await remote_error(ch)
    assert str(error) == "no such file"
    assert (error.type_name, error.module, error.mro, error.args, error.frames) == (
        None,
        None,
        (),
        (),
        [],
    )
    assert error.gateway_id == gw.id and not error.matches(Exception, "str")
    assert repr(error) == f"<RemoteError 'no such file' from {gw.id}>"


@pytest_twisted.ensureDeferred
async def test_the_remote_side_gets_our_error_string_as_a_remote_error(popen_gw):
    ch = popen_gw.remote_exec(
        """
        out = channel.receive()
        try:
            channel.receive()
        except Exception as e:
            out.send((type(e).__name__, str(e), e.type_name, e.args, e.frames, e.gateway_id))
        """
    )
    out = popen_gw.newchannel()
    ch.send(out)
    ch.close("stop now")
    reply = await out.receive(T)
    assert reply == ("RemoteError", "stop now", None, (), [], f"{popen_gw.id}-worker")


@pytest_twisted.ensureDeferred
async def test_a_remote_callback_that_raises_closes_its_channel_with_the_exception(popen_gw):
    ch = popen_gw.remote_exec(
        """
        def check(item):
            raise KeyError(item)

        channel.setcallback(check)
        channel.send("ready")
        import time
        deadline = time.monotonic() + 10
        while not channel.isclosed() and time.monotonic() < deadline:
            time.sleep(0.01)  # the callback's failure closes the channel
        """
    )
    assert await ch.receive(T) == "ready"
    ch.send("missing")
    error = await remote_error(ch)
    assert error.type_name == "KeyError" and error.args == ("missing",)
    assert error.frames[-1][2:] == ("check", "raise KeyError(item)")
    assert str(error).endswith("KeyError: 'missing'\n")


@pytest_twisted.ensureDeferred
async def test_a_cancelled_remote_exec_is_a_keyboard_interrupt_by_its_fields_too(popen_gw):
    ch = popen_gw.remote_exec("channel.send('waiting')\nchannel.receive()")
    assert await ch.receive(T) == "waiting"
    ch.cancel()
    error = await remote_error(ch)
    assert str(error) == "KeyboardInterrupt" and error.type_name == "KeyboardInterrupt"
    assert error.matches(KeyboardInterrupt) and not error.matches(Exception)
    assert RemoteFrame("<remote exec>", 2, "<module>", "channel.receive()") in error.frames


@pytest_twisted.ensureDeferred
async def test_an_exception_whose_args_cannot_be_read_still_gives_its_traceback(popen_gw):
    ch = popen_gw.remote_exec(
        """
        class Odd(Exception):
            @property
            def args(self):
                raise RuntimeError("no args here")

        raise Odd()
        """
    )
    error = await remote_error(ch)
    assert str(error).startswith("Traceback (most recent call last):\n")
    assert "    raise Odd()\n" in str(error) and error.type_name is None


@pytest_twisted.ensureDeferred
async def test_a_remote_error_pickles_with_every_field(popen_gw):
    error = await remote_error(popen_gw.remote_exec(NESTED))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(error, protocol))
        assert type(copy) is RemoteError and str(copy) == str(error)
        assert (copy.type_name, copy.module, copy.mro, copy.args, copy.gateway_id) == (
            error.type_name,
            error.module,
            error.mro,
            error.args,
            error.gateway_id,
        )
        assert copy.frames == error.frames and all(type(f) is RemoteFrame for f in copy.frames)
        assert copy.frames[-1].name == "<module>" and copy.matches(LookupError)


def test_matches_takes_classes_and_names_only():
    error = RemoteError("text", "E", "m", mro=[("m", "E")])
    assert error.matches("m.E") and not error.matches(type("E", (Exception,), {}))
    with pytest.raises(TypeError, match="classes and names"):
        error.matches((ValueError,))


def test_the_runtime_leaves_linecache_as_it_was():
    runtime = InMemoryRuntime(Clock())
    gateway = runtime.start()
    try:
        with pytest.raises(RemoteError, match="raise ValueError"):
            runtime.runUntil(gateway.remote_exec(FAILING).waitclose())
    finally:
        runtime.stop()
    assert "<remote exec>" not in linecache.cache


def scripted():
    peer = ScriptedPeer(Clock())
    peer.hello()
    return peer, peer.started.result


def closed_with(payload: bytes) -> RemoteError:
    """The error a channel of a scripted gateway gets from C{payload}; that gateway goes on."""
    peer, gateway = scripted()
    bad, good = gateway.remote_exec("pass"), gateway.remote_exec("pass")
    peer.sendFrame(CHANNEL_CLOSE_ERROR, bad.id, payload)
    peer.send(good.id, "fine")
    failures = []
    bad.waitclose().addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(RemoteError)
    good.receive().addCallback(failures.append)
    assert failures[1] == "fine" and not gateway.isTerminated()
    return failures[0].value


FIELDS = {
    "text": "Traceback (most recent call last):\nE: x\n",
    "type": "E",
    "module": "m",
    "mro": [["m", "E"], ["builtins", "Exception"]],
    "args": ["x"],
    "frames": [["<remote exec>", None, "<module>", None], ["f.py", 3, "g", "g()"]],
}


def test_an_error_of_well_formed_fields_is_read_whole():
    error = closed_with(dumps(FIELDS))
    assert str(error) == FIELDS["text"] and error.args == ("x",) and error.gateway_id == "scripted"
    assert error.frames == [
        RemoteFrame("<remote exec>", None, "<module>", None),
        RemoteFrame("f.py", 3, "g", "g()"),
    ]
    assert error.matches("m.E", Exception) and (error.type_name, error.module) == ("E", "m")


MALFORMED = {
    "a key missing": ({k: v for k, v in FIELDS.items() if k != "frames"}, "its keys are"),
    "a key too many": ({**FIELDS, "extra": 1}, "its keys are"),
    "a type not a str": ({**FIELDS, "type": 3}, "type is a int, not a str"),
    "args not a tuple": ({**FIELDS, "args": "x"}, "args is a str, not a tuple"),
    "an mro entry not a pair": ({**FIELDS, "mro": [["m"]]}, "mro is not a list"),
    "a frame of 3": ({**FIELDS, "frames": [["f.py", 3, "g"]]}, "frames is not a list"),
    "a frame's lineno a str": ({**FIELDS, "frames": [["f", "3", "g", None]]}, "frames is not"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_error_ends_its_channel_saying_so_and_keeps_its_text(case):
    fields, why = MALFORMED[case]
    error = closed_with(dumps(fields))
    assert str(error).startswith(FIELDS["text"] + "\n(malformed error from the other side: ")
    assert why in str(error) and error.type_name is None and error.frames == []


@pytest.mark.parametrize(
    "payload, why",
    [
        (dumps(["text"]), "malformed error from the other side: a list, not a str or a dict"),
        (dumps({"text": 1}), "malformed error from the other side: its keys are"),
        (b"\xff", "undecodable error text"),
    ],
)
def test_an_error_that_is_not_text_or_fields_says_so(payload, why):
    assert why in str(closed_with(payload))


def test_the_blocking_facade_and_compat_raise_the_remote_error_with_its_fields():
    gw = blocking.makegateway("popen")
    try:
        with pytest.raises(txexecnet.RemoteError) as info:
            gw.remote_exec(NESTED).waitclose(T)
    finally:
        gw.exit(timeout=3)
    assert info.value.type_name == "Outer.MyError" and info.value.gateway_id == gw.id
    assert info.value.frames[-1] == RemoteFrame(
        "<remote exec>", 6, "<module>", "raise Outer.MyError(1, 'two', {3}, object(), channel)"
    )

    group = execnet.Group()
    try:
        ch = group.makegateway("popen//id=compat").remote_exec(FAILING)
        with pytest.raises(execnet.RemoteError) as info:
            ch.waitclose(T)
    finally:
        group.terminate(3)
    assert execnet.RemoteError is txexecnet.RemoteError
    assert info.value.formatted == str(info.value) and info.value.args == ("boom", 42)
    assert info.value.matches(ValueError) and info.value.gateway_id == "compat"
    assert ch._getremoteerror() is info.value

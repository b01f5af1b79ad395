"""
txexecnet.compat's dumps and loads write and read execnet's own format,
checked byte for byte against execnet itself.
"""

import io

import execnet as real
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import containers

import txexecnet.compat as execnet
from txexecnet.compat import gateway_base

# execnet's dumps fails with struct.error for ints below -2**31 (they take
# its 4-byte path), so the byte-for-byte comparison leaves them out.
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**200),
    st.floats(allow_nan=False),
    st.complex_numbers(allow_nan=False),
    st.text(),
    st.binary(),
)
hashable = st.recursive(
    leaves, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=8
)
values = containers(leaves, hashable, max_size=3, max_leaves=20)


@given(values)
@settings(max_examples=300, deadline=None)
def test_dumps_writes_the_bytes_execnet_writes_and_both_read_them_back(value):
    data = execnet.dumps(value)
    assert data == real.dumps(value)
    assert execnet.loads(data) == value
    assert real.loads(data) == value


def test_ints_below_execnets_four_byte_range_travel_as_long_ints():
    value = -(2**31) - 1
    assert real.loads(execnet.dumps(value)) == value
    assert execnet.loads(execnet.dumps([value, -(2**100)])) == [value, -(2**100)]


def test_python_2_strings_load_as_bytes_or_as_text_when_asked():
    py2 = b"\x02M\x00\x00\x00\x01aQ"
    assert execnet.loads(py2) == b"a"
    assert execnet.loads(py2, py2str_as_py3str=True) == "a"
    assert execnet.loads(execnet.dumps("a"), py3str_as_py2str=True) == b"a"
    assert execnet.loads(b"\x02S\x00\x00\x00\x02\xc3\xa9Q") == "\xe9"


def test_the_opcodes_are_execnets():
    assert {k: v for k, v in vars(gateway_base.opcode).items() if "__" not in k} == {
        k: v for k, v in vars(real.gateway_base.opcode).items() if "__" not in k
    }
    assert gateway_base.DUMPFORMAT_VERSION == real.gateway_base.DUMPFORMAT_VERSION


def test_items_written_one_after_another_read_back_one_by_one_from_a_stream():
    stream = io.BytesIO(real.dumps(1) + execnet.dumps("two") + gateway_base.dumps_internal([3]))
    assert execnet.load(stream) == 1
    assert execnet.load(stream) == "two"
    assert gateway_base.Unserializer(stream).load() == [3]
    with pytest.raises(EOFError):
        execnet.load(stream)


@pytest.mark.parametrize(
    "data, says",
    [
        (b"", "ends inside"),
        (b"\x01LQ", "version"),
        (b"\x02LLQ", "2 items before STOP"),
        (b"\x02LQx", "1 trailing bytes"),
        (b"\x02Z", "unknown opcode"),
        (b"\x02P", "not enough items"),
        (b"\x02K\x00\x00\x00\x05Q", "a list of 5 items got 0"),
        (b"\x02K\x00\x00\x00\x01F\x00\x00\x00\x03LPQ", "item 3 of a list of 1"),
        (b"\x02JK\x00\x00\x00\x00LPQ", "unhashable"),
        (b"\x02N\xff\xff\xff\xffQ", "a length of -1"),
        (b"\x02@\x00\x00\x00\x05Q", "5 items for 0"),
        (b"\x02N\x00\x00\x00\x01\xffQ", "UnicodeDecodeError"),
        (b"\x02B\x00\x00\x00\x01Q", "a channel"),
    ],
)
def test_malformed_data_is_a_load_error_that_says_what_is_wrong(data, says):
    with pytest.raises(execnet.LoadError, match=says):
        execnet.loads(data)


def test_a_list_claiming_two_billion_items_allocates_nothing_for_them():
    with pytest.raises(execnet.LoadError, match="a list of 2147483647 items got 0"):
        execnet.loads(b"\x02K\x7f\xff\xff\xffQ")


@given(st.binary(max_size=64))
@settings(max_examples=500, deadline=None)
def test_any_bytes_load_or_give_load_error(data):
    try:
        execnet.loads(b"\x02" + data)
    except execnet.LoadError:
        pass


@pytest.mark.parametrize(
    "value", [object(), bytearray(b"x"), "\udc80", [[[]] * 1] * 1 + [object()]]
)
def test_dumps_refuses_what_execnet_refuses(value):
    with pytest.raises(real.DumpError):
        real.dumps(value)
    with pytest.raises(execnet.DumpError):
        execnet.dumps(value)


def test_the_serializer_module_imports_standalone_from_its_directory_as_execnets_does(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "standalone.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {os.path.dirname(execnet.__file__)!r})\n"
        "import gateway_base\n"
        "from io import BytesIO\n"
        "data = gateway_base.dumps_internal({(1, 2): [3.5, 'x']})\n"
        "print(repr(gateway_base.Unserializer(BytesIO(data)).load()))\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "{(1, 2): [3.5, 'x']}", out.stderr

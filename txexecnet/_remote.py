"""
The txexecnet remote runtime: one stdlib-only file.

This module is shipped as source text to the remote interpreter at bootstrap
(or imported from the installed package when the child runs the same Python),
and it is imported by the local side for the serializer and the frame
constants, so there is exactly one implementation of the wire format.

It must stay importable on Python 3.8 with nothing but the standard library,
and it must stay ASCII so its length in characters equals its length in bytes.

Wire format: a frame is a 9-byte header (message type: 1 byte, channel id:
4 bytes, payload length: 4 bytes, big-endian) followed by the payload.
"""

import builtins
import os
import struct
import sys
import threading
import time
from _queue import Empty, SimpleQueue
from _thread import get_ident as _get_ident
from _thread import start_new_thread as _start_thread
from time import monotonic

PROTOCOL_VERSION = 1

# Message types.
HELLO = 0
CHANNEL_EXEC = 1
CHANNEL_DATA = 2
CHANNEL_CLOSE = 3
CHANNEL_CLOSE_ERROR = 4
CHANNEL_LAST_MESSAGE = 5
GATEWAY_EXIT = 6
CHANNEL_CREDIT = 7
HEARTBEAT = 8
CHANNEL_CANCEL = 9
GATEWAY_STATUS = 10
#: What remote code wrote: a stream byte (L{STDOUT}, L{STDERR}), then UTF-8 text.
OUTPUT = 11
#: Local to remote: bytes of output (and log records) taken, as C{CREDIT}.
OUTPUT_CREDIT = 12
#: A record of the remote C{logging} module, serialized as a dict.
LOG_RECORD = 13

MESSAGE_NAMES = {
    HELLO: "HELLO",
    CHANNEL_EXEC: "CHANNEL_EXEC",
    CHANNEL_DATA: "CHANNEL_DATA",
    CHANNEL_CLOSE: "CHANNEL_CLOSE",
    CHANNEL_CLOSE_ERROR: "CHANNEL_CLOSE_ERROR",
    CHANNEL_LAST_MESSAGE: "CHANNEL_LAST_MESSAGE",
    GATEWAY_EXIT: "GATEWAY_EXIT",
    CHANNEL_CREDIT: "CHANNEL_CREDIT",
    HEARTBEAT: "HEARTBEAT",
    CHANNEL_CANCEL: "CHANNEL_CANCEL",
    GATEWAY_STATUS: "GATEWAY_STATUS",
    OUTPUT: "OUTPUT",
    OUTPUT_CREDIT: "OUTPUT_CREDIT",
    LOG_RECORD: "LOG_RECORD",
}

#: The streams of an OUTPUT frame.
STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

#: How remote code runs: each remote_exec in a thread of its own, or one
#: at a time in the interpreter's main thread (signal handlers, GUI
#: toolkits and test runners need it), as execnet's execution models.
EXECMODELS = ("thread", "main_thread_only")

#: Why a second remote_exec fails while one runs in the main thread.
CONCURRENT_MAIN_EXEC = "concurrent remote_exec would cause deadlock for main_thread_only execmodel"


class ExecModel(object):
    """
    The primitives remote code is to synchronise with, as execnet's
    C{channel.gateway.execmodel} offers them: both execution models run
    on OS threads, so these are the threading module's.
    """

    def __init__(self, backend):
        if backend not in EXECMODELS:
            raise ValueError("unknown execmodel %r: use %s" % (backend, " or ".join(EXECMODELS)))
        self.backend = backend

    def __repr__(self):
        return "<ExecModel %r>" % (self.backend,)

    @property
    def queue(self):
        import queue

        return queue

    @property
    def subprocess(self):
        import subprocess

        return subprocess

    @property
    def socket(self):
        import socket

        return socket

    def start(self, func, args=()):
        _start_thread(func, tuple(args))

    def get_ident(self):
        return _get_ident()

    def sleep(self, delay):
        time.sleep(delay)

    def fdopen(self, fd, mode, bufsize=1, closefd=True):
        return os.fdopen(
            fd, mode, bufsize, encoding="utf-8" if "b" not in mode else None, closefd=closefd
        )

    def Lock(self):
        return threading.Lock()

    def RLock(self):
        return threading.RLock()

    def Event(self):
        return threading.Event()

    def Semaphore(self, size=None):
        return threading.Semaphore(size) if size is not None else threading.Semaphore()


_execmodels = {}


def get_execmodel(backend):
    """The L{ExecModel} named C{backend} (or C{backend} itself if it is one)."""
    if isinstance(backend, ExecModel):
        return backend
    model = _execmodels.get(backend)
    if model is None:
        model = _execmodels[backend] = ExecModel(backend)
    return model


HEADER = struct.Struct(">BII")
HEADER_SIZE = HEADER.size

#: Frames larger than this are a protocol error unless configured otherwise.
DEFAULT_MAX_FRAME_SIZE = 256 * 1024 * 1024

#: Bytes of items (as serialized) that a channel's receiver may hold not yet
#: received before the sender on that channel waits: per channel, so one
#: slow receiver holds back its own sender and no other.  0: no window.
DEFAULT_WINDOW = 16 * 1024 * 1024

#: Seconds a send waits for the window before it says so (then again).
WINDOW_WARNING = 10.0

#: The largest first frame (the remote side's hello) a receiver accepts.
MAX_FIRST_FRAME_SIZE = 65536

#: How deeply containers may nest in one serialized item.
MAX_DEPTH = 200


class DataFormatError(Exception):
    """An item cannot be serialized, or bytes are not a valid serialized item."""


class DumpError(DataFormatError):
    """An object cannot be serialized."""


class LoadError(DataFormatError):
    """Bytes are not a valid serialized item."""


class RemoteFrame(tuple):
    """
    One frame of a remote traceback, a named tuple: C{filename}, C{lineno}
    (C{None} where Python does not know it), C{name} (the function's) and
    C{line} (its source, stripped; C{None} where it was not found).
    """

    # Written out rather than made by collections.namedtuple: importing
    # collections would cost the remote side's start-up 4-13 ms.
    __slots__ = ()
    _fields = ("filename", "lineno", "name", "line")

    def __new__(cls, filename, lineno, name, line):
        return tuple.__new__(cls, (filename, lineno, name, line))

    def __getnewargs__(self):
        return tuple(self)

    def __repr__(self):
        return "RemoteFrame(filename=%r, lineno=%r, name=%r, line=%r)" % self

    filename = property(lambda self: self[0], doc="The name of the frame's file.")
    lineno = property(lambda self: self[1], doc="The line number, or C{None}.")
    name = property(lambda self: self[2], doc="The name of the frame's function.")
    line = property(lambda self: self[3], doc="The source line, stripped, or C{None}.")


#: The module of classes defined in the code remote_exec sends.
EXEC_MODULE = "__channelexec__"


class RemoteError(Exception):
    """
    The other side of a channel failed: the text (C{str()}) is its
    traceback, or the error string it closed the channel with.  For an
    exception the other fields say what it was; for an error string they
    are empty.

    @ivar formatted: the text.
    @ivar type_name: the qualified name (C{__qualname__}) of the
        exception's class, such as C{"ValueError"} or C{"Outer.MyError"},
        or C{None}.
    @ivar module: the module that class was defined in (C{"builtins"};
        C{"__channelexec__"} for a class of the code remote_exec sent), or
        C{None}.
    @ivar mro: the class and its bases in method resolution order, as
        C{(module, qualified name)} pairs.
    @ivar args: the exception's arguments, each as it was where it could be
        sent over a channel, else its C{repr()}.
    @ivar frames: the frames of the traceback, outermost first, as
        L{RemoteFrame}s.
    @ivar gateway_id: the id of the gateway the error came through, or
        C{None}.
    """

    def __init__(
        self, formatted, type_name=None, module=None, args=(), frames=(), mro=(), gateway_id=None
    ):
        """
        @param formatted: the text.
        @param type_name: the qualified name of the exception's class.
        @param module: the module of that class.
        @param args: the exception's arguments.
        @param frames: the traceback's frames, L{RemoteFrame}s or 4-tuples.
        @param mro: the C{(module, qualified name)} of the class and its bases.
        @param gateway_id: the id of the gateway the error came through.
        """
        self.formatted = formatted
        self.type_name = type_name
        self.module = module
        self.args = tuple(args)
        self.frames = [RemoteFrame(*frame) for frame in frames]
        self.mro = tuple(tuple(entry) for entry in mro)
        self.gateway_id = gateway_id

    def __str__(self):
        return self.formatted

    def __repr__(self):
        if self.type_name is None:
            what = repr(self.formatted)
        else:
            name = self.type_name
            if self.module != "builtins":
                name = "%s.%s" % (self.module, name)
            what = "%s(%s)" % (name, ", ".join(map(repr, self.args)))
        if self.gateway_id is not None:
            what += " from %s" % (self.gateway_id,)
        return "<RemoteError %s>" % (what,)

    def __reduce__(self):
        fields = (self.formatted, self.type_name, self.module, self.args, self.frames, self.mro)
        return (type(self), fields + (self.gateway_id,), self.__dict__)

    def matches(self, *types):
        """
        Whether the remote exception is an instance of one of C{types}: its
        class or one of its bases has that type's name.  A class of the code
        remote_exec sent (module C{"__channelexec__"}) matches a class of
        any module with the same qualified name, so a module sent with
        remote_exec can be matched with its local classes.

        @param types: classes, or names of classes: qualified names
            (C{"ValueError"}, C{"Outer.MyError"}) or qualified names after
            their module (C{"builtins.ValueError"}, C{"mymod.MyError"}).
        """
        for wanted in types:
            if isinstance(wanted, str):
                for module, name in self.mro:
                    if wanted == name or wanted == module + "." + name:
                        return True
            elif isinstance(wanted, type):
                for module, name in self.mro:
                    if name == wanted.__qualname__ and module in (wanted.__module__, EXEC_MODULE):
                        return True
            else:
                raise TypeError("matches() takes classes and names, not %r" % (wanted,))
        return False


class TimeoutError(builtins.TimeoutError):
    """Waiting on a channel took longer than the timeout given."""


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid frame stream."""


# ---------------------------------------------------------------------------
# Serializer
#
# Each item is a tag byte followed by its body.  Containers carry a count and
# then their elements.  Decoding never runs code: it only builds the listed
# builtin types, and every length is checked against the bytes that remain.
# ---------------------------------------------------------------------------

_NONE = b"N"
_TRUE = b"T"
_FALSE = b"F"
T_INT = 0x69  # i: signed 32-bit int
T_BIGINT = 0x49  # I: length-prefixed two's complement int
T_FLOAT = 0x66  # f
T_COMPLEX = 0x63  # c
T_STR = 0x73  # s
T_BYTES = 0x62  # b
T_BYTEARRAY = 0x42  # B
T_LIST = 0x6C  # l
T_TUPLE = 0x74  # t
T_DICT = 0x64  # d
T_SET = 0x53  # S
T_FROZENSET = 0x5A  # Z
T_CHANNEL = 0x43  # C
T_NAMED = 0x6E  # n: a type's name, then its state (see register_type)
T_NONE = 0x4E
T_TRUE = 0x54
T_FALSE = 0x46

_TAG_LEN = struct.Struct(">BI")
_TAG_INT = struct.Struct(">Bi")
_TAG_FLOAT = struct.Struct(">Bd")
_TAG_COMPLEX = struct.Struct(">Bdd")
_U32 = struct.Struct(">I")
#: A CHANNEL_CREDIT payload: bytes of items the receiver has taken.
CREDIT = struct.Struct(">Q")
_I32 = struct.Struct(">i")
_F64 = struct.Struct(">d")
_C128 = struct.Struct(">dd")

_pack_len = _TAG_LEN.pack
_unpack_u32 = _U32.unpack_from
_unpack_i32 = _I32.unpack_from
_unpack_f64 = _F64.unpack_from
_pack_int = _TAG_INT.pack
_pack_float = _TAG_FLOAT.pack


def dumps(obj, channel_id=None):
    """
    Serialize C{obj} to bytes.

    @param channel_id: called with an object of no other supported type,
        to get its id if it is a channel (C{None} if not), so channels can
        travel inside items; without it a channel is refused.
    @raise DumpError: for a type outside the supported set, or nesting
        deeper than L{MAX_DEPTH}.
    """
    parts = []
    _dump(obj, parts.append, channel_id, 0)
    return b"".join(parts)


def dumps_parts(obj, channel_id=None):
    """
    Serialize C{obj} like L{dumps}, as a list of byte strings to be written
    one after the other: a large C{bytes} item stays a part of its own, so
    it is not copied into a joined buffer before it is written.
    """
    parts = []
    _dump(obj, parts.append, channel_id, 0)
    if len(parts) == 2 and len(parts[1]) >= _NO_JOIN_SIZE:
        return parts
    return [b"".join(parts)]


_NO_JOIN_SIZE = 65536


def _dump(obj, append, channel_id, depth):
    t = type(obj)
    if t is str:
        b = obj.encode("utf-8", "surrogatepass")
        append(_pack_len(T_STR, len(b)) + b)
    elif t is int:
        if -0x80000000 <= obj <= 0x7FFFFFFF:
            append(_pack_int(T_INT, obj))
        else:
            n = (obj.bit_length() + 8) // 8
            append(_pack_len(T_BIGINT, n) + obj.to_bytes(n, "big", signed=True))
    elif obj is None:
        append(_NONE)
    elif t is bool:
        append(_TRUE if obj else _FALSE)
    elif t is float:
        append(_pack_float(T_FLOAT, obj))
    elif t is bytes:
        append(_pack_len(T_BYTES, len(obj)))
        append(obj)
    elif t is list or t is tuple or t is set or t is frozenset:
        if depth >= MAX_DEPTH:
            raise DumpError("item nests deeper than %d levels" % MAX_DEPTH)
        append(_pack_len(_CONTAINER_TAGS[t], len(obj)))
        depth += 1
        # Leaves are inlined: a call per element would cost more than the
        # encoding itself.
        for x in obj:
            tx = type(x)
            if tx is str:
                b = x.encode("utf-8", "surrogatepass")
                append(_pack_len(T_STR, len(b)) + b)
            elif tx is int and -0x80000000 <= x <= 0x7FFFFFFF:
                append(_pack_int(T_INT, x))
            elif tx is float:
                append(_pack_float(T_FLOAT, x))
            else:
                _dump(x, append, channel_id, depth)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise DumpError("item nests deeper than %d levels" % MAX_DEPTH)
        append(_pack_len(T_DICT, len(obj)))
        depth += 1
        for k, v in obj.items():
            if type(k) is str:
                b = k.encode("utf-8", "surrogatepass")
                append(_pack_len(T_STR, len(b)) + b)
            else:
                _dump(k, append, channel_id, depth)
            _dump(v, append, channel_id, depth)
    elif t is complex:
        append(_TAG_COMPLEX.pack(T_COMPLEX, obj.real, obj.imag))
    elif t is bytearray:
        append(_pack_len(T_BYTEARRAY, len(obj)))
        append(bytes(obj))
    else:
        named = _NAMED_BY_TYPE.get(t)
        if named is None:
            cid = None if channel_id is None else channel_id(obj)
            if cid is not None:
                append(_pack_len(T_CHANNEL, cid))
                return
            named = _stdlib_named(t)
        if depth >= MAX_DEPTH:
            raise DumpError("item nests deeper than %d levels" % MAX_DEPTH)
        name, to_state = named
        append(_pack_len(T_NAMED, len(name)) + name)
        _dump(to_state(obj), append, channel_id, depth + 1)


_CONTAINER_TAGS = {list: T_LIST, tuple: T_TUPLE, set: T_SET, frozenset: T_FROZENSET}


def loads(data, channel_factory=None):
    """
    Rebuild an item from bytes made by L{dumps}.

    @param channel_factory: called with a channel id to make the channel
        object for a serialized channel; without it a channel is refused.
    @raise LoadError: for anything that is not exactly one valid item.
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytearray, memoryview)):
            raise LoadError("loads() takes bytes, not %s" % type(data).__name__)
        view = memoryview(data)
        if len(view) > 1024 and view[0] == T_BYTES and _unpack_u32(view, 1)[0] == len(view) - 5:
            return bytes(view[5:])  # a lone large bytes item: one copy only
        data = bytes(view)
    try:
        obj, pos = _load(data, 0, channel_factory, 0)
    except DataFormatError:
        raise
    except (
        struct.error,
        IndexError,
        ValueError,
        TypeError,
        OverflowError,
        UnicodeError,
        RecursionError,
        MemoryError,
    ) as e:
        raise LoadError("malformed serialized data: %s: %s" % (type(e).__name__, e))
    if pos != len(data):
        raise LoadError("malformed serialized data: %d trailing bytes" % (len(data) - pos))
    return obj


def dump(file, obj):
    """Write L{dumps}C{(obj)} to the binary C{file}."""
    file.write(dumps(obj))


#: Body sizes of the tags whose body has a fixed size.
_FIXED_BODY = {T_NONE: 0, T_TRUE: 0, T_FALSE: 0, T_INT: 4, T_FLOAT: 8, T_COMPLEX: 16, T_CHANNEL: 4}
#: Tags whose body is a length and that many bytes.
_SIZED_BODY = (T_STR, T_BYTES, T_BYTEARRAY, T_BIGINT)
#: Containers: how many items each counted element stands for.
_ELEMENTS = {T_LIST: 1, T_TUPLE: 1, T_SET: 1, T_FROZENSET: 1, T_DICT: 2}


def load(file):
    """
    Read one item written by L{dump} (or L{dumps}) from the binary C{file},
    and no byte more, so items written one after the other read back one
    by one.

    @raise EOFError: if the file ends before the item does.
    @raise LoadError: for malformed data.
    """
    parts = []

    def read(n):
        data = file.read(n) if n else b""
        if len(data) != n:
            raise EOFError("the file ends inside a serialized item")
        parts.append(data)
        return data

    todo = 1  # items still to read
    while todo:
        todo -= 1
        tag = read(1)[0]
        if tag in _FIXED_BODY:
            read(_FIXED_BODY[tag])
        elif tag in _SIZED_BODY:
            read(_unpack_u32(read(4))[0])
        elif tag in _ELEMENTS:
            todo += _ELEMENTS[tag] * _unpack_u32(read(4))[0]
        elif tag == T_NAMED:
            read(_unpack_u32(read(4))[0])
            todo += 1  # the state
        else:
            raise LoadError("malformed serialized data: unknown tag 0x%02x" % tag)
    return loads(b"".join(parts))


def _load(data, pos, channel_factory, depth):
    tag = data[pos]
    pos += 1
    if tag == T_STR:
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        end = pos + n
        if end > len(data):
            raise LoadError("malformed serialized data: str runs past the end")
        return data[pos:end].decode("utf-8", "surrogatepass"), end
    if tag == T_INT:
        return _I32.unpack_from(data, pos)[0], pos + 4
    if tag == T_NONE:
        return None, pos
    if tag == T_TRUE:
        return True, pos
    if tag == T_FALSE:
        return False, pos
    if tag == T_FLOAT:
        return _F64.unpack_from(data, pos)[0], pos + 8
    if tag == T_BYTES or tag == T_BYTEARRAY or tag == T_BIGINT:
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        end = pos + n
        if end > len(data):
            raise LoadError("malformed serialized data: item runs past the end")
        if tag == T_BYTES:
            return data[pos:end], end
        if tag == T_BYTEARRAY:
            return bytearray(data[pos:end]), end
        if n == 0:
            raise LoadError("malformed serialized data: empty big int")
        return int.from_bytes(data[pos:end], "big", signed=True), end
    if tag in _SEQUENCE_TAGS:
        if depth >= MAX_DEPTH:
            raise LoadError("serialized data nests deeper than %d levels" % MAX_DEPTH)
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if n > len(data) - pos:
            raise LoadError("malformed serialized data: count %d exceeds the data" % n)
        depth += 1
        items = []
        append = items.append
        size = len(data)
        for _ in range(n):
            # Leaves are inlined, as in _dump.
            t = data[pos]
            if t == T_STR:
                start = pos + 5
                pos = start + _unpack_u32(data, pos + 1)[0]
                if pos > size:
                    raise LoadError("malformed serialized data: str runs past the end")
                append(data[start:pos].decode("utf-8", "surrogatepass"))
            elif t == T_INT:
                append(_unpack_i32(data, pos + 1)[0])
                pos += 5
            elif t == T_FLOAT:
                append(_unpack_f64(data, pos + 1)[0])
                pos += 9
            else:
                x, pos = _load(data, pos, channel_factory, depth)
                append(x)
        if tag == T_LIST:
            return items, pos
        return _SEQUENCE_TAGS[tag](items), pos
    if tag == T_DICT:
        if depth >= MAX_DEPTH:
            raise LoadError("serialized data nests deeper than %d levels" % MAX_DEPTH)
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        if 2 * n > len(data) - pos:
            raise LoadError("malformed serialized data: count %d exceeds the data" % n)
        depth += 1
        d = {}
        size = len(data)
        for _ in range(n):
            if data[pos] == T_STR:
                start = pos + 5
                pos = start + _unpack_u32(data, pos + 1)[0]
                if pos > size:
                    raise LoadError("malformed serialized data: str runs past the end")
                k = data[start:pos].decode("utf-8", "surrogatepass")
            else:
                k, pos = _load(data, pos, channel_factory, depth)
            d[k], pos = _load(data, pos, channel_factory, depth)
        return d, pos
    if tag == T_COMPLEX:
        re, im = _C128.unpack_from(data, pos)
        return complex(re, im), pos + 16
    if tag == T_CHANNEL:
        (cid,) = _U32.unpack_from(data, pos)
        if channel_factory is None:
            raise LoadError("serialized data holds a channel, but no gateway is there to own it")
        return channel_factory(cid), pos + 4
    if tag == T_NAMED:
        if depth >= MAX_DEPTH:
            raise LoadError("serialized data nests deeper than %d levels" % MAX_DEPTH)
        (n,) = _U32.unpack_from(data, pos)
        pos += 4
        end = pos + n
        if end > len(data):
            raise LoadError("malformed serialized data: type name runs past the end")
        name = data[pos:end].decode("utf-8")
        from_state = _NAMED_BY_NAME.get(name) or _stdlib_from_state(name)
        state, pos = _load(data, end, channel_factory, depth + 1)
        try:
            return from_state(state), pos
        except Exception as e:
            raise LoadError(
                "can't rebuild a %r from the state sent: %s: %s" % (name, type(e).__name__, e)
            )
    raise LoadError("malformed serialized data: unknown tag 0x%02x at offset %d" % (tag, pos - 1))


_SEQUENCE_TAGS = {T_LIST: list, T_TUPLE: tuple, T_SET: set, T_FROZENSET: frozenset}


# ---------------------------------------------------------------------------
# Named types
#
# An object of any other type travels as T_NAMED: the name its type is
# registered under, then its state, an item of its own.  Each side fills its
# table explicitly, so the bytes of a peer only ever choose among the
# rebuilders this side registered.  The standard library's types are named
# too; their modules are imported only when an item needs them, since most
# remote runtimes never do and each import costs start-up time.
# ---------------------------------------------------------------------------

#: Exact class -> (its name as UTF-8, to_state).
_NAMED_BY_TYPE = {}
#: Name -> from_state.
_NAMED_BY_NAME = {}
_named_lock = threading.Lock()


def register_type(name, cls, to_state, from_state):
    """
    Teach the serializer a type: an object whose type is exactly C{cls}
    travels as C{name} and C{to_state(obj)}, which must be serializable; the
    receiving side, which must have registered C{name} too, rebuilds it with
    C{from_state(state)}.  Registering a name again replaces it.

    @param name: the name on the wire; names in the C{datetime.},
        C{decimal.}, C{uuid.} and C{pathlib.} namespaces are reserved.
    @param cls: the class; subclasses need registering on their own.
    @param to_state: called with an object of C{cls}.
    @param from_state: called with what C{to_state} returned.  It runs
        while the item is received, so it must not block; whatever it
        raises becomes a L{LoadError}.
    @raise ValueError: for a reserved name, a type the serializer sends
        itself, or a class already registered under another name.
    """
    if type(name) is not str or not name:
        raise TypeError("a type's name must be a non-empty str, not %r" % (name,))
    if not isinstance(cls, type):
        raise TypeError("register_type() takes a class, not %r" % (cls,))
    if not callable(to_state) or not callable(from_state):
        raise TypeError("to_state and from_state must be callables")
    _refuse_reserved(name)
    _add_imported_stdlib_types()
    if cls in _SENT_AS_ITSELF:
        raise ValueError("%s is sent as itself and cannot be registered" % cls.__qualname__)
    with _named_lock:
        known = _NAMED_BY_TYPE.get(cls)
        if known is not None and known[0] != name.encode("utf-8"):
            raise ValueError(
                "%s.%s is sent as %r already"
                % (cls.__module__, cls.__qualname__, known[0].decode("utf-8"))
            )
        if name in _NAMED_BY_NAME:
            _forget_name(name)
        _NAMED_BY_NAME[name] = from_state
        _NAMED_BY_TYPE[cls] = (name.encode("utf-8"), to_state)


def unregister_type(name):
    """
    Forget a type given to L{register_type}: its objects can no longer be
    sent, nor items naming it received.

    @param name: the name it was registered under.
    @raise KeyError: if no type is registered under C{name}.
    @raise ValueError: for a reserved name.
    """
    _refuse_reserved(name)
    with _named_lock:
        if name not in _NAMED_BY_NAME:
            raise KeyError(name)
        _forget_name(name)


def _forget_name(name):
    del _NAMED_BY_NAME[name]
    encoded = name.encode("utf-8")
    for cls, (known, _) in list(_NAMED_BY_TYPE.items()):
        if known == encoded:
            del _NAMED_BY_TYPE[cls]


def _refuse_reserved(name):
    if name.partition(".")[0] in _STDLIB_TYPES:
        raise ValueError("the name %r is reserved for the standard library's types" % (name,))


def _stdlib_named(t):
    """The name and to_state of the standard library type C{t}, or L{DumpError}."""
    _add_imported_stdlib_types()
    named = _NAMED_BY_TYPE.get(t)
    if named is None:
        raise DumpError(
            "can't serialize an object of type %s.%s: only None, bool, int, float, "
            "complex, str, bytes, bytearray, list, tuple, dict, set, frozenset, "
            "datetime, date, time, timedelta, timezone, Decimal, UUID, PurePosixPath, "
            "PureWindowsPath, channels and types given to register_type() on both "
            "sides can be sent" % (t.__module__, t.__qualname__)
        )
    return named


def _stdlib_from_state(name):
    """The from_state of a standard library type's C{name}, or L{LoadError}."""
    module = name.partition(".")[0]
    if module in _STDLIB_PENDING:
        _add_stdlib_types(module)
    from_state = _NAMED_BY_NAME.get(name)
    if from_state is None:
        raise LoadError(
            "serialized data holds a %r, a type not registered here (see register_type)" % (name,)
        )
    return from_state


def _add_imported_stdlib_types():
    # An object of a standard library type means its module is imported:
    # adding the types of the imported modules finds it, and imports nothing.
    for module in tuple(_STDLIB_PENDING):
        if module in sys.modules:
            _add_stdlib_types(module)


def _add_stdlib_types(module):
    for name, classes, to_state, from_state in _STDLIB_TYPES[module]():
        _NAMED_BY_NAME[name] = from_state
        for cls in classes:
            _NAMED_BY_TYPE[cls] = (name.encode("utf-8"), to_state)
    _STDLIB_PENDING.discard(module)


def _datetime_types():
    import datetime

    timezone = datetime.timezone
    microsecond = datetime.timedelta(microseconds=1)

    def tz_state(obj):
        tz = obj.tzinfo
        if tz is None or type(tz) in _NAMED_BY_TYPE:
            return tz
        raise DumpError(
            "can't serialize a %s whose tzinfo is a %s.%s: only a datetime.timezone (a "
            "fixed offset) or a type given to register_type() can be sent"
            % (type(obj).__name__, type(tz).__module__, type(tz).__qualname__)
        )

    def datetime_state(o):
        return (
            o.year,
            o.month,
            o.day,
            o.hour,
            o.minute,
            o.second,
            o.microsecond,
            tz_state(o),
            o.fold,
        )

    def datetime_from_state(state):
        year, month, day, hour, minute, second, microsecond, tz, fold = state
        return datetime.datetime(year, month, day, hour, minute, second, microsecond, tz, fold=fold)

    def time_state(o):
        return (o.hour, o.minute, o.second, o.microsecond, tz_state(o), o.fold)

    def time_from_state(state):
        hour, minute, second, microsecond, tz, fold = state
        return datetime.time(hour, minute, second, microsecond, tz, fold=fold)

    def date_from_state(state):
        year, month, day = state
        return datetime.date(year, month, day)

    def timedelta_from_state(state):
        days, seconds, microseconds = state
        return datetime.timedelta(days, seconds, microseconds)

    def timezone_state(o):
        # (offset,) or (offset, name), as pickle has it, so timezone.utc
        # comes back as itself; the offset in microseconds is shorter than
        # a timedelta.
        offset, *name = o.__getinitargs__()
        return (offset // microsecond, *name)

    def timezone_from_state(state):
        microseconds, *name = state
        return timezone(datetime.timedelta(microseconds=microseconds), *name)

    return (
        ("datetime.datetime", (datetime.datetime,), datetime_state, datetime_from_state),
        ("datetime.date", (datetime.date,), lambda o: (o.year, o.month, o.day), date_from_state),
        ("datetime.time", (datetime.time,), time_state, time_from_state),
        (
            "datetime.timedelta",
            (datetime.timedelta,),
            lambda o: (o.days, o.seconds, o.microseconds),
            timedelta_from_state,
        ),
        ("datetime.timezone", (timezone,), timezone_state, timezone_from_state),
    )


def _decimal_types():
    import decimal

    return (("decimal.Decimal", (decimal.Decimal,), str, decimal.Decimal),)


def _uuid_types():
    import uuid

    return (("uuid.UUID", (uuid.UUID,), lambda o: o.bytes, lambda s: uuid.UUID(bytes=s)),)


def _pathlib_types():
    import pathlib

    # A concrete path names a file on the sender's machine: it arrives as
    # the pure path of its flavour, which means the same on any system.
    return (
        (
            "pathlib.PurePosixPath",
            (pathlib.PurePosixPath, pathlib.PosixPath),
            str,
            pathlib.PurePosixPath,
        ),
        (
            "pathlib.PureWindowsPath",
            (pathlib.PureWindowsPath, pathlib.WindowsPath),
            str,
            pathlib.PureWindowsPath,
        ),
    )


#: Module -> its types, as (name, classes, to_state, from_state).
_STDLIB_TYPES = {
    "datetime": _datetime_types,
    "decimal": _decimal_types,
    "uuid": _uuid_types,
    "pathlib": _pathlib_types,
}
#: The modules whose types are not in the tables yet.
_STDLIB_PENDING = set(_STDLIB_TYPES)
#: The types with tags of their own.
_SENT_AS_ITSELF = frozenset(
    (
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        bytearray,
        list,
        tuple,
        dict,
        set,
        frozenset,
    )
)


def check_header(msgtype, length, max_frame_size):
    """
    Validate a frame header; return None or raise L{ProtocolError}.
    """
    if msgtype not in MESSAGE_NAMES:
        raise ProtocolError("unknown message type %d" % msgtype)
    if length > max_frame_size:
        raise ProtocolError(
            "frame of %d bytes exceeds the limit of %d bytes" % (length, max_frame_size)
        )


class FrameBuffer(object):
    """
    The receive side of the frame stream, on both ends of a gateway: bytes
    are read straight into L{room}, and L{filled} hands each whole frame to
    C{deliver(msgtype, channel_id, payload)}.

    One buffer is reused for every read, which costs far less than fresh
    memory for each; a payload is a view into it, valid only during the
    C{deliver} call, so it is copied once, when it is decoded.  A C{deliver}
    that returns true stops the parsing.

    The room offered for each read adapts: it doubles while reads fill it
    (a stream of data: fewer, larger reads) and halves when they use little
    of it (so an idle gateway holds little memory), between 16 and 64 KiB;
    the buffer grows to hold the frame being read plus that room or the last
    frame's size, whichever is larger.  So a stream of small frames is read
    64 KiB at a time and large frames one or two at a time.  Reads that size
    keep the buffer and the pipe's pages in the CPU's cache and hold the
    pipe's lock (which the writer waits for) briefly: with reads of up to
    1 MiB, 64 KiB items moved at 0.9 to 1.0 GB/s here, against 1.3 to 1.9
    GB/s now.

    @param expect_first: the message type the first frame must have, if any.
    """

    MIN_ROOM = 16384
    MAX_ROOM = 65536
    SHRINK_ABOVE = 4 * 1024 * 1024
    GROW_STEP = 4 * 1024 * 1024

    def __init__(self, max_frame_size, deliver, expect_first=None):
        self._max_frame_size = max_frame_size
        self._deliver = deliver
        self._expect_first = expect_first
        self._set_buffer(bytearray(self.MIN_ROOM))
        self._filled = 0
        self._needed = HEADER_SIZE
        self._room = self.MIN_ROOM
        self._offered = 0
        self._last_frame = 0

    def _set_buffer(self, buffer):
        # One view for the buffer's lifetime: making views per read and per
        # frame is a measurable part of a small round trip.
        self._buffer = buffer
        self._view = memoryview(buffer)

    def pending(self):
        """How many bytes of an incomplete frame are buffered."""
        return self._filled

    def room(self):
        """A writable view of the free end of the buffer, large enough for the next frame."""
        need = self._needed
        if need - self._filled > self.GROW_STEP:
            # A large frame announced: the buffer grows with what arrives
            # (to twice what it holds, at the least by GROW_STEP), so that a
            # header claiming 200 MiB allocates nothing like it until the
            # bytes come.
            need = min(need, max(2 * self._filled, self._filled + self.GROW_STEP))
        need = max(need, self._filled + max(self._room, self._last_frame))
        if len(self._buffer) < need:
            grown = bytearray(need)
            grown[: self._filled] = self._view[: self._filled]
            self._set_buffer(grown)
        self._offered = len(self._buffer) - self._filled
        return self._view[self._filled :]

    def filled(self, n):
        """
        C{n} bytes were read into L{room}: deliver the frames now complete.
        Return true if C{deliver} asked to stop.

        @raise ProtocolError: for a malformed frame header.
        """
        if n >= self._offered and self._room < self.MAX_ROOM:
            self._room *= 2
        elif n < self._offered // 4 and self._room > self.MIN_ROOM:
            self._room //= 2
        self._filled += n
        end = self._filled
        if end < self._needed:
            return False
        pos = 0
        needed = HEADER_SIZE
        stop = False
        view = self._view
        while end - pos >= HEADER_SIZE:
            msgtype, cid, length = HEADER.unpack_from(view, pos)
            if self._expect_first is not None:
                if msgtype != self._expect_first:
                    raise ProtocolError(
                        "expected a %s frame, got %r"
                        % (MESSAGE_NAMES[self._expect_first].lower(), bytes(view[pos : pos + 80]))
                    )
                if length > MAX_FIRST_FRAME_SIZE:
                    # A hello is a few hundred bytes: a peer that claims
                    # more is not a txexecnet runtime, and is not waited for.
                    raise ProtocolError(
                        "a %s frame of %d bytes announced; it is at most %d"
                        % (MESSAGE_NAMES[msgtype].lower(), length, MAX_FIRST_FRAME_SIZE)
                    )
                self._expect_first = None
            if msgtype not in MESSAGE_NAMES or length > self._max_frame_size:
                check_header(msgtype, length, self._max_frame_size)
            start = pos + HEADER_SIZE
            if end - start < length:
                needed = HEADER_SIZE + length
                break
            pos = start + length
            self._last_frame = HEADER_SIZE + length
            if self._deliver(msgtype, cid, view[start:pos]):
                stop = True
                break
        rest = end - pos
        if rest and pos:
            view[:rest] = view[pos:end]
        self._filled = rest
        self._needed = needed
        if len(self._buffer) > self.SHRINK_ABOVE and rest < self.MIN_ROOM:
            self._set_buffer(bytearray(self._view[:rest]) + bytearray(self.MIN_ROOM))
        return stop


# ---------------------------------------------------------------------------
# execnet's serialization format
#
# What execnet's dumps() writes and its loads() reads, for code written for
# execnet: a version byte, then a program for a stack machine (push an item,
# fill the container below it, build a tuple or set of the items on top)
# ended by STOP.  txexecnet's channels do not use it.  The decoder only builds
# the listed builtin types, grows containers with the items that arrive
# rather than with the sizes they claim, and turns anything inconsistent into
# a LoadError.
# ---------------------------------------------------------------------------

EXECNET_DUMPFORMAT_VERSION = b"\x02"


class ExecnetOpcode(object):
    """The opcodes of execnet's serialization format, by name."""

    BUILDTUPLE = b"@"
    BYTES = b"A"
    CHANNEL = b"B"
    FALSE = b"C"
    FLOAT = b"D"
    FROZENSET = b"E"
    INT = b"F"
    LONG = b"G"
    LONGINT = b"H"
    LONGLONG = b"I"
    NEWDICT = b"J"
    NEWLIST = b"K"
    NONE = b"L"
    PY2STRING = b"M"
    PY3STRING = b"N"
    SET = b"O"
    SETITEM = b"P"
    STOP = b"Q"
    TRUE = b"R"
    UNICODE = b"S"
    COMPLEX = b"T"


_X = ExecnetOpcode
_X_INT_MIN, _X_INT_MAX = -0x80000000, 0x7FFFFFFF


def execnet_dumps_internal(obj, channel_id=None):
    """
    C{obj} in execnet's format without the version byte, as execnet's
    C{dumps_internal} writes it.

    @param channel_id: as for L{dumps}; without it a channel is refused.
    @raise DumpError: for a type execnet cannot send, nesting deeper than
        L{MAX_DEPTH}, or a string that is not UTF-8 encodable.
    """
    parts = []
    _execnet_dump(obj, parts.append, channel_id, 0)
    parts.append(_X.STOP)
    return b"".join(parts)


def _execnet_sized(op, data):
    if len(data) > _X_INT_MAX:
        raise DumpError("an item of %d bytes is too long for execnet's format" % len(data))
    return op + _I32.pack(len(data)) + data


def _execnet_dump(obj, append, channel_id, depth):
    t = type(obj)
    if obj is None:
        append(_X.NONE)
    elif t is bool:
        append(_X.TRUE if obj else _X.FALSE)
    elif t is int:
        if _X_INT_MIN <= obj <= _X_INT_MAX:
            append(_X.INT + _I32.pack(obj))
        else:
            try:
                digits = str(obj).encode("ascii")
            except ValueError as e:  # past the interpreter's limit on digits
                raise DumpError("can't serialize the int: %s" % e)
            append(_execnet_sized(_X.LONGINT, digits))
    elif t is float:
        append(_X.FLOAT + _F64.pack(obj))
    elif t is complex:
        append(_X.COMPLEX + _C128.pack(obj.real, obj.imag))
    elif t is bytes:
        append(_execnet_sized(_X.BYTES, obj))
    elif t is str:
        try:
            data = obj.encode("utf-8")
        except UnicodeEncodeError:
            raise DumpError("strings must be utf-8 encodable")
        append(_execnet_sized(_X.PY3STRING, data))
    elif t in _EXECNET_CONTAINERS:
        if depth >= MAX_DEPTH:
            raise DumpError("item nests deeper than %d levels" % MAX_DEPTH)
        depth += 1
        if t is list:
            append(_X.NEWLIST + _I32.pack(len(obj)))
            for i, x in enumerate(obj):
                append(_X.INT + _I32.pack(i))
                _execnet_dump(x, append, channel_id, depth)
                append(_X.SETITEM)
        elif t is dict:
            append(_X.NEWDICT)
            for k, v in obj.items():
                _execnet_dump(k, append, channel_id, depth)
                _execnet_dump(v, append, channel_id, depth)
                append(_X.SETITEM)
        else:
            for x in obj:
                _execnet_dump(x, append, channel_id, depth)
            append(_EXECNET_CONTAINERS[t] + _I32.pack(len(obj)))
    else:
        cid = None if channel_id is None else channel_id(obj)
        if cid is None:
            raise DumpError("can't serialize %s" % (t,))
        append(_X.CHANNEL + _I32.pack(cid))


_EXECNET_CONTAINERS = {
    list: _X.NEWLIST,
    dict: _X.NEWDICT,
    tuple: _X.BUILDTUPLE,
    set: _X.SET,
    frozenset: _X.FROZENSET,
}


class _ExecnetList(list):
    """A list being filled, and the length its NEWLIST announced."""

    __slots__ = ("expected",)


class ExecnetUnserializer(object):
    """
    Reads items in execnet's format from a binary stream, as execnet's
    C{Unserializer}: each L{load} reads one item, up to its STOP, and no
    byte more.
    """

    def __init__(self, stream, strconfig=None, channel_factory=None):
        """
        @param stream: has C{read(n)}.
        @param strconfig: C{(py2str_as_py3str, py3str_as_py2str)}: load
            Python 2 strings as C{str}, and Python 3 strings as C{bytes}.
        @param channel_factory: as for L{loads}; without it a channel is
            refused.
        """
        self.stream = stream
        self.py2str_as_py3str, self.py3str_as_py2str = strconfig or (False, False)
        self.channel_factory = channel_factory

    def load(self, versioned=False):
        """
        Read one item; C{versioned}: after the version byte.

        @raise EOFError: if the stream ends before the item does.
        @raise LoadError: for malformed data or another format version.
        """
        if versioned:
            version = self._read(1)
            if version != EXECNET_DUMPFORMAT_VERSION:
                raise LoadError("wrong dumpformat version %r" % version)
        stack = []
        try:
            while True:
                op = self.stream.read(1)
                if not op:
                    raise EOFError("the stream ends inside a serialized item")
                if op == _X.STOP:
                    if len(stack) != 1:
                        raise LoadError("%d items before STOP; one was expected" % len(stack))
                    return _execnet_finished(stack.pop())
                self._step(op, stack)
        except (TypeError, ValueError, UnicodeError, OverflowError, struct.error) as e:
            raise LoadError("malformed serialized data: %s: %s" % (type(e).__name__, e))

    def _read(self, n):
        data = self.stream.read(n)
        if len(data) != n:
            raise EOFError("the stream ends inside a serialized item")
        return data

    def _int4(self):
        return _I32.unpack(self._read(4))[0]

    def _sized(self):
        n = self._int4()
        if n < 0:
            raise LoadError("malformed serialized data: a length of %d" % n)
        return self._read(n)

    def _step(self, op, stack):
        push = stack.append
        if op == _X.INT or op == _X.LONG:
            push(self._int4())
        elif op == _X.NONE:
            push(None)
        elif op == _X.TRUE:
            push(True)
        elif op == _X.FALSE:
            push(False)
        elif op == _X.PY3STRING:
            data = self._sized()
            push(data if self.py3str_as_py2str else data.decode("utf-8"))
        elif op == _X.BYTES:
            push(self._sized())
        elif op == _X.FLOAT:
            push(_F64.unpack(self._read(8))[0])
        elif op == _X.NEWLIST:
            new = _ExecnetList()
            new.expected = self._int4()
            push(new)
        elif op == _X.NEWDICT:
            push({})
        elif op == _X.SETITEM:
            if len(stack) < 3:
                raise LoadError("malformed serialized data: not enough items for SETITEM")
            value = _execnet_finished(stack.pop())
            key = _execnet_finished(stack.pop())
            target = stack[-1]
            if type(target) is dict:
                target[key] = value
            elif type(target) is _ExecnetList and key == len(target) < target.expected:
                target.append(value)
            elif type(target) is _ExecnetList:
                raise LoadError(
                    "malformed serialized data: item %r of a list of %d set after %d"
                    % (key, target.expected, len(target))
                )
            else:
                raise LoadError(
                    "malformed serialized data: SETITEM on a %s" % type(target).__name__
                )
        elif op in _EXECNET_BUILT:
            n = self._int4()
            if not 0 <= n <= len(stack):
                raise LoadError(
                    "malformed serialized data: %d items for %d on the stack" % (n, len(stack))
                )
            items = [_execnet_finished(x) for x in stack[len(stack) - n :]]
            del stack[len(stack) - n :]
            push(_EXECNET_BUILT[op](items))
        elif op == _X.LONGINT or op == _X.LONGLONG:
            push(int(self._sized()))
        elif op == _X.COMPLEX:
            push(complex(*_C128.unpack(self._read(16))))
        elif op == _X.PY2STRING:
            data = self._sized()
            push(data.decode("latin-1") if self.py2str_as_py3str else data)
        elif op == _X.UNICODE:
            push(self._sized().decode("utf-8"))
        elif op == _X.CHANNEL:
            cid = self._int4()
            if self.channel_factory is None:
                raise LoadError("a channel, where none can be made")
            push(self.channel_factory(cid))
        else:
            raise LoadError("unknown opcode %r - wire protocol corruption?" % (op,))


_EXECNET_BUILT = {_X.BUILDTUPLE: tuple, _X.SET: set, _X.FROZENSET: frozenset}


def _execnet_finished(item):
    if type(item) is _ExecnetList:
        if len(item) != item.expected:
            raise LoadError(
                "malformed serialized data: a list of %d items got %d" % (item.expected, len(item))
            )
        return list(item)
    return item


class _BytesReader(object):
    """C{read(n)} over bytes, never past their end."""

    __slots__ = ("data", "pos")

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, n):
        start = self.pos
        self.pos = min(start + n, len(self.data))
        return self.data[start : self.pos]


def execnet_dumps(obj):
    """C{obj} in execnet's format, as execnet's C{dumps} writes it."""
    return EXECNET_DUMPFORMAT_VERSION + execnet_dumps_internal(obj)


def execnet_loads(data, py2str_as_py3str=False, py3str_as_py2str=False):
    """
    Rebuild an object from bytes in execnet's format (as its C{loads}, but
    bytes after the item are an error, not ignored).

    @raise LoadError: for malformed or truncated data, or another version.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LoadError("loads() takes bytes, not %s" % type(data).__name__)
    stream = _BytesReader(bytes(data))
    try:
        obj = ExecnetUnserializer(stream, (py2str_as_py3str, py3str_as_py2str)).load(versioned=True)
    except EOFError as e:
        raise LoadError("malformed serialized data: %s" % e)
    if stream.pos != len(stream.data):
        raise LoadError(
            "malformed serialized data: %d trailing bytes" % (len(stream.data) - stream.pos)
        )
    return obj


def execnet_dump(file, obj):
    """Write L{execnet_dumps}C{(obj)} to the binary C{file}."""
    file.write(execnet_dumps(obj))


def execnet_load(file, py2str_as_py3str=False, py3str_as_py2str=False):
    """
    Read one item in execnet's format from the binary C{file} (as its
    C{load}), and no byte more.

    @raise EOFError: if the file ends before the item does.
    """
    return ExecnetUnserializer(file, (py2str_as_py3str, py3str_as_py2str)).load(versioned=True)


# ---------------------------------------------------------------------------
# Remote errors
#
# A CHANNEL_CLOSE_ERROR payload is a str, the text a channel was closed
# with, or for an exception a dict of _ERROR_KEYS: "text" (the traceback),
# "type" and "module" (its class), "mro" ((module, qualified name) of the
# class and its bases), "args" and "frames" ((filename, lineno, name, line)).
# ---------------------------------------------------------------------------

_ERROR_KEYS = frozenset(["text", "type", "module", "mro", "args", "frames"])

#: Held while the source that remote_exec sent stands in linecache for its
#: file name: concurrent channels share the name "<remote exec>".
_lent_source = threading.Lock()


def error_payload(error, text=None, filename=None, source=None):
    """
    The CHANNEL_CLOSE_ERROR payload that reports the exception C{error}.

    @param text: the text to report instead of the traceback.
    @param filename: the file name the code that failed was compiled with.
    @param source: that code, whose lines the traceback is to show: the
        file it was read from may not exist here, or may have changed.
    """
    if source is None:
        formatted, frames = _traceback_of(error)
    else:
        # Lent to linecache only while the traceback is formatted (every
        # Python's traceback reads lines from there), so the cache does not
        # keep the source of every remote_exec, nor show one channel's lines
        # in another's traceback.
        import linecache

        with _lent_source:
            saved = linecache.cache.get(filename)
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            try:
                formatted, frames = _traceback_of(error)
            finally:
                if saved is None:
                    linecache.cache.pop(filename, None)
                else:
                    linecache.cache[filename] = saved
    if text is None:
        text = formatted
    cls = type(error)
    try:
        return dumps(
            {
                "text": text,
                "type": cls.__qualname__,
                "module": str(cls.__module__),
                "mro": [(str(c.__module__), c.__qualname__) for c in cls.__mro__],
                "args": tuple(_sendable(arg) for arg in error.args),
                "frames": frames,
            }
        )
    except Exception:
        # The exception's class decides what its args are (a property may
        # raise, or not give a tuple): the text at least goes.
        return dumps(text)


def error_text(error):
    """The traceback of C{error} as text, as its L{RemoteError} carries it."""
    return _traceback_of(error)[0]


def _traceback_of(error):
    """The traceback of C{error} as text, and its frames as 4-tuples."""
    import traceback  # only when needed: it costs start-up time

    report = traceback.TracebackException(type(error), error, error.__traceback__)
    frames = [(f.filename, f.lineno, f.name, f.line or None) for f in report.stack]
    return "".join(report.format()), frames


def _sendable(arg):
    """C{arg} if it can be sent over a channel, else its C{repr()}."""
    try:
        dumps(arg)
        return arg
    except DumpError:
        pass
    try:
        return repr(arg)
    except Exception:
        return "<%s object, unrepresentable>" % (type(arg).__name__,)


def error_from_payload(payload, gateway_id=None):
    """
    The L{RemoteError} a CHANNEL_CLOSE_ERROR payload reports.  A payload
    that is not one gives a L{RemoteError} that says so, with the text it
    carries if any: the channel ends, the gateway goes on.

    @param payload: the frame's payload.
    @param gateway_id: the id of the gateway it came through.
    """
    try:
        item = loads(payload)
    except LoadError as e:
        return RemoteError("(undecodable error text: %s)" % (e,), gateway_id=gateway_id)
    if type(item) is str:
        return RemoteError(item, gateway_id=gateway_id)
    why = _malformed_error(item)
    if why is not None:
        text = item.get("text") if type(item) is dict else None
        note = "(malformed error from the other side: %s)" % (why,)
        return RemoteError(
            note if type(text) is not str else text + "\n" + note, gateway_id=gateway_id
        )
    return RemoteError(
        item["text"],
        item["type"],
        item["module"],
        item["args"],
        item["frames"],
        item["mro"],
        gateway_id,
    )


def _malformed_error(item):
    """Why C{item} is not a str or the fields of an exception; C{None} if it is."""
    if type(item) is not dict:
        return "a %s, not a str or a dict" % (type(item).__name__,)
    if set(item) != _ERROR_KEYS:
        return "its keys are %r, not %s" % (sorted(map(repr, item)), ", ".join(sorted(_ERROR_KEYS)))
    for key in ("text", "type", "module"):
        if type(item[key]) is not str:
            return "%s is a %s, not a str" % (key, type(item[key]).__name__)
    if type(item["args"]) not in (list, tuple):
        return "args is a %s, not a tuple" % (type(item["args"]).__name__,)
    mro = item["mro"]
    if type(mro) not in (list, tuple) or not all(
        type(entry) in (list, tuple) and len(entry) == 2 and all(type(n) is str for n in entry)
        for entry in mro
    ):
        return "mro is not a list of (module, name) pairs"
    frames = item["frames"]
    if type(frames) not in (list, tuple) or not all(
        type(frame) in (list, tuple)
        and len(frame) == 4
        and type(frame[0]) is str
        and (frame[1] is None or type(frame[1]) is int)
        and type(frame[2]) is str
        and (frame[3] is None or type(frame[3]) is str)
        for frame in frames
    ):
        return "frames is not a list of (filename, lineno, name, line)"
    return None


# ---------------------------------------------------------------------------
# The remote side of a channel: blocking, thread-safe.
# ---------------------------------------------------------------------------

_ENDMARKER = object()
NO_ENDMARKER_WANTED = object()
#: Put in a receiver's queue to wake it (for a cancel); never received.
_WAKE = object()


class _Undecoded(object):
    """
    An item that did not load when it arrived: remote code that registers
    a type races the items of that type the other side sends at once, so
    the item is loaded again when it is taken, and fails only then.
    """

    __slots__ = ("data", "gateway")

    def __init__(self, data, gateway):
        self.data = data
        self.gateway = gateway

    def load(self):
        return loads(self.data, self.gateway._get_channel)


class Channel(object):
    """
    One end of a channel in the remote interpreter: C{send} and C{receive}
    block, as in execnet.
    """

    def __init__(self, gateway, id):
        self.gateway = gateway
        self.id = id
        self._items = SimpleQueue()
        self._closed = False  # this side will send no more
        self._receiveclosed = threading.Event()  # the other side will send no more
        self._peerclosed = False  # the same, as a plain flag: read for every item sent
        self._remoteerror = None
        # The file name and source of the code run for this channel: its
        # tracebacks, and those of its callbacks, show their lines.
        self._code = (None, None)
        # Set while its code runs, for a client that wants execnet's rule:
        # code does not close its own channel (the runtime does, after it).
        self._close_refused = False
        self._callback = None
        self._endmarker = NO_ENDMARKER_WANTED
        self._lock = threading.Lock()
        self._credited = threading.Condition(self._lock)
        self._window = gateway._window
        self._quarter = self._window >> 2
        # Bytes sent, and bytes the other side has said it has taken: the
        # first written by senders, the second by the thread reading frames
        # only, so neither needs the lock (a sender that loses a race to
        # another overshoots the window by an item; nothing waits for ever).
        self._sent = 0
        self._acked = 0
        # Bytes taken here that the other side has not been told of: those
        # taken by the thread that first received (its own counter, no lock:
        # a lock per item costs more than the rest of a small item's way),
        # and those taken by any other thread (under the lock).  Each is told
        # at a quarter window, so the two together never hold back a whole
        # window without either telling.
        self._receiver = None
        self._untold = 0
        self._untold_others = 0

    def __repr__(self):
        return "<Channel id=%d %s>" % (self.id, "closed" if self.isclosed() else "open")

    def isclosed(self):
        """Whether this channel is closed on this side or by the other."""
        return self._closed or self._peerclosed

    def send(self, item):
        """
        Send C{item} to the other side; wait while the other side holds a
        window's worth of items it has not received yet.
        """
        if self._closed or self._peerclosed:
            raise IOError("cannot send to %r" % (self,))
        gateway = self.gateway
        parts = dumps_parts(item, gateway._channel_id)
        size = len(parts[0]) if len(parts) == 1 else sum(map(len, parts))
        window = self._window
        if window:
            if self._sent - self._acked >= window:
                with self._lock:
                    self._wait_for_window(window)
            self._sent += size
        gateway._send(CHANNEL_DATA, self.id, parts, size)

    def _wait_for_window(self, window):
        """Wait (lock held) until the other side takes items; say so when it is long."""
        waited = 0.0
        while self._sent - self._acked >= window and not self.isclosed():
            if not self.gateway._wait_for_reader(self._credited.wait, WINDOW_WARNING):
                waited += WINDOW_WARNING
                _say(
                    "send() on channel %d has waited %d s: the other side holds %d bytes "
                    "of its items, not received yet (if both sides send before they "
                    "receive, each waits for the other: see the window= spec option)\n"
                    % (self.id, waited, self._sent - self._acked)
                )
        if self.isclosed():
            raise IOError("cannot send to %r" % (self,))

    def _credit(self, size):
        """The other side has taken C{size} bytes of our items."""
        self._acked += size
        with self._lock:
            self._credited.notify_all()

    def _taken(self, size):
        """
        C{size} bytes of items were taken here, by a thread that may not be
        the first receiver: tell the other side every quarter window.
        """
        if not self._quarter:
            return
        with self._lock:
            if self._receiver is None:
                # The first to take an item: from now on it counts alone.
                self._receiver = _get_ident()
                self._untold += size
                if self._untold < self._quarter:
                    return
                size, self._untold = self._untold, 0
            else:
                self._untold_others += size
                if self._untold_others < self._quarter:
                    return
                size, self._untold_others = self._untold_others, 0
        self._tell_taken(size)

    def _tell_taken(self, size):
        try:
            self.gateway._send(CHANNEL_CREDIT, self.id, [CREDIT.pack(size)])
        except IOError:
            pass  # the gateway is closed: no one to tell

    def receive(self, timeout=None):
        """
        Return the next item from the other side; C{EOFError} once it has
        closed, L{RemoteError} if it closed with an error.
        """
        if self._callback is not None:
            raise IOError("cannot receive(), channel has a receiver callback")
        try:
            x = self.gateway._next_item(self._items, timeout)
            while x is _WAKE:
                x = self.gateway._next_item(self._items, timeout)
        except Empty:
            raise TimeoutError("no item after %r seconds" % (timeout,))
        if x is _ENDMARKER:
            self._items.put(x)
            if self._remoteerror is not None:
                raise self._remoteerror
            raise EOFError("channel %d is closed" % self.id)
        if self._quarter:
            if _get_ident() == self._receiver:
                self._untold += x[1]
                if self._untold >= self._quarter:
                    size, self._untold = self._untold, 0
                    self._tell_taken(size)
            else:
                self._taken(x[1])
        item = x[0]
        if type(item) is _Undecoded:
            item = item.load()
        return item

    def __iter__(self):
        return self

    def next(self):
        try:
            return self.receive()
        except EOFError:
            raise StopIteration

    __next__ = next

    def setcallback(self, callback, endmarker=NO_ENDMARKER_WANTED):
        """
        Call C{callback(item)} for each item, in the thread reading the
        gateway's frames (see L{RemoteGateway}),
        starting with those already queued; C{callback(endmarker)} at close.
        """
        with self._lock:
            if self._callback is not None:
                raise IOError("a callback is already set")
            pending = []
            while True:
                try:
                    pending.append(self._items.get_nowait())
                except Empty:
                    break
            self._endmarker = endmarker
            self._callback = callback
        for x in pending:
            if x is _WAKE:
                continue
            if x is _ENDMARKER:
                if endmarker is not NO_ENDMARKER_WANTED:
                    callback(endmarker)
            else:
                item = x[0]
                self._taken(x[1])
                callback(item.load() if type(item) is _Undecoded else item)

    def waitclose(self, timeout=None):
        """
        Wait until the other side has closed; raise L{RemoteError} if it
        closed with an error.
        """
        if not self.gateway._wait_for_reader(self._receiveclosed.wait, timeout):
            raise TimeoutError("channel %d still open after %r seconds" % (self.id, timeout))
        if self._remoteerror is not None:
            raise self._remoteerror

    def close(self, error=None):
        """
        Close this channel on both sides; with C{error}, the other side's
        C{receive()} raises L{RemoteError} carrying that text.

        @raise IOError: if the client asked for execnet's rule that code
            does not close its own channel, and this is it.
        """
        if self._close_refused:
            raise IOError("cannot explicitly close channel within remote_exec")
        self._close(None if error is None else dumps(str(error)))

    def _close(self, error_payload):
        """L{close}, with the CHANNEL_CLOSE_ERROR payload, or C{None}."""
        if self._closed:
            return
        self._closed = True
        if error_payload is not None:
            self.gateway._send(CHANNEL_CLOSE_ERROR, self.id, [error_payload])
        else:
            self.gateway._send(CHANNEL_CLOSE, self.id, [])
        self._local_close()

    def makefile(self, mode="w", proxyclose=False):
        """
        A file on this channel: C{"w"} sends each write as an item, C{"r"}
        reads the items received (strings or bytes) until the close.  With
        C{proxyclose}, closing the file closes the channel.
        """
        return makefile(self, mode, proxyclose)

    def _deliver(self, item, size):
        with self._lock:
            callback = self._callback
            if callback is None:
                self._items.put((item, size))
                return
        try:
            callback(item.load() if type(item) is _Undecoded else item)
        except Exception as e:
            # As in execnet: the channel closes with the error, which the
            # other side's receive() or waitclose() raises.
            self.gateway._log_exception("callback of channel %d failed" % self.id, e)
            self._close(error_payload(e, None, *self._code))
        self._taken(size)

    def _local_close(self, error=None):
        """The other side will send no more (C{error}: its L{RemoteError}); wake receivers."""
        with self._lock:
            if self._receiveclosed.is_set():
                return
            if error is not None:
                self._remoteerror = error
            self._receiveclosed.set()
            self._peerclosed = True
            self._credited.notify_all()
            callback = self._callback
            if callback is None:
                self._items.put(_ENDMARKER)
        if callback is not None and self._endmarker is not NO_ENDMARKER_WANTED:
            callback(self._endmarker)
        self.gateway._forget(self)


class _ExecnetChannelTable(object):
    """A gateway's open channels by id, where execnet keeps them."""

    __slots__ = ("_channels",)

    def __init__(self, channels):
        self._channels = channels


class ChannelFile(object):
    """What both kinds of channel file share: the channel, closing, C{with}."""

    def __init__(self, channel, proxyclose=False):
        self.channel = channel
        self._proxyclose = proxyclose
        self.closed = False

    def isatty(self):
        return False

    def close(self):
        """Close the file; with C{proxyclose}, the channel too."""
        if not self.closed:
            self.closed = True
            if self._proxyclose:
                self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class ChannelFileWrite(ChannelFile):
    """
    A file open for writing whose writes are items sent on a channel (as
    execnet's C{channel.makefile("w")}): C{sys.stdout = channel.makefile("w")}
    sends what is printed.  Works on any channel whose C{send} takes an item.
    """

    def write(self, data):
        if self.closed:
            raise ValueError("write to a closed channel file")
        self.channel.send(data)
        return len(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        """Nothing: each write is sent at once."""


class ChannelFileRead(ChannelFile):
    """
    A file open for reading whose data are the items (strings or bytes) a
    channel receives, until it closes (as execnet's C{makefile("r")}).
    Works on any channel whose C{receive} blocks and raises C{EOFError} at
    the end.
    """

    def __init__(self, channel, proxyclose=False):
        ChannelFile.__init__(self, channel, proxyclose)
        self._buffer = None  # received and not yet read
        self._eof = False

    def _more(self):
        """Receive one more item into the buffer; return whether there was one."""
        if self._eof:
            return False
        try:
            item = self.channel.receive()
        except EOFError:
            self.feed_eof()
            return False
        self.feed(item)
        return True

    def feed(self, item):
        """Add C{item}, received by the caller, to what is to be read."""
        if not isinstance(item, (str, bytes, bytearray)):
            raise TypeError("a channel file reads strings or bytes, not %s" % type(item).__name__)
        self._buffer = item if self._buffer is None else self._buffer + item

    def feed_eof(self):
        """The channel has closed: reads end with what is buffered."""
        self._eof = True

    def at_eof(self):
        """Whether the channel has closed (what is buffered may still be read)."""
        return self._eof

    def pending(self):
        """What has been received and not read yet, without reading it."""
        return self._buffer if self._buffer is not None else ""

    def _take(self, n):
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def read(self, size=-1):
        """Up to C{size} characters or bytes (all, until the close, by default)."""
        if self.closed:
            raise ValueError("read from a closed channel file")
        whole = size is None or size < 0
        while (whole or self._buffer is None or len(self._buffer) < size) and self._more():
            pass
        if self._buffer is None:
            return ""
        return self._take(len(self._buffer) if whole else size)

    def readline(self):
        """The next line, with its line end (empty at the end)."""
        if self.closed:
            raise ValueError("read from a closed channel file")
        while True:
            if self._buffer is not None:
                end = self._buffer.find(b"\n" if not isinstance(self._buffer, str) else "\n")
                if end >= 0:
                    return self._take(end + 1)
            if not self._more():
                return self._take(len(self._buffer)) if self._buffer is not None else ""

    def readlines(self):
        return list(self)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    next = __next__


def makefile(channel, mode="w", proxyclose=False):
    """
    A file on C{channel}: C{mode} C{"w"} writes items, C{"r"} reads them.
    With C{proxyclose}, closing the file closes the channel.
    """
    if mode == "w":
        return ChannelFileWrite(channel, proxyclose)
    if mode == "r":
        return ChannelFileRead(channel, proxyclose)
    raise ValueError("mode %r: a channel file is 'r' or 'w'" % (mode,))


# ---------------------------------------------------------------------------
# Remote output: what remote code writes to sys.stdout and sys.stderr, and
# what is written to fd 1, travels in OUTPUT frames of its own, counted
# against a window as channel items are.
# ---------------------------------------------------------------------------

#: Characters a stream holds, short of a newline, before it sends them.
OUTPUT_BUFFER = 8192
#: Characters in one OUTPUT frame at most: a long write goes as several.
OUTPUT_CHUNK = 65536
_STREAM_BYTES = {STDOUT: b"\x01", STDERR: b"\x02"}


class _OutputTarget(object):
    """Where a thread running remote code writes: its gateway and channel."""

    def __init__(self, gateway, cid):
        self.gateway = gateway
        self.cid = cid
        self.buffers = {STDOUT: [], STDERR: []}
        self.sizes = {STDOUT: 0, STDERR: 0}

    def flush(self, stream, fallback, wait=True):
        buffered = self.buffers[stream]
        if not buffered:
            return
        text = "".join(buffered)
        del buffered[:]
        self.sizes[stream] = 0
        try:
            self.gateway._send_output(self.cid, stream, text, wait)
        except (IOError, OSError):
            # The local side is gone: the stream replaced is all there is.
            if fallback is not None:
                fallback.write(text)


class OutputStream(object):
    """
    C{sys.stdout} or C{sys.stderr} of remote code.  In a thread that runs a
    remote_exec, what is written goes to the local side tagged with the
    channel, line-buffered; in any other thread, to the stream it replaced.
    A thread's target is kept in C{route}, a C{threading.local} shared by
    every runtime in the process (a socket server may run several).
    """

    encoding = "utf-8"
    errors = "backslashreplace"
    line_buffering = True
    closed = False

    def __init__(self, stream, fallback, route):
        self._stream = stream
        self.fallback = fallback
        self.route = route
        self.name = "<%s>" % STREAM_NAMES[stream]

    def write(self, text):
        target = getattr(self.route, "target", None)
        if target is None:
            if self.fallback is None:
                return len(text)
            return self.fallback.write(text)
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        stream = self._stream
        target.buffers[stream].append(text)
        target.sizes[stream] += len(text)
        if "\n" in text or target.sizes[stream] > OUTPUT_BUFFER:
            target.flush(stream, self.fallback)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self, wait=True):
        target = getattr(self.route, "target", None)
        if target is not None:
            target.flush(self._stream, self.fallback, wait)
        elif self.fallback is not None:
            self.fallback.flush()

    @property
    def buffer(self):
        return _OutputBuffer(self)

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False

    def seekable(self):
        return False

    def fileno(self):
        if self.fallback is None:
            raise OSError("no file descriptor")
        return self.fallback.fileno()

    def __getattr__(self, name):
        # What else code asks of a text stream (reconfigure, newlines...).
        return getattr(self.fallback, name)


class _OutputBuffer(object):
    """C{sys.stdout.buffer} of remote code: bytes, written as UTF-8 text."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, data):
        self._stream.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self):
        self._stream.flush()


def _capture_output():
    """
    Put L{OutputStream}s in place of C{sys.stdout} and C{sys.stderr}, once
    per process; return the route they share.
    """
    current = sys.stdout
    if type(current).__name__ == "OutputStream":
        return current.route
    route = threading.local()
    sys.stdout = OutputStream(STDOUT, current, route)
    sys.stderr = OutputStream(STDERR, sys.stderr, route)
    return route


def _flush_thread_output(wait=True):
    """Send what this thread's streams hold (before its code ends, or exits)."""
    for stream in (sys.stdout, sys.stderr):
        if type(stream).__name__ == "OutputStream":
            stream.flush(wait)


class _FdPump(object):
    """
    Sends what is written to fd 1, which is a pipe this runtime reads, as
    OUTPUT frames: what C code and child processes print, with no channel.
    """

    def __init__(self, gateway, rfd):
        import codecs

        self._gateway = gateway
        self._rfd = rfd
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._lock = threading.Lock()
        os.set_blocking(rfd, False)

    def run(self):
        import select

        while True:
            try:
                select.select([self._rfd], [], [])
            except (OSError, ValueError):
                return
            if not self.drain(True):
                return

    def drain(self, wait=False):
        """
        Send what the pipe holds: a read's worth when C{wait}ing for the
        window, else all of it, at once (the process is about to end).
        Return whether the pipe is still open.
        """
        if not self._lock.acquire(True, -1 if wait else 1.0):
            return True
        try:
            data = []
            open_ = True
            while True:
                try:
                    chunk = os.read(self._rfd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    open_ = False
                    break
                if not chunk:
                    open_ = False
                    break
                data.append(chunk)
                if wait:
                    break
            text = self._decode(b"".join(data), not open_)
            if text:
                try:
                    self._gateway._send_output(0, STDOUT, text, wait)
                except (IOError, OSError):
                    os.write(2, text.encode("utf-8", "backslashreplace"))
            return open_
        finally:
            self._lock.release()


def _forward_logging(gateway, level):
    """
    Send the records of this interpreter's C{logging} at C{level} and up
    to the local side, tagged with the channel whose code logged them.
    """
    import logging

    route = gateway._route

    class Forward(logging.Handler):
        def emit(self, record):
            if record.name.startswith("txexecnet.remote."):
                return  # the local side's own: never sent back
            try:
                exc_text = record.exc_text
                if record.exc_info and not exc_text:
                    exc_text = logging.Formatter().formatException(record.exc_info)
                target = getattr(route, "target", None)
                data = dumps(
                    {
                        "name": record.name,
                        "levelno": record.levelno,
                        "levelname": record.levelname,
                        "msg": record.getMessage(),
                        "created": record.created,
                        "exc_text": exc_text,
                        "stack_info": record.stack_info,
                        "pathname": str(record.pathname),
                        "lineno": record.lineno,
                        "funcName": str(record.funcName),
                        "threadName": str(record.threadName),
                        "process": record.process,
                    }
                )
                gateway._send_counted(LOG_RECORD, 0 if target is None else target.cid, [data])
            except (IOError, OSError):
                pass  # the local side is gone
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    root.addHandler(Forward(level))
    if root.level > level:
        root.setLevel(level)


# ---------------------------------------------------------------------------
# The remote gateway: a reader loop, and one thread per remote_exec.
# ---------------------------------------------------------------------------


class FileIO(object):
    """Frame I/O over a pair of file descriptors (the popen and ssh case)."""

    output_fd = None  # see popen_io

    def __init__(self, rfd, wfd):
        self._rfd = rfd
        self._wfd = wfd

    def readinto(self, view):
        return os.readv(self._rfd, [view])

    def write(self, parts, total):
        # A frame is written whole even if KeyboardInterrupt (a cancelled
        # channel's) comes in between: half a frame would end the gateway.
        fd = self._wfd
        sent = os.writev(fd, parts)
        if sent < total:  # a blocking pipe writes it all but for a signal
            rest = memoryview(b"".join(parts))[sent:]
            interrupted = None
            while rest:
                try:
                    rest = rest[os.write(fd, rest) :]
                except KeyboardInterrupt as e:
                    interrupted = e
            if interrupted is not None:
                raise interrupted

    def close(self):
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class SocketIO(object):
    """Frame I/O over a connected stream socket (thread and socket gateways)."""

    output_fd = None

    def __init__(self, sock):
        self._sock = sock

    def readinto(self, view):
        return self._sock.recv_into(view)

    def write(self, parts, total):
        # One send for small frames; large parts go as they are, uncopied.
        # A frame is written whole even if KeyboardInterrupt comes between.
        if len(parts) > 1 and total < _NO_JOIN_SIZE:
            parts = [b"".join(parts)]
        done = 0
        interrupted = None
        while done < len(parts):
            try:
                self._sock.sendall(parts[done])
                done += 1
            except KeyboardInterrupt as e:
                interrupted = e
        if interrupted is not None:
            raise interrupted

    def close(self):
        try:
            self._sock.close()
        except OSError:
            pass

    def abort(self):
        """End the stream now: a thread reading it sees its end."""
        import socket

        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def popen_io():
    """
    Move the protocol off fds 0 and 1 so that user code printing to stdout,
    or a C library writing to fd 1, cannot corrupt the frame stream: fd 0
    is pointed at /dev/null and fd 1 at a pipe whose other end, the
    C{output_fd} of the L{FileIO} returned, this runtime reads and sends on
    as output.  fd 2 stays the process's stderr: what a crash writes there
    reaches the local side even when this runtime cannot send it.
    """
    rfd = os.dup(0)
    wfd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    output_fd, output_wfd = os.pipe()
    os.dup2(output_wfd, 1)
    os.close(output_wfd)
    for fd in (rfd, wfd, output_fd):
        try:
            os.set_inheritable(fd, False)
        except AttributeError:  # pragma: no cover
            pass
    io = FileIO(rfd, wfd)
    io.output_fd = output_fd
    return io


#: Seconds the reader thread leaves the reading to threads that receive,
#: after one of them last got an item (see L{RemoteGateway}).
READ_GRACE = 0.001


class RemoteGateway(object):
    """
    The remote end of a gateway: reads frames, dispatches them to channels,
    and runs each CHANNEL_EXEC in a thread of its own.

    One thread at a time reads and dispatches frames.  That is the reader
    thread, except while code waits in C{channel.receive()} with nothing
    queued: then that thread reads for itself, so an item reaches the code
    that waits for it without a hand-off between threads (a wake-up that
    costs more than the rest of a small item's way).  The reader thread
    takes over again once no receiver has come back for L{READ_GRACE}, or at
    once when a thread waits with a timeout or in C{waitclose()}.
    """

    def __init__(
        self,
        io,
        max_frame_size=DEFAULT_MAX_FRAME_SIZE,
        window=DEFAULT_WINDOW,
        heartbeat=0.0,
        execmodel="thread",
        id="gw-worker",
        route=None,
    ):
        self._io = io
        # Output: the route of the streams remote code writes to (None when
        # they are left alone), and the bytes of output sent and taken.
        self._route = route
        self._out_sent = 0
        self._out_acked = 0
        self._out_lock = threading.Lock()
        self._out_credited = threading.Condition(self._out_lock)
        self._dispatcher = None  # the thread reading frames right now
        self._execmodel = execmodel
        # What execnet's remote gateways offer remote code.
        self.id = id
        self.execmodel = get_execmodel(execmodel)
        self._main_jobs = None  # main_thread_only: what the main thread is to run
        self._max_frame_size = max_frame_size
        self._window = window
        self._heartbeat = heartbeat
        self._last_heard = monotonic()
        self._writelock = threading.Lock()
        self._channels = {}
        self._chanlock = threading.Lock()
        self._next_id = 2  # the remote side allocates even ids, the local side odd ones
        # Exec threads: how many are started and not done, and the ids of
        # those that run.  Plain threads of _thread: threading.Thread costs
        # three times as much for each, which thousands of channels feel.
        self._busy = 0
        self._idents = set()
        self._running = {}  # channel id -> the thread running its code
        self._executing = set()  # channel ids whose code has not left yet (queued, or runs)
        self._cancelled_early = set()  # ... and those cancelled before their code started
        self._waiting = {}  # thread id -> the queue it waits on in receive()
        self._execlock = threading.Lock()
        self._done = threading.Condition(self._execlock)
        self._writeclosed = False
        self._frames = FrameBuffer(max_frame_size, self._dispatch)
        self._readlock = threading.Lock()
        self._reader_wait = threading.Condition(self._readlock)  # the reader thread's
        self._role_free = threading.Condition(self._readlock)  # receivers' (no timeout)
        self._reading = False  # some thread is reading frames
        self._role_waiter = False  # a receiver waits to read for itself
        self._blocked = 0  # threads waiting with a timeout, or for a close
        self._reads = 0  # reads done, to tell a busy receiver from one waiting
        self._reader_idle = False  # the reader thread sleeps until a read ends
        self._last_receive = 0.0  # when a receiver last got an item
        self._ended = False  # the frame stream is over
        self._end_error = None
        self._cancel_self = None  # a thread that dispatched its own cancel

    # channels
    def _channel_id(self, channel):
        if not isinstance(channel, Channel):
            return None
        if channel.gateway is not self:
            raise DumpError("cannot send a channel that belongs to another gateway")
        return channel.id

    def _get_channel(self, cid):
        with self._chanlock:
            ch = self._channels.get(cid)
            if ch is None:
                ch = self._channels[cid] = Channel(self, cid)
            return ch

    @property
    def _channelfactory(self):
        # execnet's name for what holds a gateway's channels: remote code
        # written for execnet reads channel.gateway._channelfactory._channels.
        return _ExecnetChannelTable(self._channels)

    def _forget(self, channel):
        with self._chanlock:
            if self._channels.get(channel.id) is channel and channel._closed:
                del self._channels[channel.id]

    def newchannel(self):
        """A fresh channel, to be sent to the other side inside an item."""
        with self._chanlock:
            cid = self._next_id
            self._next_id += 2
            ch = self._channels[cid] = Channel(self, cid)
        return ch

    # what remote code may call
    def register_type(self, name, cls, to_state, from_state):
        """
        L{register_type}, for remote code: the registration holds for this
        whole process, so for every channel (and every gateway) in it.
        """
        register_type(name, cls, to_state, from_state)

    def unregister_type(self, name):
        """L{unregister_type}, for remote code."""
        unregister_type(name)

    # output
    def _send(self, msgtype, cid, parts, size=None):
        if size is None:
            size = sum(map(len, parts))
        if size > self._max_frame_size:
            raise DumpError(
                "item of %d bytes exceeds the frame limit of %d bytes"
                % (size, self._max_frame_size)
            )
        header = HEADER.pack(msgtype, cid, size)
        with self._writelock:
            if self._writeclosed:
                raise IOError("the gateway is closed")
            self._io.write([header] + parts, HEADER_SIZE + size)

    def _send_output(self, cid, stream, text, wait=True):
        """Send C{text} that channel C{cid}'s code (0: no channel's) wrote to C{stream}."""
        for start in range(0, len(text), OUTPUT_CHUNK):
            data = text[start : start + OUTPUT_CHUNK].encode("utf-8", "backslashreplace")
            self._send_counted(OUTPUT, cid, [_STREAM_BYTES[stream], data], wait)

    def _send_counted(self, msgtype, cid, parts, wait=True):
        """
        Send output or a log record, counted against the window: unless
        told not to C{wait}, wait while the local side holds a window's
        worth it has not taken.  The thread that reads frames never waits:
        it is the one that would read the credit.
        """
        size = sum(map(len, parts))
        window = self._window
        with self._out_lock:
            if window and wait and self._dispatcher != _get_ident():
                while self._out_sent - self._out_acked >= window and not self._ended:
                    self._wait_for_reader(self._out_credited.wait, WINDOW_WARNING)
            self._out_sent += size
        self._send(msgtype, cid, parts, size)

    def _log_exception(self, what, error):
        import traceback

        _say(
            "%s\n%s"
            % (what, "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        )

    # reading
    def serve(self, info, after_hello=None):
        """
        Say hello, then read and dispatch frames until the local side says
        exit or the stream ends.  Returns once every exec thread is done, or
        has been given up on (see L{_shutdown}); return whether all are done.

        @param after_hello: called once the hello is sent, before any frame
            is read: for set-up that need not delay the gateway's start.
        """
        self._send(HELLO, 0, [dumps(info)])
        try:
            if threading.current_thread() is threading.main_thread():
                _main_thread["reads"] = True  # ParentGone may be raised here
            if after_hello is not None:
                after_hello()
            if self._execmodel == "main_thread_only":
                self._serve_in_main_thread()
            else:
                self._read_loop()
            _main_thread["reads"] = False
        except ParentGone as e:
            _main_thread["reads"] = False
            with self._readlock:
                self._ended = True
                self._end_error = e
                self._reader_wait.notify_all()
                self._role_free.notify_all()
        error = self._end_error
        if isinstance(error, ProtocolError):
            _say("protocol error: %s\n" % (error,))
        elif isinstance(error, ParentGone):
            _say("%s; ending\n" % (error,))
        elif error is not None:
            self._log_exception("reader failed", error)
        return self._shutdown()

    def _serve_in_main_thread(self):
        """
        Run remote code in this, the main, thread, one remote_exec at a
        time, while another thread reads.  Once the stream ends, code still
        running gets the same grace and interrupt as exec threads do.
        """
        self._main_jobs = jobs = SimpleQueue()

        def read():
            self._read_loop()
            if not self._end_code():
                # Stuck in a system call, where no interrupt lands, and only
                # this thread knows: the process must end anyway.
                _say("remote code in the main thread does not end; exiting\n")
                os._exit(1)
            jobs.put(None)

        _start_thread(read, ())
        while True:
            try:
                job = jobs.get()
                if job is None:
                    return
                self._execute(*job)
            except KeyboardInterrupt:
                pass  # the shutdown's interrupt, landing just as the code ended
            if _main_thread["gone"]:
                raise ParentGone("the parent process is gone")

    def _read_loop(self):
        """The reader thread: read whenever no receiver reads for itself."""
        seen = -1
        while True:
            with self._readlock:
                while not self._ended:
                    if self._reading and self._reads == seen:
                        # A receiver waits for data: sleep until it stops
                        # reading rather than polling meanwhile.
                        self._reader_idle = True
                        self._reader_wait.wait()
                        self._reader_idle = False
                    elif (
                        self._reading
                        or self._role_waiter
                        or (not self._blocked and monotonic() - self._last_receive < READ_GRACE)
                    ):
                        # Timed, so that receivers reading in quick turns need
                        # not wake this thread each time they stop.
                        seen = self._reads
                        self._reader_wait.wait(READ_GRACE)
                    else:
                        break
                if self._ended:
                    return
                self._reading = True
            self._read_once()

    def _read_once(self):
        """
        Read and dispatch once, then give up reading (the caller has taken
        it: C{_reading} is set) and wake whoever should read next.
        """
        more = False
        self._dispatcher = _get_ident()
        try:
            n = self._io.readinto(self._frames.room())
            if n:
                self._last_heard = monotonic()
                more = not self._frames.filled(n)
            elif self._frames.pending():
                raise ProtocolError("stream ended inside a frame")
        except Exception as e:
            self._end_error = e
        self._dispatcher = None
        with self._readlock:
            self._reading = False
            self._reads += 1
            if not more:
                self._ended = True
            if self._role_waiter or not more:
                self._role_free.notify()
            if self._blocked or self._reader_idle or not more:
                self._reader_wait.notify_all()
        if not more:
            self._wake_output()

    def _wake_output(self):
        """The stream has ended: output waiting for the window waits no more."""
        with self._out_lock:
            self._out_credited.notify_all()

    def _next_item(self, items, timeout):
        """
        The next item of the queue C{items}.  Without a timeout, this thread
        reads for it when no one else reads; raises C{Empty} after
        C{timeout} seconds.
        """
        try:
            if timeout is None:
                while True:
                    try:
                        return items.get_nowait()
                    except Empty:
                        pass
                    with self._readlock:
                        if self._ended or self._reading and self._role_waiter:
                            # One thread waits to read next; others wait for
                            # their items, so a read wakes only those it serves.
                            break
                        if self._reading:
                            self._role_waiter = True
                            try:
                                self._role_free.wait()
                            finally:  # a cancel may interrupt the wait
                                self._role_waiter = False
                            continue
                        self._reading = True
                    self._read_once()
                    if self._cancel_self == _get_ident():
                        self._cancel_self = None
                        raise KeyboardInterrupt
            ident = _get_ident()
            self._waiting[ident] = items  # so that a cancel can wake it
            try:
                return self._wait_for_reader(items.get, timeout)
            finally:
                self._waiting.pop(ident, None)
        finally:
            self._last_receive = monotonic()

    def _wait_for_reader(self, wait, timeout):
        """C{wait(timeout=timeout)} while another thread reads; wake the reader thread."""
        with self._readlock:
            self._blocked += 1
            if not self._reading:
                self._reader_wait.notify_all()
        try:
            return wait(timeout=timeout)
        finally:
            with self._readlock:
                self._blocked -= 1

    def _dispatch(self, msgtype, cid, payload):
        """Act on one frame; return true for the last one (GATEWAY_EXIT)."""
        if msgtype == CHANNEL_DATA:
            ch = self._get_channel(cid)
            try:
                item = loads(payload, self._get_channel)
            except LoadError:
                item = _Undecoded(bytes(payload), self)
            ch._deliver(item, len(payload))
        elif msgtype == CHANNEL_CREDIT:
            if len(payload) != CREDIT.size:
                raise ProtocolError("a credit frame of %d bytes" % len(payload))
            with self._chanlock:
                ch = self._channels.get(cid)
            if ch is not None:
                ch._credit(CREDIT.unpack(payload)[0])
        elif msgtype == OUTPUT_CREDIT:
            if len(payload) != CREDIT.size:
                raise ProtocolError("a credit frame of %d bytes" % len(payload))
            with self._out_lock:
                self._out_acked += CREDIT.unpack(payload)[0]
                self._out_credited.notify_all()
        elif msgtype == CHANNEL_EXEC:
            self._start_exec(cid, bytes(payload))
        elif msgtype == CHANNEL_CLOSE or msgtype == CHANNEL_LAST_MESSAGE:
            self._get_channel(cid)._local_close()
        elif msgtype == CHANNEL_CLOSE_ERROR:
            self._get_channel(cid)._local_close(error_from_payload(payload, self.id))
        elif msgtype == HEARTBEAT:
            self._send(HEARTBEAT, 0, [], 0)
        elif msgtype == CHANNEL_CANCEL:
            self._cancel(cid)
        elif msgtype == GATEWAY_STATUS:
            self._send_status(cid)
        elif msgtype == GATEWAY_EXIT:
            return True
        else:
            raise ProtocolError("unexpected %s frame" % MESSAGE_NAMES[msgtype])
        return False

    def _cancel(self, cid):
        """
        Raise C{KeyboardInterrupt} in the code of channel C{cid}, once: at
        once where it runs Python code, when it wakes where it waits in
        C{receive()} (it is woken), after the call where it is blocked in
        another one.
        """
        with self._execlock:
            ident = self._running.pop(cid, None)
            if ident is None:
                if cid in self._executing:  # its thread has not started yet
                    self._cancelled_early.add(cid)
                return  # or the code has ended, or was cancelled already
            queue = self._waiting.get(ident)
        if ident == _get_ident():
            # This thread reads for itself and is dispatching: an exception
            # here would leave the frame stream half read.  It is raised
            # where this thread next takes an item (see _next_item).
            self._cancel_self = ident
        else:
            _interrupt(ident)
        if queue is not None:
            queue.put(_WAKE)
        else:
            # It may wait to read for itself, on a condition no frame may
            # ever signal: wake it, so that the interrupt lands.
            with self._readlock:
                self._role_free.notify_all()
        with self._chanlock:
            channel = self._channels.get(cid)
        if channel is not None:
            with channel._lock:  # a send() that waits for the window wakes
                channel._credited.notify_all()

    def watch_heartbeats(self, on_silence):
        """
        Call C{on_silence()} once the local side has sent nothing for 3
        heartbeats (it sends one every heartbeat when it has nothing else).
        """
        period = self._heartbeat

        def watch():
            while not self._ended:
                time.sleep(period)
                silent = monotonic() - self._last_heard
                if silent > 3 * period and not self._ended:
                    _say("nothing from the local side for %.1f s; ending\n" % silent)
                    on_silence()
                    return

        t = threading.Thread(target=watch, name="txexecnet-heartbeat")
        t.daemon = True
        t.start()

    def _send_status(self, cid):
        """Answer a status request on channel C{cid}: one item, then the close."""
        with self._chanlock:
            numchannels = len(self._channels)
        status = {
            "numchannels": numchannels,
            "numexecuting": len(self._executing),
            "execmodel": self._execmodel,
        }
        self._send(CHANNEL_DATA, cid, [dumps(status)])
        self._send(CHANNEL_CLOSE, cid, [], 0)

    def _start_exec(self, cid, payload):
        channel = self._get_channel(cid)
        if self._main_jobs is not None:
            with self._execlock:
                refused = bool(self._executing)  # the main thread runs (or will run) code
                if not refused:
                    self._busy += 1
                    self._executing.add(cid)
            if refused:
                self._close_channel(channel, dumps(CONCURRENT_MAIN_EXEC))
            else:
                self._main_jobs.put((channel, payload))
            return
        with self._execlock:
            self._busy += 1
            self._executing.add(cid)
        _start_thread(self._execute, (channel, payload))

    def _execute(self, channel, payload):
        cid = channel.id
        ident = _get_ident()
        try:
            try:
                with self._execlock:
                    self._idents.add(ident)
                    early = cid in self._cancelled_early
                    if early:
                        self._cancelled_early.discard(cid)
                    else:
                        self._running[cid] = ident
                if early:
                    raise KeyboardInterrupt
                if self._route is not None:
                    self._route.target = _OutputTarget(self, cid)
                item = loads(payload, self._get_channel)
                sent, name, call_name, kwargs = item[:4]
                # A fifth element, the options, is there only if one is set.
                options = item[4] if len(item) > 4 else {}
                channel._close_refused = not options.get("code_may_close", True)
                # Remote code is compiled as a module of its own: with
                # none of the runtime's __future__ flags (postponed
                # annotations break dataclasses in a module that is not
                # in sys.modules).
                code = compile(sent, name, "exec", dont_inherit=True)
                channel._code = (name, sent)
                namespace = {"channel": channel, "__name__": EXEC_MODULE}
                exec(code, namespace)
                if call_name:
                    namespace[call_name](channel, **kwargs)
            finally:
                channel._close_refused = False
                try:
                    if self._route is not None:
                        # Before the close: whoever sees it has all the output.
                        _flush_thread_output()
                finally:
                    if self._route is not None:
                        self._route.target = None
                    self._leave_code(cid)
        except KeyboardInterrupt as e:
            self._leave_code(cid)
            self._close_channel(channel, error_payload(e, "KeyboardInterrupt", *channel._code))
        except BaseException as e:
            self._close_channel(channel, error_payload(e, None, *channel._code))
        else:
            self._close_channel(channel, None)
        # This thread will not come back to receive: the reader thread need
        # not wait out READ_GRACE for it (an exit frame may be on its way).
        with self._readlock:
            self._last_receive = 0.0
            self._reader_wait.notify_all()
        with self._execlock:
            self._idents.discard(ident)
            self._busy -= 1
            self._done.notify_all()

    def _leave_code(self, cid):
        """The code of channel C{cid} is done: no cancel may reach it from now on."""
        with self._execlock:
            cancelled = self._running.pop(cid, None) is None
            # Before the close goes out: whoever sees it may exec again at once.
            self._executing.discard(cid)
        if cancelled:
            # A cancel may have been raised just too late to land: drop it.
            _interrupt(_get_ident(), None)
            if self._cancel_self == _get_ident():
                self._cancel_self = None

    def _close_channel(self, channel, error_payload):
        try:
            channel._close(error_payload)
        except (IOError, OSError):
            pass

    def _end_code(self):
        """
        Close every channel (a waiting C{receive()} raises C{EOFError}), give
        remote code L{SHUTDOWN_GRACE} seconds to finish, then raise
        C{KeyboardInterrupt} in what still runs and give it
        L{INTERRUPT_GRACE} more.  Return whether all has ended: code blocked
        in a system call cannot be interrupted.
        """
        with self._chanlock:
            channels = list(self._channels.values())
        for ch in channels:
            ch._local_close()
        with self._done:
            if not self._wait_done(monotonic() + SHUTDOWN_GRACE):
                for ident in self._idents:
                    _interrupt(ident)
                self._wait_done(monotonic() + INTERRUPT_GRACE)
            return not self._busy

    def _shutdown(self):
        """
        The stream has ended: end remote code (see L{_end_code}) and close
        the stream.  Return whether all code has ended; what has not is left
        to the process's exit.
        """
        finished = self._end_code()
        with self._writelock:
            self._writeclosed = True
        self._wake_output()
        self._io.close()
        return finished

    def _wait_done(self, deadline):
        """Wait (lock held) until every exec thread is done, or C{deadline}; return whether."""
        while self._busy and monotonic() < deadline:
            self._done.wait(deadline - monotonic())
        return not self._busy


def _say(text):
    """Write to the process's stderr (the local side's log), if anyone still reads it."""
    stderr = sys.__stderr__ or sys.stderr
    try:
        stderr.write("txexecnet remote: " + text)
        stderr.flush()
    except (OSError, ValueError):
        pass


#: Seconds exec threads have to finish once the frame stream has ended...
SHUTDOWN_GRACE = 2.0
#: ...and then, interrupted with C{KeyboardInterrupt}, to unwind.
INTERRUPT_GRACE = 1.0
#: Seconds the interpreter's own exit may take (atexit handlers, threads
#: that remote code started) before the process ends regardless.
EXIT_GRACE = 2.0


def _interrupt(ident, exception=KeyboardInterrupt):
    """
    Raise C{exception} in the thread C{ident} when it next runs Python code
    (C{None}: take back one not raised yet).
    """
    try:
        import ctypes

        set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    except (ImportError, AttributeError):  # not CPython
        return
    what = None if exception is None else ctypes.py_object(exception)
    set_async_exc(ctypes.c_ulong(ident), what)


class ParentGone(Exception):
    """The process that started this one has died (or fell silent)."""


#: Whether the main thread serves a gateway's frames: only then does
#: L{_parent_gone} interrupt it (a flag, not an event: it is read in a
#: signal handler, and written where an exception would be caught); and
#: whether the parent is known gone (the signal may come twice, see
#: L{_forward_to_main_thread}).
_main_thread = {"reads": False, "gone": False, "parent": None, "asked": False}


def _parent_gone(signum, frame):
    # Raised in the main thread, out of whatever wait it is in: its read of
    # the stream ends as if the stream had, and the same shutdown follows
    # (unless it is under way: the stream usually ends too).  That shutdown
    # gets a bound of its own, whatever it runs into.
    if _main_thread["gone"]:
        return
    if not _main_thread["asked"] and os.getppid() == _main_thread["parent"]:
        # The parent lives (the kernel reparents an orphan before it sends
        # the parent-death signal): someone sent SIGTERM, which ends this
        # process as it ends any.
        import signal

        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _main_thread["gone"] = True
    _exit_after(SHUTDOWN_GRACE + INTERRUPT_GRACE + EXIT_GRACE, 1)
    if _main_thread["reads"]:
        _main_thread["reads"] = False
        raise ParentGone("the parent process is gone")


def _forward_to_main_thread(signum, first):
    """
    Make sure the main thread, not just the process, gets C{signum}; the
    thread that sees to it runs C{first()} before it waits.

    The kernel hands a process's signal to any one of its threads.  Python
    runs the handler in the main thread, but only once that thread runs
    Python code: if an exec thread took the signal, the main thread blocked
    in its read of the stream would never see it (a forked copy of the
    client keeps that stream open).  Every caught signal also writes its
    number to the wakeup pipe; a thread waiting there sends C{signum} to the
    main thread itself, whose read it interrupts.
    """
    import signal

    r, w = os.pipe()  # neither end is inherited by the code's children
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    main = threading.main_thread().ident

    def watch():
        first()
        while True:
            caught = os.read(r, 64)
            if signum in caught:
                signal.pthread_kill(main, signum)
                return

    _start_thread(watch, ())


def _die_with_parent():
    """
    End this process, as its stream's end would, when its parent dies:
    the parent-death signal of Linux, a second line behind the end of
    stdin, which a forked copy of the parent holding the pipe keeps open.
    Main thread only.
    """
    import signal

    parent = _main_thread["parent"] = os.getppid()

    def ask():
        # In the thread that lives on waiting for the signal: the request is
        # that thread's (the kernel honours any thread's), and importing
        # ctypes here keeps it off the way to the first remote_exec.
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (ImportError, OSError, AttributeError):  # not Linux
            return
        if os.getppid() != parent:  # the parent died before the request
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, _parent_gone)
    _forward_to_main_thread(signal.SIGTERM, ask)


def _end_as_if_parent_gone():
    import signal

    _main_thread["asked"] = True
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_after(seconds, status):
    """End the process after C{seconds}, however its exit goes."""

    def later():
        time.sleep(seconds)
        os._exit(status)

    t = threading.Thread(target=later, name="txexecnet-exit")
    t.daemon = True
    t.start()


#: What C{import execnet} gives remote code where execnet is not installed:
#: its name -> this runtime's.
_EXECNET_NAMES = {
    "Channel": "Channel",
    "DataFormatError": "DataFormatError",
    "DumpError": "DumpError",
    "ExecModel": "ExecModel",
    "LoadError": "LoadError",
    "RemoteError": "RemoteError",
    "TimeoutError": "TimeoutError",
    "dump": "execnet_dump",
    "dumps": "execnet_dumps",
    "get_execmodel": "get_execmodel",
    "load": "execnet_load",
    "loads": "execnet_loads",
}


class _ExecnetAlias(object):
    """
    Finds C{execnet} and C{execnet.gateway_base} for remote code written
    for execnet (which imports it for C{dumps} and the like) on a host
    where execnet is not installed: this runtime's equivalents, under those
    names.  It is last on C{sys.meta_path}, so an installed execnet wins.
    """

    names = ("execnet", "execnet.gateway_base")

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(fullname, self, is_package=fullname == "execnet")

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        namespace = globals()
        for name, ours in _EXECNET_NAMES.items():
            setattr(module, name, namespace[ours])
        module.MAIN_THREAD_ONLY_DEADLOCK_TEXT = CONCURRENT_MAIN_EXEC
        if module.__name__ == "execnet":
            import importlib

            importlib.import_module("execnet.gateway_base")


def _offer_execnet():
    # A server that serves many connections in one process gets one alias.
    if not any(type(finder).__name__ == "_ExecnetAlias" for finder in sys.meta_path):
        sys.meta_path.append(_ExecnetAlias())


def _hello_info():
    return {
        "version": PROTOCOL_VERSION,
        "python": list(sys.version_info[:3]),
        "version_info": list(sys.version_info[:5]),
        "executable": sys.executable,
        "pid": os.getpid(),
        "platform": sys.platform,
        "implementation": sys.implementation.name,
        "cwd": os.getcwd(),
    }


def configure(config):
    """Apply the spec's remote settings (chdir, nice, env) before any user code."""
    for name, value in config.get("env", {}).items():
        os.environ[name] = value
    chdir = config.get("chdir")
    if chdir:
        if not os.path.isdir(chdir):
            os.makedirs(chdir)
        os.chdir(chdir)
    nice = config.get("nice")
    if nice:
        os.nice(int(nice))


def serve(io, config=None, after_hello=None, on_silence=None, route=None):
    """
    Run a remote gateway on C{io} until the local side lets go; return
    whether all its exec threads have ended.

    @param on_silence: what to do when heartbeats are on and the local side
        falls silent (default: end C{io}, which a socket's readers see).
    @param route: the route of L{OutputStream}s to send what remote code
        writes through (see L{_capture_output}); C{None} leaves its output
        where it goes (a thread gateway's is the local process's own).
    """
    config = config or {}
    configure(config)
    gateway = RemoteGateway(
        io,
        config.get("max_frame_size", DEFAULT_MAX_FRAME_SIZE),
        config.get("window", DEFAULT_WINDOW),
        config.get("heartbeat", 0.0),
        config.get("execmodel", "thread"),
        config.get("id", "gw-worker"),
        route,
    )
    if gateway._heartbeat:
        gateway.watch_heartbeats(on_silence or io.abort)

    def started():
        # Before any remote_exec can run, but off the way to the hello.
        if route is not None and config.get("logging"):
            _forward_logging(gateway, config["logging"])
        if io.output_fd is not None:
            pump = _FdPump(gateway, io.output_fd)
            _exiting["pump"] = pump
            _start_thread(pump.run, ())
        if after_hello is not None:
            after_hello()

    return gateway.serve(_hello_info(), started)


#: What L{_exit_flushing} sends on before the process ends.
_exiting = {"pump": None}


def _exit_flushing(exit):
    """
    C{os._exit} for remote code: what this thread has written, and what
    waits in the fd 1 pipe, goes to the local side before the process ends.
    """

    def _exit(status):
        try:
            _flush_thread_output(False)
            pump = _exiting["pump"]
            if pump is not None:
                pump.drain()
        except BaseException:
            pass  # nothing may keep the process from ending
        exit(status)

    _exit.__doc__ = exit.__doc__
    return _exit


def serve_popen(config=None):
    """
    Entry point of a popen or ssh child: serve on stdin/stdout, then end
    the process within a bounded time, whatever remote code still does.
    """
    _offer_execnet()
    io = popen_io()
    route = _capture_output()
    os._exit = _exit_flushing(os._exit)
    finished = serve(io, config, _die_with_parent, _end_as_if_parent_gone, route)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if not finished:
        os._exit(1)
    _exit_after(EXIT_GRACE, 0)


def serve_socket(sock, config=None):
    """
    Entry point in a server that runs code a client sends over a connected
    socket, as execnet's socket servers do: serve on C{sock} until the
    client lets go, and leave the process to the server.
    """
    _offer_execnet()
    serve(SocketIO(sock), config, route=_capture_output())

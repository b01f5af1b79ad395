"""
What execnet keeps in C{execnet.gateway_base} and its users import from
there: the exceptions, the serializer, execution models, the channel class
and the text of the C{main_thread_only} refusal.  The exceptions, the
serializer and the execution models are the remote runtime's own, so both
sides share them.  The serializer writes and reads execnet's own format,
byte for byte, so data from execnet's C{dumps} loads here and the other way
round.
"""

# Imports are absolute: code written for execnet (its own test suite among
# it) also imports this file as a top-level C{gateway_base}, from the
# package's directory, as it does execnet's.
from __future__ import annotations

import os
from typing import Any, Callable

from txexecnet import blocking
from txexecnet._remote import (
    CONCURRENT_MAIN_EXEC,
    DEFAULT_MAX_FRAME_SIZE,
    EXECNET_DUMPFORMAT_VERSION,
    HEADER,
    HEADER_SIZE,
    MESSAGE_NAMES,
    ExecModel,
    ExecnetOpcode,
    ExecnetUnserializer,
    ProtocolError,
    check_header,
    error_text,
    get_execmodel,
)
from txexecnet._remote import execnet_dumps_internal as dumps_internal
from txexecnet._remote import execnet_load as load
from txexecnet._remote import execnet_loads as loads
from txexecnet.compat.workerpool import Reply, WorkerPool
from txexecnet.errors import (
    DataFormatError,
    DumpError,
    GatewayClosed,
    LoadError,
    RemoteError,
    TimeoutError,
)

__all__ = [
    "DUMPFORMAT_VERSION",
    "Channel",
    "ChannelFactory",
    "DataFormatError",
    "DumpError",
    "ExecModel",
    "GatewayLost",
    "LoadError",
    "MAIN_THREAD_ONLY_DEADLOCK_TEXT",
    "Message",
    "Popen2IO",
    "RemoteError",
    "Reply",
    "TimeoutError",
    "Unserializer",
    "WorkerPool",
    "bchr",
    "dump",
    "dumps",
    "dumps_internal",
    "geterrortext",
    "get_execmodel",
    "init_popen_io",
    "load",
    "loads",
    "opcode",
]

#: Why a second remote_exec fails while one runs under C{main_thread_only}.
MAIN_THREAD_ONLY_DEADLOCK_TEXT = CONCURRENT_MAIN_EXEC

#: The first byte of what L{dumps} writes.
DUMPFORMAT_VERSION = EXECNET_DUMPFORMAT_VERSION

#: The opcodes of the format, by name.
opcode = ExecnetOpcode

#: Reads items in the format from a binary stream, one per C{load()}.
Unserializer = ExecnetUnserializer


def dumps(obj: Any) -> bytes:
    """
    C{obj} in execnet's format: L{DUMPFORMAT_VERSION} (read at each call,
    as execnet's own tests change it), then L{dumps_internal}C{(obj)}.

    @param obj: None, bool, int, float, complex, str, bytes, and lists,
        tuples, dicts, sets and frozensets of them.
    @raise DumpError: for anything else, naming its type, as execnet does.
    """
    return DUMPFORMAT_VERSION + dumps_internal(obj)


def dump(file: Any, obj: Any) -> None:
    """
    Write L{dumps}C{(obj)} to the binary C{file}.

    @param file: a binary file open for writing.
    @param obj: the object to serialize.
    """
    file.write(dumps(obj))


def bchr(n: int) -> bytes:
    """
    A bytes object of length 1.

    @param n: its byte, 0 to 255.
    """
    return bytes((n,))


class Channel(blocking.Channel):
    """
    An execnet channel: C{send}, C{receive(timeout)}, C{waitclose},
    C{close(error)}, C{isclosed}, C{setcallback}, C{makefile}, iteration,
    C{gateway} and C{id}.
    """

    RemoteError = RemoteError
    TimeoutError = TimeoutError

    def receive(self, timeout: float | None = None) -> Any:
        """
        The next item, as L{blocking.Channel.receive}, but for a gateway that
        went away: that is a L{GatewayLost}, an C{EOFError} (as in execnet,
        whose iteration over a channel then ends).

        @param timeout: seconds to wait; C{None} waits for ever.
        """
        try:
            return super().receive(timeout)
        except GatewayClosed as e:
            raise GatewayLost(str(e)).with_traceback(None) from None

    def waitclose(self, timeout: float | None = None) -> None:
        """
        Wait until the other side has closed; raise its L{RemoteError}, or
        a L{GatewayLost} if the gateway went away.

        @param timeout: seconds to wait; C{None} waits for ever.
        """
        # The blocking channel's waitclose is derived at run time, where
        # type checkers do not see it.
        waitclose = getattr(blocking.Channel, "waitclose")
        try:
            waitclose(self, timeout)
        except GatewayClosed as e:
            raise GatewayLost(str(e)).with_traceback(None) from None

    def _getremoteerror(self) -> BaseException | None:
        """
        Why the other side closed: the L{RemoteError} of its exception, a
        L{GatewayLost} if the gateway went away, or C{None} for a plain
        close (or a channel still open).
        """
        error = self.endError()
        if isinstance(error, GatewayLost):
            return error
        if isinstance(error, GatewayClosed):
            return GatewayLost(str(error))
        if isinstance(error, RemoteError):
            return error
        return None


class GatewayLost(GatewayClosed, EOFError):
    """
    What L{Channel._getremoteerror} gives for a gateway that went away: an
    C{EOFError}, as execnet's, that says how it ended.
    """


class ChannelFactory:
    """
    A gateway's channels, as execnet code reaches them (C{gw._channelfactory}):
    C{new()}, C{channels()}, C{_channels} (by id), C{_local_close(id, error)}.
    """

    def __init__(self, gateway: Any) -> None:
        """
        @param gateway: the L{txexecnet.compat.Gateway} whose channels these are.
        """
        self.gateway = gateway

    def new(self, id: int | None = None) -> Channel:
        """
        A new channel (L{Gateway.newchannel}).

        @param id: execnet's; a channel's id is always the gateway's to choose.
        @raise ValueError: if C{id} is given.
        """
        if id is not None:
            raise ValueError("txexecnet chooses channel ids itself; call new() without one")
        channel: Channel = self.gateway.newchannel()
        return channel

    def channels(self) -> list[Channel]:
        """The gateway's open channels, by id."""
        channels: list[Channel] = self.gateway.openChannels()
        return channels

    @property
    def _channels(self) -> dict[int, Channel]:
        # execnet's name: its users look channels up in it by id.
        return {channel.id: channel for channel in self.channels()}

    def _local_close(
        self, id: int, remoteerror: BaseException | None = None, sendonly: bool = False
    ) -> None:
        """
        End channel C{id} on this side as if the other side had closed it,
        with C{remoteerror} for its waiters (execnet's name and signature).

        @param id: the channel's id.
        @param remoteerror: what C{receive()} and C{waitclose()} raise; C{None}
            for a plain close.
        @param sendonly: execnet's; ignored.
        @raise KeyError: if no open channel has that id.
        """
        for channel in self.channels():
            if channel.id == id:
                blocking.loop.call(channel.wrapped.receiveEnded, remoteerror)
                return
        raise KeyError(id)


class Message:
    """
    One frame of txexecnet's wire protocol, in execnet's shape: C{msgcode}
    (an index into C{Message._types}), C{channelid}, C{data}.
    """

    #: The frame types' names, by code.
    _types = [MESSAGE_NAMES[code] for code in sorted(MESSAGE_NAMES)]

    def __init__(self, msgcode: int, channelid: int = 0, data: bytes = b"") -> None:
        """
        @param msgcode: the frame type.
        @param channelid: the channel it is for (0: the gateway).
        @param data: the payload.
        """
        self.msgcode = msgcode
        self.channelid = channelid
        self.data = data

    def to_io(self, io: Any) -> None:
        """
        Write the frame.

        @param io: has C{write(bytes)}.
        """
        io.write(HEADER.pack(self.msgcode, self.channelid, len(self.data)) + bytes(self.data))

    @staticmethod
    def from_io(io: Any) -> Message:
        """
        Read one frame.

        @param io: has C{read(n)}.
        @raise EOFError: if C{io} ends inside the frame.
        @raise ProtocolError: for an unknown type or an oversized frame.
        """
        msgcode, channelid, length = HEADER.unpack(_readExactly(io, HEADER_SIZE))
        check_header(msgcode, length, DEFAULT_MAX_FRAME_SIZE)
        return Message(msgcode, channelid, _readExactly(io, length))

    def __repr__(self) -> str:
        name = MESSAGE_NAMES.get(self.msgcode, self.msgcode)
        return f"<Message {name} channel={self.channelid} len={len(self.data)}>"


def _readExactly(io: Any, n: int) -> bytes:
    data = io.read(n)
    if len(data) != n:
        raise EOFError(f"expected {n} bytes, got {len(data)}")
    return bytes(data)


class Popen2IO:
    """
    execnet's pair of streams to a child: exact reads from C{infile},
    flushed writes to C{outfile}.
    """

    error = (OSError, EOFError, ProtocolError)

    def __init__(self, outfile: Any, infile: Any, execmodel: ExecModel) -> None:
        """
        @param outfile: written to (its binary buffer if it is a text file).
        @param infile: read from (the same).
        @param execmodel: the execution model of the side that uses them.
        """
        self.outfile = outfile
        self.infile = infile
        self.execmodel = execmodel
        self._read = getattr(infile, "buffer", infile).read
        self._write = getattr(outfile, "buffer", outfile).write

    def read(self, numbytes: int) -> bytes:
        """
        Exactly C{numbytes} bytes, however many reads they take.

        @param numbytes: how many.
        @raise EOFError: if the stream ends first.
        """
        buf = bytearray()
        while len(buf) < numbytes:
            data = self._read(numbytes - len(buf))
            if not data:
                raise EOFError(f"expected {numbytes} bytes, got {len(buf)}")
            buf += data
        return bytes(buf)

    def write(self, data: bytes) -> None:
        """
        Write C{data} and flush it.

        @param data: the bytes to write.
        """
        self._write(data)
        self.outfile.flush()

    def close_read(self) -> None:
        """Close the stream read from."""
        self.infile.close()

    def close_write(self) -> None:
        """Close the stream written to."""
        self.outfile.close()


def init_popen_io(execmodel: ExecModel) -> Popen2IO:
    """
    Take this process's fds 0 and 1 for a gateway's stream, as the child
    of a popen gateway does: a L{Popen2IO} over copies of them, with fds 0
    and 1 then pointed at C{os.devnull}, so that nothing else the process
    runs reads the stream or writes into it.

    @param execmodel: the execution model of the returned L{Popen2IO}.
    """
    infd, outfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return Popen2IO(os.fdopen(outfd, "wb", 0), os.fdopen(infd, "rb", 0), execmodel)


def geterrortext(
    exc: BaseException, format_exception: Callable[..., list[str]] | None = None
) -> str:
    """
    The traceback of C{exc} as text, as a L{RemoteError} of it carries.

    @param exc: the exception.
    @param format_exception: another formatter, called as
        C{traceback.format_exception(type, value, traceback)} is.
    """
    if format_exception is None:
        return str(error_text(exc))
    return "".join(format_exception(type(exc), exc, exc.__traceback__))

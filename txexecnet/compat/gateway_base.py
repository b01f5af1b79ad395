"""
What execnet keeps in C{execnet.gateway_base} and its users import from
there: the exceptions, the serializer, execution models, the channel class
and the text of the C{main_thread_only} refusal.  The exceptions, the
serializer and the execution models are the remote runtime's own, so both
sides share them.
"""

from __future__ import annotations

from typing import Any

from .. import blocking
from .._remote import (
    CONCURRENT_MAIN_EXEC,
    MAX_DEPTH,
    ExecModel,
    get_execmodel,
    load,
)
from .._remote import dumps as _dumps
from .._remote import loads as _loads
from .workerpool import Reply, WorkerPool
from ..errors import (
    DataFormatError,
    DumpError,
    GatewayClosed,
    LoadError,
    RemoteError,
    TimeoutError,
)

__all__ = [
    "Channel",
    "DataFormatError",
    "DumpError",
    "ExecModel",
    "GatewayLost",
    "LoadError",
    "MAIN_THREAD_ONLY_DEADLOCK_TEXT",
    "RemoteError",
    "Reply",
    "TimeoutError",
    "WorkerPool",
    "dump",
    "dumps",
    "get_execmodel",
    "load",
    "loads",
]

#: Why a second remote_exec fails while one runs under C{main_thread_only}.
MAIN_THREAD_ONLY_DEADLOCK_TEXT = CONCURRENT_MAIN_EXEC


def dumps(obj: Any) -> bytes:
    """
    Serialize C{obj} as execnet's C{dumps} would accept it: None, bool,
    int, float, complex, str, bytes, and lists, tuples, dicts, sets and
    frozensets of them.  What txexecnet's channels carry beyond that
    (C{bytearray}, dates and times, C{Decimal}, C{UUID}, paths, registered
    types) execnet refuses, and so does this.

    @param obj: the object to serialize.
    @raise DumpError: naming the type of an object execnet cannot send.
    """
    _refuseWhatExecnetRefuses(obj, 0)
    return _dumps(obj)


#: The types execnet's serializer takes (its channels aside).
_EXECNET_LEAVES = frozenset((type(None), bool, int, float, complex, str, bytes))


def _refuseWhatExecnetRefuses(obj: Any, depth: int) -> None:
    t = type(obj)
    if t in _EXECNET_LEAVES or depth >= MAX_DEPTH:
        return  # past the limit the serializer refuses the item itself
    if t in (list, tuple, set, frozenset):
        for x in obj:
            _refuseWhatExecnetRefuses(x, depth + 1)
    elif t is dict:
        for k, v in obj.items():
            _refuseWhatExecnetRefuses(k, depth + 1)
            _refuseWhatExecnetRefuses(v, depth + 1)
    else:
        raise DumpError(
            f"can't serialize an object of type {t.__module__}.{t.__qualname__}: "
            "execnet cannot send it"
        )


def dump(file: Any, obj: Any) -> None:
    """
    Write L{dumps}C{(obj)} to the binary C{file}.

    @param file: a binary file open for writing.
    @param obj: the object to serialize.
    """
    file.write(dumps(obj))


def loads(data: bytes, py2str_as_py3str: bool = False, py3str_as_py2str: bool = False) -> Any:
    """
    Rebuild an object from L{dumps} output.  Never runs code.

    @param data: bytes made by L{dumps}.
    @param py2str_as_py3str: accepted for execnet's signature; Python 2
        strings do not exist here.
    @param py3str_as_py2str: the same.
    @raise LoadError: for anything that is not exactly one valid item.
    """
    return _loads(data)


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

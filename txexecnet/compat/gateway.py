"""
execnet's C{Gateway}: the blocking facade's gateway, with the names and
habits execnet code relies on.
"""

from __future__ import annotations

import types
from typing import Any

from twisted.internet import defer

from .. import blocking
from ..gateway import DEFAULT_EXIT_TIMEOUT, globalNames, sourceOfFunction
from ..errors import TimeoutError
from .gateway_base import Channel, ChannelFactory, ExecModel, get_execmodel

__all__ = ["Gateway", "RInfo", "rinfo_source"]


def rinfo_source(channel):
    """
    What C{_rinfo(update=True)} runs remotely (unannotated: annotations
    would be evaluated there).

    @param channel: where it sends what the remote interpreter is.
    """
    import os
    import sys

    channel.send(
        dict(
            executable=sys.executable,
            version_info=tuple(sys.version_info[:5]),
            platform=sys.platform,
            cwd=os.getcwd(),
            pid=os.getpid(),
        )
    )


def _source_of_function(function: types.FunctionType) -> str:
    """
    The source C{remote_exec(function)} sends (execnet's name: its users
    check functions with it before sending them).

    @raise ValueError: if the function cannot be sent (see
        L{txexecnet.gateway.sourceOfFunction}).
    """
    return sourceOfFunction(function)[0]


def _find_non_builtin_globals(source: str, codeobj: types.CodeType) -> list[str]:
    """
    The global names, builtins left out, that the code of a function
    reads (execnet's name and signature; the source is not needed).
    """
    return globalNames(codeobj)


class RInfo:
    """
    What a gateway's interpreter is: C{executable}, C{version_info},
    C{platform}, C{cwd}, C{pid}.
    """

    def __init__(self, info: dict[str, Any]) -> None:
        """
        @param info: the fields, by name.
        """
        self.__dict__.update(info)

    def __repr__(self) -> str:
        return f"<RInfo {self.__dict__!r}>"


class Gateway(blocking.Gateway):
    """
    An execnet gateway: C{remote_exec}, C{remote_status}, C{exit},
    C{join}, C{hasreceiver}, C{newchannel}, C{_rinfo}, C{spec}, C{id},
    C{execmodel}, C{remote_execmodel}.  It takes new attributes.

    @ivar spec: the L{txexecnet.compat.XSpec} it was made from.
    @ivar group: the L{txexecnet.compat.Group} it belongs to.
    @ivar remoteaddress: the C{ssh=} value of an ssh gateway, C{host:port}
        of a socket gateway.
    @ivar execmodel: this side's L{ExecModel}.
    @ivar remote_execmodel: the remote side's L{ExecModel}.
    """

    channelClass = Channel
    spec: Any
    group: Any
    remoteaddress: str
    execmodel: ExecModel = get_execmodel("thread")
    remote_execmodel: ExecModel = get_execmodel("thread")
    _cache_rinfo: RInfo | None = None  # execnet's name: its users reset it

    def __init__(self, wrapped: Any) -> None:
        """
        @param wrapped: the L{txexecnet.Gateway} to stand for; made in the reactor thread.
        """
        super().__init__(wrapped)
        # execnet's rule, before any remote_exec: code does not close its
        # own channel (its channel.close() raises IOError).
        wrapped.codeMayClose = False

    def _rinfo(self, update: bool = False) -> RInfo:
        """
        What the remote interpreter is; asked once, then kept (its C{cwd}
        as it was then) unless C{update} asks it again.

        @param update: ask the remote side again.
        """
        if self._cache_rinfo is None or update:
            if update:
                channel = self.remote_exec(rinfo_source)
                info = channel.receive()
                # Until its code has ended, a main_thread_only remote refuses
                # the next remote_exec.
                channel.waitclose()
            else:
                # What the remote side said in its hello: no remote_exec,
                # which a main thread busy under main_thread_only would refuse.
                hello = self.remoteinfo
                info = dict(
                    executable=hello["executable"],
                    version_info=tuple(hello["version_info"]),
                    platform=hello["platform"],
                    cwd=hello["cwd"],
                    pid=hello["pid"],
                )
            self._cache_rinfo = RInfo(info)
        return self._cache_rinfo

    @property
    def _group(self) -> Any:
        return self.group

    @property
    def _channelfactory(self) -> ChannelFactory:
        # execnet's name: its users reach a gateway's channels through it.
        return ChannelFactory(self)

    def __repr__(self) -> str:
        state = "closed" if self.isTerminated() else "receive-live"
        return f"<Gateway id={self.id!r} {state}, {self.remote_execmodel.backend} model>"

    def exit(self, timeout: float = DEFAULT_EXIT_TIMEOUT) -> None:
        """
        Ask the remote side to end, and return, as execnet's C{exit} does:
        L{join} (or the group's C{terminate}) waits for it.  It is killed if
        it is still running after C{timeout} seconds.

        @param timeout: seconds remote code may go on running.
        """

        def ask() -> None:
            # Not waited for: several gateways end at once, as xdist's
            # teardown (an exit() each, then the group's terminate) expects.
            self.wrapped.exit(timeout).addErrback(lambda f: None)

        blocking.loop.call(ask)

    def hasreceiver(self) -> bool:
        """Whether the remote side is still there to talk to."""
        return not self.isTerminated()

    def join(self, timeout: float | None = None) -> None:
        """
        Wait until the remote side has ended (after L{exit}).

        @param timeout: seconds to wait; C{None} waits for ever.
        @raise TimeoutError: if it has not ended by then.
        """
        if timeout is None:
            blocking.loop.call(self.wrapped.whenTerminated)
            return

        def wait() -> Any:
            return self.wrapped.whenTerminated().addTimeout(timeout, blocking.loop.reactor)

        try:
            blocking.loop.call(wait)
        except defer.TimeoutError:
            raise TimeoutError(f"gateway {self.id} still running after {timeout} seconds") from None

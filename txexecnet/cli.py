"""
The C{txexecnet} command line::

    txexecnet exec -g popen -c "import sys; channel.send(sys.version)"
    txexecnet exec -g popen -g ssh=build.example --json job.py

runs code on one gateway or many and prints each item their channels send,
one a line (prefixed by the gateway's id when there are several).  A remote
exception prints the remote traceback; the exit status says what went
wrong (see L{main}).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from typing import Any, Callable, Sequence

from .errors import GatewayClosed, GatewayStartError, RemoteError, TimeoutError
from .output import OutputWriter, RemoteOutput

__all__ = ["main", "EXIT_OK", "EXIT_REMOTE_ERROR", "EXIT_FAILED", "EXIT_INTERRUPTED"]

#: The remote code finished everywhere.
EXIT_OK = 0
#: Remote code raised (or closed its channel with an error) somewhere.
EXIT_REMOTE_ERROR = 1
#: The command could not run the code somewhere: a bad spec or file, a
#: gateway that failed to start or ended early, a timeout.
EXIT_FAILED = 2
#: What a shell expects of a command ended by a signal: 128 + its number.
EXIT_INTERRUPTED: dict[int, int] = {
    signal.SIGINT: 128 + signal.SIGINT,
    signal.SIGTERM: 128 + signal.SIGTERM,
}

#: Seconds a gateway has to exit once its code has finished.
EXIT_GRACE = 5.0


def _format(item: Any) -> str:
    return item if isinstance(item, str) else repr(item)


def _jsonable(item: Any) -> Any:
    """C{item} as JSON can carry it: bytes as text (latin-1), sets and tuples as lists."""
    if isinstance(item, (bytes, bytearray)):
        return bytes(item).decode("latin-1")
    if isinstance(item, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in item]
    if isinstance(item, dict):
        return {str(k): _jsonable(v) for k, v in item.items()}
    if isinstance(item, complex):
        return repr(item)
    return item


class _Output:
    """Prints items, errors and the summary, as plain lines or JSON lines."""

    def __init__(self, asJson: bool, prefixed: bool) -> None:
        self._json = asJson
        self._prefixed = prefixed
        self._writer = OutputWriter()

    def item(self, gatewayId: str, item: Any) -> None:
        if self._json:
            line = json.dumps({"gateway": gatewayId, "item": _jsonable(item)})
        elif self._prefixed:
            line = f"{gatewayId}: {_format(item)}"
        else:
            line = _format(item)
        print(line, flush=True)

    def remoteError(self, gatewayId: str, formatted: str) -> None:
        if self._json:
            print(json.dumps({"gateway": gatewayId, "error": formatted}), flush=True)
        sys.stderr.write(f"remote error on {gatewayId}:\n{formatted}")
        if not formatted.endswith("\n"):
            sys.stderr.write("\n")

    def remoteOutput(self, output: RemoteOutput) -> None:
        if self._json:
            print(json.dumps(dataclasses.asdict(output)), flush=True)
        else:
            self._writer(output)

    def failure(self, what: str) -> None:
        if self._json:
            print(json.dumps({"failure": what}), flush=True)
        sys.stderr.write(f"txexecnet: {what}\n")


class _Fleet:
    """One run of C{txexecnet exec}: its gateways and how each fared."""

    def __init__(self, reactor: Any, output: _Output) -> None:
        from .group import Group

        self.reactor = reactor
        self.group = Group(reactor=reactor, output=output.remoteOutput)
        self.output = output
        self.raised: list[str] = []
        self.failed: list[str] = []
        self.signalled: int | None = None

    async def start(self, specs: list[str], concurrency: int) -> list[Any]:
        """Start a gateway per spec; report those that fail.  One result per spec, as makegateways."""
        results = await self.group.makegateways(specs, concurrency)
        for spec, result in zip(specs, results):
            if isinstance(result, GatewayStartError):
                self.failed.append(spec)
                self.output.failure(str(result))
        return results

    async def run(
        self, specs: list[str], source: str, timeout: float | None, concurrency: int
    ) -> None:
        from twisted.internet.defer import DeferredList, ensureDeferred

        await self.start(specs, concurrency)
        running = [ensureDeferred(self._runOn(gw, source, timeout)) for gw in self.group]
        await DeferredList(running)

    async def _runOn(self, gateway: Any, source: str, timeout: float | None) -> None:
        from twisted.internet.defer import CancelledError

        channel = gateway.remote_exec(source)
        while True:
            try:
                item = await channel.receive(timeout)
            except (EOFError, CancelledError):
                return
            except RemoteError as e:
                self.raised.append(gateway.id)
                self.output.remoteError(gateway.id, e.formatted)
                return
            except (GatewayClosed, TimeoutError) as e:
                self.failed.append(gateway.id)
                self.output.failure(f"{gateway.id}: {e}")
                gateway.kill()  # its code is still running: no grace
                return
            self.output.item(gateway.id, item)

    async def rsync(
        self,
        source: str,
        targets: list[tuple[str, str]],
        delete: bool,
        concurrency: int,
        report: Callable[[Any], None],
    ) -> None:
        from .rsync import RSync

        results = await self.start([spec for spec, _ in targets], concurrency)
        rsync = RSync(source, progress=report, reactor=self.reactor)
        for (_, dest), result in zip(targets, results):
            if not isinstance(result, GatewayStartError):
                rsync.add_target(result, dest, delete=delete)
        if len(self.failed) < len(targets):
            try:
                await rsync.send()
            except RemoteError as e:
                self.raised.append("a target")
                self.output.remoteError("a target", e.formatted)
            except (GatewayClosed, OSError) as e:
                self.failed.append("a target")
                self.output.failure(str(e))

    def end(self) -> Any:
        """Exit every gateway; kill at once those whose code still runs."""
        return self.group.terminate(0 if self.failed or self.signalled else EXIT_GRACE)

    def status(self) -> int:
        if self.signalled is not None:
            return EXIT_INTERRUPTED[self.signalled]
        if self.raised:
            return EXIT_REMOTE_ERROR
        return EXIT_FAILED if self.failed else EXIT_OK

    def summary(self, total: int) -> str | None:
        """One line on what went wrong, where there are several gateways."""
        if total < 2 or not (self.raised or self.failed):
            return None
        parts = [f"{total - len(self.raised) - len(self.failed)} of {total} gateways finished"]
        if self.raised:
            parts.append(f"remote code raised on {', '.join(self.raised)}")
        if self.failed:
            parts.append(f"failed: {', '.join(self.failed)}")
        return "; ".join(parts)


def _hostSpecs(path: str) -> list[str]:
    """
    The specs of a hosts file: one a line, C{#} comments and blank lines
    skipped; a line without C{=} that is not a kind of its own (C{popen},
    C{thread}) is an SSH host, C{[user@]host[:port]}.
    """
    specs = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            first = line.split("//", 1)[0]
            specs.append(line if "=" in first or first in ("popen", "thread") else f"ssh={line}")
    return specs


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="txexecnet",
        description="Run Python code in other interpreters: child processes, threads, "
        "hosts over SSH, socket servers. Nothing need be installed there but Python.",
    )
    parser.add_argument("--version", action="version", version=f"txexecnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "exec",
        help="run code on gateways; print what their channels send, one item a line",
        description="Run code on every gateway given and print each item its channel "
        "sends, one a line: prefixed by the gateway id when there are several.",
        epilog="exit status:\n"
        "  0    the code finished on every gateway\n"
        "  1    the code raised on a gateway\n"
        "  2    the code could not run on a gateway (bad spec or file, a gateway that\n"
        "       failed to start or was lost, a timeout)\n"
        "  130  after Ctrl-C; 143 after SIGTERM (the gateways are ended first)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "-g",
        "--gateway",
        action="append",
        default=[],
        metavar="SPEC",
        help="a gateway spec, as execnet writes it; repeat for several (default: popen)",
    )
    run.add_argument(
        "--hosts",
        metavar="FILE",
        help="a file of gateway specs or SSH hosts ([user@]host[:port]), one a line",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=8,
        metavar="N",
        help="gateways starting at once per target host (default: 8)",
    )
    run.add_argument(
        "--json", action="store_true", help="print JSON lines: {'gateway': ID, 'item': ITEM}"
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give a gateway up if no item arrives from it for this long",
    )
    copy = commands.add_parser(
        "rsync",
        help="copy a directory tree to gateways; only changes cross the wire",
        description="Copy the tree under SOURCE to DEST on each gateway SPEC, all at once: "
        "only files whose size and time (then checksum) differ are sent; symlinks and "
        "permission bits are kept. A progress bar on a terminal, plain lines otherwise.",
        epilog="exit status: as for exec (0 done, 1 remote error, 2 failure, 130, 143)",
    )
    copy.add_argument("source", metavar="SOURCE", help="the directory to copy")
    copy.add_argument(
        "targets",
        nargs="+",
        metavar="SPEC:DEST",
        help="a gateway spec and the remote directory, e.g. ssh=build.example:/srv/app",
    )
    copy.add_argument("--delete", action="store_true", help="remove what DEST holds beyond SOURCE")
    copy.add_argument(
        "--concurrency",
        type=int,
        default=8,
        metavar="N",
        help="gateways starting at once per target host (default: 8)",
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", dest="code", metavar="CODE", help="the code to run remotely")
    source.add_argument("file", nargs="?", help="a file of code to run remotely ('-' for stdin)")
    return parser


def _readSource(args: argparse.Namespace) -> str:
    if args.code is not None:
        return str(args.code)
    if args.file == "-":
        return sys.stdin.read()
    with open(args.file) as f:
        return f.read()


def _parseTargets(targets: list[str]) -> list[tuple[str, str]]:
    """C{SPEC:DEST} words as (spec, dest): split at the last colon, as specs may hold some."""
    parsed = []
    for word in targets:
        spec, sep, dest = word.rpartition(":")
        if not sep or not spec or not dest:
            raise ValueError(f"target {word!r}: write SPEC:DEST, e.g. popen:/tmp/copy")
        parsed.append((spec, dest))
    return parsed


def _progressReporter(stream: Any) -> Callable[[Any], None]:
    """A progress bar on a terminal (tqdm), else a plain line per tenth of the bytes."""
    if stream.isatty():
        from tqdm import tqdm  # type: ignore[import-untyped]

        bar = None

        def show(progress: Any) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=progress.bytes_total, unit="B", unit_scale=True, file=stream)
            bar.update(progress.bytes_done - bar.n)
            bar.set_postfix_str(f"{progress.files_done}/{progress.files_total} files")
            if progress.files_done == progress.files_total:
                bar.close()

        return show
    tenths = [-1]

    def line(progress: Any) -> None:
        tenth = progress.bytes_done * 10 // max(progress.bytes_total, 1)
        if tenth > tenths[0] or progress.files_done == progress.files_total:
            tenths[0] = tenth
            stream.write(
                f"{progress.files_done}/{progress.files_total} files, "
                f"{progress.bytes_done}/{progress.bytes_total} bytes\n"
            )
            stream.flush()

    return line


def _react(output: _Output, body: Callable[[_Fleet], Any], total: int) -> int:
    """Run C{body(fleet)} on a reactor; end the gateways however it ends; give the status."""
    from twisted.internet import defer, task

    status = []

    async def run(reactor: Any) -> None:
        fleet = _Fleet(reactor, output)

        def interrupted(signum: int, frame: Any) -> None:
            # Not the reactor's own handler, which stops it at once: the
            # gateways are ended first, and the status says which signal.
            fleet.signalled = signum
            reactor.callFromThread(stop.cancel)

        def install() -> None:
            for signum in EXIT_INTERRUPTED:
                signal.signal(signum, interrupted)

        reactor.callLater(0, install)  # after the reactor has installed its own
        stop = defer.ensureDeferred(body(fleet))
        try:
            await stop
        except defer.CancelledError:
            pass
        except ValueError as e:
            output.failure(str(e))
            fleet.failed.append("the specs")
        finally:
            await fleet.end()
        line = fleet.summary(total)
        if line:
            sys.stderr.write(f"txexecnet: {line}\n")
        status.append(fleet.status())

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code:
            return int(e.code)
    return status[0] if status else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line; return the exit status: 0 when the work is done
    on every gateway, 1 when remote code raised on one, 2 when it could not
    be done on one (or a usage error), 130 after Ctrl-C and 143 after
    SIGTERM, once every gateway has ended.

    @param argv: the arguments (default: C{sys.argv[1:]}).
    """
    args = _parser().parse_args(argv)
    if args.concurrency < 1:
        sys.stderr.write("txexecnet: --concurrency must be at least 1\n")
        return EXIT_FAILED
    if args.command == "rsync":
        try:
            targets = _parseTargets(args.targets)
        except ValueError as e:
            sys.stderr.write(f"txexecnet: {e}\n")
            return EXIT_FAILED
        if not os.path.isdir(args.source):
            sys.stderr.write(f"txexecnet: {args.source}: not a directory\n")
            return EXIT_FAILED
        report = _progressReporter(sys.stdout)
        output = _Output(False, prefixed=True)
        return _react(
            output,
            lambda fleet: fleet.rsync(args.source, targets, args.delete, args.concurrency, report),
            len(targets),
        )
    try:
        source = _readSource(args)
        specs = list(args.gateway)
        if args.hosts:
            specs += _hostSpecs(args.hosts)
    except OSError as e:
        sys.stderr.write(f"txexecnet: cannot read {e.filename}: {e.strerror}\n")
        return EXIT_FAILED
    specs = specs or ["popen"]
    output = _Output(args.json, prefixed=len(specs) > 1)
    return _react(
        output,
        lambda fleet: fleet.run(specs, source, args.timeout, args.concurrency),
        len(specs),
    )


if __name__ == "__main__":
    sys.exit(main())

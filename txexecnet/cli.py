"""
The C{txexecnet} command line::

    txexecnet exec -g popen -c "import sys; channel.send(sys.version)"

runs code on a gateway and prints each item its channel sends, one a line.
A remote exception prints the remote traceback and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

__all__ = ["main"]


def _format(item: Any) -> str:
    return item if isinstance(item, str) else repr(item)


async def _run(reactor: Any, spec: str, source: str, timeout: float | None) -> int:
    from . import RemoteError, makegateway

    gateway = await makegateway(spec, reactor)
    try:
        channel = gateway.remote_exec(source)
        while True:
            try:
                item = await channel.receive(timeout)
            except EOFError:
                return 0
            except RemoteError as e:
                sys.stderr.write(f"remote error on {gateway.id}:\n{e.formatted}")
                if not e.formatted.endswith("\n"):
                    sys.stderr.write("\n")
                return 1
            print(_format(item), flush=True)
    finally:
        await gateway.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="txexecnet", description="Run Python code in another interpreter."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "exec", help="run code on a gateway; print what its channel sends, one item a line"
    )
    run.add_argument(
        "-g",
        "--gateway",
        default="popen",
        metavar="SPEC",
        help="gateway spec, as execnet writes it (default: popen)",
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", dest="code", metavar="CODE", help="the code to run remotely")
    source.add_argument("file", nargs="?", help="a file of code to run remotely ('-' for stdin)")
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fail if no item arrives for this long",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line; return the exit status.

    @param argv: the arguments (default: C{sys.argv[1:]}).
    """
    args = _parser().parse_args(argv)
    if args.code is not None:
        source = args.code
    elif args.file == "-":
        source = sys.stdin.read()
    else:
        with open(args.file) as f:
            source = f.read()

    from twisted.internet import defer, task

    from . import GatewayClosed, TimeoutError

    status = []

    async def run(reactor: Any) -> None:
        try:
            status.append(await _run(reactor, args.gateway, source, args.timeout))
        except (GatewayClosed, TimeoutError, ValueError) as e:
            sys.stderr.write(f"txexecnet: {e}\n")
            status.append(2)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code:
            return int(e.code)
    return status[0] if status else 1


if __name__ == "__main__":
    sys.exit(main())

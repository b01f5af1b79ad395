"""
Metric 8, SSH gateways, against a throwaway OpenSSH sshd on 127.0.0.1 (see
L{benchmarks.sshd}) that the metric's fixture starts once and stops at the
end:

  - gateway start: a new SSH connection each time (key exchange, public key
    authentication, the remote interpreter started by the login shell), one
    round trip of a small int on a fresh channel, exit; as in L{.start}, one
    uncounted start, then C{starts} timed ones;
  - throughput of 1 MiB bytes items, local -> remote and remote -> local, on
    one gateway, with the transfer workloads of L{.throughput}.

txexecnet runs over Conch (its default, with both APIs) and, in a row of its
own, over the system C{ssh} binary (C{//ssh_client=openssh}, Deferred API);
execnet always runs the C{ssh} binary.  The remote interpreter is
C{/usr/bin/python3} for all.

execnet always passes C{-C} (compression) to ssh, and that cannot be turned
off from its spec; Conch and C{ssh_client=openssh} do not compress.  So
throughput is measured twice: with items of random bytes, which zlib cannot
shrink (the rows compare transports), and with the b"x" items of the popen
metrics, which zlib shrinks a thousandfold (what execnet gains by -C).

Raw limit: the C{ssh} binary without compression running a bare remote
C{python3 -I -S}: C{-c pass} for the start, the raw pipe's sink and source
programs for throughput.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ..common import (
    Samples,
    deferred,
    gateway,
    gateway_starts,
    library_workloads,
    spec_for,
    tx_gateway,
    tx_gateway_starts,
)
from ..registry import (
    HIGHER,
    LOWER,
    RAW,
    TX_OPENSSH,
    Measure,
    Metric,
    register,
    repeat,
)
from ..sshd import running_sshd, unavailable
from . import start, throughput


def _params(quick: bool) -> dict[str, Any]:
    return {
        "starts": 3 if quick else 7,
        "size": 1 << 20,
        "count": 32 if quick else 64,
        "rounds": 1 if quick else 2,
    }


@contextlib.contextmanager
def _sshd(quick: bool) -> Iterator[dict[str, Any]]:
    """Start sshd; yield each implementation's spec and the raw limit's ssh command."""
    with running_sshd() as server:
        tx = (
            f"ssh={server.destination()}:{server.port}//python={server.python}"
            f"//ssh_identity={server.key}//ssh_known_hosts={server.known_hosts}"
            f"//ssh_config={server.config}"
        )
        ssh_options = " ".join(
            server.ssh_options()[2:]
        )  # all but -F: execnet's ssh_config= adds it
        yield {
            "specs": {
                "execnet": f"ssh={ssh_options} {server.destination()}"
                f"//python={server.python}//ssh_config={server.config}",
                "txexecnet": tx,
                TX_OPENSSH: f"{tx}//ssh_client=openssh",
            },
            "raw_ssh": ["ssh", *server.ssh_options(), server.destination()],
            "raw_python": server.python,
        }


#: Throughput measures: key -> (item kind, direction).
_TRANSFERS = {
    "up": ("random", "up"),
    "down": ("random", "down"),
    "up-x": ("bytes", "up"),
    "down-x": ("bytes", "down"),
}


def _transfer_params(params: dict[str, Any], key: str) -> dict[str, Any]:
    kind, direction = _TRANSFERS[key]
    return {**params, "kind": kind, "direction": direction}


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet or txexecnet.blocking: the starts, then every transfer on one gateway."""
    spec = lib.spec(params)
    samples = {"start": gateway_starts(lib, spec, params["starts"])}
    with gateway(lib, spec) as gw:
        for key in _TRANSFERS:
            transfer = _transfer_params(params, key)
            samples[key] = throughput.rates(transfer, throughput.transfer_blocking(gw, transfer))[
                "mbps"
            ]
    return samples


async def _deferred(reactor: Any, params: dict[str, Any], spec: str) -> Samples:
    samples = {"start": await tx_gateway_starts(reactor, spec, params["starts"])}
    async with tx_gateway(reactor, spec) as gw:
        for key in _TRANSFERS:
            transfer = _transfer_params(params, key)
            samples[key] = throughput.rates(
                transfer, await throughput.transfer_deferred(gw, transfer)
            )["mbps"]
    return samples


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API over Conch."""
    return await _deferred(reactor, params, spec_for("txexecnet", params))


@deferred
async def run_openssh(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet's Deferred API over the ssh binary (C{//ssh_client=openssh})."""
    return await _deferred(reactor, params, spec_for(TX_OPENSSH, params))


def run_raw(params: dict[str, Any]) -> Samples:
    """The ssh binary running a bare remote interpreter: start, then raw transfers."""
    samples = {"start": start.run_raw({**params, "count": params["starts"]})["time"]}
    for key in ("up", "down"):  # raw ssh does not compress: the kind of item does not matter
        samples[key] = throughput.run_raw(_transfer_params(params, key))["mbps"]
    return samples


register(
    Metric(
        name="ssh",
        title="SSH gateway",
        measures=(
            Measure("start", "start (new connection, round trip, exit)", "ms", LOWER),
            Measure("up", "1MiB random items local->remote", "MB/s", HIGHER),
            Measure("down", "1MiB random items remote->local", "MB/s", HIGHER),
            Measure("up-x", "1MiB b'x' items local->remote", "MB/s", HIGHER),
            Measure("down-x", "1MiB b'x' items remote->local", "MB/s", HIGHER),
        ),
        workloads={
            **library_workloads(_blocking, run_deferred),
            TX_OPENSSH: run_openssh,
            RAW: run_raw,
        },
        params=_params,
        repetitions=repeat(3, 1),
        available=unavailable,
        fixture=_sshd,
    )
)

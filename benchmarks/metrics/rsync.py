"""
Metric 10, rsync: copy a tree of 1,000 small files and one of 32 MiB to two
popen gateways at once (fresh destinations), then send it again unchanged.
Measures the wall time of each send; making the tree and the gateways is
not timed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

from ..common import Samples, deferred, library_workloads, tx_group
from ..registry import LOWER, Measure, Metric, register, repeat


def _params(quick: bool) -> dict[str, Any]:
    return {"files": 200 if quick else 1000, "big": (8 if quick else 32) * 1024 * 1024}


def _tree(params: dict[str, Any]) -> str:
    root = tempfile.mkdtemp(prefix="bench-rsync-")
    source = os.path.join(root, "src")
    for i in range(params["files"]):
        d = os.path.join(source, f"d{i % 10}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
            f.write(os.urandom(4096))
    with open(os.path.join(source, "big.bin"), "wb") as f:
        f.write(os.urandom(params["big"]))
    return root


def _blocking(lib: Any, params: dict[str, Any]) -> Samples:
    """execnet.RSync or txexecnet.blocking.RSync, to two popen gateways."""
    if lib.library == "execnet":
        import execnet

        def make(source: str) -> Any:
            return execnet.RSync(source, verbose=False)
    else:
        from txexecnet import blocking

        make = blocking.RSync
    root = _tree(params)
    source = os.path.join(root, "src")
    gateways = [lib.makegateway("popen") for _ in range(2)]
    samples: Samples = {"full": [], "again": []}
    try:
        for key in ("full", "again"):
            rsync = make(source)
            for i, gw in enumerate(gateways):
                rsync.add_target(gw, os.path.join(root, f"dest{i}"))
            start = time.perf_counter()
            rsync.send()
            samples[key].append((time.perf_counter() - start) * 1e3)
    finally:
        for gw in gateways:
            lib.exit(gw)
        shutil.rmtree(root)
    return samples


@deferred
async def run_deferred(reactor: Any, params: dict[str, Any]) -> Samples:
    """txexecnet.rsync.RSync with the Deferred API, to two popen gateways."""
    from txexecnet.rsync import RSync

    root = _tree(params)
    source = os.path.join(root, "src")
    group = tx_group(reactor)
    gateways = [await group.makegateway("popen") for _ in range(2)]
    samples: Samples = {"full": [], "again": []}
    try:
        for key in ("full", "again"):
            rsync = RSync(source, reactor=reactor)
            for i, gw in enumerate(gateways):
                rsync.add_target(gw, os.path.join(root, f"dest{i}"))
            start = time.perf_counter()
            await rsync.send()
            samples[key].append((time.perf_counter() - start) * 1e3)
    finally:
        await group.terminate()
        shutil.rmtree(root)
    return samples


register(
    Metric(
        name="rsync",
        title="rsync of 1,000 files + 32 MiB to 2 gateways",
        measures=(
            Measure("full", "first copy", "ms", LOWER),
            Measure("again", "unchanged resend", "ms", LOWER),
        ),
        workloads=library_workloads(_blocking, run_deferred),
        params=_params,
        repetitions=repeat(3, 1),
    )
)

"""
Put on PYTHONPATH by upstream/run.py in compat mode: every Python process
of the run (pytest, pytester's inner runs, the gateways' interpreters and
pytest-xdist's workers started from it) registers txexecnet.compat as
C{execnet} before anything imports execnet.

If txexecnet.compat cannot be installed, C{import execnet} fails in that
process instead of falling back to the real execnet.
"""

import os
import sys

if os.environ.get("TXEXECNET_UPSTREAM_COMPAT") == "site":
    try:
        import txexecnet.compat

        txexecnet.compat.install()
    except Exception as e:  # noqa: BLE001 - any failure must stop execnet imports
        sys.modules["execnet"] = None  # type: ignore[assignment]
        sys.stderr.write(
            f"upstream/shim/sitecustomize.py: txexecnet.compat.install() failed: {e!r};"
            " 'import execnet' fails in this process\n"
        )

"""
pytest-xdist on txexecnet: C{pytest -p txexecnet.xdist -n 4} runs xdist's
workers on txexecnet gateways.

Importing this plugin makes C{import execnet} give L{txexecnet.compat}
(see L{txexecnet.compat.install}), so it must be loaded before
pytest-xdist imports execnet: with C{-p txexecnet.xdist} on the command
line, in C{PYTEST_ADDOPTS}, or in the C{PYTEST_PLUGINS} environment
variable.  Workers import execnet themselves; there it may be the real one
(for C{execnet.dumps}) or, where it is not installed, the remote runtime's
stand-in.
"""

from __future__ import annotations

import os
import sys
import warnings

if "execnet" not in sys.modules:
    from .compat import install

    install()
elif "PYTEST_XDIST_WORKER" not in os.environ:
    # (In xdist's workers the plugins of the command line load after xdist's
    # worker code has imported execnet: there it is not needed.)
    warnings.warn(
        "txexecnet.xdist was loaded after execnet was imported, so pytest-xdist runs on "
        "execnet: load it with -p txexecnet.xdist or PYTEST_PLUGINS",
        stacklevel=1,
    )

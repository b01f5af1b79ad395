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

In a worker, what the tests print with C{-s} comes back to the
controller's terminal, each line prefixed with the worker's id; the
worker's own report, which xdist's controller already shows, is not
printed twice.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import pytest

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


#: The worker's C{sys.stdout} while its terminal reporter is made.
_WORKER_STDOUT = pytest.StashKey[Any]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: Any) -> None:
    """
    In a worker, give the terminal reporter (made in this hook, writing to
    the C{sys.stdout} of the moment) a file that goes nowhere, as execnet's
    workers' stdout does: only what the tests write is sent back.

    @param config: pytest's configuration, of the controller or a worker.
    """
    # xdist documents C{config.workerinput} as how a plugin knows it runs in
    # a worker; the environment would also mark pytest runs the tests start.
    if getattr(config, "workerinput", None) is not None:
        config.stash[_WORKER_STDOUT] = sys.stdout
        sys.stdout = open(os.devnull, "w")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: Any) -> None:
    """
    The tests' C{sys.stdout} is the worker's own again.

    @param session: the pytest session starting.
    """
    stdout = session.config.stash.get(_WORKER_STDOUT, None)
    if stdout is not None:
        sys.stdout = stdout  # the reporter keeps writing to the other

"""
A throwaway OpenSSH server on 127.0.0.1 for the upstream suites: the
project's C{tests/sshd.py} (keys, known_hosts, client config, pid file),
whose sessions get a C{PATH} where C{python} is a given interpreter (the
suites make C{ssh=...} gateways without C{python=}, and execnet then runs
C{python} on the other side), and an execnet-style C{ssh=} value for it.

Used by C{upstream/execnet_conftest.py} for execnet's C{specssh}.
(pytest-xdist's one ssh test, C{test_ssh_setup_nodes}, is left to skip
without C{--gx}: given an ssh spec it fails on the real packages too, as it
expects one report per test where xdist now sends three.)
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"


def _load(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def start(directory: Path, python: str) -> Any:
    """
    Start an sshd whose files live in C{directory}; C{python} on its
    sessions' PATH runs C{python}.  Returns the running C{SshServer} (stop it
    with C{.stop()}); raises L{FileNotFoundError} if sshd is not installed.
    """
    # tests/sshd.py does "from processes import ...".
    _load("processes", TESTS / "processes.py")
    sshd = _load("txexecnet_tests_sshd", TESTS / "sshd.py")
    if not os.path.exists(sshd.SSHD):
        raise FileNotFoundError(f"{sshd.SSHD} is missing: install openssh-server")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    bindir = directory / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    wrapper = bindir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {python} "$@"\n')
    wrapper.chmod(0o755)
    # sshd takes the first SetEnv line only: add PATH to the one it has.
    original = sshd.__dict__.setdefault("_upstreamConfig", sshd._CONFIG)
    setenv = "SetEnv SHLVL=1\n"
    if setenv not in original:
        raise RuntimeError("tests/sshd.py changed its sshd_config: update upstream/local_sshd.py")
    sshd._CONFIG = original.replace(
        setenv, f"SetEnv SHLVL=1 PATH={bindir}:/usr/local/bin:/usr/bin:/bin\n"
    )
    server = sshd.SshServer(str(directory))
    server.start()
    return server


def sshValue(server: Any) -> str:
    """The C{ssh=} value of an execnet spec for C{server}: ssh's own options."""
    return " ".join(
        [
            f"-p {server.port}",
            f"-i {server.clientKey}",
            f"-F {server.clientConfig}",  # no agent, no ~/.ssh/config
            f"-o UserKnownHostsFile={server.knownHosts}",
            "-o StrictHostKeyChecking=yes",
            "-o BatchMode=yes",
            "-o ConnectTimeout=10",
            f"{server.user}@127.0.0.1",
        ]
    )

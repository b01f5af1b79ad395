"""
A replacement for execnet 2.1.2's ``testing/conftest.py``, copied over it
in the harness's unpacked copy of the suite (see ``upstream/run.py``).

It gives the upstream fixtures the same names, parameters and semantics
(``gw`` over popen, socket, ssh and proxy; ``execmodel`` over thread,
main_thread_only, eventlet and gevent; ``group``, ``group_function``,
``makegateway``, ``specssh``, ``specsocket``, ``anypython``, ``pool``), with
two differences:

* It imports only ``execnet`` at the top and reaches every other name when
  a fixture needs it (``execnet.Group``, ``execnet.XSpec``,
  ``execnet.gateway_base.get_execmodel`` or else ``Group(execmodel=...)``,
  ``execnet.gateway_base.WorkerPool``), so an execnet-compatible module that
  lacks an internal name fails only the tests that use it.
* ``specssh`` is a throwaway OpenSSH server on 127.0.0.1 (the project's
  ``tests/sshd.py``, through ``upstream/local_sshd.py``) unless
  ``--gx ssh=...`` is given: an execnet-style spec, ``ssh=-p PORT -i KEY
  -F CONFIG -o UserKnownHostsFile=... user@127.0.0.1``.  The server's
  sessions get a ``PATH`` whose ``python`` is the interpreter running the
  tests, since the suite makes ``ssh=...`` gateways without ``python=``
  (execnet then runs ``python`` on the remote side).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import execnet
import pytest

if TYPE_CHECKING:
    from execnet.gateway import Gateway
    from execnet.gateway_base import ExecModel, WorkerPool

collect_ignore = ["build", "doc/_build"]

rsyncdirs = ["conftest.py", "execnet", "testing", "doc"]

pytest_plugins = ["pytester", "doctest"]

#: The txexecnet checkout (for upstream/local_sshd.py); run.py sets it, since
#: this file runs from a copy outside the repository.
REPO = os.environ.get("TXEXECNET_UPSTREAM_REPO", "")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"execnet under test: {execnet.__name__} from {getattr(execnet, '__file__', '?')}"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if item.path.stem in ("test_group", "test_info"):
        getspecssh(item.config)  # will skip if no ssh spec can be had
    yield
    if "pypy" in item.keywords and not item.config.option.pypy:
        pytest.skip("pypy tests skipped, use --pypy to run them.")


@pytest.fixture
def group_function() -> Iterator[execnet.Group]:
    group = execnet.Group()
    yield group
    group.terminate(0.5)


@pytest.fixture
def makegateway(group_function: execnet.Group) -> Callable[[str], Gateway]:
    return group_function.makegateway


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("execnet", "execnet testing options")
    group.addoption(
        "--gx",
        action="append",
        dest="gspecs",
        default=None,
        help="add a global test environment, XSpec-syntax (default for ssh: a local sshd)",
    )
    group.addoption(
        "--pypy",
        action="store_true",
        dest="pypy",
        help="run some tests also against pypy",
    )
    group.addoption(
        "--broken-isp",
        action="store_true",
        dest="broken_isp",
        help=(
            "Skips tests that assume your ISP doesn't put up a landing page on invalid addresses"
        ),
    )


# -- the throwaway sshd ------------------------------------------------------

_server: Any = None


def _localSshSpec(config: pytest.Config) -> execnet.XSpec:
    """An ssh spec for upstream/local_sshd.py's server, started once per session."""
    global _server
    helper = os.path.join(REPO, "upstream", "local_sshd.py")
    if not os.path.exists(helper):
        pytest.skip("TXEXECNET_UPSTREAM_REPO does not point at the txexecnet checkout")
    if _server is None:
        spec = importlib.util.spec_from_file_location("txexecnet_upstream_local_sshd", helper)
        assert spec is not None and spec.loader is not None
        local = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(local)
        directory = pathlib.Path(tempfile.mkdtemp(prefix="execnet-upstream-sshd-"))
        config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
        try:
            server = local.start(directory, sys.executable)
        except FileNotFoundError as e:
            pytest.skip(str(e))
        config.add_cleanup(server.stop)  # runs before the rmtree above
        _server = (server, local.sshValue(server))
    return execnet.XSpec(f"ssh={_server[1]}")


# -- specs -------------------------------------------------------------------


@pytest.fixture
def specssh(request: pytest.FixtureRequest) -> execnet.XSpec:
    return getspecssh(request.config)


@pytest.fixture
def specsocket(request: pytest.FixtureRequest) -> execnet.XSpec:
    return getsocketspec(request.config)


def getgspecs(config: pytest.Config) -> list[execnet.XSpec]:
    return [execnet.XSpec(gspec) for gspec in config.getvalueorskip("gspecs")]


def getspecssh(config: pytest.Config) -> execnet.XSpec:
    if not shutil.which("ssh"):
        pytest.skip("command not found: ssh")
    for spec in [execnet.XSpec(g) for g in config.getoption("gspecs") or ()]:
        if spec.ssh:
            return spec
    return _localSshSpec(config)


def getsocketspec(config: pytest.Config) -> execnet.XSpec:
    xspecs = getgspecs(config)
    for spec in xspecs:
        if spec.socket:
            return spec
    pytest.skip("need '--gx socket=...'")


# -- gateways, execution models, pools ---------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gw" in metafunc.fixturenames:
        assert "anypython" not in metafunc.fixturenames, "need combine?"
        if hasattr(metafunc.function, "gwtypes"):
            gwtypes = metafunc.function.gwtypes
        elif hasattr(metafunc.cls, "gwtype"):
            gwtypes = [metafunc.cls.gwtype]
        else:
            gwtypes = ["popen", "socket", "ssh", "proxy"]
        metafunc.parametrize("gw", gwtypes, indirect=True)


@lru_cache
def getexecutable(name: str) -> str | None:
    if name == "sys.executable":
        return sys.executable
    return shutil.which(name)


@pytest.fixture(params=("sys.executable", "pypy3"))
def anypython(request: pytest.FixtureRequest) -> str:
    name = request.param
    executable = getexecutable(name)
    if executable is None:
        pytest.skip(f"no {name} found")
    if "execmodel" in request.fixturenames and name != "sys.executable":
        backend = request.getfixturevalue("execmodel").backend
        if backend not in ("thread", "main_thread_only"):
            pytest.xfail(f"cannot run {backend!r} execmodel with bare {name}")
    return executable


@pytest.fixture(scope="session")
def group() -> Iterator[execnet.Group]:
    g = execnet.Group()
    yield g
    g.terminate(timeout=1)


@pytest.fixture
def gw(
    request: pytest.FixtureRequest,
    execmodel: ExecModel,
    group: execnet.Group,
) -> Gateway:
    try:
        return group[request.param]
    except KeyError:
        if request.param == "popen":
            gw = group.makegateway(f"popen//id=popen//execmodel={execmodel.backend}")
        elif request.param == "socket":
            pname = "sproxy1"
            if pname not in group:
                proxygw = group.makegateway(f"popen//id={pname}")
            gw = group.makegateway(
                f"socket//id=socket//installvia={pname}//execmodel={execmodel.backend}"
            )
            gw.proxygw = proxygw  # type: ignore[attr-defined]
            assert pname in group
        elif request.param == "ssh":
            sshhost = request.getfixturevalue("specssh").ssh
            # as upstream: the execmodel is not passed on to ssh gateways
            gw = group.makegateway(f"ssh={sshhost}//id=ssh")
        elif request.param == "proxy":
            group.makegateway("popen//id=proxy-transport")
            gw = group.makegateway(
                f"popen//via=proxy-transport//id=proxy//execmodel={execmodel.backend}"
            )
        else:
            assert 0, f"unknown execmodel: {request.param}"
        return gw


def _get_execmodel(backend: str) -> ExecModel:
    """execnet.gateway_base.get_execmodel where there is one, else a Group's."""
    base = getattr(execnet, "gateway_base", None)
    if base is None:
        try:
            import execnet.gateway_base as base
        except ImportError:
            base = None
    get = getattr(base, "get_execmodel", None)
    if get is not None:
        return get(backend)
    return execnet.Group(execmodel=backend).execmodel


@pytest.fixture(params=["thread", "main_thread_only", "eventlet", "gevent"], scope="session")
def execmodel(request: pytest.FixtureRequest) -> ExecModel:
    if request.param not in ("thread", "main_thread_only"):
        pytest.importorskip(request.param)
    if request.param in ("eventlet", "gevent") and sys.platform == "win32":
        pytest.xfail(request.param + " does not work on win32")
    return _get_execmodel(request.param)


@pytest.fixture
def pool(execmodel: ExecModel) -> WorkerPool:
    from execnet.gateway_base import WorkerPool

    return WorkerPool(execmodel=execmodel)

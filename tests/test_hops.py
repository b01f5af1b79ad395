"""
Container and privilege hops (docker=, kubectl=, sudo=), for real: shim
executables on PATH check their argv against the documented form of the
real tool, record it, and then run the Python command they were given.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest
import pytest_twisted

import txexecnet
from txexecnet.transports.ssh.options import SshOptions

T = 30

#: Each shim: how it splits its argv into (what it checked, the command to run).
SHIMS = {
    "docker": """
        # docker exec [OPTIONS] CONTAINER COMMAND [ARG...]
        assert args[0] == "exec", args
        rest = args[1:]
        flags = []
        while rest[0].startswith("-"):
            flags.append(rest.pop(0))
        assert "-i" in flags or "--interactive" in flags, flags
        container, command = rest[0], rest[1:]
        checked = {"container": container}
    """,
    "kubectl": """
        # kubectl [--context CTX] exec -i [-n NS] POD [-c CONTAINER] -- COMMAND [ARG...]
        checked = {}
        if args[0] == "--context":
            checked["context"], args = args[1], args[2:]
        assert args[0] == "exec", args
        split = args.index("--")
        before, command = args[1:split], args[split + 1:]
        assert "-i" in before, before
        before.remove("-i")
        for flag, key in (("-n", "namespace"), ("-c", "container")):
            if flag in before:
                at = before.index(flag)
                checked[key] = before[at + 1]
                del before[at:at + 2]
        assert len(before) == 1, before
        checked["pod"] = before[0]
    """,
    "sudo": """
        # sudo -n -u USER -- COMMAND [ARG...]
        assert args[:2] == ["-n", "-u"] and args[3] == "--", args
        checked = {"user": args[2]}
        command = args[4:]
    """,
}


def writeShims(bindir, log) -> None:
    for name, body in SHIMS.items():
        path = bindir / name
        path.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys\n"
            "args = sys.argv[1:]\n"
            "try:\n"
            + textwrap.indent(textwrap.dedent(body), "    ")
            + "except (AssertionError, IndexError, ValueError) as e:\n"
            f"    sys.stderr.write('{name}: bad command line: %r\\n' % (sys.argv,))\n"
            "    sys.exit(125)\n"
            f"with open({str(log)!r}, 'a') as f:\n"
            f"    f.write(json.dumps({{'tool': {name!r}, 'checked': checked, 'command': command}}) + '\\n')\n"
            "os.execvp(command[0], command)\n"
        )
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def shims(tmp_path, monkeypatch):
    """Shims first on PATH; returns a function giving what they recorded."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "shims.log"
    writeShims(bindir, log)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def recorded():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return recorded


async def roundTrip(gw) -> int:
    ch = gw.remote_exec("channel.send(channel.receive() + 1)")
    await ch.send(41)
    return await ch.receive(T)


@pytest_twisted.ensureDeferred
async def test_a_docker_gateway_runs_python_through_docker_exec(shims):
    gw = await txexecnet.makegateway("docker=web-1//python=python3//env:STAGE=test")
    try:
        assert await roundTrip(gw) == 42
        stage = gw.remote_exec("import os\nchannel.send(os.environ['STAGE'])")
        assert await stage.receive(T) == "test"
    finally:
        await gw.exit(T)
    [record] = shims()
    assert record["tool"] == "docker" and record["checked"] == {"container": "web-1"}
    assert record["command"][:2] == ["python3", "-u"]


@pytest_twisted.ensureDeferred
async def test_a_kubectl_gateway_names_pod_namespace_context_and_container(shims):
    spec = "kubectl=api-0//kubectl_namespace=prod//kubectl_context=east//container=app"
    gw = await txexecnet.makegateway(spec)
    try:
        assert await roundTrip(gw) == 42
    finally:
        await gw.exit(T)
    [record] = shims()
    assert record["checked"] == {
        "context": "east",
        "namespace": "prod",
        "container": "app",
        "pod": "api-0",
    }


@pytest_twisted.ensureDeferred
async def test_sudo_runs_the_popen_interpreter_as_another_user_without_prompting(shims):
    gw = await txexecnet.makegateway("popen//sudo=deploy")
    try:
        assert await roundTrip(gw) == 42
    finally:
        await gw.exit(T)
    [record] = shims()
    assert record["checked"] == {"user": "deploy"} and record["command"][0] == sys.executable


@pytest_twisted.ensureDeferred
async def test_sudo_through_a_via_hop(shims):
    group = txexecnet.Group(["popen//id=hop"])
    try:
        await group.whenStarted()
        [gw] = await group.makegateways(["popen//via=hop//sudo=deploy//python=python3"])
        assert await roundTrip(gw) == 42
    finally:
        await group.terminate(T)
    [record] = shims()
    assert record["checked"] == {"user": "deploy"} and record["command"][0] == "python3"


def test_sudo_on_ssh_runs_the_remote_interpreter_through_sudo():
    options = SshOptions.fromSpec(txexecnet.XSpec("ssh=host//sudo=deploy//python=python3.12"))
    assert options.python == "sudo -n -u deploy -- python3.12"


@pytest_twisted.ensureDeferred
async def test_a_missing_tool_fails_the_start_with_its_name(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(txexecnet.GatewayStartError, match="no 'docker' on PATH"):
        await txexecnet.makegateway("docker=web-1")


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("docker=c//via=x", "via cannot be used with a docker gateway"),
        ("thread//sudo=root", "sudo cannot be used with a thread gateway"),
        ("popen//container=app", "container cannot be used with a popen gateway"),
    ],
)
def test_hop_options_are_refused_where_they_mean_nothing(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        txexecnet.XSpec(spec)

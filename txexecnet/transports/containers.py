"""
Gateways into containers and as other users: a L{CommandTransport} running
the tool that gives a stdio pipe to a Python there.

  - C{docker=CONTAINER}: C{docker exec -i CONTAINER python3 ...}, into a
    running container;
  - C{kubectl=POD}: C{kubectl [--context C] exec -i [-n NS] POD [-c
    CONTAINER] -- python3 ...}, into a pod's container;
  - C{sudo=USER} on a popen or ssh spec: C{sudo -n -u USER -- python3 ...},
    never prompting for a password (C{-n}).
"""

from __future__ import annotations

import shlex
from typing import Any

from ..bootstrap import pythonArgs
from ..interfaces import IGatewayTransport
from .command import CommandTransport

__all__ = ["DockerTransport", "KubectlTransport", "sudoCommand", "sudoPython", "transportForSpec"]

#: The interpreter a container is expected to have.
CONTAINER_PYTHON = "python3"


def _words(python: str | None) -> list[str]:
    words = shlex.split(python or CONTAINER_PYTHON)
    if not words:
        raise ValueError("python= is empty")
    return words


def sudoPython(user: str, python: list[str]) -> list[str]:
    """
    The command line that runs C{python} as C{user} with C{sudo}, which
    fails rather than asks for a password.

    @param user: the user to run as.
    @param python: the interpreter's command line, as words.
    """
    return ["sudo", "-n", "-u", user, "--", *python]


def sudoCommand(user: str, python: str | None) -> str:
    """
    L{sudoPython} as one shell command line, for an interpreter started on
    another host or by a hop (C{python} by default C{python3}).

    @param user: the user to run as.
    @param python: the interpreter's command line, as a shell would read it.
    """
    return shlex.join(sudoPython(user, shlex.split(python or "python3")))


class DockerTransport(CommandTransport):
    """C{docker exec -i CONTAINER PYTHON}: a Python in a running container."""

    def __init__(
        self, container: str, python: str | None = None, dontWriteBytecode: bool = False
    ) -> None:
        """
        @param container: the container's name or id.
        @param python: the interpreter inside, as a shell would split it
            (default C{python3}).
        @param dontWriteBytecode: pass C{-B} to it.
        @raise ValueError: for an empty C{python}.
        """
        CommandTransport.__init__(
            self,
            ["docker", "exec", "-i", container, *pythonArgs(_words(python), dontWriteBytecode)],
            f"docker {container}",
            missing="no {executable!r} on PATH (needed by docker= gateways)",
        )


class KubectlTransport(CommandTransport):
    """C{kubectl exec -i POD -- PYTHON}: a Python in a pod's container."""

    def __init__(
        self,
        pod: str,
        namespace: str | None = None,
        context: str | None = None,
        container: str | None = None,
        python: str | None = None,
        dontWriteBytecode: bool = False,
    ) -> None:
        """
        @param pod: the pod's name.
        @param namespace: its namespace (default: the context's).
        @param context: the kubeconfig context to use (default: the current one).
        @param container: the container in the pod (default: kubectl's choice).
        @param python: the interpreter inside (default C{python3}).
        @param dontWriteBytecode: pass C{-B} to it.
        @raise ValueError: for an empty C{python}.
        """
        argv = ["kubectl"]
        if context:
            argv += ["--context", context]
        argv += ["exec", "-i"]
        if namespace:
            argv += ["-n", namespace]
        argv.append(pod)
        if container:
            argv += ["-c", container]
        argv += ["--", *pythonArgs(_words(python), dontWriteBytecode)]
        where = f"{namespace}/{pod}" if namespace else pod
        CommandTransport.__init__(
            self,
            argv,
            f"kubectl {where}" + (f" ({container})" if container else ""),
            missing="no {executable!r} on PATH (needed by kubectl= gateways)",
        )


def transportForSpec(spec: Any, group: Any) -> IGatewayTransport:
    """
    The transport of a C{docker} or C{kubectl} spec.

    @param spec: the L{XSpec}.
    @param group: the group the gateway joins (unused: no hops here).
    """
    if spec.type == "docker":
        return DockerTransport(spec.docker, spec.python, bool(spec.dont_write_bytecode))
    return KubectlTransport(
        spec.kubectl,
        spec.kubectl_namespace,
        spec.kubectl_context,
        spec.container,
        spec.python,
        bool(spec.dont_write_bytecode),
    )

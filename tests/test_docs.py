"""
The documentation: it builds without a warning, and every example program it
includes from docs/examples/ runs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
EXAMPLES = os.path.join(DOCS, "examples")


@pytest.mark.timeout(300)
def test_sphinx_build_has_no_warnings(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            DOCS,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    tutorial = (out / "tutorial.html").read_text(encoding="utf-8")
    assert "remote_exec" in tutorial


def test_epytext_to_rest():
    sys.path.insert(0, os.path.join(DOCS, "_ext"))
    try:
        import epytext
    finally:
        sys.path.remove(os.path.join(DOCS, "_ext"))
    lines = [
        "Run C{source}s; see L{Gateway.exit}, L{None}.",
        "@param source: a string, or",
        "    a L{function<types.FunctionType>}.",
        "@return: I{the} channel.",
        "@raise GatewayClosed: if it ended.",
        "Example::",
        "",
        "    C{untouched} @param x: too",
    ]
    assert epytext.epytextToRest(lines) == [
        "Run ``source``\\ s; see :py:obj:`Gateway.exit`, ``None``.",
        "",
        ":param source: a string, or",
        "    a :py:obj:`function <types.FunctionType>`.",
        ":return: *the* channel.",
        ":raises GatewayClosed: if it ended.",
        "",
        "Example::",
        "",
        "    C{untouched} @param x: too",
    ]


def _socketGatewaysAvailable() -> bool:
    try:
        import txexecnet.script  # noqa: F401
        from txexecnet.xspec import XSpec

        XSpec("socket=127.0.0.1:7770")
    except (ImportError, ValueError):
        return False
    return True


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")))
def test_example_runs(example, tmp_path):
    if example.startswith("triangle_") and not _socketGatewaysAvailable():
        pytest.skip("the triangle needs socket gateways")
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, example)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"{example} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{example} printed nothing"
    assert "False" not in proc.stdout

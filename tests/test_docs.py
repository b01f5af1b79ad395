"""
The documentation: it builds without a warning, its API reference is
pydoctor's, its code fits the page, and every example program it includes
from docs/examples/ runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
EXAMPLES = os.path.join(DOCS, "examples")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """
    Build the html documentation once for the tests of this module, as
    docs/install.rst says to (warnings are errors).
    """
    tmp = tmp_path_factory.mktemp("docs")
    out = tmp / "html"
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
            str(tmp / "doctrees"),
            DOCS,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    return out, proc


@pytest.mark.timeout(300)
def test_sphinx_build_has_no_warnings(built):
    out, proc = built
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    tutorial = (out / "tutorial.html").read_text(encoding="utf-8")
    assert "remote_exec" in tutorial


@pytest.mark.timeout(300)
def test_api_reference_is_built_by_pydoctor(built):
    """
    The API reference is pydoctor's, inside the html output, and the pages
    link into it: api.html's link for txexecnet.Gateway leads to a page
    that documents remote_exec (wherever the class is defined).
    """
    out, proc = built
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    api = out / "api"
    index = (api / "index.html").read_text(encoding="utf-8")
    assert '<meta name="generator" content="pydoctor' in index
    assert (api / "objects.inv").is_file()
    assert (api / "txexecnet.blocking.html").is_file()
    for linked in ("moduleIndex.html", "classIndex.html", "nameIndex.html"):  # from index.rst
        assert (api / linked).is_file(), linked
    assert not list(api.glob("twisted.*")), "twisted/plugins/ is not part of the API docs"
    page = (out / "api.html").read_text(encoding="utf-8")
    link = re.search(
        r'href="(api/[^"#]+\.html)"[^>]*>\s*<code[^>]*>\s*<span class="pre">Gateway</span>', page
    )
    assert link is not None, "api.html does not link txexecnet.Gateway into the API reference"
    gateway = (out / link.group(1)).read_text(encoding="utf-8")
    assert '<meta name="generator" content="pydoctor' in gateway
    assert 'name="remote_exec"' in gateway


# --- code that fits the page ----------------------------------------------------

#: The widest line a literal block may have, as shown (without the block's
#: indentation in the source), so that code fits the width of the page.
MAX_WIDTH = 88

_LITERAL_DIRECTIVES = re.compile(
    r"^(\s*)\.\.\s+(code-block|code|sourcecode|parsed-literal|doctest|testcode)::"
)
_LITERALINCLUDE = re.compile(r"^\s*\.\.\s+literalinclude::\s*(\S+)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _blockAfter(lines: list[str], i: int, base: int) -> tuple[list[tuple[int, str]], int]:
    """
    The lines from C{lines[i]} on that are blank or indented deeper than
    C{base}, as (line number, text without the block's indentation), and the
    index after them.
    """
    block = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
        block.append((i + 1, lines[i]))
        i += 1
    while block and not block[-1][1].strip():
        block.pop()
    text = [(n, line) for n, line in block if line.strip()]
    if not text:
        return [], i
    strip = min(_indent(line) for _, line in text)
    return [(n, line[strip:]) for n, line in text], i


def _literalLines(path: str, lines: list[str] | None = None) -> list[tuple[str, int, str]]:
    """
    Every line of a literal block in the reST file C{path} (or in C{lines},
    its text): C{::} blocks, code directives, doctest blocks and the files of
    C{literalinclude}, as (file, line number, text as shown).
    """
    if lines is None:
        with open(path, encoding="utf-8") as f:
            lines = f.read().expandtabs(8).splitlines()
    found: list[tuple[str, int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        include = _LITERALINCLUDE.match(line)
        directive = _LITERAL_DIRECTIVES.match(line)
        if include is not None:
            included = os.path.join(os.path.dirname(path), include.group(1))
            with open(included, encoding="utf-8") as f:
                for n, text in enumerate(f.read().expandtabs(8).splitlines(), 1):
                    found.append((included, n, text))
            i += 1
        elif directive is not None:
            i += 1
            while i < len(lines) and re.match(r"^\s*:[\w-]+:", lines[i]):
                i += 1  # the directive's options
            block, i = _blockAfter(lines, i, _indent(line))
            found.extend((path, n, text) for n, text in block)
        elif stripped.startswith(">>>"):
            while i < len(lines) and lines[i].strip():
                found.append((path, i + 1, lines[i].strip()))
                i += 1
        elif stripped.endswith("::") and not stripped.startswith(".."):
            block, i = _blockAfter(lines, i + 1, _indent(line))
            found.extend((path, n, text) for n, text in block)
        else:
            i += 1
    return found


def test_literal_block_scanner():
    """
    The scanner finds the lines of C{::} blocks and code directives, as
    shown (without the block's indentation), and nothing else.
    """
    source = [
        "Text::",
        "",
        "    short",
        "      " + "x" * 89,
        "",
        "Back to text " + "y" * 90,
        "",
        "* A list item::",
        "",
        "      in the item",
        "",
        ".. code-block:: console",
        "   :caption: c",
        "",
        "   $ " + "z" * 85,
        "",
        ".. toctree::",
        "",
        "   " + "w" * 90,
    ]
    assert _literalLines("x.rst", source) == [
        ("x.rst", 3, "short"),
        ("x.rst", 4, "  " + "x" * 89),
        ("x.rst", 10, "in the item"),
        ("x.rst", 15, "$ " + "z" * 85),
    ]


def test_literal_blocks_fit_the_page():
    """
    Every line of a literal block in docs/*.rst, and every line of the
    example programs, is at most MAX_WIDTH characters wide.
    """
    found = []
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".rst"):
            found.extend(_literalLines(os.path.join(DOCS, name)))
    for name in sorted(os.listdir(EXAMPLES)):
        if name.endswith(".py"):
            with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
                for n, text in enumerate(f.read().expandtabs(8).splitlines(), 1):
                    found.append((os.path.join(EXAMPLES, name), n, text))
    assert found, "no literal blocks found"
    wide = [
        f"{os.path.relpath(path, DOCS)}:{n}: {len(text)} characters"
        for path, n, text in sorted(set(found))
        if len(text) > MAX_WIDTH
    ]
    assert not wide, f"lines wider than {MAX_WIDTH} characters:\n" + "\n".join(wide)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")))
def test_example_runs(example, tmp_path):
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

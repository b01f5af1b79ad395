"""
Sphinx configuration for the txexecnet documentation.

The narrative pages are Sphinx; the API reference is generated from the
docstrings (epytext) by pydoctor, through its Sphinx extension: at the start
of every html build pydoctor documents the whole C{txexecnet} package into
C{<outdir>/api/}, and its objects inventory lets the pages link into it with
the usual roles (C{:py:class:`txexecnet.Gateway`}).

Build the docs (after C{pip install -e '.[test]'})::

    python -m sphinx -W -b html docs docs/_build/html
"""

import importlib
import logging
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, root)

import txexecnet  # noqa: E402

project = "txexecnet"
author = "the txexecnet authors"
copyright = "the txexecnet authors"
version = release = txexecnet.__version__

extensions = [
    "sphinx.ext.intersphinx",
    "pydoctor.sphinx_ext.build_apidocs",
]

master_doc = "index"
exclude_patterns = ["_build"]
pygments_style = "sphinx"
highlight_language = "python3"

html_theme = "alabaster"
html_title = f"txexecnet {release}"
html_static_path: list[str] = []


# --- API reference (pydoctor) ---------------------------------------------------

# pydoctor writes the API reference over the placeholder page api/index.rst
# when the Sphinx build has finished.  Every module of the package is
# documented; nothing is listed here by hand.
pydoctor_args = [
    "--html-output={outdir}/api/",
    "--project-name=txexecnet",
    f"--project-version={release}",
    "--project-url=../index.html",
    "--docformat=epytext",
    os.path.join(root, "txexecnet"),
]

# Where the pages find the API reference: relative to the html root, so the
# links work wherever the html is served from (a Read the Docs URL template
# such as "/en/{rtd_version}/api/" would work too).
pydoctor_url_path = "api/"

# No inventories are fetched over the network: the build works offline.  The
# pydoctor extension adds its own inventory here as "main".
intersphinx_mapping: dict[str, tuple[str, object]] = {}

# Every reference into txexecnet must resolve (a renamed or removed name
# fails the build); references to the standard library and to Twisted are
# shown as code without a link.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!txexecnet(\.|$)).*")]


class _PydoctorReports(logging.Filter):
    """
    Show what pydoctor prints (remarks about the docstrings, such as a
    C{L{...}} it cannot link) as build messages instead of warnings, so
    that C{sphinx -W} does not fail on them.  They are listed in every
    build that is not run with C{-q}.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.nonl = False
            record.msg = "pydoctor: " + str(record.msg).replace(root + os.sep, "")
        return True


logging.getLogger("sphinx.pydoctor.sphinx_ext.build_apidocs").addFilter(_PydoctorReports())


_MISSING = object()


def _lookup(dotted: str) -> object:
    """The object a dotted name of txexecnet names, or C{_MISSING}."""
    parts = dotted.split(".")
    if "__main__" in parts:
        return _MISSING
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        for part in parts[end:]:
            obj = getattr(obj, part, _MISSING)
            if obj is _MISSING:
                break
        return obj
    return _MISSING


def _resolvePublicName(app, env, node, contnode):
    """
    C{missing-reference}: link a public name such as C{txexecnet.Gateway} or
    C{txexecnet.Channel.send}, which pydoctor documents where the object is
    defined (C{txexecnet.gateway.Gateway}), to that entry of the API
    reference.  The entry is the one that is the same object, so the links
    follow the code when it moves between modules.
    """
    from sphinx.ext.intersphinx import resolve_reference_any_inventory
    from sphinx.ext.intersphinx._shared import InventoryAdapter

    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or target.split(".")[0] != "txexecnet":
        return None
    obj = _lookup(target)
    if obj is _MISSING:
        return None
    last = target.rpartition(".")[2]
    # The only inventory is pydoctor's (intersphinx_mapping has no other).
    for objtype, entries in InventoryAdapter(env).main_inventory.items():
        if not objtype.startswith("py:"):
            continue
        for name in entries:
            if name.rpartition(".")[2] == last and _lookup(name) is obj:
                canonical = node.deepcopy()
                canonical["reftarget"] = name
                # pydoctor lists module variables as attributes, which the
                # :py:data: role does not look for.
                canonical["reftype"] = "obj"
                return resolve_reference_any_inventory(env, False, canonical, contnode)
    return None


def setup(app):
    # After intersphinx (priority 500) has tried the name as it is written.
    app.connect("missing-reference", _resolvePublicName, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

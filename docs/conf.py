"""Sphinx configuration for the txexecnet documentation."""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "_ext"))
sys.path.insert(0, os.path.dirname(here))

import txexecnet  # noqa: E402

project = "txexecnet"
author = "the txexecnet authors"
copyright = "the txexecnet authors"
version = release = txexecnet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "epytext",  # docs/_ext/epytext.py: the docstrings are epytext
]

# Where the public API is documented; epytext references to other paths of
# the same object (txexecnet.errors.RemoteError, txexecnet.channel.Channel)
# are resolved against these modules, in this order.
epytext_public_modules = [
    "txexecnet",
    "txexecnet.blocking",
    "txexecnet.xspec",
    "txexecnet.interfaces",
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

master_doc = "index"
exclude_patterns = ["_build"]
pygments_style = "sphinx"
highlight_language = "python3"

html_theme = "alabaster"
html_title = f"txexecnet {release}"
html_static_path: list[str] = []

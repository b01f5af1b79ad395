"""
A small Sphinx extension that lets autodoc render txexecnet's docstrings,
which are written in epytext, the markup Twisted uses.

Two hooks:

* ``autodoc-process-docstring`` rewrites each docstring into reST before
  Sphinx parses it: ``@param x:`` and the other epytext fields become reST
  field lists, and the inline markup ``L{...}``, ``C{...}``, ``I{...}``,
  ``B{...}``, ``U{...}``, ``M{...}`` and ``E{...}`` becomes the matching
  reST roles.  Literal blocks (after ``::``) and doctest blocks are left
  alone.

* ``missing-reference`` resolves a Python cross-reference that Sphinx could
  not resolve by looking for the same name where the public API documents
  it, so ``L{txexecnet.errors.GatewayStartError}`` links to the page entry
  for ``txexecnet.GatewayStartError``, and ``L{RemoteError}`` written inside
  ``txexecnet.channel`` links to ``txexecnet.RemoteError``.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docstrings import prepare_docstring
from sphinx.util.docutils import SphinxDirective

#: epytext field tag -> reST field name, for fields that keep an argument
#: (``@param x:``) or have none (``@return:``).
_FIELDS = {
    "param": "param",
    "parameter": "param",
    "arg": "param",
    "argument": "param",
    "type": "type",
    "keyword": "keyword",
    "kwarg": "keyword",
    "kwparam": "keyword",
    "return": "return",
    "returns": "return",
    "rtype": "rtype",
    "returntype": "rtype",
    "raise": "raises",
    "raises": "raises",
    "except": "raises",
    "exception": "raises",
    "ivar": "ivar",
    "cvar": "cvar",
    "var": "var",
}

#: epytext field tag -> reST directive, for fields that are admonitions.
_DIRECTIVES = {
    "note": "note",
    "see": "seealso",
    "seealso": "seealso",
    "warning": "warning",
    "warn": "warning",
    "attention": "attention",
    "caution": "caution",
}

_FIELD_RE = re.compile(
    r"^(?P<indent>\s*)@(?P<tag>\w+)(?:[ \t]+(?P<arg>[^:]*?))?[ \t]*:(?:[ \t]+(?P<body>.*))?$"
)
_MARKUP_START = re.compile(r"(?<![\w\\])([LCIBUMEXSG])\{")
_LITERAL_CONSTANTS = {"None", "True", "False", "NotImplemented", "Ellipsis"}
_ESCAPES = {"lb": "{", "rb": "}", "at": "@", "lt": "<", "gt": ">"}


# --- inline markup -------------------------------------------------------------


def _matchingBrace(text: str, start: int) -> int:
    """Index of the brace that closes the one just before C{start}, or -1."""
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _literal(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return text
    if "`" in text:
        return ":code:`" + text.replace("\\", "\\\\").replace("`", "\\`") + "`"
    return "``" + text + "``"


def _plain(text: str) -> str:
    """The text of C{text} with its inline markup dropped (reST cannot nest)."""
    out: list[str] = []
    pos = 0
    while True:
        m = _MARKUP_START.search(text, pos)
        end = _matchingBrace(text, m.end()) if m is not None else -1
        if m is None or end < 0:
            out.append(text[pos:])
            return "".join(out)
        inner = text[m.end() : end]
        out.append(text[pos : m.start()])
        out.append(_ESCAPES.get(inner, inner) if m.group(1) == "E" else _plain(inner))
        pos = end + 1


def _reference(text: str) -> str:
    text = " ".join(text.split())
    if text in _LITERAL_CONSTANTS:
        return "``" + text + "``"
    label, sep, target = text.partition("<")
    if sep and target.endswith(">"):
        return f":py:obj:`{label.strip()} <{target[:-1].strip()}>`"
    return f":py:obj:`{text}`"


def _link(text: str) -> str:
    text = " ".join(text.split())
    label, sep, target = text.partition("<")
    if sep and target.endswith(">"):
        return f"`{label.strip()} <{target[:-1].strip()}>`__"
    return f"`{text} <{text}>`__"


def _convert(letter: str, inner: str) -> str:
    if letter == "C":
        return _literal(inner)
    if letter == "L":
        return _reference(inner)
    if letter == "U":
        return _link(inner)
    if letter == "E":
        return _ESCAPES.get(inner, inner)
    inner = _plain(inner)
    if letter == "I":
        return "*" + inner + "*"
    if letter == "B":
        return "**" + inner + "**"
    if letter == "M":
        return ":math:`" + inner + "`"
    # X (index term), S (symbol), G (graph): keep the text.
    return inner


def convertInline(text: str) -> str:
    """
    Replace epytext inline markup in C{text} with reST.

    Where reST needs it, an escaped space (a backslash and a space) keeps
    the result separate from an adjacent word character, as in C{C{x}s}.
    """
    out: list[str] = []
    pos = 0
    while True:
        m = _MARKUP_START.search(text, pos)
        if m is None:
            out.append(text[pos:])
            break
        end = _matchingBrace(text, m.end())
        if end < 0:
            out.append(text[pos:])
            break
        before = text[pos : m.start()]
        out.append(before)
        letter = m.group(1)
        converted = _convert(letter, text[m.end() : end])
        isInline = letter in "CLUIBM"
        if isInline and converted:
            previous = before[-1:] if before else ("".join(out)[-1:] if out else "")
            if previous and (previous.isalnum() or previous in "`*"):
                converted = "\\ " + converted
            following = text[end + 1 : end + 2]
            if following and (following.isalnum() or following in "`*_"):
                converted += "\\ "
        out.append(converted)
        pos = end + 1
    return "".join(out)


# --- block structure ------------------------------------------------------------


def _indentOf(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split(lines: list[str]) -> list[tuple[str, list[str]]]:
    """
    Cut a docstring into chunks: C{("text", lines)} to convert, and
    C{("verbatim", lines)} for literal and doctest blocks.
    """
    chunks: list[tuple[str, list[str]]] = []
    current: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">>>"):
            chunks.append(("text", current))
            current = []
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            chunks.append(("verbatim", block))
            continue
        current.append(line)
        i += 1
        if stripped.endswith("::") and not stripped.startswith(".."):
            base = _indentOf(line)
            block = []
            while i < len(lines) and not lines[i].strip():
                block.append(lines[i])
                i += 1
            while i < len(lines) and (not lines[i].strip() or _indentOf(lines[i]) > base):
                block.append(lines[i])
                i += 1
            # Trailing blank lines belong to the text that follows.
            trailing = []
            while block and not block[-1].strip():
                trailing.insert(0, block.pop())
            chunks.append(("text", current))
            chunks.append(("verbatim", block))
            current = trailing
    chunks.append(("text", current))
    return [(kind, chunk) for kind, chunk in chunks if chunk]


def _convertFields(lines: list[str]) -> list[str]:
    """
    Turn epytext C{@field} lines into reST fields (or, for C{@note} and
    C{@see}, directives), adding the blank lines reST needs around them.
    """
    out: list[str] = []
    kind: str | None = None  # "field" or "directive" while inside one
    blockIndent = 0
    for line in lines:
        m = _FIELD_RE.match(line)
        if m is not None:
            indent, tag = m.group("indent"), m.group("tag").lower()
            arg = (m.group("arg") or "").strip()
            body = m.group("body") or ""
            startsList = kind != "field" or len(indent) != blockIndent
            if out and out[-1].strip() and startsList:
                out.append("")
            if tag in _DIRECTIVES:
                out.append(f"{indent}.. {_DIRECTIVES[tag]}:: {body}".rstrip())
                kind = "directive"
            else:
                name = _FIELDS.get(tag, tag)
                out.append(f"{indent}:{name}{' ' + arg if arg else ''}: {body}".rstrip())
                kind = "field"
            blockIndent = len(indent)
            continue
        if kind is not None and line.strip() and _indentOf(line) <= blockIndent:
            # Text after a field list or directive at the same level.
            if out and out[-1].strip():
                out.append("")
            kind = None
        out.append(line)
    return out


def epytextToRest(lines: list[str]) -> list[str]:
    """Convert the lines of one docstring from epytext to reST."""
    result: list[str] = []
    for kind, chunk in _split(lines):
        if kind == "verbatim":
            result.extend(chunk)
            continue
        text = "\n".join(_convertFields(chunk))
        result.extend(convertInline(text).split("\n"))
    return result


def processDocstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """The C{autodoc-process-docstring} handler: convert in place."""
    lines[:] = epytextToRest(lines)


# --- cross-references -------------------------------------------------------


def _preferredModules(app: Any) -> list[str]:
    return list(app.config.epytext_public_modules)


def resolveElsewhere(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """
    The C{missing-reference} handler: retry a Python reference under the
    modules the API is documented in (C{epytext_public_modules}).
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target or target.startswith("."):
        return None
    domain = env.get_domain("py")
    objects = domain.objects
    parts = target.split(".")
    modules = []
    current = node.get("py:module")
    if current:
        modules.append(current)
    modules.extend(m for m in _preferredModules(app) if m not in modules)
    for start in range(len(parts)):
        suffix = ".".join(parts[start:])
        for module in modules:
            candidate = f"{module}.{suffix}"
            if candidate != target and candidate in objects:
                return domain.resolve_xref(
                    env,
                    node.get("refdoc", env.docname),
                    app.builder,
                    node.get("reftype", "obj"),
                    candidate,
                    node,
                    contnode,
                )
    return None


_INTERFACE_REPR = re.compile(r"<InterfaceClass ([\w.]+)>")


def _sentinels(app: Any) -> dict[int, str]:
    """
    Public module-level objects that have no useful repr (sentinels such as
    C{NO_ENDMARKER_WANTED}), by id, with the name to show for them.
    """
    import importlib

    found: dict[int, str] = {}
    for modname in app.config.epytext_public_modules:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if type(value) is object:
                found.setdefault(id(value), name)
    return found


def cleanSignature(
    app: Any,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    returnAnnotation: str | None,
) -> tuple[str | None, str | None] | None:
    """
    The C{autodoc-process-signature} handler: show an annotation naming a
    C{zope.interface} interface as the interface's name, not its repr, and
    a sentinel default value (C{<object object>}) by its public name.
    """
    if signature is None and returnAnnotation is None:
        return None
    if signature and "<object object>" in signature:
        import inspect

        sentinels = _sentinels(app)
        try:
            parameters = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            parameters = []
        for parameter in parameters:
            label = sentinels.get(id(parameter.default))
            if label is not None:
                signature = re.sub(
                    rf"(\b{parameter.name}\b[^,=()]*=\s*)<object object>",
                    lambda m: m.group(1) + label,
                    signature,
                )
    fix = lambda text: _INTERFACE_REPR.sub(r"\1", text) if text else text  # noqa: E731
    return fix(signature), fix(returnAnnotation)


# --- zope.interface interfaces -------------------------------------------------


class AutoInterface(SphinxDirective):
    """
    C{.. autointerface:: dotted.name}: document a C{zope.interface}
    interface, its methods (with their signatures) and its attributes, in
    the order they are defined.  autodoc cannot, as an interface is not a
    class.
    """

    required_arguments = 1
    has_content = False

    def run(self) -> list[Any]:
        import importlib

        from zope.interface.interface import Method

        name = self.arguments[0]
        modname, _, attr = name.rpartition(".")
        iface = getattr(importlib.import_module(modname), attr)
        lines = [f".. py:class:: {attr}", f"   :module: {modname}", ""]
        lines.extend("   " + line for line in _docLines(iface.__doc__))
        ordered = sorted(iface.namesAndDescriptions(), key=lambda nd: getattr(nd[1], "order", 0))
        for member, description in ordered:
            lines.append("")
            if isinstance(description, Method):
                signature = description.getSignatureString()
                lines.append(f"   .. py:method:: {member}{signature}")
            else:
                lines.append(f"   .. py:attribute:: {member}")
            lines.append("")
            lines.extend("      " + line for line in _docLines(description.__doc__))
        source = self.get_source_info()
        content = StringList([line.rstrip() for line in lines], source=source[0])
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(content, self.content_offset, container)
        return container.children


def _docLines(doc: str | None) -> list[str]:
    if not doc:
        return []
    return epytextToRest(prepare_docstring(doc))


def setup(app: Any) -> dict[str, Any]:
    app.add_config_value("epytext_public_modules", [], "env")
    app.connect("autodoc-process-docstring", processDocstring)
    app.connect("missing-reference", resolveElsewhere)
    app.connect("autodoc-process-signature", cleanSignature)
    app.add_directive("autointerface", AutoInterface)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


__all__ = ["convertInline", "epytextToRest", "setup"]

"""
Just enough of OpenSSH's C{ssh_config(5)} to resolve a host alias the way
C{ssh} would: C{Host} blocks (patterns, negations), C{Match all},
C{Include}, first-value-wins, and C{%} tokens in file names.

Conch reads no configuration at all; this lets C{ssh=myalias} reach the
host, user, port and keys that C{ssh myalias} reaches.
"""

from __future__ import annotations

import getpass
import glob
import os
import re
import shlex
from functools import lru_cache
from typing import Iterable

from twisted.logger import Logger

__all__ = ["SshConfig", "DEFAULT_CONFIG_FILES", "expandTokens", "hostMatches"]

log = Logger(namespace="txexecnet.ssh")

#: Read in this order when no file is named: the user's, then the system's.
DEFAULT_CONFIG_FILES = ("~/.ssh/config", "/etc/ssh/ssh_config")

#: Keywords whose every occurrence counts, not just the first.
_CUMULATIVE = {"identityfile"}

_MAX_INCLUDE_DEPTH = 16

#: C{Keyword value}, C{Keyword=value} or C{Keyword = value}.
_LINE = re.compile(r"^([^\s=]+)(?:\s*=\s*|\s+)(.*)$")


def hostMatches(patterns: Iterable[str], name: str) -> bool:
    """
    Whether C{name} matches an OpenSSH pattern list: at least one plain
    pattern matches and no negated (C{!pattern}) one does.  Matching is
    case-insensitive, with C{*} and C{?} wildcards.

    @param patterns: the patterns (C{*}, C{?}, C{!} for negation).
    @param name: the host name.
    """
    name = name.lower()
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if negated:
            pattern = pattern[1:]
        if _wildcard(pattern.lower()).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


@lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """
    A regular expression for an OpenSSH pattern: C{*} and C{?} are wild,
    everything else is literal (brackets too: C{[host]:port} is a name).
    """
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    )


def expandTokens(value: str, tokens: dict[str, str]) -> str:
    """
    Expand a leading C{~} and the C{%x} tokens of C{ssh_config(5)}
    (C{%%}, C{%d}, C{%h}, C{%n}, C{%p}, C{%r}, C{%u}) in C{value}.

    @param value: a setting's value.
    @param tokens: token letters to their values.
    @raise ValueError: for an unknown token.
    """
    if value.startswith("~"):
        value = os.path.expanduser(value)
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%" and i + 1 < len(value):
            token = value[i + 1]
            if token == "%":
                out.append("%")
            elif token in tokens:
                out.append(tokens[token])
            else:
                raise ValueError(f"unsupported token %{token} in {value!r}")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def localTokens() -> dict[str, str]:
    """The tokens that depend on this side only: C{%d} and C{%u}."""
    return {"d": os.path.expanduser("~"), "u": getpass.getuser()}


class SshConfig:
    """
    The parsed lines of one or more ssh_config files, in reading order.

    @ivar files: the files that were read (those that exist).
    """

    def __init__(self, lines: list[tuple[str, list[str], str]], files: list[str]) -> None:
        """
        @param lines: the settings read: (keyword, arguments, file) each, in order.
        @param files: the files they were read from.
        """
        self._lines = lines
        self.files = files

    @classmethod
    def fromFiles(cls, paths: Iterable[str]) -> SshConfig:
        """
        Read each of C{paths} that exists, in order; a file that does not
        exist is skipped, as by C{ssh}.

        @param paths: the ssh_config files, in reading order (C{~} is expanded).
        """
        lines: list[tuple[str, list[str], str]] = []
        files: list[str] = []
        for path in paths:
            path = os.path.expanduser(path)
            if os.path.exists(path):
                files.append(path)
                _readFile(path, lines, 0)
        return cls(lines, files)

    def lookup(self, alias: str) -> dict[str, str | list[str]]:
        """
        The settings that apply to C{alias}, as C{ssh alias} would see them:
        keys are lower-cased keywords, values are the first value given
        (C{identityfile}: every value, in order).  Tokens are not expanded.

        @param alias: the host as given on the command line.
        """
        result: dict[str, str | list[str]] = {}
        active = True
        for keyword, args, where in self._lines:
            if keyword == "host":
                active = hostMatches(args, alias)
                continue
            if keyword == "match":
                active = [a.lower() for a in args] == ["all"]
                if not active:
                    log.debug(
                        "{where}: only 'Match all' is understood; skipping 'Match {args}'",
                        where=where,
                        args=" ".join(args),
                    )
                continue
            if not active:
                continue
            value = " ".join(args)
            if keyword in _CUMULATIVE:
                existing = result.setdefault(keyword, [])
                assert isinstance(existing, list)
                existing.append(value)
            elif keyword not in result:
                result[keyword] = value
        return result


def _readFile(path: str, lines: list[tuple[str, list[str], str]], depth: int) -> None:
    """
    Append the C{(keyword, arguments, where)} lines of C{path} to
    C{lines}, following C{Include}.
    """
    if depth > _MAX_INCLUDE_DEPTH:
        raise ValueError(f"{path}: Include nested more than {_MAX_INCLUDE_DEPTH} deep")
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.readlines()
    for number, line in enumerate(text, 1):
        where = f"{path}:{number}"
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{where}: {line!r} has no value")
        keyword, rest = match.groups()
        try:
            args = shlex.split(rest, comments=True)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        keyword = keyword.lower()
        if keyword == "include":
            base = os.path.dirname(path)
            for pattern in args:
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(base, pattern)
                for included in sorted(glob.glob(pattern)):
                    _readFile(included, lines, depth + 1)
            continue
        if not args:
            raise ValueError(f"{where}: {keyword!r} needs a value")
        lines.append((keyword, args, where))

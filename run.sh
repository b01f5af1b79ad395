#!/usr/bin/env bash
# Runs the txexecnet command line (e.g. ./run.sh exec -g popen -c "..."),
# making .venv and installing the project first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
    python3 -m venv "$here/.venv"
fi
# Installed again only when pyproject.toml changes.
stamp="$here/.venv/.installed-run-$(sha256sum "$here/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    "$here/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here" >&2
    touch "$stamp"
fi
exec "$here/.venv/bin/txexecnet" "$@"

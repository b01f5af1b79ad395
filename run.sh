#!/usr/bin/env bash
# Runs the txexecnet command line (e.g. ./run.sh exec -g popen -c "..."),
# making .venv and installing the project first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
    python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here" >&2
exec "$here/.venv/bin/txexecnet" "$@"

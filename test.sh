#!/usr/bin/env bash
# Runs the whole txexecnet test suite on a fresh machine: makes .venv,
# installs the project with its test extras and (as root) openssh-server,
# checks the formatting and the types, then runs pytest.  Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# Installed again only when pyproject.toml changes.
stamp=".venv/.installed-test-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

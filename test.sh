#!/usr/bin/env bash
# Runs the whole txexecnet test suite on a fresh machine: makes .venv,
# installs the project with its test extras and (as root) openssh-server,
# then runs pytest.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"

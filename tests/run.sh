#!/usr/bin/env bash
# The test command (README "Test"): installs everything the tests need — Debian packages and a
# Python venv in .venv — then runs lint (ruff), types (mypy) and the whole test suite (pytest).
# Idempotent: a second run installs nothing new. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers the integration tests start on 127.0.0.x (never the system's own instances).
DEB_PACKAGES=(
  python3 python3-venv python3-dev gcc
  openssh-server openssh-client
  nginx php-fpm php-cli php-mysql
  mariadb-server mariadb-client
  postgresql postgresql-client
  monitoring-plugins-basic
  prometheus prometheus-alertmanager prometheus-pushgateway prometheus-node-exporter
  sudo procps psmisc iproute2 curl openssl rsync gzip tar e2fsprogs util-linux dpkg-dev
  rpm  # rpmbuild: the agent bundle's .rpm (python -m agent.bundle --rpm)
  tinyproxy-bin  # an HTTP proxy: the agent pushes through it (tests/controller/test_serve_tls_proxy.py)
  chromium chromium-driver  # the web page's browser tests (tests/controller/ui/test_browser.py, selenium)
)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "tests/run.sh: installing Debian packages: ${missing[*]}"
  # Package scripts must not start the system's nginx/MariaDB/PostgreSQL: tests run their own.
  added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ "$added_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.boxkeeper-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

echo "== ruff"
.venv/bin/ruff check agent controller tests bench
echo "== mypy"
.venv/bin/mypy
# The agent runs on the box's own Python, 3.9 at the oldest (docs/agent.md, "Python 3.9 to 3.13"):
# ruff (pyproject: per-file-target-version py39 for agent/), vermin (annotations evaluated, as
# msgspec does; `X | Y` unions found), and mypy with a 3.9 target — mypy 2 no longer targets 3.9,
# so a mypy 1.19 of its own in .venv/mypy39, reading the agent's dependencies from .venv.
echo "== agent: Python 3.9 (ruff, vermin, mypy)"
.venv/bin/ruff check --target-version py39 agent
.venv/bin/vermin -q --no-tips --violations -t=3.9- --eval-annotations --feature union-types agent
if [ ! -x .venv/mypy39/bin/mypy ]; then
  .venv/bin/python -m venv .venv/mypy39
  .venv/mypy39/bin/pip install -q 'mypy==1.19.1'
fi
.venv/mypy39/bin/mypy --python-version 3.9 --python-executable .venv/bin/python -p agent
echo "== pytest"
# Two worker processes (pytest-xdist), each taking whole files, slow files first (tests/conftest.py;
# --no-loadscope-reorder: xdist would otherwise hand out the files with the most tests first, and a
# one-test file of several minutes last): much of the suite waits on servers, SSH and subprocesses.
# BOXKEEPER_TEST_WORKERS=0 runs it in one process.
exec .venv/bin/pytest -n "${BOXKEEPER_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"

#!/usr/bin/env bash
# Set up and run boxkeeper on this machine with embedded defaults (README "Quick start"):
# a controller on SQLite and a local agent that reports to it. Everything it writes lives under
# var/quickstart/ of this checkout; Ctrl-C stops both. Safe to run again: it reuses what exists.
#
#   bash config/quickstart.sh
#
# Environment: BOXKEEPER_QS_CONTROLLER (default 127.0.0.1:8470), BOXKEEPER_QS_AGENT
# (default 127.0.0.1:9847), BOXKEEPER_QS_DIR (default var/quickstart).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

controller_addr="${BOXKEEPER_QS_CONTROLLER:-127.0.0.1:8470}"
agent_addr="${BOXKEEPER_QS_AGENT:-127.0.0.1:9847}"
dir="${BOXKEEPER_QS_DIR:-$repo/var/quickstart}"
host=$(hostname -s 2>/dev/null || hostname)
host=${host:-localhost}

say() { printf 'quickstart: %s\n' "$*"; }

# 1. Python venv with the agent and the controller (python3-venv on Debian).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  say "installing python3-venv (Debian package)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import agent, controller, fastapi, sqlalchemy' 2>/dev/null; then
  say "installing boxkeeper into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[controller]'
fi
bk=.venv/bin/boxkeeper
bka=.venv/bin/boxkeeper-agent

# 2. Configs for this machine (written once; edit them freely afterwards).
mkdir -p "$dir"
chmod 700 "$dir"
ccfg="$dir/controller.yaml"
acfg="$dir/agent.yaml"
if [ ! -f "$ccfg" ]; then
  cat >"$ccfg" <<EOF
# Written by config/quickstart.sh: a controller on embedded SQLite watching this machine.
listen: $controller_addr
state_dir: $dir/controller
clients:
  - name: local
    timezone: UTC
    hosts:
      - name: $host
        portal_url: "http://$controller_addr/healthz"
EOF
fi
if [ ! -f "$acfg" ]; then
  cat >"$acfg" <<EOF
# Written by config/quickstart.sh: checks that are green on any healthy Linux machine.
# For a Bitrix box, start from config/agent.example.yaml instead.
host: $host
interval: 15s
listen: $agent_addr
controller:
  url: http://$controller_addr
  token_file: $dir/agent.token
  push_interval: 15s
spool:
  dir: $dir/spool
  max_bytes: 16MiB
checks:
  - {name: controller-api, type: http, url: "http://$controller_addr/healthz", expect_status: [200], retries: 3, retry_interval: 5s}
  - {name: controller-port, type: tcp, address: "$controller_addr"}
  - {name: root-disk, type: disk, path: /, warning: 85%, critical: 95%}
  # The agent never counts its own process, so it watches the controller's (not itself).
  - {name: boxkeeper-controller, type: process, cmdline_regex: "boxkeeper serve", min_count: 1}
EOF
fi

# 3. Database, this machine's agent token, an operator token for the API.
export BOXKEEPER_CONFIG="$ccfg"
"$bk" migrate >/dev/null
if [ ! -s "$dir/agent.token" ]; then
  "$bk" hosts revoke "$host" >/dev/null 2>&1 || true
  ( umask 077; "$bk" hosts add "$host" --client local --json \
      | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])' >"$dir/agent.token" )
fi
if [ ! -s "$dir/operator.token" ]; then
  ( umask 077; "$bk" operators add quickstart --json \
      | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])' >"$dir/operator.token" )
fi

# 4. Run both until Ctrl-C.
pids=()
cleanup() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT  # else the script goes on after `wait -n` and says a process stopped
trap 'cleanup; exit 143' TERM

"$bk" serve >>"$dir/controller.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  # The venv's Python, not curl: a fresh Debian has no curl (the loop would wait out its 20 s).
  .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://$controller_addr/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { say "controller did not start; see $dir/controller.log"; tail -n 20 "$dir/controller.log"; exit 1; }
  sleep 0.2
done
"$bka" run --config "$acfg" >>"$dir/agent.log" 2>&1 &
pids+=($!)

cat <<EOF

boxkeeper is running on this machine (Ctrl-C stops it).
  controller API      http://$controller_addr/  (OpenAPI: /openapi.json, docs: /docs)
  fleet metrics       http://$controller_addr/metrics
  agent metrics       http://$agent_addr/metrics
  operator token      $dir/operator.token   (curl -H "Authorization: Bearer \$(cat $dir/operator.token)" http://$controller_addr/api/v1/hosts)
  logs                $dir/controller.log, $dir/agent.log

In another terminal:
  BOXKEEPER_CONFIG=$ccfg $repo/$bk status
  BOXKEEPER_CONFIG=$ccfg $repo/$bk incidents --open
EOF
wait -n "${pids[@]}" || true
say "a process stopped; see $dir/controller.log and $dir/agent.log"

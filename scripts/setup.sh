#!/usr/bin/env bash
# Sets up cronium on a Debian machine: system packages, the Docker engine (installed and started
# only when none answers), a virtualenv with cronium, the images (built locally, no registry) and
# the managed Redis. Idempotent: a second run checks, finds everything in place and takes seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. System packages (only what is missing).
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v node >/dev/null || need+=(nodejs)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The two-node swarm tests (CRONIUM_SWARM_TESTS=1) run Debian's private registry themselves.
swarm_registry=0
if [ "${CRONIUM_SWARM_TESTS:-0}" = 1 ] && [ ! -x /usr/bin/docker-registry ]; then
  need+=(docker-registry); swarm_registry=1
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing system packages: ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
  if [ "$swarm_registry" = 1 ] && command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    # the package's own service would listen on :5000 on every address: the tests start their own
    as_root systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

# 2. The Docker engine: start it only if none answers (never stop one we did not start).
if ! docker info >/dev/null 2>&1; then
  log "starting the Docker engine (dockerd)"
  as_root sh -c 'nohup dockerd >/var/log/cronium-dockerd.log 2>&1 &'
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/cronium-dockerd.log"; exit 1; }
fi

# 3. Virtualenv with cronium (editable), its test extras and the test plugin distribution.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.cronium-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ tests/plugin_dist/pyproject.toml -nt "$stamp" ]; then
  log "installing cronium into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[test]'
  "$VENV/bin/pip" install -q ./tests/plugin_dist
  touch "$stamp"
fi

# 4. Images (rebuilt only when their inputs changed) and the managed Redis.
"$VENV/bin/cronium" images build
"$VENV/bin/cronium" services start
log "done: try  $VENV/bin/cronium run examples/hello.py"

#!/usr/bin/env bash
# Sets up cronium on a Debian or Ubuntu machine: system packages, the Docker engine (installed and
# started only when none answers), a virtualenv with cronium (the tested versions: constraints.txt),
# the images (built locally, no registry) and the managed Redis. Idempotent: a second run checks,
# finds everything in place and takes seconds.
#
# Other systems: install what it lists (exit 2) with the system's own tools, then run it again.
# `setup.sh --check` only says which system packages are missing (exit 0; 2 on other systems) and
# changes nothing. The OS comes from /etc/os-release (CRONIUM_OS_RELEASE overrides the path).
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
OS_RELEASE=${CRONIUM_OS_RELEASE:-/etc/os-release}
CHECK_ONLY=0
case "${1:-}" in
  --check) CHECK_ONLY=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. System packages (only what is missing). The family decides the package names.
os_family() {
  local id="" like=""
  if [ -r "$OS_RELEASE" ]; then
    id=$(. "$OS_RELEASE" && echo "${ID:-}")
    like=$(. "$OS_RELEASE" && echo "${ID_LIKE:-}")
  fi
  case " $id $like " in
    *" ubuntu "*) echo ubuntu ;;
    *" debian "*) echo debian ;;
    *) echo "other:${id:-unknown}" ;;
  esac
}
family=$(os_family)
# "command package description" of everything setup needs from the system.
needs=(
  "dockerd docker.io the Docker engine (20.10 or later) and its client"
  "docker-compose docker-compose Docker Compose v1 (the docker-compose command; the test fixtures use it)"
  "debootstrap debootstrap debootstrap (builds the Debian base image without a registry)"
  "curl curl curl"
  "jq jq jq"
  "node nodejs Node.js 18 or later (the node helper's tests)"
)
missing=()
for entry in "${needs[@]}"; do
  read -r cmd pkg desc <<<"$entry"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg|$desc")
done
"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || missing+=("python3-venv|Python 3.11 or later with venv and ensurepip ($PYTHON)")
packages=()
for m in ${missing[@]+"${missing[@]}"}; do packages+=("${m%%|*}"); done
# The two-node swarm tests (part of `make test`) run Debian's private registry themselves;
# CRONIUM_SWARM_TESTS=0 (the swarm tests left out) skips it.
swarm_registry=0
if [ "${CRONIUM_SWARM_TESTS:-}" != 0 ] && [[ "$family" != other:* ]] && ! command -v docker-registry >/dev/null 2>&1; then
  packages+=(docker-registry); swarm_registry=1
fi
# The dashboard's browser tests (part of `make test`) drive a headless Chromium through its driver;
# CRONIUM_BROWSER_TESTS=0 (the browser tests left out) skips it. Ubuntu ships both as snap wrappers.
if [ "${CRONIUM_BROWSER_TESTS:-}" != 0 ] && [[ "$family" != other:* ]]; then
  if [ "$family" = ubuntu ]; then browser_pkgs=(chromium-browser chromium-chromedriver); else browser_pkgs=(chromium chromium-driver); fi
  { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || packages+=("${browser_pkgs[0]}")
  command -v chromedriver >/dev/null 2>&1 || packages+=("${browser_pkgs[1]}")
fi
# Ubuntu's debootstrap needs Debian's archive keys to verify a Debian (bookworm) bootstrap.
if [ "$family" = ubuntu ] && [[ " ${packages[*]-} " == *" debootstrap "* || ! -e /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
  packages+=(debian-archive-keyring)
fi
case "$family" in
  other:*)
    if [ ${#missing[@]} -gt 0 ]; then
      log "this system (${family#other:}) is neither Debian nor Ubuntu: install these with its own tools, then run setup again:"
      for m in "${missing[@]}"; do printf '  - %s\n' "${m#*|}" >&2; done
      exit 2
    fi
    [ "$CHECK_ONLY" -eq 1 ] && { log "${family#other:}: every system package setup needs is there"; exit 0; } ;;
  *)
    if [ "$CHECK_ONLY" -eq 1 ]; then
      log "$family: missing system packages: ${packages[*]-none}"
      echo "${packages[*]-}"
      exit 0
    fi
    if [ ${#packages[@]} -gt 0 ]; then
      log "installing system packages ($family): ${packages[*]}"
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${packages[@]}" >/dev/null || {
        hint=""; [ "$family" = ubuntu ] && hint=" (docker.io and docker-compose are in Ubuntu's universe component: sudo add-apt-repository universe)"
        log "apt-get install ${packages[*]} failed$hint"; exit 1; }
      if [ "$swarm_registry" = 1 ] && command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
        # the package's own service would listen on :5000 on every address: the tests start their own
        as_root systemctl disable --now docker-registry >/dev/null 2>&1 || true
      fi
    fi ;;
esac

# 2. The Docker engine: start it only if none answers (never stop one we did not start).
if ! docker info >/dev/null 2>&1; then
  log "starting the Docker engine (dockerd)"
  as_root sh -c 'nohup dockerd >/var/log/cronium-dockerd.log 2>&1 &'
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/cronium-dockerd.log"; exit 1; }
fi

# 3. Virtualenv with cronium (editable), its test extras and the test plugin distribution, with
#    the tested versions of every dependency (constraints.txt).
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.cronium-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ tests/plugin_dist/pyproject.toml -nt "$stamp" ] \
   || [ images/constraints.txt -nt "$stamp" ]; then
  log "installing cronium into $VENV (dependencies at the versions of constraints.txt)"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -c constraints.txt -e '.[test]'
  "$VENV/bin/pip" install -q -c constraints.txt ./tests/plugin_dist
  touch "$stamp"
fi
# Bytecode of cronium's own modules, written now: with PYTHONDONTWRITEBYTECODE set (some machines,
# CI images) an editable install would otherwise compile them on every `cronium` start (~0.03 s of
# the client's CPU). Quick when nothing changed.
"$VENV/bin/python" -m compileall -q core plugins >/dev/null || log "warning: could not precompile core/ and plugins/"

# 4. Images (rebuilt only when their inputs changed) and the managed Redis.
"$VENV/bin/cronium" images build
"$VENV/bin/cronium" services start
log "done: try  $VENV/bin/cronium run examples/hello.py"

#!/bin/sh
# Shared last step of the job images (python, bash, node): user, helper bytecode, hardening.
# The helper files were copied root-owned with 0644/0755 modes (the builder normalises them).
set -eu
here=$(dirname "$0")
sh "$here/job-user.sh"
mkdir -p /opt/cronium/helpers/python /opt/cronium/helpers/bash /opt/cronium/helpers/node
# Jobs run with a read-only root and PYTHONDONTWRITEBYTECODE: compile the helper now.
python3 -m compileall -q /opt/cronium/helpers/python >/dev/null
sh "$here/harden.sh"

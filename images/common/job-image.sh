#!/bin/sh
# Shared last step of the job images (python, bash, node): user, helper bytecode, hardening.
# The helper files were copied root-owned with 0644/0755 modes (the builder normalises them).
set -eu
here=$(dirname "$0")
sh "$here/job-user.sh"
mkdir -p /opt/cronium/helpers/python /opt/cronium/helpers/bash /opt/cronium/helpers/node
# Jobs run with a read-only root and PYTHONDONTWRITEBYTECODE: compile the helper now.
python3 -m compileall -q /opt/cronium/helpers/python >/dev/null
# The original Cronium images' helper paths, so scripts written for them keep working:
# `source /usr/local/bin/cronium.sh` (bash), `require('/usr/local/lib/cronium.js')` and
# `require('cronium')` with NODE_PATH=/usr/local/lib (node), the module in python3.12's
# site-packages (python; `import cronium` works through PYTHONPATH). Symlinks: one copy each.
mkdir -p /usr/local/bin /usr/local/lib/python3.12/site-packages
ln -sf /opt/cronium/helpers/bash/cronium.sh /usr/local/bin/cronium.sh
ln -sf /opt/cronium/helpers/python/cronium.py /usr/local/lib/python3.12/site-packages/cronium.py
if [ -f /opt/cronium/helpers/node/cronium/index.js ]; then
    ln -sf /opt/cronium/helpers/node/cronium/index.js /usr/local/lib/cronium.js
fi
sh "$here/harden.sh"

#!/bin/sh
# Remove setuid/setgid bits from every file of the image (run as the last RUN of a build).
set -eu
find / -xdev -type f -perm /6000 -exec chmod ug-s {} + 2>/dev/null || true
# fail loudly if any is left
left=$(find / -xdev -type f -perm /6000 2>/dev/null | head -n 5)
if [ -n "$left" ]; then
    echo "setuid/setgid files left: $left" >&2
    exit 1
fi

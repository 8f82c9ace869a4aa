#!/bin/sh
# The unprivileged user every job (and the sidecar) runs as: cronium, uid/gid 10001, home /work.
set -eu
grep -q '^cronium:' /etc/group || echo 'cronium:x:10001:' >> /etc/group
grep -q '^cronium:' /etc/passwd || echo 'cronium:x:10001:10001:cronium job:/work:/usr/sbin/nologin' >> /etc/passwd
if [ -f /etc/shadow ] && ! grep -q '^cronium:' /etc/shadow; then
    echo 'cronium:!:19000::::::' >> /etc/shadow
fi
mkdir -p /work
chown 10001:10001 /work
chmod 0755 /work

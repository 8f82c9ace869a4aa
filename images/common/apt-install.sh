#!/bin/sh
# Install Debian packages inside an image build and leave no package lists, caches or docs behind.
# usage: apt-install.sh PACKAGE...
set -eu
export DEBIAN_FRONTEND=noninteractive
# Services must not start during the build.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
apt-get update -q
apt-get install -y -q --no-install-recommends "$@"
apt-get clean
rm -f /usr/sbin/policy-rc.d
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old \
       /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
       /usr/share/man/* /usr/share/info/* /usr/share/lintian/*
if [ -d /usr/share/doc ]; then
    find /usr/share/doc -mindepth 1 -not -type d -not -name copyright -delete
    find /usr/share/doc -mindepth 1 -type d -empty -delete
fi
if [ -d /usr/share/locale ]; then
    find /usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
fi

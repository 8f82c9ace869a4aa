#!/bin/sh
# The recipe of cronium/base: a Debian minbase root filesystem with python3 and ca-certificates,
# trimmed for use as a container image. `cronium images build` runs it as root on the host and
# imports the result with `docker import`; its text is part of the image's inputs hash.
#
# usage: debootstrap.sh ROOTFS [SUITE] [MIRROR]
set -eu
rootfs=$1
suite=${2:-bookworm}
mirror=${3:-http://deb.debian.org/debian}

debootstrap --variant=minbase --include=python3,ca-certificates "$suite" "$rootfs" "$mirror"

cd "$rootfs"

# Later `apt-get install` in image builds: no recommends, no docs/man/locales, no package caches.
cat > etc/apt/apt.conf.d/90-cronium <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
cat > etc/dpkg/dpkg.cfg.d/90-cronium-nodoc <<'CONF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CONF

# Trim what a container never needs.
rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/debconf/*-old var/lib/dpkg/*-old \
       usr/share/man/* usr/share/info/* usr/share/lintian/* usr/share/linda/* \
       usr/share/doc-base/* tmp/* var/tmp/*
find var/log -type f -delete
find usr/share/doc -mindepth 1 -not -type d -not -name copyright -delete
find usr/share/doc -mindepth 1 -type d -empty -delete
find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# Host identity must not leak into the image (the engine provides these at run time).
: > etc/resolv.conf
: > etc/machine-id
echo localhost > etc/hostname

# No setuid/setgid programs: jobs run with no-new-privileges anyway; this is belt and braces.
find . -xdev -type f -perm /6000 -exec chmod ug-s {} +

#!/bin/sh
# scripts/serve-site.sh [BASE]: the build context of the cronium/serve image (compose.yaml).
# Installs cronium and its dependencies, pinned by constraints.txt, into images/serve/site on this
# host for the python3 of BASE (default cronium/python:latest, the local job image), as cronium
# does for its sidecar: `docker build` then needs no registry and no package index. pip needs a
# package index (or a local one) once, here on the host. PYTHON names the host's python (python3).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-cronium/python:latest}
python=${PYTHON:-python3}
site="$root/images/serve/site"
if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "serve-site: the image $base is not on this engine; build it first: cronium images build python" >&2
    exit 1
fi
probe='import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1], platform.machine())'
# shellcheck disable=SC2046 # three words: python version, glibc version, machine
set -- $(docker run --rm --network none --user 0 --entrypoint python3 "$base" -c "$probe")
pyver=$1 glibc=$2 machine=$3
case "$glibc" in
    2.*) ;;
    *) echo "serve-site: $base has no glibc python3 (found '$glibc'); use a Debian or Ubuntu based image" >&2; exit 1 ;;
esac
platforms="--platform manylinux2014_$machine"
minor=${glibc#2.}
while [ "$minor" -ge 17 ]; do
    platforms="--platform manylinux_2_${minor}_$machine $platforms"
    minor=$((minor - 1))
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip --disable-pip-version-check wheel --quiet --no-deps -w "$tmp" "$root"
rm -rf "$site"
install() {
    # shellcheck disable=SC2086 # one word per option
    "$python" -m pip --disable-pip-version-check install --quiet --no-compile --target "$site" --upgrade \
        --only-binary=:all: --implementation cp --python-version "$pyver" \
        --abi "cp$(echo "$pyver" | tr -d .)" --abi abi3 --abi none $platforms -c "$root/constraints.txt" "$@"
}
install "$tmp"/cronium-*.whl
# pip evaluates dependency markers (`python_full_version < "3.11.3"`) for the host's python, not the
# image's: let the image's python3 name what is still missing (with pip's own marker code), add it.
pipdir=$("$python" -c 'import os, pip; print(os.path.dirname(pip.__file__))')
check='
import sys
sys.path[:0] = ["/opt/hostpip", "/site"]
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name as name
dists = list(metadata.distributions(path=["/site"]))
have = {name(d.metadata["Name"]) for d in dists}
for dist in dists:
    for text in dist.requires or []:
        req = Requirement(text)
        if (req.marker is None or req.marker.evaluate({"extra": ""})) and name(req.name) not in have:
            print(req.name)
'
for _ in 1 2 3; do
    missing=$(docker run --rm --network none --user 0 -v "$site:/site:ro" -v "$pipdir:/opt/hostpip/pip:ro" \
        --entrypoint python3 "$base" -c "$check" | sort -u)
    [ -n "$missing" ] || break
    echo "serve-site: adding what $base's python needs too: $(echo $missing)"
    # shellcheck disable=SC2086 # one word per name
    install $missing
done
echo "serve-site: cronium for python $pyver ($machine, glibc $glibc) in $site"

#!/bin/sh
# Installs what the test suites need on Debian 12, as root. Idempotent: only
# missing packages are installed, and the package lists are refreshed only
# when something has to be installed.
#
#   busybox-static  the static busybox that every test bundle's rootfs is made of
#   runc, crun      reference runtimes the conformance suite is compared with
#   util-linux      unshare(1): namespace holders for join-by-path tests and
#                   the private mount namespace crun needs on hybrid cgroups
#   iproute2        ip(8): dummy interfaces for the netDevices test
set -eu

PACKAGES="busybox-static runc crun util-linux iproute2 libseccomp-dev pkg-config golang-github-containers-common"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-test-deps: run as root" >&2
    exit 1
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=""
for pkg in $PACKAGES; do
    installed "$pkg" || missing="$missing $pkg"
done

if [ -z "$missing" ]; then
    echo "setup-test-deps: all of $PACKAGES are installed"
    exit 0
fi

echo "setup-test-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086 # the list is meant to split into words
apt-get install -y --no-install-recommends $missing

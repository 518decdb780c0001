#!/usr/bin/env bash
# Docker, Podman and containerd (ctr) drive husk: the client integration tests, in one command,
# as root on Debian 12:
#
#   ./scripts/test-clients.sh                     # everything; writes clients/RESULTS.md
#   ./scripts/test-clients.sh --clients docker --checks pause,oom    # options of clients/run.py
#
# Builds husk (cargo, incremental), installs the clients' packages when missing, starts
# containerd and dockerd when they are not running, imports a busybox image, runs every check
# through each client with runc and with husk, and stops the daemons it started (only those).
# Exit status 1 when a check that passes with runc fails with husk. See clients/README.md.
#
# Environment: HUSK_BINARY=path    test that binary instead of building one
#              HUSK_CLIENTS_KEEP=1 leave the daemons this run started running (for iterating)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test-clients: run as root" >&2
    exit 1
fi

if [ -z "${HUSK_BINARY:-}" ]; then
    echo "== build husk"
    cargo build --release -p runtime-cli
    HUSK_BINARY=$PWD/target/x86_64-unknown-linux-gnu/release/husk
fi
export HUSK_BINARY

# This run's own record of what it starts, so that the teardown below stops only that (and not
# daemons that an earlier clients/setup.sh left running on purpose).
export HUSK_CLIENTS_STATE
HUSK_CLIENTS_STATE=$(mktemp /run/husk-clients-state.XXXXXX)
teardown() {
    if [ -n "${HUSK_CLIENTS_KEEP:-}" ]; then
        echo "== keeping what this run started (HUSK_CLIENTS_KEEP): see $HUSK_CLIENTS_STATE"
        cat "$HUSK_CLIENTS_STATE"
        return
    fi
    echo "== teardown"
    ./clients/teardown.sh || true
    rm -f "$HUSK_CLIENTS_STATE"
}
trap teardown EXIT

echo "== setup"
./clients/setup.sh

echo "== client checks (runc, then husk)"
./clients/run.py "$@"

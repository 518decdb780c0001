#!/usr/bin/env bash
# Undoes what clients/setup.sh did to the running system, and nothing else: stops the daemons it
# started (by the pids it recorded, checking each is still that daemon), and puts back a dockerd
# config file it changed. Packages, images and /var/lib/husk-clients stay (setup is then quick).
set -euo pipefail

state=${HUSK_CLIENTS_STATE:-/run/husk-clients/started}
say() { echo "teardown: $*"; }

[ "$(id -u)" -eq 0 ] || { echo "teardown: run as root" >&2; exit 1; }

# containerd puts its containers under a cgroup named after the namespace
# (/husk-clients/<id>); runc leaves that parent behind: remove it if empty.
for d in /sys/fs/cgroup/husk-clients /sys/fs/cgroup/*/husk-clients; do
    if [ -d "$d" ]; then rmdir "$d" 2>/dev/null || true; fi
done
[ -s "$state" ] || { say "nothing was started by clients/setup.sh"; exit 0; }

is() { # is PID NAME: the process is alive and is that program
    [ -r "/proc/$1/cmdline" ] || return 1
    [ "$(basename "$(tr '\0' '\n' <"/proc/$1/cmdline" | head -n 1)")" = "$2" ]
}

stop() { # stop NAME PID
    local name=$1 pid=$2 i
    if ! is "$pid" "$name"; then say "$name (pid $pid) is already gone"; return; fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid"
    for ((i = 0; i < 120; i++)); do is "$pid" "$name" || return 0; sleep 0.25; done
    say "$name (pid $pid) ignored SIGTERM for 30s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Newest first: dockerd before the containerd it uses; a config is restored before its daemon
# stops (or while the daemon that is not ours keeps running).
tac "$state" | while read -r kind a b; do
    case $kind in
    pid) stop "$a" "$b" ;;
    docker-config)
        if [ "$b" = - ]; then rm -f "$a"; else cp -p "$b" "$a"; fi
        say "restored $a"
        if pid=$(pgrep -xo dockerd); then kill -HUP "$pid"; fi
        ;;
    esac
done
rm -f "$state"

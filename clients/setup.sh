#!/usr/bin/env bash
# Prepares this machine for the client integration tests (clients/run.py), as root:
#
#   1. installs docker.io, containerd, podman and what the tests use, from Debian's archive,
#      only when something is missing;
#   2. starts containerd and dockerd when nothing answers on their sockets (setsid, logs under
#      /var/log/husk-clients/), recording the pids of what it started so clients/teardown.sh
#      stops only those;
#   3. registers husk with dockerd as the runtimes "husk" and "husk-trace" (a shim that logs
#      every command line to /var/log/husk-clients/husk-trace.log, then execs husk); podman and
#      ctr take the runtime's path on each command, nothing to register. What is registered is a
#      copy of the husk under test, /var/lib/husk-clients/husk/husk, that clients/run.py refreshes
#      when it starts: a rebuild of target/ during a run does not change the binary under test;
#   4. builds a busybox image from /bin/busybox and imports it into docker, podman and
#      containerd (namespace husk-clients).
#
# Idempotent: run it again and it only does what is missing.
#
# Environment: HUSK_BINARY         husk to test (default: the release build of this repository)
#              HUSK_CLIENTS_STATE  where to record what was started (default
#                                  /run/husk-clients/started; clients/teardown.sh reads the same)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
husk=${HUSK_BINARY:-$repo/target/x86_64-unknown-linux-gnu/release/husk}
case $husk in /*) ;; *) husk=$PWD/$husk ;; esac

state_dir=/run/husk-clients          # what this script started: clients/teardown.sh reads it
state=${HUSK_CLIENTS_STATE:-$state_dir/started}
work=/var/lib/husk-clients           # daemon config, the trace shim, the image
logs=/var/log/husk-clients
containerd_sock=/run/containerd/containerd.sock
docker_sock=/var/run/docker.sock
ctr_ns=husk-clients
image=husk-busybox:latest            # docker; podman: localhost/husk-busybox:latest
ctr_image=docker.io/library/husk-busybox:latest
packages="docker.io containerd podman runc crun busybox-static iptables catatonit tini python3 util-linux bsdutils"

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root"
mkdir -p "$state_dir" "$work/bin" "$work/image" "$logs"
touch "$state"

# --- 1. packages ------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for pkg in $packages; do installed "$pkg" || missing="$missing $pkg"; done
if [ -n "$missing" ]; then
    say "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Without systemd the packages' maintainer scripts would start dockerd and containerd through
    # their init scripts; this script starts the daemons itself (and only when needed), so keep the
    # maintainer scripts from starting services, unless the machine already has a policy.
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    trap '[ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get -o DPkg::Lock::Timeout=600 update
    # shellcheck disable=SC2086 # the list is meant to split into words
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing
    [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
    policy_added=""
else
    say "packages: all installed"
fi

# --- the husk under test and its trace shim --------------------------------------------------
# Both are named husk because podman picks per-runtime behaviour from the binary's file name.
under_test=$work/husk/husk
shim=$work/trace/husk
mkdir -p "$work/husk" "$work/trace"
if [ -x "$husk" ]; then
    cp "$husk" "$under_test.new"
    mv "$under_test.new" "$under_test"
else
    say "warning: $husk does not exist yet (build it: cargo build --release -p runtime-cli)"
fi
cat >"$shim.new" <<SHIM
#!/bin/bash
# Logs the command line the client used, then becomes husk (same pid, same stdio).
{ printf '%s pid=%s cwd=%s:' "\$(date +%H:%M:%S.%N)" "\$\$" "\$PWD"; printf ' %q' "\$0" "\$@"; echo; } >>$logs/husk-trace.log 2>/dev/null
exec $under_test "\$@"
SHIM
chmod +x "$shim.new"
mv "$shim.new" "$shim"

# --- 2. daemons -------------------------------------------------------------------------------
record() { echo "$*" >>"$state"; }

wait_for() { # wait_for SECONDS WHAT COMMAND...
    local secs=$1 what=$2; shift 2
    local i
    for ((i = 0; i < secs * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what did not answer within ${secs}s (see $logs/)"
}

containerd_up() { timeout 5 ctr --address "$containerd_sock" version; }
docker_up() { timeout 10 docker -H "unix://$docker_sock" version; }

if containerd_up >/dev/null 2>&1; then
    say "containerd: already answering on $containerd_sock"
else
    say "containerd: starting (log $logs/containerd.log)"
    setsid containerd --address "$containerd_sock" >>"$logs/containerd.log" 2>&1 </dev/null &
    record "pid containerd $!"
    wait_for 60 containerd containerd_up
fi

docker_runtimes() { timeout 10 docker -H "unix://$docker_sock" info --format '{{json .Runtimes}}' 2>/dev/null; }
runtimes_ok() { docker_runtimes | python3 -c '
import json, sys
r = json.load(sys.stdin) or {}
want = {"husk": sys.argv[1], "husk-trace": sys.argv[2]}
sys.exit(0 if all(r.get(k, {}).get("path") == v for k, v in want.items()) else 1)' "$under_test" "$shim"; }

# merge_runtimes FILE: adds husk and husk-trace to the "runtimes" of a daemon.json
merge_runtimes() {
    python3 - "$1" "$under_test" "$shim" <<'PY'
import json, os, sys
path, husk, shim = sys.argv[1:4]
conf = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        conf = json.load(f)
conf.setdefault("runtimes", {})
conf["runtimes"]["husk"] = {"path": husk}
conf["runtimes"]["husk-trace"] = {"path": shim}
tmp = path + ".husk-clients.tmp"
with open(tmp, "w") as f:
    json.dump(conf, f, indent=2)
    f.write("\n")
os.rename(tmp, path)
PY
}

if docker_up >/dev/null 2>&1; then
    say "dockerd: already answering on $docker_sock"
    if ! runtimes_ok; then
        # Someone else's dockerd: add our runtimes to its config file and reload it (SIGHUP);
        # teardown puts the file back as it was.
        pid=$(pgrep -xo dockerd) || die "dockerd answers but no dockerd process found to reload"
        conf=$(tr '\0' '\n' </proc/"$pid"/cmdline | awk '
            prev == "--config-file" { print; exit }
            /^--config-file=/ { sub(/^--config-file=/, ""); print; exit }
            { prev = $0 }')
        conf=${conf:-/etc/docker/daemon.json}
        # A dockerd this script started runs on its own config file: nothing to put back.
        if ! grep -q "^pid dockerd $pid\$" "$state" && ! grep -q "^docker-config $conf " "$state"; then
            if [ -e "$conf" ]; then
                cp -p "$conf" "$work/daemon.json.orig"
                record "docker-config $conf $work/daemon.json.orig"
            else
                mkdir -p "$(dirname "$conf")"
                record "docker-config $conf -"
            fi
        fi
        say "dockerd: registering husk in $conf and reloading dockerd (pid $pid)"
        merge_runtimes "$conf"
        kill -HUP "$pid"
        wait_for 30 "dockerd (reload)" runtimes_ok
    fi
else
    conf=$work/daemon.json
    rm -f "$conf"
    merge_runtimes "$conf"
    python3 - "$conf" <<'PY'
import json, sys
path = sys.argv[1]
conf = json.load(open(path))
conf["storage-driver"] = "overlay2"
conf["exec-opts"] = ["native.cgroupdriver=cgroupfs"]
json.dump(conf, open(path, "w"), indent=2)
PY
    say "dockerd: starting with $conf (log $logs/dockerd.log)"
    setsid dockerd --host "unix://$docker_sock" --containerd "$containerd_sock" \
        --config-file "$conf" >>"$logs/dockerd.log" 2>&1 </dev/null &
    record "pid dockerd $!"
    wait_for 90 dockerd docker_up
    wait_for 30 "dockerd runtimes" runtimes_ok
fi
say "dockerd: runtimes $(docker_runtimes)"

# --- 4. the busybox image ---------------------------------------------------------------------
img=$work/image
rm -rf "$img/rootfs"
mkdir -p "$img/rootfs"
(
    cd "$img/rootfs"
    mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root run var/tmp
    chmod 1777 tmp var/tmp
    chmod 700 root
    cp /bin/busybox bin/busybox
    # `busybox --list-full` names every applet with its directory; it includes bin/busybox
    # itself, which must stay the binary.
    /bin/busybox --list-full | while read -r applet; do
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$(dirname "$applet")"
        [ -e "$applet" ] || ln -s /bin/busybox "$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >etc/passwd
    printf 'root:x:0:\nnogroup:x:65534:\n' >etc/group
    : >etc/hosts
    : >etc/resolv.conf
    : >etc/hostname
)
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$img/rootfs" -cf "$img/rootfs.tar.new" .
mv "$img/rootfs.tar.new" "$img/rootfs.tar"
sum=$(sha256sum "$img/rootfs.tar" | cut -c1-16)

if [ "$(docker image inspect -f '{{index .Config.Labels "husk.rootfs"}}' "$image" 2>/dev/null)" = "$sum" ]; then
    say "image: docker has $image ($sum)"
else
    say "image: importing into docker as $image"
    docker import --change 'CMD ["sh"]' --change "LABEL husk.rootfs=$sum" "$img/rootfs.tar" "$image" >/dev/null
fi

podman_g=(podman --cgroup-manager cgroupfs --events-backend file)
if [ "$("${podman_g[@]}" image inspect -f '{{index .Config.Labels "husk.rootfs"}}' "localhost/$image" 2>/dev/null)" = "$sum" ]; then
    say "image: podman has localhost/$image ($sum)"
else
    say "image: importing into podman as localhost/$image"
    "${podman_g[@]}" import --quiet --change 'CMD ["sh"]' --change "LABEL husk.rootfs=$sum" \
        "$img/rootfs.tar" "localhost/$image" >/dev/null
fi

ctr_g=(ctr --address "$containerd_sock" -n "$ctr_ns")
if "${ctr_g[@]}" images ls -q | grep -qx "$ctr_image" &&
    [ "$(cat "$img/ctr-imported" 2>/dev/null)" = "$sum" ]; then
    say "image: containerd ($ctr_ns) has $ctr_image ($sum)"
else
    say "image: importing into containerd namespace $ctr_ns as $ctr_image"
    docker save "$image" -o "$img/docker-archive.tar"
    "${ctr_g[@]}" images import "$img/docker-archive.tar" >/dev/null
    "${ctr_g[@]}" images ls -q | grep -qx "$ctr_image" || die "ctr import did not produce $ctr_image"
    echo "$sum" >"$img/ctr-imported"
fi

say "ready: husk $husk, registered as $under_test (trace shim $shim)"

#!/usr/bin/env bash
# Build husk and run a real container end to end on a busybox bundle made here.
# For a fresh Debian 12 machine, as root: ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# busybox-static for the rootfs; libseccomp-dev (its static library) and
# pkg-config to build husk.
missing=""
for pkg in busybox-static libseccomp-dev pkg-config; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
cargo build --release -p runtime-cli
husk=$PWD/target/x86_64-unknown-linux-gnu/release/husk

bundle=$(mktemp -d /tmp/husk-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$applet"
done
(cd "$bundle" && "$husk" spec)
# A container that shows where it lives, without a terminal.
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c",
    "echo hello from husk: hostname=$(hostname) pid=$$ uid=$(id -u); "
    "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /dev"]
json.dump(spec, open(path, "w"), indent=2)
PY
id="demo-$$"
echo "+ husk run --bundle $bundle $id"
"$husk" run --bundle "$bundle" "$id"
echo "+ exit status $?; husk list (the container is gone):"
"$husk" list

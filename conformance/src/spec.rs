//! The default config.json that `runc spec` writes, built in Rust so that the
//! suite does not depend on any runtime to make its bundles, plus small helpers
//! to edit a config addressed by JSON pointer.

use serde_json::{json, Value};

/// The ociVersion `runc spec` writes. Debian's crun 1.8.1 accepts only 1.0.x and
/// 1.1.0, so the suite keeps this version even for tests of newer fields: a
/// runtime must ignore or apply fields, not refuse the version.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// The capabilities `runc spec` grants by default.
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The config that `runc spec` generates (runc 1.1), field for field.
pub fn default_config() -> Value {
    json!({
        "ociVersion": OCI_VERSION,
        "process": default_process(),
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": default_mounts(),
        "linux": default_linux(),
    })
}

fn default_process() -> Value {
    json!({
        "terminal": true,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm"
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": DEFAULT_CAPS,
            "effective": DEFAULT_CAPS,
            "permitted": DEFAULT_CAPS,
            "ambient": DEFAULT_CAPS,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true,
    })
}

fn default_mounts() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ])
}

fn default_linux() -> Value {
    json!({
        "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        "namespaces": [
            {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
            {"type": "uts"}, {"type": "mount"}
        ],
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
        ],
        "readonlyPaths": [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
        ],
    })
}

/// Sets the value at a JSON pointer, creating missing objects on the way.
/// A pointer segment that is a number indexes an existing array.
pub fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut cur = doc;
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        cur = match cur {
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|n| items.get_mut(n)) {
                Some(item) => item,
                None => return,
            },
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                let Some(map) = other.as_object_mut() else {
                    return;
                };
                map.entry(seg.to_string()).or_insert(Value::Null)
            }
        };
        if last {
            *cur = value;
            return;
        }
    }
}

/// Removes the member at a JSON pointer (objects only); missing paths are fine.
pub fn remove(doc: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    let target = if parent.is_empty() {
        Some(doc)
    } else {
        doc.pointer_mut(parent)
    };
    if let Some(Value::Object(map)) = target {
        map.remove(key);
    }
}

/// Appends to the array at a JSON pointer, creating it when missing.
pub fn push(doc: &mut Value, pointer: &str, value: Value) {
    if !matches!(doc.pointer(pointer), Some(Value::Array(_))) {
        set(doc, pointer, json!([]));
    }
    if let Some(Value::Array(items)) = doc.pointer_mut(pointer) {
        items.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_creates_intermediate_objects() {
        let mut doc = json!({});
        set(&mut doc, "/linux/sysctl/net.ipv4.ip_forward", json!("1"));
        assert_eq!(doc["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
    }

    #[test]
    fn set_indexes_arrays_and_remove_deletes() {
        let mut doc = default_config();
        set(
            &mut doc,
            "/linux/namespaces/0/path",
            json!("/proc/1/ns/pid"),
        );
        assert_eq!(doc["linux"]["namespaces"][0]["path"], "/proc/1/ns/pid");
        remove(&mut doc, "/process/rlimits");
        assert!(doc["process"].get("rlimits").is_none());
        push(&mut doc, "/mounts", json!({"destination": "/x"}));
        assert_eq!(doc["mounts"].as_array().map(Vec::len), Some(8));
    }
}

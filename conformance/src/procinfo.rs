//! Parsers for the /proc files that both the probe (inside a container) and the
//! runner (on the host) read. They return JSON so that observations can be
//! printed, compared between runtimes and stored without extra types.

use serde_json::{json, Map, Value};

/// One line of /proc/<pid>/mountinfo as JSON (see proc(5) for the fields).
pub fn parse_mountinfo_line(line: &str) -> Option<Value> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id: u64 = l.next()?.parse().ok()?;
    let parent: u64 = l.next()?.parse().ok()?;
    let dev = l.next()?;
    let root = unescape_octal(l.next()?);
    let mount_point = unescape_octal(l.next()?);
    let options: Vec<&str> = l.next()?.split(',').collect();
    let optional: Vec<&str> = l.filter(|f| !f.is_empty()).collect();
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let source = unescape_octal(r.next()?);
    let super_options: Vec<&str> = r.next().unwrap_or("").split(',').collect();
    Some(json!({
        "id": id, "parent": parent, "dev": dev, "root": root,
        "mount_point": mount_point, "options": options, "optional": optional,
        "fstype": fstype, "source": source, "super_options": super_options,
    }))
}

/// All mounts of a mountinfo file, in the kernel's order.
pub fn parse_mountinfo(text: &str) -> Vec<Value> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let v = (d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0');
                out.push(v);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The "Key:\tvalue" lines of /proc/<pid>/status as a map of trimmed strings.
pub fn parse_status(text: &str) -> Map<String, Value> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), Value::String(v.trim().to_string())))
        .collect()
}

/// A capability mask from a status field such as "CapEff" (hex digits).
pub fn status_mask(status: &Map<String, Value>, key: &str) -> Option<u64> {
    let hex = status.get(key)?.as_str()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Whitespace-separated numbers of a status field such as "Uid" or "Groups".
pub fn status_numbers(status: &Map<String, Value>, key: &str) -> Vec<u64> {
    let text = status.get(key).and_then(Value::as_str).unwrap_or("");
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// /proc/<pid>/cgroup as a list of {hierarchy, controllers, path}.
pub fn parse_cgroup(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let hierarchy = parts.next()?;
            let controllers: Vec<&str> =
                parts.next()?.split(',').filter(|c| !c.is_empty()).collect();
            let path = parts.next()?;
            Some(json!({"hierarchy": hierarchy, "controllers": controllers, "path": path}))
        })
        .collect()
}

/// Capability names in the order of their bit numbers (capabilities(7)).
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The names of the bits set in a capability mask, for readable observations.
pub fn cap_names(mask: u64) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The mask of a list of capability names; unknown names are ignored.
pub fn cap_mask<'a>(names: impl IntoIterator<Item = &'a str>) -> u64 {
    names
        .into_iter()
        .filter_map(|n| CAPABILITIES.iter().position(|c| *c == n))
        .fold(0, |m, bit| m | (1u64 << bit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_line_with_optional_fields() {
        let line = "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue";
        let m = parse_mountinfo_line(line).expect("parses");
        assert_eq!(m["mount_point"], "/mnt 2");
        assert_eq!(m["optional"], json!(["master:1", "shared:2"]));
        assert_eq!(m["fstype"], "ext3");
        assert_eq!(m["super_options"], json!(["rw", "errors=continue"]));
    }

    #[test]
    fn capability_masks_round_trip() {
        let mask = cap_mask(["CAP_KILL", "CAP_AUDIT_WRITE"]);
        assert_eq!(mask, (1 << 5) | (1 << 29));
        assert_eq!(cap_names(mask), vec!["CAP_KILL", "CAP_AUDIT_WRITE"]);
    }

    #[test]
    fn cgroup_lines() {
        let v = parse_cgroup("4:memory:/a/b\n0::/\n");
        assert_eq!(v[0]["controllers"], json!(["memory"]));
        assert_eq!(v[1]["path"], "/");
    }
}

//! Finding the host's cgroup hierarchies: the layout (statfs, as runc does),
//! husk's own cgroups (/proc/self/cgroup) and, for v1, where each hierarchy is
//! mounted (/proc/self/mountinfo).

use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use super::fsutil::{read_bytes, read_file};
use super::Layout;
use crate::error::{Context, Error, Result};

pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";
pub(crate) const UNIFIED_HYBRID: &str = "/sys/fs/cgroup/unified";

/// Detect the layout from the filesystem types of /sys/fs/cgroup and
/// /sys/fs/cgroup/unified: two statfs calls, no parsing.
pub(crate) fn layout() -> Result<Layout> {
    let root =
        statfs(CGROUP_ROOT).step(|| format!("statfs {CGROUP_ROOT} (is cgroupfs mounted?)"))?;
    if root.filesystem_type() == CGROUP2_SUPER_MAGIC {
        return Ok(Layout::V2);
    }
    match statfs(UNIFIED_HYBRID) {
        Ok(s) if s.filesystem_type() == CGROUP2_SUPER_MAGIC => Ok(Layout::Hybrid),
        _ => Ok(Layout::V1),
    }
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnCgroup {
    /// The v1 controllers ("cpu,cpuacct", "name=systemd"); empty for cgroup2.
    pub controllers: String,
    /// husk's cgroup in that hierarchy, e.g. "/" or "/process_api/<hash>".
    pub path: String,
}

impl OwnCgroup {
    pub fn is_unified(&self) -> bool {
        self.controllers.is_empty()
    }
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Result<Vec<OwnCgroup>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::step(
                "parse /proc/self/cgroup",
                format!("malformed line {line:?}"),
            ));
        };
        // "0::/path" is cgroup2; a v1 hierarchy with no controllers and no
        // name cannot exist, so an empty list with another id is ignored.
        if controllers.is_empty() && id != "0" {
            continue;
        }
        out.push(OwnCgroup {
            controllers: controllers.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(out)
}

pub(crate) fn own_cgroups() -> Result<Vec<OwnCgroup>> {
    let text =
        read_file(Path::new("/proc/self/cgroup")).step(|| "read /proc/self/cgroup".into())?;
    parse_proc_cgroup(&text)
}

/// A v1 cgroup mount from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Mount {
    /// The directory of the hierarchy that is mounted (usually "/").
    pub root: String,
    pub mount_point: PathBuf,
    /// Super options, e.g. ["rw", "cpu", "cpuacct"].
    pub super_options: Vec<String>,
}

/// Undo the octal escapes of mountinfo ("\040" for a space).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(oct[0] - b'0') * 64
                    + u32::from(oct[1] - b'0') * 8
                    + u32::from(oct[2] - b'0');
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_mountinfo_v1(text: &str) -> Vec<V1Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        // Cheap filter first: most lines are not cgroup mounts.
        if !line.contains(" - cgroup ") {
            continue;
        }
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        if r.next() != Some("cgroup") {
            continue;
        }
        let _source = r.next();
        let Some(super_opts) = r.next() else { continue };
        let l: Vec<&str> = left.split(' ').collect();
        if l.len() < 5 {
            continue;
        }
        out.push(V1Mount {
            root: unescape(l[3]),
            mount_point: PathBuf::from(unescape(l[4])),
            super_options: super_opts.split(',').map(str::to_owned).collect(),
        });
    }
    out
}

/// A hierarchy the container will be placed in.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// v1 controllers as in /proc/self/cgroup; empty for cgroup2.
    pub controllers: String,
    pub mount_point: PathBuf,
    /// The hierarchy directory that `mount_point` shows (usually "/").
    pub mount_root: String,
    /// husk's own cgroup in this hierarchy (hierarchy-absolute).
    pub own: String,
}

/// Pick, for one v1 hierarchy (its controller list from /proc/self/cgroup),
/// the mount that shows it: prefer one under /sys/fs/cgroup with root "/".
fn find_mount<'a>(mounts: &'a [V1Mount], controllers: &str) -> Option<&'a V1Mount> {
    let wanted: Vec<&str> = controllers.split(',').collect();
    let matching = |m: &&V1Mount| {
        wanted
            .iter()
            .all(|c| m.super_options.iter().any(|o| o == c))
    };
    let score = |m: &V1Mount| {
        let mut s = 0;
        if m.mount_point.starts_with(CGROUP_ROOT) {
            s += 2;
        }
        if m.root == "/" {
            s += 1;
        }
        s
    };
    mounts.iter().filter(matching).max_by_key(|m| score(m))
}

/// The hierarchies of `layout`, with husk's own cgroup in each.
pub(crate) fn hierarchies(layout: Layout, own: &[OwnCgroup]) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let unified_own = || {
        own.iter()
            .find(|o| o.is_unified())
            .map(|o| o.path.clone())
            .ok_or_else(|| {
                Error::step(
                    "find cgroup2 hierarchy",
                    "/proc/self/cgroup has no 0:: line for the cgroup2 hierarchy",
                )
            })
    };
    if layout == Layout::V2 {
        out.push(Found {
            controllers: String::new(),
            mount_point: PathBuf::from(CGROUP_ROOT),
            mount_root: "/".into(),
            own: unified_own()?,
        });
        return Ok(out);
    }

    let raw = read_bytes(Path::new("/proc/self/mountinfo"))
        .step(|| "read /proc/self/mountinfo".into())?;
    // Other mounts may have non-UTF-8 paths; cgroup mounts do not.
    let mounts = parse_mountinfo_v1(&String::from_utf8_lossy(&raw));
    for o in own.iter().filter(|o| !o.is_unified()) {
        // A hierarchy that is not mounted here cannot be used (nor seen).
        if let Some(m) = find_mount(&mounts, &o.controllers) {
            out.push(Found {
                controllers: o.controllers.clone(),
                mount_point: m.mount_point.clone(),
                mount_root: m.root.clone(),
                own: o.path.clone(),
            });
        }
    }
    if layout == Layout::Hybrid {
        out.push(Found {
            controllers: String::new(),
            mount_point: PathBuf::from(UNIFIED_HYBRID),
            mount_root: "/".into(),
            own: unified_own()?,
        });
    }
    if out.is_empty() {
        return Err(Error::step(
            "find cgroup hierarchies",
            "no cgroup hierarchy is mounted (nothing in /proc/self/mountinfo matches /proc/self/cgroup)",
        ));
    }
    Ok(out)
}

/// Symlinks directly under /sys/fs/cgroup that point to one of `subdirs`
/// (e.g. "cpu" -> "cpu,cpuacct" where controllers are co-mounted).
pub(crate) fn symlinks(subdirs: &[&str]) -> Vec<(String, String)> {
    let Ok(rd) = std::fs::read_dir(CGROUP_ROOT) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_symlink()) {
            continue;
        }
        let (Ok(name), Ok(target)) = (e.file_name().into_string(), std::fs::read_link(e.path()))
        else {
            continue;
        };
        let Some(target) = target.to_str().map(str::to_owned) else {
            continue;
        };
        if subdirs.contains(&target.as_str()) {
            out.push((name, target));
        }
    }
    out.sort();
    out
}

/// `path` (hierarchy-absolute) as seen under a mount of `mount_root`.
pub(crate) fn under_mount(mount_root: &str, path: &str) -> Option<String> {
    if mount_root == "/" {
        return Some(path.to_owned());
    }
    let rest = Path::new(path).strip_prefix(mount_root).ok()?;
    Some(format!("/{}", rest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_parse_proc_cgroup() {
        let t = "9:name=systemd:/\n4:memory:/process_api/38e7\n1:cpu,cpuacct:/a:b\n0::/\n";
        let v = parse_proc_cgroup(t).expect("parse");
        assert_eq!(v.len(), 4);
        assert_eq!(v[1].controllers, "memory");
        assert_eq!(v[1].path, "/process_api/38e7");
        assert_eq!(v[2].path, "/a:b");
        assert!(v[3].is_unified());
        assert!(parse_proc_cgroup("garbage").is_err());
    }

    #[test]
    fn cgroups_parse_mountinfo() {
        let t = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:29 /sub /mnt/my\\040cpu rw - cgroup cgroup rw,cpu,cpuacct
";
        let m = parse_mountinfo_v1(t);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/my cpu"));
        assert_eq!(m[2].root, "/sub");
        let f = find_mount(&m, "cpu,cpuacct").expect("cpu");
        assert_eq!(f.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(find_mount(&m, "name=systemd").is_some());
        assert!(find_mount(&m, "memory").is_none());
        assert_eq!(under_mount("/", "/a/b").as_deref(), Some("/a/b"));
        assert_eq!(under_mount("/sub", "/sub/x").as_deref(), Some("/x"));
        assert_eq!(under_mount("/sub", "/other"), None);
    }
}

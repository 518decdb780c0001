//! Validation of `linux.cgroupsPath`.
//!
//! The path comes from config.json, i.e. from whoever wrote the bundle, and is
//! joined onto host paths under /sys/fs/cgroup: it must never climb out of the
//! hierarchy (`..`), and garbage is refused here with a message that names the
//! field, rather than later as a confusing mkdir error.

use crate::error::{Error, Result};

/// Longest name of one directory (NAME_MAX); kernfs refuses longer ones.
const NAME_MAX: usize = 255;

/// A validated, normalised cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupPath {
    /// Absolute: from each hierarchy root. Relative: from husk's own cgroup.
    pub absolute: bool,
    /// Normal components only (no "", ".", ".."); never empty.
    pub components: Vec<String>,
}

impl CgroupPath {
    /// "/a/b" or "a/b", as the path is shown in messages.
    pub fn display(&self) -> String {
        let joined = self.components.join("/");
        if self.absolute {
            format!("/{joined}")
        } else {
            joined
        }
    }
}

fn bad(path: &str, reason: impl std::fmt::Display) -> Error {
    Error::config(format!("linux.cgroupsPath {path:?}: {reason}"))
}

/// `slice:prefix:name`, the form runc's systemd driver takes (e.g.
/// "system.slice:docker:abc" or ":husk:abc").
fn looks_like_systemd(path: &str) -> bool {
    if path.contains('/') {
        return false;
    }
    let parts: Vec<&str> = path.split(':').collect();
    parts.len() == 3
        && (parts[0].is_empty() || parts[0].ends_with(".slice"))
        && !parts[2].is_empty()
}

/// Validate `cgroups_path` (None: the default, a relative path equal to the
/// container id) for the cgroupfs driver.
pub(crate) fn parse(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<CgroupPath> {
    if systemd {
        let shown = cgroups_path.unwrap_or("");
        let what = if cgroups_path.is_some_and(looks_like_systemd) {
            "the systemd cgroup driver (--systemd-cgroup) is not available"
        } else {
            "--systemd-cgroup expects the form slice:prefix:name, and the systemd \
             cgroup driver is not available anyway"
        };
        return Err(bad(
            shown,
            format!(
                "{what}: husk has only the cgroupfs driver and there is no systemd to \
                 talk to here; run without --systemd-cgroup and use a path such as /husk/<id>"
            ),
        ));
    }

    let (raw, is_default) = match cgroups_path {
        Some(p) => (p, false),
        None => (id, true),
    };
    let bad = |reason: &str| {
        if is_default {
            Error::config(format!(
                "linux.cgroupsPath: not set, and the container id {id:?} cannot be the \
                 default cgroup name: {reason}"
            ))
        } else {
            bad(raw, reason)
        }
    };

    if raw.is_empty() {
        return Err(bad("is empty"));
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(bad("contains a control character"));
    }
    if is_default && raw.contains('/') {
        return Err(bad("contains '/'"));
    }
    if !is_default && looks_like_systemd(raw) {
        return Err(bad(
            "looks like a systemd slice:prefix:name path, but --systemd-cgroup was not \
             given (and the systemd cgroup driver is not available); use a path such as /husk/<id>",
        ));
    }

    let absolute = raw.starts_with('/');
    let mut components = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => continue,
            ".." => return Err(bad("'..' components are not allowed")),
            c if c.len() > NAME_MAX => {
                return Err(bad(&format!(
                    "component {:.20}... is longer than {NAME_MAX} bytes",
                    c
                )))
            }
            c => components.push(c.to_owned()),
        }
    }
    if components.is_empty() {
        return Err(bad(if absolute {
            "names the root cgroup, which the container cannot have for itself"
        } else {
            "names husk's own cgroup, which the container cannot have for itself"
        }));
    }
    Ok(CgroupPath {
        absolute,
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: Option<&str>) -> CgroupPath {
        match parse(p, "ctr1", false) {
            Ok(p) => p,
            Err(e) => panic!("{p:?}: {e}"),
        }
    }

    fn err(p: Option<&str>, id: &str, systemd: bool) -> String {
        match parse(p, id, systemd) {
            Ok(v) => panic!("{p:?} accepted as {v:?}"),
            Err(e) => {
                assert!(matches!(e, Error::Config(_)), "{e:?}");
                e.to_string()
            }
        }
    }

    #[test]
    fn cgroups_path_forms() {
        assert_eq!(
            ok(Some("/husk/abc")),
            CgroupPath {
                absolute: true,
                components: vec!["husk".into(), "abc".into()]
            }
        );
        assert_eq!(ok(Some("/husk/abc")).display(), "/husk/abc");
        assert_eq!(ok(Some("a//./b/")).components, vec!["a", "b"]);
        assert!(!ok(Some("a/b")).absolute);
        assert_eq!(ok(Some("a/b")).display(), "a/b");
        let d = ok(None);
        assert!(!d.absolute);
        assert_eq!(d.components, vec!["ctr1"]);
        // Colons are fine in cgroup names when not in the systemd form.
        assert_eq!(ok(Some("/a:b")).components, vec!["a:b"]);
        assert_eq!(ok(Some("x/a:b:c")).components, vec!["x", "a:b:c"]);
    }

    #[test]
    fn cgroups_path_rejects() {
        for p in ["/husk/../etc", "..", "a/../../b", "../x"] {
            let e = err(Some(p), "c", false);
            assert!(e.contains("linux.cgroupsPath") && e.contains(".."), "{e}");
        }
        assert!(err(Some(""), "c", false).contains("empty"));
        assert!(err(Some("/"), "c", false).contains("root cgroup"));
        assert!(err(Some("./"), "c", false).contains("own cgroup"));
        assert!(err(Some("/a\nb"), "c", false).contains("control character"));
        assert!(err(Some(&"x".repeat(300)), "c", false).contains("longer than"));
        assert!(err(Some("system.slice:docker:abc"), "c", false).contains("--systemd-cgroup"));
        assert!(err(None, "..", false).contains("container id"));
        assert!(err(None, "a/b", false).contains("container id"));
    }

    #[test]
    fn cgroups_path_systemd_driver_unavailable() {
        let e = err(Some("system.slice:husk:abc"), "abc", true);
        assert!(
            e.contains("systemd cgroup driver") && e.contains("not available"),
            "{e}"
        );
        let e = err(Some("/husk/abc"), "abc", true);
        assert!(e.contains("slice:prefix:name"), "{e}");
        let e = err(None, "abc", true);
        assert!(e.contains("not available"), "{e}");
    }
}

//! Mount options as runc accepts them, translated to the new mount API.
//!
//! mount(2) mixes four things in one flag word; the new API keeps them apart,
//! and so do we:
//! - per-mount attributes (ro, nosuid, atime...) → `fsmount`/`mount_setattr`,
//!   once for the top mount and once, recursively, for the `r*` variants;
//! - superblock flags (sync, dirsync, lazytime, mand) → `fsconfig` flags;
//! - propagation (shared, rslave...) → `mount_setattr` after attaching;
//! - everything else → filesystem data, one `fsconfig` parameter each.
//!
//! runc's extensions are instructions to the runtime, never data:
//! "tmpcopyup" (fill a new tmpfs with what its destination holds) and
//! "idmap"/"ridmap" (apply the mount's uidMappings/gidMappings).

use crate::error::{Error, Result};

/// Attributes of one mount. `None` leaves the attribute as it is (for a bind,
/// as the source has it), so flags the kernel locked in a user namespace are
/// never touched unless asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub rdonly: Option<bool>,
    pub nosuid: Option<bool>,
    pub nodev: Option<bool>,
    pub noexec: Option<bool>,
    pub nodiratime: Option<bool>,
    pub nosymfollow: Option<bool>,
    pub noatime: Option<bool>,
    pub relatime: Option<bool>,
    pub strictatime: Option<bool>,
}

impl Attrs {
    pub fn is_empty(&self) -> bool {
        *self == Attrs::default()
    }

    /// `(attr_set, attr_clr)` for mount_setattr(2).
    pub fn set_clr(&self) -> (u64, u64) {
        let (mut set, mut clr) = (0, 0);
        let bits = [
            (self.rdonly, libc::MOUNT_ATTR_RDONLY),
            (self.nosuid, libc::MOUNT_ATTR_NOSUID),
            (self.nodev, libc::MOUNT_ATTR_NODEV),
            (self.noexec, libc::MOUNT_ATTR_NOEXEC),
            (self.nodiratime, libc::MOUNT_ATTR_NODIRATIME),
            (self.nosymfollow, libc::MOUNT_ATTR_NOSYMFOLLOW),
        ];
        for (want, bit) in bits {
            match want {
                Some(true) => set |= bit,
                Some(false) => clr |= bit,
                None => {}
            }
        }
        if let Some(atime) = self.atime() {
            // The atime modes are one field: clearing it is how the kernel
            // lets us replace it.
            clr |= libc::MOUNT_ATTR__ATIME;
            set |= atime;
        }
        (set, clr)
    }

    /// The atime mode, if any option mentioned one. Mirrors mount(2):
    /// strictatime beats noatime, and the default is relatime.
    fn atime(&self) -> Option<u64> {
        if self.noatime.is_none() && self.relatime.is_none() && self.strictatime.is_none() {
            return None;
        }
        Some(if self.strictatime == Some(true) {
            libc::MOUNT_ATTR_STRICTATIME
        } else if self.noatime == Some(true) {
            libc::MOUNT_ATTR_NOATIME
        } else {
            libc::MOUNT_ATTR_RELATIME
        })
    }

    /// Apply one per-mount option such as "ro" or "noatime" (without the
    /// recursive "r" prefix). Returns false if `opt` is not one.
    fn apply(&mut self, opt: &str) -> bool {
        let (field, value) = match opt {
            "ro" => (&mut self.rdonly, true),
            "rw" => (&mut self.rdonly, false),
            "nosuid" => (&mut self.nosuid, true),
            "suid" => (&mut self.nosuid, false),
            "nodev" => (&mut self.nodev, true),
            "dev" => (&mut self.nodev, false),
            "noexec" => (&mut self.noexec, true),
            "exec" => (&mut self.noexec, false),
            "nodiratime" => (&mut self.nodiratime, true),
            "diratime" => (&mut self.nodiratime, false),
            "nosymfollow" => (&mut self.nosymfollow, true),
            "symfollow" => (&mut self.nosymfollow, false),
            "noatime" => (&mut self.noatime, true),
            "atime" => (&mut self.noatime, false),
            "relatime" => (&mut self.relatime, true),
            "norelatime" => (&mut self.relatime, false),
            "strictatime" => (&mut self.strictatime, true),
            "nostrictatime" => (&mut self.strictatime, false),
            _ => return false,
        };
        *field = Some(value);
        true
    }
}

/// How a bind mount copies its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bind {
    /// Only the source mount (MS_BIND).
    Single,
    /// The source and every mount below it (MS_BIND|MS_REC).
    Recursive,
}

/// An id-mapped bind mount ("idmap" / "ridmap"): the mount's own
/// uidMappings/gidMappings are applied with MOUNT_ATTR_IDMAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdMap {
    /// "idmap": the top mount of the bind only.
    Top,
    /// "ridmap": every mount of the (r)bind.
    Recursive,
}

/// A propagation change, applied in order after the mount is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Propagation {
    /// MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE.
    pub flag: u64,
    pub recursive: bool,
}

/// One filesystem parameter for fsconfig(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FsParam {
    Flag(String),
    Str(String, String),
}

/// A mount's `options`, parsed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    pub bind: Option<Bind>,
    pub remount: bool,
    /// "idmap" / "ridmap" (never passed to the kernel as data).
    pub idmap: Option<IdMap>,
    /// "tmpcopyup": copy what the destination holds into the new tmpfs.
    pub tmpcopyup: bool,
    /// Attributes of the top mount.
    pub attrs: Attrs,
    /// Attributes applied recursively (rro, rnosuid, ...).
    pub rattrs: Attrs,
    pub propagation: Vec<Propagation>,
    /// Superblock flags and data, for a new filesystem, in option order.
    pub params: Vec<FsParam>,
}

impl MountOptions {
    /// Parse a mount's options; the error names the offending option.
    pub fn parse(options: &[String]) -> std::result::Result<Self, String> {
        let mut parsed = MountOptions::default();
        for opt in options {
            parsed.add(opt)?;
        }
        Ok(parsed)
    }

    fn add(&mut self, opt: &str) -> std::result::Result<(), String> {
        if self.attrs.apply(opt) {
            return Ok(());
        }
        if let Some(flag) = propagation(opt) {
            self.propagation.push(flag);
            return Ok(());
        }
        match opt {
            "bind" => self.bind = Some(self.bind.unwrap_or(Bind::Single)),
            "rbind" => self.bind = Some(Bind::Recursive),
            "remount" => self.remount = true,
            // Superblock flags the kernel parses for every filesystem.
            "sync" | "async" | "dirsync" | "lazytime" | "nolazytime" | "mand" | "nomand" => {
                self.params.push(FsParam::Flag(opt.to_string()))
            }
            // mount(2)-only flags with no meaning in the new API: "defaults"
            // is a placeholder, silent/loud only quiet the kernel log, and
            // acl/iversion are chosen by the filesystem itself.
            "defaults" | "silent" | "loud" | "acl" | "noacl" | "iversion" | "noiversion" => {}
            // As with bind/rbind, the recursive form wins.
            "idmap" => self.idmap = Some(self.idmap.unwrap_or(IdMap::Top)),
            "ridmap" => self.idmap = Some(IdMap::Recursive),
            "tmpcopyup" => self.tmpcopyup = true,
            _ => {
                // "rro", "rnosuid"...: the attribute, applied recursively.
                let recursive = opt.strip_prefix('r').is_some_and(|r| self.rattrs.apply(r));
                if !recursive {
                    // Unknown options are filesystem data, as in runc.
                    self.params.extend(parse_data(opt));
                }
            }
        }
        Ok(())
    }

    pub fn is_bind(&self) -> bool {
        self.bind.is_some()
    }
}

fn propagation(opt: &str) -> Option<Propagation> {
    let (recursive, name) = match opt.strip_prefix('r') {
        Some(name @ ("shared" | "slave" | "private" | "unbindable")) => (true, name),
        _ => (false, opt),
    };
    let flag = match name {
        "shared" => libc::MS_SHARED,
        "slave" => libc::MS_SLAVE,
        "private" => libc::MS_PRIVATE,
        "unbindable" => libc::MS_UNBINDABLE,
        _ => return None,
    };
    Some(Propagation { flag, recursive })
}

/// Parse a `rootfsPropagation` value (runc accepts the r-variants too).
pub(crate) fn rootfs_propagation(value: &str) -> Result<Propagation> {
    propagation(value).ok_or_else(|| Error::config(format!("invalid rootfsPropagation {value:?}")))
}

/// Split mount data on commas that are not inside double quotes (an SELinux
/// context="a,b" is one parameter), then into key and value.
pub(crate) fn parse_data(data: &str) -> Vec<FsParam> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in data.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                push_param(&mut out, &data[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push_param(&mut out, &data[start..]);
    out
}

fn push_param(out: &mut Vec<FsParam>, item: &str) {
    if item.is_empty() {
        return;
    }
    match item.split_once('=') {
        Some((key, value)) => {
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            out.push(FsParam::Str(key.to_string(), value.to_string()));
        }
        None => out.push(FsParam::Flag(item.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> MountOptions {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        match MountOptions::parse(&opts) {
            Ok(parsed) => parsed,
            Err(e) => panic!("parse {opts:?}: {e}"),
        }
    }

    #[test]
    fn bind_and_flags() {
        let o = parse(&["rbind", "ro", "nosuid", "nodev", "noexec", "noatime"]);
        assert_eq!(o.bind, Some(Bind::Recursive));
        let (set, clr) = o.attrs.set_clr();
        assert_eq!(
            set,
            libc::MOUNT_ATTR_RDONLY
                | libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV
                | libc::MOUNT_ATTR_NOEXEC
                | libc::MOUNT_ATTR_NOATIME
        );
        assert_eq!(clr, libc::MOUNT_ATTR__ATIME);
        assert!(o.rattrs.is_empty());
        assert!(o.params.is_empty());
    }

    #[test]
    fn last_of_ro_rw_wins_and_bind_stays_recursive() {
        let o = parse(&["rbind", "bind", "ro", "rw", "suid"]);
        assert_eq!(o.bind, Some(Bind::Recursive));
        let (set, clr) = o.attrs.set_clr();
        assert_eq!(set, 0);
        assert_eq!(clr, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
    }

    #[test]
    fn atime_modes_follow_mount2() {
        let strict = parse(&["noatime", "strictatime"]);
        assert_eq!(strict.attrs.set_clr().0, libc::MOUNT_ATTR_STRICTATIME);
        let noatime = parse(&["noatime", "norelatime"]);
        assert_eq!(noatime.attrs.set_clr().0, libc::MOUNT_ATTR_NOATIME);
        let relatime = parse(&["atime"]);
        assert_eq!(
            relatime.attrs.set_clr(),
            (libc::MOUNT_ATTR_RELATIME, libc::MOUNT_ATTR__ATIME)
        );
        assert_eq!(parse(&["nosuid"]).attrs.set_clr().1, 0);
    }

    #[test]
    fn recursive_attrs_and_propagation() {
        let o = parse(&["rro", "rnosuid", "rnoatime", "rshared", "slave"]);
        assert!(o.attrs.is_empty());
        let (set, _) = o.rattrs.set_clr();
        assert_eq!(
            set,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOATIME
        );
        assert_eq!(
            o.propagation,
            vec![
                Propagation {
                    flag: libc::MS_SHARED,
                    recursive: true
                },
                Propagation {
                    flag: libc::MS_SLAVE,
                    recursive: false
                }
            ]
        );
    }

    #[test]
    fn unknown_options_are_data() {
        let o = parse(&[
            "size=65536k",
            "mode=755",
            "newinstance",
            "sync",
            "context=\"a,b\",x",
        ]);
        assert_eq!(
            o.params,
            vec![
                FsParam::Str("size".into(), "65536k".into()),
                FsParam::Str("mode".into(), "755".into()),
                FsParam::Flag("newinstance".into()),
                FsParam::Flag("sync".into()),
                FsParam::Str("context".into(), "a,b".into()),
                FsParam::Flag("x".into()),
            ]
        );
        // "rw..." words that are not recursive attributes are data too.
        assert_eq!(
            parse(&["rsize=8192"]).params,
            vec![FsParam::Str("rsize".into(), "8192".into())]
        );
    }

    #[test]
    fn runc_extensions_are_flags_not_data() {
        let o = parse(&["bind", "idmap", "tmpcopyup"]);
        assert_eq!(o.idmap, Some(IdMap::Top));
        assert!(o.tmpcopyup);
        assert!(o.params.is_empty());
        assert_eq!(parse(&["ridmap", "idmap"]).idmap, Some(IdMap::Recursive));
        assert_eq!(parse(&["idmap", "ridmap"]).idmap, Some(IdMap::Recursive));
        assert_eq!(parse(&["rbind"]).idmap, None);
    }

    #[test]
    fn rootfs_propagation_values() {
        assert!(rootfs_propagation("bogus").is_err());
        assert_eq!(
            rootfs_propagation("rslave").ok(),
            Some(Propagation {
                flag: libc::MS_SLAVE,
                recursive: true
            })
        );
    }
}

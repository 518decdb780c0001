//! The `mounts` of config.json, one by one.
//!
//! Every mount is built detached (open_tree for binds, fsopen/fsmount for
//! filesystems), given its attributes while nobody can see it, attached
//! onto the destination's fd resolved inside the rootfs, and then checked
//! to be where it should be. A new tmpfs with "tmpcopyup" is filled from
//! its destination while still detached (copyup); a bind with "idmap" or
//! "ridmap" is id-mapped while still detached (idmap).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount;
use pathrs::Root;
use rustix::fs::CWD;

use super::cgroup;
use super::copyup;
use super::idmap;
use super::options::{Bind, MountOptions};
use super::paths::{self, Kind};
use super::sys::{self, FsError};
use crate::cgroups::MountView;
use crate::error::{Context, Error, Result};

/// What every mount needs to know about the container being set up.
pub(crate) struct Env<'a> {
    pub root: &'a Root,
    pub cgroups: &'a MountView,
    pub in_user_ns: bool,
    pub cgroupns: bool,
}

/// Mount one entry of `mounts`.
pub(crate) fn mount(env: &Env<'_>, m: &Mount) -> Result<()> {
    let step = describe(m);
    let options = m.options().as_deref().unwrap_or_default();
    let opts = MountOptions::parse(options).map_err(|e| Error::config(format!("{step}: {e}")))?;
    let dest = m.destination().as_path();
    let fstype = m.typ().as_deref().unwrap_or_default();
    let is_bind = opts.is_bind() || fstype == "bind";
    let idmap = idmap::request(m, &opts, is_bind, env.in_user_ns)
        .map_err(|e| Error::config(format!("{step}: {e}")))?;
    if opts.tmpcopyup && (opts.remount || is_bind || fstype != "tmpfs") {
        return Err(Error::config(format!(
            "{step}: mount option \"tmpcopyup\" is only for new tmpfs mounts"
        )));
    }
    if opts.remount {
        return remount(env.root, dest, &opts, &step);
    }
    if is_bind {
        let source = m
            .source()
            .as_deref()
            .ok_or_else(|| Error::config(format!("{step}: a bind mount needs a source")))?;
        let bind = opts.bind.unwrap_or(Bind::Single);
        return bind_path(env.root, source, bind, idmap.as_ref(), dest, &opts, &step);
    }
    match fstype {
        "" => Err(Error::config(format!(
            "{step}: the mount has no type and is not a bind mount"
        ))),
        "cgroup" => cgroup::mount(env, dest, &opts, &step),
        "proc" | "sysfs" => {
            // As runc: these must not be mounted through a symlink, so that
            // what the LSMs see at /proc and /sys is what is mounted there.
            refuse_symlink(env.root, dest, &step)?;
            let fallback = (fstype == "sysfs").then_some("/sys");
            new_fs_or_bind(env, m, fstype, fallback, dest, &opts, &step)
        }
        "mqueue" => new_fs_or_bind(env, m, fstype, Some("/dev/mqueue"), dest, &opts, &step),
        _ => new_fs_or_bind(env, m, fstype, None, dest, &opts, &step),
    }
}

/// "mount <source> on <destination>", the prefix of every error about `m`.
fn describe(m: &Mount) -> String {
    let source = match (m.source(), m.typ()) {
        (Some(source), _) => source.display().to_string(),
        (None, Some(typ)) => typ.clone(),
        (None, None) => "none".to_string(),
    };
    format!("mount {source} on {}", m.destination().display())
}

/// Bind-mount the host path `source` onto `dest` inside the root, id-mapped
/// if `idmap` says so.
pub(crate) fn bind_path(
    root: &Root,
    source: &Path,
    bind: Bind,
    idmap: Option<&idmap::Request>,
    dest: &Path,
    opts: &MountOptions,
    step: &str,
) -> Result<()> {
    // Source paths come from the config and live on the host: they are
    // resolved normally (relative ones against our cwd, the bundle).
    let meta = std::fs::metadata(source)
        .step(|| format!("{step}: stat the source {}", source.display()))?;
    let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
    let tree = sys::clone_tree(CWD, source, bind == Bind::Recursive).step(|| step.to_string())?;
    if let Some(req) = idmap {
        // Only a detached mount that was never attached can be id-mapped.
        idmap::apply(&tree, req, source, step)?;
    }
    place(root, &tree, dest, kind, opts, step)
}

/// Create a new filesystem of `fstype` at `dest`. In a user namespace the
/// kernel refuses some (sysfs without a netns, mqueue without an ipcns):
/// then, as runc, bind the host's `fallback` instead.
fn new_fs_or_bind(
    env: &Env<'_>,
    m: &Mount,
    fstype: &str,
    fallback: Option<&str>,
    dest: &Path,
    opts: &MountOptions,
    step: &str,
) -> Result<()> {
    let source = m.source().as_deref().map(|s| s.to_string_lossy());
    match (
        sys::new_fs(fstype, source.as_deref(), &opts.params),
        fallback,
    ) {
        (Ok(tree), _) => {
            if opts.tmpcopyup {
                // Filled while detached, before attributes such as "ro".
                copyup::copy_up(env.root, &tree, dest, opts, step)?;
            }
            place(env.root, &tree, dest, Kind::Dir, opts, step)
        }
        (Err(e), Some(host)) if env.in_user_ns && is_eperm(&e) => bind_path(
            env.root,
            Path::new(host),
            Bind::Recursive,
            None,
            dest,
            opts,
            step,
        ),
        (Err(e), _) => Err(fs_error(step, e)),
    }
}

pub(crate) fn is_eperm(e: &FsError) -> bool {
    e.source.raw_os_error() == Some(libc::EPERM)
}

pub(crate) fn fs_error(step: &str, e: FsError) -> Error {
    if e.log.is_empty() {
        Error::os(step, e.source)
    } else {
        Error::step(step, e.to_string())
    }
}

fn refuse_symlink(root: &Root, dest: &Path, step: &str) -> Result<()> {
    let found = paths::lookup(root, dest, false);
    let Some(handle) = found.step(|| format!("{step}: resolve {}", dest.display()))? else {
        return Ok(());
    };
    if paths::file_type(&handle).step(|| format!("{step}: stat {}", dest.display()))?
        == rustix::fs::FileType::Symlink
    {
        return Err(Error::step(
            step,
            format!(
                "{} is a symlink; it must be a real directory",
                dest.display()
            ),
        ));
    }
    Ok(())
}

/// Give a detached mount its attributes, attach it at `dest` (created as
/// `kind` if missing) and check it landed there.
pub(crate) fn place(
    root: &Root,
    tree: &OwnedFd,
    dest: &Path,
    kind: Kind,
    opts: &MountOptions,
    step: &str,
) -> Result<()> {
    set_attrs(tree, opts, step)?;
    let target = paths::resolve_or_create(root, dest, kind, step)?;
    attach_at(root, tree, &target, dest, opts, step)
}

/// Set the per-mount and recursive attributes of `opts` on `tree`.
pub(crate) fn set_attrs(tree: impl AsFd, opts: &MountOptions, step: &str) -> Result<()> {
    let what = || format!("{step}: set mount attributes");
    if !opts.attrs.is_empty() {
        let (set, clr) = opts.attrs.set_clr();
        sys::set_attrs(&tree, false, set, clr).step(what)?;
    }
    if !opts.rattrs.is_empty() {
        let (set, clr) = opts.rattrs.set_clr();
        sys::set_attrs(&tree, true, set, clr).step(what)?;
    }
    Ok(())
}

/// Attach `tree` onto `target` (the fd `dest` resolved to), apply the
/// propagation of `opts`, and check the result.
pub(crate) fn attach_at(
    root: &Root,
    tree: &OwnedFd,
    target: impl AsFd,
    dest: &Path,
    opts: &MountOptions,
    step: &str,
) -> Result<()> {
    sys::attach(tree, target).step(|| step.to_string())?;
    for change in &opts.propagation {
        sys::set_propagation(tree, *change).step(|| format!("{step}: set propagation"))?;
    }
    paths::verify_mounted(root, dest, tree, step)
}

/// "remount": change an existing mount at `dest` instead of making one.
fn remount(root: &Root, dest: &Path, opts: &MountOptions, step: &str) -> Result<()> {
    let target = paths::resolve(root, dest, step)?
        .ok_or_else(|| Error::step(step, format!("{} does not exist", dest.display())))?;
    if !sys::is_mount_root(&target).step(|| format!("{step}: stat {}", dest.display()))? {
        return Err(Error::step(
            step,
            format!("{} is not a mount point", dest.display()),
        ));
    }
    set_attrs(&target, opts, step)?;
    for change in &opts.propagation {
        sys::set_propagation(&target, *change).step(|| format!("{step}: set propagation"))?;
    }
    if !opts.params.is_empty() {
        sys::reconfigure(&target, &opts.params).map_err(|e| fs_error(step, e))?;
    }
    Ok(())
}

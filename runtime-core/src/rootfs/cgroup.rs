//! `type: "cgroup"` mounts: /sys/fs/cgroup inside the container, laid out as
//! the host's hierarchies are (crate::cgroups::MountView).
//!
//! - cgroup v2: one cgroup2 mount, or with no cgroup namespace a bind of the
//!   container's own cgroup directory.
//! - v1 / hybrid: a tmpfs with one directory per hierarchy, each a cgroup
//!   mount (with a cgroup namespace) or a bind of the host's
//!   `<mount_point>/<container_path>`, plus the co-mount symlinks.

use std::path::{Path, PathBuf};

use pathrs::InodeType;
use rustix::fs::CWD;

use super::mounts::{self, fs_error, place, Env};
use super::options::{parse_data, Attrs, FsParam, MountOptions};
use super::paths::{self, Kind};
use super::sys;
use crate::cgroups::HierarchyView;
use crate::error::{Context, Error, Result};

pub(crate) fn mount(env: &Env<'_>, dest: &Path, opts: &MountOptions, step: &str) -> Result<()> {
    match env.cgroups.hierarchies.as_slice() {
        [] => Err(Error::step(
            step,
            "no cgroup hierarchy is known for this container",
        )),
        [h] if h.fstype == "cgroup2" && h.subdir.is_empty() => hierarchy(env, h, dest, opts, step),
        hierarchies => split(env, hierarchies, dest, opts, step),
    }
}

/// v1 or hybrid: a tmpfs holding one mount per hierarchy.
fn split(
    env: &Env<'_>,
    hierarchies: &[HierarchyView],
    dest: &Path,
    opts: &MountOptions,
    step: &str,
) -> Result<()> {
    let holder = MountOptions {
        attrs: Attrs {
            nosuid: Some(true),
            nodev: Some(true),
            noexec: Some(true),
            ..Attrs::default()
        },
        propagation: opts.propagation.clone(),
        ..MountOptions::default()
    };
    let params = [FsParam::Str("mode".into(), "755".into())];
    let tmpfs = sys::new_fs("tmpfs", Some("tmpfs"), &params).map_err(|e| fs_error(step, e))?;
    place(env.root, &tmpfs, dest, Kind::Dir, &holder, step)?;

    // Each hierarchy gets the attributes asked for, not the propagation: that
    // was for the mount at `dest`.
    let sub_opts = MountOptions {
        propagation: Vec::new(),
        ..opts.clone()
    };
    for h in hierarchies {
        let sub = dest.join(&h.subdir);
        let sub_step = format!("{step}: {}", h.subdir);
        hierarchy(env, h, &sub, &sub_opts, &sub_step)?;
    }
    for (name, target) in &env.cgroups.symlinks {
        symlink(env, &dest.join(name), target, step)?;
    }
    // Read-only last: the directories above had to be made in the tmpfs.
    if opts.attrs.rdonly == Some(true) {
        sys::set_attrs(&tmpfs, false, libc::MOUNT_ATTR_RDONLY, 0)
            .step(|| format!("{step}: make the cgroup tmpfs read-only"))?;
    }
    Ok(())
}

/// One hierarchy at `dest`: a fresh cgroup mount when the container has its
/// own cgroup namespace (its root is the container's cgroup), otherwise a
/// bind of the container's cgroup directory on the host.
fn hierarchy(
    env: &Env<'_>,
    h: &HierarchyView,
    dest: &Path,
    opts: &MountOptions,
    step: &str,
) -> Result<()> {
    if env.cgroupns {
        let params = if h.fstype == "cgroup2" {
            Vec::new()
        } else {
            parse_data(&h.options)
        };
        match sys::new_fs(&h.fstype, Some("cgroup"), &params) {
            Ok(tree) => return place(env.root, &tree, dest, Kind::Dir, opts, step),
            // A cgroup namespace not owned by our user namespace: bind.
            Err(e) if env.in_user_ns && (mounts::is_eperm(&e) || is_ebusy(&e)) => {}
            Err(e) => return Err(fs_error(step, e)),
        }
    }
    let source = host_cgroup_dir(h);
    let tree = sys::clone_tree(CWD, &source, true)
        .step(|| format!("{step}: bind {}", source.display()))?;
    place(env.root, &tree, dest, Kind::Dir, opts, step)
}

fn is_ebusy(e: &sys::FsError) -> bool {
    e.source.raw_os_error() == Some(libc::EBUSY)
}

/// `<mount_point>/<container_path>` on the host.
fn host_cgroup_dir(h: &HierarchyView) -> PathBuf {
    let relative = h
        .container_path
        .strip_prefix("/")
        .unwrap_or(&h.container_path);
    h.mount_point.join(relative)
}

fn symlink(env: &Env<'_>, link: &Path, target: &str, step: &str) -> Result<()> {
    match env.root.create(link, &InodeType::Symlink(target.into())) {
        Ok(()) => Ok(()),
        Err(e) if paths::errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(e).step(|| format!("{step}: symlink {} -> {target}", link.display())),
    }
}

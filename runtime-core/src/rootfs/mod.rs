//! The container's filesystem, set up inside its init process (single
//! threaded, already in its new mount namespace).
//!
//! | step      | when                      | what                                             |
//! |-----------|---------------------------|--------------------------------------------------|
//! | [`prepare`] | before pivot_root       | "/" propagation, rootfs self-bind and its propagation, `mounts`, /dev |
//! | [`enter`]   | after prepare           | pivot_root (or MS_MOVE + chroot), chdir("/")     |
//! | [`finish`]  | after enter and sysctls | maskedPaths, readonlyPaths, root.readonly, shared/unbindable root |
//! | [`bind_console`] | after enter        | pty slave onto /dev/console                      |
//!
//! Design rule (design.md §2): the rootfs is opened once as a `pathrs::Root`;
//! every destination is resolved inside it to an `O_PATH` fd, and every mount
//! is built detached and attached onto that fd with move_mount(2). No path
//! joined from the rootfs path ever reaches mount(2). Needs Linux 5.12
//! (mount_setattr).
//!
//! Propagation: rootfsPropagation (rslave by default) is given to the
//! rootfs tree right after it is bound, before the config's `mounts`; each
//! of those then gets the propagation its own options ask for, which is
//! never overridden afterwards. Only a shared or unbindable root waits for
//! [`finish`], and then only the root mount itself changes.

mod cgroup;
mod copyup;
mod devices;
mod idmap;
mod masks;
mod mounts;
mod options;
mod paths;
mod pivot;
mod sys;

use std::os::fd::BorrowedFd;
use std::path::Path;

use oci_spec::runtime::Spec;
use pathrs::Root;
use rustix::fs::{Mode, OFlags};

use crate::cgroups::MountView;
use crate::error::{Context, Result};

/// Before pivot_root. `rootfs` is the absolute, canonical host path of
/// root.path. `cgroups` tells how to mount /sys/fs/cgroup; `in_user_ns`
/// makes device nodes bind mounts of the host's; `cgroupns` says whether
/// the container has its own cgroup namespace.
///
/// Relative bind sources are resolved against the current directory, which
/// must be the bundle (as for runc's init).
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    cgroups: &MountView,
    in_user_ns: bool,
    cgroupns: bool,
) -> Result<()> {
    let wanted = pivot::root_propagation(rootfs_propagation(spec))?;
    let slash = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty());
    let slash = sys::io(slash).step(|| "open /".to_string())?;
    pivot::prepare_host(&slash, wanted)?;
    let root = pivot::bind_rootfs(rootfs, wanted)?;
    let env = mounts::Env {
        root: &root,
        cgroups,
        in_user_ns,
        cgroupns,
    };
    for m in spec.mounts().iter().flatten() {
        mounts::mount(&env, m)?;
    }
    if !devices::dev_is_bound(spec) {
        devices::setup(&root, spec, in_user_ns)?;
    }
    Ok(())
}

/// pivot_root into the rootfs (pivot_root(".", ".") then detach the old
/// root), or with `no_pivot` move the rootfs onto "/" and chroot; then
/// chdir("/").
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    pivot::enter(rootfs, no_pivot)
}

/// After enter (and after sysctls): maskedPaths, readonlyPaths,
/// root.readonly, then what is left of rootfsPropagation (a shared root
/// cannot be pivoted into; an unbindable one could not be cloned for the
/// masks).
pub fn finish(spec: &Spec) -> Result<()> {
    let root = Root::open("/").step(|| "open / of the container".to_string())?;
    let wanted = pivot::root_propagation(rootfs_propagation(spec))?;
    if let Some(linux) = spec.linux() {
        masks::mask(&root, linux.masked_paths().as_deref().unwrap_or_default())?;
        masks::readonly(&root, linux.readonly_paths().as_deref().unwrap_or_default())?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        masks::root_readonly(&root)?;
    }
    if let Some(change) = pivot::after_pivot(wanted) {
        pivot::propagate_root(&root, change, "set rootfsPropagation on /")?;
    }
    Ok(())
}

/// Bind the pty slave (a fd from TIOCGPTPEER, checked to be on devpts) onto
/// /dev/console, by fd. After enter().
pub fn bind_console(slave: BorrowedFd<'_>) -> Result<()> {
    masks::console(slave)
}

/// After enter: the working directory, resolved inside the root (so a cwd
/// such as /proc/self/fd/N cannot lead out) and created if missing, as runc
/// does. Returns an `O_PATH` fd to fchdir into.
pub fn resolve_cwd(cwd: &Path) -> Result<std::os::fd::OwnedFd> {
    let root = Root::open("/").step(|| "open / of the container".to_string())?;
    paths::resolve_or_create(&root, cwd, paths::Kind::Dir, "process.cwd")
}

/// After enter: open `path` inside the root with `flags` (RESOLVE_IN_ROOT,
/// no magic links).
pub fn open_in_root(path: &Path, flags: OFlags) -> Result<std::os::fd::OwnedFd> {
    let slash = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let slash = sys::io(slash).step(|| "open /".to_string())?;
    let how = rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS;
    sys::io(rustix::fs::openat2(
        &slash,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    ))
    .step(|| format!("open {}", path.display()))
}

fn rootfs_propagation(spec: &Spec) -> Option<&str> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|v| !v.is_empty())
}

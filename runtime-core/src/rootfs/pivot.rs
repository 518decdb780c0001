//! Making the rootfs a mount of its own, and entering it.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::{umount2, MntFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use pathrs::Root;
use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::MoveMountFlags;

use super::options::Propagation;
use super::sys;
use crate::error::{Context, Error, Result};

/// Bind the rootfs onto itself (recursively) so that it is a mount point
/// pivot_root can use, give that tree the part of `wanted` (the
/// rootfsPropagation) that can be set before pivot_root, and open it as the
/// `Root` every later lookup goes through.
pub(crate) fn bind_rootfs(rootfs: &Path, wanted: Propagation) -> Result<Root> {
    let step = || format!("bind the rootfs {} onto itself", rootfs.display());
    let dir = open_dir(CWD, rootfs).step(step)?;
    if may_leave_shared(wanted) {
        unshare_parent(&dir, rootfs)?;
    }
    let tree = sys::clone_fd(&dir, true).step(step)?;
    sys::attach(&tree, &dir).step(step)?;
    // `tree` is now the root of the new mount: the rootfs as the container
    // will see it.
    before_pivot(&tree, wanted)
        .step(|| format!("set the propagation of the rootfs {}", rootfs.display()))?;
    Ok(Root::from_fd(tree))
}

fn open_dir(dir: impl AsFd, path: impl rustix::path::Arg) -> std::io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, path, flags, Mode::empty())?)
}

const fn change(flag: u64, recursive: bool) -> Propagation {
    Propagation { flag, recursive }
}

/// Before anything is mounted: "/" of our namespace, whose mounts (the
/// host's, copied) are where the rootfs and every bind source are cloned
/// from. As runc, it gets rootfsPropagation (rslave by default), with two
/// exceptions:
/// - never shared: pivot_root refuses a new root whose parent is shared, and
///   a move onto a shared "/" (--no-pivot) would propagate the rootfs into
///   the host's "/". For "shared", "/" is made a slave instead (of the
///   host's "/", if that is shared); "rshared" shares every mount below "/"
///   but leaves "/" itself a slave.
/// - never unbindable: the rootfs and the bind sources could no longer be
///   cloned. (r)unbindable becomes (r)private, which it implies anyway.
pub(crate) fn prepare_host(slash: impl AsFd, wanted: Propagation) -> Result<()> {
    let set = |c| propagate_root(&slash, c, "set the propagation of /");
    match wanted.flag {
        libc::MS_SHARED => {
            if wanted.recursive {
                set(wanted)?;
            }
            set(change(libc::MS_SLAVE, false))
        }
        libc::MS_UNBINDABLE => set(change(libc::MS_PRIVATE, wanted.recursive)),
        _ => set(wanted),
    }
}

/// Whether mounts of our namespace may still be shared after prepare_host:
/// only a recursive slave/private/unbindable change of "/" guarantees that
/// none is (the common case, which then costs nothing).
fn may_leave_shared(wanted: Propagation) -> bool {
    !wanted.recursive || wanted.flag == libc::MS_SHARED
}

/// The rootfs tree, just attached, before the config's mounts are made.
///
/// slave and private are set here, so that each of the config's mounts,
/// made afterwards, keeps the propagation its own options ask for
/// (`rshared` on a bind must not be undone by the default rslave).
///
/// A shared root cannot be pivot_root's new root, and an unbindable one
/// could not be cloned for readonlyPaths or /dev/null masks: the root gets
/// those in [`after_pivot`]. Until then it is left a slave (shared: it keeps
/// receiving from the host, as it will once shared) or private
/// (unbindable). The recursive variants reach the mounts below the root
/// here, which the container's own mounts are not yet.
fn before_pivot(tree: &OwnedFd, wanted: Propagation) -> std::io::Result<()> {
    match wanted.flag {
        libc::MS_SLAVE | libc::MS_PRIVATE => sys::set_propagation(tree, wanted),
        flag => {
            if wanted.recursive {
                sys::set_propagation(tree, wanted)?;
            }
            // MS_SLAVE would leave an unbindable mount unbindable.
            let root = if flag == libc::MS_SHARED {
                libc::MS_SLAVE
            } else {
                libc::MS_PRIVATE
            };
            sys::set_propagation(tree, change(root, false))
        }
    }
}

/// What is left of `wanted` for the root once it is "/" (see
/// [`before_pivot`]): only the root mount itself, so that the container's
/// mounts keep their own propagation.
pub(crate) fn after_pivot(wanted: Propagation) -> Option<Propagation> {
    match wanted.flag {
        libc::MS_SHARED | libc::MS_UNBINDABLE => Some(change(wanted.flag, false)),
        _ => None,
    }
}

/// pivot_root(2) (and MS_MOVE) refuse a new root whose parent mount is
/// shared, and attaching the rootfs onto a shared mount would propagate it
/// to the host. If the mount holding the rootfs is shared, make it a slave
/// in our namespace (the host's copy is not affected): it no longer sends
/// anything to its peers but still receives from them, so that a rootfs
/// with rootfsPropagation slave or shared still gets the host's mounts.
/// (runc makes it private, which cuts those off.)
fn unshare_parent(dir: &OwnedFd, rootfs: &Path) -> Result<()> {
    let step = || format!("make the mount holding {} a slave", rootfs.display());
    let id = sys::mnt_id(dir).step(step)?;
    if !is_shared(id).step(step)? {
        return Ok(());
    }
    let top = mount_root(dir).step(step)?;
    sys::set_propagation(&top, change(libc::MS_SLAVE, false)).step(step)
}

/// Whether mount `id` has a "shared:N" tag in /proc/self/mountinfo.
fn is_shared(id: u64) -> std::io::Result<bool> {
    let procfs = ProcfsHandle::new().map_err(std::io::Error::other)?;
    let mut file = procfs
        .open(ProcfsBase::ProcSelf, "mountinfo", OpenFlags::O_RDONLY)
        .map_err(std::io::Error::other)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let id = id.to_string();
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(id.as_str()))
        .ok_or_else(|| std::io::Error::other(format!("mount {id} is not in mountinfo")))?;
    // Optional fields sit between the 6th field and the "-" separator.
    Ok(line
        .split(' ')
        .skip(6)
        .take_while(|f| *f != "-")
        .any(|f| f.starts_with("shared:")))
}

/// The root of the mount `dir` is on: walk ".." until STATX_ATTR_MOUNT_ROOT.
fn mount_root(dir: &OwnedFd) -> std::io::Result<OwnedFd> {
    let mut cur = open_dir(dir, ".")?;
    for _ in 0..4096 {
        if sys::is_mount_root(&cur)? {
            return Ok(cur);
        }
        cur = open_dir(&cur, "..")?;
    }
    Err(std::io::Error::from_raw_os_error(libc::ELOOP))
}

/// Make the rootfs "/" and leave the old root behind.
pub(crate) fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    let new_root =
        open_dir(CWD, rootfs).step(|| format!("open the rootfs {}", rootfs.display()))?;
    if no_pivot {
        fchdir(&new_root).step(|| format!("chdir into the rootfs {}", rootfs.display()))?;
        move_root(&new_root, rootfs)?;
    } else {
        pivot(&new_root, rootfs)?;
    }
    chdir("/").step(|| "chdir to / in the rootfs".to_string())
}

/// pivot_root(".", "."): the old root ends up stacked on top of the new one
/// at "/"; detach it from there. No directory for the old root is needed.
///
/// The old root is handled through an fd opened before the pivot: a path
/// such as "." would name the new root for mount(2) (which does not step
/// onto the mount stacked on the cwd), and making *that* rslave would undo
/// the propagation of every mount in the container.
fn pivot(new_root: &OwnedFd, rootfs: &Path) -> Result<()> {
    let old_root = open_dir(CWD, "/").step(|| "open the old root".to_string())?;
    fchdir(new_root).step(|| format!("chdir into the rootfs {}", rootfs.display()))?;
    pivot_root(".", ".").step(|| format!("pivot_root into {}", rootfs.display()))?;
    // Cut propagation first, so that detaching the old root does not
    // unmount anything on the host.
    let rslave = change(libc::MS_SLAVE, true);
    sys::set_propagation(&old_root, rslave).step(|| "make the old root rslave".to_string())?;
    // From the old root, "." is its top mount: nothing is stacked on it.
    fchdir(&old_root).step(|| "chdir to the old root".to_string())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach the old root".to_string())
}

/// --no-pivot: move the rootfs mount onto "/" and chroot into it.
fn move_root(new_root: &OwnedFd, rootfs: &Path) -> Result<()> {
    let step = || format!("move the rootfs {} onto /", rootfs.display());
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH;
    sys::io(rustix::mount::move_mount(new_root, "", CWD, "/", flags)).step(step)?;
    // Our cwd is still the rootfs mount, now at "/".
    chroot(".").step(|| format!("chroot into {}", rootfs.display()))
}

/// The propagation `linux.rootfsPropagation` asks for; runc's default is
/// rslave.
pub(crate) fn root_propagation(value: Option<&str>) -> Result<Propagation> {
    match value {
        None | Some("") => Ok(Propagation {
            flag: libc::MS_SLAVE,
            recursive: true,
        }),
        Some(value) => super::options::rootfs_propagation(value),
    }
}

/// Apply `change` to the mount at "/" (the container's root after enter,
/// the host's root before).
pub(crate) fn propagate_root(root: impl AsFd, change: Propagation, what: &str) -> Result<()> {
    sys::set_propagation(root, change).map_err(|e| Error::os(what, e))
}

//! Making the rootfs a mount of its own, and entering it.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
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
/// pivot_root can use, and open it as the `Root` every later lookup goes
/// through.
pub(crate) fn bind_rootfs(rootfs: &Path, root_propagation: Propagation) -> Result<Root> {
    let step = || format!("bind the rootfs {} onto itself", rootfs.display());
    let dir = open_dir(CWD, rootfs).step(step)?;
    if may_leave_shared(root_propagation) {
        privatize_parent(&dir, rootfs)?;
    }
    let tree = sys::clone_fd(&dir, true).step(step)?;
    sys::attach(&tree, &dir).step(step)?;
    // `tree` is now the root of the new mount: the rootfs as the container
    // will see it.
    Ok(Root::from_fd(tree))
}

fn open_dir(dir: impl AsFd, path: impl rustix::path::Arg) -> std::io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, path, flags, Mode::empty())?)
}

/// Only a recursive slave/private/unbindable change of "/" guarantees that
/// no mount is left shared (the common case, which then costs nothing).
fn may_leave_shared(change: Propagation) -> bool {
    !change.recursive || change.flag == libc::MS_SHARED
}

/// pivot_root(2) (and MS_MOVE) refuse a new root whose parent mount is
/// shared. If the mount holding the rootfs is shared, make it private in our
/// namespace, as runc does; the host's copy is not affected.
fn privatize_parent(dir: &OwnedFd, rootfs: &Path) -> Result<()> {
    let step = || format!("make the mount holding {} private", rootfs.display());
    let id = sys::mnt_id(dir).step(step)?;
    if !is_shared(id).step(step)? {
        return Ok(());
    }
    let top = mount_root(dir).step(step)?;
    let private = Propagation {
        flag: libc::MS_PRIVATE,
        recursive: false,
    };
    sys::set_propagation(&top, private).step(step)
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
    fchdir(&new_root).step(|| format!("chdir into the rootfs {}", rootfs.display()))?;
    if no_pivot {
        move_root(&new_root, rootfs)?;
    } else {
        pivot(rootfs)?;
    }
    chdir("/").step(|| "chdir to / in the rootfs".to_string())
}

/// pivot_root(".", "."): the old root ends up stacked on top of the new one
/// at "."; detach it from there. No directory for the old root is needed.
fn pivot(rootfs: &Path) -> Result<()> {
    pivot_root(".", ".").step(|| format!("pivot_root into {}", rootfs.display()))?;
    // Cut propagation first, so that detaching the old root does not
    // unmount anything on the host.
    let flags = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    mount(None::<&str>, ".", None::<&str>, flags, None::<&str>)
        .step(|| "make the old root rslave".to_string())?;
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

//! After pivot_root: maskedPaths, readonlyPaths, a read-only root, and the
//! console. The root is now "/", but paths are still resolved by fd inside
//! it: the container image controls every symlink in there.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use pathrs::Root;
use rustix::fs::FileType;

use super::mounts::{attach_at, fs_error, place};
use super::options::MountOptions;
use super::paths::{self, Kind};
use super::sys;
use crate::error::{Context, Error, Result};

/// Nothing may be written, executed or opened as a device through a mask
/// or a read-only path.
const LOCKED_DOWN: u64 = libc::MOUNT_ATTR_RDONLY
    | libc::MOUNT_ATTR_NOSUID
    | libc::MOUNT_ATTR_NODEV
    | libc::MOUNT_ATTR_NOEXEC;

/// statfs f_type of devpts (linux/magic.h).
const DEVPTS_SUPER_MAGIC: u64 = 0x1cd1;

/// The null device major:minor.
const NULL_DEV: (u32, u32) = (1, 3);

/// Hide each path: files behind /dev/null, directories behind an empty
/// read-only tmpfs. Paths that do not exist are skipped.
pub(crate) fn mask(root: &Root, masked: &[String]) -> Result<()> {
    let mut null: Option<OwnedFd> = None;
    for path in masked {
        let step = format!("mask {path}");
        let Some(target) = paths::resolve(root, Path::new(path), &step)? else {
            continue;
        };
        let kind = paths::file_type(&target).step(|| step.clone())?;
        let tree = if kind == FileType::Directory {
            empty_tmpfs(&step)?
        } else {
            let null = match &null {
                Some(fd) => fd,
                None => null.insert(open_null(root)?),
            };
            sys::clone_fd(null, false).step(|| format!("{step}: bind /dev/null"))?
        };
        attach_at(
            root,
            &tree,
            &target,
            Path::new(path),
            &MountOptions::default(),
            &step,
        )?;
    }
    Ok(())
}

/// The container's /dev/null, checked to be the null device itself: a
/// symlink or another file planted there would otherwise be bound over
/// every masked path (or worse, written through).
fn open_null(root: &Root) -> Result<OwnedFd> {
    let step = "mask paths: open /dev/null";
    let handle = paths::lookup(root, Path::new("/dev/null"), false).step(|| step.to_string())?;
    let handle = handle.ok_or_else(|| Error::step(step, "/dev/null does not exist"))?;
    let st = sys::io(rustix::fs::fstat(&handle)).step(|| step.to_string())?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let dev = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    if kind != FileType::CharacterDevice || dev != NULL_DEV {
        return Err(Error::step(
            step,
            "/dev/null is not the null character device 1:3; refusing to mask with it",
        ));
    }
    Ok(handle)
}

fn empty_tmpfs(step: &str) -> Result<OwnedFd> {
    let tree = sys::new_fs("tmpfs", Some("tmpfs"), &[]).map_err(|e| fs_error(step, e))?;
    sys::set_attrs(&tree, false, LOCKED_DOWN, 0)
        .step(|| format!("{step}: make tmpfs read-only"))?;
    Ok(tree)
}

/// Make each path read-only: a recursive bind onto itself, read-only all
/// the way down. Paths that do not exist are skipped.
pub(crate) fn readonly(root: &Root, paths_ro: &[String]) -> Result<()> {
    for path in paths_ro {
        let step = format!("make {path} read-only");
        let Some(target) = paths::resolve(root, Path::new(path), &step)? else {
            continue;
        };
        let tree = sys::clone_fd(&target, true).step(|| step.clone())?;
        sys::set_attrs(&tree, true, LOCKED_DOWN, 0).step(|| step.clone())?;
        attach_at(
            root,
            &tree,
            &target,
            Path::new(path),
            &MountOptions::default(),
            &step,
        )?;
    }
    Ok(())
}

/// root.readonly: the root mount itself becomes read-only. mount_setattr
/// only adds the flag, so flags locked by a user namespace stay as they are.
pub(crate) fn root_readonly(root: &Root) -> Result<()> {
    sys::set_attrs(root, false, libc::MOUNT_ATTR_RDONLY, 0)
        .step(|| "make the root read-only".to_string())
}

/// Bind the pty slave onto /dev/console.
pub(crate) fn console(slave: BorrowedFd<'_>) -> Result<()> {
    let step = "bind the console onto /dev/console";
    let fs = sys::io(rustix::fs::fstatfs(slave)).step(|| step.to_string())?;
    let kind = paths::file_type(slave).step(|| step.to_string())?;
    if fs.f_type as u64 != DEVPTS_SUPER_MAGIC || kind != FileType::CharacterDevice {
        return Err(Error::step(step, "the console fd is not a pty on devpts"));
    }
    let root = Root::open("/").step(|| format!("{step}: open /"))?;
    let tree = sys::clone_fd(slave.as_fd(), false).step(|| step.to_string())?;
    place(
        &root,
        &tree,
        Path::new("/dev/console"),
        Kind::File,
        &MountOptions::default(),
        step,
    )
}

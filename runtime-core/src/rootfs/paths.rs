//! Paths inside the container's root, resolved by file descriptor.
//!
//! Every lookup is openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) on the
//! fd of the `pathrs::Root` opened once for the rootfs: a symlink in the
//! image, absolute or relative, can never lead outside it. What we get back
//! is an `O_PATH` fd, and the mount code attaches onto that fd, so nothing is
//! re-resolved later. Missing destinations are created by fd too: the last
//! component with openat/mkdirat in its in-root parent, whole missing
//! chains with pathrs' mkdir_all.

use std::ffi::{OsStr, OsString};
use std::fs::Permissions;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use pathrs::flags::OpenFlags;
use pathrs::Root;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::sys;
use crate::error::{Context, Error, Result};

/// What to create when a mount destination is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    /// An empty file, to bind a non-directory onto.
    File,
}

/// The kernel's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// The errno behind a pathrs error, if any.
pub(crate) fn errno(err: &pathrs::error::Error) -> Option<i32> {
    match err.kind() {
        pathrs::error::ErrorKind::OsError(errno) => errno,
        _ => None,
    }
}

/// Look `path` up inside `root` as an `O_PATH` fd: openat2 with
/// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS on the root's fd. `None` if it
/// does not exist.
///
/// This is what `pathrs::Root::resolve` does on this kernel, done directly:
/// pathrs 0.2.6 formats every failed syscall with a path taken from the
/// global /proc, and panics when "/" has no procfs at /proc, which is the
/// case after pivot_root into a container that mounts none. A missing
/// masked path must not abort the init. pathrs stays in charge of creating
/// things (mkdir_all, create_file), which has no such expected failure.
pub(crate) fn lookup(root: &Root, path: &Path, follow: bool) -> std::io::Result<Option<OwnedFd>> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    // EAGAIN: a rename somewhere raced the lookup; the kernel asks to retry.
    for _ in 0..MAX_RETRIES {
        match rustix::fs::openat2(root, path, flags, Mode::empty(), how) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::AGAIN) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EAGAIN))
}

const MAX_RETRIES: usize = 32;

/// Resolve `path` inside `root`, following symlinks inside it; `None` if it
/// does not exist.
pub(crate) fn resolve(root: &Root, path: &Path, step: &str) -> Result<Option<OwnedFd>> {
    lookup(root, path, true).step(|| format!("{step}: resolve {} in the rootfs", path.display()))
}

/// Resolve `path` inside `root`, creating it as `kind` (and its missing
/// parents as directories) if it does not exist.
pub(crate) fn resolve_or_create(
    root: &Root,
    path: &Path,
    kind: Kind,
    step: &str,
) -> Result<OwnedFd> {
    if let Some(fd) = resolve(root, path, step)? {
        return Ok(fd);
    }
    let target = in_root_path(root, path)
        .step(|| format!("{step}: resolve {} in the rootfs", path.display()))?;
    let created = || format!("{step}: create {} in the rootfs", target.display());
    let (parent, name) = match (target.parent(), target.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => return Err(Error::step(created(), "cannot create the root itself")),
    };
    // The common case, and the only one after pivot_root (/dev/console):
    // the parent exists, make the last component in it by fd.
    if let Some(dir) = lookup(root, parent, true).step(created)? {
        return create_in(&dir, name, kind).step(created);
    }
    // Missing parents too: pathrs creates the whole chain inside the root.
    match kind {
        Kind::Dir => Ok(root.mkdir_all(&target, &dir_mode()).step(created)?.into()),
        Kind::File => {
            root.mkdir_all(parent, &dir_mode()).step(created)?;
            let flags = OpenFlags::O_RDONLY
                | OpenFlags::O_CLOEXEC
                | OpenFlags::O_EXCL
                | OpenFlags::O_NOFOLLOW;
            let file = root
                .create_file(&target, flags, &Permissions::from_mode(0o644))
                .step(created)?;
            Ok(file.into())
        }
    }
}

/// Create `name` as `kind` in the directory `dir` (an fd resolved inside the
/// root). O_EXCL and O_NOFOLLOW: the name was just found missing; if
/// something appeared there since, fail rather than follow or reuse it.
fn create_in(dir: &OwnedFd, name: &OsStr, kind: Kind) -> std::io::Result<OwnedFd> {
    let fd = match kind {
        Kind::File => {
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDONLY;
            rustix::fs::openat(
                dir,
                name,
                flags | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )?
        }
        Kind::Dir => {
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))?;
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW;
            rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, Mode::empty())?
        }
    };
    Ok(fd)
}

/// Directories we create for mount points and device nodes: 0755, like runc.
pub(crate) fn dir_mode() -> Permissions {
    Permissions::from_mode(0o755)
}

/// Where `path` leads inside `root`, as a path with every existing symlink
/// expanded (inside the root) and the missing tail kept as written.
///
/// This is what lets a destination that is a dangling symlink, e.g.
/// `/etc/x -> /etc/../../host-file`, be created at `<rootfs>/host-file`
/// instead of failing or escaping. Each step is itself resolved in the root,
/// and the caller creates the result through the root again.
pub(crate) fn in_root_path(root: &Root, path: &Path) -> std::io::Result<PathBuf> {
    let mut resolved = PathBuf::from("/");
    let mut todo = components_reversed(path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            // ".." of the root is the root, as with RESOLVE_IN_ROOT.
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let Some(handle) = lookup(root, &candidate, false)? else {
            resolved = candidate;
            continue;
        };
        if file_type(&handle)? != FileType::Symlink {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
        }
        let target = rustix::fs::readlinkat(&handle, "", Vec::new())?;
        let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
        if target.is_absolute() {
            resolved = PathBuf::from("/");
        }
        todo.extend(components_reversed(&target));
    }
    Ok(resolved)
}

/// The names in `path`, last first (a stack), with "." dropped.
fn components_reversed(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    names.reverse();
    names
}

pub(crate) fn file_type(fd: impl AsFd) -> std::io::Result<FileType> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode))
}

/// Check that `dest`, resolved again inside `root`, now leads to `mount`.
///
/// The mount went onto an fd that was resolved inside the root, but the
/// inode behind it could have been moved out of the rootfs in between (a
/// rename on a bind-mounted directory); this catches it.
pub(crate) fn verify_mounted(root: &Root, dest: &Path, mount: impl AsFd, step: &str) -> Result<()> {
    let check = || format!("{step}: check the mount");
    let expected = sys::mnt_id(mount).step(check)?;
    let again = || format!("{step}: resolve {} again", dest.display());
    let found = lookup(root, dest, true).step(again)?;
    let found =
        found.ok_or_else(|| Error::os(again(), std::io::Error::from_raw_os_error(libc::ENOENT)))?;
    if sys::mnt_id(&found).step(check)? != expected {
        return Err(Error::step(
            step,
            format!(
                "{} does not lead to the new mount inside the rootfs (was it moved or swapped?)",
                dest.display()
            ),
        ));
    }
    Ok(())
}

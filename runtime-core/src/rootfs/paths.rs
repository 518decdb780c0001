//! Paths inside the container's root, resolved by file descriptor.
//!
//! Every lookup goes through a `pathrs::Root` (openat2 with RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS): a symlink in the image, absolute or relative,
//! can never lead outside the rootfs. What we get back is an `O_PATH` fd, and
//! the mount code attaches onto that fd, so nothing is re-resolved later.

use std::ffi::OsString;
use std::fs::Permissions;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use pathrs::flags::OpenFlags;
use pathrs::{Handle, Root};
use rustix::fs::FileType;

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

/// Resolve `path` inside `root`, following symlinks inside it; `None` if it
/// does not exist.
pub(crate) fn resolve(root: &Root, path: &Path, step: &str) -> Result<Option<Handle>> {
    match root.resolve(path) {
        Ok(handle) => Ok(Some(handle)),
        Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e).step(|| format!("{step}: resolve {} in the rootfs", path.display())),
    }
}

/// Resolve `path` inside `root`, creating it as `kind` (and its missing
/// parents as directories) if it does not exist.
pub(crate) fn resolve_or_create(
    root: &Root,
    path: &Path,
    kind: Kind,
    step: &str,
) -> Result<OwnedFd> {
    if let Some(handle) = resolve(root, path, step)? {
        return Ok(handle.into());
    }
    let target = in_root_path(root, path)
        .step(|| format!("{step}: resolve {} in the rootfs", path.display()))?;
    let created = || format!("{step}: create {} in the rootfs", target.display());
    match kind {
        Kind::Dir => Ok(root.mkdir_all(&target, &dir_mode()).step(created)?.into()),
        Kind::File => {
            let parent = target.parent().unwrap_or(Path::new("/"));
            root.mkdir_all(parent, &dir_mode()).step(created)?;
            // O_EXCL|O_NOFOLLOW: the name was just found missing; if something
            // appeared there since, fail rather than open it.
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
        let handle = match root.resolve_nofollow(&candidate) {
            Ok(handle) => handle,
            Err(e) if errno(&e) == Some(libc::ENOENT) => {
                resolved = candidate;
                continue;
            }
            Err(e) => return Err(to_io(e)),
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

fn to_io(err: pathrs::error::Error) -> std::io::Error {
    match errno(&err) {
        Some(errno) => std::io::Error::from_raw_os_error(errno),
        None => std::io::Error::other(err.to_string()),
    }
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
    let found = root
        .resolve(dest)
        .step(|| format!("{step}: resolve {} again", dest.display()))?;
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

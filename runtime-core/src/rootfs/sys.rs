//! Thin wrappers over the new mount API. Everything here works on file
//! descriptors: a mount is created detached (open_tree/fsmount), adjusted
//! while nobody can see it, then attached onto an already-resolved `O_PATH`
//! fd with move_mount, so no path string is ever re-resolved by the kernel.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, StatxFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, FsPickFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use super::options::{FsParam, Propagation};

/// rustix's errno as a std error, so that `Context::step` applies.
pub(crate) fn io<T>(result: rustix::io::Result<T>) -> io::Result<T> {
    result.map_err(io::Error::from)
}

/// A detached copy of the mount tree at `path` (relative to `dir`), as
/// MS_BIND (or MS_BIND|MS_REC when `recursive`) would make.
pub(crate) fn clone_tree(dir: impl AsFd, path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if path.as_os_str().is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    Ok(rustix::mount::open_tree(dir, path, flags)?)
}

/// A detached copy of the mount tree rooted at the file `fd` refers to.
pub(crate) fn clone_fd(fd: impl AsFd, recursive: bool) -> io::Result<OwnedFd> {
    clone_tree(fd, Path::new(""), recursive)
}

/// Attach the mount `tree` onto the inode `target` refers to.
pub(crate) fn attach(tree: impl AsFd, target: impl AsFd) -> io::Result<()> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    Ok(rustix::mount::move_mount(tree, "", target, "", flags)?)
}

/// mount_setattr(2) on the mount whose root `fd` refers to.
pub(crate) fn set_attrs(fd: impl AsFd, recursive: bool, set: u64, clr: u64) -> io::Result<()> {
    mount_setattr(fd.as_fd(), recursive, set, clr, 0, None)
}

/// Change the propagation type of the mount whose root `fd` refers to.
pub(crate) fn set_propagation(fd: impl AsFd, change: Propagation) -> io::Result<()> {
    mount_setattr(fd.as_fd(), change.recursive, 0, 0, change.flag, None)
}

/// Id-map the detached mount `tree` (and with `recursive` every mount below
/// it) with the mappings of the user namespace `userns`.
pub(crate) fn set_idmap(tree: impl AsFd, recursive: bool, userns: impl AsFd) -> io::Result<()> {
    let set = libc::MOUNT_ATTR_IDMAP;
    mount_setattr(tree.as_fd(), recursive, set, 0, 0, Some(userns.as_fd()))
}

fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clr: u64,
    propagation: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clr,
        propagation,
        // Read by the kernel only with MOUNT_ATTR_IDMAP in attr_set.
        userns_fd: userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `fd` (and `userns`, if any) are live descriptors for the
    // duration of the call, the path is a NUL-terminated empty string
    // (AT_EMPTY_PATH: operate on `fd`), and `attr` is a fully initialised
    // mount_attr whose exact size we pass, which the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The mount id of the mount `fd` is on.
pub(crate) fn mnt_id(fd: impl AsFd) -> io::Result<u64> {
    let stx = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    Ok(stx.stx_mnt_id)
}

/// Whether `fd` refers to the root of a mount.
pub(crate) fn is_mount_root(fd: impl AsFd) -> io::Result<bool> {
    let stx = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::empty())?;
    let root = rustix::fs::StatxAttributes::MOUNT_ROOT;
    if !stx.stx_attributes_mask.contains(root) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "statx does not report STATX_ATTR_MOUNT_ROOT",
        ));
    }
    Ok(stx.stx_attributes.contains(root))
}

/// Why creating a filesystem failed: the errno, plus what the filesystem
/// wrote to the fs context log (e.g. "overlay: failed to resolve 'x'").
#[derive(Debug)]
pub(crate) struct FsError {
    pub source: io::Error,
    pub log: String,
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.log.is_empty() {
            write!(f, "{}", self.source)
        } else {
            write!(f, "{} ({})", self.source, self.log)
        }
    }
}

/// Create a new filesystem of `fstype` and return its detached mount (with
/// default attributes: the caller sets them with mount_setattr).
pub(crate) fn new_fs(
    fstype: &str,
    source: Option<&str>,
    params: &[FsParam],
) -> Result<OwnedFd, FsError> {
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| FsError {
        source: e.into(),
        log: String::new(),
    })?;
    let configured =
        configure(&fs, source, params).and_then(|()| Ok(rustix::mount::fsconfig_create(&fs)?));
    if let Err(source) = configured {
        return Err(FsError {
            source,
            log: read_log(&fs),
        });
    }
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).map_err(
        |e| FsError {
            source: e.into(),
            log: read_log(&fs),
        },
    )
}

/// Change the superblock parameters of the mount `fd` is the root of (the
/// "remount" option with filesystem data).
pub(crate) fn reconfigure(fd: impl AsFd, params: &[FsParam]) -> Result<(), FsError> {
    let flags = FsPickFlags::FSPICK_CLOEXEC | FsPickFlags::FSPICK_EMPTY_PATH;
    let fs = rustix::mount::fspick(fd, "", flags).map_err(|e| FsError {
        source: e.into(),
        log: String::new(),
    })?;
    let configured =
        configure(&fs, None, params).and_then(|()| Ok(rustix::mount::fsconfig_reconfigure(&fs)?));
    configured.map_err(|source| FsError {
        source,
        log: read_log(&fs),
    })
}

fn configure(fs: &OwnedFd, source: Option<&str>, params: &[FsParam]) -> io::Result<()> {
    if let Some(source) = source {
        rustix::mount::fsconfig_set_string(fs, "source", cstring(source)?.as_c_str())?;
    }
    for param in params {
        match param {
            FsParam::Flag(key) => rustix::mount::fsconfig_set_flag(fs, cstring(key)?.as_c_str())?,
            FsParam::Str(key, value) => rustix::mount::fsconfig_set_string(
                fs,
                cstring(key)?.as_c_str(),
                cstring(value)?.as_c_str(),
            )?,
        }
    }
    Ok(())
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} contains a NUL byte"),
        )
    })
}

/// Drain the fs context's message log ("e overlay: ..." lines).
fn read_log(fs: &OwnedFd) -> String {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; the log holds at most a few.
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                let msg = String::from_utf8_lossy(&buf[..n]);
                let msg = msg.trim_end();
                let msg = msg.split_once(' ').map_or(msg, |(_, text)| text);
                messages.push(msg.to_string());
            }
            _ => break,
        }
    }
    messages.join("; ")
}

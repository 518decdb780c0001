//! Protection of the husk binary against CVE-2019-5736: the container's init
//! is a clone of `husk create`, so until it execs the user's program its
//! /proc/<pid>/exe is the husk binary. A process in the container must not be
//! able to open that for writing.
//!
//! Instead of copying the binary into a sealed memfd (more than half of a
//! container start, ../shared/perf.md), the commands that enter a container
//! re-exec themselves once from a detached, read-only bind mount of their own
//! binary: no copy, and /proc/<pid>/exe then refers to a file on a read-only
//! mount, which cannot be reopened for writing. Commands that do not enter a
//! container (state, start, kill, delete, list) never pay for this.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use crate::error::{Error, Result};

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Whether the running binary already sits on a read-only mount.
pub fn is_sealed() -> Result<bool> {
    let exe =
        std::fs::File::open("/proc/self/exe").map_err(|e| Error::os("open /proc/self/exe", e))?;
    let vfs =
        nix::sys::statvfs::fstatvfs(&exe).map_err(|e| Error::os("statvfs /proc/self/exe", e))?;
    Ok(vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Re-exec through a read-only clone of our own binary unless already on a
/// read-only mount. Returns only if no re-exec was needed, or with an error.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed()? {
        return Ok(());
    }
    let tree = read_only_clone()?;
    let err = exec_fd(&tree);
    Err(Error::os("re-exec husk from a read-only mount", err))
}

/// A detached, read-only bind mount of /proc/self/exe.
fn read_only_clone() -> Result<OwnedFd> {
    let path = c"/proc/self/exe";
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: path is a valid C string; open_tree returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::os(
            "clone the husk binary's mount",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr is a valid mount_attr of the size passed; the empty path
    // with AT_EMPTY_PATH makes the call apply to the fd itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret != 0 {
        return Err(Error::os(
            "make the husk binary's mount read-only",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(tree)
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH) with our own argv and env.
fn exec_fd(fd: &OwnedFd) -> std::io::Error {
    let to_c = |s: OsString| CString::new(s.into_vec()).ok();
    let args: Option<Vec<CString>> = std::env::args_os().map(to_c).collect();
    let env: Option<Vec<CString>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(kv)
        })
        .collect();
    let (Some(args), Some(env)) = (args, env) else {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in argv or env");
    };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings
    // that outlive the call; on success it does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    std::io::Error::last_os_error()
}

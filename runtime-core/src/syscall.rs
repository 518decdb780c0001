//! Thin, typed wrappers over the syscalls that nix/libc do not wrap: clone3,
//! pidfds, close_range. Each wrapper keeps its `unsafe` in one place.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `struct clone_args` of clone3(2), kernel ABI v2 (with cgroup).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Which side of a fork we are on.
pub enum Forked {
    Child,
    Parent { pid: i32, pidfd: OwnedFd },
}

/// Fork with clone3: `namespace_flags` (CLONE_NEW*) are created for the child,
/// and with `cgroup` the child is born in that cgroup2 directory, so no
/// migration is needed. The parent gets a pidfd, so the child's identity can
/// never be confused with a recycled pid.
///
/// Like fork(2), this must only be called while the process is single-threaded.
pub fn clone3(namespace_flags: u64, cgroup: Option<BorrowedFd>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: namespace_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: args is a valid clone_args of the size passed; with no stack
    // given the child continues on a copy of our stack like fork(2), and the
    // caller guarantees we are single-threaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: the kernel returned a fresh pidfd that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Fail unless the calling process has exactly one thread. The container's
/// init is a clone of the caller that runs Rust code (allocating) without an
/// exec: in a multi-threaded process another thread may hold the allocator's
/// lock at the moment of the clone, and the child would deadlock. Embedders
/// with threads (a shim, a tokio program) must run the `husk` binary instead.
pub fn ensure_single_threaded() -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let threads = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().nth(17))
        .and_then(|n| n.parse::<u32>().ok());
    match threads {
        Some(1) => Ok(()),
        Some(n) => Err(io::Error::other(format!(
            "the calling process has {n} threads; container setup clones without exec and \
             needs a single-threaded caller: run the husk binary from multi-threaded programs"
        ))),
        None => Err(io::Error::other(
            "cannot read the thread count from /proc/self/stat",
        )),
    }
}

/// A pidfd for `pid` (pidfd_open(2)).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Send `signal` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: BorrowedFd, signal: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2) would".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mark every fd from `first` up close-on-exec, so nothing of the runtime
/// leaks into the container (design.md §3).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until the process behind `pidfd` exits, or `timeout_ms` passes.
/// Returns true if it exited.
pub fn pidfd_wait_exit(pidfd: BorrowedFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: pfd is a valid pollfd array of length 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ret >= 0 {
            return Ok(ret > 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// unshare(2) with raw CLONE_* flags (nix's CloneFlags lacks CLONE_NEWTIME
/// and would silently drop it).
pub fn unshare(flags: u64) -> io::Result<()> {
    // SAFETY: plain syscall with an integer argument.
    if unsafe { libc::unshare(flags as libc::c_int) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setns(2) with a raw CLONE_NEW* type (see `unshare`).
pub fn setns(fd: BorrowedFd, nstype: u64) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    if unsafe { libc::setns(fd.as_raw_fd(), nstype as libc::c_int) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

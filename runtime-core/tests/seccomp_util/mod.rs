//! Helpers shared by the seccomp test files (seccomp*.rs): profiles from
//! JSON, and a forked child that loads a filter and reports what the kernel
//! did with its syscalls through its exit status.
#![allow(dead_code)]

use std::os::fd::OwnedFd;

use oci_spec::runtime::LinuxSeccomp;
use runtime_core::seccomp::{self, Filter};

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Exit(i32),
    Signal(i32),
}

/// Exit code of a child whose filter did not load.
pub const INSTALL_FAILED: i32 = 250;

/// A linux.seccomp object from JSON, parsed as config.json parsing does.
pub fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("test profile parses")
}

pub fn compile(json: serde_json::Value) -> Filter {
    seccomp::compile(&profile(json)).expect("test profile compiles")
}

/// Fork; the child sets no_new_privs, loads `filter`, runs `body` with the
/// notify fd (if any) and exits with what `body` returned. Core dumps are
/// off, so SIGSYS deaths leave nothing behind.
pub fn in_child(filter: &Filter, body: impl FnOnce(Option<OwnedFd>) -> i32) -> End {
    in_child_prepared(filter, || {}, body)
}

/// Like [`in_child`], with `prepare` run before the filter is loaded.
pub fn in_child_prepared(
    filter: &Filter,
    prepare: impl FnOnce(),
    body: impl FnOnce(Option<OwnedFd>) -> i32,
) -> End {
    let filter = filter.clone();
    // SAFETY: the child only makes syscalls and exits with _exit; glibc
    // keeps malloc usable after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = child(filter, prepare, body);
        // SAFETY: _exit ends the forked child without running the test
        // harness's destructors.
        unsafe { libc::_exit(code) }
    }
    wait(pid)
}

fn child(filter: Filter, prepare: impl FnOnce(), body: impl FnOnce(Option<OwnedFd>) -> i32) -> i32 {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain prctl/setrlimit calls with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    prepare();
    match filter.install() {
        Ok(fd) => body(fd),
        Err(_) => INSTALL_FAILED,
    }
}

pub fn wait(pid: libc::pid_t) -> End {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer; pid is our child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFSIGNALED(status) {
        End::Signal(libc::WTERMSIG(status))
    } else {
        End::Exit(libc::WEXITSTATUS(status))
    }
}

/// The errno of the last failed call (0 if `ret` is not -1).
pub fn errno_of(ret: libc::c_long) -> i32 {
    if ret != -1 {
        return 0;
    }
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(255)
}

/// A raw syscall with up to three arguments; its errno, or 0 on success.
pub fn call(nr: libc::c_long, a: u64, b: u64, c: u64) -> i32 {
    // SAFETY: the tests only pass numbers and pointers of their own that
    // stay valid for the call.
    errno_of(unsafe { libc::syscall(nr, a, b, c) })
}

/// Why the tests that need root (to hold and drop capabilities) cannot
/// run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    None
}

//! Helpers shared by the cgroup test files (cgroups_*.rs): root checks,
//! unique names, and a forked probe that joins cgroups and reports what the
//! kernel let it do.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtime_core::cgroups::{detect_layout, Layout};

/// Why the cgroup tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if let Err(e) = detect_layout() {
        return Some(format!("no cgroupfs: {e}"));
    }
    None
}

#[macro_export]
macro_rules! need_root {
    ($test:ident) => {
        if let Some(why) = cgroups_util::skip_reason() {
            eprintln!("SKIPPED {}: {why}", stringify!($test));
            return;
        }
    };
}

pub fn uid(name: &str) -> String {
    format!("husk-test-{}-{name}", std::process::id())
}

/// The host's cgroup2 mount, if any.
pub fn cgroup2_root() -> Option<PathBuf> {
    match detect_layout().ok()? {
        Layout::V2 => Some(PathBuf::from("/sys/fs/cgroup")),
        Layout::Hybrid => Some(PathBuf::from("/sys/fs/cgroup/unified")),
        Layout::V1 => None,
    }
}

pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_owned()
}

/// What the probe tries.
pub enum Op<'a> {
    /// open(path, O_RDWR)
    OpenRw(&'a str),
    /// open(path, O_RDONLY)
    OpenRo(&'a str),
    /// mknod(path, S_IFCHR, major:minor)
    MknodChar(&'a str, u32, u32),
}

/// Fork a child that writes itself into each `cgroup.procs` of `cgroups`,
/// then tries every op; returns each op's errno (0 = it worked). Only
/// async-signal-safe calls happen in the child (the test harness has
/// threads).
pub fn probe(cgroups: &[&Path], ops: &[Op]) -> Vec<i32> {
    assert!(ops.len() <= 8, "at most 8 ops");
    let procs: Vec<CString> = cgroups
        .iter()
        .map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).expect("path"))
        .collect();
    let paths: Vec<CString> = ops
        .iter()
        .map(|op| match op {
            Op::OpenRw(p) | Op::OpenRo(p) | Op::MknodChar(p, ..) => CString::new(*p).expect("path"),
        })
        .collect();
    let mut pipe = [0i32; 2];
    // SAFETY: pipe2 fills two ints we own.
    assert_eq!(
        unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    // SAFETY: fork in a threaded process; the child only makes
    // async-signal-safe calls (open, write, close, mknod, _exit) on data
    // prepared before the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: see above; every pointer is to memory prepared before fork.
        unsafe { child(&procs, &paths, ops, pipe[1]) }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(pipe[1]) };
    let mut out = [0i32; 8];
    let mut got = 0usize;
    let bytes = out.len() * 4;
    while got < bytes {
        // SAFETY: reading into our own buffer, within its size.
        let n = unsafe {
            libc::read(
                pipe[0],
                (out.as_mut_ptr() as *mut u8).add(got).cast(),
                bytes - got,
            )
        };
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    // SAFETY: our fd; waitpid on our own child.
    unsafe {
        libc::close(pipe[0]);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        assert!(
            libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
            "probe child failed to join the cgroups (status {st:#x})"
        );
    }
    out[..ops.len()].to_vec()
}

unsafe fn child(procs: &[CString], paths: &[CString], ops: &[Op], out: i32) -> ! {
    for p in procs {
        let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            libc::_exit(2);
        }
        libc::close(fd);
    }
    let mut res = [0i32; 8];
    for (i, (op, path)) in ops.iter().zip(paths).enumerate() {
        let r = match op {
            Op::OpenRw(_) | Op::OpenRo(_) => {
                let flags = if matches!(op, Op::OpenRw(_)) {
                    libc::O_RDWR
                } else {
                    libc::O_RDONLY
                };
                let fd = libc::open(path.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NONBLOCK);
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            }
            Op::MknodChar(_, maj, min) => {
                let r = libc::mknod(
                    path.as_ptr(),
                    libc::S_IFCHR | 0o600,
                    libc::makedev(*maj, *min),
                );
                if r == 0 {
                    libc::unlink(path.as_ptr());
                }
                r
            }
        };
        res[i] = if r < 0 { *libc::__errno_location() } else { 0 };
    }
    libc::write(out, res.as_ptr().cast(), std::mem::size_of_val(&res));
    libc::_exit(0)
}

/// Poll `cond` every 5 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

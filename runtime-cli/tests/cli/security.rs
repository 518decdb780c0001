//! The attacks runc and crun shipped fixes for: overwriting the runtime
//! binary through /proc/<pid>/exe (CVE-2019-5736), a dumpable init, a cwd
//! through a leaked fd (CVE-2024-21626), and host fds leaking in.

use crate::common::*;
use std::ffi::CString;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "security.husk_binary_not_writable_via_proc_exe",
            run: exe_not_writable,
        },
        Test {
            name: "security.init_not_dumpable_before_exec",
            run: init_not_dumpable,
        },
        Test {
            name: "security.cwd_proc_self_fd_refused_or_inside",
            run: cwd_proc_self_fd,
        },
        Test {
            name: "security.no_host_fd_leak",
            run: no_host_fd_leak,
        },
    ]
}

const LIMIT: Duration = Duration::from_secs(5);

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string())
}

/// open(2) with raw flags; the fd is owned and closed on drop.
fn open_raw(p: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    let c = c_path(p).map_err(std::io::Error::other)?;
    // SAFETY: c is a valid C string; open returns a new fd or -1.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sleeper(ctx: &mut Ctx) -> Result<Bundle, String> {
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "100"]);
    Ok(b)
}

fn wait_exec(pid: u32, comm: &str) -> Result<(), String> {
    ensure(
        wait_until(LIMIT, || {
            read_proc(pid, "comm").is_ok_and(|c| c.trim() == comm)
        }),
        format!("process {pid} did not exec {comm}"),
    )
}

/// While `created`, /proc/<init>/exe is husk. It must not open for
/// writing, neither directly nor by re-opening an O_PATH handle once the
/// init has exec'd (the CVE-2019-5736 sequence); the binary stays
/// byte-identical. Nothing is ever written: a successful open is the bug.
fn exe_not_writable(ctx: &mut Ctx) -> TestResult {
    let binary = ctx.husk_path.clone();
    let before = fs::read(&binary).map_err(|e| format!("read {}: {e}", binary.display()))?;
    let b = sleeper(ctx)?;
    let (id, pid) = ctx.create(&b, &[])?;
    let exe = Path::new("/proc").join(pid.to_string()).join("exe");
    let mut problems = Vec::new();
    match open_raw(&exe, libc::O_WRONLY | libc::O_CLOEXEC) {
        Ok(_fd) => problems.push(format!("{} opened O_WRONLY while created", exe.display())),
        Err(e) => ctx.note(format!("direct O_WRONLY open of /proc/<init>/exe: {e}")),
    }
    let handle = open_raw(&exe, libc::O_PATH | libc::O_CLOEXEC)
        .map_err(|e| format!("O_PATH open of {}: {e}", exe.display()))?;
    ctx.start(&id)?;
    wait_exec(pid, "sleep")?;
    let reopen =
        Path::new("/proc/self/fd").join(std::os::fd::AsRawFd::as_raw_fd(&handle).to_string());
    match open_raw(&reopen, libc::O_WRONLY | libc::O_CLOEXEC) {
        Ok(_fd) => problems.push(
            "an O_PATH handle to the created init's exe re-opened O_WRONLY after exec".into(),
        ),
        Err(e) => ctx.note(format!(
            "re-open of the O_PATH handle for writing after exec: {e}"
        )),
    }
    drop(handle);
    let after = fs::read(&binary).map_err(|e| format!("read {}: {e}", binary.display()))?;
    if after != before {
        problems.push(format!("{} changed on disk", binary.display()));
    }
    Ok(all_ok(problems)?)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// PTRACE_SEIZE of `pid` from a thread whose effective set lacks
/// CAP_SYS_PTRACE (capabilities are per thread), so that the kernel's
/// dumpable check decides: a same-uid dumpable process can be seized, a
/// non-dumpable one cannot (EPERM). SEIZE does not stop the tracee, and the
/// thread's exit detaches it.
fn seize_without_ptrace(pid: u32) -> Result<Result<(), std::io::Error>, String> {
    std::thread::spawn(move || -> Result<Result<(), std::io::Error>, String> {
        let mut hdr = CapHeader {
            version: CAP_V3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: capget/capset with a v3 header and two data structs.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
        if rc != 0 {
            return Err(format!("capget: {}", std::io::Error::last_os_error()));
        }
        let bit = 19usize; // CAP_SYS_PTRACE
        data[bit / 32].effective &= !(1 << (bit % 32));
        // SAFETY: as above; only this thread's credentials change.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) };
        if rc != 0 {
            return Err(format!("capset: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: PTRACE_SEIZE takes no pointers (addr and data are 0).
        let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid as libc::pid_t, 0usize, 0usize) };
        Ok(if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        })
    })
    .join()
    .map_err(|_| "the probing thread panicked".to_string())?
}

/// A forked copy of this process that made itself non-dumpable and waits:
/// the negative control of the method.
fn non_dumpable_child() -> Result<i32, String> {
    // SAFETY: the child only calls prctl, pause and _exit, which are
    // async-signal-safe; it never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            for _ in 0..600 {
                libc::sleep(1);
            }
            libc::_exit(0);
        }
    }
    Ok(pid)
}

fn reap(pid: i32) {
    // SAFETY: kill and waitpid on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Whether the method tells a dumpable process (`sleep`) from a
/// non-dumpable one (a forked child after PR_SET_DUMPABLE 0).
fn method_works() -> Result<(), String> {
    let mut dumpable = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn sleep: {e}"))?;
    let positive = seize_without_ptrace(dumpable.id());
    let _ = dumpable.kill();
    let _ = dumpable.wait();
    let child = non_dumpable_child()?;
    // Give the child time to call prctl.
    std::thread::sleep(Duration::from_millis(50));
    let negative = seize_without_ptrace(child as u32);
    reap(child);
    match (positive?, negative?) {
        (Ok(()), Err(_)) => Ok(()),
        (p, n) => Err(format!(
            "dumpable process: {p:?}, non-dumpable process: {n:?}"
        )),
    }
}

/// The created init (still husk code, holding the runtime's fds) is not
/// dumpable: without CAP_SYS_PTRACE even root cannot ptrace it, while it
/// can ptrace an ordinary dumpable root process.
fn init_not_dumpable(ctx: &mut Ctx) -> TestResult {
    if let Err(e) = method_works() {
        return Err(skip(format!("cannot observe dumpability here: {e}")));
    }
    let b = sleeper(ctx)?;
    let (id, pid) = ctx.create(&b, &[])?;
    let created = seize_without_ptrace(pid)?;
    // Control on the same process: once it has exec'd an ordinary program
    // it is dumpable again, so the EPERM above was about dumpability.
    ctx.start(&id)?;
    wait_exec(pid, "sleep")?;
    let after_exec = seize_without_ptrace(pid)?;
    match (created, after_exec) {
        (Ok(()), _) => Err(
            "the created init is dumpable: PTRACE_SEIZE without CAP_SYS_PTRACE succeeds \
                            (on a non-dumpable control process it fails)"
                .into(),
        ),
        (Err(e), Ok(())) => {
            ctx.note(format!(
                "PTRACE_SEIZE of the created init without CAP_SYS_PTRACE: {e}; after exec: ok"
            ));
            Ok(())
        }
        (Err(e), Err(after)) => Err(skip(format!(
            "cannot tell: PTRACE_SEIZE fails on the init both before ({e}) and after exec ({after})"
        ))),
    }
}

/// cwd = /proc/self/fd/N for the fds a runtime typically holds: refused
/// with an error naming the cwd, or the process ends up in a directory
/// getcwd can name inside its root.
fn cwd_proc_self_fd(ctx: &mut Ctx) -> TestResult {
    let mut problems = Vec::new();
    let mut refused = 0;
    for n in (3..=12).chain([251, 255]) {
        let mut b = ctx.bundle()?;
        let cwd = format!("/proc/self/fd/{n}");
        b.set("/process/cwd", serde_json::json!(cwd));
        b.args(&["/bin/busybox", "pwd", "-P"]);
        let (_id, out) = ctx.run(&b, &[]);
        if out.success() {
            let pwd = out.stdout.trim();
            if !pwd.starts_with('/') || pwd.contains("unreachable") {
                problems.push(format!(
                    "cwd {cwd}: the process runs outside its root (pwd {pwd:?})"
                ));
            }
        } else if let Err(e) = ctx.expect_failure(&out, "run", &["cwd"]) {
            problems.push(format!("cwd {cwd}: {e}"));
        } else {
            refused += 1;
        }
    }
    ctx.note(format!("{refused} of 12 /proc/self/fd/N cwds refused"));
    Ok(all_ok(problems)?)
}

/// An fd the test holds without O_CLOEXEC when it runs husk must not reach
/// the container: its process has exactly 0, 1 and 2.
fn no_host_fd_leak(ctx: &mut Ctx) -> TestResult {
    let marker = ctx.dir.join("leak-marker");
    fs::write(&marker, "host secret\n").map_err(|e| e.to_string())?;
    let leaked =
        open_raw(&marker, libc::O_RDONLY).map_err(|e| format!("open {}: {e}", marker.display()))?;
    let b = sleeper(ctx)?;
    let created = ctx.create(&b, &[]);
    drop(leaked);
    let (id, pid) = created?;
    ctx.start(&id)?;
    wait_exec(pid, "sleep")?;
    let fds = proc_fds(pid)?;
    let numbers: Vec<i32> = fds.iter().map(|(n, _)| *n).collect();
    let marker_s = marker.to_string_lossy();
    let mut problems = Vec::new();
    if fds.iter().any(|(_, t)| t.as_str() == marker_s) {
        problems.push(format!("the host fd reached the container: {fds:?}"));
    }
    if numbers != [0, 1, 2] {
        problems.push(format!("container fds {fds:?}, expected 0, 1, 2"));
    }
    Ok(all_ok(problems)?)
}

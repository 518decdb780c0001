//! Running and timing commands, waiting for container processes.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A runtime command that hangs this long is killed and counted as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a started container (`/bin/true`) to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest stderr excerpt printed for a failure.
const MAX_STDERR: usize = 2000;

/// A command that could not run, failed or timed out.
pub struct Failure {
    pub command: String,
    pub reason: String,
}

impl Failure {
    pub fn new(argv: &[String], reason: impl Into<String>) -> Self {
        Failure {
            command: format!("`{}`", argv.join(" ")),
            reason: reason.into(),
        }
    }

    pub fn other(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Failure {
            command: what.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.command, self.reason)
    }
}

/// Orphaned descendants (a container's init once `create` has returned) are
/// reparented to this process, so it can wait for them and reap them.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs `argv` with stdin and stdout on /dev/null and stderr into `stderr_log`;
/// returns the wall time from spawn to exit. A non-zero exit is a failure that
/// carries the command's stderr.
pub fn timed_run(argv: &[String], stderr_log: &Path) -> Result<Duration, Failure> {
    let mut command =
        command(argv, stderr_log).map_err(|err| Failure::new(argv, err.to_string()))?;
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|err| Failure::new(argv, format!("cannot start: {err}")))?;
    let status = wait_child(&mut child).map_err(|reason| Failure::new(argv, reason))?;
    let elapsed = start.elapsed();
    if status.success() {
        Ok(elapsed)
    } else {
        Err(Failure::new(
            argv,
            format!("{status}: {}", read_stderr(stderr_log)),
        ))
    }
}

/// Runs `argv` to completion and returns its stdout (for `list`).
pub fn capture_stdout(argv: &[String], stderr_log: &Path) -> Result<String, Failure> {
    let mut command =
        command(argv, stderr_log).map_err(|err| Failure::new(argv, err.to_string()))?;
    let output = command
        .stdout(Stdio::piped())
        .output()
        .map_err(|err| Failure::new(argv, format!("cannot start: {err}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Failure::new(
            argv,
            format!("{}: {}", output.status, read_stderr(stderr_log)),
        ))
    }
}

fn command(argv: &[String], stderr_log: &Path) -> io::Result<Command> {
    let (program, args) = argv.split_first().ok_or(io::ErrorKind::InvalidInput)?;
    let stderr = File::create(stderr_log)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    Ok(command)
}

fn read_stderr(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => "(no stderr)".to_string(),
        Ok(text) => excerpt(text.trim(), MAX_STDERR),
        Err(err) => format!("(cannot read stderr: {err})"),
    }
}

fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn wait_child(child: &mut Child) -> Result<ExitStatus, String> {
    let pid = i32::try_from(child.id()).map_err(|err| err.to_string())?;
    if let Err(reason) = wait_exit(pid, COMMAND_TIMEOUT) {
        // Best effort: the command is reported as failed either way.
        let _ = child.kill();
        let _ = child.wait();
        return Err(reason);
    }
    child.wait().map_err(|err| format!("wait: {err}"))
}

/// Waits until process `pid` has exited (not necessarily reaped), through a
/// pidfd, so that it also works for a process that is not our child.
pub fn wait_exit(pid: i32, timeout: Duration) -> Result<(), String> {
    let Some(pidfd) = pidfd_open(pid)? else {
        return Ok(()); // already exited and reaped
    };
    let mut poll_fd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) } {
            0 => return Err(format!("pid {pid} still running after {timeout:?}")),
            n if n > 0 => return Ok(()),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("poll on pidfd of {pid}: {err}"));
                }
            }
        }
    }
}

/// `Ok(None)` when no process `pid` exists any more.
fn pidfd_open(pid: i32) -> Result<Option<OwnedFd>, String> {
    // SAFETY: pidfd_open(pid, flags) has no pointer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        let fd = i32::try_from(fd).map_err(|err| err.to_string())?;
        // SAFETY: the kernel just gave us this descriptor.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(None)
    } else {
        Err(format!("pidfd_open({pid}): {err}"))
    }
}

/// Reaps `pid` if it is an exited child of ours; anything else is left alone.
pub fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: a valid status pointer; WNOHANG never blocks.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// Reaps every exited child (containers killed by `delete --force`). Call only
/// while no `std::process::Child` is being waited for.
pub fn reap_orphans() {
    let mut status = 0;
    // SAFETY: as in `reap`.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

//! Signalling every process of a cgroup without hitting a recycled pid, and
//! the freezer that keeps forks from escaping while we do.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fsutil::{gone, read_file, subtree_pids, write_file};
use crate::error::{Error, Result};

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // no pointers are passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd we own, a signal number, a null siginfo (the
    // kernel then fills in one like kill(2) does) and flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn union_pids(dirs: &[PathBuf]) -> io::Result<Vec<i32>> {
    let mut all = Vec::new();
    for d in dirs {
        all.extend(subtree_pids(d)?);
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

/// How many pidfds are held at once (RLIMIT_NOFILE is often 1024).
const PIDFD_BATCH: usize = 256;

/// Send `sig` to every process in the subtrees of `dirs`; returns how many
/// were signalled. PID-reuse safe: a pidfd is opened for each listed pid and
/// the cgroups are listed again; only pids still listed then are signalled
/// (a pid that is still listed belongs to the same process as the pidfd,
/// since a pid is held until its process is reaped).
pub(crate) fn signal_dirs(dirs: &[PathBuf], sig: i32) -> Result<usize> {
    let step = || format!("signal {sig} to the processes of cgroup {}", show(dirs));
    let first = union_pids(dirs).map_err(|e| Error::os(step(), e))?;
    let mut n = 0;
    for batch in first.chunks(PIDFD_BATCH) {
        let mut fds: Vec<(i32, Option<OwnedFd>)> = Vec::with_capacity(batch.len());
        for &pid in batch {
            match pidfd_open(pid) {
                Ok(fd) => fds.push((pid, Some(fd))),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                // No pidfds (kernel < 5.3): plain kill of the re-checked pids.
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => fds.push((pid, None)),
                Err(e) => return Err(Error::os(format!("pidfd_open {pid}: {}", step()), e)),
            }
        }
        if fds.is_empty() {
            continue;
        }
        let second = union_pids(dirs).map_err(|e| Error::os(step(), e))?;
        for (pid, fd) in &fds {
            if second.binary_search(pid).is_err() {
                continue;
            }
            let r = match fd {
                Some(fd) => pidfd_send_signal(fd, sig),
                // SAFETY: kill(2) with a pid and a signal number has no
                // memory effects.
                None => match unsafe { libc::kill(*pid, sig) } {
                    0 => Ok(()),
                    _ => Err(io::Error::last_os_error()),
                },
            };
            match r {
                Ok(()) => n += 1,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(Error::os(format!("signal pid {pid}: {}", step()), e)),
            }
        }
    }
    Ok(n)
}

fn show(dirs: &[PathBuf]) -> String {
    match dirs {
        [d] => d.display().to_string(),
        _ => format!("{:?}", dirs),
    }
}

/// The freezer of a container's cgroup.
#[derive(Debug, Clone)]
pub(crate) enum Freezer {
    /// cgroup2 `cgroup.freeze` in this directory (kernel >= 5.2).
    V2(PathBuf),
    /// The v1 freezer controller's `freezer.state` in this directory.
    V1(PathBuf),
}

impl Freezer {
    fn write(&self, frozen: bool) -> io::Result<()> {
        match self {
            Freezer::V2(d) => {
                write_file(&d.join("cgroup.freeze"), if frozen { b"1" } else { b"0" })
            }
            Freezer::V1(d) => write_file(
                &d.join("freezer.state"),
                if frozen { b"FROZEN" } else { b"THAWED" },
            ),
        }
    }

    pub fn dir(&self) -> &Path {
        match self {
            Freezer::V2(d) | Freezer::V1(d) => d,
        }
    }

    /// Whether the cgroup has been asked to freeze (paused), even if not
    /// every task is frozen yet.
    pub fn is_frozen(&self) -> io::Result<bool> {
        match self {
            Freezer::V2(d) => Ok(read_file(&d.join("cgroup.freeze"))?.trim() == "1"),
            Freezer::V1(d) => Ok(read_file(&d.join("freezer.state"))?.trim() != "THAWED"),
        }
    }

    /// Whether every task is frozen.
    fn confirmed(&self) -> io::Result<bool> {
        match self {
            Freezer::V2(d) => Ok(read_file(&d.join("cgroup.events"))?
                .lines()
                .any(|l| l.trim() == "frozen 1")),
            Freezer::V1(d) => Ok(read_file(&d.join("freezer.state"))?.trim() == "FROZEN"),
        }
    }

    /// Freeze and wait (at most `timeout`) until every task is frozen.
    /// Ok(false): not confirmed in time (the cgroup is left freezing).
    pub fn freeze(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(100);
        self.write(true)?;
        loop {
            if self.confirmed()? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
            // v1 can stay FREEZING; writing FROZEN again retries the tasks
            // that were not frozen yet.
            if let Freezer::V1(_) = self {
                self.write(true)?;
            }
        }
    }

    pub fn thaw(&self) -> io::Result<()> {
        self.write(false)
    }

    /// Whether no task is frozen any more (after `thaw`).
    pub fn thawed(&self) -> io::Result<bool> {
        match self {
            Freezer::V2(d) => Ok(!read_file(&d.join("cgroup.events"))?
                .lines()
                .any(|l| l.trim() == "frozen 1")),
            Freezer::V1(d) => Ok(read_file(&d.join("freezer.state"))?.trim() == "THAWED"),
        }
    }
}

/// Write "1" to cgroup.kill in `dir` (kernel >= 5.14). Ok(false) when the
/// kernel has no cgroup.kill or the cgroup is gone.
pub(crate) fn cgroup_kill(dir: &Path) -> Result<bool> {
    let p = dir.join("cgroup.kill");
    match write_file(&p, b"1") {
        Ok(()) => Ok(true),
        Err(e) if gone(&e) => Ok(false),
        Err(e) => Err(Error::os(format!("write {}", p.display()), e)),
    }
}

/// SIGKILL every process in `dirs` with the cgroup frozen (when there is a
/// freezer) so that none can fork a child we do not see; then thaw, since
/// v1-frozen tasks only die once thawed.
pub(crate) fn frozen_kill(freezer: Option<&Freezer>, dirs: &[PathBuf]) -> Result<usize> {
    if let Some(f) = freezer {
        // Best effort: a freezer stuck in FREEZING must not stop the kill;
        // the caller loops until the cgroup is empty.
        match f.freeze(Duration::from_millis(200)) {
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            Err(e) => return Err(Error::os(format!("freeze cgroup {}", f.dir().display()), e)),
        }
    }
    let r = signal_dirs(dirs, libc::SIGKILL);
    if let Some(f) = freezer {
        match f.thaw() {
            Ok(()) => {}
            Err(e) if gone(&e) => {}
            Err(e) if r.is_ok() => {
                return Err(Error::os(format!("thaw cgroup {}", f.dir().display()), e))
            }
            Err(_) => {}
        }
    }
    r
}

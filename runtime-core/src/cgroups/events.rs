//! OOM notifications of a container's memory cgroup, for `husk events`.
//!
//! - v1: an eventfd registered for memory.oom_control through
//!   cgroup.event_control. The kernel signals it on every OOM in the cgroup,
//!   and once more when the cgroup is removed, which is told apart by the
//!   directory being gone.
//! - cgroup2: memory.events has an `oom_kill` counter; kernfs raises an
//!   inotify IN_MODIFY on the file when it changes, so the watcher sleeps on
//!   inotify and counts the increments.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fsutil::{read_file, write_file};
use super::stats::flat_keyed;
use super::ContainerCgroup;
use crate::error::{Error, Result};

/// What one wait saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomWait {
    /// OOM kills (v2) or OOM notifications (v1) since the last wait.
    pub ooms: u64,
    /// The memory cgroup is gone: nothing more will come.
    pub gone: bool,
}

/// Watches the container's memory cgroup for OOMs.
pub struct OomWatcher {
    kind: Kind,
}

enum Kind {
    V1 {
        efd: OwnedFd,
        dir: PathBuf,
        /// memory.oom_control stays open while the event is registered.
        _control: std::fs::File,
    },
    V2 {
        inotify: OwnedFd,
        events: PathBuf,
        last: u64,
    },
    /// No memory controller: only sleeps.
    None,
}

fn cvt(r: libc::c_int) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd the kernel just returned; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

impl OomWatcher {
    /// Register for v1 OOM notifications of the memory cgroup `dir`.
    pub fn v1(dir: &Path) -> Result<OomWatcher> {
        let step = || format!("watch {} for OOM", dir.display());
        // SAFETY: eventfd takes an initial value and flags; no pointers.
        let efd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
            .map_err(|e| Error::os(step(), e))?;
        let control = std::fs::File::open(dir.join("memory.oom_control"))
            .map_err(|e| Error::os(step(), e))?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        write_file(&dir.join("cgroup.event_control"), line.as_bytes())
            .map_err(|e| Error::os(step(), e))?;
        Ok(OomWatcher {
            kind: Kind::V1 {
                efd,
                dir: dir.to_path_buf(),
                _control: control,
            },
        })
    }

    /// Watch memory.events in the cgroup2 directory `dir`.
    pub fn v2(dir: &Path) -> Result<OomWatcher> {
        let events = dir.join("memory.events");
        let step = || format!("watch {} for OOM", events.display());
        // SAFETY: inotify_init1 takes flags only.
        let inotify = cvt(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })
            .map_err(|e| Error::os(step(), e))?;
        let path = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::step(step(), "path has a NUL byte"))?;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd =
            unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) };
        if wd < 0 {
            return Err(Error::os(step(), io::Error::last_os_error()));
        }
        let last = oom_kills(&events).unwrap_or(0);
        Ok(OomWatcher {
            kind: Kind::V2 {
                inotify,
                events,
                last,
            },
        })
    }

    /// Wait at most `timeout` for OOMs.
    pub fn wait(&mut self, timeout: Duration) -> Result<OomWait> {
        match &mut self.kind {
            Kind::V1 { efd, dir, .. } => {
                if !poll_in(efd, timeout)? {
                    return Ok(OomWait::default());
                }
                let n = read_counter(efd)?;
                let gone = !dir.exists();
                Ok(OomWait {
                    ooms: n.saturating_sub(u64::from(gone)),
                    gone,
                })
            }
            Kind::V2 {
                inotify,
                events,
                last,
            } => {
                if poll_in(inotify, timeout)? {
                    drain(inotify);
                }
                let Some(now) = oom_kills(events) else {
                    return Ok(OomWait {
                        ooms: 0,
                        gone: true,
                    });
                };
                let ooms = now.saturating_sub(*last);
                *last = now;
                Ok(OomWait { ooms, gone: false })
            }
            Kind::None => {
                std::thread::sleep(timeout);
                Ok(OomWait::default())
            }
        }
    }
}

/// oom_kill of memory.events; None when the file is gone.
fn oom_kills(events: &Path) -> Option<u64> {
    let t = read_file(events).ok()?;
    Some(flat_keyed(&t).get("oom_kill").copied().unwrap_or(0))
}

/// poll(2) for input; false on timeout.
fn poll_in(fd: &OwnedFd, timeout: Duration) -> Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: one pollfd we own.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::os("wait for OOM events", e));
        }
    }
}

fn read_counter(efd: &OwnedFd) -> Result<u64> {
    let mut v = 0u64;
    // SAFETY: reading 8 bytes into a u64 we own, from our eventfd.
    let n = unsafe { libc::read(efd.as_raw_fd(), (&raw mut v).cast(), 8) };
    if n == 8 {
        return Ok(v);
    }
    let e = io::Error::last_os_error();
    if n < 0 && e.raw_os_error() == Some(libc::EAGAIN) {
        return Ok(0);
    }
    Err(Error::os("read OOM eventfd", e))
}

fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    // SAFETY: reading into our own buffer from our non-blocking fd.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

impl ContainerCgroup {
    /// An OOM watcher on the container's memory cgroup (v1 memory
    /// controller, else cgroup2's memory.events; neither: one that only
    /// sleeps).
    pub fn oom_watcher(&self) -> Result<OomWatcher> {
        if let Some(d) = self.v1_dir("memory") {
            return OomWatcher::v1(&d);
        }
        if let Some(d) = self.unified_dir() {
            if d.join("memory.events").exists() {
                return OomWatcher::v2(&d);
            }
        }
        Ok(OomWatcher { kind: Kind::None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// memory.events on a fake tree (tmpfs raises IN_MODIFY too): the
    /// watcher wakes on a change and counts oom_kill increments.
    #[test]
    fn cgroups_events_v2_oom_counter_fake_tree() {
        let d = std::env::temp_dir().join(format!("husk-oom-v2-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        let ev = d.join("memory.events");
        std::fs::write(&ev, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\n").expect("write");
        let mut w = OomWatcher::v2(&d).expect("watch");
        assert_eq!(
            w.wait(Duration::from_millis(10)).expect("wait"),
            OomWait::default()
        );
        let writer = {
            let ev = ev.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                // In place, one write (no truncation), as kernfs updates it.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&ev)
                    .expect("open");
                std::io::Write::write_all(&mut f, b"low 0\nhigh 0\nmax 3\noom 2\noom_kill 4\n")
                    .expect("write");
            })
        };
        let start = std::time::Instant::now();
        let got = w.wait(Duration::from_secs(5)).expect("wait");
        assert!(start.elapsed() < Duration::from_secs(4), "woke by inotify");
        writer.join().expect("writer");
        assert_eq!(
            got,
            OomWait {
                ooms: 2,
                gone: false
            }
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
        assert!(w.wait(Duration::from_millis(1)).expect("wait").gone);
    }
}

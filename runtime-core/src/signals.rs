//! Foreground `run` and `exec`: forward every signal husk receives to the
//! container's process and wait for it on a pidfd (never missing an exit that
//! happens right after start, the race youki's `run` has).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Context, Error, Result};
use crate::syscall;

pub struct Forwarder {
    signalfd: SignalFd,
}

/// Every signal a process can catch: these are forwarded.
fn forwardable() -> SigSet {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    set
}

impl Forwarder {
    /// Block the forwardable signals (before the container exists, so none is
    /// lost) and become a subreaper, so an init made by a second fork is
    /// still ours to reap.
    pub fn block() -> Result<Self> {
        nix::sys::prctl::set_child_subreaper(true).step(|| "become a subreaper".into())?;
        let set = forwardable();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .step(|| "block signals".into())?;
        let signalfd =
            SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).step(|| "signalfd".into())?;
        Ok(Forwarder { signalfd })
    }

    /// Forward signals to the process behind `pidfd` until it exits; return
    /// its exit code, or 128 + the signal that killed it.
    pub fn forward_until_exit(&self, pid: i32, pidfd: &impl AsFd) -> Result<i32> {
        loop {
            let mut fds = [poll_in(self.signalfd.as_fd()), poll_in(pidfd.as_fd())];
            // SAFETY: fds is a valid pollfd array of the given length.
            let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if ret < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::os("wait for the container's process", err));
            }
            if fds[1].revents != 0 {
                return reap(pid);
            }
            if fds[0].revents != 0 {
                self.forward_one(pidfd.as_fd())?;
            }
        }
    }

    fn forward_one(&self, pidfd: BorrowedFd) -> Result<()> {
        let Some(info) = self
            .signalfd
            .read_signal()
            .step(|| "read signalfd".into())?
        else {
            return Ok(());
        };
        let signal = info.ssi_signo as i32;
        if signal == libc::SIGCHLD {
            return Ok(());
        }
        // The process may be exiting right now; that is not an error.
        let _ = syscall::pidfd_send_signal(pidfd, signal);
        Ok(())
    }
}

fn poll_in(fd: BorrowedFd) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Reap `pid` and turn its status into a shell-style exit code.
pub fn reap(pid: i32) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::os("wait for the container's process", e)),
        }
    }
}

/// In a new process that husk forked: undo what husk did to its own signal
/// state, so the container's process starts with an empty mask and default
/// SIGPIPE (Rust's runtime ignores SIGPIPE, and ignored signals survive exec).
pub fn reset_for_child() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .step(|| "reset the signal mask".into())?;
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }
        .map(drop)
        .step(|| "reset SIGPIPE".into())
}

//! linux.seccomp: the profile compiled with libseccomp, then loaded by husk
//! itself with seccomp(2).
//!
//! husk does not let libseccomp load the filter: it exports libseccomp's
//! BPF program, puts the ENOSYS prefix in front of it (module `enosys`:
//! syscalls newer than the profile answer ENOSYS instead of the default
//! errno, so a newer C library falls back cleanly, as under runc) and passes
//! the flags the profile asks for straight to the kernel, including
//! SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, which Debian 12's libseccomp 2.5
//! does not know.
//!
//! [`compile`] does all the work that can fail on the profile and allocates;
//! it belongs in the runtime before the fork (or anywhere before the
//! container process drops its privileges). [`Filter::install`] is one
//! syscall, made as the last step before exec. With SCMP_ACT_NOTIFY it
//! returns the notify fd, which the runtime hands to the agent at
//! listenerPath with [`send_to_listener`].
//!
//! libseccomp needs tens of milliseconds for a large profile;
//! [`compile_cached`] keeps compiled filters on disk, per exact profile.
//!
//! Syscall names libseccomp does not know are skipped, as runc skips them
//! ([`Filter::unknown_syscalls`] lists them). Architectures the host cannot
//! run are left out of the filter: their syscalls cannot happen here.
//!
//! Where a runtime loads it (create and exec alike):
//! - without no_new_privs ([`Filter::needs_privileges`]), after the bounding
//!   set is limited and before the user switch: loading then needs
//!   CAP_SYS_ADMIN, and every later syscall of the runtime must pass the
//!   profile;
//! - with SCMP_ACT_NOTIFY ([`Filter::uses_notify`]), right after
//!   no_new_privs, so that the notify fd reaches the runtime's parent (and
//!   from there the listener, with state "creating" or "running") before
//!   the process reports ready;
//! - otherwise as the very last step before execve, after the fds are
//!   marked close-on-exec.

mod build;
mod cache;
mod enosys;
mod listener;
mod profile;

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libseccomp::{ScmpAction, ScmpArch};
use oci_spec::runtime::LinuxSeccomp;

use crate::error::{Error, Result};

pub use cache::compile_cached;
pub use listener::{process_state_json, send_to_listener};

/// BPF_MAXINSNS: the kernel's limit on a classic BPF program.
const MAX_INSTRUCTIONS: usize = 4096;

/// A compiled seccomp profile, ready to load. Plain data: it can be built
/// in the runtime and moved into the forked container process.
#[derive(Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2), NEW_LISTENER included when a
    /// rule notifies.
    flags: u32,
    notify: bool,
    unknown: Vec<String>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("notify", &self.notify)
            .field("unknown", &self.unknown)
            .finish()
    }
}

/// Compile linux.seccomp for the running kernel and architecture. Errors
/// name the field (`linux.seccomp.syscalls[3].action: ...`).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter> {
    let profile = profile::translate(seccomp)?;
    let compiled = build::compile(&profile)?;
    let mut program = match enosys_applies(profile.default) {
        true => enosys::prefix(&limits(&profile)),
        false => Vec::new(),
    };
    program.extend(compiled.program);
    if program.len() > MAX_INSTRUCTIONS {
        return Err(Error::config(format!(
            "linux.seccomp: the compiled filter has {} instructions, more than the kernel's \
             limit of {MAX_INSTRUCTIONS}",
            program.len()
        )));
    }
    Ok(Filter {
        program,
        flags: profile.flags,
        notify: profile.notify,
        unknown: compiled.unknown,
    })
}

/// The prefix only matters when the default refuses: with ALLOW or LOG a new
/// syscall already runs, and with ERRNO(ENOSYS) it already gets ENOSYS.
fn enosys_applies(default: ScmpAction) -> bool {
    !matches!(default, ScmpAction::Allow | ScmpAction::Log)
        && default != ScmpAction::Errno(libc::ENOSYS)
}

/// The highest syscall number the profile names, per architecture of the
/// filter.
fn limits(profile: &profile::Profile) -> Vec<enosys::Limit> {
    let names: Vec<&str> = profile
        .rules
        .iter()
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let max = |arch: ScmpArch| names.iter().filter_map(|n| build::number(n, arch)).max();
    let has_x32 = profile.arches.contains(&ScmpArch::X32);
    profile
        .arches
        .iter()
        .filter_map(|&arch| {
            Some(enosys::Limit {
                audit_arch: enosys::audit_arch(arch)?,
                max: max(arch),
                x32_max: (arch == ScmpArch::X8664 && has_x32)
                    .then(|| max(ScmpArch::X32))
                    .flatten(),
                split_x32: arch == ScmpArch::X8664,
            })
        })
        .collect()
}

impl Filter {
    /// Whether the filter must be loaded while the process still has its
    /// privileges (before the user switch and the capability sets): loading
    /// a filter needs either no_new_privs or CAP_SYS_ADMIN, so without
    /// no_new_privs it cannot wait until the capabilities are dropped.
    pub fn needs_privileges(&self, no_new_privileges: bool) -> bool {
        !no_new_privileges
    }

    /// Whether a rule uses SCMP_ACT_NOTIFY, i.e. [`Filter::install`] returns a
    /// notify fd that must go to linux.seccomp.listenerPath.
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// Syscall names of the profile that libseccomp does not know; they were
    /// skipped.
    pub fn unknown_syscalls(&self) -> &[String] {
        &self.unknown
    }

    /// The number of BPF instructions, ENOSYS prefix included.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// Load the filter into the calling thread (the container process is
    /// single-threaded, so TSYNC is not needed). Returns the notify fd
    /// (close-on-exec) when the profile uses SCMP_ACT_NOTIFY.
    pub fn install(self) -> Result<Option<OwnedFd>> {
        let fd = load(&self.program, self.flags).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EACCES) => " (needs no_new_privs or CAP_SYS_ADMIN)",
                _ => "",
            };
            Error::os(format!("load the seccomp filter{hint}"), e)
        })?;
        if !self.notify {
            return Ok(None);
        }
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER, seccomp(2) returns
        // a new fd that nothing else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, program).
fn load(program: &[libc::sock_filter], flags: u32) -> io::Result<RawFd> {
    let prog = libc::sock_fprog {
        // compile() keeps programs within BPF_MAXINSNS.
        len: u16::try_from(program.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prog points to `program`, which outlives the call; the kernel
    // copies the instructions and does not write through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
}

//! Id-mapped bind mounts: a mount's `uidMappings`/`gidMappings` with the
//! "idmap" (top mount) or "ridmap" (whole tree) option.
//!
//! The kernel takes the mapping from a user namespace (mount_setattr with
//! MOUNT_ATTR_IDMAP and its fd), so one is made for the purpose: a child is
//! cloned straight into a new user namespace and waits; we write its
//! setgroups, uid_map and gid_map, open its ns/user, and let it go. The
//! mapping is written as given, so it reads as for a user namespace: an id
//! `containerID + n` on disk is seen as `hostID + n` through the mount (what
//! runc does, and what the kernel means by the namespace's mapping).
//!
//! The child's /proc entry is found through a pathrs procfs handle, and the
//! pid used there is the one that procfs shows for our pidfd of the child
//! (/proc/self/fdinfo): the init is usually in a new pid namespace while the
//! procfs is not, so the pid clone3 returned may name another process there.
//! The child cannot exit (and its pid be reused) before we let it: it only
//! waits for EOF on a pipe whose write end we hold.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, Mount};
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

use super::options::{IdMap, MountOptions};
use super::sys;
use crate::error::{Context, Error, Result};
use crate::syscall::{self, Forked};

/// An id mapping to apply to a bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub kind: IdMap,
    /// uid_map and gid_map, one "containerID hostID size" line per entry.
    pub uid_map: String,
    pub gid_map: String,
    /// The init is in a user namespace (for the error when the kernel says no).
    pub in_user_ns: bool,
}

impl IdMap {
    fn option(self) -> &'static str {
        match self {
            IdMap::Top => "idmap",
            IdMap::Recursive => "ridmap",
        }
    }
}

/// Check a mount's `uidMappings`/`gidMappings` against its options, as
/// config.md asks: the mappings go with "idmap" or "ridmap" on a bind mount,
/// together; "idmap" without them is an error (we do not fall back to the
/// container's own user namespace mapping, which the spec allows but does
/// not require). `None`: not an id-mapped mount.
pub(crate) fn request(
    m: &Mount,
    opts: &MountOptions,
    is_bind: bool,
    in_user_ns: bool,
) -> std::result::Result<Option<Request>, String> {
    let uids = m.uid_mappings().as_deref().unwrap_or_default();
    let gids = m.gid_mappings().as_deref().unwrap_or_default();
    let Some(kind) = opts.idmap else {
        if uids.is_empty() && gids.is_empty() {
            return Ok(None);
        }
        return Err(
            "uidMappings/gidMappings are given without the \"idmap\" or \"ridmap\" option"
                .to_string(),
        );
    };
    let option = kind.option();
    if uids.is_empty() && gids.is_empty() {
        return Err(if in_user_ns {
            format!(
                "mount option {option:?} needs uidMappings and gidMappings (the container's \
                 user namespace mapping is not used in their place)"
            )
        } else {
            format!(
                "mount option {option:?} needs uidMappings and gidMappings, and the container \
                 has no user namespace"
            )
        });
    }
    if uids.is_empty() || gids.is_empty() {
        return Err(format!(
            "mount option {option:?}: uidMappings and gidMappings must be given together"
        ));
    }
    if opts.remount || !is_bind {
        return Err(format!(
            "mount option {option:?} is only for bind mounts (an existing or new filesystem \
             cannot be id-mapped here)"
        ));
    }
    Ok(Some(Request {
        kind,
        uid_map: render(uids).map_err(|e| format!("uidMappings: {e}"))?,
        gid_map: render(gids).map_err(|e| format!("gidMappings: {e}"))?,
        in_user_ns,
    }))
}

/// The text of a uid_map/gid_map file.
fn render(mappings: &[LinuxIdMapping]) -> std::result::Result<String, String> {
    let mut text = String::new();
    for m in mappings {
        let (inside, outside, size) = (m.container_id(), m.host_id(), m.size());
        if size == 0 {
            return Err(format!("containerID {inside} hostID {outside}: size is 0"));
        }
        let end = |first: u32| first.checked_add(size - 1).is_none();
        if end(inside) || end(outside) {
            return Err(format!(
                "containerID {inside} hostID {outside} size {size} goes past the largest id"
            ));
        }
        text.push_str(&format!("{inside} {outside} {size}\n"));
    }
    Ok(text)
}

/// Id-map the detached bind `tree` of `source` as `req` says.
pub(crate) fn apply(tree: &OwnedFd, req: &Request, source: &Path, step: &str) -> Result<()> {
    let userns = userns_with(&req.uid_map, &req.gid_map, step)?;
    let recursive = req.kind == IdMap::Recursive;
    let Err(e) = sys::set_idmap(tree, recursive, &userns) else {
        return Ok(());
    };
    let what = format!("{step}: id-map the mount ({})", req.kind.option());
    let hint = match e.raw_os_error() {
        Some(libc::EINVAL) => format!(
            "the filesystem of {} (or a mount below it, with ridmap) does not support \
             id-mapped mounts, or is id-mapped already",
            source.display()
        ),
        Some(libc::EPERM) if req.in_user_ns => format!(
            "permission denied: id-mapping needs CAP_SYS_ADMIN in the user namespace that owns \
             the filesystem of {}, and the container's init runs in its own user namespace",
            source.display()
        ),
        _ => return Err(Error::os(what, e)),
    };
    Err(Error::step(what, hint))
}

/// A user namespace with these maps, as an fd for mount_setattr.
fn userns_with(uid_map: &str, gid_map: &str, step: &str) -> Result<OwnedFd> {
    let what = || format!("{step}: create a user namespace for the id mapping");
    let holder = Holder::spawn().step(what)?;
    let procfs = ProcfsHandle::new().step(|| format!("{}: open procfs", what()))?;
    let pid = holder
        .pid_in(&procfs)
        .step(|| format!("{}: find its pid", what()))?;
    let child = ProcfsBase::ProcPid(pid);
    let write = |file: &str, data: &str| -> Result<()> {
        let step = || format!("{}: write /proc/{pid}/{file} {data:?}", what());
        let mut f = procfs.open(child, file, OpenFlags::O_WRONLY).step(step)?;
        // The kernel takes a map in one write(2) only.
        let n = f.write(data.as_bytes()).step(step)?;
        if n != data.len() {
            return Err(Error::step(step(), "short write"));
        }
        Ok(())
    };
    // Nothing ever runs in this namespace: setgroups does not matter, and
    // denying it lets gid_map be written in more cases.
    write("setgroups", "deny")?;
    write("uid_map", uid_map)?;
    write("gid_map", gid_map)?;
    let flags = OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC;
    let ns = procfs
        .open_follow(child, "ns/user", flags)
        .step(|| format!("{}: open /proc/{pid}/ns/user", what()))?;
    let ns = OwnedFd::from(ns);
    check_is_userns(&ns).step(|| format!("{}: check /proc/{pid}/ns/user", what()))?;
    drop(holder);
    Ok(ns)
}

/// NS_GET_NSTYPE (linux/nsfs.h): _IO(0xb7, 0x3).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

fn check_is_userns(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value; `fd`
    // is a live descriptor.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if kind < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if kind != libc::CLONE_NEWUSER {
        return Err(std::io::Error::other("not a user namespace"));
    }
    Ok(())
}

/// A child that does nothing but hold its new user namespace alive until
/// dropped (or until we die: it waits for EOF on a pipe only we hold open).
struct Holder {
    pid: i32,
    pidfd: OwnedFd,
    release: Option<OwnedFd>,
}

impl Holder {
    fn spawn() -> std::io::Result<Holder> {
        let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
        let (wait_end, release) = nix::unistd::pipe2(cloexec)?;
        let (ready, ready_end) = nix::unistd::pipe2(cloexec)?;
        let raw = |fd: &OwnedFd| fd.as_raw_fd();
        let (wait_raw, release_raw) = (raw(&wait_end), raw(&release));
        let (ready_raw, ready_end_raw) = (raw(&ready), raw(&ready_end));
        // The init is single-threaded (clone3's requirement, as fork's).
        match syscall::clone3(libc::CLONE_NEWUSER as u64, None)? {
            Forked::Child => {
                // SAFETY: in the child of a single-threaded process; only
                // async-signal-safe calls (close, prctl, write, read, _exit)
                // on fds of this copy of the fd table, then exit without
                // running any of the parent's destructors or atexit handlers.
                unsafe {
                    libc::close(release_raw);
                    libc::close(ready_raw);
                    // The init is not dumpable and its mm belongs to the
                    // user namespace it was cloned from: inside a container
                    // user namespace our /proc/<pid> would be hidden from it
                    // (hidepid=ptraceable) or not writable. This process
                    // runs no container code and lives a few syscalls long.
                    libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
                    let byte = b'r';
                    libc::write(ready_end_raw, (&raw const byte).cast(), 1);
                    libc::close(ready_end_raw);
                    let mut byte = 0u8;
                    loop {
                        let n = libc::read(wait_raw, (&raw mut byte).cast(), 1);
                        if n >= 0
                            || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
                        {
                            break;
                        }
                    }
                    libc::_exit(0)
                }
            }
            Forked::Parent { pid, pidfd } => {
                drop((wait_end, ready_end));
                let holder = Holder {
                    pid,
                    pidfd,
                    release: Some(release),
                };
                // Wait until it is dumpable; EOF means it died.
                let mut byte = [0u8; 1];
                let n = loop {
                    match nix::unistd::read(&ready, &mut byte) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        other => break other?,
                    }
                };
                if n != 1 {
                    return Err(std::io::Error::other("the helper process died"));
                }
                Ok(holder)
            }
        }
    }

    /// Our child's pid as `procfs` numbers it ("Pid:" of our pidfd's fdinfo
    /// there; 0 if the child is not visible in that procfs).
    fn pid_in(&self, procfs: &ProcfsHandle) -> std::io::Result<u32> {
        let fdinfo = format!("fdinfo/{}", self.pidfd.as_raw_fd());
        let mut text = String::new();
        procfs
            .open(ProcfsBase::ProcSelf, &fdinfo, OpenFlags::O_RDONLY)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .read_to_string(&mut text)?;
        let pid = text
            .lines()
            .find_map(|line| line.strip_prefix("Pid:"))
            .and_then(|v| v.trim().parse::<i64>().ok());
        match pid {
            Some(pid) if pid > 0 => Ok(pid as u32),
            _ => Err(std::io::Error::other(format!(
                "the child is not visible in the procfs in use (fdinfo: {:?})",
                text.lines().find(|l| l.starts_with("Pid:")).unwrap_or("")
            ))),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // EOF lets the child exit; SIGKILL makes sure of it.
        self.release.take();
        let _ = syscall::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        let pid = nix::unistd::Pid::from_raw(self.pid);
        while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn mapping(inside: u32, outside: u32, size: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(inside)
            .host_id(outside)
            .size(size)
            .build()
            .expect("mapping")
    }

    fn mount(options: &[&str], uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Mount {
        let mut m = Mount::default();
        m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
        if !uids.is_empty() {
            m.set_uid_mappings(Some(uids.to_vec()));
        }
        if !gids.is_empty() {
            m.set_gid_mappings(Some(gids.to_vec()));
        }
        m
    }

    fn check(
        options: &[&str],
        uids: &[LinuxIdMapping],
        gids: &[LinuxIdMapping],
        userns: bool,
    ) -> std::result::Result<Option<Request>, String> {
        let m = mount(options, uids, gids);
        let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())?;
        request(&m, &opts, opts.is_bind(), userns)
    }

    #[test]
    fn mappings_with_idmap_render_as_maps() {
        let uids = [mapping(0, 1000, 1), mapping(1, 100000, 65536)];
        let gids = [mapping(0, 2000, 10)];
        let req = check(&["rbind", "ridmap"], &uids, &gids, false)
            .expect("valid")
            .expect("an id-mapped mount");
        assert_eq!(req.kind, IdMap::Recursive);
        assert_eq!(req.uid_map, "0 1000 1\n1 100000 65536\n");
        assert_eq!(req.gid_map, "0 2000 10\n");
        assert_eq!(check(&["bind"], &[], &[], false), Ok(None));
    }

    #[test]
    fn spec_errors() {
        let one = [mapping(0, 1000, 1)];
        type Case<'a> = (
            &'a [&'a str],
            &'a [LinuxIdMapping],
            &'a [LinuxIdMapping],
            bool,
            &'a str,
        );
        let cases: [Case; 7] = [
            (&["bind", "idmap"], &[], &[], false, "no user namespace"),
            (&["bind", "idmap"], &[], &[], true, "not used"),
            (&["bind"], &one, &one, false, "without the \"idmap\""),
            (&["bind", "idmap"], &one, &[], false, "together"),
            (&["ridmap"], &one, &one, false, "only for bind mounts"),
            (
                &["bind", "remount", "idmap"],
                &one,
                &one,
                false,
                "only for bind",
            ),
            (
                &["bind", "idmap"],
                &[mapping(0, 1000, 0)],
                &one,
                false,
                "size is 0",
            ),
        ];
        for (options, uids, gids, userns, want) in cases {
            match check(options, uids, gids, userns) {
                Err(e) => assert!(e.contains(want), "{options:?}: {e:?} lacks {want:?}"),
                Ok(r) => panic!("{options:?} accepted: {r:?}"),
            }
        }
        let past = check(&["bind", "idmap"], &[mapping(u32::MAX, 0, 2)], &one, false);
        assert!(past.is_err_and(|e| e.contains("largest id")));
    }
}

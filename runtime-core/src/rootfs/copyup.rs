//! "tmpcopyup" (runc's extension, used by Podman for `--read-only`): before
//! a new tmpfs is attached over a directory of the rootfs, what that
//! directory holds is copied into it, so /tmp, /run... keep the image's
//! files but become writable.
//!
//! Everything is done by file descriptor: the destination is resolved once
//! inside the root (RESOLVE_IN_ROOT), then walked one name at a time with
//! openat/statx relative to directory fds, never following a symlink
//! (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW); what is written goes into the detached
//! tmpfs, which nobody else can see yet. Symlinks are copied as symlinks,
//! device nodes, fifos and sockets are made again with mknod, regular files
//! get their contents; each gets its owner, mode and times. Hard links are
//! copied as separate files and extended attributes are not copied.
//!
//! Another filesystem mounted below the destination is not entered: its
//! mount point is copied as an empty directory (the new tmpfs hides that
//! mount anyway; copying, say, a proc mount would be absurd).

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use pathrs::Root;
use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, Statx, StatxFlags, StatxTimestamp, Timespec, Timestamps,
    Uid,
};

use super::options::{FsParam, MountOptions};
use super::paths;
use super::sys;
use crate::error::{Context, Error, Result};

/// Copy what `dest` (inside `root`) holds into the detached tmpfs `tree`,
/// and give the tmpfs root the directory's owner and mode (unless the
/// mount's own uid=, gid= or mode= options say otherwise). A missing
/// destination, or one that is not a directory, has nothing to copy.
pub(crate) fn copy_up(
    root: &Root,
    tree: &OwnedFd,
    dest: &Path,
    opts: &MountOptions,
    step: &str,
) -> Result<()> {
    let Some(found) = paths::resolve(root, dest, step)? else {
        return Ok(());
    };
    let shown = |p: &Path| format!("{step}: copy up {}", p.display());
    if paths::file_type(&found).step(|| shown(dest))? != FileType::Directory {
        return Ok(());
    }
    let src = reopen_dir(&found).step(|| shown(dest))?;
    let dst = reopen_dir(tree).step(|| format!("{step}: open the new tmpfs"))?;
    let top = stat(&src, c"").step(|| shown(dest))?;
    let copier = Copier {
        mnt_id: top.stx_mnt_id,
        step,
    };
    copier.contents(&src, &dst, dest)?;
    let has = |key: &str| {
        opts.params
            .iter()
            .any(|p| matches!(p, FsParam::Str(k, _) if k == key))
    };
    let owner = (!has("uid")).then(|| Uid::from_raw(top.stx_uid));
    let group = (!has("gid")).then(|| Gid::from_raw(top.stx_gid));
    let what = || {
        format!(
            "{step}: give the tmpfs root the owner and mode of {}",
            dest.display()
        )
    };
    rustix::fs::fchown(&dst, owner, group).map_err(|e| Error::os(what(), e))?;
    if !has("mode") {
        rustix::fs::fchmod(&dst, perms(&top)).map_err(|e| Error::os(what(), e))?;
    }
    rustix::fs::futimens(&dst, &times(&top)).map_err(|e| Error::os(what(), e))?;
    Ok(())
}

/// A readable fd for the directory `fd` refers to (which may be `O_PATH`).
fn reopen_dir(fd: impl AsFd) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    sys::io(rustix::fs::openat(fd, c".", flags, Mode::empty()))
}

/// statx of `name` in `dir` ("" for `dir` itself), never following a
/// symlink nor triggering an automount.
fn stat(dir: impl AsFd, name: &CStr) -> std::io::Result<Statx> {
    let mut flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
    if name.is_empty() {
        flags |= AtFlags::EMPTY_PATH;
    }
    let wanted = StatxFlags::BASIC_STATS | StatxFlags::MNT_ID;
    sys::io(rustix::fs::statx(dir, name, flags, wanted))
}

struct Copier<'a> {
    /// The mount the destination directory is on: other mounts below it are
    /// not entered.
    mnt_id: u64,
    step: &'a str,
}

impl Copier<'_> {
    fn error(&self, path: &Path, e: impl Into<std::io::Error>) -> Error {
        Error::os(format!("{}: copy up {}", self.step, path.display()), e)
    }

    /// Copy every entry of the directory `src` into the directory `dst`.
    /// `shown` is the path of `src` inside the container, for errors only.
    fn contents(&self, src: &OwnedFd, dst: &OwnedFd, shown: &Path) -> Result<()> {
        let mut dir = rustix::fs::Dir::read_from(src).map_err(|e| self.error(shown, e))?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| self.error(shown, e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let path = shown.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            self.entry(src, dst, name, &path)?;
        }
        Ok(())
    }

    fn entry(&self, src: &OwnedFd, dst: &OwnedFd, name: &CStr, path: &Path) -> Result<()> {
        let err = |e: rustix::io::Errno| self.error(path, e);
        let st = stat(src, name).map_err(|e| self.error(path, e))?;
        let kind = FileType::from_raw_mode(st.stx_mode.into());
        match kind {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700)).map_err(err)?;
                let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
                let open = |at: &OwnedFd| {
                    rustix::fs::openat(at, name, dir_flags | OFlags::CLOEXEC, Mode::empty())
                };
                let to = open(dst).map_err(err)?;
                // A mount point: keep the directory, leave the mount's contents.
                if st.stx_mnt_id == self.mnt_id {
                    let from = open(src).map_err(err)?;
                    self.check_same(&from, &st, path)?;
                    self.contents(&from, &to, path)?;
                }
                set_meta(&to, &st).map_err(err)
            }
            FileType::RegularFile => {
                let from = File::from(self.open_file(src, name, &st, path)?);
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
                let to = rustix::fs::openat(
                    dst,
                    name,
                    flags | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(err)?;
                let mut to = File::from(to);
                std::io::copy(&mut &from, &mut to).map_err(|e| self.error(path, e))?;
                set_meta(&to, &st).map_err(err)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name, Vec::new()).map_err(err)?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name).map_err(err)?;
                set_meta_at(dst, name, &st, false).map_err(err)
            }
            FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Fifo
            | FileType::Socket => {
                let dev = rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor);
                rustix::fs::mknodat(dst, name, kind, Mode::from_raw_mode(0o600), dev)
                    .map_err(err)?;
                set_meta_at(dst, name, &st, true).map_err(err)
            }
            FileType::Unknown => Err(Error::step(
                format!("{}: copy up {}", self.step, path.display()),
                format!("unknown file type (mode {:o})", st.stx_mode),
            )),
        }
    }

    /// Open the regular file `name` for reading; it must still be the file
    /// `st` describes (O_NONBLOCK: a fifo swapped in cannot block us).
    fn open_file(&self, dir: &OwnedFd, name: &CStr, st: &Statx, path: &Path) -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| self.error(path, e))?;
        self.check_same(&fd, st, path)?;
        Ok(fd)
    }

    /// `fd` must be the inode `st` was taken from: nothing in the rootfs
    /// runs yet, but a swap would otherwise go unnoticed.
    fn check_same(&self, fd: &OwnedFd, st: &Statx, path: &Path) -> Result<()> {
        let now = stat(fd, c"").map_err(|e| self.error(path, e))?;
        let same = now.stx_ino == st.stx_ino
            && (now.stx_dev_major, now.stx_dev_minor) == (st.stx_dev_major, st.stx_dev_minor)
            && FileType::from_raw_mode(now.stx_mode.into())
                == FileType::from_raw_mode(st.stx_mode.into());
        if !same {
            return Err(Error::step(
                format!("{}: copy up {}", self.step, path.display()),
                "it changed while being copied",
            ));
        }
        Ok(())
    }
}

fn perms(st: &Statx) -> Mode {
    Mode::from_raw_mode(u32::from(st.stx_mode) & 0o7777)
}

fn timespec(t: &StatxTimestamp) -> Timespec {
    Timespec {
        tv_sec: t.tv_sec,
        tv_nsec: t.tv_nsec.into(),
    }
}

fn times(st: &Statx) -> Timestamps {
    Timestamps {
        last_access: timespec(&st.stx_atime),
        last_modification: timespec(&st.stx_mtime),
    }
}

/// Owner, then mode (a chown clears set-id bits), then times, on an open
/// file or directory of the new tmpfs.
fn set_meta(fd: impl AsFd, st: &Statx) -> rustix::io::Result<()> {
    let fd = fd.as_fd();
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw(st.stx_uid)),
        Some(Gid::from_raw(st.stx_gid)),
    )?;
    rustix::fs::fchmod(fd, perms(st))?;
    rustix::fs::futimens(fd, &times(st))
}

/// The same for `name` in `dir` of the new tmpfs, which we just created
/// there: a symlink (`chmod` false: a symlink has no mode of its own) or a
/// node (never a symlink, so chmodat cannot be led elsewhere).
fn set_meta_at(dir: &OwnedFd, name: &CStr, st: &Statx, chmod: bool) -> rustix::io::Result<()> {
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(st.stx_uid)),
        Some(Gid::from_raw(st.stx_gid)),
        nofollow,
    )?;
    if chmod {
        rustix::fs::chmodat(dir, name, perms(st), AtFlags::empty())?;
    }
    rustix::fs::utimensat(dir, name, &times(st), nofollow)
}

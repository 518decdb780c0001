//! Every write under /proc goes through a procfs handle that pathrs opened and
//! verified (a real procfs, no overmounts), never through a path string, so a
//! container cannot redirect it with a bind mount or a symlink (design.md §2).

use std::io::Write;
use std::path::Path;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

use crate::error::{Context, Result};

pub struct Procfs(ProcfsHandle);

impl Procfs {
    pub fn open() -> Result<Self> {
        // pathrs 0.2.6 aborts instead of failing when /proc is something
        // else (a container can bind any directory over its /proc): refuse
        // clearly first.
        const PROC_SUPER_MAGIC: i64 = 0x9fa0;
        let fs = nix::sys::statfs::statfs("/proc").step(|| "statfs /proc".into())?;
        if fs.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
            return Err(crate::error::Error::step(
                "open a verified procfs handle",
                "/proc is not a procfs (a mount over /proc in the config?); cannot write \
                 sysctls or oom_score_adj safely",
            ));
        }
        ProcfsHandle::new()
            .map(Procfs)
            .step(|| "open a verified procfs handle".into())
    }

    /// Write `data` to /proc/self/`subpath`.
    pub fn write_self(&self, subpath: &str, data: &[u8]) -> Result<()> {
        self.write(ProcfsBase::ProcSelf, subpath, data)
            .step(|| format!("write /proc/self/{subpath}"))
    }

    /// Write `data` to /proc/`pid`/`subpath` (pid must be our child, not yet reaped).
    pub fn write_pid(&self, pid: i32, subpath: &str, data: &[u8]) -> Result<()> {
        self.write(ProcfsBase::ProcPid(pid as u32), subpath, data)
            .step(|| format!("write /proc/{pid}/{subpath}"))
    }

    /// Set the sysctl `key` (dotted, e.g. net.ipv4.ip_forward) to `value`.
    pub fn write_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let subpath = format!("sys/{}", key.replace('.', "/"));
        self.write(ProcfsBase::ProcRoot, &subpath, value.as_bytes())
            .step(|| format!("sysctl {key}={value}"))
    }

    fn write(
        &self,
        base: ProcfsBase,
        subpath: &str,
        data: &[u8],
    ) -> std::result::Result<(), std::io::Error> {
        let mut file = self
            .0
            .open(base, Path::new(subpath), OpenFlags::O_WRONLY)
            .map_err(pathrs_to_io)?;
        file.write_all(data)
    }
}

fn pathrs_to_io(e: pathrs::error::Error) -> std::io::Error {
    match e.kind() {
        pathrs::error::ErrorKind::OsError(Some(errno)) => std::io::Error::from_raw_os_error(errno),
        _ => std::io::Error::other(e.to_string()),
    }
}

/// A procfs handle opened on first use: most containers write nothing under
/// /proc, and opening one costs a fresh procfs superblock.
#[derive(Default)]
pub struct Lazy(std::cell::OnceCell<Procfs>);

impl Lazy {
    pub fn get(&self) -> Result<&Procfs> {
        if self.0.get().is_none() {
            let _ = self.0.set(Procfs::open()?);
        }
        self.0.get().ok_or_else(|| {
            crate::error::Error::step("open a verified procfs handle", "unavailable")
        })
    }
}

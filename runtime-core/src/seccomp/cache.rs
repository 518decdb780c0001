//! Compiled filters kept on disk: libseccomp 2.5 takes 20–40 ms to generate
//! the BPF of a Docker- or Podman-sized profile for x86_64 with its x86 and
//! x32 companions, most of a container start. Every container of an engine
//! gets the same profile, so the result is kept per profile.
//!
//! An entry holds the whole profile it was made from and is used only for
//! exactly that profile (a hash alone would let a crafted profile collide
//! with another container's), and only by the same husk binary (its inode,
//! size and mtime are part of the key, so a rebuilt husk or another
//! libseccomp never reads an old program). Anything unreadable, stale or
//! mismatched is ignored and compiled afresh; writing the cache never fails
//! a container.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};

use super::Filter;
use crate::error::{Error, Result};

#[derive(Serialize, Deserialize)]
struct Entry {
    /// Which build made it: see `build_key`.
    build: String,
    /// The profile, as serialized by `profile_json`.
    profile: String,
    flags: u32,
    notify: bool,
    unknown: Vec<String>,
    /// Each instruction as code << 48 | jt << 40 | jf << 32 | k.
    program: Vec<u64>,
}

/// [`super::compile`], with the result kept in `dir` (created 0700 if
/// missing; it must be a directory only root can write, such as one under
/// husk's state root).
pub fn compile_cached(seccomp: &LinuxSeccomp, dir: &Path) -> Result<Filter> {
    let profile = serde_json::to_string(seccomp)
        .map_err(|e| Error::step("linux.seccomp: serialize the profile", e.to_string()))?;
    let build = build_key();
    let path = entry_path(dir, &build, &profile);
    if let Some(filter) = load(&path, &build, &profile) {
        return Ok(filter);
    }
    let filter = super::compile(seccomp)?;
    let _ = store(dir, &path, &entry(&filter, build, profile));
    Ok(filter)
}

/// The husk binary (inode, size, mtime) and the libseccomp it was linked
/// with, including the kernel API level libseccomp found.
fn build_key() -> String {
    let exe = std::fs::metadata("/proc/self/exe")
        .map(|m| {
            format!(
                "{}:{}:{}:{}",
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            )
        })
        .unwrap_or_default();
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    format!("exe={exe} libseccomp={lib} api={}", libseccomp::get_api())
}

fn entry_path(dir: &Path, build: &str, profile: &str) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    (build, profile).hash(&mut hasher);
    dir.join(format!("{:016x}.json", hasher.finish()))
}

fn load(path: &Path, build: &str, profile: &str) -> Option<Filter> {
    let bytes = std::fs::read(path).ok()?;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    if entry.build != build || entry.profile != profile {
        return None;
    }
    Some(Filter {
        program: entry.program.iter().map(|&w| unpack(w)).collect(),
        flags: entry.flags,
        notify: entry.notify,
        unknown: entry.unknown,
    })
}

fn entry(filter: &Filter, build: String, profile: String) -> Entry {
    Entry {
        build,
        profile,
        flags: filter.flags,
        notify: filter.notify,
        unknown: filter.unknown.clone(),
        program: filter.program.iter().map(pack).collect(),
    }
}

/// Write to a temporary file and rename it into place, so a reader sees a
/// whole entry or none.
fn store(dir: &Path, path: &Path, entry: &Entry) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let bytes = serde_json::to_vec(entry)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&bytes)?;
    drop(file);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn pack(i: &libc::sock_filter) -> u64 {
    u64::from(i.code) << 48 | u64::from(i.jt) << 40 | u64::from(i.jf) << 32 | u64::from(i.k)
}

fn unpack(w: u64) -> libc::sock_filter {
    libc::sock_filter {
        code: (w >> 48) as u16,
        jt: (w >> 40) as u8,
        jf: (w >> 32) as u8,
        k: w as u32,
    }
}

//! Small cgroupfs file operations: single-write files, pid lists, mkdir -p
//! that remembers what it made, rmdir of a subtree.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Write `data` to an existing cgroup file in one write(2) (cgroupfs takes
/// each write as one value). Never creates the file.
pub(crate) fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let n = f.write(data)?;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write ({n} of {} bytes)", data.len()),
        ));
    }
    Ok(())
}

/// Read a small kernel file. Plain read(2)s into a 4 KiB buffer: std's
/// read_to_string would first statx and lseek for a size hint, which
/// cgroupfs and procfs files do not give (they report size 0).
pub(crate) fn read_file(path: &Path) -> io::Result<String> {
    String::from_utf8(read_bytes(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not UTF-8", path.display()),
        )
    })
}

pub(crate) fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// ENOENT, or ENODEV from a cgroup that is being removed.
pub(crate) fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODEV))
}

fn parse_pids(text: &str, from: &Path) -> io::Result<Vec<i32>> {
    text.split_ascii_whitespace()
        .map(|t| {
            t.parse::<i32>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad pid {t:?} in {}", from.display()),
                )
            })
        })
        .collect()
}

/// The pids in the cgroup `dir` and every cgroup below it (the container may
/// make sub-cgroups of its own), sorted and deduplicated. A missing `dir` has
/// no pids; missing sub-cgroups (removed while we look) are skipped.
pub(crate) fn subtree_pids(dir: &Path) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    collect_pids(dir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> io::Result<()> {
    let procs = dir.join("cgroup.procs");
    match read_file(&procs) {
        Ok(t) => out.extend(parse_pids(&t, &procs)?),
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        // d_type comes with getdents on cgroupfs: no stat per entry.
        if entry.file_type()?.is_dir() {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// The directories under `dir` (not `dir` itself), deepest first.
pub(crate) fn subdirs_deepest_first(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                let p = entry.path();
                walk(&p, out)?;
                out.push(p);
            }
        }
        Ok(())
    }
    walk(dir, &mut out)?;
    Ok(out)
}

/// What [`mkdir_p`] did.
pub(crate) struct Made {
    /// The directories it created, shallowest first.
    pub created: Vec<PathBuf>,
    /// The leaf existed before (someone else made it).
    pub leaf_existed: bool,
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// `mkdir -p base/components...`, where `base` exists. Tries the leaf first,
/// so the common case (parent exists) is one mkdir; walks up only on ENOENT.
/// Tolerates a concurrent rmdir of a shared ancestor (another container's
/// destroy) by retrying. On error, removes what it created and returns the
/// error with the path that failed.
pub(crate) fn mkdir_p(base: &Path, components: &[String]) -> Result<Made, (PathBuf, io::Error)> {
    let mut paths = Vec::with_capacity(components.len());
    let mut p = base.to_path_buf();
    for c in components {
        p.push(c);
        paths.push(p.clone());
    }
    let Some(last) = paths.len().checked_sub(1) else {
        return Err((
            base.to_path_buf(),
            io::Error::new(io::ErrorKind::InvalidInput, "empty cgroup path"),
        ));
    };

    let mut created: Vec<usize> = Vec::new();
    let undo = |created: &[usize]| {
        for &i in created.iter().rev() {
            let _ = fs::remove_dir(&paths[i]);
        }
    };
    let mut attempts = 0;
    'retry: loop {
        attempts += 1;
        // Walk up until a mkdir succeeds or hits an existing directory.
        let mut i = last;
        let start = loop {
            match fs::create_dir(&paths[i]) {
                Ok(()) => {
                    created.push(i);
                    break i + 1;
                }
                Err(e) if errno(&e) == Errno::EEXIST => break i + 1,
                Err(e) if errno(&e) == Errno::ENOENT && i > 0 => i -= 1,
                Err(e) => {
                    let at = paths[i].clone();
                    undo(&created);
                    return Err((at, e));
                }
            }
        };
        // Then down again to the leaf.
        for (j, path) in paths.iter().enumerate().skip(start) {
            match fs::create_dir(path) {
                Ok(()) => created.push(j),
                Err(e) if errno(&e) == Errno::EEXIST => {}
                Err(e) if errno(&e) == Errno::ENOENT && attempts < 5 => continue 'retry,
                Err(e) => {
                    undo(&created);
                    return Err((path.clone(), e));
                }
            }
        }
        break;
    }
    created.sort_unstable();
    created.dedup();
    Ok(Made {
        leaf_existed: !created.contains(&last),
        created: created.into_iter().map(|i| paths[i].clone()).collect(),
    })
}

//! One runtime under test: its binary, its own `--root`, its command lines.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::binary::{self, BinaryInfo};
use crate::bundle::{path_string, Bundle};
use crate::process::{self, Failure};

/// Debian's crun 1.8.1 refuses hybrid cgroups; in a private mount namespace
/// without the cgroup2 mount it sees a plain v1 host. `$0` is the program.
pub const HIDE_CGROUP2_SCRIPT: &str = "umount -l /sys/fs/cgroup/unified; exec \"$0\" \"$@\"";
const CGROUP2_HYBRID_MOUNT: &str = "/sys/fs/cgroup/unified";

pub struct Runtime {
    pub name: String,
    pub path: String,
    pub binary: BinaryInfo,
    /// Every command goes through `unshare -m sh -c HIDE_CGROUP2_SCRIPT`.
    pub wrapped: bool,
    root: String,
    stderr_log: PathBuf,
    pid_dir: PathBuf,
}

/// The runtimes whose binary exists; the others are skipped with a message.
pub fn prepare(specs: &[(String, PathBuf)], workdir: &Path) -> Result<Vec<Runtime>, String> {
    let hybrid = cgroup2_hybrid();
    let mut runtimes = Vec::new();
    for (name, path) in specs {
        match binary::inspect(path) {
            Ok(binary) => runtimes.push(Runtime::new(name, path, binary, hybrid, workdir)?),
            Err(err) => eprintln!("lifecycle: skipping {name}: {}: {err}", path.display()),
        }
    }
    if runtimes.is_empty() {
        return Err("no runtime binary found".to_string());
    }
    Ok(runtimes)
}

impl Runtime {
    fn new(
        name: &str,
        path: &Path,
        binary: BinaryInfo,
        hybrid: bool,
        workdir: &Path,
    ) -> Result<Self, String> {
        let dir = workdir.join(format!("runtime-{name}"));
        let root = dir.join("root");
        let pid_dir = dir.join("pids");
        for dir in [&root, &pid_dir] {
            fs::create_dir_all(dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        }
        let is_crun = name == "crun" || path.file_name().is_some_and(|file| file == "crun");
        Ok(Runtime {
            name: name.to_string(),
            path: path_string(path)?,
            binary,
            wrapped: is_crun && hybrid,
            root: path_string(&root)?,
            stderr_log: dir.join("stderr.log"),
            pid_dir,
        })
    }

    /// `RUNTIME --root ROOT ARGS...`, wrapped if needed.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec!["--root", self.root.as_str()];
        argv.extend_from_slice(args);
        if self.wrapped {
            wrapped_argv(&self.path, &argv)
        } else {
            std::iter::once(self.path.as_str())
                .chain(argv)
                .map(str::to_string)
                .collect()
        }
    }

    /// Runs one runtime command; returns its wall time.
    pub fn run(&self, args: &[&str]) -> Result<Duration, Failure> {
        process::timed_run(&self.argv(args), &self.stderr_log)
    }

    /// Same, through the RSS launcher: returns the peak RSS in KiB.
    pub fn peak_rss(&self, args: &[&str], report: &Path) -> Result<u64, Failure> {
        crate::launcher::peak_rss(&self.argv(args), report, &self.stderr_log)
    }

    pub fn create_args<'a>(bundle: &'a Bundle, id: &'a str) -> [&'a str; 4] {
        ["create", "--bundle", &bundle.dir, id]
    }

    /// `create` with a pid file; returns its wall time and the container's pid.
    pub fn create(&self, bundle_dir: &str, id: &str) -> Result<(Duration, i32), Failure> {
        let pid_file = self.pid_dir.join(format!("{id}.pid"));
        let pid_path = path_string(&pid_file).map_err(|err| Failure::other("pid file", err))?;
        let elapsed = self.run(&[
            "create",
            "--bundle",
            bundle_dir,
            "--pid-file",
            &pid_path,
            id,
        ])?;
        Ok((elapsed, read_pid(&pid_file)?))
    }

    /// Waits for a started container's init to exit, then reaps it.
    pub fn await_exit(&self, pid: i32) -> Result<(), Failure> {
        process::wait_exit(pid, process::EXIT_TIMEOUT)
            .map_err(|reason| Failure::other(format!("waiting for container pid {pid}"), reason))?;
        process::reap(pid);
        Ok(())
    }

    /// `delete --force`, for cleanup: errors are ignored (it may be gone already).
    pub fn force_delete(&self, id: &str) {
        let _ = self.run(&["delete", "--force", id]);
    }

    /// Ids of the containers this runtime still knows.
    pub fn list(&self) -> Result<Vec<String>, Failure> {
        let listing = process::capture_stdout(&self.argv(&["list", "-q"]), &self.stderr_log)?;
        Ok(listing
            .lines()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect())
    }
}

/// `unshare -m sh -c HIDE_CGROUP2_SCRIPT PROGRAM ARGS...`
pub fn wrapped_argv(program: &str, args: &[&str]) -> Vec<String> {
    ["unshare", "-m", "sh", "-c", HIDE_CGROUP2_SCRIPT, program]
        .into_iter()
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// Whether cgroup v1 hierarchies sit beside a cgroup2 mount at /sys/fs/cgroup/unified.
pub fn cgroup2_hybrid() -> bool {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(CGROUP2_HYBRID_MOUNT))
}

fn read_pid(pid_file: &Path) -> Result<i32, Failure> {
    let what = || format!("pid file {}", pid_file.display());
    let text =
        fs::read_to_string(pid_file).map_err(|err| Failure::other(what(), err.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| Failure::other(what(), format!("not a pid: {:?}", text.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_passes_program_as_dollar_zero() {
        let argv = wrapped_argv("/usr/bin/crun", &["--root", "/r", "state", "x"]);
        assert_eq!(
            argv[..5],
            ["unshare", "-m", "sh", "-c", HIDE_CGROUP2_SCRIPT]
        );
        assert_eq!(argv[5..], ["/usr/bin/crun", "--root", "/r", "state", "x"]);
    }
}

//! Observations from the host side: /proc/<pid>/{ns,status,cgroup}, cgroup
//! files, host mounts and processes that hold namespaces for join tests.

use crate::procinfo;
use serde_json::{Map, Value};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The namespace a process is in, as the `type:[inode]` link text.
pub fn ns_link(pid: u32, ns: &str) -> Result<String, String> {
    let path = format!("/proc/{pid}/ns/{ns}");
    fs::read_link(&path)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("readlink {path}: {e}"))
}

/// The namespace of the runner itself.
pub fn own_ns(ns: &str) -> Result<String, String> {
    ns_link(std::process::id(), ns)
}

pub fn proc_status(pid: u32) -> Result<Map<String, Value>, String> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    Ok(procinfo::parse_status(&text))
}

pub fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; it counts as gone.
    proc_status(pid)
        .map(|s| {
            !s.get("State")
                .and_then(Value::as_str)
                .unwrap_or("")
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// The cgroup path of a process for a v1 controller, or for "" (cgroup2).
pub fn cgroup_path(pid: u32, controller: &str) -> Result<String, String> {
    let path = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    procinfo::parse_cgroup(&text)
        .into_iter()
        .find(|line| {
            let ctls = line["controllers"].as_array().cloned().unwrap_or_default();
            if controller.is_empty() {
                line["hierarchy"] == "0"
            } else {
                ctls.iter().any(|c| c == controller)
            }
        })
        .and_then(|line| line["path"].as_str().map(String::from))
        .ok_or_else(|| format!("no {controller:?} line in {path}"))
}

/// Where a cgroup v1 controller (or cgroup2 for "") is mounted on the host.
pub fn cgroup_mount(controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    procinfo::parse_mountinfo(&text)
        .into_iter()
        .find(|m| {
            let supers = m["super_options"].as_array().cloned().unwrap_or_default();
            if controller.is_empty() {
                m["fstype"] == "cgroup2"
            } else {
                m["fstype"] == "cgroup" && supers.iter().any(|o| o == controller)
            }
        })
        .and_then(|m| m["mount_point"].as_str().map(PathBuf::from))
}

/// The host directory of a process's cgroup for a controller.
pub fn cgroup_dir(pid: u32, controller: &str) -> Result<PathBuf, String> {
    let mount = cgroup_mount(controller)
        .ok_or_else(|| format!("cgroup controller {controller:?} is not mounted"))?;
    let rel = cgroup_path(pid, controller)?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// Reads a file of a process's cgroup, e.g. ("pids", "pids.max").
pub fn cgroup_file(pid: u32, controller: &str, file: &str) -> Result<String, String> {
    let path = cgroup_dir(pid, controller)?.join(file);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("read {}: {e}", path.display()))
}

/// Mounts a filesystem on the host (the runner runs as root).
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let (src, fst, dat) = (c(source)?, c(fstype)?, c(data)?);
    let tgt = c(&target.to_string_lossy())?;
    // SAFETY: all pointers are valid C strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fst.as_ptr(),
            flags,
            dat.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount {fstype} on {}: {}",
            target.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Changes the propagation type of a host mount (MS_SHARED, MS_PRIVATE...).
pub fn set_propagation(target: &Path, flag: libc::c_ulong) -> Result<(), String> {
    mount("none", target, "", flag, "")
}

/// Lazily unmounts a host mount; errors are ignored (used in cleanup).
pub fn umount(target: &Path) {
    if let Ok(t) = CString::new(target.to_string_lossy().as_bytes()) {
        // SAFETY: valid C string.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A host process that sits in fresh namespaces, so that a container can be
/// told to join them by path. util-linux `unshare --fork` makes pid and time
/// namespaces take effect for its child, which is the process kept here.
pub struct NsHolder {
    child: Child,
    pub pid: u32,
}

impl NsHolder {
    /// `flags` are unshare(1) options such as ["--net", "--uts"].
    pub fn spawn(flags: &[&str]) -> Result<NsHolder, String> {
        let mut cmd = Command::new("unshare");
        cmd.args(flags)
            .args(["--fork", "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        match wait_for_grandchild(child.id(), Duration::from_secs(5)) {
            Some(pid) => Ok(NsHolder { child, pid }),
            None => {
                let _ = child.kill();
                let out = child
                    .wait_with_output()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                Err(format!(
                    "unshare {flags:?} did not start: {}",
                    out.unwrap_or_default().trim()
                ))
            }
        }
    }

    /// Writes the uid and gid maps of a holder made with `--user` (the
    /// runner is privileged in the parent namespace, so any map is allowed).
    pub fn write_id_maps(&self, map: &str) -> Result<(), String> {
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{}/{file}", self.pid);
            fs::write(&path, map).map_err(|e| format!("write {path}: {e}"))?;
        }
        Ok(())
    }

    /// The path of one of the holder's namespaces, as a config would name it.
    pub fn ns_path(&self, ns: &str) -> String {
        format!("/proc/{}/ns/{ns}", self.pid)
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the holder's own process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child that `unshare --fork` started, once it has exec'd sleep.
fn wait_for_grandchild(parent: u32, limit: Duration) -> Option<u32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let children = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = children
            .split_whitespace()
            .find_map(|p| p.parse::<u32>().ok())
        {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                return Some(pid);
            }
        }
        sleep(Duration::from_millis(5));
    }
    None
}

/// Clock readings of the runner, to compare with a container's time namespace.
pub fn clock_secs(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

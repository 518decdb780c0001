//! The scratch directory and the OCI bundle: a busybox-static rootfs and a
//! config equivalent to `runc spec` running `/bin/true` without a terminal.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::binary;

const BUSYBOX: &str = "/bin/busybox";
/// Debian's crun 1.8.1 accepts only 1.0.x.
const OCI_VERSION: &str = "1.0.2";

/// A directory under $TMPDIR removed (with everything in it) on drop.
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    pub fn create() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("husk-bench-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)
                .map_err(|err| format!("cannot clear {}: {err}", path.display()))?;
        }
        fs::create_dir_all(&path)
            .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
        Ok(Workdir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.path) {
            eprintln!("lifecycle: cannot remove {}: {err}", self.path.display());
        }
    }
}

pub struct Bundle {
    pub dir: String,
    pub rootfs: String,
    /// A second bundle on the same rootfs whose process sleeps: the
    /// container that `exec` is timed against.
    pub sleeper_dir: String,
}

pub fn build(workdir: &Path) -> Result<Bundle, String> {
    let dir = workdir.join("bundle");
    let rootfs = dir.join("rootfs");
    populate_rootfs(&rootfs)?;
    let rootfs = path_string(&rootfs)?;
    write_config(&dir, &config(&["/bin/true"], "rootfs"))?;
    let sleeper_dir = workdir.join("sleeper");
    write_config(&sleeper_dir, &config(&["/bin/sleep", "100000"], &rootfs))?;
    Ok(Bundle {
        dir: path_string(&dir)?,
        rootfs,
        sleeper_dir: path_string(&sleeper_dir)?,
    })
}

fn write_config(dir: &Path, config: &serde_json::Value) -> Result<(), String> {
    create_dir(dir)?;
    let text = serde_json::to_string_pretty(config).map_err(|err| err.to_string())?;
    write(&dir.join("config.json"), &text)
}

fn populate_rootfs(rootfs: &Path) -> Result<(), String> {
    let busybox = binary::inspect(Path::new(BUSYBOX))
        .map_err(|err| format!("{BUSYBOX}: {err} (install busybox-static)"))?;
    if busybox.linkage != binary::Linkage::Static {
        return Err(format!(
            "{BUSYBOX} is not a static binary (install busybox-static)"
        ));
    }
    for dir in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        create_dir(&rootfs.join(dir))?;
    }
    let target = rootfs.join("bin/busybox");
    fs::copy(BUSYBOX, &target)
        .map_err(|err| format!("cannot copy {BUSYBOX} to {}: {err}", target.display()))?;
    for applet in busybox_applets()? {
        link_applet(rootfs, &applet)?;
    }
    Ok(())
}

/// Paths such as `usr/bin/env`, relative to the root, as `busybox --install -s` would make.
fn busybox_applets() -> Result<Vec<String>, String> {
    let output = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(|err| format!("{BUSYBOX} --list-full: {err}"))?;
    if !output.status.success() {
        return Err(format!("{BUSYBOX} --list-full: {}", output.status));
    }
    let list = String::from_utf8_lossy(&output.stdout);
    Ok(list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

fn link_applet(rootfs: &Path, applet: &str) -> Result<(), String> {
    let link = rootfs.join(applet.trim_start_matches('/'));
    if link.symlink_metadata().is_ok() {
        return Ok(()); // bin/busybox itself, or a duplicate
    }
    if let Some(parent) = link.parent() {
        create_dir(parent)?;
    }
    symlink("/bin/busybox", &link).map_err(|err| format!("cannot link {}: {err}", link.display()))
}

/// `runc spec` (runc 1.1.5) with terminal=false, these args, this root
/// path and ociVersion 1.0.2.
fn config(args: &[&str], root: &str) -> serde_json::Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": root, "readonly": true },
        "hostname": "runc",
        "mounts": mounts(),
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

fn mounts() -> serde_json::Value {
    json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
          "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
        { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
          "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
        { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
          "options": ["nosuid", "noexec", "nodev"] },
        { "destination": "/sys", "type": "sysfs", "source": "sysfs",
          "options": ["nosuid", "noexec", "nodev", "ro"] },
        { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
          "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
    ])
}

fn create_dir(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|err| format!("cannot create {}: {err}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|err| format!("cannot write {}: {err}", path.display()))
}

pub fn path_string(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_string)
        .ok_or(format!("{} is not UTF-8", path.display()))
}

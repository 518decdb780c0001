//! OCI bundles for tests: a busybox root filesystem, optionally with the probe
//! at /probe, and a config.json kept as JSON until it is written.

use crate::spec;
use serde_json::{json, Value};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the busybox-static package installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// A bundle directory: `dir/config.json` plus `dir/rootfs`.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// Makes `dir/rootfs` from the host's static busybox and a config derived
    /// from `runc spec`'s default, with no terminal so output can be captured.
    pub fn busybox(dir: &Path) -> io::Result<Bundle> {
        let rootfs = dir.join("rootfs");
        make_dirs(&rootfs)?;
        install_busybox(&rootfs)?;
        write_etc(&rootfs)?;
        let mut config = spec::default_config();
        spec::set(&mut config, "/process/terminal", json!(false));
        Ok(Bundle {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// Copies a static probe binary to /probe in the root filesystem.
    pub fn with_probe(self, probe: &Path) -> io::Result<Bundle> {
        let dest = self.rootfs().join("probe");
        fs::copy(probe, &dest)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
        Ok(self)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Sets a config value by JSON pointer, e.g. `set("/hostname", json!("x"))`.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        spec::set(&mut self.config, pointer, value);
        self
    }

    /// Removes a config member by JSON pointer.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        spec::remove(&mut self.config, pointer);
        self
    }

    /// Appends to a config array by JSON pointer.
    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Self {
        spec::push(&mut self.config, pointer, value);
        self
    }

    /// Sets process.args.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// Sets process.args to run the probe with the given probe arguments.
    pub fn probe_args(&mut self, args: &[&str]) -> &mut Self {
        let mut all = vec!["/probe"];
        all.extend_from_slice(args);
        self.args(&all)
    }

    pub fn write_config(&self) -> io::Result<()> {
        let text = serde_json::to_string_pretty(&self.config).map_err(io::Error::other)?;
        fs::write(self.config_path(), text)
    }
}

fn make_dirs(rootfs: &Path) -> io::Result<()> {
    for d in [
        "bin", "dev", "etc", "proc", "sys", "tmp", "root", "mnt", "run", "var", "home",
    ] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    // The bundle may be used by a mapped root in a user namespace, which
    // needs to traverse every directory on the way.
    for d in [rootfs.parent().unwrap_or(rootfs), rootfs] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))
}

fn install_busybox(rootfs: &Path) -> io::Result<()> {
    let bin = rootfs.join("bin");
    fs::copy(BUSYBOX, bin.join("busybox"))?;
    for applet in applets()? {
        if applet != "busybox" {
            symlink("busybox", bin.join(applet))?;
        }
    }
    Ok(())
}

/// The applet names of the host busybox, asked once per process.
fn applets() -> io::Result<&'static [String]> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(list) = APPLETS.get() {
        return Ok(list);
    }
    let out = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{BUSYBOX} --list failed")));
    }
    let list = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && !a.contains('/') && !a.starts_with('['))
        .map(String::from)
        .collect();
    Ok(APPLETS.get_or_init(|| list))
}

fn write_etc(rootfs: &Path) -> io::Result<()> {
    let etc = rootfs.join("etc");
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(
        etc.join("group"),
        "root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n",
    )?;
    fs::write(etc.join("hostname"), "bundle\n")
}

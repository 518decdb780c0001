//! A runtime-agnostic conformance suite for the OCI runtime specification,
//! driving any runtime through runc's command line.
//!
//! The building blocks are usable from other test suites:
//!
//! ```no_run
//! use conformance::{Bundle, Runtime};
//! let dir = std::path::Path::new("/tmp/example-bundle");
//! let mut bundle = Bundle::busybox(dir).unwrap();
//! bundle.args(&["echo", "hello"]);
//! let runtime = Runtime::new("/usr/sbin/runc").root("/tmp/example-root");
//! let out = runtime.run(&bundle, "example");
//! assert_eq!(out.stdout, "hello\n");
//! ```

pub mod bundle;
pub mod console;
pub mod host;
pub mod procinfo;
pub mod runtime;
pub mod spec;
pub mod suite;

pub use bundle::Bundle;
pub use runtime::{Output, Runtime};

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the probe binary explicitly.
pub const PROBE_ENV: &str = "CONFORMANCE_PROBE";

/// Finds the static probe binary: `$CONFORMANCE_PROBE`, else `probe` next to
/// the running executable. Under `cargo run` (which builds only the runner)
/// it is built with the same profile first.
pub fn probe_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(PROBE_ENV) {
        return checked_probe(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the runner: {e}"))?;
    let mut dir = exe.parent().ok_or("the runner has no parent directory")?;
    // Test binaries live in target/<profile>/deps, binaries one level up.
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    // Under cargo the probe is rebuilt every time so that it is never stale;
    // cargo makes that a no-op when it is up to date.
    if let Some(cargo) = std::env::var_os("CARGO") {
        build_probe(&cargo, dir)?;
    }
    checked_probe(dir.join("probe"))
}

fn build_probe(cargo: &std::ffi::OsStr, target_dir: &Path) -> Result<(), String> {
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "conformance", "--bin", "probe"]);
    if target_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo to build the probe: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building the probe failed ({status})"))
    }
}

/// The probe runs in a busybox rootfs with no dynamic loader: refuse a
/// dynamically linked one up front rather than fail every test obscurely.
fn checked_probe(path: PathBuf) -> Result<PathBuf, String> {
    let bytes = std::fs::read(&path).map_err(|e| {
        let hint = "build it with `cargo build -p conformance --release --bins`";
        format!("cannot read the probe {} ({e}): {hint}", path.display())
    })?;
    if has_interpreter(&bytes) {
        let path = path.display();
        return Err(format!(
            "the probe {path} is dynamically linked; build it with +crt-static"
        ));
    }
    Ok(path)
}

/// Whether an ELF64 little-endian file has a PT_INTERP program header.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).any(|i| u32_at(phoff as usize + i * phentsize) == Some(PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_dynamic_executables() {
        let sh = std::fs::read("/bin/sh").expect("read /bin/sh");
        assert!(has_interpreter(&sh), "/bin/sh is dynamic on Debian");
        let busybox = std::fs::read(bundle::BUSYBOX).expect("busybox-static is installed");
        assert!(!has_interpreter(&busybox));
    }
}

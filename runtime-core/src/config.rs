//! config.json: loading with errors that name the offending field, and the
//! checks that must pass before anything is created.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A parsed and validated bundle.
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    pub spec: Spec,
    /// Absolute, canonical path of the rootfs on the host.
    pub rootfs: PathBuf,
    /// The bytes of config.json as read, kept so later commands (exec,
    /// delete's poststop hooks) see the config the container was created with.
    pub raw: Vec<u8>,
}

/// Read `<bundle>/config.json` and validate it.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(bundle).map_err(|e| Error::os("bundle path", e))?;
    let path = dir.join("config.json");
    let raw = std::fs::read(&path).map_err(|e| Error::os(format!("read {}", path.display()), e))?;
    let spec = parse(&raw)?;
    let rootfs = rootfs_path(&dir, &spec)?;
    validate(&spec)?;
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        raw,
    })
}

/// Parse config.json bytes; the error names the JSON path of the bad field.
///
/// Capability names this runtime does not know are dropped with a warning
/// rather than refused: the runtime-spec says an unmappable capability MUST
/// be logged as a warning and the runtime SHOULD NOT fail (a newer client
/// may name capabilities an older runtime has never heard of). runc does
/// the same. Only then is the config parsed a second time.
pub fn parse(raw: &[u8]) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(raw);
    match serde_path_to_error::deserialize(de) {
        Ok(spec) => Ok(spec),
        Err(e) if e.path().to_string().starts_with("process.capabilities.") => {
            parse_without_unknown_capabilities(raw).ok_or_else(|| path_error(e))
        }
        Err(e) => Err(path_error(e)),
    }
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let field = e.path().to_string();
    let inner = e.into_inner();
    if field == "." || field.is_empty() {
        Error::config(format!("config.json: {inner}"))
    } else {
        Error::config(format!("config.json: {field}: {inner}"))
    }
}

fn parse_without_unknown_capabilities(raw: &[u8]) -> Option<Spec> {
    let mut value: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let sets = value
        .pointer_mut("/process/capabilities")?
        .as_object_mut()?;
    for (set, names) in sets.iter_mut() {
        let Some(names) = names.as_array_mut() else {
            continue;
        };
        names.retain(|name| {
            let known =
                serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
            if !known {
                eprintln!(
                    "husk: warning: process.capabilities.{set}: unknown capability {name} ignored"
                );
            }
            known
        });
    }
    serde_json::from_value(value).ok()
}

fn rootfs_path(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::config("root: missing"))?;
    let path = bundle.join(root.path());
    let canonical = std::fs::canonicalize(&path)
        .map_err(|e| Error::config(format!("root.path: {}: {e}", path.display())))?;
    if !canonical.is_dir() {
        return Err(Error::config(format!(
            "root.path: {}: not a directory",
            canonical.display()
        )));
    }
    Ok(canonical)
}

/// The namespace types the config creates or joins.
pub fn namespace_types(spec: &Spec) -> HashSet<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|nss| nss.iter().map(|ns| ns.typ()).collect())
        .unwrap_or_default()
}

fn validate(spec: &Spec) -> Result<()> {
    validate_process(spec)?;
    validate_namespaces(spec)?;
    validate_hooks(spec)?;
    validate_sysctls(spec)?;
    Ok(())
}

fn validate_process(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process: missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::config("process.args: must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::config(format!(
            "process.cwd: {}: must be an absolute path",
            process.cwd().display()
        )));
    }
    for var in process.env().iter().flatten() {
        if !var.contains('=') {
            return Err(Error::config(format!(
                "process.env: {var:?}: not of the form KEY=value"
            )));
        }
    }
    Ok(())
}

fn validate_namespaces(spec: &Spec) -> Result<()> {
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::config("linux: missing"))?;
    let mut seen = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            return Err(Error::config(format!(
                "linux.namespaces: {} appears twice",
                ns.typ()
            )));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(Error::config(format!(
                    "linux.namespaces: {} path {}: must be absolute",
                    ns.typ(),
                    path.display()
                )));
            }
        }
    }
    if !seen.contains(&LinuxNamespaceType::Mount) {
        return Err(Error::config(
            "linux.namespaces: a mount namespace is required to set up the rootfs",
        ));
    }
    let has = |t| seen.contains(&t);
    if (spec.hostname().is_some() || spec.domainname().is_some()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "hostname: setting a hostname or domainname requires a uts namespace",
        ));
    }
    let maps = linux.uid_mappings().is_some() || linux.gid_mappings().is_some();
    if maps && !has(LinuxNamespaceType::User) {
        return Err(Error::config(
            "linux.uidMappings: id mappings require a user namespace",
        ));
    }
    if linux.time_offsets().is_some() && !has(LinuxNamespaceType::Time) {
        return Err(Error::config(
            "linux.timeOffsets: time offsets require a time namespace",
        ));
    }
    for clock in linux.time_offsets().iter().flat_map(|m| m.keys()) {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::config(format!(
                "linux.timeOffsets: {clock:?}: only monotonic and boottime can be offset"
            )));
        }
    }
    Ok(())
}

fn validate_hooks(spec: &Spec) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (name, list) in lists {
        for hook in list.iter().flatten() {
            if !hook.path().is_absolute() {
                return Err(Error::config(format!(
                    "hooks.{name}: {}: path must be absolute",
                    hook.path().display()
                )));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(Error::config(format!(
                    "hooks.{name}: {}: timeout must be greater than zero",
                    hook.path().display()
                )));
            }
        }
    }
    Ok(())
}

/// Sysctls must belong to a namespace the container owns, or they would
/// change the host (the rule runc applies).
fn validate_sysctls(spec: &Spec) -> Result<()> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let owned = |t| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|nss| nss.iter().any(|ns| ns.typ() == t))
    };
    for key in sysctls.keys() {
        let needs = sysctl_namespace(key).ok_or_else(|| {
            Error::config(format!(
                "linux.sysctl: {key}: not namespaced, it would change the host"
            ))
        })?;
        if !owned(needs) {
            return Err(Error::config(format!(
                "linux.sysctl: {key}: requires a {needs} namespace"
            )));
        }
        if key.contains("..") || key.starts_with('/') || key.starts_with('.') {
            return Err(Error::config(format!("linux.sysctl: {key}: invalid name")));
        }
    }
    Ok(())
}

/// The namespace that makes a sysctl per-container, if any.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

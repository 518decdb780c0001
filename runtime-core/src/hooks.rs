//! OCI hooks: each runs with the container's state JSON on stdin, its own
//! args and env, and an optional timeout after which it is killed.

use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use oci_spec::runtime::Hook;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::syscall;

/// The runtime-spec state, as hooks and `husk state` see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecState {
    pub oci_version: String,
    pub id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

/// Run every hook of one kind in order; stop at the first failure.
pub fn run_all(kind: &str, hooks: &[Hook], state: &SpecState) -> Result<()> {
    let json = state_json(state)?;
    for hook in hooks {
        run(kind, hook, &json)?;
    }
    Ok(())
}

/// Run every hook of one kind in order, each even if an earlier one failed
/// (poststart, poststop: the spec asks for a warning, not a stop). Returns
/// the failures.
pub fn run_all_warn(kind: &str, hooks: &[Hook], state: &SpecState) -> Vec<Error> {
    let json = match state_json(state) {
        Ok(json) => json,
        Err(e) => return vec![e],
    };
    hooks
        .iter()
        .filter_map(|hook| run(kind, hook, &json).err())
        .collect()
}

fn state_json(state: &SpecState) -> Result<Vec<u8>> {
    serde_json::to_vec(state).map_err(|e| Error::step("hook state", e.to_string()))
}

fn run(kind: &str, hook: &Hook, state: &[u8]) -> Result<()> {
    let step = format!("{kind} hook {}", hook.path().display());
    let output = memfd(&step)?;
    let mut command = Command::new(hook.path());
    if let Some(args) = hook.args().as_ref().filter(|a| !a.is_empty()) {
        command.arg0(&args[0]).args(&args[1..]);
    }
    command.env_clear();
    for var in hook.env().iter().flatten() {
        if let Some((k, v)) = var.split_once('=') {
            command.env(k, v);
        }
    }
    let out_clone = output.try_clone().map_err(|e| Error::os(step.clone(), e))?;
    let err_clone = output.try_clone().map_err(|e| Error::os(step.clone(), e))?;
    // Its own process group, so a timeout kills whatever the hook started too.
    let mut child = command
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out_clone))
        .stderr(Stdio::from(err_clone))
        .spawn()
        .map_err(|e| Error::os(step.clone(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that exits without reading its stdin is not a failure.
        let _ = stdin.write_all(state);
    }
    let status = wait_with_timeout(&mut child, hook.timeout(), &step)?;
    if status.success() {
        return Ok(());
    }
    let reason = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    let said = read_output(output);
    Err(Error::step(
        step,
        if said.is_empty() {
            reason
        } else {
            format!("{reason}: {said}")
        },
    ))
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Option<i64>,
    step: &str,
) -> Result<std::process::ExitStatus> {
    if let Some(secs) = timeout {
        let pidfd = syscall::pidfd_open(child.id() as i32).map_err(|e| Error::os(step, e))?;
        let ms = i32::try_from(secs.saturating_mul(1000)).unwrap_or(i32::MAX);
        let exited = syscall::pidfd_wait_exit(pidfd.as_fd(), ms).map_err(|e| Error::os(step, e))?;
        if !exited {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            return Err(Error::step(step, format!("timed out after {secs}s")));
        }
    }
    child.wait().map_err(|e| Error::os(step, e))
}

fn memfd(step: &str) -> Result<std::fs::File> {
    let fd = nix::sys::memfd::memfd_create(c"husk-hook", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::os(step, e))?;
    Ok(std::fs::File::from(fd))
}

/// What the hook printed, trimmed to a line-sized excerpt for the error.
fn read_output(mut file: std::fs::File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(4096).read_to_string(&mut text);
    text.trim().replace('\n', "; ")
}

//! Handing the notify fd to the seccomp agent at linux.seccomp.listenerPath.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::hooks::SpecState;

/// The runtime-spec's "container process state" sent with the fd.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessState<'a> {
    oci_version: &'a str,
    fds: [&'a str; 1],
    pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a str>,
    state: &'a SpecState,
}

/// The container process state JSON for the listener: `pid` is the process
/// that loaded the filter, as seen by the runtime; `metadata` is
/// linux.seccomp.listenerMetadata; the one fd sent is named "seccompFd".
pub fn process_state_json(pid: i32, state: &SpecState, metadata: Option<&str>) -> Result<Vec<u8>> {
    let msg = ProcessState {
        oci_version: &state.oci_version,
        fds: ["seccompFd"],
        pid,
        metadata,
        state,
    };
    serde_json::to_vec(&msg).map_err(|e| Error::step("seccomp listener state", e.to_string()))
}

/// Connect to the agent's socket and send `process_state_json` with the
/// notify `fd` attached by SCM_RIGHTS to the first sendmsg (the rest of the
/// JSON, if the socket takes it in pieces, follows without fds), then close
/// the connection: one state per connection, as the runtime-spec asks.
pub fn send_to_listener(path: &Path, fd: BorrowedFd, process_state_json: &[u8]) -> Result<()> {
    let step = || {
        format!(
            "linux.seccomp.listenerPath: send the seccomp fd to {}",
            path.display()
        )
    };
    let mut stream = UnixStream::connect(path).map_err(|e| Error::os(step(), e))?;
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(process_state_json)];
    let sent = loop {
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.map_err(|e| Error::os(step(), e))?,
        }
    };
    stream
        .write_all(&process_state_json[sent..])
        .map_err(|e| Error::os(step(), e))
}

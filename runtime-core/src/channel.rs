//! The parent↔child channel: one SOCK_SEQPACKET socketpair carrying typed
//! messages (JSON, one per packet) and, where needed, fds by SCM_RIGHTS.
//!
//! The protocol between `husk create` (parent) and the container's init
//! (child), in order. Every step where the child can fail may be answered
//! with `Error` instead, after which the child exits.
//!
//! | step | who sends        | message       | meaning                                          |
//! |------|------------------|---------------|--------------------------------------------------|
//! | 0    | child            | `MapIds`      | second-fork path only: the child unshared its    |
//! |      |                  |               | user namespace, please write its maps            |
//! | 1    | parent           | `IdsMapped`   | uid/gid maps written (only with a new user ns)   |
//! | 1b   | parent           | `CgroupsJoined` | placed in every cgroup (only when the child    |
//! |      |                  |               | makes its cgroup namespace after placement)      |
//! | 2    | child            | `Hooks`       | mounts done, before pivot: run prestart and      |
//! |      |                  |               | createRuntime hooks (only if there are any)      |
//! | 3    | parent           | `HooksDone`   | those hooks succeeded (reply to step 2)          |
//! | 3b   | child            | `SeccompFd`   | with the seccomp notify fd attached (only with   |
//! |      |                  |               | SCMP_ACT_NOTIFY): for linux.seccomp.listenerPath |
//! | 4    | child            | `Ready`       | set up, waiting for `start` on the start socket  |
//! | 4'   | child            | `Error`       | step and cause of a failure; child exits         |
//! | 5    | intermediate     | `Pid`         | only when a second fork was needed: the pid of   |
//! |      |                  |               | the real init, sent before any other message     |
//!
//! After `Ready` the channel is closed; `husk start` talks to the init over
//! the start socket instead (see `init`).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest message: an error text, bounded.
const MAX_PACKET: usize = 16 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    MapIds,
    IdsMapped,
    CgroupsJoined,
    Hooks,
    HooksDone,
    Ready,
    SeccompFd,
    Pid(i32),
    Error { step: String, reason: String },
}

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::os("create parent-child socketpair", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Message) -> io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        send_packet(self.fd.as_raw_fd(), &bytes, &[])
    }

    /// Send `msg` with `fd` attached.
    pub fn send_fd(&self, msg: &Message, fd: std::os::fd::BorrowedFd) -> io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        send_packet(self.fd.as_raw_fd(), &bytes, &[fd.as_raw_fd()])
    }

    /// Receive the next message; `Ok(None)` when the peer closed its end.
    pub fn recv(&self) -> io::Result<Option<Message>> {
        Ok(self.recv_with_fds()?.map(|(msg, _)| msg))
    }

    /// Receive the next message and the fds that came with it.
    pub fn recv_with_fds(&self) -> io::Result<Option<(Message, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut fds = Vec::new();
        let n = recv_packet(self.fd.as_raw_fd(), &mut buf, &mut fds)?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(|msg| Some((msg, fds)))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Send one packet, with `fds` attached by SCM_RIGHTS.
pub fn send_packet(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsgs };
    loop {
        match sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receive one packet into `buf`; fds that came with it are appended to `fds`.
pub fn recv_packet(sock: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = loop {
        match recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::Error::EINTR) => continue,
            other => break other?,
        }
    };
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for fd in received {
                // SAFETY: SCM_RIGHTS installed these fds in our table for us.
                fds.push(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
            }
        }
    }
    Ok(msg.bytes)
}

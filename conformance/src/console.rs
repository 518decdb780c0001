//! The receiving end of runc's `--console-socket`: the runtime connects to a
//! unix socket and sends the pseudoterminal master as SCM_RIGHTS.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A bound console socket waiting for the runtime.
pub struct ConsoleSocket {
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> Result<ConsoleSocket, String> {
        let listener =
            UnixListener::bind(path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(ConsoleSocket { listener })
    }

    /// Accepts the runtime's connection and returns the pty master it sent.
    pub fn receive_master(&self, limit: Duration) -> Result<File, String> {
        let stream = self.accept(limit)?;
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(limit))
            .map_err(|e| e.to_string())?;
        recv_fd(&stream)
    }

    fn accept(&self, limit: Duration) -> Result<UnixStream, String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => return Ok(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(format!("no connection on the console socket: {e}")),
            }
        }
    }
}

/// Receives one file descriptor passed with SCM_RIGHTS.
fn recv_fd(stream: &UnixStream) -> Result<File, String> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for a handful of descriptors; only the first is kept.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the declared sizes.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!(
            "recvmsg on the console socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    first_fd(&msg)
        .ok_or_else(|| "the runtime sent no file descriptor on the console socket".to_string())
}

fn first_fd(msg: &libc::msghdr) -> Option<File> {
    // SAFETY: the CMSG macros walk the control buffer filled in by recvmsg.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(File::from_raw_fd(fd));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// Reads a pty master until the slave side is closed (EIO) or the limit passes.
pub fn read_until_closed(master: &mut File, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if !poll_readable(master.as_raw_fd(), 50) {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn poll_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n > 0
}

//! process.terminal: a pty made inside the container's own devpts, its master
//! sent to the caller over `--console-socket`, its slave made the process's
//! controlling terminal and bound onto /dev/console by fd (design.md §2).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::channel::send_packet;
use crate::error::{Context, Error, Result};

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Connect to the console socket (in `husk create`, before anything is made,
/// so a missing socket fails early and leaves nothing behind).
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    let stream = UnixStream::connect(path)
        .step(|| format!("--console-socket {}: connect", path.display()))?;
    Ok(OwnedFd::from(stream))
}

/// In the init, after pivot_root: make the pty, hand its master to the console
/// socket, and make the slave the controlling terminal and stdio.
pub fn setup(
    console_socket: BorrowedFd,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> Result<()> {
    let master = open_ptmx()?;
    unlock(&master)?;
    let slave = peer(&master)?;
    if let Some((rows, cols)) = size {
        set_size(&slave, rows, cols)?;
    }
    if bind_console {
        crate::rootfs::bind_console(slave.as_fd())?;
    }
    send_packet(
        console_socket.as_raw_fd(),
        b"/dev/ptmx",
        &[master.as_raw_fd()],
    )
    .step(|| "send the pty master to --console-socket".into())?;
    drop(master);
    make_controlling(&slave)
}

fn open_ptmx() -> Result<OwnedFd> {
    use rustix::fs::OFlags;
    let fd = crate::rootfs::open_in_root(Path::new("/dev/ptmx"), OFlags::RDWR | OFlags::NOCTTY)?;
    verify_devpts(&fd, "/dev/ptmx")?;
    Ok(fd)
}

/// The pty must come from a devpts, not from a file the image put there.
fn verify_devpts(fd: &OwnedFd, what: &str) -> Result<()> {
    let fs = nix::sys::statfs::fstatfs(fd).step(|| format!("statfs {what}"))?;
    if fs.filesystem_type().0 as i64 != DEVPTS_SUPER_MAGIC {
        return Err(Error::step(
            format!("open {what}"),
            "not on a devpts filesystem",
        ));
    }
    Ok(())
}

fn unlock(master: &OwnedFd) -> Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int, which lives for the call.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    if ret != 0 {
        return Err(Error::os("unlock pty", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The slave, opened from the master itself (TIOCGPTPEER): no path lookup.
fn peer(master: &OwnedFd) -> Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd < 0 {
        return Err(Error::os("open pty slave", std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    verify_devpts(&slave, "pty slave")?;
    Ok(slave)
}

fn set_size(tty: &OwnedFd, rows: u16, cols: u16) -> Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that lives for the call.
    let ret = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if ret != 0 {
        return Err(Error::os(
            "process.consoleSize",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn make_controlling(slave: &OwnedFd) -> Result<()> {
    nix::unistd::setsid().step(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY takes an int argument by value.
    let ret = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret != 0 {
        return Err(Error::os(
            "make the pty the controlling terminal",
            std::io::Error::last_os_error(),
        ));
    }
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard fds; both fds are valid.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(Error::os(
                "attach the pty to stdio",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Foreground `run` with a terminal: receive the pty master and copy between
/// it and husk's own stdio (in raw mode when stdin is a terminal) until the
/// container's side closes.
pub struct Relay {
    output: Option<std::thread::JoinHandle<()>>,
    saved: Option<nix::sys::termios::Termios>,
}

impl Relay {
    /// Wait for the master on `socket` in a thread, then relay.
    pub fn start(socket: UnixStream) -> Result<Relay> {
        let saved = make_stdin_raw();
        let output = std::thread::spawn(move || {
            let Ok(master) = receive_master(&socket) else {
                return;
            };
            copy_window_size(&master);
            let Ok(input_side) = master.try_clone() else {
                return;
            };
            std::thread::spawn(move || {
                copy(std::io::stdin().lock(), std::fs::File::from(input_side))
            });
            copy(std::fs::File::from(master), std::io::stdout().lock());
        });
        Ok(Relay {
            output: Some(output),
            saved,
        })
    }

    /// Wait for the container's output to drain and restore the terminal.
    pub fn finish(mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

fn receive_master(socket: &UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut fds = Vec::new();
    crate::channel::recv_packet(socket.as_raw_fd(), &mut buf, &mut fds)
        .step(|| "receive the pty master".into())?;
    fds.into_iter()
        .next()
        .ok_or_else(|| Error::step("receive the pty master", "no fd came"))
}

fn make_stdin_raw() -> Option<nix::sys::termios::Termios> {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin).ok()?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw).ok()?;
    Some(saved)
}

/// Give the pty the size of husk's own terminal, if it has one.
fn copy_window_size(master: &OwnedFd) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize that lives for the call.
    if unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut size) } == 0 {
        // SAFETY: TIOCSWINSZ reads a winsize that lives for the call.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

fn copy(mut from: impl std::io::Read, mut to: impl std::io::Write) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() || to.flush().is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: the pty's slave side closed (the container exited).
            Err(_) => return,
        }
    }
}

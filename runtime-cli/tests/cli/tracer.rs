//! A minimal ptrace driver for the exec security tests: it runs `husk` under
//! ptrace and stops the first process husk forks (the process `exec` puts
//! into the container) at the entry of its execve(2)/execveat(2). That is
//! the last instant at which the process is still husk code inside the
//! container, already switched to the container's user and capabilities:
//! the window CVE-2016-9962 and CVE-2019-5736 attacked. Nothing is written
//! to the tracees' memory or registers; they are only held and released.
//!
//! All ptrace requests come from the thread that spawned husk (the tracer),
//! and every wait names its pid, so children the test starts meanwhile are
//! not reaped here.

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// PTRACE_GET_SYSCALL_INFO (Linux 5.3) and its `op` for a syscall entry.
const GET_SYSCALL_INFO: libc::c_uint = 0x420e;
const SYSCALL_INFO_ENTRY: u8 = 1;

/// `struct ptrace_syscall_info` with room for its largest union member.
#[repr(C)]
#[derive(Default)]
struct SyscallInfo {
    op: u8,
    pad: [u8; 3],
    arch: u32,
    instruction_pointer: u64,
    stack_pointer: u64,
    nr: u64,
    args: [u64; 6],
    rest: [u64; 2],
}

fn ptrace(req: libc::c_uint, pid: i32, addr: usize, data: usize) -> Result<i64, String> {
    // SAFETY: every request used here takes integers, or (GETEVENTMSG,
    // GET_SYSCALL_INFO) a pointer to a live buffer of the size passed.
    let rc = unsafe { libc::ptrace(req, pid, addr, data) };
    if rc < 0 {
        return Err(format!(
            "ptrace({req:#x}, {pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(rc)
}

/// waitpid(pid, WNOHANG | __WALL): Some(raw status) when it changed.
fn try_wait(pid: i32) -> Result<Option<i32>, String> {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
    match rc {
        0 => Ok(None),
        r if r == pid => Ok(Some(status)),
        _ => Err(format!(
            "waitpid({pid}): {}",
            std::io::Error::last_os_error()
        )),
    }
}

fn event_msg(pid: i32) -> Result<i32, String> {
    let mut msg: libc::c_ulong = 0;
    ptrace(
        libc::PTRACE_GETEVENTMSG,
        pid,
        0,
        &mut msg as *mut libc::c_ulong as usize,
    )?;
    Ok(msg as i32)
}

fn syscall_info(pid: i32) -> Result<SyscallInfo, String> {
    let mut info = SyscallInfo::default();
    ptrace(
        GET_SYSCALL_INFO,
        pid,
        std::mem::size_of::<SyscallInfo>(),
        &mut info as *mut SyscallInfo as usize,
    )?;
    Ok(info)
}

fn describe_status(status: i32) -> String {
    let s = ExitStatus::from_raw(status);
    format!("{s}")
}

/// What a status says about a stop: (signal, ptrace event).
fn stop_of(status: i32) -> Option<(i32, i32)> {
    if libc::WIFSTOPPED(status) {
        Some((libc::WSTOPSIG(status), (status >> 16) & 0xff))
    } else {
        None
    }
}

/// husk under ptrace, with the process it forked held at execve entry.
pub struct StoppedExec {
    husk: Child,
    /// Threads husk made, which are traced too and must be kept running.
    threads: Vec<i32>,
    /// Host pid of the process husk forked, in a ptrace stop.
    pub pid: i32,
    out: PathBuf,
    err: PathBuf,
    /// husk's exit status once this tracer has reaped it.
    exit: Option<ExitStatus>,
    /// The held process was detached.
    released: bool,
}

impl StoppedExec {
    /// Runs `husk ARGS` traced until the first process it forks is about to
    /// execve. The husk process itself keeps running (it waits for that
    /// process); its output goes to `dir/traced.{out,err}`.
    pub fn spawn(husk: &Path, args: &[&str], dir: &Path, limit: Duration) -> Result<Self, String> {
        let (out, err) = (dir.join("traced.out"), dir.join("traced.err"));
        let open =
            |p: &Path| fs::File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
        let mut cmd = Command::new(husk);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(open(&out)?)
            .stderr(open(&err)?)
            .process_group(0);
        // SAFETY: only ptrace(2) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0usize, 0usize) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn traced {}: {e}", husk.display()))?;
        let mut me = StoppedExec {
            pid: 0,
            husk: child,
            threads: Vec::new(),
            out,
            err,
            exit: None,
            released: false,
        };
        match me.run_to_exec(limit) {
            Ok(pid) => {
                me.pid = pid;
                Ok(me)
            }
            Err(e) => {
                let (_, stderr) = me.output();
                Err(format!("{e}; husk stderr: {}", stderr.trim()))
            }
        }
    }

    fn husk_pid(&self) -> i32 {
        self.husk.id() as i32
    }

    fn run_to_exec(&mut self, limit: Duration) -> Result<i32, String> {
        let deadline = Instant::now() + limit;
        let hp = self.husk_pid();
        // The stop after husk's own execve (PTRACE_TRACEME).
        let first = loop {
            if let Some(s) = try_wait(hp)? {
                break s;
            }
            if Instant::now() > deadline {
                return Err("husk did not stop after exec".into());
            }
            sleep(Duration::from_millis(1));
        };
        if stop_of(first).map(|(sig, _)| sig) != Some(libc::SIGTRAP) {
            return Err(format!(
                "husk did not stop at exec: {}",
                describe_status(first)
            ));
        }
        let options = libc::PTRACE_O_EXITKILL
            | libc::PTRACE_O_TRACESYSGOOD
            | libc::PTRACE_O_TRACEFORK
            | libc::PTRACE_O_TRACEVFORK
            | libc::PTRACE_O_TRACECLONE
            | libc::PTRACE_O_TRACEEXEC;
        ptrace(libc::PTRACE_SETOPTIONS, hp, 0, options as usize)?;
        ptrace(libc::PTRACE_CONT, hp, 0, 0)?;
        let mut target: Option<i32> = None;
        let mut syscall_traced = false;
        while Instant::now() < deadline {
            if let Some(status) = self.service_husk(&mut target)? {
                return Err(format!(
                    "husk exited ({status}) before a process it forked reached execve"
                ));
            }
            self.service_threads()?;
            if let Some(t) = target {
                if let Some(s) = try_wait(t)? {
                    let Some((sig, event)) = stop_of(s) else {
                        return Err(format!(
                            "the forked process {t} ended before execve: {}",
                            describe_status(s)
                        ));
                    };
                    let inject = if sig == libc::SIGTRAP | 0x80 {
                        let info = syscall_info(t)?;
                        let nr = info.nr as i64;
                        if info.op == SYSCALL_INFO_ENTRY
                            && (nr == libc::SYS_execve || nr == libc::SYS_execveat)
                        {
                            return Ok(t);
                        }
                        0
                    } else if event != 0 || (sig == libc::SIGSTOP && !syscall_traced) {
                        0
                    } else {
                        sig
                    };
                    syscall_traced = true;
                    ptrace(libc::PTRACE_SYSCALL, t, 0, inject as usize)?;
                }
            }
            sleep(Duration::from_micros(200));
        }
        Err(format!(
            "no process forked by husk reached execve within {limit:?} (forked: {target:?})"
        ))
    }

    /// Keeps husk running: events and signals are passed on; a fork is
    /// remembered as the target (the first one only). Some(status) once
    /// husk has exited.
    fn service_husk(&mut self, target: &mut Option<i32>) -> Result<Option<ExitStatus>, String> {
        if let Some(status) = self.exit {
            return Ok(Some(status));
        }
        let hp = self.husk_pid();
        let Some(s) = try_wait(hp)? else {
            return Ok(None);
        };
        let Some((sig, event)) = stop_of(s) else {
            let status = ExitStatus::from_raw(s);
            self.exit = Some(status);
            return Ok(Some(status));
        };
        let mut inject = 0;
        if event == libc::PTRACE_EVENT_FORK || event == libc::PTRACE_EVENT_VFORK {
            let new = event_msg(hp)?;
            if target.is_none() {
                *target = Some(new);
            }
        } else if event == libc::PTRACE_EVENT_CLONE {
            self.threads.push(event_msg(hp)?);
        } else if event == 0 && sig != libc::SIGTRAP {
            inject = sig;
        }
        ptrace(libc::PTRACE_CONT, hp, 0, inject as usize)?;
        Ok(None)
    }

    fn service_threads(&mut self) -> Result<(), String> {
        let mut gone = Vec::new();
        for &t in &self.threads {
            match try_wait(t) {
                Ok(Some(s)) => match stop_of(s) {
                    Some((sig, event)) => {
                        let inject = if event != 0 || sig == libc::SIGSTOP || sig == libc::SIGTRAP {
                            0
                        } else {
                            sig
                        };
                        let _ = ptrace(libc::PTRACE_CONT, t, 0, inject as usize);
                    }
                    None => gone.push(t),
                },
                Ok(None) => {}
                Err(_) => gone.push(t),
            }
        }
        self.threads.retain(|t| !gone.contains(t));
        Ok(())
    }

    /// The held process's pid in its own (the container's) pid namespace.
    pub fn ns_pid(&self) -> Result<u32, String> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("read /proc/{}/status: {e}", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|v| v.split_whitespace().last())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no NSpid for {}", self.pid))
    }

    /// Lets the held process run its execve and stops it again right after
    /// (PTRACE_EVENT_EXEC): it then runs the new program image, not started
    /// yet. Errors if it exits first (the execve failed).
    pub fn continue_past_exec(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let t = self.pid;
        ptrace(libc::PTRACE_CONT, t, 0, 0)?;
        let mut ignored = None;
        while Instant::now() < deadline {
            // husk may return meanwhile: exec -d ends once its process exec'd.
            self.service_husk(&mut ignored)?;
            self.service_threads()?;
            if let Some(s) = try_wait(t)? {
                let Some((sig, event)) = stop_of(s) else {
                    return Err(format!(
                        "the exec'd process ended before its exec stop: {}",
                        describe_status(s)
                    ));
                };
                if event == libc::PTRACE_EVENT_EXEC {
                    return Ok(());
                }
                let inject = if event != 0 || sig == libc::SIGTRAP {
                    0
                } else {
                    sig
                };
                ptrace(libc::PTRACE_CONT, t, 0, inject as usize)?;
            }
            sleep(Duration::from_micros(200));
        }
        Err(format!("no exec stop within {limit:?}"))
    }

    /// Detaches from the held process (it carries on with its execve) and
    /// keeps husk running until it exits; returns husk's exit status.
    pub fn release(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        ptrace(libc::PTRACE_DETACH, self.pid, 0, 0)?;
        self.released = true;
        let deadline = Instant::now() + limit;
        let mut ignored = None;
        while Instant::now() < deadline {
            if let Some(status) = self.service_husk(&mut ignored)? {
                return Ok(status);
            }
            self.service_threads()?;
            sleep(Duration::from_micros(500));
        }
        Err(format!(
            "husk did not exit within {limit:?} after the release"
        ))
    }

    /// husk's stdout and stderr so far.
    pub fn output(&self) -> (String, String) {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        (read(&self.out), read(&self.err))
    }
}

impl Drop for StoppedExec {
    fn drop(&mut self) {
        // SAFETY: kill(2) and waitpid(2) on our own tracees.
        unsafe {
            if self.pid > 0 && !self.released {
                libc::kill(self.pid, libc::SIGKILL);
            }
            if self.exit.is_none() {
                libc::kill(-self.husk_pid(), libc::SIGKILL);
                libc::kill(self.husk_pid(), libc::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut pids = Vec::new();
        if self.exit.is_none() {
            pids.push(self.husk_pid());
        }
        if self.pid > 0 && !self.released {
            pids.push(self.pid);
        }
        pids.extend(self.threads.iter().copied());
        while !pids.is_empty() && Instant::now() < deadline {
            pids.retain(|&p| match try_wait(p) {
                Ok(Some(s)) => stop_of(s).is_some(),
                Ok(None) => true,
                Err(_) => false,
            });
            sleep(Duration::from_millis(2));
        }
    }
}

//! Drives a runtime through the runc command line:
//! `RUNTIME [--root DIR] [global args] COMMAND ...`.
//!
//! Every call has a time limit and captures stdout/stderr through files rather
//! than pipes: a container that inherits the runtime's stdout would otherwise
//! keep a pipe open and block the reader forever.

use crate::bundle::Bundle;
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long one runtime command may take before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A runc-compatible runtime binary plus the global flags to pass it.
#[derive(Debug, Clone)]
pub struct Runtime {
    path: PathBuf,
    root: Option<PathBuf>,
    global: Vec<String>,
    timeout: Duration,
}

/// What one runtime command did.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit code, when the runtime exited normally.
    pub code: Option<i32>,
    /// Terminating signal, when it was killed.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Set when the command could not be run or was killed at the time limit.
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.error.is_none() && self.code == Some(0)
    }

    /// A one-line account of a failure for test reports.
    pub fn describe(&self) -> String {
        let status = match (&self.error, self.code, self.signal) {
            (Some(e), _, _) => e.clone(),
            (None, Some(c), _) => format!("exit status {c}"),
            (None, None, Some(s)) => format!("killed by signal {s}"),
            (None, None, None) => "no status".to_string(),
        };
        let stderr = last_line(&self.stderr);
        if stderr.is_empty() {
            status
        } else {
            format!("{status}: {stderr}")
        }
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// Per-call settings beyond the arguments.
#[derive(Debug, Default, Clone)]
pub struct Call {
    /// Bytes for the runtime's stdin (default: /dev/null).
    pub stdin: Option<Vec<u8>>,
    /// Files for stdout/stderr instead of anonymous capture; they stay
    /// readable after the command, which a created container may write to.
    pub stdout_path: Option<PathBuf>,
    pub stderr_path: Option<PathBuf>,
    /// umask for the runtime process, to observe what the container inherits.
    pub umask: Option<u32>,
    /// oom_score_adj for the runtime process, for the same reason.
    pub oom_score_adj: Option<i32>,
    pub cwd: Option<PathBuf>,
}

impl Runtime {
    pub fn new(path: impl Into<PathBuf>) -> Runtime {
        Runtime {
            path: path.into(),
            root: None,
            global: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The state directory (`--root`); use a private one per run.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Runtime {
        self.root = Some(dir.into());
        self
    }

    /// Extra global flags placed before the command (e.g. `--log F`).
    pub fn global_args(mut self, args: &[&str]) -> Runtime {
        self.global.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn timeout(mut self, limit: Duration) -> Runtime {
        self.timeout = limit;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `RUNTIME [--root R] [global] args...` and waits for it.
    pub fn invoke(&self, args: &[&str], call: &Call) -> Output {
        let started = Instant::now();
        let mut out = match self.spawn_and_wait(args, call) {
            Ok(out) => out,
            Err(e) => Output {
                error: Some(e),
                ..Output::default()
            },
        };
        out.elapsed = started.elapsed();
        out
    }

    /// Shorthand for a call with default settings.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.invoke(args, &Call::default())
    }

    fn spawn_and_wait(&self, args: &[&str], call: &Call) -> Result<Output, String> {
        let stdout = open_capture(call.stdout_path.as_deref())?;
        let stderr = open_capture(call.stderr_path.as_deref())?;
        let mut command = self.command(args, call)?;
        command
            .stdout(clone_file(&stdout)?)
            .stderr(clone_file(&stderr)?);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.path.display()))?;
        drop(command);
        let status = wait_with_timeout(&mut child, self.timeout);
        let mut out = Output {
            stdout: read_all(&stdout),
            stderr: read_all(&stderr),
            ..Output::default()
        };
        match status {
            Some(s) => {
                out.code = s.code();
                out.signal = s.signal();
            }
            None => out.error = Some(format!("timed out after {:?}", self.timeout)),
        }
        Ok(out)
    }

    fn command(&self, args: &[&str], call: &Call) -> Result<Command, String> {
        let mut command = Command::new(&self.path);
        if let Some(root) = &self.root {
            command.arg("--root").arg(root);
        }
        command.args(&self.global).args(args);
        command.stdin(match &call.stdin {
            Some(bytes) => Stdio::from(stdin_file(bytes)?),
            None => Stdio::null(),
        });
        if let Some(dir) = &call.cwd {
            command.current_dir(dir);
        }
        // Own process group: on timeout the runtime and its helpers die together.
        command.process_group(0);
        let (umask, oom) = (call.umask, call.oom_score_adj);
        if umask.is_some() || oom.is_some() {
            // SAFETY: the closure runs between fork and exec and only makes
            // async-signal-safe system calls on stack data.
            unsafe {
                command.pre_exec(move || {
                    if let Some(m) = umask {
                        libc::umask(m as libc::mode_t);
                    }
                    if let Some(adj) = oom {
                        write_oom_score_adj(adj);
                    }
                    Ok(())
                });
            }
        }
        Ok(command)
    }

    /// `create --bundle DIR ID`; the container's stdio goes to
    /// `DIR/stdout` and `DIR/stderr`, which outlive the command.
    pub fn create(&self, bundle: &Bundle, id: &str) -> Output {
        self.create_with(bundle, id, &[])
    }

    /// `create` with extra flags such as `--pid-file F` or `--console-socket S`.
    pub fn create_with(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.bundle_command("create", bundle, id, extra, Call::default())
    }

    /// `run --bundle DIR ID` in the foreground: returns when the container exits,
    /// with the container's output in `Output::stdout`.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        self.run_with(bundle, id, &[])
    }

    pub fn run_with(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.bundle_command("run", bundle, id, extra, Call::default())
    }

    /// `create` or `run` with extra flags and call settings (umask, stdin...);
    /// the output paths and working directory are always the bundle's.
    pub fn bundle_command(
        &self,
        verb: &str,
        bundle: &Bundle,
        id: &str,
        extra: &[&str],
        call: Call,
    ) -> Output {
        if let Err(e) = bundle.write_config() {
            return Output {
                error: Some(format!("writing config.json: {e}")),
                ..Output::default()
            };
        }
        let dir = bundle.dir.to_string_lossy().into_owned();
        let mut args = vec![verb, "--bundle", &dir];
        args.extend_from_slice(extra);
        args.push(id);
        let call = Call {
            stdout_path: Some(bundle.dir.join("stdout")),
            stderr_path: Some(bundle.dir.join("stderr")),
            cwd: Some(bundle.dir.clone()),
            ..call
        };
        self.invoke(&args, &call)
    }

    pub fn start(&self, id: &str) -> Output {
        self.cmd(&["start", id])
    }

    pub fn state(&self, id: &str) -> Output {
        self.cmd(&["state", id])
    }

    /// `state ID` parsed as JSON.
    pub fn state_json(&self, id: &str) -> Result<Value, String> {
        let out = self.state(id);
        if !out.success() {
            return Err(format!("state {id}: {}", out.describe()));
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| format!("state {id}: invalid JSON ({e}): {}", out.stdout.trim()))
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.cmd(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.cmd(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.cmd(&["delete", "--force", id])
    }

    /// `exec --process FILE ID` in the foreground.
    pub fn exec_process(&self, id: &str, process_file: &Path) -> Output {
        let file = process_file.to_string_lossy().into_owned();
        self.cmd(&["exec", "--process", &file, id])
    }

    /// Polls `state` until the status is `want` or the limit passes.
    pub fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.state_json(id)?;
            if state["status"] == want {
                return Ok(state);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "status stayed {} instead of becoming {want}",
                    state["status"]
                ));
            }
            sleep(Duration::from_millis(10));
        }
    }
}

/// Capture target: a named file, or an anonymous in-memory file.
fn open_capture(path: Option<&Path>) -> Result<File, String> {
    match path {
        Some(p) => File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .map_err(|e| format!("open {}: {e}", p.display())),
        None => memfd("capture"),
    }
}

fn memfd(name: &str) -> Result<File, String> {
    let cname = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: memfd_create takes a valid C string and returns a new fd we own.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn stdin_file(bytes: &[u8]) -> Result<File, String> {
    let mut f = memfd("stdin")?;
    f.write_all(bytes).map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok(f)
}

fn clone_file(f: &File) -> Result<File, String> {
    f.try_clone().map_err(|e| format!("dup: {e}"))
}

fn read_all(f: &File) -> String {
    let mut f = f;
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Waits for the child; on timeout kills its process group and returns None.
pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            _ => break,
        }
    }
    // SAFETY: kill(2) on our child's process group; no memory is touched.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Writes /proc/self/oom_score_adj with raw system calls (used after fork).
fn write_oom_score_adj(adj: i32) {
    let mut buf = [0u8; 16];
    let text = format_i32(adj, &mut buf);
    let path = c"/proc/self/oom_score_adj";
    // SAFETY: path is a valid C string and buf outlives the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, text.as_ptr().cast(), text.len());
            libc::close(fd);
        }
    }
}

/// Formats without allocating, for use between fork and exec.
fn format_i32(n: i32, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    let neg = n < 0;
    let mut v = (n as i64).unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_integers_without_allocating() {
        let mut buf = [0u8; 16];
        assert_eq!(format_i32(-1000, &mut buf), b"-1000");
        assert_eq!(format_i32(0, &mut buf), b"0");
        assert_eq!(format_i32(i32::MIN, &mut buf), b"-2147483648");
    }

    #[test]
    fn captures_output_and_exit_code() {
        let rt = Runtime::new("/bin/sh");
        let out = rt.cmd(&["-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.describe(), "exit status 3: err");
    }

    #[test]
    fn kills_at_time_limit() {
        let rt = Runtime::new("/bin/sleep").timeout(Duration::from_millis(100));
        let out = rt.cmd(&["5"]);
        assert!(out.error.is_some_and(|e| e.contains("timed out")));
    }
}

//! Peak RSS of one command, measured from a small launcher process.
//!
//! `ru_maxrss` of a child also covers the memory it had before its `exec`: a
//! child forked from the benchmark would report the benchmark's own resident
//! anonymous memory if that is larger. So the benchmark re-executes itself as
//! `lifecycle --rss-launcher REPORT PROGRAM ARGS...`, a fresh process that
//! forks a child which immediately execs PROGRAM, collects it with `wait4` and
//! writes `ru_maxrss` (KiB) to REPORT. Its exit status is the child's.

use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use crate::process::{self, Failure};

pub const FLAG: &str = "--rss-launcher";

/// Runs `argv` through the launcher; returns its peak RSS in KiB.
pub fn peak_rss(argv: &[String], report: &Path, stderr_log: &Path) -> Result<u64, Failure> {
    let launcher =
        std::env::current_exe().map_err(|err| Failure::other("current_exe", err.to_string()))?;
    let mut launch = vec![launcher.to_string_lossy().into_owned(), FLAG.to_string()];
    launch.push(report.to_string_lossy().into_owned());
    launch.extend_from_slice(argv);
    process::timed_run(&launch, stderr_log)?;
    let text = fs::read_to_string(report)
        .map_err(|err| Failure::other(report.display().to_string(), err.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| Failure::other("RSS launcher", format!("bad report {:?}", text.trim())))
}

/// Entry point of `lifecycle --rss-launcher REPORT PROGRAM ARGS...`.
pub fn main(args: &[OsString]) -> ExitCode {
    match launch(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lifecycle {FLAG}: {err}");
            ExitCode::from(125)
        }
    }
}

fn launch(args: &[OsString]) -> Result<ExitCode, String> {
    let [report, program, ..] = args else {
        return Err("usage: lifecycle --rss-launcher REPORT PROGRAM [ARGS...]".to_string());
    };
    let argv = c_strings(&args[1..])?;
    let (status, max_rss_kib) =
        spawn_and_wait(&argv).map_err(|err| format!("{}: {err}", program.to_string_lossy()))?;
    fs::write(report, format!("{max_rss_kib}\n"))
        .map_err(|err| format!("cannot write report: {err}"))?;
    Ok(exit_code(status))
}

fn c_strings(args: &[OsString]) -> Result<Vec<CString>, String> {
    args.iter()
        .map(|arg| CString::new(arg.as_bytes()).map_err(|_| format!("NUL byte in {arg:?}")))
        .collect()
}

/// fork, exec in the child, wait4 in the parent: (wait status, ru_maxrss).
fn spawn_and_wait(argv: &[CString]) -> io::Result<(i32, i64)> {
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: this process is single-threaded; the child only calls execvp and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: NUL-terminated array of C strings that outlive the call.
        unsafe {
            libc::execvp(pointers[0], pointers.as_ptr());
            libc::_exit(127);
        }
    }
    wait4(pid)
}

fn wait4(pid: libc::pid_t) -> io::Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to a status and a rusage.
        if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } == pid {
            return Ok((status, usage.ru_maxrss));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn exit_code(status: i32) -> ExitCode {
    if libc::WIFEXITED(status) {
        ExitCode::from(u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1))
    } else {
        ExitCode::from(128 + u8::try_from(libc::WTERMSIG(status)).unwrap_or(0).min(127))
    }
}

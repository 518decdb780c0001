//! `husk exec` end to end, as containerd's shim, `docker exec` and health
//! checks use it: the exec'd process joins the init's namespaces and
//! cgroups, gets the user, capabilities, environment and cwd asked for,
//! reports its exit status (128+signal when killed, 255 when it cannot
//! start, as runc), gets signals forwarded, a pty through a console socket,
//! a pid file when detached, and nothing of husk: no fd, no ptrace window
//! before its execve, no writable /proc/<pid>/exe. The last test runs the
//! same setups under runc and compares what the exec'd process sees.

use crate::common::*;
use crate::tracer::StoppedExec;
use conformance::console::{read_until_closed, ConsoleSocket};
use conformance::host;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "exec.namespaces_match_init",
            run: namespaces_match_init,
        },
        Test {
            name: "exec.cgroups_match_init",
            run: cgroups_match_init,
        },
        Test {
            name: "exec.user_groups_caps",
            run: user_groups_caps,
        },
        Test {
            name: "exec.env",
            run: env,
        },
        Test {
            name: "exec.cwd",
            run: cwd,
        },
        Test {
            name: "exec.exit_codes",
            run: exit_codes,
        },
        Test {
            name: "exec.killed_from_host",
            run: killed_from_host,
        },
        Test {
            name: "exec.forwards_signals",
            run: forwards_signals,
        },
        Test {
            name: "exec.tty_console_socket",
            run: tty_console_socket,
        },
        Test {
            name: "exec.detach_pid_file",
            run: detach_pid_file,
        },
        Test {
            name: "exec.stdin_piped",
            run: stdin_piped,
        },
        Test {
            name: "exec.parallel_20",
            run: parallel_20,
        },
        Test {
            name: "exec.after_update",
            run: after_update,
        },
        Test {
            name: "exec.paused_refused",
            run: paused_refused,
        },
        Test {
            name: "exec.stopped_refused",
            run: stopped_refused,
        },
        Test {
            name: "exec.missing_binary",
            run: missing_binary,
        },
        Test {
            name: "exec.bad_user",
            run: bad_user,
        },
        Test {
            name: "exec.process_file",
            run: process_file,
        },
        Test {
            name: "exec.preserve_fds",
            run: preserve_fds,
        },
        Test {
            name: "exec.no_husk_fd_inside",
            run: no_husk_fd_inside,
        },
        Test {
            name: "exec.not_dumpable_before_exec",
            run: not_dumpable_before_exec,
        },
        Test {
            name: "exec.user_namespace",
            run: user_namespace,
        },
        Test {
            name: "exec.differential_vs_runc",
            run: differential_vs_runc,
        },
    ]
}

pub(crate) const LIMIT: Duration = Duration::from_secs(5);

/// The capabilities of `husk spec`'s process.
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The shell's own credentials.
const STATUS: &str =
    "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/$$/status";

// ------------------------------------------------------------------ helpers

/// Waits until `pid` runs `comm`.
pub(crate) fn wait_comm(pid: u32, comm: &str) -> Result<(), String> {
    ensure(
        wait_until(LIMIT, || {
            read_proc(pid, "comm").is_ok_and(|c| c.trim() == comm)
        }),
        format!(
            "process {pid} did not exec {comm} (comm {:?})",
            read_proc(pid, "comm").unwrap_or_default().trim()
        ),
    )
}

/// A started container whose init sleeps: (bundle, id, init pid).
pub(crate) fn running(
    ctx: &mut Ctx,
    edit: impl FnOnce(&mut Bundle),
) -> Result<(Bundle, String, u32), String> {
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "1000"]);
    edit(&mut b);
    let (id, pid) = ctx.start_new(&b)?;
    wait_comm(pid, "sleep")?;
    Ok((b, id, pid))
}

/// `husk exec ARGS` in the foreground, stdin /dev/null.
pub(crate) fn exec(ctx: &Ctx, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    ctx.husk.cmd(&all)
}

/// `husk exec ARGS`; its stdout when it exits 0.
pub(crate) fn exec_ok(ctx: &Ctx, args: &[&str]) -> Result<String, String> {
    let out = exec(ctx, args);
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "exec {args:?}: {}; stdout: {}",
            describe(&out),
            out.stdout.trim()
        ))
    }
}

/// `husk exec -d --pid-file F EXTRA ID CMD...`; the process's host pid,
/// after checking the pid file names a live process.
pub(crate) fn exec_detached(
    ctx: &mut Ctx,
    id: &str,
    extra: &[&str],
    cmd: &[&str],
) -> Result<u32, String> {
    let pid_file = ctx.scratch("exec-pid")?.join("pid");
    let pf = pid_file.to_string_lossy().into_owned();
    let mut args = vec!["-d", "--pid-file", &pf];
    args.extend_from_slice(extra);
    args.push(id);
    args.extend_from_slice(cmd);
    let out = exec(ctx, &args);
    expect_ok(&out, &format!("exec {args:?}"))?;
    read_pid_file(&pid_file)
}

pub(crate) fn read_pid_file(path: &Path) -> Result<u32, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("read pid file {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("pid file {}: {text:?}: {e}", path.display()))
}

/// runc's contract for an exec that cannot happen: exit status 255, a
/// `husk: exec: …` line naming every needle (`a|b` = either), the same
/// message as the last error line of `--log`. Returns the message.
pub(crate) fn expect_exec_refused(
    ctx: &Ctx,
    out: &Output,
    needles: &[&str],
) -> Result<String, String> {
    if let Some(e) = &out.error {
        return Err(format!("husk exec: {e}"));
    }
    ensure(
        out.code == Some(255),
        format!(
            "husk exec exited {:?} (signal {:?}), expected 255 as runc: {}",
            out.code,
            out.signal,
            out.stderr.trim()
        ),
    )?;
    let line = out
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("husk: "))
        .ok_or_else(|| format!("no `husk: ` error line on stderr: {:?}", out.stderr))?;
    ensure(
        line.starts_with("husk: exec: "),
        format!("stderr does not start with \"husk: exec: \": {line}"),
    )?;
    let missing: Vec<&&str> = needles.iter().filter(|n| !contains_any(line, n)).collect();
    ensure(
        missing.is_empty(),
        format!("stderr does not name {missing:?}: {line}"),
    )?;
    let entry = ctx.last_log_entry()?;
    ensure(
        entry["level"] == "error"
            && line == format!("husk: {}", entry["msg"].as_str().unwrap_or("")),
        format!("--log does not carry the error as level error: {entry}"),
    )?;
    Ok(line.to_string())
}

/// The container's processes seen from the host, by comm, sorted.
fn container_comms(id: &str) -> Vec<String> {
    let mut v: Vec<String> = processes_of(id)
        .into_iter()
        .map(|(_, comm, _)| comm)
        .collect();
    v.sort();
    v
}

/// Every namespace link of a process, by name.
pub(crate) fn ns_links(pid: u32) -> Result<BTreeMap<String, String>, String> {
    let dir = format!("/proc/{pid}/ns");
    let mut map = BTreeMap::new();
    for e in fs::read_dir(&dir).map_err(|e| format!("read {dir}: {e}"))? {
        let name = e
            .map_err(|e| format!("read {dir}: {e}"))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        map.insert(name.clone(), host::ns_link(pid, &name)?);
    }
    Ok(map)
}

fn status_set(out: &str, key: &str) -> Result<BTreeSet<String>, String> {
    Ok(caps_of(out, key)?.into_iter().collect())
}

fn groups(out: &str) -> BTreeSet<String> {
    status_field(out, "Groups")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The husk binary a test runs as a copy, so that a test that tries to open
/// husk's binary for writing can never damage the real one.
pub(crate) struct HuskCopy {
    pub copy: PathBuf,
    original: PathBuf,
    /// (device, inode) of the original: a rebuild replaces the file, a
    /// write through /proc/<pid>/exe would not.
    original_id: (u64, u64),
    bytes: Vec<u8>,
}

/// Replaces the test's husk (commands and `spawn_husk`) with a copy of the
/// binary in the test's dir.
pub(crate) fn use_husk_copy(ctx: &mut Ctx) -> Result<HuskCopy, String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let original = ctx.husk_path.clone();
    let meta = fs::metadata(&original).map_err(|e| format!("stat {}: {e}", original.display()))?;
    let bytes = fs::read(&original).map_err(|e| format!("read {}: {e}", original.display()))?;
    let copy = ctx.scratch("husk-copy")?.join("husk");
    fs::write(&copy, &bytes).map_err(|e| format!("write {}: {e}", copy.display()))?;
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let log = ctx.log.to_string_lossy().into_owned();
    ctx.husk = Runtime::new(&copy)
        .root(&ctx.root)
        .global_args(&["--log", &log, "--log-format", "json"])
        .timeout(COMMAND_LIMIT);
    ctx.husk_path = copy.clone();
    Ok(HuskCopy {
        copy,
        original,
        original_id: (meta.dev(), meta.ino()),
        bytes,
    })
}

impl HuskCopy {
    /// Whether `path` holds husk's bytes (e.g. /proc/<pid>/exe of a process
    /// that runs husk).
    pub(crate) fn runs_husk(&self, path: &Path) -> bool {
        fs::read(path).is_ok_and(|b| b == self.bytes)
    }

    /// The copy the test ran, and the real binary, are byte-identical to
    /// what they were (the real one unless a build replaced it meanwhile).
    pub(crate) fn unchanged(&self, ctx: &mut Ctx) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let mut problems = Vec::new();
        let mut check = |what: &str, path: &Path| match fs::read(path) {
            Ok(now) if now == self.bytes => {}
            Ok(now) => problems.push(format!(
                "{what} {} changed: {} bytes, was {}",
                path.display(),
                now.len(),
                self.bytes.len()
            )),
            Err(e) => problems.push(format!("read {what} {}: {e}", path.display())),
        };
        check("the husk copy the test ran", &self.copy);
        match fs::metadata(&self.original) {
            Ok(m) if (m.dev(), m.ino()) == self.original_id => {
                check("the husk binary", &self.original)
            }
            _ => ctx.note(format!(
                "{} was rebuilt during the test; only the copy was compared",
                self.original.display()
            )),
        }
        all_ok(problems)
    }
}

// -------------------------------------------------------------------- tests

/// Every /proc/<pid>/ns link of the exec'd process is the init's, for a
/// container with pid, net, ipc, uts, mount, cgroup (and time) namespaces;
/// and those differ from the host's, so the comparison means something.
fn namespaces_match_init(ctx: &mut Ctx) -> TestResult {
    let has_time = Path::new("/proc/self/ns/time").exists();
    let (_b, id, init) = running(ctx, |b| {
        b.push("/linux/namespaces", json!({"type": "cgroup"}));
        if has_time {
            b.push("/linux/namespaces", json!({"type": "time"}));
        }
    })?;
    let pid = exec_detached(ctx, &id, &[], &["sleep", "100"])?;
    wait_comm(pid, "sleep")?;
    let (want, got) = (ns_links(init)?, ns_links(pid)?);
    let mine = ns_links(std::process::id())?;
    let mut problems = Vec::new();
    for (name, link) in &want {
        match got.get(name) {
            Some(l) if l == link => {}
            other => problems.push(format!("{name}: exec'd {other:?}, init {link}")),
        }
    }
    let mut own = vec!["cgroup", "ipc", "mnt", "net", "pid", "uts"];
    if has_time {
        own.push("time");
    }
    for name in own {
        if want.get(name) == mine.get(name) {
            problems.push(format!("{name}: the container is in the host's namespace"));
        }
    }
    if !has_time {
        ctx.note("no time namespaces on this kernel");
    }
    Ok(all_ok(problems)?)
}

/// The exec'd process is in the init's cgroup in every hierarchy, seen
/// from the host and from inside.
fn cgroups_match_init(ctx: &mut Ctx) -> TestResult {
    let (_b, id, init) = running(ctx, |_| {})?;
    let pid = exec_detached(ctx, &id, &[], &["sleep", "100"])?;
    wait_comm(pid, "sleep")?;
    let (want, got) = (read_proc(init, "cgroup")?, read_proc(pid, "cgroup")?);
    let mut problems = Vec::new();
    for h in ctx.hierarchies() {
        let (w, g) = (h.path_in(&want), h.path_in(&got));
        if w != g {
            problems.push(format!("{}: exec'd in {g:?}, init in {w:?}", h.label()));
        }
        if !w.as_deref().is_some_and(|p| p.split('/').any(|c| c == id)) {
            problems.push(format!(
                "{}: the init's cgroup {w:?} is not the container's",
                h.label()
            ));
        }
    }
    let inside = exec_ok(
        ctx,
        &[
            &id,
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo ==; cat /proc/1/cgroup",
        ],
    )?;
    let (me, one) = inside.split_once("==\n").unwrap_or((&inside, ""));
    if me != one {
        problems.push(format!("inside: exec'd {me:?}, init {one:?}"));
    }
    Ok(all_ok(problems)?)
}

/// --cap adds to the exec'd process only; -u uid:gid and -g apply.
fn user_groups_caps(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let mut problems = Vec::new();
    let root = exec_ok(ctx, &["--cap", "CAP_SYS_ADMIN", &id, "sh", "-c", STATUS])?;
    let mut with_admin = set(&DEFAULT_CAPS);
    with_admin.insert("CAP_SYS_ADMIN".into());
    for key in ["CapBnd", "CapEff", "CapPrm"] {
        let got = status_set(&root, key)?;
        if got != with_admin {
            problems.push(format!("root --cap CAP_SYS_ADMIN: {key} {got:?}"));
        }
    }
    let user = exec_ok(
        ctx,
        &[
            "-u",
            "1000:1000",
            "-g",
            "5",
            "-g",
            "2000",
            "--cap",
            "CAP_SYS_ADMIN",
            &id,
            "sh",
            "-c",
            STATUS,
        ],
    )?;
    for (key, want) in [
        ("Uid", "1000 1000 1000 1000"),
        ("Gid", "1000 1000 1000 1000"),
    ] {
        let got = status_field(&user, key).unwrap_or_default();
        if got != want {
            problems.push(format!("-u 1000:1000: {key} {got:?}"));
        }
    }
    if groups(&user) != set(&["5", "2000"]) {
        problems.push(format!("-g 5 -g 2000: Groups {:?}", groups(&user)));
    }
    if !status_set(&user, "CapBnd")?.contains("CAP_SYS_ADMIN") {
        problems.push("-u 1000 --cap CAP_SYS_ADMIN: not in the bounding set".into());
    }
    let uid_only = exec_ok(ctx, &["-u", "1000", &id, "sh", "-c", STATUS])?;
    if status_field(&uid_only, "Gid").as_deref() != Some("0 0 0 0") {
        problems.push(format!(
            "-u 1000 without a gid: Gid {:?}, expected 0 as runc",
            status_field(&uid_only, "Gid")
        ));
    }
    let plain = exec_ok(ctx, &[&id, "sh", "-c", STATUS])?;
    let bnd = status_set(&plain, "CapBnd")?;
    if bnd != set(&DEFAULT_CAPS) {
        problems.push(format!(
            "a later plain exec: CapBnd {bnd:?} (--cap leaked?)"
        ));
    }
    if status_field(&plain, "NoNewPrivs").as_deref() != Some("1") {
        problems.push("the container's noNewPrivileges is not applied to exec".into());
    }
    Ok(all_ok(problems)?)
}

/// -e adds and replaces variables of the container's environment.
fn env(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |b| {
        b.set(
            "/process/env",
            json!([
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
                "KEEP=container"
            ]),
        );
    })?;
    let out = exec_ok(
        ctx,
        &[
            "-e",
            "FOO=bar baz",
            "-e",
            "TERM=dumb",
            "-e",
            "EMPTY=",
            &id,
            "sh",
            "-c",
            "cat /proc/$$/environ | tr '\\0' '\\n'",
        ],
    )?;
    let got: Vec<&str> = out.lines().collect();
    let mut problems = Vec::new();
    for want in [
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=dumb",
        "KEEP=container",
        "FOO=bar baz",
        "EMPTY=",
        "HOME=/root",
    ] {
        if got.iter().filter(|l| **l == want).count() != 1 {
            problems.push(format!("{want:?} not there exactly once"));
        }
    }
    if got
        .iter()
        .any(|l| l.starts_with("TERM=") && *l != "TERM=dumb")
    {
        problems.push("the container's TERM survived -e TERM=dumb".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; environment: {got:?}", problems.join("; ")).into())
    }
}

/// The container's cwd by default, --cwd otherwise, for root and a user.
fn cwd(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |b| {
        b.set("/process/cwd", json!("/home"));
    })?;
    let mut problems = Vec::new();
    for (args, want) in [
        (vec![id.as_str(), "pwd"], "/home"),
        (vec!["--cwd", "/tmp", &id, "pwd"], "/tmp"),
        (vec!["--cwd", "/etc", "-u", "1000:1000", &id, "pwd"], "/etc"),
    ] {
        match exec_ok(ctx, &args) {
            Ok(out) if out.trim() == want => {}
            Ok(out) => problems.push(format!("{args:?}: pwd {:?}, expected {want}", out.trim())),
            Err(e) => problems.push(e),
        }
    }
    Ok(all_ok(problems)?)
}

/// The process's status is husk's: its exit code, or 128+signal.
fn exit_codes(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let mut problems = Vec::new();
    for (script, want) in [
        ("true", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -KILL $$", 137),
        ("kill -TERM $$", 143),
        ("kill -SEGV $$", 139),
    ] {
        let out = exec(ctx, &[&id, "sh", "-c", script]);
        if out.error.is_some() || out.code != Some(want) {
            problems.push(format!(
                "{script:?}: {}, expected exit {want}",
                describe(&out)
            ));
        } else if out.stderr.contains("husk:") {
            problems.push(format!(
                "{script:?}: husk reported an error: {}",
                out.stderr.trim()
            ));
        }
    }
    Ok(all_ok(problems)?)
}

/// A foreground exec whose process is SIGKILLed from the host exits 137,
/// and --pid-file works without -d.
fn killed_from_host(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let pid_file = ctx.dir.join("fg.pid");
    let pf = pid_file.to_string_lossy().into_owned();
    let h = ctx.spawn_husk(&["exec", "--pid-file", &pf, &id, "sleep", "100"], &[])?;
    ensure(
        wait_until(LIMIT, || read_pid_file(&pid_file).is_ok()),
        format!(
            "no pid file from a foreground exec: {:?}",
            ctx.child_output(h)
        ),
    )?;
    let pid = read_pid_file(&pid_file)?;
    wait_comm(pid, "sleep")?;
    send_signal(pid, libc::SIGKILL)?;
    let status = ctx.wait_child(h, LIMIT)?;
    let code = Ctx::shell_code(&status);
    Ok(ensure(
        code == 137,
        format!(
            "exec exited {code} ({status}), expected 137: {:?}",
            ctx.child_output(h)
        ),
    )?)
}

/// Signals husk receives in the foreground reach the process: its traps
/// run, and husk exits with the status the trap chose.
fn forwards_signals(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let script = "trap 'echo got-USR1' USR1; trap 'echo got-HUP' HUP; \
                  trap 'echo got-TERM; exit 42' TERM; echo ready; \
                  while :; do sleep 0.05; done";
    let h = ctx.spawn_husk(&["exec", &id, "sh", "-c", script], &[])?;
    let seen = |ctx: &Ctx, what: &str| wait_until(LIMIT, || ctx.child_output(h).0.contains(what));
    ensure(
        seen(ctx, "ready"),
        format!("never ready: {:?}", ctx.child_output(h)),
    )?;
    let husk_pid = ctx.child_pid(h);
    for (sig, what) in [(libc::SIGUSR1, "got-USR1"), (libc::SIGHUP, "got-HUP")] {
        send_signal(husk_pid, sig)?;
        ensure(
            seen(ctx, what),
            format!("{what} not printed: {:?}", ctx.child_output(h)),
        )?;
    }
    send_signal(husk_pid, libc::SIGTERM)?;
    let status = ctx.wait_child(h, LIMIT)?;
    let (out, err) = ctx.child_output(h);
    let code = Ctx::shell_code(&status);
    Ok(ensure(
        code == 42 && out.contains("got-TERM"),
        format!("after SIGTERM: exit {code} ({status}), stdout {out:?}, stderr {err:?}"),
    )?)
}

/// The lines of the init's mountinfo for /dev/console.
fn console_mounts(init: u32) -> Result<Vec<String>, String> {
    Ok(read_proc(init, "mountinfo")?
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/dev/console"))
        .map(String::from)
        .collect())
}

/// -t -d --console-socket: the pty master arrives on the socket, output
/// and input go through it, the process's tty is a /dev/pts device of the
/// container, and the container's /dev/console is left alone (runc binds
/// the console only for the init).
fn tty_console_socket(ctx: &mut Ctx) -> TestResult {
    let (_b, id, init) = running(ctx, |_| {})?;
    let before = console_mounts(init)?;
    let sock_path = ctx.dir.join("exec-console.sock");
    let sock = ConsoleSocket::bind(&sock_path)?;
    let sp = sock_path.to_string_lossy().into_owned();
    let pid_file = ctx.dir.join("tty.pid");
    let pf = pid_file.to_string_lossy().into_owned();
    let script = "tty; echo hello-through-the-pty; read line; echo got-$line";
    let h = ctx.spawn_husk(
        &[
            "exec",
            "-t",
            "-d",
            "--console-socket",
            &sp,
            "--pid-file",
            &pf,
            &id,
            "sh",
            "-c",
            script,
        ],
        &[],
    )?;
    let mut master = sock
        .receive_master(LIMIT)
        .map_err(|e| format!("{e}; husk: {:?}", ctx.child_output(h)))?;
    let status = ctx.wait_child(h, LIMIT)?;
    ensure(
        status.success(),
        format!("exec -t -d: {status}: {:?}", ctx.child_output(h)),
    )?;
    ensure(pid_file.exists(), "exec -t -d wrote no pid file")?;
    master
        .write_all(b"ping\n")
        .map_err(|e| format!("write to the pty master: {e}"))?;
    let text = read_until_closed(&mut master, LIMIT);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut problems = Vec::new();
    if !lines.iter().any(|l| l.starts_with("/dev/pts/")) {
        problems.push(format!("tty is not a /dev/pts device: {lines:?}"));
    }
    for want in ["hello-through-the-pty", "got-ping"] {
        if !lines.contains(&want) {
            problems.push(format!("{want:?} not read from the pty: {lines:?}"));
        }
    }
    let after = console_mounts(init)?;
    if after != before {
        problems.push(format!(
            "exec -t changed the container's /dev/console mounts: {before:?} -> {after:?}"
        ));
    }
    Ok(all_ok(problems)?)
}

/// -d returns while the process runs; the pid file names it; it is in the
/// container's pid namespace.
fn detach_pid_file(ctx: &mut Ctx) -> TestResult {
    let (_b, id, init) = running(ctx, |_| {})?;
    let t0 = Instant::now();
    let pid = exec_detached(ctx, &id, &[], &["sleep", "100"])?;
    let took = t0.elapsed();
    wait_comm(pid, "sleep")?;
    let mut problems = Vec::new();
    if took > Duration::from_secs(2) {
        problems.push(format!("exec -d took {took:?}"));
    }
    if host::ns_link(pid, "pid")? != host::ns_link(init, "pid")? {
        problems.push("the detached process is not in the container's pid namespace".into());
    }
    let comms = container_comms(&id);
    if comms != ["sleep", "sleep"] {
        problems.push(format!(
            "container processes {comms:?}, expected two sleeps"
        ));
    }
    Ok(all_ok(problems)?)
}

/// `echo text | husk exec ID cat`.
fn stdin_piped(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let text = "first line through stdin\nsecond: äöü\n";
    let out = ctx.husk.invoke(
        &["exec", &id, "cat"],
        &Call {
            stdin: Some(text.as_bytes().to_vec()),
            ..Call::default()
        },
    );
    expect_ok(&out, "exec cat")?;
    Ok(ensure(
        out.stdout == text,
        format!("cat printed {:?}, expected {text:?}", out.stdout),
    )?)
}

/// 20 execs at once into one container: all succeed with their own output,
/// and none is left running.
fn parallel_20(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let husk = ctx.husk.clone();
    let results: Vec<(usize, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (husk, id) = (&husk, &id);
                s.spawn(move || {
                    let script = format!("echo out-{i}; echo err-{i} >&2; exit {}", i % 7);
                    (i, husk.cmd(&["exec", id, "sh", "-c", &script]))
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut problems = Vec::new();
    if results.len() != 20 {
        problems.push(format!("{} of 20 exec threads finished", results.len()));
    }
    for (i, out) in &results {
        let ok = out.error.is_none()
            && out.code == Some((*i % 7) as i32)
            && out.stdout == format!("out-{i}\n")
            && out.stderr == format!("err-{i}\n");
        if !ok {
            problems.push(format!(
                "exec {i}: {}, stdout {:?}, stderr {:?}",
                describe(out),
                out.stdout,
                out.stderr
            ));
        }
    }
    let comms = container_comms(&id);
    if comms != ["sleep"] {
        problems.push(format!("left in the container: {comms:?}"));
    }
    Ok(all_ok(problems)?)
}

/// The pids limit file of the process's cgroup (v1 pids, else cgroup2).
fn pids_max(pid: u32) -> Result<String, String> {
    host::cgroup_file(pid, "pids", "pids.max").or_else(|_| host::cgroup_file(pid, "", "pids.max"))
}

/// After `husk update`: exec still works, the exec'd processes are under
/// the new limit, and the device rules still let them use /dev/null.
fn after_update(ctx: &mut Ctx) -> TestResult {
    let (_b, id, init) = running(ctx, |_| {})?;
    let out = ctx.husk.cmd(&["update", "--pids-limit", "3", &id]);
    if !out.success() {
        return Err(skip(format!(
            "husk update does not work yet: {}",
            describe(&out)
        )));
    }
    let mut problems = Vec::new();
    if pids_max(init)? != "3" {
        problems.push(format!(
            "pids.max after update --pids-limit 3: {}",
            pids_max(init)?
        ));
    }
    // init + sh + 1 sleep fit; the next forks must fail.
    let out = exec(
        ctx,
        &[
            &id,
            "sh",
            "-c",
            "for i in 1 2 3 4; do sleep 1 & done 2>&1; wait",
        ],
    );
    if !contains_any(&format!("{}{}", out.stdout, out.stderr), "can't fork|fork") {
        problems.push(format!(
            "4 forks under pids-limit 3 did not fail: {}; {:?}",
            describe(&out),
            out.stdout
        ));
    }
    expect_ok(
        &ctx.husk.cmd(&["update", "--pids-limit", "100", &id]),
        "update --pids-limit 100",
    )?;
    let pid = exec_detached(ctx, &id, &[], &["sleep", "100"])?;
    match pids_max(pid) {
        Ok(v) if v == "100" => {}
        other => problems.push(format!("the exec'd process's pids.max: {other:?}")),
    }
    match exec_ok(
        ctx,
        &[
            &id,
            "sh",
            "-c",
            "echo x > /dev/null && head -c 3 /dev/zero | wc -c",
        ],
    ) {
        Ok(o) if o.trim() == "3" => {}
        other => problems.push(format!("/dev/null and /dev/zero after update: {other:?}")),
    }
    Ok(all_ok(problems)?)
}

/// exec into a paused container is refused with runc's reason; with
/// --ignore-paused it is accepted and completes once the container resumes.
fn paused_refused(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let out = ctx.husk.cmd(&["pause", &id]);
    if !out.success() {
        return Err(skip(format!(
            "husk pause does not work yet: {}",
            describe(&out)
        )));
    }
    let st = ctx.state(&id)?;
    ensure(
        st["status"] == "paused",
        format!("status after pause: {}", st["status"]),
    )?;
    let out = exec(ctx, &[&id, "sh", "-c", "echo should-not-run"]);
    let refused = expect_exec_refused(ctx, &out, &["paused", "--ignore-paused"]);
    let h = ctx.spawn_husk(
        &[
            "exec",
            "--ignore-paused",
            &id,
            "sh",
            "-c",
            "echo ran-after-resume",
        ],
        &[],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let (early_out, early_err) = ctx.child_output(h);
    let mut problems = Vec::new();
    if let Err(e) = refused {
        problems.push(format!("plain exec while paused: {e}"));
    }
    if early_out.contains("ran-after-resume") {
        problems.push("the --ignore-paused exec ran while the container was frozen".into());
    }
    if early_err.contains("husk:") {
        problems.push(format!("--ignore-paused refused: {early_err}"));
    }
    expect_ok(&ctx.husk.cmd(&["resume", &id]), "resume")?;
    let status = ctx.wait_child(h, LIMIT)?;
    let (o, e) = ctx.child_output(h);
    if !status.success() || o != "ran-after-resume\n" {
        problems.push(format!(
            "--ignore-paused exec after resume: {status}, {o:?}, {e:?}"
        ));
    }
    Ok(all_ok(problems)?)
}

/// exec into a container whose init has exited is refused.
fn stopped_refused(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.args(&["true"]);
    let (id, _pid) = ctx.start_new(&b)?;
    ctx.wait_status(&id, "stopped", LIMIT)?;
    let out = exec(ctx, &[&id, "sh", "-c", "echo should-not-run"]);
    expect_exec_refused(ctx, &out, &["stopped"])?;
    ensure(!out.stdout.contains("should-not-run"), "the process ran")?;
    let st = ctx.state(&id)?;
    ensure(
        st["status"] == "stopped",
        format!("status after the exec: {}", st["status"]),
    )?;
    Ok(ensure(
        processes_of(&id).is_empty(),
        format!("processes appeared: {:?}", processes_of(&id)),
    )?)
}

/// A binary that is not there: exit 255 with runc's message, and nothing
/// left in the container.
fn missing_binary(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let mut problems = Vec::new();
    for (cmd, needle) in [
        (
            "no-such-binary",
            "exec: \"no-such-binary\": executable file not found in $PATH",
        ),
        ("/bin/no-such-binary", "no such file or directory"),
    ] {
        let out = exec(ctx, &[&id, cmd]);
        if let Err(e) = expect_exec_refused(ctx, &out, &[needle]) {
            problems.push(format!("{cmd}: {e}"));
        }
    }
    let comms = container_comms(&id);
    if comms != ["sleep"] {
        problems.push(format!("left in the container: {comms:?}"));
    }
    Ok(all_ok(problems)?)
}

/// -u with something else than uid[:gid] numbers is a clear error.
fn bad_user(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let mut problems = Vec::new();
    for user in ["bob", "1000:staff", "1000:", "-5", "1:2:3"] {
        let flag = format!("--user={user}");
        let out = exec(ctx, &[&flag, &id, "sh", "-c", "echo should-not-run"]);
        if out.stdout.contains("should-not-run") {
            problems.push(format!(
                "-u {user:?} ran the process as {}",
                out.stdout.trim()
            ));
        } else if let Err(e) = expect_exec_refused(ctx, &out, &["user|uid"]) {
            problems.push(format!("-u {user:?}: {e}"));
        }
    }
    Ok(all_ok(problems)?)
}

/// A process.json as containerd writes it for `ctr task exec`/`docker exec`.
fn containerd_process(args: &[&str]) -> Value {
    json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 1000]},
        "args": args,
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=exec-host",
            "FROM_PROCESS_JSON=yes"
        ],
        "cwd": "/tmp",
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            "effective": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}],
        "noNewPrivileges": true,
        "apparmorProfile": "",
        "oomScoreAdj": 0
    })
}

/// --process FILE: user, groups, cwd, env, capabilities, no_new_privs and
/// rlimits all come from the file, not from the container's process.
fn process_file(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let script = format!(
        "{STATUS}; echo == cwd; pwd; echo == env; tr '\\0' '\\n' < /proc/$$/environ | sort; \
         echo == nofile; grep 'open files' /proc/$$/limits"
    );
    let file = ctx.dir.join("process.json");
    let process = containerd_process(&["sh", "-c", &script]);
    fs::write(&file, process.to_string()).map_err(|e| e.to_string())?;
    let out = ctx.husk.exec_process(&id, &file);
    expect_ok(&out, "exec --process")?;
    let text = out.stdout;
    let s = sections(&text);
    let mut problems = Vec::new();
    for (key, want) in [
        ("Uid", "1000 1000 1000 1000"),
        ("Gid", "1000 1000 1000 1000"),
        ("NoNewPrivs", "1"),
    ] {
        if status_field(&text, key).as_deref() != Some(want) {
            problems.push(format!("{key}: {:?}", status_field(&text, key)));
        }
    }
    if groups(&text) != set(&["5", "1000"]) {
        problems.push(format!("Groups {:?}", groups(&text)));
    }
    for (key, want) in [
        ("CapBnd", set(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"])),
        ("CapEff", set(&["CAP_KILL"])),
        ("CapPrm", set(&["CAP_KILL"])),
        ("CapInh", set(&["CAP_KILL"])),
        ("CapAmb", set(&["CAP_KILL"])),
    ] {
        let got = status_set(&text, key)?;
        if got != want {
            problems.push(format!("{key} {got:?}, expected {want:?}"));
        }
    }
    if section(&s, "cwd") != ["/tmp"] {
        problems.push(format!("cwd {:?}", section(&s, "cwd")));
    }
    let env: Vec<&str> = section(&s, "env").iter().map(String::as_str).collect();
    let want_env = [
        "FROM_PROCESS_JSON=yes",
        "HOME=/home",
        "HOSTNAME=exec-host",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ];
    if env != want_env {
        problems.push(format!("env {env:?}, expected {want_env:?}"));
    }
    let nofile: Vec<String> = section(&s, "nofile")
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if nofile != ["Max open files 256 512 files"] {
        problems.push(format!("RLIMIT_NOFILE {nofile:?}"));
    }
    Ok(all_ok(problems)?)
}

fn create_file(path: &Path) -> Result<fs::File, String> {
    fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("create {}: {e}", path.display()))
}

/// --preserve-fds 2: fds 3 and 4 reach the process as they are, fd 5
/// (inherited by husk too, but not asked for) does not.
fn preserve_fds(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let paths: Vec<PathBuf> = ["kept-3", "kept-4", "not-kept-5"]
        .iter()
        .map(|n| ctx.dir.join(n))
        .collect();
    let files: Vec<fs::File> = paths
        .iter()
        .map(|p| create_file(p))
        .collect::<Result<_, _>>()?;
    let pid_file = ctx.dir.join("preserve.pid");
    let pf = pid_file.to_string_lossy().into_owned();
    let h = ctx.spawn_husk(
        &[
            "exec",
            "-d",
            "--pid-file",
            &pf,
            "--preserve-fds",
            "2",
            &id,
            "sh",
            "-c",
            "echo via-3 >&3; echo via-4 >&4; exec sleep 100",
        ],
        &[
            (files[0].as_raw_fd(), 3),
            (files[1].as_raw_fd(), 4),
            (files[2].as_raw_fd(), 5),
        ],
    )?;
    let status = ctx.wait_child(h, COMMAND_LIMIT)?;
    ensure(
        status.success(),
        format!("exec --preserve-fds 2: {status}: {:?}", ctx.child_output(h)),
    )?;
    let pid = read_pid_file(&pid_file)?;
    wait_comm(pid, "sleep")?;
    let fds = proc_fds(pid)?;
    let numbers: Vec<i32> = fds.iter().map(|(n, _)| *n).collect();
    let mut problems = Vec::new();
    if numbers != [0, 1, 2, 3, 4] {
        problems.push(format!("fds {fds:?}, expected 0-4"));
    }
    for (n, path) in [(3, &paths[0]), (4, &paths[1])] {
        let target = fds.iter().find(|(m, _)| *m == n).map(|(_, t)| t.clone());
        if target.as_deref() != Some(&*path.to_string_lossy()) {
            problems.push(format!("fd {n} -> {target:?}, expected {}", path.display()));
        }
        let want = format!("via-{n}\n");
        let got = fs::read_to_string(path).unwrap_or_default();
        if got != want {
            problems.push(format!(
                "{} holds {got:?}, expected {want:?}",
                path.display()
            ));
        }
    }
    Ok(all_ok(problems)?)
}

/// Opens a directory read-only without O_CLOEXEC (a handle a caller of
/// husk could leak into it).
pub(crate) fn open_dir(path: &Path) -> Result<std::os::fd::OwnedFd, String> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: c is a valid C string; open returns a new fd or -1.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if fd < 0 {
        return Err(format!(
            "open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The exec'd process holds 0, 1 and 2 only: neither husk's own fds nor a
/// host directory handed to husk at fd 7 reach it.
fn no_husk_fd_inside(ctx: &mut Ctx) -> TestResult {
    let (_b, id, _init) = running(ctx, |_| {})?;
    let secret = ctx.scratch("host-secret-dir")?;
    let leaked = open_dir(&secret)?;
    let pid_file = ctx.dir.join("nofd.pid");
    let pf = pid_file.to_string_lossy().into_owned();
    let h = ctx.spawn_husk(
        &["exec", "-d", "--pid-file", &pf, &id, "sleep", "100"],
        &[(leaked.as_raw_fd(), 7)],
    )?;
    let status = ctx.wait_child(h, COMMAND_LIMIT)?;
    ensure(
        status.success(),
        format!("exec -d: {status}: {:?}", ctx.child_output(h)),
    )?;
    let pid = read_pid_file(&pid_file)?;
    wait_comm(pid, "sleep")?;
    let fds = proc_fds(pid)?;
    let mut problems = Vec::new();
    if fds.iter().map(|(n, _)| *n).collect::<Vec<_>>() != [0, 1, 2] {
        problems.push(format!("host view: fds {fds:?}, expected 0, 1, 2"));
    }
    let inside = exec_ok(ctx, &[&id, "sh", "-c", "ls /proc/$$/fd; true"])?;
    let inside: Vec<&str> = inside.split_whitespace().collect();
    if inside != ["0", "1", "2"] {
        problems.push(format!("inside view: fds {inside:?}"));
    }
    Ok(all_ok(problems)?)
}

/// What a process in the container (root, the container's capabilities,
/// which are the same as the exec'd process's) can get of process $1.
const PEEK: &str = r#"P=$1
for f in exe cwd root fd/0; do
  if readlink /proc/$P/$f >/dev/null 2>&1; then echo "$f readable"; else echo "$f denied"; fi
done
if cat /proc/$P/environ >/dev/null 2>&1; then echo "environ readable"; else echo "environ denied"; fi
if (: >> /proc/$P/exe) 2>/dev/null; then echo "exe OPENED-FOR-WRITING"; else echo "exe not-writable"; fi
"#;

/// Runs PEEK on the container pid `nspid` through a second exec.
pub(crate) fn peek(ctx: &Ctx, id: &str, nspid: u32) -> Result<BTreeSet<String>, String> {
    let n = nspid.to_string();
    Ok(exec_ok(ctx, &[id, "sh", "-c", PEEK, "peek", &n])?
        .lines()
        .map(String::from)
        .collect())
}

/// Held at the entry of its execve (husk's last instruction in the
/// container), the exec'd process is not dumpable: a process in the
/// container with the same uid and capabilities can read none of its
/// /proc links and cannot open its exe (husk) for writing. The same probe
/// succeeds once it runs `sleep`, which shows the probe can see it. Runs
/// with a copy of husk; the binaries stay byte-identical.
fn not_dumpable_before_exec(ctx: &mut Ctx) -> TestResult {
    let husk = use_husk_copy(ctx)?;
    let copy = husk.copy.clone();
    let (_b, id, _init) = running(ctx, |_| {})?;
    let pid_file = ctx.dir.join("held.pid");
    let pf = pid_file.to_string_lossy().into_owned();
    let root = ctx.root.to_string_lossy().into_owned();
    let mut held = StoppedExec::spawn(
        &copy,
        &[
            "--root",
            &root,
            "exec",
            "-d",
            "--pid-file",
            &pf,
            &id,
            "sleep",
            "100",
        ],
        &ctx.dir,
        LIMIT,
    )?;
    let nspid = held.ns_pid()?;
    let mut problems = Vec::new();
    let before = peek(ctx, &id, nspid)?;
    for want in [
        "exe denied",
        "cwd denied",
        "root denied",
        "fd/0 denied",
        "environ denied",
        "exe not-writable",
    ] {
        if !before.contains(want) {
            problems.push(format!("before exec: not {want:?} (saw {before:?})"));
        }
    }
    // From the host (root, all capabilities), the binary it runs must not
    // open for writing either: it is on a read-only mount.
    let exe = PathBuf::from(format!("/proc/{}/exe", held.pid));
    match fs::OpenOptions::new().append(true).open(&exe) {
        Ok(_) => problems.push(format!(
            "{} (husk) opened for writing from the host",
            exe.display()
        )),
        Err(e) => ctx.note(format!(
            "host open of the held process's exe for writing: {e}"
        )),
    }
    let status = held.release(LIMIT)?;
    ensure(
        status.success(),
        format!("traced exec -d: {status}: {:?}", held.output()),
    )?;
    let pid = read_pid_file(&pid_file)?;
    ensure(
        pid as i32 == held.pid,
        format!("pid file {pid}, held process {}", held.pid),
    )?;
    wait_comm(pid, "sleep")?;
    let after = peek(ctx, &id, nspid)?;
    for want in ["exe readable", "environ readable", "fd/0 readable"] {
        if !after.contains(want) {
            problems.push(format!(
                "control: after exec the probe should see the process ({want}), saw {after:?}"
            ));
        }
    }
    drop(held);
    if let Err(e) = husk.unchanged(ctx) {
        problems.push(e);
    }
    Ok(all_ok(problems)?)
}

/// In a user-namespaced container the exec'd process is in the init's user
/// namespace: same uid_map/gid_map inside, mapped ids on the host.
fn user_namespace(ctx: &mut Ctx) -> TestResult {
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let (_b, id, init) = running(ctx, |b| {
        b.push("/linux/namespaces", json!({"type": "user"}));
        b.set("/linux/uidMappings", map.clone());
        b.set("/linux/gidMappings", map.clone());
    })?;
    let norm = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let mut problems = Vec::new();
    let inside = exec_ok(
        ctx,
        &[
            &id,
            "sh",
            "-c",
            "cat /proc/self/uid_map; echo ==; cat /proc/self/gid_map; echo ==; id -u",
        ],
    )?;
    let want = format!(
        "{}\n==\n{}\n==\n0",
        norm(&read_proc(init, "uid_map")?).join("\n"),
        norm(&read_proc(init, "gid_map")?).join("\n")
    );
    if norm(&inside).join("\n") != want {
        problems.push(format!("inside: {:?}, init's: {want:?}", norm(&inside)));
    }
    let pid = exec_detached(ctx, &id, &["-u", "1000:1000"], &["sleep", "100"])?;
    wait_comm(pid, "sleep")?;
    for ns in ["user", "mnt", "pid", "net"] {
        if host::ns_link(pid, ns)? != host::ns_link(init, ns)? {
            problems.push(format!("{ns} namespace differs from the init's"));
        }
    }
    let status = read_proc(pid, "status")?;
    for k in ["Uid", "Gid"] {
        let v = status_field(&status, k).unwrap_or_default();
        if v != "101000 101000 101000 101000" {
            problems.push(format!("host sees the exec'd -u 1000:1000 {k} as {v}"));
        }
    }
    Ok(all_ok(problems)?)
}

// ------------------------------------------------------------- differential

/// What the exec'd process reports about itself (runtime-agnostic).
const DIFF_PROBE: &str = "\
echo '== status'; grep -E '^(Uid|Gid|Groups|Umask|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$$/status
echo '== env'; tr '\\0' '\\n' < /proc/$$/environ | sort
echo '== cwd'; pwd -P
echo '== ns'; for n in cgroup ipc mnt net pid time user uts; do echo \"$n $(readlink /proc/$$/ns/$n)\"; done
echo '== cgroup'; cat /proc/$$/cgroup
echo '== initcgroup'; cat /proc/1/cgroup
echo '== limits'; cat /proc/$$/limits
echo '== oom'; cat /proc/$$/oom_score_adj
echo '== fds'; ls /proc/$$/fd
";

/// Differences between runc 1.1.5 and husk that were reviewed, as
/// (setup, section, exact line, why).
const ACCEPTED: &[(&str, &str, &str, &str)] = &[];

/// One container setup and one exec into it.
struct Setup {
    name: &'static str,
    edit: fn(&mut Bundle),
    exec: fn(&Path) -> Vec<String>,
}

fn setups() -> Vec<Setup> {
    vec![
        Setup {
            name: "default",
            edit: |_| {},
            exec: |_| vec![],
        },
        Setup {
            name: "flags",
            edit: |b| {
                b.set("/process/cwd", json!("/home"));
            },
            exec: |_| {
                [
                    "-u",
                    "1000:1000",
                    "-g",
                    "5",
                    "-g",
                    "2000",
                    "--cap",
                    "CAP_SYS_ADMIN",
                    "-e",
                    "FOO=bar",
                    "-e",
                    "TERM=dumb",
                    "--cwd",
                    "/tmp",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            },
        },
        Setup {
            name: "root-cap",
            edit: |_| {},
            exec: |_| {
                vec![
                    "--cap".into(),
                    "CAP_SYS_ADMIN".into(),
                    "--no-new-privs".into(),
                ]
            },
        },
        Setup {
            name: "process-file",
            edit: |_| {},
            exec: |file| vec!["--process".into(), file.to_string_lossy().into_owned()],
        },
        Setup {
            name: "userns-cgroupns",
            edit: |b| {
                let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                b.push("/linux/namespaces", json!({"type": "user"}));
                b.push("/linux/namespaces", json!({"type": "cgroup"}));
                b.set("/linux/uidMappings", map.clone());
                b.set("/linux/gidMappings", map);
            },
            exec: |_| vec![],
        },
    ]
}

/// Normalises a probe output into comparable lines per section: namespace
/// links become "joined"/"own" relative to the init's, the exec'd cgroup
/// becomes relative to the init's.
fn observe(text: &str, init_ns: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let s = sections(text);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, lines) in &s {
        let lines: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
        match name.as_str() {
            "ns" => {
                for l in lines {
                    let (n, link) = l.split_once(' ').unwrap_or((l, ""));
                    let verdict = match init_ns.get(n) {
                        Some(i) if i == link => "joined",
                        Some(_) => "DIFFERENT from the init's",
                        None => "absent in the init",
                    };
                    out.entry("ns".into())
                        .or_default()
                        .insert(format!("{n} {verdict}"));
                }
            }
            "cgroup" | "initcgroup" => {}
            "limits" => {
                let e = out.entry("limits".into()).or_default();
                for l in lines {
                    e.insert(l.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
            _ => {
                out.entry(name.clone())
                    .or_default()
                    .extend(lines.into_iter().cloned());
            }
        }
    }
    let parse = |name: &str| -> BTreeMap<String, String> {
        conformance::procinfo::parse_cgroup(&section(&s, name).join("\n"))
            .into_iter()
            .map(|l| {
                (
                    format!("{}:{}", l["hierarchy"], l["controllers"]),
                    l["path"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let (mine, init) = (parse("cgroup"), parse("initcgroup"));
    let e = out.entry("cgroup".into()).or_default();
    for (h, p) in &mine {
        let rel = match init.get(h) {
            Some(i) if p == i => "= init's".to_string(),
            Some(i) => match p.strip_prefix(i.as_str()) {
                Some(r) => format!("init's + {r}"),
                None => format!("outside the init's ({p} vs {i})"),
            },
            None => "hierarchy unknown to the init".into(),
        };
        e.insert(format!("{h} {rel}"));
    }
    out
}

fn runtime_observation(
    runtime: &Runtime,
    id: &str,
    setup: &Setup,
    process_file: &Path,
) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let init = runtime
        .state_json(id)?
        .get("pid")
        .and_then(Value::as_u64)
        .ok_or("no init pid in state")? as u32;
    wait_comm(init, "sleep")?;
    let mut args: Vec<String> = vec!["exec".into()];
    args.extend((setup.exec)(process_file));
    args.push(id.into());
    if setup.name != "process-file" {
        args.extend(["sh".into(), "-c".into(), DIFF_PROBE.into()]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = runtime.cmd(&argv);
    if !out.success() {
        return Err(format!(
            "{} exec: {}",
            runtime.path().display(),
            describe(&out)
        ));
    }
    let obs = observe(&out.stdout, &ns_links(init)?);
    for want in ["status", "env", "cwd", "ns", "cgroup", "limits", "fds"] {
        if obs.get(want).is_none_or(|s| s.is_empty()) {
            return Err(format!(
                "{}: the probe saw nothing for {want}: {:?}",
                runtime.path().display(),
                out.stdout
            ));
        }
    }
    Ok(obs)
}

/// The same container setups under runc and husk, the same exec into each;
/// everything the exec'd process observes must match, apart from
/// differences listed in ACCEPTED with their reason.
fn differential_vs_runc(ctx: &mut Ctx) -> TestResult {
    let runc = ctx.runc()?;
    let mut failing = Vec::new();
    let mut compared = Vec::new();
    let mut seen = BTreeMap::new();
    for setup in setups() {
        let process_file = ctx.dir.join(format!("{}-process.json", setup.name));
        let process = containerd_process(&["sh", "-c", DIFF_PROBE]);
        fs::write(&process_file, process.to_string()).map_err(|e| e.to_string())?;
        let mut rb = ctx.bundle()?;
        rb.args(&["sleep", "1000"]);
        (setup.edit)(&mut rb);
        let rid = ctx.new_runc_id();
        let created = runc.create(&rb, &rid);
        if !created.success() {
            ctx.note(format!(
                "{}: runc cannot create it: {}",
                setup.name,
                describe(&created)
            ));
            continue;
        }
        expect_ok(&runc.start(&rid), "runc start")?;
        let r = match runtime_observation(&runc, &rid, &setup, &process_file) {
            Ok(o) => o,
            Err(e) => {
                ctx.note(format!("{}: runc: {e}", setup.name));
                continue;
            }
        };
        let _ = runc.delete_force(&rid);
        let mut hb = ctx.bundle()?;
        hb.args(&["sleep", "1000"]);
        (setup.edit)(&mut hb);
        let (hid, _pid) = ctx.start_new(&hb)?;
        let husk = ctx.husk.clone();
        let h = runtime_observation(&husk, &hid, &setup, &process_file)
            .map_err(|e| format!("{}: {e}", setup.name))?;
        let _ = ctx.husk.delete_force(&hid);
        compared.push(setup.name);
        seen.insert(setup.name, h.clone());
        let sections: BTreeSet<&String> = r.keys().chain(h.keys()).collect();
        let empty = BTreeSet::new();
        for section in sections {
            let (rs, hs) = (
                r.get(section).unwrap_or(&empty),
                h.get(section).unwrap_or(&empty),
            );
            let mut diffs: Vec<String> = rs
                .difference(hs)
                .map(|l| format!("only runc: {l}"))
                .collect();
            diffs.extend(hs.difference(rs).map(|l| format!("only husk: {l}")));
            for line in diffs {
                match ACCEPTED
                    .iter()
                    .find(|(s, sec, exact, _)| *s == setup.name && sec == section && line == *exact)
                {
                    Some((_, _, _, why)) => ctx.note(format!(
                        "{}: accepted difference in {section}: {line} ({why})",
                        setup.name
                    )),
                    None => failing.push(format!("{} [{section}] {line}", setup.name)),
                }
            }
        }
    }
    if compared.is_empty() {
        return Err(skip("runc could run none of the setups"));
    }
    ctx.note(format!("compared with runc: {compared:?}"));
    // The probe must tell setups apart, or equal observations prove nothing.
    if let (Some(a), Some(b)) = (seen.get("default"), seen.get("flags")) {
        for section in ["status", "env", "cwd"] {
            if a.get(section) == b.get(section) {
                failing.push(format!(
                    "the probe saw the same {section} for the default and the flags setups"
                ));
            }
        }
    }
    Ok(all_ok(failing)?)
}

//! `husk exec`: run another process inside a running container, as
//! `runc exec` does.
//!
//! The same one-clone model as create: `husk exec` joins the container's pid
//! and time namespaces itself (they only apply to children), then clones a
//! child born in the container's cgroup2 directory (CLONE_INTO_CGROUP). The
//! child joins the other namespaces with one setns() on the init's pidfd (so
//! a recycled pid can never be joined), is placed in the v1 hierarchies by
//! the parent meanwhile, applies the process exactly as the init does
//! (`process::prepare`) and execs. Protocol on the channel:
//!
//! | step | who sends | message          | meaning                                      |
//! |------|-----------|------------------|----------------------------------------------|
//! | 1    | parent    | `CgroupsJoined`  | placed in every v1 hierarchy                 |
//! | 2    | child     | `Error`          | step and cause of a failure; child exits     |
//! | 2'   | child     | (channel closes) | the exec happened (the fd is close-on-exec)  |

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capabilities, Capability, LinuxNamespaceType, Process, Spec};

use crate::channel::{self, Channel, Message};
use crate::config;
use crate::container::{open_init, write_pid_file};
use crate::error::{Context, Error, Result};
use crate::namespaces::clone_flag;
use crate::state::{ContainerDir, State, Status};
use crate::syscall::{self, Forked};
use crate::{process, procfs, rootfs, terminal};

/// Where the process comes from: a runtime-spec process JSON file
/// (`--process`, what containerd passes), or runc's individual flags on top
/// of the container's own process.
#[derive(Debug, Clone)]
pub enum ProcessSource {
    File(PathBuf),
    Flags(ProcessFlags),
}

#[derive(Debug, Clone, Default)]
pub struct ProcessFlags {
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    pub process: ProcessSource,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
}

/// Everything the exec'd child needs, moved into it by the clone.
struct Child<'a> {
    init: &'a OwnedFd,
    join_flags: u64,
    in_user_ns: bool,
    process: &'a Process,
    spec: &'a Spec,
    channel: Channel,
    console: Option<OwnedFd>,
    wait_for_cgroups: bool,
    preserve_fds: u32,
    seccomp: Option<crate::seccomp::Filter>,
}

/// `husk exec`: returns the process's exit code (foreground) or 0 once it
/// runs (detached).
pub fn exec(opts: &ExecOptions) -> Result<i32> {
    let dir = ContainerDir::open(&opts.root, &opts.id, false)?;
    let record = dir.load()?;
    check_status(&record, opts)?;
    let spec = saved_spec(&dir)?;
    let process = build_process(&opts.process, &spec)?;
    let init = open_init(&record)?.ok_or_else(|| not_running(&opts.id))?;
    let cgroup = record
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::step("exec", "the container has no cgroup recorded"))?;
    let types = config::namespace_types(&spec);
    let wants_tty = process.terminal().unwrap_or(false);
    let relay = wants_tty && opts.console_socket.is_none() && !opts.detach;
    if wants_tty && opts.console_socket.is_none() && opts.detach {
        return Err(Error::config(
            "process.terminal: a detached exec with a terminal needs --console-socket",
        ));
    }
    let (console, relay_end) = console_for(opts, wants_tty, relay)?;
    let signals = if opts.detach {
        None
    } else {
        Some(crate::signals::Forwarder::block()?)
    };
    // Namespaces that only apply to children are joined here, before the clone.
    let parent_flags = pick(&types, &[LinuxNamespaceType::Pid, LinuxNamespaceType::Time]);
    if parent_flags != 0 {
        syscall::setns(init.as_fd(), parent_flags)
            .step(|| "join the container's pid namespace".into())?;
    }
    let child_flags = pick(
        &types,
        &[
            LinuxNamespaceType::User,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Cgroup,
        ],
    );
    syscall::ensure_single_threaded().step(|| "exec".into())?;
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| crate::seccomp::compile_cached(s, &opts.root.join(".seccomp-cache")))
        .transpose()?;
    let (parent_end, child_end) = channel::pair()?;
    let clone_into = cgroup.clone_into_fd()?;
    let forked = syscall::clone3(0, clone_into.as_ref().map(|fd| fd.as_fd()))
        .step(|| "clone the exec process".into())?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(parent_end);
            run_child(Child {
                init: &init,
                join_flags: child_flags,
                in_user_ns: types.contains(&LinuxNamespaceType::User),
                process: &process,
                spec: &spec,
                channel: child_end,
                console,
                wait_for_cgroups: cgroup.needs_migration(),
                preserve_fds: opts.preserve_fds,
                seccomp,
            })
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_end);
    drop(console);
    let relay = match relay_end {
        Some(end) => Some(terminal::Relay::start(end)?),
        None => None,
    };
    place_and_wait(
        &spec,
        &record,
        &parent_end,
        cgroup,
        pid,
        clone_into.is_some(),
    )?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    let code = signals.forward_until_exit(pid, &pidfd)?;
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(code)
}

fn not_running(id: &str) -> Error {
    Error::WrongState {
        id: id.into(),
        status: "stopped".into(),
        reason: "cannot exec in a stopped container".into(),
    }
}

fn check_status(record: &State, opts: &ExecOptions) -> Result<()> {
    match record.status() {
        Status::Stopped | Status::Creating => Err(not_running(&opts.id)),
        Status::Paused if !opts.ignore_paused => Err(Error::WrongState {
            id: opts.id.clone(),
            status: "paused".into(),
            reason: "cannot exec in a paused container (use --ignore-paused to override)".into(),
        }),
        _ => Ok(()),
    }
}

fn saved_spec(dir: &ContainerDir) -> Result<Spec> {
    let path = dir.config_path();
    let raw = std::fs::read(&path).step(|| format!("read {}", path.display()))?;
    config::parse(&raw)
}

/// The CLONE_NEW* flags of `wanted` types the container has.
fn pick(types: &HashSet<LinuxNamespaceType>, wanted: &[LinuxNamespaceType]) -> u64 {
    wanted
        .iter()
        .filter(|t| types.contains(t))
        .fold(0, |acc, t| acc | clone_flag(*t))
}

/// The console socket to hand the pty master to: the caller's, or for a
/// foreground exec without one, our own end of a socketpair.
fn console_for(
    opts: &ExecOptions,
    wants_tty: bool,
    relay: bool,
) -> Result<(Option<OwnedFd>, Option<UnixStream>)> {
    if relay {
        let (ours, theirs) = UnixStream::pair().step(|| "console socketpair".into())?;
        return Ok((Some(OwnedFd::from(theirs)), Some(ours)));
    }
    match (&opts.console_socket, wants_tty) {
        (Some(path), true) => Ok((Some(terminal::connect_console_socket(path)?), None)),
        (Some(_), false) => Err(Error::config(
            "--console-socket was given but the process has no terminal",
        )),
        _ => Ok((None, None)),
    }
}

/// Parent side: place the child in the v1 hierarchies, then wait until it
/// has exec'd (the channel closes) or reports why it could not.
fn place_and_wait(
    spec: &Spec,
    record: &State,
    channel: &Channel,
    cgroup: &crate::cgroups::ContainerCgroup,
    pid: i32,
    cloned_into_v2: bool,
) -> Result<()> {
    cgroup.attach(pid, cloned_into_v2)?;
    if cgroup.needs_migration() {
        channel
            .send(&Message::CgroupsJoined)
            .step(|| "send CgroupsJoined to the exec process".into())?;
    }
    let mut received = channel.recv_with_fds();
    if let Ok(Some((Message::SeccompFd, fds))) = &received {
        hand_to_listener(spec, record, pid, fds)?;
        received = channel.recv_with_fds();
    }
    match received.map(|m| m.map(|(msg, _)| msg)) {
        Ok(None) => Ok(()),
        Ok(Some(Message::Error { step, reason })) => {
            let _ = crate::signals::reap(pid);
            Err(Error::Child { step, reason })
        }
        Ok(Some(other)) => Err(Error::step(
            "exec",
            format!("unexpected message {other:?} from the exec process"),
        )),
        Err(e) => Err(Error::os("read from the exec process", e)),
    }
}

/// The exec'd process's seccomp notify fd goes to the listener, with the
/// container's state as the runtime-spec describes.
fn hand_to_listener(spec: &Spec, record: &State, pid: i32, fds: &[OwnedFd]) -> Result<()> {
    let fd = fds
        .first()
        .ok_or_else(|| Error::step("seccomp notify", "the exec process sent no fd"))?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let path = seccomp
        .and_then(|s| s.listener_path().as_ref())
        .ok_or_else(|| Error::config("linux.seccomp.listenerPath: missing for SCMP_ACT_NOTIFY"))?;
    let metadata = seccomp.and_then(|s| s.listener_metadata().as_deref());
    let state = crate::hooks::SpecState {
        oci_version: spec.version().clone(),
        id: record.id.clone(),
        status: "running".into(),
        pid: Some(pid),
        bundle: record.bundle.display().to_string(),
        annotations: record.annotations.clone(),
    };
    let json = crate::seccomp::process_state_json(pid, &state, metadata)?;
    crate::seccomp::send_to_listener(path, fd.as_fd(), &json)
}

/// The child: never returns.
fn run_child(child: Child) -> ! {
    let err = match setup_child(&child) {
        Ok(program) => prepare_exec(&child, program),
        Err(e) => e,
    };
    let (step, reason) = crate::init::split(&err);
    let _ = child.channel.send(&Message::Error { step, reason });
    // SAFETY: _exit skips destructors that belong to the parent's copy.
    unsafe { libc::_exit(1) }
}

fn setup_child(child: &Child) -> Result<process::Program> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .step(|| "set parent-death signal".into())?;
    // Until exec, nothing in the container may ptrace us or open our
    // /proc/<pid>/exe (the husk binary).
    nix::sys::prctl::set_dumpable(false).step(|| "make the exec process non-dumpable".into())?;
    crate::signals::reset_for_child()?;
    if let Some(cpus) = affinity(child.process, Affinity::Initial) {
        set_affinity(&cpus)?;
    }
    if child.join_flags != 0 {
        syscall::setns(child.init.as_fd(), child.join_flags)
            .step(|| "join the container's namespaces".into())?;
    }
    if child.wait_for_cgroups {
        match child.channel.recv() {
            Ok(Some(Message::CgroupsJoined)) => {}
            _ => {
                return Err(Error::step(
                    "wait for cgroup placement",
                    "husk exec went away",
                ))
            }
        }
    }
    if let Some(cpus) = affinity(child.process, Affinity::Final) {
        set_affinity(&cpus)?;
    }
    apply_lsm_labels(child.process)?;
    let cwd = rootfs::resolve_cwd(child.process.cwd())?;
    let procfs = procfs::Lazy::default();
    let context = process::Context {
        console_socket: child.console.as_ref().map(|fd| fd.as_fd()),
        personality: child
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.personality().as_ref()),
        session_keyring: None,
        in_user_ns: child.in_user_ns,
        cwd: &cwd,
        procfs: &procfs,
        seccomp: child.seccomp.as_ref(),
    };
    let mut program = process::prepare(child.process, &context)?;
    if let Some(fd) = program.notify_fd.take() {
        child
            .channel
            .send_fd(&Message::SeccompFd, fd.as_fd())
            .step(|| "send the seccomp notify fd to husk exec".into())?;
    }
    Ok(program)
}

/// The last steps before exec: no fd of ours survives it, and the parent's
/// death must no longer kill the process once it is the user's.
fn prepare_exec(child: &Child, program: process::Program) -> Error {
    if let Err(e) = syscall::cloexec_from(3 + child.preserve_fds) {
        return Error::os("mark fds close-on-exec", e);
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(None) {
        return Error::os("clear parent-death signal", e);
    }
    program.exec()
}

enum Affinity {
    Initial,
    Final,
}

fn affinity(process: &Process, which: Affinity) -> Option<String> {
    let spec = process.exec_cpu_affinity().as_ref()?;
    match which {
        Affinity::Initial => spec.initial().clone(),
        Affinity::Final => spec.cpu_affinity_final().clone(),
    }
}

/// Pin the calling process to a CPU list such as "0-3,7".
fn set_affinity(list: &str) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for cpu in parse_cpu_list(list)? {
        set.set(cpu)
            .map_err(|e| Error::os(format!("process.execCPUAffinity: cpu {cpu}"), e))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .step(|| format!("process.execCPUAffinity: set {list:?}"))
}

fn parse_cpu_list(list: &str) -> Result<Vec<usize>> {
    let bad = || Error::config(format!("process.execCPUAffinity: {list:?}: not a CPU list"));
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let first: usize = first.trim().parse().map_err(|_| bad())?;
        let last: usize = last.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    Ok(cpus)
}

/// AppArmor and SELinux labels: applied when the host has that LSM; on a
/// host without it (like runc) the field is ignored.
fn apply_lsm_labels(process: &Process) -> Result<()> {
    if let Some(profile) = process
        .apparmor_profile()
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        if apparmor_enabled() {
            let procfs = procfs::Procfs::open()?;
            procfs.write_self("attr/apparmor/exec", format!("exec {profile}").as_bytes())?;
        }
    }
    if let Some(label) = process.selinux_label().as_ref().filter(|l| !l.is_empty()) {
        if Path::new("/sys/fs/selinux/enforce").exists() {
            let procfs = procfs::Procfs::open()?;
            procfs.write_self("attr/exec", label.as_bytes())?;
        }
    }
    Ok(())
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
}

/// The process to run: a process JSON file as is, or the container's own
/// process with runc's exec flags applied.
fn build_process(source: &ProcessSource, spec: &Spec) -> Result<Process> {
    match source {
        ProcessSource::File(path) => {
            let raw = std::fs::read(path).step(|| format!("--process {}", path.display()))?;
            let de = &mut serde_json::Deserializer::from_slice(&raw);
            let process: Process = serde_path_to_error::deserialize(de).map_err(|e| {
                Error::config(format!(
                    "--process {}: {}: {}",
                    path.display(),
                    e.path(),
                    e.inner()
                ))
            })?;
            if process.args().as_ref().is_none_or(|a| a.is_empty()) {
                return Err(Error::config("--process: args must not be empty"));
            }
            Ok(process)
        }
        ProcessSource::Flags(flags) => process_from_flags(flags, spec),
    }
}

fn process_from_flags(flags: &ProcessFlags, spec: &Spec) -> Result<Process> {
    let mut process = spec.process().clone().unwrap_or_default();
    if flags.args.is_empty() {
        return Err(Error::config("exec: no command given"));
    }
    process.set_args(Some(flags.args.clone()));
    process.set_terminal(Some(flags.tty));
    process.set_console_size(None);
    if let Some(cwd) = &flags.cwd {
        process.set_cwd(cwd.clone());
    }
    process.set_env(Some(merge_env(
        process.env().as_deref().unwrap_or_default(),
        &flags.env,
    )));
    if let Some(user) = &flags.user {
        let (uid, gid) = parse_user(user)?;
        process.user_mut().set_uid(uid);
        process.user_mut().set_gid(gid.unwrap_or(0));
    }
    if !flags.additional_gids.is_empty() {
        process
            .user_mut()
            .set_additional_gids(Some(flags.additional_gids.clone()));
    }
    add_capabilities(&mut process, &flags.caps)?;
    if flags.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &flags.apparmor {
        process.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &flags.process_label {
        process.set_selinux_label(Some(label.clone()));
    }
    Ok(process)
}

/// The container's environment with `extra` KEY=value entries replacing or
/// adding to it.
fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut env: Vec<String> = base.to_vec();
    for var in extra {
        let key = var.split('=').next().unwrap_or(var);
        env.retain(|v| v.split('=').next() != Some(key));
        env.push(var.clone());
    }
    env
}

fn parse_user(user: &str) -> Result<(u32, Option<u32>)> {
    let bad = || Error::config(format!("--user {user:?}: expected uid[:gid] as numbers"));
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// `--cap` adds to the bounding, effective and permitted sets, as in runc.
fn add_capabilities(process: &mut Process, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut caps = process.capabilities().clone().unwrap_or_default();
    for name in names {
        let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
            .map_err(|_| Error::config(format!("--cap {name}: unknown capability")))?;
        let add = |set: &Option<Capabilities>| {
            let mut set = set.clone().unwrap_or_default();
            set.insert(cap);
            Some(set)
        };
        let bounding = add(caps.bounding());
        let effective = add(caps.effective());
        let permitted = add(caps.permitted());
        caps.set_bounding(bounding);
        caps.set_effective(effective);
        caps.set_permitted(permitted);
    }
    process.set_capabilities(Some(caps));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").ok(), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("1").ok(), Some(vec![1]));
        for bad in ["a", "3-1", "1-x", "-"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("1000").ok(), Some((1000, None)));
        assert_eq!(parse_user("1000:100").ok(), Some((1000, Some(100))));
        assert!(parse_user("bob").is_err());
    }

    #[test]
    fn env_merge_replaces_keys() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let merged = merge_env(&base, &["A=2".into(), "B=3".into()]);
        assert_eq!(merged, vec!["PATH=/bin", "A=2", "B=3"]);
    }
}

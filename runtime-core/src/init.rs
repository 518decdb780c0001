//! The container's init: the child of `husk create`'s clone, running husk's
//! code (no exec of a helper) until it execs the user's process. It talks to
//! the parent over the channel (protocol table in `channel`), and every error
//! goes back to the parent as a typed message before the init exits.
//!
//! Order of work, chosen so that nothing is done with more privilege than it
//! needs and nothing of the runtime survives the exec:
//!  1. become root of the new user namespace once the parent mapped the ids;
//!     join namespaces by path; second fork only where the kernel forces it;
//!  2. hostname, rootfs mounts, prestart/createRuntime hooks (in the parent),
//!     createContainer hooks, pivot_root, sysctls, masked/read-only paths;
//!  3. terminal, oom score, rlimits, personality, I/O priority, scheduler,
//!     keyring, cwd; bounding set, user switch, capability sets, umask,
//!     no_new_privs; find the executable;
//!  4. `Ready`, then wait on the start socket for `husk start`;
//!  5. startContainer hooks, close-on-exec for every fd above the preserved
//!     ones, exec.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use oci_spec::runtime::{Hook, Spec};

use crate::cgroups::MountView;
use crate::channel::{Channel, Message};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, SpecState};
use crate::namespaces::{self, Plan};
use crate::procfs;
use crate::{process, rootfs, syscall};

/// Everything the init needs; moved into the child by the clone.
pub struct InitArgs {
    pub id: String,
    pub spec: Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub plan: Plan,
    pub channel: Channel,
    pub start_listener: UnixListener,
    pub console_socket: Option<OwnedFd>,
    pub cgroup_view: MountView,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// linux.seccomp, compiled by the parent before the clone.
    pub seccomp: Option<crate::seccomp::Filter>,
}

/// Byte `husk start` sends to release the init.
pub const START_BYTE: u8 = b's';

/// Run the init; never returns.
pub fn run(args: InitArgs) -> ! {
    let result = setup(&args).and_then(|program| wait_and_exec(&args, program));
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let (step, reason) = split(&err);
    let _ = args.channel.send(&Message::Error { step, reason });
    // SAFETY: _exit skips atexit handlers and destructors that belong to the
    // parent's copy of this address space.
    unsafe { libc::_exit(1) }
}

/// The step and the cause of an error, for the error message.
pub fn split(err: &Error) -> (String, String) {
    match err {
        Error::Os { step, source } => (step.clone(), crate::error::errno_text(source)),
        Error::Step { step, reason } | Error::Child { step, reason } => {
            (step.clone(), reason.clone())
        }
        other => (String::new(), other.to_string()),
    }
}

fn expect(channel: &Channel, want: &str) -> Result<Message> {
    match channel.recv() {
        Ok(Some(msg)) => Ok(msg),
        Ok(None) => Err(Error::step(
            format!("wait for {want}"),
            "husk create went away",
        )),
        Err(e) => Err(Error::os(format!("wait for {want}"), e)),
    }
}

fn send(channel: &Channel, msg: &Message) -> Result<()> {
    channel
        .send(msg)
        .step(|| format!("send {msg:?} to husk create"))
}

/// Steps 1–3; returns the resolved program path.
fn setup(args: &InitArgs) -> Result<process::Program> {
    // A half-made container must not outlive a killed `husk create`.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .step(|| "set parent-death signal".into())?;
    // Nothing in the container may ptrace us or open our /proc/<pid>/exe
    // (the husk binary) before we exec.
    nix::sys::prctl::set_dumpable(false).step(|| "make init non-dumpable".into())?;
    crate::signals::reset_for_child()?;
    enter_namespaces(args)?;
    // Relative bind sources are relative to the bundle, as in runc.
    std::env::set_current_dir(&args.bundle)
        .step(|| format!("chdir to the bundle {}", args.bundle.display()))?;
    let spec = &args.spec;
    set_hostname(spec)?;
    let in_user_ns = args.plan.new_user || joins_user(&args.plan);
    let cgroupns = crate::config::namespace_types(spec)
        .contains(&oci_spec::runtime::LinuxNamespaceType::Cgroup);
    rootfs::prepare(spec, &args.rootfs, &args.cgroup_view, in_user_ns, cgroupns)?;
    run_runtime_hooks(args)?;
    run_container_hooks(
        args,
        "createContainer",
        hook_list(spec, |h| h.create_container()),
    )?;
    rootfs::enter(&args.rootfs, args.no_pivot)?;
    // Opened only when something is written under /proc: most containers
    // need no procfs handle at all.
    let procfs = procfs::Lazy::default();
    apply_sysctls(spec, &procfs)?;
    // The cwd is made (if missing) before the root may turn read-only.
    let cwd = rootfs::resolve_cwd(spec_process(spec)?.cwd())?;
    // The console is bound onto /dev/console before the root may turn
    // read-only (an image's own /dev may lack the file to bind onto).
    setup_terminal(args)?;
    rootfs::finish(spec)?;
    let context = process::Context {
        console_socket: None,
        personality: spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
        session_keyring: (!args.no_new_keyring).then_some(args.id.as_str()),
        in_user_ns,
        cwd: &cwd,
        procfs: &procfs,
        seccomp: args.seccomp.as_ref(),
    };
    let mut program = process::prepare(spec_process(spec)?, &context)?;
    if let Some(fd) = program.notify_fd.take() {
        args.channel
            .send_fd(&Message::SeccompFd, fd.as_fd())
            .step(|| "send the seccomp notify fd to husk create".into())?;
    }
    Ok(program)
}

fn setup_terminal(args: &InitArgs) -> Result<()> {
    let process = spec_process(&args.spec)?;
    if !process.terminal().unwrap_or(false) {
        return Ok(());
    }
    let socket = args
        .console_socket
        .as_ref()
        .ok_or_else(|| Error::config("process.terminal: a terminal needs --console-socket"))?;
    process::setup_terminal(process, socket.as_fd(), true)
}

fn spec_process(spec: &Spec) -> Result<&oci_spec::runtime::Process> {
    spec.process()
        .as_ref()
        .ok_or_else(|| Error::config("process: missing"))
}

fn joins_user(plan: &Plan) -> bool {
    plan.child_joins
        .iter()
        .any(|j| j.typ == oci_spec::runtime::LinuxNamespaceType::User)
}

fn enter_namespaces(args: &InitArgs) -> Result<()> {
    let plan = &args.plan;
    if plan.new_user && plan.child_unshare == 0 {
        // Created by the clone: the parent writes our maps.
        expect(&args.channel, "uid/gid maps")?;
        become_ns_root()?;
    }
    namespaces::join_child(plan)?;
    if joins_user(plan) {
        // Our host ids mean nothing in a joined user namespace: files we
        // create would get an unmappable owner (EOVERFLOW).
        become_ns_root()?;
    }
    if plan.child_unshare != 0 {
        unshare_late(args)?;
    }
    // After a second fork the parent places the grandchild in its cgroups
    // before it goes on; a late cgroup namespace must be rooted there too.
    if plan.late_cgroupns || plan.second_fork {
        expect(&args.channel, "cgroup placement")?;
    }
    if plan.late_cgroupns {
        namespaces::unshare_cgroupns()?;
    }
    Ok(())
}

/// The second-fork path: create the remaining namespaces after the joins.
fn unshare_late(args: &InitArgs) -> Result<()> {
    let plan = &args.plan;
    let user = libc::CLONE_NEWUSER as u64;
    if plan.child_unshare & user != 0 {
        namespaces::unshare_child(user)?;
        send(&args.channel, &Message::MapIds)?;
        expect(&args.channel, "uid/gid maps")?;
        become_ns_root()?;
    }
    namespaces::unshare_child(plan.child_unshare & !user)?;
    if plan.second_fork {
        fork_into_new_pid_ns(args)?;
    }
    Ok(())
}

/// unshare(CLONE_NEWPID) applies to children only: fork, report the
/// grandchild's pid to the parent, and let the intermediate exit.
fn fork_into_new_pid_ns(args: &InitArgs) -> Result<()> {
    // SAFETY: the init is single-threaded, so fork is sound.
    match unsafe { nix::unistd::fork() }.step(|| "fork into the new pid namespace".into())? {
        // The intermediate exits at once, so the grandchild cannot use a
        // parent-death signal; it notices a dead `husk create` as EOF on the
        // channel, where it waits next.
        nix::unistd::ForkResult::Child => Ok(()),
        nix::unistd::ForkResult::Parent { child } => {
            let code = i32::from(args.channel.send(&Message::Pid(child.as_raw())).is_err());
            // SAFETY: see `run`.
            unsafe { libc::_exit(code) }
        }
    }
}

fn become_ns_root() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .step(|| "become gid 0 in the user namespace".into())?;
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .step(|| "become uid 0 in the user namespace".into())
}

fn set_hostname(spec: &Spec) -> Result<()> {
    if let Some(name) = spec.hostname() {
        nix::unistd::sethostname(name).step(|| format!("hostname: set {name:?}"))?;
    }
    if let Some(name) = spec.domainname() {
        // SAFETY: name points to len valid bytes for the call.
        let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        if ret != 0 {
            return Err(Error::os(
                format!("domainname: set {name:?}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

fn hook_list<'a>(
    spec: &'a Spec,
    pick: impl Fn(&'a oci_spec::runtime::Hooks) -> &'a Option<Vec<Hook>>,
) -> &'a [Hook] {
    spec.hooks()
        .as_ref()
        .and_then(|h| pick(h).as_deref())
        .unwrap_or_default()
}

/// prestart and createRuntime hooks run in the runtime's namespaces, so the
/// parent runs them; ask it only if there are any.
fn run_runtime_hooks(args: &InitArgs) -> Result<()> {
    let spec = &args.spec;
    let any = !hook_list(spec, |h| h.prestart()).is_empty()
        || !hook_list(spec, |h| h.create_runtime()).is_empty();
    if !any {
        return Ok(());
    }
    send(&args.channel, &Message::Hooks)?;
    match expect(&args.channel, "prestart/createRuntime hooks")? {
        Message::HooksDone => Ok(()),
        other => Err(Error::step(
            "prestart/createRuntime hooks",
            format!("unexpected reply {other:?}"),
        )),
    }
}

fn spec_state(args: &InitArgs, status: &str) -> SpecState {
    SpecState {
        oci_version: args.spec.version().clone(),
        id: args.id.clone(),
        status: status.into(),
        pid: Some(std::process::id() as i32),
        bundle: args.bundle.display().to_string(),
        annotations: args.spec.annotations().clone().unwrap_or_default(),
    }
}

fn run_container_hooks(args: &InitArgs, kind: &str, hooks: &[Hook]) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let status = if kind == "startContainer" {
        "created"
    } else {
        "creating"
    };
    hooks::run_all(kind, hooks, &spec_state(args, status))
}

fn apply_sysctls(spec: &Spec, procfs: &procfs::Lazy) -> Result<()> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctls {
        procfs.get()?.write_sysctl(key, value)?;
    }
    Ok(())
}

/// Steps 4–5.
fn wait_and_exec(args: &InitArgs, program: process::Program) -> Result<std::convert::Infallible> {
    // From here on the init lives on its own: `husk create` exits as soon as
    // it reads Ready, so the parent-death signal must be gone before that.
    nix::sys::prctl::set_pdeathsig(None).step(|| "clear parent-death signal".into())?;
    send(&args.channel, &Message::Ready)?;
    let mut conn = wait_for_start(&args.start_listener)?;
    let err = start_process(args, &program);
    // Tell `husk start` why the exec failed; on success the exec closed `conn`.
    let (step, reason) = split(&err);
    let _ = conn.write_all(Error::Child { step, reason }.to_string().as_bytes());
    Err(err)
}

fn wait_for_start(listener: &UnixListener) -> Result<UnixStream> {
    loop {
        let (mut conn, _) = listener.accept().step(|| "wait for start".into())?;
        let mut byte = [0u8; 1];
        if conn.read_exact(&mut byte).is_ok() && byte[0] == START_BYTE {
            return Ok(conn);
        }
    }
}

fn start_process(args: &InitArgs, program: &process::Program) -> Error {
    let hooks = hook_list(&args.spec, |h| h.start_container());
    if let Err(e) = run_container_hooks(args, "startContainer", hooks) {
        return e;
    }
    if let Err(e) = syscall::cloexec_from(3 + args.preserve_fds) {
        return Error::os("mark fds close-on-exec", e);
    }
    program.exec()
}

//! The container lifecycle, readable in one place:
//!
//! ```text
//!   create ──> created ──start──> running ──(process exits)──> stopped ──delete──> (gone)
//!                 │                  │  ▲
//!                 │                  ▼  │ (pause/resume: cgroups)
//!                 │                paused
//!                 └──────────── delete --force from any state ──────────────────> (gone)
//! ```
//!
//! Every command that changes a container holds the flock on its directory
//! (see `state`). `create` records a `creating` state before it makes
//! anything, so `delete --force` can always clean up a create that died.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::cgroups::ContainerCgroup;
use crate::channel::{self, Channel, Message};
use crate::config::{self, Bundle};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, SpecState};
use crate::init::{self, InitArgs};
use crate::namespaces::{self, Plan};
use crate::procfs::Procfs;
use crate::state::{self, ContainerDir, State, Status};
use crate::syscall::{self, Forked};
use crate::terminal;

/// What `create` (and `run`) are asked to do, as runc's flags say it.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
}

/// A container that `create` made: its init waits for `start`.
pub struct Created {
    pub pid: i32,
    /// A pidfd of the init (for `run`, which waits for it).
    pub pidfd: OwnedFd,
}

/// Undo a half-made create: kill the init, remove the cgroup and the state
/// directory. Disarmed once the container is recorded as created.
struct CreateGuard<'a> {
    dir: &'a ContainerDir,
    cgroup: Option<ContainerCgroup>,
    init: Option<OwnedFd>,
    /// Set once the init exists: a create that fails after that continues
    /// the lifecycle at delete, poststop hooks included (runtime-spec).
    poststop: Option<State>,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pidfd) = &self.init {
            let _ = syscall::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = syscall::pidfd_wait_exit(pidfd.as_fd(), 5000);
        }
        if let Some(cgroup) = &self.cgroup {
            let _ = cgroup.destroy();
        }
        let _ = self.dir.remove();
        if let Some(record) = &self.poststop {
            run_poststop_hooks(record);
        }
    }
}

/// `husk create`: make the container and leave its init waiting for `start`.
pub fn create(opts: &CreateOptions) -> Result<Created> {
    let bundle = config::load_bundle(&opts.bundle)?;
    let console = console_socket(opts, &bundle)?;
    create_bundle(opts, bundle, console)
}

fn create_bundle(
    opts: &CreateOptions,
    bundle: Bundle,
    console: Option<OwnedFd>,
) -> Result<Created> {
    syscall::ensure_single_threaded().step(|| "create".into())?;
    let dir = ContainerDir::create(&opts.root, &opts.id)?;
    let mut guard = CreateGuard {
        dir: &dir,
        cgroup: None,
        init: None,
        poststop: None,
        armed: true,
    };
    dir.save_config(&bundle.raw)?;
    let cgroups_path = cgroups_path(&bundle)?;
    let cgroup = ContainerCgroup::create(cgroups_path.as_deref(), &opts.id, opts.systemd_cgroup)?;
    guard.cgroup = Some(cgroup.clone());
    // Limits and device rules (with linux.devices allowed) are in place
    // before the init exists, so it never runs without them.
    if let Some(linux) = bundle.spec.linux() {
        cgroup.apply_config(linux)?;
    }
    let mut record = new_state(opts, &bundle, cgroup.clone());
    dir.save(&record)?;

    let seccomp = compile_seccomp(&bundle, &opts.root)?;
    let listener = UnixListener::bind(dir.start_socket())
        .step(|| format!("bind {}", dir.start_socket().display()))?;
    let plan = namespaces::plan(&bundle.spec, cgroup.needs_migration());
    namespaces::prepare_parent(&plan, &bundle.spec)?;
    let (parent_end, child_end) = channel::pair()?;
    let clone_into = cgroup.clone_into_fd()?;
    let cloned_into_v2 = clone_into.is_some() && plan.child_unshare == 0;
    let forked = syscall::clone3(
        plan.clone_flags,
        clone_into
            .as_ref()
            .filter(|_| cloned_into_v2)
            .map(|fd| fd.as_fd()),
    )
    .step(|| "clone the container's init".into())?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(parent_end);
            init::run(InitArgs {
                id: opts.id.clone(),
                spec: bundle.spec,
                bundle: bundle.dir,
                rootfs: bundle.rootfs,
                plan,
                channel: child_end,
                start_listener: listener,
                console_socket: console,
                cgroup_view: cgroup.mount_view(),
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                preserve_fds: opts.preserve_fds,
                seccomp,
            })
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_end);
    drop(listener);
    drop(console);
    guard.init = Some(pidfd.try_clone().step(|| "dup pidfd".into())?);
    guard.poststop = Some(record.clone());
    let mut session = Session {
        channel: parent_end,
        plan: &plan,
        bundle: &bundle,
        opts,
        cgroup: &cgroup,
        pid,
        pidfd,
    };
    session.place_and_map(cloned_into_v2)?;
    session.wait_ready(&mut guard)?;

    record.pid = session.pid;
    record.pid_start_time = state::proc_stat(session.pid)
        .map(|s| s.start_time)
        .ok_or_else(|| Error::step("create", "the container's init died"))?;
    record.recorded = Status::Created;
    dir.save(&record)?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, session.pid)?;
    }
    guard.armed = false;
    Ok(Created {
        pid: session.pid,
        pidfd: session.pidfd,
    })
}

/// The parent's side of the protocol (table in `channel`).
struct Session<'a> {
    channel: Channel,
    plan: &'a Plan,
    bundle: &'a Bundle,
    opts: &'a CreateOptions,
    cgroup: &'a ContainerCgroup,
    /// The init's pid: the cloned child, or the grandchild after a second fork.
    pid: i32,
    pidfd: OwnedFd,
}

impl Session<'_> {
    fn send(&self, msg: &Message) -> Result<()> {
        self.channel
            .send(msg)
            .step(|| format!("send {msg:?} to the container's init"))
    }

    /// Right after the clone: id maps, then cgroup placement (a v1 migration
    /// waits ~10 ms for RCU; the child does its own setup meanwhile).
    fn place_and_map(&mut self, cloned_into_v2: bool) -> Result<()> {
        if self.plan.new_user && self.plan.child_unshare == 0 {
            namespaces::write_id_maps(&Procfs::open()?, self.pid, &self.bundle.spec)?;
            self.send(&Message::IdsMapped)?;
        }
        if !self.plan.second_fork {
            self.cgroup.attach(self.pid, cloned_into_v2)?;
            if self.plan.late_cgroupns {
                self.send(&Message::CgroupsJoined)?;
            }
        }
        Ok(())
    }

    /// Serve the child's requests until it is ready or fails.
    fn wait_ready(&mut self, guard: &mut CreateGuard) -> Result<()> {
        loop {
            let received = self
                .channel
                .recv_with_fds()
                .map_err(|e| Error::os("read from the container's init", e))?;
            let (msg, fds) = match received {
                Some((msg, fds)) => (Some(msg), fds),
                None => (None, Vec::new()),
            };
            match msg {
                Some(Message::SeccompFd) => self.hand_to_listener(fds)?,
                Some(Message::Ready) => return Ok(()),
                Some(Message::Error { step, reason }) => return Err(Error::Child { step, reason }),
                Some(Message::MapIds) => {
                    namespaces::write_id_maps(&Procfs::open()?, self.pid, &self.bundle.spec)?;
                    self.send(&Message::IdsMapped)?;
                }
                Some(Message::Pid(pid)) => self.adopt_grandchild(pid, guard)?,
                Some(Message::Hooks) => {
                    self.run_runtime_hooks()?;
                    self.send(&Message::HooksDone)?;
                }
                Some(other) => {
                    return Err(Error::step(
                        "create",
                        format!("unexpected message {other:?} from the container's init"),
                    ))
                }
                None => return Err(self.died_early()),
            }
        }
    }

    /// After a second fork the grandchild is the init: reap the intermediate,
    /// track the grandchild by pidfd, place it in its cgroups.
    fn adopt_grandchild(&mut self, pid: i32, guard: &mut CreateGuard) -> Result<()> {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        self.pid = pid;
        self.pidfd = syscall::pidfd_open(pid).step(|| format!("pidfd of init {pid}"))?;
        guard.init = Some(self.pidfd.try_clone().step(|| "dup pidfd".into())?);
        self.cgroup.attach(pid, false)?;
        self.send(&Message::CgroupsJoined)
    }

    /// linux.seccomp.listenerPath gets the notify fd and the state; if that
    /// fails the create fails (runtime-spec: MUST).
    fn hand_to_listener(&self, fds: Vec<OwnedFd>) -> Result<()> {
        let fd = fds
            .into_iter()
            .next()
            .ok_or_else(|| Error::step("seccomp notify", "the init sent no fd"))?;
        let seccomp = self
            .bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref());
        let path = seccomp
            .and_then(|s| s.listener_path().as_ref())
            .ok_or_else(|| {
                Error::config("linux.seccomp.listenerPath: missing for SCMP_ACT_NOTIFY")
            })?;
        let metadata = seccomp.and_then(|s| s.listener_metadata().as_deref());
        let json = crate::seccomp::process_state_json(self.pid, &self.hook_state(), metadata)?;
        crate::seccomp::send_to_listener(path, fd.as_fd(), &json)
    }

    fn hook_state(&self) -> SpecState {
        SpecState {
            oci_version: self.bundle.spec.version().clone(),
            id: self.opts.id.clone(),
            status: "creating".into(),
            pid: Some(self.pid),
            bundle: self.bundle.dir.display().to_string(),
            annotations: self.bundle.spec.annotations().clone().unwrap_or_default(),
        }
    }

    fn run_runtime_hooks(&self) -> Result<()> {
        let state = self.hook_state();
        let hooks = self.bundle.spec.hooks().as_ref();
        #[allow(deprecated)]
        let prestart = hooks
            .and_then(|h| h.prestart().as_deref())
            .unwrap_or_default();
        hooks::run_all("prestart", prestart, &state)?;
        let create_runtime = hooks
            .and_then(|h| h.create_runtime().as_deref())
            .unwrap_or_default();
        hooks::run_all("createRuntime", create_runtime, &state)
    }

    /// The init closed the channel without a word: say how it ended.
    fn died_early(&self) -> Error {
        let how = match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
            _ => "exited".to_string(),
        };
        Error::step(
            "create",
            format!("the container's init {how} before it was ready"),
        )
    }
}

/// Compile linux.seccomp in the parent (cached under the state root: the
/// compile of a large profile costs more than the rest of a create).
fn compile_seccomp(bundle: &Bundle, root: &Path) -> Result<Option<crate::seccomp::Filter>> {
    bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| crate::seccomp::compile_cached(s, &root.join(".seccomp-cache")))
        .transpose()
}

fn wants_terminal(bundle: &Bundle) -> bool {
    bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

fn console_socket(opts: &CreateOptions, bundle: &Bundle) -> Result<Option<OwnedFd>> {
    match (&opts.console_socket, wants_terminal(bundle)) {
        (Some(path), true) => terminal::connect_console_socket(path).map(Some),
        (None, true) => Err(Error::config(
            "process.terminal is true but no --console-socket was given",
        )),
        (Some(_), false) => Err(Error::config(
            "--console-socket was given but process.terminal is false",
        )),
        (None, false) => Ok(None),
    }
}

fn cgroups_path(bundle: &Bundle) -> Result<Option<String>> {
    let path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref());
    path.map(|p| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| Error::config("linux.cgroupsPath: not valid UTF-8"))
    })
    .transpose()
}

fn new_state(opts: &CreateOptions, bundle: &Bundle, cgroup: ContainerCgroup) -> State {
    let propagation = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    State {
        id: opts.id.clone(),
        pid: 0,
        pid_start_time: 0,
        recorded: Status::Creating,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: state::user_name(nix::unistd::geteuid().as_raw()),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup: Some(cgroup),
        oci_version: bundle.spec.version().clone(),
        poststart: hooks_of(bundle, |h| h.poststart()),
        poststop: hooks_of(bundle, |h| h.poststop()),
        sweep_mounts_under: propagation
            .contains("shared")
            .then(|| bundle.rootfs.clone()),
    }
}

fn hooks_of(
    bundle: &Bundle,
    pick: impl Fn(&oci_spec::runtime::Hooks) -> &Option<Vec<oci_spec::runtime::Hook>>,
) -> Vec<oci_spec::runtime::Hook> {
    bundle
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| pick(h).clone())
        .unwrap_or_default()
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).step(|| format!("--pid-file {}", path.display()))?;
    state::write_atomic(&path, pid.to_string().as_bytes())
}

/// `husk start`: release a created container's init and wait until it has
/// exec'd the user's process (or report why it could not).
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id, true)?;
    let mut record = dir.load()?;
    let status = record.status();
    if status != Status::Created {
        return Err(Error::WrongState {
            id: id.into(),
            status: status.to_string(),
            reason: "only a created container can be started".into(),
        });
    }
    release_init(&dir)?;
    record.recorded = Status::Running;
    dir.save(&record)?;
    drop(dir);
    run_poststart_hooks(&record);
    Ok(())
}

fn release_init(dir: &ContainerDir) -> Result<()> {
    let path = dir.start_socket();
    let mut conn = UnixStream::connect(&path).step(|| format!("connect {}", path.display()))?;
    conn.write_all(&[init::START_BYTE])
        .step(|| "release the container's init".into())?;
    // The init execs with the connection close-on-exec: EOF means it ran;
    // text means it could not.
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .step(|| "wait for the container's process".into())?;
    if !reply.is_empty() {
        return Err(Error::step("start", reply));
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// poststart hooks: failures are reported, but the container keeps running
/// (runtime-spec: "the runtime MUST log a warning").
fn run_poststart_hooks(record: &State) {
    if record.poststart.is_empty() {
        return;
    }
    let state = spec_state(record, Status::Running);
    for e in hooks::run_all_warn("poststart", &record.poststart, &state) {
        eprintln!("husk: warning: {e}");
    }
}

fn spec_state(record: &State, status: Status) -> SpecState {
    SpecState {
        oci_version: record.oci_version.clone(),
        id: record.id.clone(),
        status: status.to_string(),
        pid: (status != Status::Stopped && record.pid > 0).then_some(record.pid),
        bundle: record.bundle.display().to_string(),
        annotations: record.annotations.clone(),
    }
}

/// The state as `husk state` and `husk list` print it (runc's shape).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerInfo {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    pub owner: String,
}

fn info(record: &State, dir: &Path) -> ContainerInfo {
    let status = match record.status() {
        Status::Creating if !crate::state::is_locked(dir) => Status::Stopped,
        other => other,
    };
    ContainerInfo {
        oci_version: crate::OCI_VERSION.into(),
        id: record.id.clone(),
        pid: if status == Status::Stopped {
            0
        } else {
            record.pid
        },
        status: status.to_string(),
        bundle: record.bundle.display().to_string(),
        rootfs: record.rootfs.display().to_string(),
        created: record.created.clone(),
        annotations: record.annotations.clone(),
        owner: record.owner.clone(),
    }
}

/// `husk state`.
pub fn state(root: &Path, id: &str) -> Result<ContainerInfo> {
    let dir = ContainerDir::open(root, id, false)?;
    let record = dir.load()?;
    Ok(info(&record, &dir.path))
}

/// `husk list`: every container under `root`, unreadable ones skipped.
pub fn list(root: &Path) -> Result<Vec<ContainerInfo>> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        if let Ok(dir) = ContainerDir::open(root, &id, false) {
            if let Ok(record) = dir.load() {
                out.push(info(&record, &dir.path));
            }
        }
    }
    Ok(out)
}

/// `husk kill`: signal the init (a pidfd, so never a recycled pid), or with
/// `all` every process of the container's cgroup.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let dir = ContainerDir::open(root, id, false)?;
    let record = dir.load()?;
    let status = record.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(Error::WrongState {
            id: id.into(),
            status: status.to_string(),
            reason: "container not running".into(),
        });
    }
    if all {
        if let Some(cgroup) = &record.cgroup {
            return cgroup.signal_all(signal);
        }
    }
    let pidfd = open_init(&record)?.ok_or_else(|| Error::WrongState {
        id: id.into(),
        status: "stopped".into(),
        reason: "container not running".into(),
    })?;
    syscall::pidfd_send_signal(pidfd.as_fd(), signal)
        .step(|| format!("send signal {signal} to the container's init"))
}

/// A pidfd of the recorded init if it is still that process (checked after
/// the pidfd pins it, so the check cannot race with pid reuse).
pub(crate) fn open_init(record: &State) -> Result<Option<OwnedFd>> {
    if record.pid <= 0 {
        return Ok(None);
    }
    let pidfd = match syscall::pidfd_open(record.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(Error::os(format!("pidfd of {}", record.pid), e)),
    };
    Ok(state::process_alive(record.pid, record.pid_start_time).then_some(pidfd))
}

/// `husk delete`: remove a stopped container; with `force` (or a created
/// one, as runc does), kill it first. Works on half-made containers.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match ContainerDir::open(root, id, true) {
        Ok(dir) => dir,
        Err(Error::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let record = match dir.load() {
        Ok(record) => record,
        // A create killed before it wrote anything: only the directory exists.
        Err(_) if force => return dir.remove(),
        Err(e) => return Err(e),
    };
    let status = record.status();
    if !force && !matches!(status, Status::Stopped | Status::Created) {
        return Err(Error::WrongState {
            id: id.into(),
            status: status.to_string(),
            reason: "cannot delete a container that is not stopped (use --force)".into(),
        });
    }
    if let Some(pidfd) = open_init(&record)? {
        let _ = syscall::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        // A frozen v1 cgroup holds the SIGKILL until thawed.
        if status == Status::Paused {
            if let Some(cgroup) = &record.cgroup {
                let _ = cgroup.thaw();
            }
        }
        let _ = syscall::pidfd_wait_exit(pidfd.as_fd(), 5000);
    }
    if let Some(cgroup) = &record.cgroup {
        cgroup.destroy()?;
    }
    if let Some(rootfs) = &record.sweep_mounts_under {
        sweep_mounts(rootfs);
    }
    dir.remove()?;
    run_poststop_hooks(&record);
    Ok(())
}

/// poststop hooks: failures are warnings (runtime-spec).
fn run_poststop_hooks(record: &State) {
    if record.poststop.is_empty() {
        return;
    }
    let state = spec_state(record, Status::Stopped);
    for e in hooks::run_all_warn("poststop", &record.poststop, &state) {
        eprintln!("husk: warning: {e}");
    }
}

/// With a shared rootfs propagation, the container's mounts may have
/// propagated to the host under the rootfs: detach them, deepest first.
fn sweep_mounts(rootfs: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut targets: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(rootfs))
        .collect();
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for target in targets {
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `husk run`: create, start, and (unless detached) wait for the process,
/// forwarding signals; returns the exit code (128+signal when killed).
pub fn run(opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        create(opts)?;
        start(&opts.root, &opts.id)?;
        return Ok(0);
    }
    let signals = crate::signals::Forwarder::block()?;
    let bundle = config::load_bundle(&opts.bundle)?;
    // In the foreground without --console-socket, husk itself holds the pty
    // master and relays it to its own stdio, as runc does.
    let relay = wants_terminal(&bundle) && opts.console_socket.is_none();
    let (created, relay) = if relay {
        let (ours, theirs) = UnixStream::pair().step(|| "console socketpair".into())?;
        let created = create_bundle(opts, bundle, Some(OwnedFd::from(theirs)))?;
        (created, Some(terminal::Relay::start(ours)?))
    } else {
        let console = console_socket(opts, &bundle)?;
        (create_bundle(opts, bundle, console)?, None)
    };
    start(&opts.root, &opts.id)?;
    let code = signals.forward_until_exit(created.pid, &created.pidfd)?;
    if let Some(relay) = relay {
        relay.finish();
    }
    if !keep {
        delete(&opts.root, &opts.id, true)?;
    }
    Ok(code)
}

// Commands on the container's cgroup: pause, resume, ps, events, update.

/// The container's cgroup, or an error saying it has none.
fn cgroup_of<'a>(record: &'a State, id: &str) -> Result<&'a ContainerCgroup> {
    record
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::step(format!("container {id}"), "it has no cgroup"))
}

fn wrong_state(id: &str, status: Status, reason: &str) -> Error {
    Error::WrongState {
        id: id.into(),
        status: status.to_string(),
        reason: reason.into(),
    }
}

/// `husk pause`: freeze every process of a running container; returns once
/// the kernel reports all of them frozen.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id, true)?;
    let record = dir.load()?;
    let status = record.status();
    if status != Status::Running {
        return Err(wrong_state(
            id,
            status,
            "only a running container can be paused",
        ));
    }
    cgroup_of(&record, id)?.freeze()
}

/// `husk resume`: thaw a paused container; returns once it runs again.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id, true)?;
    let record = dir.load()?;
    let status = record.status();
    if status != Status::Paused {
        return Err(wrong_state(
            id,
            status,
            "only a paused container can be resumed",
        ));
    }
    cgroup_of(&record, id)?.thaw()
}

/// `husk ps`: the host pids of every process in the container's cgroup.
pub fn ps(root: &Path, id: &str) -> Result<Vec<i32>> {
    let dir = ContainerDir::open(root, id, false)?;
    let record = dir.load()?;
    let status = record.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(wrong_state(id, status, "container not running"));
    }
    cgroup_of(&record, id)?.procs()
}

/// `husk events --stats`: the container's resource usage once.
pub fn stats(root: &Path, id: &str) -> Result<crate::cgroups::stats::Stats> {
    let dir = ContainerDir::open(root, id, false)?;
    let record = dir.load()?;
    let status = record.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(wrong_state(id, status, "container not running"));
    }
    Ok(cgroup_of(&record, id)?.stats())
}

/// `husk events`: a stats event every `interval` and an oom event for each
/// OOM in the container's memory cgroup, handed to `emit`, until the
/// container stops (or `emit` fails, e.g. stdout closed).
pub fn events(
    root: &Path,
    id: &str,
    interval: std::time::Duration,
    mut emit: impl FnMut(&crate::cgroups::stats::Event) -> Result<()>,
) -> Result<()> {
    use crate::cgroups::stats::Event;
    use std::time::Instant;
    let dir = ContainerDir::open(root, id, false)?;
    let record = dir.load()?;
    let status = record.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(wrong_state(id, status, "container not running"));
    }
    let cgroup = cgroup_of(&record, id)?;
    let mut watcher = cgroup.oom_watcher()?;
    let event = |kind, data| Event {
        kind,
        id: id.to_owned(),
        data,
    };
    loop {
        emit(&event("stats", Some(cgroup.stats())))?;
        let deadline = Instant::now() + interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let seen = watcher.wait(left)?;
            for _ in 0..seen.ooms {
                emit(&event("oom", None))?;
            }
            if seen.gone || record.status() == Status::Stopped {
                return Ok(());
            }
            if left.is_zero() || Instant::now() >= deadline {
                break;
            }
        }
    }
}

/// `husk update`: apply new limits to a live container. A refused value
/// (a memory limit below the usage, cpus it cannot have, a bad device rule)
/// leaves the container as it was. Device rules keep the container's
/// `linux.devices` allowed, as at create.
pub fn update(root: &Path, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let dir = ContainerDir::open(root, id, true)?;
    let record = dir.load()?;
    let status = record.status();
    if matches!(status, Status::Stopped | Status::Creating) {
        return Err(wrong_state(
            id,
            status,
            "cannot update a container that is not running",
        ));
    }
    let devices = match resources.devices() {
        Some(_) => {
            let path = dir.config_path();
            let raw = std::fs::read(&path).step(|| format!("read {}", path.display()))?;
            let spec = config::parse(&raw)?;
            spec.linux()
                .as_ref()
                .and_then(|l| l.devices().clone())
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    cgroup_of(&record, id)?.update_resources(resources, &devices)
}

//! The container process itself: user and groups, rlimits, OOM score,
//! personality, I/O priority, scheduler, no_new_privs, the environment, the
//! working directory and finding the executable. Each is a short function the
//! init calls in the order that leaves no window (see `init`).

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Process, Scheduler, User,
};

use crate::error::{Context as _, Error, Result};
use crate::procfs::{self, Procfs};
use crate::{capabilities, terminal};

/// What the process setup needs besides the process itself.
pub struct Context<'a> {
    /// Where to send the pty master when process.terminal is set; None when
    /// the caller has set the terminal up already (the init does, before the
    /// root turns read-only).
    pub console_socket: Option<BorrowedFd<'a>>,
    pub personality: Option<&'a LinuxPersonality>,
    /// Join a fresh session keyring named after this container id.
    pub session_keyring: Option<&'a str>,
    pub in_user_ns: bool,
    /// The working directory, already resolved inside the container's root.
    pub cwd: &'a OwnedFd,
    pub procfs: &'a procfs::Lazy,
    /// linux.seccomp, compiled by the parent.
    pub seccomp: Option<&'a crate::seccomp::Filter>,
}

/// Apply everything of `process` to the calling process, in the order that
/// leaves no window (attributes needing privileges first, then the bounding
/// set, the user switch, the capability sets, umask, cwd, no_new_privs), and
/// find the executable. Shared by the container's init and by exec.
pub fn prepare(process: &Process, ctx: &Context) -> Result<Program> {
    if let Some(socket) = ctx.console_socket {
        setup_terminal(process, socket, false)?;
    }
    apply_attributes(process, ctx)?;
    let user = process.user();
    let nnp = process.no_new_privileges().unwrap_or(false);
    let mut notify_fd = None;
    if let Some(caps) = process.capabilities() {
        capabilities::limit_bounding(caps)?;
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: it must go
    // in before the user switch drops it.
    let seccomp_now = ctx.seccomp.filter(|f| f.needs_privileges(nnp));
    if let Some(filter) = seccomp_now {
        notify_fd = filter.clone().install()?;
    }
    switch_user(user, setgroups_allowed(ctx.in_user_ns))?;
    if let Some(caps) = process.capabilities() {
        capabilities::apply_sets(caps)?;
    }
    set_umask(user);
    enter_cwd(ctx.cwd, process.cwd())?;
    if nnp {
        set_no_new_privs()?;
    }
    // A notify filter goes in now, so its fd can reach the listener before
    // the container is reported ready; any other filter is loaded last,
    // right before execve (design.md §3).
    let mut seccomp_late = None;
    if let Some(filter) = ctx.seccomp.filter(|f| !f.needs_privileges(nnp)) {
        if filter.uses_notify() {
            notify_fd = filter.clone().install()?;
        } else {
            seccomp_late = Some(filter.clone());
        }
    }
    let env = environment(process, home_dir(user.uid()));
    let program = process
        .args()
        .as_ref()
        .and_then(|a| a.first())
        .ok_or_else(|| Error::config("process.args: must not be empty"))?;
    let path = find_executable(program, &env)?;
    let mut program = Program::new(path, process.args().as_deref().unwrap_or_default(), &env)?;
    program.seccomp = seccomp_late;
    program.notify_fd = notify_fd;
    Ok(program)
}

/// process.terminal: the pty, its master sent to `socket`. Only the
/// container's init binds the slave onto /dev/console (runc does not for
/// exec: a second bind would outlive the exec'd process).
pub fn setup_terminal(process: &Process, socket: BorrowedFd, bind_console: bool) -> Result<()> {
    if !process.terminal().unwrap_or(false) {
        return Ok(());
    }
    let size = process
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    terminal::setup(socket, size, bind_console)
}

/// In a user namespace whose setgroups is denied, supplementary groups
/// cannot be set; everywhere else they can.
fn setgroups_allowed(in_user_ns: bool) -> bool {
    !in_user_ns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true)
}

fn apply_attributes(process: &Process, ctx: &Context) -> Result<()> {
    if let Some(score) = process.oom_score_adj() {
        set_oom_score_adj(ctx.procfs.get()?, score)?;
    }
    if let Some(rlimits) = process.rlimits() {
        set_rlimits(rlimits)?;
    }
    if let Some(personality) = ctx.personality {
        set_personality(personality)?;
    }
    if let Some(io) = process.io_priority() {
        set_io_priority(io.class(), io.priority())?;
    }
    if let Some(sched) = process.scheduler() {
        set_scheduler(sched)?;
    }
    if let Some(id) = ctx.session_keyring {
        join_session_keyring(id)?;
    }
    Ok(())
}

/// A fresh session keyring named after the container, so containers do not
/// share the host's keys (runc does the same unless --no-new-keyring).
fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = CString::new(format!("_ses.{id}"))
        .map_err(|_| Error::step("join session keyring", "id contains NUL"))?;
    // SAFETY: keyctl with a valid C string argument.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    // Kernels without keyrings (ENOSYS) or with keyctl blocked are not fatal.
    if ret < 0 {
        let err = std::io::Error::last_os_error();
        if !matches!(
            err.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EACCES)
        ) {
            return Err(Error::os("join session keyring", err));
        }
    }
    Ok(())
}

pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for limit in rlimits {
        let resource = rlimit_resource(limit.typ());
        let value = libc::rlimit {
            rlim_cur: limit.soft(),
            rlim_max: limit.hard(),
        };
        // SAFETY: value is a valid rlimit; resource is a kernel RLIMIT_* constant.
        if unsafe { libc::setrlimit(resource, &value) } != 0 {
            return Err(Error::os(
                format!(
                    "process.rlimits: set {:?} to soft {} hard {}",
                    limit.typ(),
                    limit.soft(),
                    limit.hard()
                ),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

fn rlimit_resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    match typ {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_oom_score_adj(procfs: &Procfs, score: i32) -> Result<()> {
    procfs.write_self("oom_score_adj", score.to_string().as_bytes())
}

pub fn set_personality(personality: &LinuxPersonality) -> Result<()> {
    let domain = match personality.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    if let Some(flag) = personality.flags().iter().flatten().next() {
        return Err(Error::config(format!(
            "linux.personality.flags: {flag:?}: no personality flags are supported"
        )));
    }
    // SAFETY: personality(2) takes a plain integer.
    if unsafe { libc::personality(domain) } == -1 {
        return Err(Error::os(
            "linux.personality",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

pub fn set_io_priority(class: IOPriorityClass, priority: i64) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    let class_value = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&priority) {
        return Err(Error::config(format!(
            "process.ioPriority.priority: {priority}: must be 0 to 7"
        )));
    }
    let value = (class_value << IOPRIO_CLASS_SHIFT) | priority;
    // SAFETY: ioprio_set(2) takes plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if ret != 0 {
        return Err(Error::os(
            "process.ioPriority",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// `struct sched_attr` of sched_setattr(2).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

pub fn set_scheduler(sched: &Scheduler) -> Result<()> {
    let policy = match sched.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let flags = sched.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    let mut attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: sched.nice().unwrap_or(0),
        priority: sched.priority().unwrap_or(0).max(0) as u32,
        runtime: sched.runtime().unwrap_or(0),
        deadline: sched.deadline().unwrap_or(0),
        period: sched.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: attr is a valid sched_attr of the size it declares.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &mut attr as *mut SchedAttr, 0) };
    if ret != 0 {
        return Err(Error::os(
            format!("process.scheduler: policy {:?}", sched.policy()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().step(|| "set no_new_privs".into())
}

/// Switch to the configured uid, gid and supplementary groups, keeping the
/// capabilities so they can be set exactly afterwards.
pub fn switch_user(user: &User, setgroups_allowed: bool) -> Result<()> {
    nix::sys::prctl::set_keepcaps(true).step(|| "keep capabilities across setuid".into())?;
    if setgroups_allowed {
        let groups: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&groups)
            .step(|| format!("process.user.additionalGids: setgroups {groups:?}"))?;
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .step(|| format!("process.user.gid: setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .step(|| format!("process.user.uid: setuid {}", user.uid()))?;
    nix::sys::prctl::set_keepcaps(false).step(|| "reset keep-caps".into())
}

/// Set the umask if the config gives one; otherwise the process keeps the
/// runtime's (the spec: "If unspecified, the umask should not be changed").
pub fn set_umask(user: &User) {
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
}

/// The environment of the process: the config's, plus HOME from the
/// container's /etc/passwd when the config has none (as runc does).
pub fn environment(process: &Process, home: Option<String>) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|v| v.starts_with("HOME=")) {
        env.push(format!("HOME={}", home.unwrap_or_else(|| "/".into())));
    }
    env
}

/// The home directory of `uid` in the container's /etc/passwd (read after
/// pivot_root, so it is the container's file).
pub fn home_dir(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2].parse::<u32>().ok()? == uid).then(|| fields[5].to_string())
    })
}

/// Resolve the program to execute as execvp would, with the container's PATH.
/// Done before the container is reported created, so a missing binary fails
/// `create` with runc's message instead of failing at `start`.
pub fn find_executable(program: &str, env: &[String]) -> Result<PathBuf> {
    if program.contains('/') {
        return check_executable(Path::new(program)).map(|()| PathBuf::from(program));
    }
    let path_var = env
        .iter()
        .find_map(|v| v.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(Error::step(
        "exec",
        format!("\"{program}\": executable file not found in $PATH"),
    ))
}

fn check_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::step(
            "exec",
            format!("\"{}\": {}", path.display(), crate::error::errno_text(&e)),
        )
    })?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::step(
            "exec",
            format!("\"{}\": permission denied", path.display()),
        ));
    }
    Ok(())
}

/// chdir into the cwd resolved by `rootfs::resolve_cwd` (as the container
/// user, so permissions apply).
pub fn enter_cwd(dir: &OwnedFd, cwd: &Path) -> Result<()> {
    nix::unistd::fchdir(dir.as_fd()).step(|| format!("process.cwd: chdir {}", cwd.display()))
}

/// The user's program, ready to exec: everything is computed before the
/// container is reported created, so `start` only has to release it.
pub struct Program {
    pub path: PathBuf,
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// A seccomp filter to load as the very last step before execve.
    seccomp: Option<crate::seccomp::Filter>,
    /// The notify fd of a filter already loaded, for the listener.
    pub notify_fd: Option<OwnedFd>,
}

impl Program {
    pub fn new(path: PathBuf, args: &[String], env: &[String]) -> Result<Self> {
        let to_c = |s: &str| {
            CString::new(s).map_err(|_| Error::config(format!("{s:?} contains a NUL byte")))
        };
        Ok(Program {
            program: to_c(&path.to_string_lossy())?,
            argv: args.iter().map(|a| to_c(a)).collect::<Result<_>>()?,
            envp: env.iter().map(|e| to_c(e)).collect::<Result<_>>()?,
            path,
            seccomp: None,
            notify_fd: None,
        })
    }

    /// Load the late seccomp filter, if any, and execute the program; only
    /// returns on failure.
    pub fn exec(&self) -> Error {
        if let Some(filter) = &self.seccomp {
            if let Err(e) = filter.clone().install() {
                return e;
            }
        }
        match nix::unistd::execve(&self.program, &self.argv, &self.envp) {
            Err(e) => Error::os(format!("exec {}", self.path.display()), e),
            Ok(never) => match never {},
        }
    }
}

//! linux.seccomp checked and translated into libseccomp's terms. Every error
//! names the field it is about ("linux.seccomp.syscalls[3].errnoRet: ...").

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::error::{Error, Result};

/// The field prefix of every error.
const FIELD: &str = "linux.seccomp";

/// Syscalls that must never be sent to a listener: the runtime makes them
/// after the filter is loaded and before the listener holds the notify fd
/// (handing the fd over is a sendmsg; errors are reported with write), so a
/// notification there would wait forever.
const NOT_NOTIFIABLE: &[&str] = &["sendmsg", "write"];

/// The profile in libseccomp's terms.
pub struct Profile {
    pub default: ScmpAction,
    /// The architectures the filter covers: the native one first, then
    /// those of `architectures` this host can run.
    pub arches: Vec<ScmpArch>,
    /// SECCOMP_FILTER_FLAG_* bits asked for by `flags`.
    pub flags: u32,
    pub rules: Vec<Rule>,
    /// Whether some rule uses SCMP_ACT_NOTIFY.
    pub notify: bool,
}

/// One entry of `syscalls`.
pub struct Rule {
    /// Its index in `syscalls`, for error messages.
    pub index: usize,
    pub names: Vec<String>,
    pub action: ScmpAction,
    /// The libseccomp rules to add for each name: every inner list is one
    /// rule whose conditions must all hold. Several conditions on the same
    /// argument become one rule each (as runc does): libseccomp cannot AND
    /// two comparisons of one argument.
    pub conditions: Vec<Vec<ScmpArgCompare>>,
}

/// Check `seccomp` and translate it.
pub fn translate(seccomp: &LinuxSeccomp) -> Result<Profile> {
    let default = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        || format!("{FIELD}.defaultAction"),
    )?;
    if default == ScmpAction::Notify {
        return Err(field_error(
            format!("{FIELD}.defaultAction"),
            "SCMP_ACT_NOTIFY cannot be the default action: every syscall of the runtime \
             itself would wait for the listener",
        ));
    }
    let rules = seccomp
        .syscalls()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| rule(i, s))
        .collect::<Result<Vec<_>>>()?;
    let notify = rules.iter().any(|r| r.action == ScmpAction::Notify);
    check_listener(seccomp, notify)?;
    Ok(Profile {
        default,
        arches: arches(seccomp.architectures().as_deref().unwrap_or_default()),
        flags: flags(seccomp.flags().as_deref().unwrap_or_default(), notify),
        rules,
        notify,
    })
}

fn field_error(field: String, reason: impl std::fmt::Display) -> Error {
    Error::config(format!("{field}: {reason}"))
}

/// An action with its errno (ERRNO) or message (TRACE); other actions take
/// none, and the runtime-spec says giving one is an error.
fn action(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    field: impl Fn() -> String,
) -> Result<ScmpAction> {
    use LinuxSeccompAction as A;
    let value = |default: u32| -> Result<u16> {
        let v = errno.unwrap_or(default);
        u16::try_from(v).map_err(|_| {
            field_error(
                field(),
                format!("errno {v} does not fit the 16 bits seccomp returns"),
            )
        })
    };
    let translated = match action {
        A::ScmpActErrno => return Ok(ScmpAction::Errno(i32::from(value(libc::EPERM as u32)?))),
        A::ScmpActTrace => return Ok(ScmpAction::Trace(value(libc::EPERM as u32)?)),
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActNotify => ScmpAction::Notify,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
    };
    match errno {
        Some(_) => Err(field_error(
            field(),
            format!("{action} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"),
        )),
        None => Ok(translated),
    }
}

fn rule(index: usize, syscall: &LinuxSyscall) -> Result<Rule> {
    let field = format!("{FIELD}.syscalls[{index}]");
    if syscall.names().is_empty() {
        return Err(field_error(format!("{field}.names"), "must not be empty"));
    }
    let action = action(syscall.action(), syscall.errno_ret(), || {
        format!("{field}.action")
    })?;
    if action == ScmpAction::Notify {
        check_notifiable(&field, syscall.names())?;
    }
    let args = syscall.args().as_deref().unwrap_or_default();
    Ok(Rule {
        index,
        names: syscall.names().clone(),
        action,
        conditions: conditions(&field, args)?,
    })
}

fn check_notifiable(field: &str, names: &[String]) -> Result<()> {
    match names
        .iter()
        .position(|n| NOT_NOTIFIABLE.contains(&n.as_str()))
    {
        Some(j) => Err(field_error(
            format!("{field}.names[{j}]"),
            format!(
                "{} cannot use SCMP_ACT_NOTIFY: the runtime needs it before the listener \
                 has the notify fd",
                names[j]
            ),
        )),
        None => Ok(()),
    }
}

fn conditions(field: &str, args: &[LinuxSeccompArg]) -> Result<Vec<Vec<ScmpArgCompare>>> {
    let compares = args
        .iter()
        .enumerate()
        .map(|(j, arg)| compare(&format!("{field}.args[{j}]"), arg))
        .collect::<Result<Vec<_>>>()?;
    let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() == args.len() {
        // One rule, all conditions together (no conditions: unconditional).
        return Ok(vec![compares]);
    }
    Ok(compares.into_iter().map(|c| vec![c]).collect())
}

fn compare(field: &str, arg: &LinuxSeccompArg) -> Result<ScmpArgCompare> {
    let index = u32::try_from(arg.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| {
            field_error(
                format!("{field}.index"),
                format!("{} is not a syscall argument (0 to 5)", arg.index()),
            )
        })?;
    use LinuxSeccompOperator as O;
    // valueTwo is only meaningful for MASKED_EQ (value is the mask, valueTwo
    // what the masked argument must equal); the other operators ignore it,
    // as libseccomp does.
    let (op, datum) = match arg.op() {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        O::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        O::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// listenerPath is needed exactly when a rule notifies; listenerMetadata
/// only with listenerPath (runtime-spec).
fn check_listener(seccomp: &LinuxSeccomp, notify: bool) -> Result<()> {
    if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
        return Err(field_error(
            format!("{FIELD}.listenerMetadata"),
            "must not be set without listenerPath",
        ));
    }
    match seccomp.listener_path() {
        None if notify => Err(field_error(
            format!("{FIELD}.listenerPath"),
            "SCMP_ACT_NOTIFY is used, so a listener socket is required",
        )),
        Some(p) if notify && !p.is_absolute() => Err(field_error(
            format!("{FIELD}.listenerPath"),
            format!("{} is not an absolute path", p.display()),
        )),
        _ => Ok(()),
    }
}

/// The filter's architectures: the native one, plus each listed one that
/// this host can execute (its compat ABIs). An architecture the host cannot
/// run never appears in a syscall here, so a rule for it would only make
/// the filter longer.
fn arches(listed: &[Arch]) -> Vec<ScmpArch> {
    let native = ScmpArch::native();
    let mut out = vec![native];
    for arch in listed.iter().filter_map(|a| scmp_arch(*a)) {
        if !out.contains(&arch) && host_runs(native, arch) {
            out.push(arch);
        }
    }
    out
}

/// The ABIs a kernel of `native` can run besides its own.
fn host_runs(native: ScmpArch, arch: ScmpArch) -> bool {
    use ScmpArch as S;
    let companions: &[ScmpArch] = match native {
        S::X8664 => &[S::X86, S::X32],
        S::Aarch64 => &[S::Arm],
        S::Ppc64 => &[S::Ppc],
        S::S390X => &[S::S390],
        S::Mips64 => &[S::Mips, S::Mips64N32],
        S::Mipsel64 => &[S::Mipsel, S::Mipsel64N32],
        S::Parisc64 => &[S::Parisc],
        _ => &[],
    };
    arch == native || companions.contains(&arch)
}

/// libseccomp's name for a runtime-spec architecture (None: the native one).
fn scmp_arch(arch: Arch) -> Option<ScmpArch> {
    use ScmpArch as S;
    Some(match arch {
        Arch::ScmpArchNative => return None,
        Arch::ScmpArchX86 => S::X86,
        Arch::ScmpArchX86_64 => S::X8664,
        Arch::ScmpArchX32 => S::X32,
        Arch::ScmpArchArm => S::Arm,
        Arch::ScmpArchAarch64 => S::Aarch64,
        Arch::ScmpArchMips => S::Mips,
        Arch::ScmpArchMips64 => S::Mips64,
        Arch::ScmpArchMips64n32 => S::Mips64N32,
        Arch::ScmpArchMipsel => S::Mipsel,
        Arch::ScmpArchMipsel64 => S::Mipsel64,
        Arch::ScmpArchMipsel64n32 => S::Mipsel64N32,
        Arch::ScmpArchPpc => S::Ppc,
        Arch::ScmpArchPpc64 => S::Ppc64,
        Arch::ScmpArchPpc64le => S::Ppc64Le,
        Arch::ScmpArchS390 => S::S390,
        Arch::ScmpArchS390x => S::S390X,
        Arch::ScmpArchParisc => S::Parisc,
        Arch::ScmpArchParisc64 => S::Parisc64,
        Arch::ScmpArchRiscv64 => S::Riscv64,
        Arch::ScmpArchLoongarch64 => S::Loongarch64,
        Arch::ScmpArchM68k => S::M68k,
        Arch::ScmpArchSh => S::Sh,
        Arch::ScmpArchSheb => S::Sheb,
    })
}

/// SECCOMP_FILTER_FLAG_* for seccomp(2). TSYNC with a listener needs
/// TSYNC_ESRCH; WAIT_KILLABLE_RECV only means something with a listener (the
/// kernel refuses it without one, and libseccomp drops it then too).
fn flags(listed: &[LinuxSeccompFilterFlag], notify: bool) -> u32 {
    use LinuxSeccompFilterFlag as F;
    let mut bits = 0;
    for flag in listed {
        bits |= match flag {
            F::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            F::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            F::SeccompFilterFlagTsync if notify => {
                libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            }
            F::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            F::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            F::SeccompFilterFlagWaitKillableRecv => 0,
        } as u32;
    }
    if notify {
        bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
    }
    bits
}

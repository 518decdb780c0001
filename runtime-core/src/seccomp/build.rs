//! The profile compiled by libseccomp into a classic BPF program.

use std::io::{Read, Seek};
use std::os::fd::AsFd;

use libseccomp::{ScmpAction, ScmpArch, ScmpFilterContext, ScmpSyscall};

use super::profile::{Profile, Rule};
use crate::error::{Error, Result};

/// What libseccomp made of the profile.
pub struct Compiled {
    /// The program as libseccomp exported it.
    pub program: Vec<libc::sock_filter>,
    /// Syscall names of the profile that libseccomp does not know (skipped,
    /// as runc skips them).
    pub unknown: Vec<String>,
}

/// Build the libseccomp filter for `profile` and export its BPF.
pub fn compile(profile: &Profile) -> Result<Compiled> {
    let mut ctx = ScmpFilterContext::new(profile.default)
        .map_err(|e| lib_error("linux.seccomp.defaultAction", e))?;
    for arch in &profile.arches[1..] {
        ctx.add_arch(*arch)
            .map_err(|e| lib_error(&format!("linux.seccomp.architectures: {arch:?}"), e))?;
    }
    let mut unknown = Vec::new();
    for rule in &profile.rules {
        add_rule(&mut ctx, profile.default, rule, &mut unknown)?;
    }
    Ok(Compiled {
        program: export(&ctx)?,
        unknown,
    })
}

fn lib_error(field: &str, e: libseccomp::error::SeccompError) -> Error {
    Error::config(format!("{field}: libseccomp: {e}"))
}

/// The number of `name` on `arch`, if libseccomp knows it there as a real
/// syscall (not one of its negative pseudo-numbers for multiplexed calls).
pub fn number(name: &str, arch: ScmpArch) -> Option<u32> {
    let nr = ScmpSyscall::from_name_by_arch(name, arch).ok()?;
    u32::try_from(nr.as_raw_syscall()).ok()
}

fn add_rule(
    ctx: &mut ScmpFilterContext,
    default: ScmpAction,
    rule: &Rule,
    unknown: &mut Vec<String>,
) -> Result<()> {
    for (j, name) in rule.names.iter().enumerate() {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            unknown.push(name.clone());
            continue;
        };
        // libseccomp refuses a rule that repeats the default action; such a
        // rule changes nothing anyway.
        if rule.action == default {
            continue;
        }
        for conditions in &rule.conditions {
            ctx.add_rule_conditional(rule.action, syscall, conditions)
                .map_err(|e| {
                    let field = format!("linux.seccomp.syscalls[{}].names[{j}]", rule.index);
                    lib_error(&format!("{field} ({name})"), e)
                })?;
        }
    }
    Ok(())
}

/// libseccomp 2.5 exports only to an fd: go through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let step = "linux.seccomp: export the compiled filter";
    let fd = nix::sys::memfd::memfd_create(c"husk-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::os(step, e))?;
    ctx.export_bpf(fd.as_fd())
        .map_err(|e| Error::step(step, e.to_string()))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::os(step, e))?;
    Ok(bytes.chunks_exact(8).map(decode).collect())
}

/// One `struct sock_filter` in native byte order: u16 code, u8 jt, u8 jf,
/// u32 k.
fn decode(raw: &[u8]) -> libc::sock_filter {
    libc::sock_filter {
        code: u16::from_ne_bytes([raw[0], raw[1]]),
        jt: raw[2],
        jf: raw[3],
        k: u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]),
    }
}

//! The ENOSYS prefix: a few BPF instructions run before libseccomp's program
//! that answer ENOSYS for any syscall numbered above the highest one the
//! profile names on that architecture.
//!
//! A profile whose default denies (say ERRNO with EPERM) also denies the
//! syscalls added to the kernel after the profile was written; a C library
//! that probes a new syscall falls back to an older one on ENOSYS but treats
//! EPERM as a real failure. Syscalls the profile knows keep the default
//! action; only the ones newer than all it names become "not implemented".
//! runc behaves the same way.
//!
//! On x86_64 the x32 ABI shares the audit architecture and is told apart by
//! bit 30 of the syscall number, so that architecture gets two limits.

use libc::sock_filter;
use libseccomp::ScmpArch;

/// seccomp_data offsets.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Where a conditional jump goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// Skip this many instructions.
    Skip(u8),
    /// The final `return ENOSYS`.
    Enosys,
    /// The first instruction of libseccomp's program.
    Filter,
}

enum Insn {
    Load(u32),
    /// Compare the accumulator with k (BPF_JEQ, BPF_JGT, BPF_JGE).
    Jump(u16, u32, To, To),
    Always(To),
    Return(u32),
}

/// Per architecture: its audit token and the highest syscall number of the
/// profile there; x86_64 also has the x32 one.
pub struct Limit {
    pub audit_arch: u32,
    pub max: Option<u32>,
    pub x32_max: Option<u32>,
    /// x86_64: syscall numbers with the x32 bit are x32's and checked
    /// against `x32_max` (none: left to libseccomp, which refuses them as a
    /// foreign architecture unless the filter has x32).
    pub split_x32: bool,
}

/// The audit token the kernel puts in seccomp_data.arch for `arch`, for the
/// architectures that have a block of their own (x32 lives in x86_64's).
pub fn audit_arch(arch: ScmpArch) -> Option<u32> {
    use ScmpArch as S;
    // linux/audit.h: EM_* | __AUDIT_ARCH_64BIT (bit 31) | __AUDIT_ARCH_LE (bit 30).
    Some(match arch {
        S::X8664 => 0xc000_003e,
        S::X86 => 0x4000_0003,
        S::Aarch64 => 0xc000_00b7,
        S::Arm => 0x4000_0028,
        S::Riscv64 => 0xc000_00f3,
        S::Ppc64Le => 0xc000_0015,
        S::Ppc64 => 0x8000_0015,
        S::Ppc => 0x0000_0014,
        S::S390X => 0x8000_0016,
        S::S390 => 0x0000_0016,
        S::Loongarch64 => 0xc000_0102,
        S::Mips => 0x0000_0008,
        S::Mipsel => 0x4000_0008,
        S::Mips64 => 0x8000_0008,
        S::Mipsel64 => 0xc000_0008,
        S::Mips64N32 => 0xa000_0008,
        S::Mipsel64N32 => 0xe000_0008,
        _ => return None,
    })
}

/// The prefix for `limits`, ending where libseccomp's program begins.
pub fn prefix(limits: &[Limit]) -> Vec<sock_filter> {
    let mut code = vec![Insn::Load(OFFSET_ARCH)];
    for limit in limits
        .iter()
        .filter(|l| l.max.is_some() || l.x32_max.is_some())
    {
        block(&mut code, limit);
    }
    code.push(Insn::Always(To::Filter));
    code.push(Insn::Return(
        libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA),
    ));
    assemble(&code)
}

/// `if arch == A { nr > max => ENOSYS } else next block`.
fn block(code: &mut Vec<Insn>, limit: &Limit) {
    let body = native_check(limit.max);
    let x32 = limit.split_x32.then(|| x32_check(limit.x32_max));
    let len = body.len() + 1 + x32.as_ref().map_or(0, Vec::len);
    // Every block is a handful of instructions, far below u8::MAX.
    let skip = u8::try_from(len).unwrap_or(u8::MAX);
    code.push(Insn::Jump(
        libc::BPF_JEQ as u16,
        limit.audit_arch,
        To::Next,
        To::Skip(skip),
    ));
    code.push(Insn::Load(OFFSET_NR));
    if let Some(x32) = x32 {
        code.extend(x32);
    }
    code.extend(body);
}

/// `if nr >= X32_BIT { nr > x32_max => ENOSYS, else filter }`; falls
/// through to the x86_64 check otherwise.
fn x32_check(max: Option<u32>) -> Vec<Insn> {
    let on_x32 = match max {
        Some(max) => Insn::Jump(libc::BPF_JGT as u16, max, To::Enosys, To::Filter),
        None => Insn::Always(To::Filter),
    };
    vec![
        Insn::Jump(libc::BPF_JGE as u16, X32_SYSCALL_BIT, To::Next, To::Skip(1)),
        on_x32,
    ]
}

fn native_check(max: Option<u32>) -> Vec<Insn> {
    vec![match max {
        Some(max) => Insn::Jump(libc::BPF_JGT as u16, max, To::Enosys, To::Filter),
        None => Insn::Always(To::Filter),
    }]
}

/// Resolve the jump targets: the `return ENOSYS` is the last instruction,
/// libseccomp's program follows right after.
fn assemble(code: &[Insn]) -> Vec<sock_filter> {
    let len = code.len();
    let offset = |pc: usize, to: To| -> u32 {
        match to {
            To::Next => 0,
            To::Skip(n) => u32::from(n),
            To::Enosys => (len - 1 - (pc + 1)) as u32,
            To::Filter => (len - (pc + 1)) as u32,
        }
    };
    // Conditional offsets are u8: the prefix is a few dozen instructions.
    let short = |pc: usize, to: To| u8::try_from(offset(pc, to)).unwrap_or(u8::MAX);
    code.iter()
        .enumerate()
        .map(|(pc, insn)| match *insn {
            Insn::Load(at) => stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, at),
            Insn::Jump(op, k, jt, jf) => sock_filter {
                code: (libc::BPF_JMP | libc::BPF_K) as u16 | op,
                jt: short(pc, jt),
                jf: short(pc, jf),
                k,
            },
            Insn::Always(to) => stmt(libc::BPF_JMP | libc::BPF_JA, offset(pc, to)),
            Insn::Return(k) => stmt(libc::BPF_RET | libc::BPF_K, k),
        })
        .collect()
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions the prefix uses.
    /// Returns the action, or None where the prefix hands over to the filter.
    fn run(prog: &[sock_filter], arch: u32, nr: u32) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        while pc < prog.len() {
            let i = prog[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    acc = if i.k == OFFSET_ARCH { arch } else { nr }
                }
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c if c == libc::BPF_RET | libc::BPF_K => return Some(i.k),
                c => {
                    let hit = match c & 0xf0 {
                        x if x == libc::BPF_JEQ => acc == i.k,
                        x if x == libc::BPF_JGT => acc > i.k,
                        x if x == libc::BPF_JGE => acc >= i.k,
                        other => panic!("unexpected jump {other:#x}"),
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
            }
        }
        None
    }

    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;

    fn limits(x32_max: Option<u32>) -> Vec<Limit> {
        vec![
            Limit {
                audit_arch: X86_64,
                max: Some(400),
                x32_max,
                split_x32: true,
            },
            Limit {
                audit_arch: I386,
                max: Some(300),
                x32_max: None,
                split_x32: false,
            },
        ]
    }

    #[test]
    fn newer_than_the_profile_is_enosys_per_arch() {
        let p = prefix(&limits(Some(X32_SYSCALL_BIT + 500)));
        assert_eq!(run(&p, X86_64, 400), None);
        assert_eq!(run(&p, X86_64, 401), Some(ENOSYS));
        assert_eq!(run(&p, X86_64, u32::MAX), Some(ENOSYS));
        assert_eq!(run(&p, I386, 300), None);
        assert_eq!(run(&p, I386, 301), Some(ENOSYS));
        assert_eq!(run(&p, X32_SYSCALL_BIT + 1, 1), None, "unknown arch");
    }

    #[test]
    fn x32_has_its_own_limit() {
        let p = prefix(&limits(Some(X32_SYSCALL_BIT + 500)));
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT), None);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT + 500), None);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT + 501), Some(ENOSYS));
        // Without x32 in the filter, x32 calls are libseccomp's to refuse.
        let p = prefix(&limits(None));
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT + 1), None);
        assert_eq!(run(&p, X86_64, 401), Some(ENOSYS));
    }
}

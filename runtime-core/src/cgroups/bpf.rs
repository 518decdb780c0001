//! cgroup v2 device rules: a BPF_PROG_TYPE_CGROUP_DEVICE program generated
//! from a [`Policy`], loaded with bpf(BPF_PROG_LOAD) and attached to the
//! container's cgroup (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI).
//!
//! cgroups-rs has no such program (and youki leaves it off by default), so
//! husk assembles the few instructions it needs itself. The kernel calls the
//! program on every device open and mknod in the cgroup with a
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! where access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*; returning 0
//! denies with EPERM, 1 allows. With BPF_F_ALLOW_MULTI every program on the
//! way from the cgroup to the root must allow.
//!
//! The program evaluates the policy exactly as [`Policy::permits`] does:
//!
//! ```text
//!   r2 = access bits asked for and not decided yet; r3 = type; r4 = major; r5 = minor
//!   for each rule, last first:
//!     if the rule does not match type/major/minor: next rule
//!     deny:  if r2 & rule.access: return 0
//!     allow: r2 &= ~rule.access; if r2 == 0: return 1
//!   return default
//! ```
//!
//! A program stays attached while the cgroup exists, whether or not husk
//! keeps an fd of it. It is named [`PROG_NAME`] so that `update` replaces
//! husk's program (BPF_F_REPLACE) and leaves any other alone.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::devices::{DeviceKind, Policy};

/// The name the kernel shows for husk's program (at most 15 bytes).
pub const PROG_NAME: &str = "husk_devices";

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// One eBPF instruction, as `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes: class | op | source.
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x07 | 0x50;
const ALU64_RSH_K: u8 = 0x07 | 0x70;
const ALU64_MOV_K: u8 = 0x07 | 0xb0;
const ALU64_MOV_X: u8 = 0x07 | 0xb0 | 0x08;
const JMP_JA: u8 = 0x05;
const JMP_JNE_K: u8 = 0x05 | 0x50;
const JMP_JSET_K: u8 = 0x05 | 0x40;
const JMP_EXIT: u8 = 0x05 | 0x90;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

const fn ret(v: i32) -> [Insn; 2] {
    [insn(ALU64_MOV_K, 0, 0, 0, v), insn(JMP_EXIT, 0, 0, 0, 0)]
}

/// The program for `policy`.
pub fn program(policy: &Policy) -> Vec<Insn> {
    let mut p = vec![
        // r2 = ctx->access_type; r3 = type (low 16 bits); r2 = access bits.
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_MOV_X, 3, 2, 0, 0),
        insn(ALU64_AND_K, 3, 0, 0, 0xffff),
        insn(ALU64_RSH_K, 2, 0, 0, 16),
        // r4 = ctx->major; r5 = ctx->minor.
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in policy.rules.iter().rev() {
        let mut body = Vec::new();
        if rule.allow {
            body.push(insn(ALU64_AND_K, 2, 0, 0, i32::from(!rule.access & 0x07)));
            body.push(insn(JMP_JNE_K, 2, 0, 2, 0));
            body.extend(ret(1));
        } else {
            body.push(insn(JMP_JSET_K, 2, 0, 1, i32::from(rule.access)));
            body.push(insn(JMP_JA, 0, 0, 2, 0));
            body.extend(ret(0));
        }
        let mut conds: Vec<(u8, i32)> = Vec::new();
        match rule.kind {
            DeviceKind::All => {}
            DeviceKind::Char => conds.push((3, BPF_DEVCG_DEV_CHAR)),
            DeviceKind::Block => conds.push((3, BPF_DEVCG_DEV_BLOCK)),
        }
        // Numbers were checked to fit in i32 when the rule was parsed.
        if let Some(m) = rule.major.and_then(|m| i32::try_from(m).ok()) {
            conds.push((4, m));
        }
        if let Some(m) = rule.minor.and_then(|m| i32::try_from(m).ok()) {
            conds.push((5, m));
        }
        // Each condition jumps over the rest of the block when it fails.
        let n = conds.len();
        for (i, (reg, value)) in conds.into_iter().enumerate() {
            let skip = (n - i - 1) + body.len();
            p.push(insn(JMP_JNE_K, reg, 0, skip as i16, value));
        }
        p.extend(body);
    }
    p.extend(ret(i32::from(policy.default_allow)));
    p
}

fn bpf(cmd: libc::c_long, attr: *mut u8, size: usize) -> io::Result<i64> {
    // SAFETY: `attr` points to a live, initialised #[repr(C)] attribute
    // struct of `size` bytes matching `cmd`'s member of union bpf_attr; the
    // kernel reads (and for queries writes) at most `size` bytes of it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, size) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

fn fd_from(r: i64) -> io::Result<OwnedFd> {
    let fd = i32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C, align(8))]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Load the program; on a verifier refusal the error carries its log.
pub fn load(insns: &[Insn]) -> io::Result<OwnedFd> {
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME.as_bytes());
    let insn_cnt = u32::try_from(insns.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "program too long"))?;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    let size = std::mem::size_of::<ProgLoadAttr>();
    match bpf(BPF_PROG_LOAD, (&raw mut attr).cast(), size) {
        Ok(fd) => fd_from(fd),
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::EACCES) =>
        {
            // Again with the verifier's log, to say why.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            if let Ok(fd) = bpf(BPF_PROG_LOAD, (&raw mut attr).cast(), size) {
                return fd_from(fd);
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let last = text.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
            Err(io::Error::new(e.kind(), format!("{e} (verifier: {last})")))
        }
        Err(e) => Err(e),
    }
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn raw(fd: BorrowedFd) -> u32 {
    // fds are never negative.
    fd.as_raw_fd() as u32
}

/// Attach `prog` to the cgroup `cgroup` (a directory fd), replacing
/// `replace` atomically when given.
pub fn attach(cgroup: BorrowedFd, prog: BorrowedFd, replace: Option<BorrowedFd>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let Some(old) = replace {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = raw(old);
    }
    bpf(
        BPF_PROG_ATTACH,
        (&raw mut attr).cast(),
        std::mem::size_of::<AttachAttr>(),
    )
    .map(|_| ())
}

/// Detach `prog` from `cgroup`.
pub fn detach(cgroup: BorrowedFd, prog: BorrowedFd) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(prog),
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(
        BPF_PROG_DETACH,
        (&raw mut attr).cast(),
        std::mem::size_of::<AttachAttr>(),
    )
    .map(|_| ())
}

#[repr(C, align(8))]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    /// Explicit, so the tail the kernel checks for zeros is never padding.
    _pad: u32,
}

/// Ids of the device programs attached to `cgroup` itself (not inherited).
pub fn attached(cgroup: BorrowedFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: raw(cgroup),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(
        BPF_PROG_QUERY,
        (&raw mut attr).cast(),
        std::mem::size_of::<QueryAttr>(),
    )?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// An fd of the loaded program `id`.
pub fn prog_fd(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    let fd = bpf(
        BPF_PROG_GET_FD_BY_ID,
        (&raw mut attr).cast(),
        std::mem::size_of::<GetFdAttr>(),
    )?;
    fd_from(fd)
}

#[repr(C, align(8))]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The name of a loaded program (struct bpf_prog_info: name[16] at byte 64).
pub fn prog_name(prog: BorrowedFd) -> io::Result<String> {
    let mut info = [0u64; 10];
    let mut attr = InfoAttr {
        bpf_fd: raw(prog),
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(
        BPF_OBJ_GET_INFO_BY_FD,
        (&raw mut attr).cast(),
        std::mem::size_of::<InfoAttr>(),
    )?;
    let bytes: Vec<u8> = info[8..10].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// Install `policy` on `cgroup`: load the program, then attach it in place
/// of husk's previous one (atomically, so the container is never without
/// rules), and detach any further husk programs. Programs of others stay.
pub fn install(cgroup: BorrowedFd, policy: &Policy) -> io::Result<()> {
    let prog = load(&program(policy))?;
    let mut ours = Vec::new();
    for id in attached(cgroup)? {
        let fd = match prog_fd(id) {
            Ok(fd) => fd,
            // Detached meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if prog_name(fd.as_fd())? == PROG_NAME {
            ours.push(fd);
        }
    }
    let mut old = ours.into_iter();
    let first = old.next();
    attach(cgroup, prog.as_fd(), first.as_ref().map(|f| f.as_fd()))?;
    for fd in old {
        detach(cgroup, fd.as_fd())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::devices::{DeviceRule, ACC_ALL, ACC_READ};
    use super::*;

    #[test]
    fn cgroups_bpf_program_shape() {
        let policy = Policy {
            default_allow: false,
            rules: vec![
                DeviceRule {
                    allow: true,
                    kind: DeviceKind::Char,
                    major: Some(1),
                    minor: Some(3),
                    access: ACC_ALL,
                },
                DeviceRule {
                    allow: false,
                    kind: DeviceKind::All,
                    major: None,
                    minor: Some(3),
                    access: ACC_READ,
                },
            ],
        };
        let p = program(&policy);
        // 6 prologue + deny rule (1 cond + 4) + allow rule (3 conds + 4) + 2.
        assert_eq!(p.len(), 6 + 5 + 7 + 2);
        // The last rule comes first: its one condition skips its 4-insn body.
        assert_eq!(p[6], insn(JMP_JNE_K, 5, 0, 4, 3));
        assert_eq!(p[7], insn(JMP_JSET_K, 2, 0, 1, i32::from(ACC_READ)));
        // The allow rule: type, major, minor checks skip 2, 1, 0 + 4.
        assert_eq!(p[11], insn(JMP_JNE_K, 3, 0, 6, BPF_DEVCG_DEV_CHAR));
        assert_eq!(p[12], insn(JMP_JNE_K, 4, 0, 5, 1));
        assert_eq!(p[13], insn(JMP_JNE_K, 5, 0, 4, 3));
        assert_eq!(p[18], insn(ALU64_MOV_K, 0, 0, 0, 0));
        assert_eq!(p[19], insn(JMP_EXIT, 0, 0, 0, 0));
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }
}

//! linux.seccomp, end to end: each test compiles a profile with
//! `seccomp::compile`, loads it into a forked child with `Filter::install`
//! and watches what the kernel does with the child's syscalls.

mod seccomp_util;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use libc::SYS_getppid;
use serde_json::json;

use runtime_core::hooks::SpecState;
use runtime_core::seccomp::{self, Filter};
use seccomp_util::{call, compile, in_child, in_child_prepared, profile, End};

const EOPNOTSUPP: i32 = libc::EOPNOTSUPP;

/// getppid ignores its arguments, but seccomp sees them: a harmless probe
/// for argument conditions. Returns the errno, 0 when it was allowed.
fn getppid_with(a: u64, b: u64) -> i32 {
    call(SYS_getppid, a, b, 0)
}

#[test]
fn errno_rule_returns_its_errno() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": EOPNOTSUPP}]
    }));
    let end = in_child(&filter, |_| {
        let mut buf = [0u8; 256];
        let cwd = call(libc::SYS_getcwd, buf.as_mut_ptr() as u64, 256, 0);
        let ppid = call(SYS_getppid, 0, 0, 0);
        if ppid != 0 {
            return 100;
        }
        cwd
    });
    assert_eq!(end, End::Exit(EOPNOTSUPP), "getcwd fails, getppid runs");
}

#[test]
fn errno_rule_without_errno_ret_is_eperm() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(
        in_child(&filter, |_| getppid_with(0, 0)),
        End::Exit(libc::EPERM)
    );
}

/// A deny-by-default profile: the default errno applies to old syscalls it
/// does not name, ENOSYS to syscalls newer than every one it names.
#[test]
fn default_errno_for_old_syscalls_enosys_for_newer_ones() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EACCES,
        "syscalls": [
            {"names": ["exit_group", "exit", "getppid", "close_range"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": EOPNOTSUPP}
        ]
    }));
    let probe = |nr: libc::c_long| in_child(&filter, move |_| call(nr, 0, 0, 0));
    // getpid (39) is older than close_range (436), the newest the profile names.
    assert_eq!(probe(libc::SYS_getpid), End::Exit(libc::EACCES));
    assert_eq!(probe(libc::SYS_getcwd), End::Exit(EOPNOTSUPP));
    assert_eq!(probe(SYS_getppid), End::Exit(0));
    // openat2 (437) and faccessat2 (439) are newer, and so is mseal (462),
    // which this libseccomp does not even know; and a number no kernel has.
    assert_eq!(probe(libc::SYS_openat2), End::Exit(libc::ENOSYS));
    assert_eq!(probe(libc::SYS_faccessat2), End::Exit(libc::ENOSYS));
    assert_eq!(probe(libc::SYS_mseal), End::Exit(libc::ENOSYS));
    assert_eq!(probe(100_000), End::Exit(libc::ENOSYS));
}

#[test]
fn enosys_prefix_is_not_added_when_the_default_allows() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
    }));
    // mseal with a zero length succeeds on kernels that have it.
    assert_eq!(
        in_child(&filter, |_| call(libc::SYS_mseal, 0, 0, 0)),
        End::Exit(0)
    );
}

fn condition_filter(args: serde_json::Value) -> Filter {
    compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77, "args": args}]
    }))
}

/// For each operator, which of 9, 10 and 11 match "arg1 OP 10".
#[test]
fn argument_operators() {
    let cases = [
        ("SCMP_CMP_NE", [true, false, true]),
        ("SCMP_CMP_LT", [true, false, false]),
        ("SCMP_CMP_LE", [true, true, false]),
        ("SCMP_CMP_EQ", [false, true, false]),
        ("SCMP_CMP_GE", [false, true, true]),
        ("SCMP_CMP_GT", [false, false, true]),
    ];
    for (op, expected) in cases {
        let filter = condition_filter(json!([{"index": 1, "value": 10, "op": op}]));
        for (arg, hit) in [9u64, 10, 11].into_iter().zip(expected) {
            let end = in_child(&filter, |_| getppid_with(0, arg));
            let want = End::Exit(if hit { 77 } else { 0 });
            assert_eq!(end, want, "arg1 = {arg} with {op} 10");
        }
    }
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_result() {
    let filter = condition_filter(json!([
        {"index": 0, "value": 0xf0, "valueTwo": 0x30, "op": "SCMP_CMP_MASKED_EQ"}
    ]));
    assert_eq!(in_child(&filter, |_| getppid_with(0x35, 0)), End::Exit(77));
    assert_eq!(in_child(&filter, |_| getppid_with(0x45, 0)), End::Exit(0));
    // Without valueTwo the masked bits must be zero (Docker's clone rule).
    let filter = condition_filter(json!([{"index": 0, "value": 0xf0, "op": "SCMP_CMP_MASKED_EQ"}]));
    assert_eq!(in_child(&filter, |_| getppid_with(0x0f, 0)), End::Exit(77));
    assert_eq!(in_child(&filter, |_| getppid_with(0x10, 0)), End::Exit(0));
}

#[test]
fn conditions_on_different_arguments_must_all_hold() {
    let filter = condition_filter(json!([
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}
    ]));
    assert_eq!(in_child(&filter, |_| getppid_with(1, 2)), End::Exit(77));
    assert_eq!(in_child(&filter, |_| getppid_with(1, 3)), End::Exit(0));
    assert_eq!(in_child(&filter, |_| getppid_with(0, 2)), End::Exit(0));
}

/// Two conditions on one argument become two rules (as runc does): either
/// one matching is enough.
#[test]
fn conditions_on_the_same_argument_are_separate_rules() {
    let filter = condition_filter(json!([
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}
    ]));
    assert_eq!(in_child(&filter, |_| getppid_with(1, 0)), End::Exit(77));
    assert_eq!(in_child(&filter, |_| getppid_with(2, 0)), End::Exit(77));
    assert_eq!(in_child(&filter, |_| getppid_with(3, 0)), End::Exit(0));
}

fn action_filter(action: &str) -> Filter {
    compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": action}]
    }))
}

#[test]
fn kill_actions_kill_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL",
    ] {
        let end = in_child(&action_filter(action), |_| getppid_with(0, 0));
        assert_eq!(end, End::Signal(libc::SIGSYS), "{action}");
    }
}

const TRAPPED: i32 = 42;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // SYS_SECCOMP (1): the signal came from a filter's TRAP.
    let status = if code == 1 { TRAPPED } else { 43 };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(status) }
}

fn catch_sigsys() {
    // SAFETY: a zeroed sigaction is valid; the handler has the SA_SIGINFO
    // signature and only calls _exit.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigsys as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut());
    }
}

#[test]
fn trap_delivers_a_catchable_sigsys() {
    let filter = action_filter("SCMP_ACT_TRAP");
    let end = in_child_prepared(&filter, catch_sigsys, |_| getppid_with(0, 0));
    assert_eq!(end, End::Exit(TRAPPED));
    assert_eq!(
        in_child(&filter, |_| getppid_with(0, 0)),
        End::Signal(libc::SIGSYS)
    );
}

#[test]
fn log_allows() {
    assert_eq!(
        in_child(&action_filter("SCMP_ACT_LOG"), |_| getppid_with(0, 0)),
        End::Exit(0)
    );
}

#[test]
fn trace_without_a_tracer_is_enosys() {
    assert_eq!(
        in_child(&action_filter("SCMP_ACT_TRACE"), |_| getppid_with(0, 0)),
        End::Exit(libc::ENOSYS)
    );
}

#[test]
fn filter_flags_are_accepted_by_the_kernel() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(
        in_child(&filter, |_| getppid_with(0, 0)),
        End::Exit(libc::EPERM)
    );
}

/// i386 getppid through `int 0x80`; returns the errno (0 on success).
fn i386_getppid() -> i32 {
    let ret: i32;
    // SAFETY: int 0x80 is the i386 syscall gate, available to 64-bit
    // processes with IA32 emulation; getppid (64) takes no arguments and
    // touches no memory. The kernel may clear r8-r11.
    unsafe {
        std::arch::asm!("int 0x80", inlateout("eax") 64i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, options(nostack));
    }
    if ret < 0 {
        -ret
    } else {
        0
    }
}

#[test]
fn compat_architectures_get_their_rules() {
    let arches = json!([
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64"
    ]);
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": arches,
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
    }));
    assert_eq!(in_child(&filter, |_| i386_getppid()), End::Exit(77), "i386");
    // The x32 ABI: the x86_64 audit arch with bit 30 in the number (the
    // filter answers before the kernel, whether or not it has x32).
    let x32_getppid = 0x4000_0000 + 110;
    assert_eq!(
        in_child(&filter, |_| call(x32_getppid, 0, 0, 0)),
        End::Exit(77),
        "x32"
    );
    assert_eq!(
        in_child(&filter, |_| getppid_with(0, 0)),
        End::Exit(77),
        "x86_64"
    );
}

#[test]
fn architectures_left_out_are_refused() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
    }));
    let end = in_child(&filter, |_| i386_getppid());
    assert_eq!(end, End::Signal(libc::SIGSYS), "i386 without SCMP_ARCH_X86");
    let end = in_child(&filter, |_| call(0x4000_0000 + 110, 0, 0, 0));
    assert_eq!(end, End::Signal(libc::SIGSYS), "x32 without SCMP_ARCH_X32");
}

#[test]
fn i386_syscalls_newer_than_the_profile_get_enosys() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        // On i386 getppid is 64, exit_group 252: anything above is newer.
        "syscalls": [{"names": ["getppid", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(in_child(&filter, |_| i386_getppid()), End::Exit(0));
    let i386 = |nr: i32| -> i32 {
        let ret: i32;
        // SAFETY: as in i386_getppid; getpid takes no arguments, and mseal
        // is answered by the filter before the kernel reads any.
        unsafe {
            std::arch::asm!("int 0x80", inlateout("eax") nr => ret,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _, options(nostack));
        }
        -ret
    };
    // i386 getpid (20) is older: EPERM; i386 mseal (462) is newer: ENOSYS.
    assert_eq!(in_child(&filter, move |_| i386(20)), End::Exit(libc::EPERM));
    assert_eq!(
        in_child(&filter, move |_| i386(462)),
        End::Exit(libc::ENOSYS)
    );
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall", "getppid"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(filter.unknown_syscalls(), ["no_such_syscall"]);
    assert_eq!(
        in_child(&filter, |_| getppid_with(0, 0)),
        End::Exit(libc::EPERM)
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                      "comment": "x", "includes": {"caps": ["CAP_SYS_ADMIN"]}, "errno": "EPERM"}]
    }));
    assert_eq!(
        in_child(&filter, |_| getppid_with(0, 0)),
        End::Exit(libc::EPERM)
    );
}

fn compile_error(json: serde_json::Value) -> String {
    seccomp::compile(&profile(json))
        .expect_err("the profile is refused")
        .to_string()
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}),
            "linux.seccomp.defaultAction: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}),
            "linux.seccomp.syscalls[1].action: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
            "linux.seccomp.syscalls[0].action: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                   "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0].names[1]: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"}),
            "linux.seccomp.defaultAction: ",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
            "linux.seccomp.listenerMetadata: ",
        ),
    ];
    for (json, prefix) in cases {
        let err = compile_error(json.clone());
        assert!(err.contains(prefix), "{json}: got {err:?}, want {prefix:?}");
    }
}

#[test]
fn needs_privileges_only_without_no_new_privs() {
    let filter = action_filter("SCMP_ACT_ERRNO");
    assert!(filter.needs_privileges(false));
    assert!(!filter.needs_privileges(true));
}

/// A seccomp agent: accepts one connection on `listener`, takes the state
/// and the notify fd, and answers the first notification with `reply`.
fn agent(listener: UnixListener, reply: i64) -> (serde_json::Value, i64) {
    let (conn, _) = listener.accept().expect("agent: accept");
    let mut buf = vec![0u8; 64 * 1024];
    let mut fds = Vec::new();
    let n = runtime_core::channel::recv_packet(conn.as_raw_fd(), &mut buf, &mut fds)
        .expect("agent: recvmsg");
    let mut json = buf[..n].to_vec();
    (&conn)
        .read_to_end(&mut json)
        .expect("agent: rest of the state");
    let state: serde_json::Value = serde_json::from_slice(&json).expect("agent: state is JSON");
    assert_eq!(fds.len(), 1, "one fd by SCM_RIGHTS");
    let syscall = answer(&fds[0], reply);
    (state, syscall)
}

/// Receive one notification on `fd` and make its syscall return `reply`.
fn answer(fd: &OwnedFd, reply: i64) -> i64 {
    use libseccomp::{notify_id_valid, ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    let req = ScmpNotifReq::receive(fd.as_raw_fd()).expect("agent: receive notification");
    notify_id_valid(fd.as_raw_fd(), req.id).expect("agent: notification still valid");
    ScmpNotifResp::new_val(req.id, reply, ScmpNotifRespFlags::empty())
        .respond(fd.as_raw_fd())
        .expect("agent: respond");
    i64::from(req.data.syscall.as_raw_syscall())
}

#[test]
fn notify_sends_the_fd_and_state_to_the_listener_which_answers() {
    let dir = std::env::temp_dir().join(format!("husk-seccomp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("agent.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    let filter = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "listenerMetadata": "MKDIR=fake",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(filter.uses_notify());
    let state = SpecState {
        oci_version: "1.2.0".into(),
        id: "notify-test".into(),
        status: "creating".into(),
        pid: Some(4242),
        bundle: "/bundles/notify".into(),
        annotations: Default::default(),
    };
    let message = seccomp::process_state_json(4242, &state, Some("MKDIR=fake")).unwrap();
    let agent = std::thread::spawn(move || agent(listener, 7));
    let end = in_child(&filter, |fd| {
        let Some(fd) = fd else { return 200 };
        if seccomp::send_to_listener(&socket, fd.as_fd(), &message).is_err() {
            return 201;
        }
        drop(fd);
        let path = c"/nonexistent/husk-notify";
        // SAFETY: path is a valid C string.
        let ret = unsafe { libc::syscall(libc::SYS_mkdir, path.as_ptr(), 0o755) };
        ret as i32
    });
    let (state, syscall) = agent.join().expect("agent thread");
    assert_eq!(end, End::Exit(7), "mkdir returned the agent's value");
    assert_eq!(syscall, libc::SYS_mkdir);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["pid"], json!(4242));
    assert_eq!(state["metadata"], json!("MKDIR=fake"));
    assert_eq!(state["ociVersion"], json!("1.2.0"));
    assert_eq!(state["state"]["id"], json!("notify-test"));
    assert_eq!(state["state"]["status"], json!("creating"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn install_without_notify_returns_no_fd() {
    let filter = action_filter("SCMP_ACT_ERRNO");
    assert!(!filter.uses_notify());
    assert_eq!(
        in_child(&filter, |fd| i32::from(fd.is_some())),
        End::Exit(0)
    );
}

/// Without no_new_privs, loading needs CAP_SYS_ADMIN: a child without it
/// gets a clear error (that is why needs_privileges exists).
#[test]
fn install_without_no_new_privs_or_cap_sys_admin_fails() {
    let filter = action_filter("SCMP_ACT_ERRNO");
    // SAFETY: fork; the child makes syscalls and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let _ = caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        );
        let code = match filter.install() {
            Ok(_) => 0,
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => 1,
            Err(_) => 2,
        };
        // SAFETY: ends the forked child.
        unsafe { libc::_exit(code) }
    }
    assert_eq!(seccomp_util::wait(pid), End::Exit(1));
}

#[test]
fn compiled_filters_are_cached_per_profile() {
    let dir = std::env::temp_dir().join(format!("husk-seccomp-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let a = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11}]
    }));
    let b = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12}]
    }));
    let first = seccomp::compile_cached(&a, &dir).unwrap();
    let entries = || std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(entries(), 1, "one entry per profile");
    let again = seccomp::compile_cached(&a, &dir).unwrap();
    assert_eq!(format!("{first:?}"), format!("{again:?}"));
    assert_eq!(in_child(&again, |_| getppid_with(0, 0)), End::Exit(11));
    // B's entry replaced by A's (as a hash collision would): the profile
    // in the entry does not match, so B is compiled afresh.
    let b_first = seccomp::compile_cached(&b, &dir).unwrap();
    assert_eq!(entries(), 2);
    let (b_path, a_path): (Vec<_>, Vec<_>) = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .partition(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("no_such_syscall")
        });
    let (a_path, b_path) = (&a_path[0], &b_path[0]);
    std::fs::copy(a_path, b_path).unwrap();
    let b_again = seccomp::compile_cached(&b, &dir).unwrap();
    assert_eq!(b_again.unknown_syscalls(), ["no_such_syscall"]);
    assert_eq!(b_first.instructions(), b_again.instructions());
    assert_eq!(in_child(&b_again, |_| getppid_with(0, 0)), End::Exit(12));
    // A corrupt entry is ignored too.
    std::fs::write(b_path, b"not json").unwrap();
    let b_third = seccomp::compile_cached(&b, &dir).unwrap();
    assert_eq!(in_child(&b_third, |_| getppid_with(0, 0)), End::Exit(12));
    let _ = std::fs::remove_dir_all(&dir);
}

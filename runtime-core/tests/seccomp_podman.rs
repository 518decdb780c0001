//! The seccomp profile Podman really uses (Debian's
//! golang-github-containers-common ships it as
//! /usr/share/containers/seccomp.json, with ~400 syscall names), resolved
//! for a default Podman container the way Podman resolves it before it
//! hands the profile to the runtime, then compiled and loaded by husk.

mod seccomp_util;

use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use caps::{CapSet, CapsHashSet};
use serde_json::{json, Value};

use runtime_core::seccomp::{self, Filter};
use seccomp_util::{call, in_child, in_child_prepared, End};

const PROFILE: &str = "/usr/share/containers/seccomp.json";
const CONTAINERS_CONF: &str = "/usr/share/containers/containers.conf";
const PACKAGE: &str = "golang-github-containers-common";

/// Podman's name for this architecture in `includes`/`excludes` (Go's).
const GOARCH: &str = "amd64";
/// The seccomp name of this architecture in `archMap`.
const NATIVE_ARCH: &str = "SCMP_ARCH_X86_64";

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (apt-get install {PACKAGE})"))
}

/// containers.conf's default_capabilities, as CAP_* names.
fn default_capabilities() -> Vec<String> {
    let conf = read(CONTAINERS_CONF);
    let list = conf
        .split("\ndefault_capabilities = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("containers.conf has default_capabilities");
    list.split(',')
        .map(|c| c.trim().trim_matches('"'))
        .filter(|c| !c.is_empty())
        .map(|c| format!("CAP_{c}"))
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether Podman keeps a `syscalls` entry for a container with `caps` on
/// this architecture: an `excludes` match drops it (any listed capability
/// held, or this architecture listed); an `includes` mismatch drops it (not
/// every listed capability held, or this architecture not listed).
fn applies(entry: &Value, caps: &[String]) -> bool {
    let held = |c: &str| caps.iter().any(|k| k == c);
    let (inc, exc) = (&entry["includes"], &entry["excludes"]);
    let excluded =
        strings(&exc["caps"]).into_iter().any(held) || strings(&exc["arches"]).contains(&GOARCH);
    let inc_arches = strings(&inc["arches"]);
    let included = strings(&inc["caps"]).into_iter().all(held)
        && (inc_arches.is_empty() || inc_arches.contains(&GOARCH))
        && inc["minKernel"].is_null();
    !excluded && included
}

/// The profile as Podman hands it to the runtime for `caps`: the native
/// architecture with its sub-architectures, and the entries that apply.
/// Fields the runtime-spec does not have stay in (`comment`, `includes`,
/// `errno`, ...): the runtime ignores them.
fn resolve(profile: &Value, caps: &[String]) -> Value {
    let arch_map = profile["archMap"].as_array().expect("archMap");
    let native = arch_map
        .iter()
        .find(|a| a["architecture"] == NATIVE_ARCH)
        .expect("archMap has this architecture");
    let mut arches = vec![native["architecture"].clone()];
    arches.extend(
        native["subArchitectures"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    let syscalls: Vec<Value> = profile["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|e| applies(e, caps))
        .cloned()
        .collect();
    let mut out = profile.clone();
    out["architectures"] = json!(arches);
    out["syscalls"] = json!(syscalls);
    out
}

fn podman_filter(caps: &[String]) -> Filter {
    let raw: Value = serde_json::from_str(&read(PROFILE)).expect("seccomp.json is JSON");
    let resolved = resolve(&raw, caps);
    let spec = serde_json::from_value(resolved).expect("resolved profile parses");
    seccomp::compile(&spec).expect("Podman's profile compiles")
}

/// Make the child's capabilities Podman's defaults (bounding, permitted,
/// effective, inheritable; no ambient), as in a default container.
fn apply_capabilities(names: &[String]) {
    let keep: CapsHashSet = names.iter().filter_map(|n| n.parse().ok()).collect();
    for cap in caps::all().difference(&keep) {
        let _ = caps::drop(None, CapSet::Bounding, *cap);
    }
    let _ = caps::clear(None, CapSet::Ambient);
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        let _ = caps::set(None, set, &keep);
    }
}

fn need_root() -> bool {
    match seccomp_util::skip_reason() {
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
        None => true,
    }
}

#[test]
fn podman_profile_resolves_and_compiles() {
    let caps = default_capabilities();
    assert_eq!(caps.len(), 11, "Podman's default set: {caps:?}");
    assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
    let filter = podman_filter(&caps);
    eprintln!(
        "Podman profile: {} instructions; unknown to libseccomp: {:?}",
        filter.instructions(),
        filter.unknown_syscalls()
    );
    assert!(filter.instructions() > 100);
}

#[test]
fn busybox_shell_works_under_podmans_profile() {
    if !need_root() {
        return;
    }
    let caps = default_capabilities();
    let filter = podman_filter(&caps);
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    let argv = [
        c"busybox".as_ptr(),
        c"sh".as_ptr(),
        c"-c".as_ptr(),
        c"echo ok; ls /".as_ptr(),
        std::ptr::null(),
    ];
    let out = write_end.as_raw_fd();
    let end = in_child_prepared(
        &filter,
        || apply_capabilities(&caps),
        |_| {
            // SAFETY: out is an open pipe; argv is a NULL-terminated array of
            // C strings that outlive the exec.
            unsafe {
                libc::dup2(out, 1);
                libc::dup2(out, 2);
                libc::execv(c"/bin/busybox".as_ptr(), argv.as_ptr());
            }
            127
        },
    );
    drop(write_end);
    let mut output = String::new();
    std::fs::File::from(read_end)
        .read_to_string(&mut output)
        .expect("read the shell's output");
    assert_eq!(end, End::Exit(0), "busybox sh: {output}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.first(), Some(&"ok"), "{output}");
    for dir in ["bin", "proc", "usr"] {
        assert!(lines.contains(&dir), "ls / lists {dir}: {output}");
    }
}

/// (name, syscall, args): calls whose answer shows who refused them.
/// `mnt_ns` is an fd of the caller's own mount namespace, `dir` a directory
/// that is no mount point. None of them changes anything when allowed: the
/// mount names a filesystem type that does not exist, the unmount a
/// directory that is not mounted.
fn probes(mnt_ns: u64, dir: &CStr) -> Vec<(&'static str, libc::c_long, [u64; 5])> {
    let dir = dir.as_ptr() as u64;
    let fstype = c"husk-no-such-fs".as_ptr() as u64;
    vec![
        ("kexec_load", libc::SYS_kexec_load, [0; 5]),
        (
            "userfaultfd",
            libc::SYS_userfaultfd,
            [libc::O_CLOEXEC as u64, 0, 0, 0, 0],
        ),
        (
            "setns",
            libc::SYS_setns,
            [mnt_ns, libc::CLONE_NEWNS as u64, 0, 0, 0],
        ),
        ("bpf", libc::SYS_bpf, [u64::MAX, 0, 0, 0, 0]),
        (
            "open_by_handle_at",
            libc::SYS_open_by_handle_at,
            [u64::MAX, 0, 0, 0, 0],
        ),
        ("mount", libc::SYS_mount, [fstype, dir, fstype, 0, 0]),
        ("umount2", libc::SYS_umount2, [dir, 0, 0, 0, 0]),
    ]
}

/// Run every probe in one child: bit i of the exit code says whether probe
/// i failed with EPERM.
fn eperm_mask(filter: Option<&Filter>, caps: Option<&[String]>) -> i32 {
    let mnt_ns = std::fs::File::open("/proc/self/ns/mnt").expect("open /proc/self/ns/mnt");
    let dir = std::env::temp_dir().join(format!("husk-seccomp-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("probe directory");
    let dir_c = CString::new(dir.as_os_str().as_bytes()).expect("path without NUL");
    let run = || {
        probes(mnt_ns.as_raw_fd() as u64, &dir_c)
            .iter()
            .enumerate()
            .map(|(i, (_, nr, args))| i32::from(call5(*nr, *args) == libc::EPERM) << i)
            .sum::<i32>()
    };
    let allow_all = seccomp_util::compile(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let prepare = || {
        if let Some(caps) = caps {
            apply_capabilities(caps)
        }
    };
    let end = in_child_prepared(filter.unwrap_or(&allow_all), prepare, |_| run());
    let _ = std::fs::remove_dir(&dir);
    match end {
        End::Exit(mask) => mask,
        other => panic!("probe child: {other:?}"),
    }
}

/// A raw syscall with five arguments; its errno, or 0 on success.
fn call5(nr: libc::c_long, [a, b, c, d, e]: [u64; 5]) -> i32 {
    // SAFETY: the probes pass numbers and pointers to C strings that stay
    // valid for the call.
    seccomp_util::errno_of(unsafe { libc::syscall(nr, a, b, c, d, e) })
}

fn eperm_names(mask: i32) -> Vec<&'static str> {
    probes(0, c"")
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, p)| p.0)
        .collect()
}

#[test]
fn what_podmans_profile_denies_fails_with_eperm() {
    if !need_root() {
        return;
    }
    let caps = default_capabilities();
    let filter = podman_filter(&caps);
    // As root with every capability and no filter, none of the probes is
    // refused with EPERM (kexec_load is ENOSYS without CONFIG_KEXEC,
    // userfaultfd and setns work, the others fail on their bogus arguments).
    assert_eq!(eperm_names(eperm_mask(None, None)), Vec::<&str>::new());
    // The profile alone (capabilities kept): its deny rules answer EPERM.
    // mount and umount2 are in its allow list, and so is setns, before its
    // CAP_SYS_ADMIN-less deny rule: libseccomp keeps the first rule given
    // for a syscall (runc and crun use the same library, in the same
    // order), so Podman leaves those to the capabilities.
    assert_eq!(
        eperm_names(eperm_mask(Some(&filter), None)),
        ["kexec_load", "userfaultfd", "bpf", "open_by_handle_at"]
    );
    // A default container: the profile and Podman's capabilities, without
    // CAP_SYS_ADMIN, so setns and the mount family are refused too.
    assert_eq!(
        eperm_names(eperm_mask(Some(&filter), Some(&caps))),
        [
            "kexec_load",
            "userfaultfd",
            "setns",
            "bpf",
            "open_by_handle_at",
            "mount",
            "umount2"
        ]
    );
}

#[test]
fn podmans_default_errno_is_enosys_for_unlisted_syscalls() {
    let filter = podman_filter(&default_capabilities());
    // add_key is not in the profile: the profile's defaultErrnoRet (ENOSYS).
    let end = in_child(&filter, |_| call(libc::SYS_add_key, 0, 0, 0));
    assert_eq!(end, End::Exit(libc::ENOSYS));
    let end = in_child(&filter, |_| call(libc::SYS_mseal, 0, 0, 0));
    assert_eq!(end, End::Exit(libc::ENOSYS));
}

#[test]
fn podmans_profile_from_the_cache() {
    let caps = default_capabilities();
    let raw: Value = serde_json::from_str(&read(PROFILE)).expect("seccomp.json is JSON");
    let spec = serde_json::from_value(resolve(&raw, &caps)).expect("resolved profile parses");
    let dir =
        std::env::temp_dir().join(format!("husk-seccomp-podman-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let start = std::time::Instant::now();
    let compiled = seccomp::compile_cached(&spec, &dir).expect("compile");
    let compile_time = start.elapsed();
    let start = std::time::Instant::now();
    let cached = seccomp::compile_cached(&spec, &dir).expect("from the cache");
    eprintln!(
        "Podman profile: compiled in {compile_time:?}, from the cache in {:?}",
        start.elapsed()
    );
    assert_eq!(format!("{compiled:?}"), format!("{cached:?}"));
    let end = in_child(&cached, |_| call(libc::SYS_userfaultfd, 0, 0, 0));
    assert_eq!(end, End::Exit(libc::EPERM));
    let _ = std::fs::remove_dir_all(&dir);
}

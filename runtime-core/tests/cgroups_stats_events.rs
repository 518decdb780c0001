//! Stats, OOM notifications and update semantics on real cgroups, with
//! children forked into them: an over-allocating child is OOM-killed and
//! the watcher reports it; stats count the CPU and memory a child uses; a
//! refused update puts back what it had already written.

mod cgroups_util;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cgroups_util::{read, uid, wait_until};
use runtime_core::cgroups::ContainerCgroup;
use runtime_core::Error;

fn resources(json: &str) -> oci_spec::runtime::LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

/// Fork a child that joins `cgroups` and touches `bytes` of anonymous
/// memory; returns its wait status. Only async-signal-safe calls in the
/// child.
fn allocate_in(cgroups: &[PathBuf], bytes: usize) -> i32 {
    let procs: Vec<CString> = cgroups
        .iter()
        .map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).expect("path"))
        .collect();
    // SAFETY: the child only calls open/write/close/mmap/_exit and writes
    // to memory it mapped itself.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(2);
                }
                libc::close(fd);
            }
            let m = libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if m == libc::MAP_FAILED {
                libc::_exit(3);
            }
            let base = m.cast::<u8>();
            let mut off = 0;
            while off < bytes {
                *base.add(off) = 1;
                off += 4096;
            }
            libc::_exit(0);
        }
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    st
}

fn memory_cgroups(cg: &ContainerCgroup) -> Vec<PathBuf> {
    cg.v1_dir("memory")
        .into_iter()
        .chain(cg.unified_dir())
        .collect()
}

#[test]
fn cgroups_oom_kill_is_reported() {
    need_root!(cgroups_oom_kill_is_reported);
    let path = format!("/{}", uid("oom"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let mib: u64 = 1 << 20;
    let check = || {
        cg.apply_resources(&resources(&format!(
            r#"{{"memory": {{"limit": {0}, "swap": {0}}}}}"#,
            32 * mib
        )))
        .expect("limit");
        let mut watcher = cg.oom_watcher().expect("watcher");
        assert_eq!(
            watcher.wait(Duration::from_millis(1)).expect("wait").ooms,
            0
        );
        // Within the limit: no OOM.
        assert_eq!(allocate_in(&memory_cgroups(&cg), 8 << 20), 0);
        assert_eq!(
            watcher.wait(Duration::from_millis(50)).expect("wait").ooms,
            0
        );
        // Over it: killed by the kernel, and reported.
        let st = allocate_in(&memory_cgroups(&cg), 128 << 20);
        assert!(
            libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
            "status {st:#x}"
        );
        let seen = watcher.wait(Duration::from_secs(2)).expect("wait");
        assert!(seen.ooms >= 1 && !seen.gone, "{seen:?}");
        // The stats show the usage that hit the limit.
        let stats = cg.stats();
        assert_eq!(stats.memory.usage.limit, 32 * mib);
        assert_eq!(stats.memory.usage.max, 32 * mib, "{:?}", stats.memory);
        watcher
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    cg.destroy().expect("destroy");
    match outcome {
        // Removal of the cgroup ends the watch (v1: the eventfd fires once
        // more; v2: memory.events is gone) without a false OOM.
        Ok(mut watcher) => {
            let seen = watcher.wait(Duration::from_secs(2)).expect("wait");
            assert_eq!(seen.ooms, 0, "{seen:?}");
            assert!(seen.gone, "{seen:?}");
        }
        Err(p) => std::panic::resume_unwind(p),
    }
}

#[test]
fn cgroups_stats_count_a_busy_child() {
    need_root!(cgroups_stats_count_a_busy_child);
    let path = format!("/{}", uid("stats"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    cg.apply_resources(&resources(r#"{"pids": {"limit": 50}}"#))
        .expect("pids limit");
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg("read x; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 1000 & wait")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    cg.attach(sh.id() as i32, false).expect("attach");
    drop(sh.stdin.take());
    let ok = wait_until(Duration::from_secs(20), || cg.stats().pids.current == 2);
    let stats = cg.stats();
    let json = serde_json::to_value(&stats).expect("json");
    cg.destroy().expect("destroy");
    let _ = sh.wait();
    assert!(ok, "{json}");
    assert_eq!(stats.pids.limit, 50);
    assert!(stats.cpu.usage.total > 10_000_000, "{json}");
    assert!(stats.cpu.usage.user + stats.cpu.usage.kernel > 0, "{json}");
    assert!(stats.memory.usage.usage > 0, "{json}");
    assert!(!stats.memory.raw.is_empty(), "{json}");
    assert_eq!(json["pids"], serde_json::json!({"current": 2, "limit": 50}));
}

/// v1 memory: memory+swap is raised before the memory limit; when the
/// memory write is then refused (below the usage: EBUSY), the raised
/// memory+swap is put back. cpus out of range never get written.
#[test]
fn cgroups_update_rolls_back_a_refused_change() {
    need_root!(cgroups_update_rolls_back_a_refused_change);
    let path = format!("/{}", uid("rollback"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let Some(mem) = cg.v1_dir("memory") else {
        eprintln!("SKIPPED cgroups_update_rolls_back_a_refused_change: no v1 memory");
        cg.destroy().expect("destroy");
        return;
    };
    let mib: u64 = 1 << 20;
    // A shell that, once in the cgroup, holds a few MiB of its own.
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("read x; v=$(head -c 4000000 /dev/zero | tr '\\0' a); read y")
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut check = |mem: &Path| {
        cg.apply_resources(&resources(&format!(
            r#"{{"memory": {{"limit": {}, "swap": {}}}, "pids": {{"limit": 40}}}}"#,
            64 * mib,
            128 * mib
        )))
        .expect("apply");
        cg.attach(holder.id() as i32, false).expect("attach");
        let stdin = holder.stdin.as_mut().expect("stdin");
        std::io::Write::write_all(stdin, b"go\n").expect("go");
        assert!(wait_until(Duration::from_secs(10), || {
            cg.stats().memory.usage.usage > 4 * mib
        }));
        // 4 MiB are in use and there is no swap: 4 KiB cannot be reached.
        let e = cg
            .update_resources(
                &resources(&format!(
                    r#"{{"memory": {{"limit": 4096, "swap": {}}}, "pids": {{"limit": 5}}}}"#,
                    256 * mib
                )),
                &[],
            )
            .expect_err("below usage");
        assert!(e.to_string().contains("busy"), "{e}");
        assert_eq!(read(mem, "memory.limit_in_bytes"), (64 * mib).to_string());
        assert_eq!(
            read(mem, "memory.memsw.limit_in_bytes"),
            (128 * mib).to_string()
        );
        let pids = cg.v1_dir("pids").or(cg.unified_dir()).expect("pids dir");
        assert_eq!(read(&pids, "pids.max"), "40");

        // cpus this host does not have: refused before any write.
        let e = cg
            .update_resources(
                &resources(r#"{"pids": {"limit": 7}, "cpu": {"cpus": "0,4096"}}"#),
                &[],
            )
            .expect_err("cpus out of range");
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(
            e.to_string().contains("cpu.cpus") && e.to_string().contains("4096"),
            "{e}"
        );
        assert_eq!(read(&pids, "pids.max"), "40");
        let e = cg
            .update_resources(&resources(r#"{"cpu": {"cpus": "1-0"}}"#), &[])
            .expect_err("malformed cpus");
        assert!(e.to_string().contains("cpu.cpus"), "{e}");
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mem)));
    cg.destroy().expect("destroy");
    drop(holder.stdin.take());
    let _ = holder.wait();
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

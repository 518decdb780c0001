//! Real cgroup tests: they make cgroups on the host, move processes into
//! them and remove everything again. They need root; without it each test
//! prints why it is skipped and returns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runtime_core::cgroups::{detect_layout, ContainerCgroup, Layout};
use runtime_core::Error;

/// Why the cgroup tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if let Err(e) = detect_layout() {
        return Some(format!("no cgroupfs: {e}"));
    }
    None
}

macro_rules! need_root {
    ($test:ident) => {
        if let Some(why) = skip_reason() {
            eprintln!("SKIPPED {}: {why}", stringify!($test));
            return;
        }
    };
}

fn uid(name: &str) -> String {
    format!("husk-test-{}-{name}", std::process::id())
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

/// /proc/<pid>/cgroup as (controllers, path); controllers "" for cgroup2.
fn proc_cgroup(pid: i32) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}

/// The process is in the container's cgroup in every hierarchy.
fn assert_placed(cg: &ContainerCgroup, pid: i32) {
    let lines = proc_cgroup(pid);
    let view = cg.mount_view();
    assert!(!view.hierarchies.is_empty());
    for h in &view.hierarchies {
        let line = lines
            .iter()
            .find(|(c, _)| *c == h.options)
            .unwrap_or_else(|| panic!("no line for {:?} in {lines:?}", h.options));
        assert_eq!(
            Path::new(&line.1),
            h.container_path,
            "pid {pid} in hierarchy {:?}",
            h.options
        );
    }
}

fn wait_dead(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "child {} did not die",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal_of(st: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    st.signal()
}

/// Own cgroup of this process in each hierarchy, keyed by controllers.
fn own_cgroup(controllers: &str) -> String {
    proc_cgroup(std::process::id() as i32)
        .into_iter()
        .find(|(c, _)| c == controllers)
        .map(|(_, p)| p)
        .expect("own cgroup")
}

fn assert_gone(dirs: &[PathBuf]) {
    for d in dirs {
        assert!(!d.exists(), "{} still exists", d.display());
    }
}

#[test]
fn cgroups_layout_matches_statfs() {
    need_root!(cgroups_layout_matches_statfs);
    let layout = detect_layout().expect("layout");
    let unified = Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists();
    let pure = Path::new("/sys/fs/cgroup/cgroup.procs").exists();
    let expected = if pure {
        Layout::V2
    } else if unified {
        Layout::Hybrid
    } else {
        Layout::V1
    };
    assert_eq!(layout, expected);
}

#[test]
fn cgroups_attach_procs_signal_destroy() {
    need_root!(cgroups_attach_procs_signal_destroy);
    let top = uid("attach");
    let path = format!("/{top}/ctr");
    let cg = ContainerCgroup::create(Some(&path), "ctr", false).expect("create");
    let dirs = cg.dirs();
    for d in &dirs {
        assert!(d.is_dir(), "{}", d.display());
        assert!(d.ends_with(format!("{top}/ctr")), "{}", d.display());
    }

    let mut a = sleeper();
    let mut b = sleeper();
    let (pa, pb) = (a.id() as i32, b.id() as i32);
    cg.attach(pa, false).expect("attach a");
    cg.attach(pb, false).expect("attach b");
    assert_placed(&cg, pa);
    assert_placed(&cg, pb);
    let mut procs = cg.procs().expect("procs");
    procs.sort_unstable();
    let mut want = vec![pa, pb];
    want.sort_unstable();
    assert_eq!(procs, want);

    // A non-fatal signal goes to every process (freezer-assisted) and the
    // cgroup is not left frozen.
    cg.signal_all(libc::SIGTERM).expect("signal_all");
    assert_eq!(signal_of(wait_dead(&mut a)), Some(libc::SIGTERM));
    assert_eq!(signal_of(wait_dead(&mut b)), Some(libc::SIGTERM));
    assert!(!cg.is_frozen());
    assert!(cg.procs().expect("procs").is_empty());

    // destroy kills what is left (c stays an unreaped zombie meanwhile).
    let mut c = sleeper();
    cg.attach(c.id() as i32, false).expect("attach c");
    cg.destroy().expect("destroy");
    assert_eq!(signal_of(wait_dead(&mut c)), Some(libc::SIGKILL));
    assert_gone(&dirs);
    // The parent /<top> was made by this create too.
    for d in &dirs {
        assert!(!d.parent().expect("parent").exists(), "{}", d.display());
    }
}

#[test]
fn cgroups_kill_all_catches_children() {
    need_root!(cgroups_kill_all_catches_children);
    let path = format!("/{}", uid("killall"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    // A shell with five background children, all in the cgroup by fork.
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg("read x; for i in 1 2 3 4 5; do sleep 1000 & done; wait")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    cg.attach(sh.id() as i32, false).expect("attach");
    drop(sh.stdin.take()); // EOF: `read` returns and the shell forks
    let deadline = Instant::now() + Duration::from_secs(5);
    while cg.procs().expect("procs").len() < 6 {
        assert!(Instant::now() < deadline, "children did not appear");
        std::thread::sleep(Duration::from_millis(5));
    }
    for pid in cg.procs().expect("procs") {
        assert_placed(&cg, pid);
    }
    cg.signal_all(libc::SIGKILL).expect("kill --all");
    assert_eq!(signal_of(wait_dead(&mut sh)), Some(libc::SIGKILL));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cg.procs().expect("procs").is_empty() {
        assert!(Instant::now() < deadline, "processes left after kill --all");
        std::thread::sleep(Duration::from_millis(5));
    }
    cg.destroy().expect("destroy");
    assert_gone(&cg.dirs());
}

#[test]
fn cgroups_relative_and_default_paths() {
    need_root!(cgroups_relative_and_default_paths);
    let layout = detect_layout().expect("layout");
    let rel = format!("{}/inner", uid("rel"));
    let cg = ContainerCgroup::create(Some(&rel), "x", false).expect("create relative");
    let id = uid("default");
    let def = ContainerCgroup::create(None, &id, false).expect("create default");
    for (cg, tail) in [(&cg, rel.as_str()), (&def, id.as_str())] {
        for h in cg.mount_view().hierarchies {
            let mut own = own_cgroup(&h.options);
            if layout == Layout::V2 {
                own = Path::new(&own)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or(own);
            }
            let want = Path::new(&own).join(tail);
            assert_eq!(h.container_path, want, "{:?}", h.options);
            let dir = h
                .mount_point
                .join(h.container_path.strip_prefix("/").expect("absolute"));
            assert!(dir.is_dir(), "{}", dir.display());
        }
    }
    let mut child = sleeper();
    def.attach(child.id() as i32, false).expect("attach");
    assert_placed(&def, child.id() as i32);

    let dirs: Vec<PathBuf> = cg.dirs().into_iter().chain(def.dirs()).collect();
    cg.destroy().expect("destroy rel");
    def.destroy().expect("destroy default");
    wait_dead(&mut child);
    assert_gone(&dirs);
    // The first relative component was made by create, so it is gone too.
    for d in cg.dirs() {
        assert!(!d.parent().expect("parent").exists(), "{}", d.display());
    }
}

#[test]
fn cgroups_bad_paths_rejected() {
    need_root!(cgroups_bad_paths_rejected);
    for p in ["/husk/../../etc", "a/../b", "..", "", "/", "a\nb"] {
        match ContainerCgroup::create(Some(p), "x", false) {
            Err(Error::Config(msg)) => assert!(msg.contains("linux.cgroupsPath"), "{msg}"),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    match ContainerCgroup::create(Some("system.slice:husk:x"), "x", true) {
        Err(e @ Error::Config(_)) => {
            let m = e.to_string();
            assert!(
                m.contains("systemd cgroup driver") && m.contains("not available"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing was made for them.
    assert!(!Path::new("/sys/fs/cgroup/pids/etc").exists());
}

#[test]
fn cgroups_existing_cgroup_with_processes_refused() {
    need_root!(cgroups_existing_cgroup_with_processes_refused);
    let path = format!("/{}/ctr", uid("busy"));
    let first = ContainerCgroup::create(Some(&path), "a", false).expect("create");
    let mut child = sleeper();
    first.attach(child.id() as i32, false).expect("attach");
    match ContainerCgroup::create(Some(&path), "b", false) {
        Err(e) => assert!(e.to_string().contains("has processes"), "{e}"),
        Ok(cg) => panic!("a populated cgroup was shared: {cg:?}"),
    }
    // The refused create removed nothing of the first one.
    assert_placed(&first, child.id() as i32);
    first.destroy().expect("destroy");
    wait_dead(&mut child);
    assert_gone(&first.dirs());
}

#[test]
fn cgroups_existing_empty_cgroup_reused_but_not_removed() {
    need_root!(cgroups_existing_empty_cgroup_reused_but_not_removed);
    let top = uid("reuse");
    let path = format!("/{top}/ctr");
    let owner = ContainerCgroup::create(Some(&path), "a", false).expect("create");
    let reuser = ContainerCgroup::create(Some(&path), "b", false).expect("reuse empty");
    let mut child = sleeper();
    reuser.attach(child.id() as i32, false).expect("attach");
    reuser.destroy().expect("destroy reuser");
    wait_dead(&mut child);
    // reuser made nothing, so it removed nothing.
    for d in owner.dirs() {
        assert!(d.is_dir(), "{}", d.display());
    }
    owner.destroy().expect("destroy owner");
    assert_gone(&owner.dirs());
}

#[test]
fn cgroups_shared_parent_left_to_its_other_users() {
    need_root!(cgroups_shared_parent_left_to_its_other_users);
    let top = uid("shared");
    let a = ContainerCgroup::create(Some(&format!("/{top}/a")), "a", false).expect("a");
    let b = ContainerCgroup::create(Some(&format!("/{top}/b")), "b", false).expect("b");
    a.destroy().expect("destroy a");
    assert_gone(&a.dirs());
    for d in b.dirs() {
        assert!(d.is_dir(), "{}", d.display());
    }
    b.destroy().expect("destroy b");
    assert_gone(&b.dirs());
    // a made /<top> but b was still there; b did not make it: still there.
    for d in b.dirs() {
        let parent = d.parent().expect("parent");
        std::fs::remove_dir(parent).expect("cleanup shared parent");
    }
}

#[test]
fn cgroups_destroy_is_idempotent() {
    need_root!(cgroups_destroy_is_idempotent);
    let path = format!("/{}/ctr", uid("idem"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    // Through state.json and back, as `delete` sees it.
    let json = serde_json::to_string(&cg).expect("serialize");
    let back: ContainerCgroup = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back.dirs(), cg.dirs());

    // Half-finished: some dirs already gone.
    let dirs = cg.dirs();
    std::fs::remove_dir(&dirs[0]).expect("rmdir one");
    back.destroy().expect("destroy after partial removal");
    assert_gone(&dirs);
    back.destroy().expect("second destroy");
    cg.destroy().expect("third destroy");
    assert!(cg.procs().expect("procs of a gone cgroup").is_empty());
    cg.signal_all(libc::SIGTERM).expect("signal a gone cgroup");
}

#[test]
fn cgroups_destroy_removes_sub_cgroups_of_the_container() {
    need_root!(cgroups_destroy_removes_sub_cgroups_of_the_container);
    let path = format!("/{}", uid("nested"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    // What a container with its own cgroup manager would do.
    let mut child = sleeper();
    for d in cg.dirs() {
        let sub = d.join("sub/deeper");
        std::fs::create_dir_all(&sub).expect("mkdir sub");
        if d.to_string_lossy().contains("cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                for p in [d.join("sub"), sub.clone()] {
                    let v = std::fs::read_to_string(d.join(f)).expect("read");
                    std::fs::write(p.join(f), v.trim()).expect("write cpuset");
                }
            }
        }
        std::fs::write(sub.join("cgroup.procs"), child.id().to_string()).expect("move");
    }
    assert_eq!(cg.procs().expect("procs"), vec![child.id() as i32]);
    cg.destroy().expect("destroy");
    wait_dead(&mut child);
    assert_gone(&cg.dirs());
}

#[test]
fn cgroups_freeze_thaw() {
    need_root!(cgroups_freeze_thaw);
    let path = format!("/{}", uid("freeze"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let mut child = sleeper();
    cg.attach(child.id() as i32, false).expect("attach");
    cg.freeze().expect("freeze");
    assert!(cg.is_frozen());
    // A non-fatal signal to a paused container leaves it paused.
    cg.signal_all(libc::SIGCONT).expect("signal");
    assert!(cg.is_frozen());
    cg.thaw().expect("thaw");
    assert!(!cg.is_frozen());
    // kill --all of a paused container kills it.
    cg.freeze().expect("freeze");
    cg.signal_all(libc::SIGKILL).expect("kill");
    assert_eq!(signal_of(wait_dead(&mut child)), Some(libc::SIGKILL));
    cg.destroy().expect("destroy");
    assert_gone(&cg.dirs());
}

#[test]
fn cgroups_mount_view_describes_hierarchies() {
    need_root!(cgroups_mount_view_describes_hierarchies);
    let path = format!("/{}/ctr", uid("view"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let view = cg.mount_view();
    let layout = cg.layout();
    let mut unified = 0;
    for h in &view.hierarchies {
        assert_eq!(h.container_path, Path::new(&path));
        if h.fstype == "cgroup2" {
            unified += 1;
            assert!(h.options.is_empty());
            match layout {
                Layout::V2 => assert_eq!(h.subdir, ""),
                _ => assert_eq!(h.subdir, "unified"),
            }
        } else {
            assert_eq!(h.fstype, "cgroup");
            assert!(!h.options.is_empty());
            assert_eq!(h.mount_point, Path::new("/sys/fs/cgroup").join(&h.subdir));
        }
    }
    assert_eq!(unified, usize::from(layout != Layout::V1));
    if Path::new("/sys/fs/cgroup/memory").is_dir() && layout != Layout::V2 {
        assert!(view.hierarchies.iter().any(|h| h.subdir == "memory"));
    }
    for (name, target) in &view.symlinks {
        assert!(
            view.hierarchies.iter().any(|h| &h.subdir == target),
            "{name}"
        );
    }
    cg.destroy().expect("destroy");
}

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[test]
fn cgroups_clone_into_cgroup() {
    need_root!(cgroups_clone_into_cgroup);
    use std::os::fd::AsRawFd;
    let path = format!("/{}", uid("clone3"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let Some(fd) = cg.clone_into_fd().expect("clone_into_fd") else {
        assert_eq!(cg.layout(), Layout::V1);
        eprintln!("SKIPPED cgroups_clone_into_cgroup: pure v1 has no cgroup2");
        cg.destroy().expect("destroy");
        return;
    };
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a
    // copy of this address space. The child only calls pause(2) (async-
    // signal-safe) until it is killed, so the other threads of the test
    // harness that it does not have do not matter.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    let pid = pid as i32;
    // Born in the cgroup2 cgroup, not yet in the v1 ones.
    let lines = proc_cgroup(pid);
    let unified = lines.iter().find(|(c, _)| c.is_empty()).expect("0:: line");
    assert_eq!(Path::new(&unified.1), Path::new(&path));
    if cg.needs_migration() {
        let v1 = lines.iter().find(|(c, _)| !c.is_empty()).expect("v1 line");
        assert_ne!(Path::new(&v1.1), Path::new(&path));
    }
    cg.attach(pid, true).expect("attach v1");
    assert_placed(&cg, pid);
    cg.destroy().expect("destroy");
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    assert_gone(&cg.dirs());
}

#[test]
fn cgroups_create_and_destroy_are_fast() {
    need_root!(cgroups_create_and_destroy_are_fast);
    let path = format!("/{}/ctr", uid("fast"));
    let mut worst = (Duration::ZERO, Duration::ZERO);
    for _ in 0..20 {
        let t = Instant::now();
        let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
        let made = t.elapsed();
        let t = Instant::now();
        cg.destroy().expect("destroy");
        let gone = t.elapsed();
        worst = (worst.0.max(made), worst.1.max(gone));
    }
    eprintln!("create worst {:?}, destroy worst {:?}", worst.0, worst.1);
    // Generous bounds for 2 noisy cores; typical figures are well below 1 ms.
    assert!(
        worst.0 < Duration::from_millis(50),
        "create took {:?}",
        worst.0
    );
    assert!(
        worst.1 < Duration::from_millis(50),
        "destroy took {:?}",
        worst.1
    );
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_owned()
}

/// major:minor of a real block device, if the host has one.
fn block_device() -> Option<(u32, u32)> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .collect();
    names.sort();
    let dev = std::fs::read_to_string(format!("/sys/block/{}/dev", names.first()?)).ok()?;
    let (maj, min) = dev.trim().split_once(':')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

fn resources(json: &str) -> oci_spec::runtime::LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

#[test]
fn cgroups_resources_applied_on_v1() {
    need_root!(cgroups_resources_applied_on_v1);
    if detect_layout().expect("layout") == Layout::V2 {
        eprintln!("SKIPPED cgroups_resources_applied_on_v1: no v1 hierarchies here");
        return;
    }
    let path = format!("/{}", uid("res"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let mib = 1024 * 1024;
    let mut json = format!(
        r#"{{"memory": {{"limit": {}, "swap": {}, "reservation": {}, "swappiness": 10,
                         "disableOOMKiller": true, "kernel": {}, "kernelTCP": {},
                         "useHierarchy": true}},
            "cpu": {{"shares": 512, "quota": 50000, "period": 100000, "burst": 10000,
                     "cpus": "0", "mems": "0"}},
            "pids": {{"limit": 123}}"#,
        64 * mib,
        96 * mib,
        32 * mib,
        48 * mib,
        16 * mib
    );
    let dev = block_device();
    // Weights need the CFQ or BFQ I/O scheduler; kernels without either
    // have no weight file, and then the weight must be refused (below).
    let blkio_root = Path::new("/sys/fs/cgroup/blkio");
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| blkio_root.join(f).exists());
    let weight_json = if weight_file.is_some() {
        r#""weight": 500,"#
    } else {
        ""
    };
    if let Some((maj, min)) = dev {
        json.push_str(&format!(
            r#", "blockIO": {{{weight_json}
                "throttleReadBpsDevice": [{{"major": {maj}, "minor": {min}, "rate": 1048576}}],
                "throttleWriteIOPSDevice": [{{"major": {maj}, "minor": {min}, "rate": 300}}]}}"#
        ));
    }
    json.push('}');
    // Empty sections (as clients send them) need nothing.
    cg.apply_resources(&resources(
        r#"{"memory": {}, "blockIO": {}, "cpu": {}, "pids": {"limit": 0}}"#,
    ))
    .expect("empty sections");
    cg.apply_resources(&resources(&json)).expect("apply");

    let memory = cg.v1_dir("memory").expect("memory hierarchy");
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (64 * mib).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (96 * mib).to_string()
    );
    assert_eq!(
        read(&memory, "memory.soft_limit_in_bytes"),
        (32 * mib).to_string()
    );
    assert_eq!(read(&memory, "memory.swappiness"), "10");
    assert!(read(&memory, "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(
        read(&memory, "memory.kmem.tcp.limit_in_bytes"),
        (16 * mib).to_string()
    );
    assert_eq!(read(&memory, "memory.use_hierarchy"), "1");
    // memory.kernel: written where the kernel still has the file (Linux
    // >= 6.1 takes the write and ignores it, so its value is not checked).
    let cpu = cg.v1_dir("cpu").expect("cpu hierarchy");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cpu, "cpu.cfs_burst_us"), "10000");
    let cpuset = cg.v1_dir("cpuset").expect("cpuset hierarchy");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    let pids = cg.v1_dir("pids").expect("pids hierarchy");
    assert_eq!(read(&pids, "pids.max"), "123");
    if let Some((maj, min)) = dev {
        let blkio = cg.v1_dir("blkio").expect("blkio hierarchy");
        match weight_file {
            Some(weight) => assert!(read(&blkio, weight).ends_with("500"), "{weight}"),
            None => {
                let err = cg
                    .apply_resources(&resources(r#"{"blockIO": {"weight": 500}}"#))
                    .expect_err("no weight file, yet the weight was accepted");
                assert!(err.to_string().contains("blockIO.weight"), "{err}");
            }
        }
        assert_eq!(
            read(&blkio, "blkio.throttle.read_bps_device"),
            format!("{maj}:{min} 1048576")
        );
        assert_eq!(
            read(&blkio, "blkio.throttle.write_iops_device"),
            format!("{maj}:{min} 300")
        );
    }

    // Raising memory above the current memory+swap, then lowering both:
    // the writes must come in the order the kernel accepts.
    let up = format!(
        r#"{{"memory": {{"limit": {}, "swap": {}}}, "pids": {{"limit": -1}}}}"#,
        256 * mib,
        512 * mib
    );
    cg.apply_resources(&resources(&up)).expect("raise");
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (256 * mib).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (512 * mib).to_string()
    );
    assert_eq!(read(&pids, "pids.max"), "max");
    let down = format!(
        r#"{{"memory": {{"limit": {}, "swap": {}}}}}"#,
        16 * mib,
        32 * mib
    );
    cg.apply_resources(&resources(&down)).expect("lower");
    assert_eq!(
        read(&memory, "memory.limit_in_bytes"),
        (16 * mib).to_string()
    );
    assert_eq!(
        read(&memory, "memory.memsw.limit_in_bytes"),
        (32 * mib).to_string()
    );

    // A process can live in it (cpuset "0" is valid, limits hold).
    let mut child = sleeper();
    cg.attach(child.id() as i32, false).expect("attach");
    assert_placed(&cg, child.id() as i32);

    // Bad values are refused with the field named.
    let e = cg
        .apply_resources(&resources(r#"{"memory": {"swappiness": 200}}"#))
        .expect_err("swappiness 200");
    assert!(e.to_string().contains("memory.swappiness"), "{e}");
    // ... before anything is written or enabled.
    let subtree = |cg: &ContainerCgroup| {
        cg.unified_dir().map(|_| {
            let root = cg
                .mount_view()
                .hierarchies
                .iter()
                .find(|h| h.fstype == "cgroup2")
                .map(|h| h.mount_point.clone())
                .expect("cgroup2 view");
            read(&root, "cgroup.subtree_control")
        })
    };
    let before = subtree(&cg);
    let e = cg
        .apply_resources(&resources(
            r#"{"pids": {"limit": 7}, "hugepageLimits": [{"pageSize": "3XB", "limit": 1}]}"#,
        ))
        .expect_err("bad page size");
    assert!(e.to_string().contains("hugepageLimits"), "{e}");
    assert_eq!(subtree(&cg), before);
    assert_eq!(read(&pids, "pids.max"), "max");

    cg.destroy().expect("destroy");
    wait_dead(&mut child);
    assert_gone(&cg.dirs());
}

/// hugetlb lives in the cgroup2 hierarchy of a hybrid host: the v2 path,
/// with the controller enabled down to the container. Restores the root's
/// cgroup.subtree_control afterwards.
#[test]
fn cgroups_resources_hugetlb_in_cgroup2() {
    need_root!(cgroups_resources_hugetlb_in_cgroup2);
    let layout = detect_layout().expect("layout");
    let root = match layout {
        Layout::Hybrid => PathBuf::from("/sys/fs/cgroup/unified"),
        Layout::V2 => PathBuf::from("/sys/fs/cgroup"),
        Layout::V1 => {
            eprintln!("SKIPPED cgroups_resources_hugetlb_in_cgroup2: no cgroup2");
            return;
        }
    };
    let offered = read(&root, "cgroup.controllers");
    if !offered.split_whitespace().any(|c| c == "hugetlb")
        || !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
    {
        eprintln!(
            "SKIPPED cgroups_resources_hugetlb_in_cgroup2: no hugetlb in cgroup2 / no 2MB pages"
        );
        return;
    }
    if layout == Layout::Hybrid && Path::new("/sys/fs/cgroup/hugetlb").exists() {
        eprintln!("SKIPPED cgroups_resources_hugetlb_in_cgroup2: hugetlb is a v1 hierarchy here");
        return;
    }
    let enabled_before = read(&root, "cgroup.subtree_control")
        .split_whitespace()
        .any(|c| c == "hugetlb");
    let path = format!("/{}/ctr", uid("hugetlb"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let r = resources(
        r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"hugetlb.1GB.max": "0"}}"#,
    );
    let applied = cg.apply_resources(&r);
    let dir = cg.unified_dir().expect("cgroup2 dir");
    let check = || {
        applied.as_ref().expect("apply");
        assert_eq!(read(&dir, "hugetlb.2MB.max"), "4194304");
        assert_eq!(read(&dir, "hugetlb.1GB.max"), "0");
        if dir.join("hugetlb.2MB.rsvd.max").exists() {
            assert_eq!(read(&dir, "hugetlb.2MB.rsvd.max"), "4194304");
        }
        // A controller cgroup2 does not have here is refused by name.
        if !offered.split_whitespace().any(|c| c == "memory") {
            let e = cg
                .apply_resources(&resources(r#"{"unified": {"memory.high": "1000000"}}"#))
                .expect_err("memory.high without memory in cgroup2");
            assert!(e.to_string().contains("memory"), "{e}");
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    cg.destroy().expect("destroy");
    if !enabled_before {
        // EBUSY while the removed cgroups' controller state is torn down
        // (asynchronously): retry for a while.
        let deadline = Instant::now() + Duration::from_secs(2);
        while std::fs::write(root.join("cgroup.subtree_control"), "-hugetlb").is_err()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let after = read(&root, "cgroup.subtree_control");
        assert!(
            !after.split_whitespace().any(|c| c == "hugetlb"),
            "could not restore {}/cgroup.subtree_control",
            root.display()
        );
    }
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// linux.resources.network on the v1 net_cls and net_prio controllers. This
/// host's kernel has both but mounts neither, so the test mounts them as one
/// hierarchy on a temp dir (husk finds hierarchies through /proc/self/cgroup
/// and mountinfo, wherever they are mounted), checks the class id and the
/// interface priority, and unmounts it again, making sure that the kernel
/// destroys the hierarchy (see `release_hierarchy`).
#[test]
fn cgroups_network_classid_and_priorities_on_v1() {
    need_root!(cgroups_network_classid_and_priorities_on_v1);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    if mounts
        .lines()
        .any(|l| l.contains(" - cgroup ") && (l.contains("net_cls") || l.contains("net_prio")))
    {
        eprintln!("SKIPPED cgroups_network_classid_and_priorities_on_v1: the host mounts them");
        return;
    }
    let known = std::fs::read_to_string("/proc/cgroups").expect("/proc/cgroups");
    if !known.contains("net_cls") || !known.contains("net_prio") {
        eprintln!("SKIPPED cgroups_network_classid_and_priorities_on_v1: kernel lacks them");
        return;
    }
    let mnt = std::env::temp_dir().join(uid("net-cls-prio"));
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "cgroup", "-o", "net_cls,net_prio", "husk-test"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount net_cls,net_prio");
    let result = std::panic::catch_unwind(|| {
        let path = format!("/{}", uid("net"));
        let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
        let applied = cg.apply_resources(&resources(
            r#"{"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 7}]}}"#,
        ));
        let dir = mnt.join(path.trim_start_matches('/'));
        let classid = read(&dir, "net_cls.classid");
        let prio = read(&dir, "net_prio.ifpriomap");
        cg.destroy().expect("destroy");
        applied.expect("apply");
        assert_eq!(classid, "1048577");
        assert!(prio.lines().any(|l| l == "lo 7"), "ifpriomap: {prio}");
        assert!(!dir.exists(), "cgroup left behind");
    });
    let released = release_hierarchy(&mnt, "net_cls,net_prio", "net_cls");
    let _ = std::fs::remove_dir(&mnt);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    released.expect("the kernel must drop the hierarchy again");
}

/// (hierarchy id, number of cgroups) of a v1 controller, from /proc/cgroups.
fn proc_cgroups_entry(controller: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/cgroups").ok()?;
    let line = text
        .lines()
        .find(|l| l.split('\t').next() == Some(controller))?;
    let fields: Vec<&str> = line.split('\t').collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(2)?.parse().ok()?))
}

/// Unmount a v1 hierarchy that a test mounted so that the kernel destroys
/// it. The kernel does so only if the root has no child cgroup at unmount
/// time, and a removed child stays listed until its last reference goes (an
/// RCU grace period later): unmounting too early leaves an unmounted
/// hierarchy that /proc/self/cgroup keeps listing, which containerd's v1
/// cgroup code refuses (no stats, no OOM events). So wait for the children
/// to be freed, unmount, and check; a survivor is mounted and unmounted
/// again.
fn release_hierarchy(mnt: &Path, options: &str, controller: &str) -> Result<(), String> {
    for _attempt in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc_cgroups_entry(controller).is_some_and(|(_, n)| n > 1)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = Command::new("umount")
            .arg(mnt)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("umount {}: {st}", mnt.display()));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if proc_cgroups_entry(controller).is_some_and(|(h, _)| h == 0) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = Command::new("mount")
            .args(["-t", "cgroup", "-o", options, "husk-test"])
            .arg(mnt)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("remount {options} on {}: {st}", mnt.display()));
        }
    }
    Err(format!("the {options} hierarchy outlived its unmount"))
}

/// Pure cgroup v1: this host is hybrid, so the test takes a real container
/// cgroup and drops its cgroup2 part, which leaves what `create` records on
/// a v1-only host. pause then uses the v1 freezer (freezer.state), and
/// kill --all of a frozen cgroup still kills.
#[test]
fn cgroups_v1_only_freezer_and_kill() {
    need_root!(cgroups_v1_only_freezer_and_kill);
    let path = format!("/{}", uid("v1only"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let Some(freezer_dir) = cg.v1_dir("freezer") else {
        cg.destroy().expect("destroy");
        eprintln!("SKIPPED cgroups_v1_only_freezer_and_kill: no v1 freezer hierarchy");
        return;
    };
    let mut recorded = serde_json::to_value(&cg).expect("serialize");
    recorded["layout"] = serde_json::json!("v1");
    recorded["hierarchies"]
        .as_array_mut()
        .expect("hierarchies")
        .retain(|h| h["controllers"] != "");
    let v1: ContainerCgroup = serde_json::from_value(recorded).expect("v1 view");
    assert_eq!(v1.layout(), Layout::V1);
    assert!(v1.unified_dir().is_none());

    let mut child = sleeper();
    cg.attach(child.id() as i32, false).expect("attach");
    let state = || read(&freezer_dir, "freezer.state");
    v1.freeze().expect("freeze");
    assert!(v1.is_frozen());
    assert_eq!(state(), "FROZEN");
    v1.thaw().expect("thaw");
    assert_eq!(state(), "THAWED");
    assert!(!v1.is_frozen());
    assert_eq!(v1.procs().expect("procs"), vec![child.id() as i32]);
    v1.freeze().expect("freeze again");
    v1.signal_all(libc::SIGKILL).expect("kill");
    assert_eq!(signal_of(wait_dead(&mut child)), Some(libc::SIGKILL));
    cg.destroy().expect("destroy");
    assert_gone(&cg.dirs());
}

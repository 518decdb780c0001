//! Device rules enforced for real: the v1 devices controller through
//! `apply_resources` / `update_resources`, and husk's eBPF program loaded and
//! attached to a real cgroup2 directory. A forked probe joins the cgroup and
//! opens devices; what the kernel refuses is what the rules deny.

mod cgroups_util;

use std::os::fd::AsFd;
use std::path::PathBuf;

use cgroups_util::{cgroup2_root, probe, read, uid, Op};
use runtime_core::cgroups::devices::{self, DeviceKind, DeviceRule, Policy, ACC_ALL};
use runtime_core::cgroups::{bpf, ContainerCgroup};
use runtime_core::Error;

const EPERM: i32 = libc::EPERM;

fn resources(json: &str) -> oci_spec::runtime::LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

fn linux(json: &str) -> oci_spec::runtime::Linux {
    serde_json::from_str(json).expect("linux json")
}

/// A scratch dir for mknod attempts.
fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(uid(name));
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

#[test]
fn cgroups_devices_v1_enforced() {
    need_root!(cgroups_devices_v1_enforced);
    let path = format!("/{}", uid("devv1"));
    let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
    let Some(dev) = cg.v1_dir("devices") else {
        eprintln!("SKIPPED cgroups_devices_v1_enforced: no v1 devices controller here");
        cg.destroy().expect("destroy");
        return;
    };
    let tmp = tmpdir("devv1");
    let mem = tmp.join("mem");
    let mem = mem.to_str().expect("utf8");
    let ops = [
        Op::OpenRw("/dev/null"),
        Op::OpenRo("/dev/zero"),
        Op::OpenRo("/dev/urandom"),
        Op::OpenRw("/dev/loop-control"),
        Op::MknodChar(mem, 1, 1),
    ];
    let check = || {
        // deny-all first: only the default devices are left.
        cg.apply_resources(&resources(
            r#"{"devices": [{"allow": false, "access": "rwm"}]}"#,
        ))
        .expect("apply deny-all");
        let list = read(&dev, "devices.list");
        assert!(
            list.contains("c 1:3 rwm") && list.contains("c 136:* rwm"),
            "{list}"
        );
        assert!(!list.contains("a *:*"), "{list}");
        // mknod of any node is allowed by the cgroup, as in runc (CAP_MKNOD
        // still gates it); opening what is not listed is not.
        assert_eq!(probe(&[&dev], &ops), vec![0, 0, 0, EPERM, 0]);

        // update: loop-control allowed for reading and writing, nothing lost.
        cg.update_resources(
            &resources(
                r#"{"devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rw"}]}"#,
            ),
            &[],
        )
        .expect("update");
        assert!(read(&dev, "devices.list").contains("c 10:237 rw"));
        assert_eq!(probe(&[&dev], &ops), vec![0, 0, 0, 0, 0]);

        // A deny the v1 controller cannot enforce is refused, and the
        // cgroup keeps its rules.
        let before = read(&dev, "devices.list");
        let e = cg
            .update_resources(
                &resources(
                    r#"{"devices": [{"allow": false}, {"allow": true, "type": "c"},
                        {"allow": false, "type": "c", "major": 10, "minor": 237}]}"#,
                ),
                &[],
            )
            .expect_err("inexpressible");
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(e.to_string().contains("linux.resources.devices"), "{e}");
        assert_eq!(read(&dev, "devices.list"), before);

        // A malformed rule: a config error naming the field, nothing changed.
        let e = cg
            .update_resources(
                &resources(r#"{"devices": [{"allow": true, "type": "c", "access": "rwx"}]}"#),
                &[],
            )
            .expect_err("bad access");
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(e.to_string().contains("linux.resources.devices[0]"), "{e}");
        assert_eq!(read(&dev, "devices.list"), before);

        // linux.devices entries stay allowed (create's apply_config).
        cg.apply_config(&linux(
            r#"{"devices": [{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237}],
                "resources": {"devices": [{"allow": false, "access": "rwm"}]}}"#,
        ))
        .expect("apply_config");
        assert!(read(&dev, "devices.list").contains("c 10:237 rwm"));

        // Allow-all again (a reset to allow mode) and a single deny.
        cg.apply_resources(&resources(
            r#"{"devices": [{"allow": true, "access": "rwm"},
                {"allow": false, "type": "c", "major": 10, "minor": 237, "access": "r"}]}"#,
        ))
        .expect("allow mode");
        assert_eq!(read(&dev, "devices.list"), "a *:* rwm");
        assert_eq!(probe(&[&dev], &ops), vec![0, 0, 0, EPERM, 0]);
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    cg.destroy().expect("destroy");
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

fn rule(allow: bool, kind: DeviceKind, major: Option<u32>, minor: Option<u32>) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: ACC_ALL,
    }
}

fn open_dir(dir: &std::path::Path) -> std::os::fd::OwnedFd {
    nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .expect("open cgroup dir")
}

/// Our program, generated from a policy, loaded and attached to a cgroup2
/// directory: a process there can open /dev/null and nothing denied; a
/// second install replaces the first (one husk program, new rules).
#[test]
fn cgroups_devices_bpf_program_in_real_cgroup2() {
    need_root!(cgroups_devices_bpf_program_in_real_cgroup2);
    let Some(root) = cgroup2_root() else {
        eprintln!("SKIPPED cgroups_devices_bpf_program_in_real_cgroup2: no cgroup2 here");
        return;
    };
    let dir = root.join(uid("bpf"));
    std::fs::create_dir(&dir).expect("mkdir cgroup2 dir");
    let tmp = tmpdir("bpf");
    let mem = tmp.join("mem");
    let mem = mem.to_str().expect("utf8");
    let ops = [
        Op::OpenRw("/dev/null"),
        Op::OpenRo("/dev/zero"),
        Op::OpenRw("/dev/loop-control"),
        Op::MknodChar(mem, 1, 1),
        Op::OpenRo("/dev/urandom"),
    ];
    let check = || {
        let fd = open_dir(&dir);
        let first = Policy::new(&[
            rule(false, DeviceKind::All, None, None),
            rule(true, DeviceKind::Char, Some(1), Some(3)),
            rule(true, DeviceKind::Char, Some(1), Some(9)),
        ]);
        bpf::install(fd.as_fd(), &first).expect("load and attach");
        assert_eq!(bpf::attached(fd.as_fd()).expect("query").len(), 1);
        assert_eq!(probe(&[&dir], &ops), vec![0, EPERM, EPERM, EPERM, 0]);

        // The defaults plus linux.devices, the way a container gets them:
        // zero and loop-control now open, and mknod is allowed (as runc).
        let devs: Vec<oci_spec::runtime::LinuxDevice> = serde_json::from_str(
            r#"[{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237}]"#,
        )
        .expect("devices");
        let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow": false, "access": "rwm"}]"#).expect("rules");
        let second = Policy::new(&devices::container_rules(&rules, &devs).expect("rules"));
        bpf::install(fd.as_fd(), &second).expect("replace");
        assert_eq!(bpf::attached(fd.as_fd()).expect("query").len(), 1);
        assert_eq!(probe(&[&dir], &ops), vec![0, 0, 0, 0, 0]);
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    // The probes have exited; programs go with the cgroup.
    std::fs::remove_dir(&dir).expect("rmdir cgroup2 dir");
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

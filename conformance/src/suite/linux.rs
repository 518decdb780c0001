//! runtime-linux.md (file descriptors, /dev symlinks) and config-linux.md:
//! devices, sysctl, masked and read-only paths, root, rootfs propagation,
//! personality, seccomp, network devices, Intel RDT, mount labels, and
//! config.md extensibility.

use super::mounts::find_mount;
use super::{ensure, expect_eq, expect_error, expect_ok, skip, Ctx, Test, TestResult};
use crate::bundle::Bundle;
use crate::procinfo;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::Command;

pub fn tests() -> Vec<Test> {
    vec![
        Test { name: "linux.fds_only_stdio", spec: "runtime-linux.md#file-descriptors: by default only stdin, stdout and stderr are kept open", run: fds_only_stdio },
        Test { name: "linux.dev_symlinks", spec: "runtime-linux.md#dev-symbolic-links: /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr MUST be created", run: dev_symlinks },
        Test { name: "linux.default_devices", spec: "config-linux.md#default-devices: the runtime MUST supply null, zero, full, random, urandom, tty, ptmx", run: default_devices },
        Test { name: "linux.devices_created", spec: "config-linux.md#devices: listed devices MUST be available with type, major/minor, fileMode, uid, gid", run: devices_created },
        Test { name: "linux.device_mismatch_errors", spec: "config-linux.md#devices: a file at path that does not match the device MUST generate an error", run: device_mismatch_errors },
        Test { name: "linux.device_cgroup_deny", spec: "config-linux.md#allowed-device-list: entries MUST be applied in the listed order (a later deny wins)", run: device_cgroup_deny },
        Test { name: "linux.device_cgroup_order", spec: "config-linux.md#allowed-device-list: entries MUST be applied in the listed order (a later allow wins)", run: device_cgroup_order },
        Test { name: "linux.sysctl", spec: "config-linux.md#sysctl: kernel parameters are modified for the container", run: sysctl },
        Test { name: "linux.sysctl_invalid_errors", spec: "config.md#valid-values: runtimes MUST generate an error for invalid or unsupported values (unknown sysctl)", run: sysctl_invalid_errors },
        Test { name: "linux.masked_paths", spec: "config-linux.md#masked-paths: maskedPaths cannot be read inside the container", run: masked_paths },
        Test { name: "linux.readonly_paths", spec: "config-linux.md#readonly-paths: readonlyPaths are read-only inside the container", run: readonly_paths },
        Test { name: "linux.root_readonly", spec: "config.md#root: readonly true MUST make the root filesystem read-only", run: root_readonly },
        Test { name: "linux.root_writable", spec: "config.md#root: readonly defaults to false (writable root)", run: root_writable },
        Test { name: "linux.root_absolute_path", spec: "config.md#root: path is either an absolute path or a relative path to the bundle", run: root_absolute_path },
        Test { name: "linux.rootfs_propagation_private", spec: "config-linux.md#rootfs-mount-propagation: private does not receive mount events from the host", run: |c| rootfs_propagation(c, "private") },
        Test { name: "linux.rootfs_propagation_slave", spec: "config-linux.md#rootfs-mount-propagation: slave receives mount events from the host", run: |c| rootfs_propagation(c, "slave") },
        Test { name: "linux.rootfs_propagation_shared", spec: "config-linux.md#rootfs-mount-propagation: shared puts the rootfs mount in a peer group", run: |c| rootfs_propagation(c, "shared") },
        Test { name: "linux.rootfs_propagation_unbindable", spec: "config-linux.md#rootfs-mount-propagation: unbindable makes the rootfs a private mount that cannot be bind-mounted", run: |c| rootfs_propagation(c, "unbindable") },
        Test { name: "linux.personality", spec: "config-linux.md#personality: domain LINUX32 sets the execution domain (uname shows a 32 bit CPU)", run: personality },
        Test { name: "linux.personality_invalid_errors", spec: "config.md#valid-values: runtimes MUST generate an error for invalid values (unknown personality domain)", run: personality_invalid_errors },
        Test { name: "linux.seccomp_errno", spec: "config-linux.md#seccomp: SCMP_ACT_ERRNO with errnoRet returns that errno", run: seccomp_errno },
        Test { name: "linux.seccomp_args", spec: "config-linux.md#seccomp: syscalls[].args match on syscall arguments", run: seccomp_args },
        Test { name: "linux.seccomp_kill", spec: "config-linux.md#seccomp: SCMP_ACT_KILL_PROCESS kills the process", run: seccomp_kill },
        Test { name: "linux.net_devices", spec: "config-linux.md#network-devices: netDevices move a host interface into the container's network namespace", run: net_devices },
        Test { name: "linux.intel_rdt", spec: "config-linux.md#intelrdt: the process is placed in the resctrl group closID", run: intel_rdt },
        Test { name: "linux.mount_label", spec: "config-linux.md#mount-label: mountLabel sets the SELinux context of the mounts", run: mount_label },
        Test { name: "linux.unknown_properties_ignored", spec: "config.md#extensibility: runtimes MUST ignore unknown properties and not generate errors", run: unknown_properties_ignored },
    ]
}

fn fds_only_stdio(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(|_| {}, &["fds"])?;
    let fds: Vec<u64> = got
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["fd"].as_u64()).collect())
        .unwrap_or_default();
    ctx.observe("fds", json!(fds));
    Ok(expect_eq("open fds", &json!([0, 1, 2]), &json!(fds))?)
}

fn dev_symlinks(ctx: &mut Ctx) -> TestResult {
    let links = [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    let paths: Vec<&str> = links.iter().map(|l| l.0).collect();
    let mut args = vec!["stat"];
    args.extend(&paths);
    let got = ctx.probe_with(|_| {}, &args)?;
    let targets: serde_json::Map<String, Value> = links
        .iter()
        .map(|(p, _)| (p.to_string(), got[p]["target"].clone()))
        .collect();
    ctx.observe("targets", Value::Object(targets));
    for (path, target) in links {
        expect_eq(
            &format!("{path} symlink target"),
            &json!(target),
            &got[path]["target"],
        )?;
    }
    Ok(())
}

fn default_devices(ctx: &mut Ctx) -> TestResult {
    let devices = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    let mut args = vec!["stat", "/dev/ptmx"];
    args.extend(devices.iter().map(|d| d.0));
    let got = ctx.probe_with(|_| {}, &args)?;
    ctx.observe("ptmx_type", got["/dev/ptmx"]["type"].clone());
    for (path, major, minor) in devices {
        let st = &got[path];
        let ok = st["type"] == "c" && st["major"] == major && st["minor"] == minor;
        ensure(
            ok,
            format!("{path} is not the character device {major}:{minor}: {st}"),
        )?;
    }
    let ptmx = &got["/dev/ptmx"];
    let ok = (ptmx["type"] == "l"
        && ptmx["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("pts/ptmx")))
        || (ptmx["type"] == "c" && ptmx["major"] == 5 && ptmx["minor"] == 2);
    Ok(ensure(
        ok,
        format!("/dev/ptmx is neither a link to pts/ptmx nor the ptmx device: {ptmx}"),
    )?)
}

fn devices_created(ctx: &mut Ctx) -> TestResult {
    let devices = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/loop-test", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0},
        {"path": "/dev/test-fifo", "type": "p", "fileMode": 0o622},
        {"path": "/extra/devnull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
    ]);
    let got = ctx.probe_with(
        |b| {
            b.set("/linux/devices", devices.clone());
        },
        &[
            "stat",
            "/dev/fuse",
            "/dev/loop-test",
            "/dev/test-fifo",
            "/extra/devnull",
        ],
    )?;
    ctx.observe("devices", got.clone());
    for dev in devices.as_array().into_iter().flatten() {
        let path = dev["path"].as_str().unwrap_or("");
        let st = &got[path];
        expect_eq(&format!("{path} type"), &dev["type"], &st["type"])?;
        expect_eq(&format!("{path} mode"), &dev["fileMode"], &st["mode"])?;
        if dev["type"] != "p" {
            expect_eq(&format!("{path} major"), &dev["major"], &st["major"])?;
            expect_eq(&format!("{path} minor"), &dev["minor"], &st["minor"])?;
        }
        if dev.get("uid").is_some() {
            expect_eq(&format!("{path} uid"), &dev["uid"], &st["uid"])?;
            expect_eq(&format!("{path} gid"), &dev["gid"], &st["gid"])?;
        }
    }
    Ok(())
}

fn device_mismatch_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    fs::create_dir_all(b.rootfs().join("extra")).map_err(|e| e.to_string())?;
    fs::write(b.rootfs().join("extra/regular"), "not a device\n").map_err(|e| e.to_string())?;
    b.set(
        "/linux/devices",
        json!([{"path": "/extra/regular", "type": "c", "major": 1, "minor": 3}]),
    )
    .probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with a device path that is a regular file",
    )?)
}

fn zero_read_with_rules(ctx: &mut Ctx, rules: Value) -> Result<Value, String> {
    let got = ctx.probe_with(
        |b| {
            b.set("/linux/resources/devices", rules);
        },
        &["read", "/dev/zero"],
    )?;
    ctx.observe("read_zero", json!({"ok": got["ok"], "errno": got["errno"]}));
    Ok(got)
}

fn device_cgroup_deny(ctx: &mut Ctx) -> TestResult {
    let rules = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
    ]);
    let got = zero_read_with_rules(ctx, rules)?;
    Ok(expect_eq(
        "errno reading /dev/zero after a deny rule",
        &json!(libc::EPERM),
        &got["errno"],
    )?)
}

fn device_cgroup_order(ctx: &mut Ctx) -> TestResult {
    let rules = json!([
        {"allow": false, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}
    ]);
    let got = zero_read_with_rules(ctx, rules)?;
    Ok(expect_eq(
        "reading /dev/zero after an allow rule",
        &json!(true),
        &got["ok"],
    )?)
}

fn sysctl(ctx: &mut Ctx) -> TestResult {
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let want = json!({"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1", "net.core.somaxconn": "256"});
    let got = ctx.probe_with(
        |b| {
            b.set("/linux/sysctl", want.clone());
        },
        &[
            "sysctl",
            "net.ipv4.ip_forward",
            "kernel.shm_rmid_forced",
            "net.core.somaxconn",
        ],
    )?;
    ctx.observe("sysctl", got.clone());
    expect_eq("sysctl values inside", &want, &got)?;
    let host_after = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    Ok(ensure(
        host_before == host_after,
        "the container's sysctl changed the host's net.ipv4.ip_forward",
    )?)
}

fn sysctl_invalid_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/linux/sysctl", json!({"kernel.no_such_parameter": "1"}))
        .probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with an unknown sysctl",
    )?)
}

/// A bundle with /secret.txt and /secretdir/file in the rootfs.
fn bundle_with_secrets(ctx: &mut Ctx) -> Result<Bundle, String> {
    let b = ctx.bundle()?;
    let root = b.rootfs();
    fs::write(root.join("secret.txt"), "secret\n").map_err(|e| e.to_string())?;
    fs::create_dir_all(root.join("secretdir")).map_err(|e| e.to_string())?;
    fs::write(root.join("secretdir/file"), "secret\n").map_err(|e| e.to_string())?;
    Ok(b)
}

fn masked_paths(ctx: &mut Ctx) -> TestResult {
    let mut b = bundle_with_secrets(ctx)?;
    b.set(
        "/linux/maskedPaths",
        json!(["/secret.txt", "/secretdir", "/no/such/path", "/proc/kcore"]),
    );
    let file = ctx.probe_in(&mut b, &["read", "/secret.txt"])?;
    let dir = ctx.probe_in(&mut b, &["read", "/secretdir"])?;
    ctx.observe("file", file.clone());
    ctx.observe("dir", dir.clone());
    let hidden = |v: &Value| v["ok"] == false || v["content"] == "" || v["entries"] == json!([]);
    ensure(hidden(&file), format!("masked file is readable: {file}"))?;
    Ok(ensure(
        hidden(&dir),
        format!("masked directory is readable: {dir}"),
    )?)
}

fn readonly_paths(ctx: &mut Ctx) -> TestResult {
    let mut b = bundle_with_secrets(ctx)?;
    b.set("/root/readonly", json!(false)).set(
        "/linux/readonlyPaths",
        json!(["/secretdir", "/no/such/path"]),
    );
    let inside = ctx.probe_in(&mut b, &["write", "/secretdir/new"])?;
    let outside = ctx.probe_in(&mut b, &["write", "/writable"])?;
    ctx.observe(
        "writes",
        json!({"readonly_path": inside["errno"], "elsewhere": outside["ok"]}),
    );
    expect_eq(
        "errno writing under a readonly path",
        &json!(libc::EROFS),
        &inside["errno"],
    )?;
    Ok(expect_eq(
        "writing elsewhere in a writable root",
        &json!(true),
        &outside["ok"],
    )?)
}

fn root_readonly(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/root/readonly", json!(true));
        },
        &["write", "/newfile"],
    )?;
    ctx.observe("write", got.clone());
    Ok(expect_eq(
        "errno writing to a read-only root",
        &json!(libc::EROFS),
        &got["errno"],
    )?)
}

fn root_writable(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.remove("/root/readonly");
    let got = ctx.probe_in(&mut b, &["write", "/newfile"])?;
    ctx.observe("write", got.clone());
    expect_eq(
        "writing to the root without readonly",
        &json!(true),
        &got["ok"],
    )?;
    Ok(ensure(
        b.rootfs().join("newfile").exists(),
        "the write did not land in the bundle's rootfs",
    )?)
}

fn root_absolute_path(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let abs = b.rootfs().to_string_lossy().into_owned();
    b.set("/root/path", json!(abs));
    let got = ctx.probe_in(&mut b, &["hostname"])?;
    Ok(expect_eq(
        "hostname from a bundle with an absolute root.path",
        &json!("runc"),
        &got["hostname"],
    )?)
}

/// Builds the bundle inside a shared tmpfs (as on a host whose / is shared),
/// so that the propagation the container's root gets is decided by
/// rootfsPropagation alone; then mounts on the host under the rootfs.
fn rootfs_propagation(ctx: &mut Ctx, mode: &str) -> TestResult {
    let dir = ctx.scratch("shared")?;
    ctx.host_mount("tmpfs", &dir, "tmpfs", 0, "size=16m")?;
    crate::host::set_propagation(&dir, libc::MS_SHARED)?;
    let mut b = Bundle::busybox(&dir.join("bundle"))
        .and_then(|b| b.with_probe(&ctx.probe))
        .map_err(|e| format!("building a bundle on the shared tmpfs: {e}"))?;
    let rootfs = b.rootfs();
    b.set("/linux/rootfsPropagation", json!(mode));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let late = rootfs.join("mnt");
    ctx.host_mount("tmpfs", &late, "tmpfs", 0, "size=1m")?;
    let text = fs::read_to_string(format!("/proc/{pid}/mountinfo")).map_err(|e| e.to_string())?;
    let mounts = json!(procinfo::parse_mountinfo(&text));
    let root = find_mount(&mounts, "/").ok_or("no / in the container's mountinfo")?;
    let optional: Vec<String> = root["optional"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_str())
        .map(|o| o.split(':').next().unwrap_or("").to_string())
        .collect();
    let received = find_mount(&mounts, "/mnt").is_some_and(|m| m["fstype"] == "tmpfs");
    ctx.observe(
        "root",
        json!({"propagation": optional, "received_host_mount": received}),
    );
    let has = |k: &str| optional.iter().any(|o| o == k);
    match mode {
        "private" => ensure(
            !received && !has("master"),
            format!("private rootfs: propagation {optional:?}, host mount received: {received}"),
        )?,
        "slave" => ensure(
            received && has("master"),
            format!("slave rootfs: propagation {optional:?}, host mount received: {received}"),
        )?,
        "shared" => ensure(
            has("shared"),
            format!("shared rootfs: propagation {optional:?}"),
        )?,
        _ => ensure(
            has("unbindable"),
            format!("unbindable rootfs: propagation {optional:?}"),
        )?,
    }
    Ok(())
}

fn personality(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/linux/personality", json!({"domain": "LINUX32"}));
        },
        &["personality"],
    )?;
    ctx.observe("personality", got.clone());
    const PER_LINUX32: i64 = 0x0008;
    let p = got["personality"].as_i64().unwrap_or(-1);
    ensure(
        p & 0xff == PER_LINUX32,
        format!("personality is {p:#x}, expected PER_LINUX32"),
    )?;
    Ok(expect_eq("uname machine", &json!("i686"), &got["machine"])?)
}

fn personality_invalid_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/linux/personality", json!({"domain": "NOT_A_DOMAIN"}))
        .probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with an unknown personality domain",
    )?)
}

fn seccomp_profile(syscalls: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": syscalls})
}

fn seccomp_errno(ctx: &mut Ctx) -> TestResult {
    let profile = seccomp_profile(
        json!([{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EOPNOTSUPP}]),
    );
    let mut b = ctx.bundle()?;
    b.set("/linux/seccomp", profile);
    let got = ctx.probe_in(&mut b, &["seccomp"])?;
    let status = ctx.probe_in(&mut b, &["nnp"])?;
    ctx.observe(
        "seccomp",
        json!({"getcwd": got["getcwd"], "mode": status["seccomp"]}),
    );
    expect_eq(
        "errno of the filtered getcwd",
        &json!(libc::EOPNOTSUPP),
        &got["getcwd"],
    )?;
    Ok(expect_eq(
        "Seccomp mode in /proc/self/status",
        &json!(2),
        &status["seccomp"],
    )?)
}

fn seccomp_args(ctx: &mut Ctx) -> TestResult {
    let profile = seccomp_profile(json!([{
        "names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM,
        "args": [{"index": 0, "value": libc::PRIO_PGRP, "op": "SCMP_CMP_EQ"}]
    }]));
    let got = ctx.probe_with(
        |b| {
            b.set("/linux/seccomp", profile);
        },
        &["seccomp"],
    )?;
    ctx.observe("seccomp", got.clone());
    expect_eq(
        "getpriority(PRIO_PROCESS) errno",
        &Value::Null,
        &got["getpriority_process"],
    )?;
    Ok(expect_eq(
        "getpriority(PRIO_PGRP) errno",
        &json!(libc::EPERM),
        &got["getpriority_pgrp"],
    )?)
}

fn seccomp_kill(ctx: &mut Ctx) -> TestResult {
    let profile =
        seccomp_profile(json!([{"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]));
    let mut b = ctx.bundle()?;
    b.set("/linux/seccomp", profile).probe_args(&["seccomp"]);
    let id = ctx.create_started(&b)?;
    ctx.wait_stopped(&id)?;
    let printed = ctx.container_output(&b).is_ok();
    ctx.observe("survived", json!(printed));
    Ok(ensure(
        !printed,
        "the process survived a SCMP_ACT_KILL_PROCESS syscall",
    )?)
}

fn net_devices(ctx: &mut Ctx) -> TestResult {
    let name = format!("cf{}", std::process::id() % 100000);
    let made = Command::new("ip")
        .args(["link", "add", &name, "type", "dummy"])
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        return Err(skip(
            "cannot create a dummy network interface (no dummy driver or no ip tool)",
        ));
    }
    let got = ctx.probe_with(
        |b| {
            b.set(
                "/linux/netDevices",
                json!({ name.as_str(): {"name": "ctr0"} }),
            );
        },
        &["net"],
    );
    // The interface is destroyed with the namespace; delete it if it stayed.
    let _ = Command::new("ip").args(["link", "del", &name]).output();
    let got = got?;
    ctx.observe("interfaces", got.clone());
    Ok(ensure(
        got.as_array()
            .is_some_and(|a| a.iter().any(|n| n == "ctr0")),
        format!("ctr0 missing from {got}"),
    )?)
}

fn intel_rdt(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/sys/fs/resctrl/tasks").exists() {
        return Err(skip(
            "no resctrl filesystem is mounted (Intel RDT unavailable)",
        ));
    }
    let mut b = ctx.bundle()?;
    b.set("/linux/intelRdt", json!({"closID": "conformance"}));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let tasks = fs::read_to_string("/sys/fs/resctrl/conformance/tasks").unwrap_or_default();
    Ok(ensure(
        tasks.lines().any(|t| t.trim() == pid.to_string()),
        "the container process is not in the closID group",
    )?)
}

fn mount_label(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        return Err(skip("SELinux is not enabled on this kernel"));
    }
    let got = ctx.probe_with(
        |b| {
            b.set(
                "/linux/mountLabel",
                json!("system_u:object_r:container_file_t:s0"),
            );
        },
        &["mounts"],
    )?;
    let dev = find_mount(&got, "/dev")
        .map(|m| m["super_options"].clone())
        .unwrap_or_default();
    Ok(ensure(
        dev.to_string().contains("context="),
        format!("no SELinux context on /dev: {dev}"),
    )?)
}

fn unknown_properties_ignored(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/org.example.unknown", json!({"nested": [1, 2]}))
        .set("/process/org.example.unknown", json!(true))
        .set("/linux/org.example.unknown", json!("x"));
    b.probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_ok(
        &ctx.runtime.run(&b, &id),
        "run with unknown properties",
    )?)
}

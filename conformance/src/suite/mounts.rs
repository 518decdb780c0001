//! config.md#mounts and config-linux.md default filesystems: mount types,
//! option families, bind mounts, propagation and id-mapped mounts. Effects are
//! read from the container's /proc/self/mountinfo (probe) or from the host's
//! view of /proc/<pid>/mountinfo.

use super::{ensure, expect_eq, expect_error, skip, Ctx, Test, TestResult};
use crate::bundle::Bundle;
use crate::procinfo;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{chown, symlink};
use std::path::Path;

pub fn tests() -> Vec<Test> {
    vec![
        Test { name: "mounts.default_filesystems", spec: "config-linux.md#default-filesystems: /proc, /sys, /dev/pts, /dev/shm SHOULD be available", run: default_filesystems },
        Test { name: "mounts.listed_order", spec: "config.md#mounts: the runtime MUST mount entries in the listed order", run: listed_order },
        Test { name: "mounts.tmpfs_data_options", spec: "config.md#linux-mount-options: filesystem-specific options are passed as mount data", run: tmpfs_data_options },
        Test { name: "mounts.flag_options", spec: "config.md#linux-mount-options: nosuid, nodev, noexec, ro MUST be implemented", run: flag_options },
        Test { name: "mounts.atime_options", spec: "config.md#linux-mount-options: noatime, strictatime, relatime, nodiratime MUST be implemented", run: atime_options },
        Test { name: "mounts.sync_options", spec: "config.md#linux-mount-options: sync, dirsync, lazytime MUST be implemented", run: sync_options },
        Test { name: "mounts.nosymfollow", spec: "config.md#linux-mount-options: nosymfollow SHOULD be implemented", run: nosymfollow },
        Test { name: "mounts.readonly_write_fails", spec: "config.md#linux-mount-options: ro makes the mount read-only", run: readonly_write_fails },
        Test { name: "mounts.bind", spec: "config.md#mounts: a mount with bind in options is a bind mount of source", run: bind },
        Test { name: "mounts.bind_relative_source", spec: "config.md#mounts: bind source paths are absolute or relative to the bundle", run: bind_relative_source },
        Test { name: "mounts.bind_file", spec: "config.md#mounts: source can be a file for bind mounts", run: bind_file },
        Test { name: "mounts.bind_not_recursive", spec: "config.md#linux-mount-options: bind is a non-recursive bind mount", run: bind_not_recursive },
        Test { name: "mounts.rbind_recursive", spec: "config.md#linux-mount-options: rbind is a recursive bind mount", run: rbind_recursive },
        Test { name: "mounts.recursive_readonly", spec: "config.md#linux-mount-options: rro SHOULD make a mount and its submounts read-only", run: recursive_readonly },
        Test { name: "mounts.relative_destination", spec: "config.md#mounts: a relative destination MUST be interpreted as relative to /", run: relative_destination },
        Test { name: "mounts.propagation_options", spec: "config.md#linux-mount-options: rshared, rprivate, runbindable MUST be implemented", run: propagation_options },
        Test { name: "mounts.propagation_rslave", spec: "config.md#linux-mount-options: rslave MUST be implemented (host mounts propagate in)", run: propagation_rslave },
        Test { name: "mounts.idmap", spec: "config.md#posix-platform-mounts: uidMappings/gidMappings with idmap MUST be used for the mount's mapping", run: idmap },
        Test { name: "mounts.idmap_without_mappings_errors", spec: "config.md#linux-mount-options: idmap without mappings and without a user namespace MUST return an error", run: idmap_without_mappings_errors },
        Test { name: "mounts.tmpcopyup", spec: "config.md#linux-mount-options: tmpcopyup MAY copy the contents up to the tmpfs", run: tmpcopyup },
        Test { name: "mounts.destination_symlink_in_rootfs", spec: "config.md#mounts: destination is a path inside the container (symlinks resolve in the rootfs)", run: destination_symlink_in_rootfs },
    ]
}

/// The mount visible at `point` (the last one listed wins, as it is on top).
pub fn find_mount<'a>(mounts: &'a Value, point: &str) -> Option<&'a Value> {
    mounts
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["mount_point"] == point)
}

fn mount_at<'a>(mounts: &'a Value, point: &str) -> Result<&'a Value, String> {
    find_mount(mounts, point).ok_or_else(|| format!("nothing is mounted at {point}"))
}

fn has(list: &Value, item: &str) -> bool {
    list.as_array().is_some_and(|a| a.iter().any(|v| v == item))
}

/// The probe's mount table with extra mounts in the config.
fn mounts_with(ctx: &mut Ctx, extra: Vec<Value>) -> Result<Value, String> {
    ctx.probe_with(
        |b| {
            extra.into_iter().for_each(|m| {
                b.push("/mounts", m);
            })
        },
        &["mounts"],
    )
}

fn tmpfs(dest: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options})
}

fn bind_mount(source: &Path, dest: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": "bind", "source": source.to_string_lossy(), "options": options})
}

fn default_filesystems(ctx: &mut Ctx) -> TestResult {
    let mounts = mounts_with(ctx, vec![])?;
    let want = [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ];
    let mut seen = serde_json::Map::new();
    for (point, fstype) in want {
        let m = mount_at(&mounts, point)?;
        seen.insert(point.into(), m["fstype"].clone());
        expect_eq(&format!("type of {point}"), &json!(fstype), &m["fstype"])?;
    }
    let cgroup = mounts.as_array().into_iter().flatten().find(|m| {
        m["mount_point"]
            .as_str()
            .is_some_and(|p| p.starts_with("/sys/fs/cgroup"))
    });
    seen.insert("/sys/fs/cgroup".into(), json!(cgroup.is_some()));
    ctx.observe("types", Value::Object(seen));
    ensure(
        cgroup.is_some(),
        "the cgroup mount at /sys/fs/cgroup is missing",
    )?;
    Ok(())
}

fn listed_order(ctx: &mut Ctx) -> TestResult {
    let points = ["/mnt/a", "/mnt/a/b", "/mnt"];
    let mounts = mounts_with(ctx, points.iter().map(|p| tmpfs(p, &[])).collect())?;
    let list = mounts.as_array().cloned().unwrap_or_default();
    let index = |p: &str| list.iter().position(|m| m["mount_point"] == p);
    let order: Vec<Option<usize>> = points.iter().map(|p| index(p)).collect();
    ctx.observe(
        "found",
        json!(order.iter().map(Option::is_some).collect::<Vec<_>>()),
    );
    let found: Vec<usize> = order.iter().flatten().copied().collect();
    ensure(
        found.len() == points.len(),
        format!("not all of {points:?} are mounted"),
    )?;
    Ok(ensure(
        found.windows(2).all(|w| w[0] < w[1]),
        format!("mounts are not in the listed order {points:?}"),
    )?)
}

fn tmpfs_data_options(ctx: &mut Ctx) -> TestResult {
    let mounts = mounts_with(
        ctx,
        vec![tmpfs(
            "/t",
            &[
                "size=1m",
                "mode=1770",
                "uid=1000",
                "gid=1000",
                "nr_inodes=1000",
            ],
        )],
    )?;
    let m = mount_at(&mounts, "/t")?;
    ctx.observe("super_options", m["super_options"].clone());
    for opt in [
        "size=1024k",
        "mode=1770",
        "uid=1000",
        "gid=1000",
        "nr_inodes=1000",
    ] {
        ensure(
            has(&m["super_options"], opt),
            format!("{opt} missing from /t's options {}", m["super_options"]),
        )?;
    }
    Ok(())
}

fn flag_options(ctx: &mut Ctx) -> TestResult {
    let mounts = mounts_with(
        ctx,
        vec![
            tmpfs("/f", &["nosuid", "nodev", "noexec", "ro"]),
            tmpfs("/g", &["suid", "dev", "exec", "rw"]),
        ],
    )?;
    let f = mount_at(&mounts, "/f")?;
    let g = mount_at(&mounts, "/g")?;
    ctx.observe("f", f["options"].clone());
    ctx.observe("g", g["options"].clone());
    for opt in ["nosuid", "nodev", "noexec", "ro"] {
        ensure(
            has(&f["options"], opt),
            format!("{opt} missing from /f's options {}", f["options"]),
        )?;
    }
    for opt in ["nosuid", "nodev", "noexec", "ro"] {
        ensure(
            !has(&g["options"], opt),
            format!(
                "{opt} set on /g although the opposite was asked: {}",
                g["options"]
            ),
        )?;
    }
    Ok(())
}

fn atime_options(ctx: &mut Ctx) -> TestResult {
    let mounts = mounts_with(
        ctx,
        vec![
            tmpfs("/noatime", &["noatime"]),
            tmpfs("/strict", &["strictatime"]),
            tmpfs("/rel", &["relatime"]),
            tmpfs("/nodir", &["nodiratime"]),
        ],
    )?;
    let opts = |p: &str| mount_at(&mounts, p).map(|m| m["options"].clone());
    let (noatime, strict, rel, nodir) = (
        opts("/noatime")?,
        opts("/strict")?,
        opts("/rel")?,
        opts("/nodir")?,
    );
    ctx.observe(
        "options",
        json!({"noatime": noatime, "strictatime": strict, "relatime": rel, "nodiratime": nodir}),
    );
    ensure(
        has(&noatime, "noatime"),
        format!("noatime not applied: {noatime}"),
    )?;
    ensure(
        !has(&strict, "noatime") && !has(&strict, "relatime"),
        format!("strictatime not applied: {strict}"),
    )?;
    ensure(
        has(&rel, "relatime"),
        format!("relatime not applied: {rel}"),
    )?;
    Ok(ensure(
        has(&nodir, "nodiratime"),
        format!("nodiratime not applied: {nodir}"),
    )?)
}

fn sync_options(ctx: &mut Ctx) -> TestResult {
    let mounts = mounts_with(ctx, vec![tmpfs("/s", &["sync", "dirsync", "lazytime"])])?;
    let m = mount_at(&mounts, "/s")?;
    ctx.observe("super_options", m["super_options"].clone());
    for opt in ["sync", "dirsync", "lazytime"] {
        ensure(
            has(&m["super_options"], opt),
            format!("{opt} missing from {}", m["super_options"]),
        )?;
    }
    Ok(())
}

fn nosymfollow(ctx: &mut Ctx) -> TestResult {
    let mounts = mounts_with(ctx, vec![tmpfs("/n", &["nosymfollow"])])?;
    let m = mount_at(&mounts, "/n")?;
    ctx.observe("options", m["options"].clone());
    Ok(ensure(
        has(&m["options"], "nosymfollow"),
        format!("nosymfollow missing from {}", m["options"]),
    )?)
}

fn readonly_write_fails(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.push("/mounts", tmpfs("/ro", &["ro"]));
        },
        &["write", "/ro/file"],
    )?;
    ctx.observe("write", got.clone());
    Ok(expect_eq(
        "errno of a write to a ro mount",
        &json!(libc::EROFS),
        &got["errno"],
    )?)
}

/// A host directory with one file, for bind mounts.
fn host_dir(ctx: &mut Ctx, name: &str) -> Result<std::path::PathBuf, String> {
    let dir = ctx.scratch(name)?;
    fs::write(dir.join("file"), "from the host\n").map_err(|e| e.to_string())?;
    Ok(dir)
}

fn bind(ctx: &mut Ctx) -> TestResult {
    let src = host_dir(ctx, "bindsrc")?;
    let mut b = ctx.bundle()?;
    b.push("/mounts", bind_mount(&src, "/data", &["bind", "rw"]));
    let read = ctx.probe_in(&mut b, &["read", "/data/file"])?;
    let write = ctx.probe_in(&mut b, &["write", "/data/new"])?;
    ctx.observe("read", read.clone());
    ctx.observe("write", write.clone());
    expect_eq(
        "content of /data/file",
        &json!("from the host\n"),
        &read["content"],
    )?;
    Ok(ensure(
        src.join("new").exists(),
        "a write through the rw bind mount did not reach the host",
    )?)
}

fn bind_relative_source(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    fs::create_dir_all(b.dir.join("data")).map_err(|e| e.to_string())?;
    fs::write(b.dir.join("data/file"), "relative\n").map_err(|e| e.to_string())?;
    b.push(
        "/mounts",
        json!({"destination": "/data", "type": "bind", "source": "data", "options": ["bind"]}),
    );
    let got = ctx.probe_in(&mut b, &["read", "/data/file"])?;
    ctx.observe("read", got.clone());
    Ok(expect_eq(
        "content of /data/file",
        &json!("relative\n"),
        &got["content"],
    )?)
}

fn bind_file(ctx: &mut Ctx) -> TestResult {
    let src = host_dir(ctx, "filesrc")?;
    let got = ctx.probe_with(
        |b| {
            b.push(
                "/mounts",
                bind_mount(&src.join("file"), "/etc/bound", &["bind", "ro"]),
            );
        },
        &["read", "/etc/bound"],
    )?;
    ctx.observe("read", got.clone());
    Ok(expect_eq(
        "content of /etc/bound",
        &json!("from the host\n"),
        &got["content"],
    )?)
}

/// A host directory with a tmpfs submount at `sub` holding `sub/inner`.
fn dir_with_submount(ctx: &mut Ctx) -> Result<std::path::PathBuf, String> {
    let src = host_dir(ctx, "treesrc")?;
    let sub = src.join("sub");
    fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
    ctx.host_mount("tmpfs", &sub, "tmpfs", 0, "size=1m")?;
    fs::write(sub.join("inner"), "submount\n").map_err(|e| e.to_string())?;
    Ok(src)
}

fn bind_not_recursive(ctx: &mut Ctx) -> TestResult {
    let src = dir_with_submount(ctx)?;
    let got = ctx.probe_with(
        |b| {
            b.push("/mounts", bind_mount(&src, "/tree", &["bind"]));
        },
        &["read", "/tree/sub/inner"],
    )?;
    ctx.observe("submount_visible", got["ok"].clone());
    Ok(expect_eq(
        "submount visible through bind",
        &json!(false),
        &got["ok"],
    )?)
}

fn rbind_recursive(ctx: &mut Ctx) -> TestResult {
    let src = dir_with_submount(ctx)?;
    let got = ctx.probe_with(
        |b| {
            b.push("/mounts", bind_mount(&src, "/tree", &["rbind"]));
        },
        &["read", "/tree/sub/inner"],
    )?;
    ctx.observe("submount_visible", got["ok"].clone());
    Ok(expect_eq(
        "content through rbind",
        &json!("submount\n"),
        &got["content"],
    )?)
}

fn recursive_readonly(ctx: &mut Ctx) -> TestResult {
    let src = dir_with_submount(ctx)?;
    let got = ctx.probe_with(
        |b| {
            b.push("/mounts", bind_mount(&src, "/tree", &["rbind", "rro"]));
        },
        &["write", "/tree/sub/new"],
    )?;
    ctx.observe("write", got.clone());
    Ok(expect_eq(
        "errno of a write to a submount under rro",
        &json!(libc::EROFS),
        &got["errno"],
    )?)
}

fn relative_destination(ctx: &mut Ctx) -> TestResult {
    let mounts = mounts_with(ctx, vec![tmpfs("reldest", &[])])?;
    ctx.observe("mounted", json!(find_mount(&mounts, "/reldest").is_some()));
    Ok(ensure(
        find_mount(&mounts, "/reldest").is_some(),
        "relative destination was not mounted at /reldest",
    )?)
}

fn propagation_options(ctx: &mut Ctx) -> TestResult {
    // The spec lists these as bind mount propagation options.
    let src = host_dir(ctx, "propsrc")?;
    let binds = ["rshared", "rprivate", "runbindable"]
        .iter()
        .map(|o| bind_mount(&src, &format!("/p{}", &o[1..]), &["rbind", o]))
        .collect();
    let mounts = mounts_with(ctx, binds)?;
    let optional = |p: &str| mount_at(&mounts, p).map(|m| m["optional"].clone());
    let (shared, private, unbindable) = (
        optional("/pshared")?,
        optional("/pprivate")?,
        optional("/punbindable")?,
    );
    let starts = |v: &Value, prefix: &str| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|o| o.as_str().is_some_and(|s| s.starts_with(prefix)))
        })
    };
    let summary = json!({"rshared": starts(&shared, "shared:"), "rprivate_empty": private.as_array().is_some_and(Vec::is_empty), "runbindable": starts(&unbindable, "unbindable")});
    ctx.observe("propagation", summary.clone());
    ensure(
        starts(&shared, "shared:"),
        format!("rshared mount is not shared: {shared}"),
    )?;
    ensure(
        private.as_array().is_some_and(Vec::is_empty),
        format!("rprivate mount has propagation {private}"),
    )?;
    Ok(ensure(
        starts(&unbindable, "unbindable"),
        format!("runbindable mount is not unbindable: {unbindable}"),
    )?)
}

fn propagation_rslave(ctx: &mut Ctx) -> TestResult {
    let src = ctx.scratch("slavesrc")?;
    ctx.host_mount("tmpfs", &src, "tmpfs", 0, "size=1m")?;
    crate::host::set_propagation(&src, libc::MS_SHARED)?;
    let mut b = ctx.bundle()?;
    b.push("/mounts", bind_mount(&src, "/slave", &["rbind", "rslave"]));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let late = src.join("late");
    fs::create_dir_all(&late).map_err(|e| e.to_string())?;
    ctx.host_mount("tmpfs", &late, "tmpfs", 0, "size=1m")?;
    let text = fs::read_to_string(format!("/proc/{pid}/mountinfo")).map_err(|e| e.to_string())?;
    let mounts = json!(procinfo::parse_mountinfo(&text));
    let slave = mount_at(&mounts, "/slave")?;
    let is_slave = slave["optional"].as_array().is_some_and(|a| {
        a.iter()
            .any(|o| o.as_str().is_some_and(|s| s.starts_with("master:")))
    });
    let propagated = find_mount(&mounts, "/slave/late").is_some();
    ctx.observe(
        "slave",
        json!({"master": is_slave, "propagated": propagated}),
    );
    ensure(
        is_slave,
        format!("rslave mount is not a slave: {}", slave["optional"]),
    )?;
    Ok(ensure(
        propagated,
        "a host mount under the rslave source did not appear in the container",
    )?)
}

/// A mount's uidMappings/gidMappings have the format of the user namespace
/// mappings and are applied as one (runc 1.2 does the same, and the kernel's
/// id-mapped mounts work so): an id stored on disk as `containerID + n` is
/// seen through the mount as `hostID + n`.
fn idmap(ctx: &mut Ctx) -> TestResult {
    let src = host_dir(ctx, "idmapsrc")?;
    chown(src.join("file"), Some(0), Some(0)).map_err(|e| e.to_string())?;
    let mut m = bind_mount(&src, "/idmapped", &["bind", "idmap"]);
    m["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    m["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let got = ctx.probe_with(
        |b| {
            b.push("/mounts", m);
        },
        &["stat", "/idmapped/file"],
    )?;
    let st = &got["/idmapped/file"];
    ctx.observe("owner", json!({"uid": st["uid"], "gid": st["gid"]}));
    expect_eq(
        "uid of a file stored as 0, through the id-mapped mount 0 -> 1000",
        &json!(1000),
        &st["uid"],
    )?;
    Ok(expect_eq("gid", &json!(1000), &st["gid"])?)
}

fn idmap_without_mappings_errors(ctx: &mut Ctx) -> TestResult {
    let src = host_dir(ctx, "idmapsrc")?;
    let mut b = ctx.bundle()?;
    b.push("/mounts", bind_mount(&src, "/idmapped", &["bind", "idmap"]))
        .probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with idmap but no mappings and no user namespace",
    )?)
}

fn tmpcopyup(ctx: &mut Ctx) -> TestResult {
    let edit = |b: &mut Bundle| {
        b.push("/mounts", tmpfs("/etc", &["tmpcopyup"]));
    };
    // A MAY option: refusing it is an acceptable answer, not a failure.
    let got = match ctx.probe_with(edit, &["read", "/etc/group"]) {
        Ok(got) => got,
        Err(why) => return Err(skip(format!("tmpcopyup (a MAY option) is refused: {why}"))),
    };
    ctx.observe("copied", got["ok"].clone());
    if got["ok"] != true {
        return Err(skip("tmpcopyup (a MAY option) is not implemented"));
    }
    let copied = got["content"]
        .as_str()
        .is_some_and(|c| c.contains("root:x:0:"));
    Ok(ensure(copied, "tmpcopyup did not copy /etc/group")?)
}

fn destination_symlink_in_rootfs(ctx: &mut Ctx) -> TestResult {
    let outside = ctx.scratch("outside")?;
    let mut b: Bundle = ctx.bundle()?;
    // An absolute symlink in the rootfs naming a real host directory: it must
    // resolve inside the rootfs, never to the host path.
    symlink(&outside, b.rootfs().join("link")).map_err(|e| e.to_string())?;
    let inside = outside.to_string_lossy().into_owned();
    let target = b.rootfs().join(inside.trim_start_matches('/'));
    fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    b.push("/mounts", tmpfs("/link", &[]));
    let mounts = ctx.probe_in(&mut b, &["mounts"])?;
    let at_target = find_mount(&mounts, &inside).is_some_and(|m| m["fstype"] == "tmpfs");
    ctx.observe("mounted_at_target_in_rootfs", json!(at_target));
    Ok(ensure(
        at_target,
        format!(
            "no tmpfs at {inside} inside the container: the symlink was not resolved in the rootfs"
        ),
    )?)
}

//! config-linux.md#namespaces, user namespace mappings, time offsets,
//! config.md hostname/domainname. Namespaces are compared through the
//! /proc/<pid>/ns links seen from the host.

use super::{ensure, expect_eq, expect_error, skip, Ctx, Test, TestResult};
use crate::bundle::Bundle;
use crate::host;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

pub fn tests() -> Vec<Test> {
    vec![
        Test { name: "namespaces.pid_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (pid)", run: |c| new_namespace(c, "pid", "pid") },
        Test { name: "namespaces.network_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (network)", run: |c| new_namespace(c, "network", "net") },
        Test { name: "namespaces.ipc_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (ipc)", run: |c| new_namespace(c, "ipc", "ipc") },
        Test { name: "namespaces.uts_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (uts)", run: |c| new_namespace(c, "uts", "uts") },
        Test { name: "namespaces.mount_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (mount)", run: |c| new_namespace(c, "mount", "mnt") },
        Test { name: "namespaces.cgroup_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (cgroup)", run: |c| new_namespace(c, "cgroup", "cgroup") },
        Test { name: "namespaces.user_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (user)", run: |c| new_namespace(c, "user", "user") },
        Test { name: "namespaces.time_new", spec: "config-linux.md#namespaces: without path the runtime MUST create a new namespace (time)", run: |c| new_namespace(c, "time", "time") },
        Test { name: "namespaces.absent_inherited", spec: "config-linux.md#namespaces: a type not in the array MUST be inherited from the runtime namespace", run: absent_inherited },
        Test { name: "namespaces.network_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (network)", run: |c| join_path(c, "network", "net", &["--net"]) },
        Test { name: "namespaces.ipc_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (ipc)", run: |c| join_path(c, "ipc", "ipc", &["--ipc"]) },
        Test { name: "namespaces.uts_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (uts)", run: |c| join_path(c, "uts", "uts", &["--uts"]) },
        Test { name: "namespaces.pid_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (pid)", run: |c| join_path(c, "pid", "pid", &["--pid"]) },
        Test { name: "namespaces.cgroup_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (cgroup)", run: |c| join_path(c, "cgroup", "cgroup", &["--cgroup"]) },
        Test { name: "namespaces.mount_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (mount)", run: |c| join_path(c, "mount", "mnt", &["--mount"]) },
        Test { name: "namespaces.time_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (time)", run: |c| join_path(c, "time", "time", &["--time"]) },
        Test { name: "namespaces.user_join_path", spec: "config-linux.md#namespaces: the runtime MUST place the process in the namespace at path (user)", run: user_join_path },
        Test { name: "namespaces.path_wrong_type_errors", spec: "config-linux.md#namespaces: the runtime MUST generate an error if path is not a namespace of type type", run: path_wrong_type_errors },
        Test { name: "namespaces.duplicate_type_errors", spec: "config-linux.md#namespaces: duplicated namespace types MUST generate an error", run: duplicate_type_errors },
        Test { name: "namespaces.pid_is_one", spec: "config-linux.md#namespaces: in a new pid namespace the process sees only its container (it is pid 1)", run: pid_is_one },
        Test { name: "namespaces.network_isolated", spec: "config-linux.md#namespaces: a new network namespace has its own network stack (only lo)", run: network_isolated },
        Test { name: "namespaces.cgroup_view", spec: "config-linux.md#namespaces: a cgroup namespace gives an isolated view of the cgroup hierarchy", run: cgroup_view },
        Test { name: "namespaces.user_mappings", spec: "config-linux.md#user-namespace-mappings: uidMappings/gidMappings map host ids to container ids", run: user_mappings },
        Test { name: "namespaces.user_mapped_process_user", spec: "config-linux.md#user-namespace-mappings + config.md#user: uid/gid are in the container namespace", run: user_mapped_process_user },
        Test { name: "namespaces.time_offsets", spec: "config-linux.md#offset-for-time-namespace: timeOffsets set the clock offsets of the time namespace", run: time_offsets },
        Test { name: "namespaces.hostname", spec: "config.md#hostname: the container's hostname as seen by processes inside", run: hostname },
        Test { name: "namespaces.domainname", spec: "config.md#domainname: the container's domainname as seen by processes inside", run: domainname },
    ]
}

/// Adds a namespace entry (replacing one of the same type).
fn set_namespace(b: &mut Bundle, entry: Value) {
    let ty = entry["type"].clone();
    let mut list: Vec<Value> = b.config["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.retain(|n| n["type"] != ty);
    list.push(entry);
    b.set("/linux/namespaces", json!(list));
}

/// A user namespace mapping 0..65536 in the container to 100000.. on the host.
fn add_user_namespace(b: &mut Bundle) {
    set_namespace(b, json!({"type": "user"}));
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
}

/// The time namespace is only observable when the kernel has it.
fn require_time_namespace() -> Result<(), String> {
    if Path::new("/proc/self/ns/time").exists() {
        Ok(())
    } else {
        Err("the kernel has no time namespaces".into())
    }
}

fn new_namespace(ctx: &mut Ctx, ty: &str, file: &str) -> TestResult {
    if ty == "time" {
        require_time_namespace().map_err(skip)?;
    }
    let mut b = ctx.bundle()?;
    if ty == "user" {
        add_user_namespace(&mut b);
    } else {
        set_namespace(&mut b, json!({"type": ty}));
    }
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let differs = host::ns_link(pid, file)? != host::own_ns(file)?;
    ctx.observe("new_namespace", json!(differs));
    Ok(ensure(
        differs,
        format!("the container shares the runtime's {ty} namespace"),
    )?)
}

fn absent_inherited(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/linux/namespaces", json!([{"type": "mount"}]))
        .remove("/hostname");
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let mut shared = serde_json::Map::new();
    for file in ["pid", "net", "ipc", "uts", "cgroup", "user"] {
        shared.insert(
            file.into(),
            json!(host::ns_link(pid, file)? == host::own_ns(file)?),
        );
    }
    ctx.observe("shared", Value::Object(shared.clone()));
    let unshared: Vec<&String> = shared
        .iter()
        .filter(|(_, v)| **v != true)
        .map(|(k, _)| k)
        .collect();
    Ok(ensure(
        unshared.is_empty(),
        format!("namespaces {unshared:?} were not inherited"),
    )?)
}

fn join_path(ctx: &mut Ctx, ty: &str, file: &str, flags: &[&str]) -> TestResult {
    if ty == "time" {
        require_time_namespace().map_err(skip)?;
    }
    let holder = ctx.holder(flags)?;
    let path = holder.ns_path(file);
    let want = host::ns_link(holder.pid, file)?;
    let mut b = ctx.bundle()?;
    set_namespace(&mut b, json!({"type": ty, "path": path}));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let joined = host::ns_link(pid, file)? == want;
    ctx.observe("joined", json!(joined));
    Ok(ensure(
        joined,
        format!("the container is not in the {ty} namespace at {path}"),
    )?)
}

fn user_join_path(ctx: &mut Ctx) -> TestResult {
    let holder = ctx.holder(&["--user"])?;
    holder.write_id_maps("0 100000 65536")?;
    let path = holder.ns_path("user");
    let want = host::ns_link(holder.pid, "user")?;
    let mut b = ctx.bundle()?;
    set_namespace(&mut b, json!({"type": "user", "path": path}));
    // The same mapping as the joined namespace, for runtimes that require it.
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let joined = host::ns_link(pid, "user")? == want;
    ctx.observe("joined", json!(joined));
    Ok(ensure(
        joined,
        format!("the container is not in the user namespace at {path}"),
    )?)
}

fn path_wrong_type_errors(ctx: &mut Ctx) -> TestResult {
    let holder = ctx.holder(&["--net"])?;
    let path = holder.ns_path("net");
    let mut b = ctx.bundle()?;
    set_namespace(&mut b, json!({"type": "ipc", "path": path}));
    b.probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with a network namespace path for type ipc",
    )?)
}

fn duplicate_type_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.push("/linux/namespaces", json!({"type": "network"}))
        .probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with two network namespaces",
    )?)
}

fn pid_is_one(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(|_| {}, &["pid"])?;
    ctx.observe("pid", got["pid"].clone());
    Ok(expect_eq(
        "pid inside a new pid namespace",
        &json!(1),
        &got["pid"],
    )?)
}

fn network_isolated(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(|_| {}, &["net"])?;
    ctx.observe("interfaces", got.clone());
    Ok(expect_eq(
        "interfaces in a new network namespace",
        &json!(["lo"]),
        &got,
    )?)
}

fn cgroup_view(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(|b| set_namespace(b, json!({"type": "cgroup"})), &["cgroup"])?;
    let paths: Vec<&str> = got
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["path"].as_str()).collect())
        .unwrap_or_default();
    ctx.observe("paths", json!(paths));
    Ok(ensure(
        !paths.is_empty() && paths.iter().all(|p| *p == "/"),
        format!("cgroup paths inside a cgroup namespace: {paths:?}"),
    )?)
}

fn user_mappings(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    add_user_namespace(&mut b);
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let read = |f: &str| {
        fs::read_to_string(format!("/proc/{pid}/{f}"))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let (uid_map, gid_map) = (
        read("uid_map").map_err(|e| e.to_string())?,
        read("gid_map").map_err(|e| e.to_string())?,
    );
    ctx.observe("maps", json!({"uid_map": uid_map, "gid_map": gid_map}));
    expect_eq("uid_map", &json!("0 100000 65536"), &json!(uid_map))?;
    expect_eq("gid_map", &json!("0 100000 65536"), &json!(gid_map))?;
    let status = host::proc_status(pid)?;
    Ok(expect_eq(
        "host uid of container root",
        &json!(vec![100000u64; 4]),
        &json!(crate::procinfo::status_numbers(&status, "Uid")),
    )?)
}

fn user_mapped_process_user(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    add_user_namespace(&mut b);
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let status = host::proc_status(pid)?;
    let uids = crate::procinfo::status_numbers(&status, "Uid");
    let gids = crate::procinfo::status_numbers(&status, "Gid");
    ctx.observe("host_ids", json!({"uid": uids, "gid": gids}));
    expect_eq("host uids", &json!(vec![101000u64; 4]), &json!(uids))?;
    Ok(expect_eq(
        "host gids",
        &json!(vec![101000u64; 4]),
        &json!(gids),
    )?)
}

fn time_offsets(ctx: &mut Ctx) -> TestResult {
    require_time_namespace().map_err(skip)?;
    let before = host::clock_secs(libc::CLOCK_MONOTONIC);
    let got = ctx.probe_with(
        |b| {
            set_namespace(b, json!({"type": "time"}));
            b.set("/linux/timeOffsets", json!({"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 172800, "nanosecs": 0}}));
        },
        &["clocks"],
    )?;
    let after = host::clock_secs(libc::CLOCK_MONOTONIC);
    let mono = got["monotonic"].as_f64().unwrap_or(0.0);
    let offset = mono - (before + after) / 2.0;
    ctx.observe("monotonic_offset_days", json!((offset / 86400.0).round()));
    ensure(
        (offset - 86400.0).abs() < 60.0,
        format!("monotonic clock offset is {offset:.0}s, expected 86400s"),
    )?;
    let boot_offset =
        got["boottime"].as_f64().unwrap_or(0.0) - host::clock_secs(libc::CLOCK_BOOTTIME);
    Ok(ensure(
        (boot_offset - 172800.0).abs() < 60.0,
        format!("boottime clock offset is {boot_offset:.0}s, expected 172800s"),
    )?)
}

fn hostname(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/hostname", json!("conformance-host"));
        },
        &["hostname"],
    )?;
    ctx.observe("hostname", got["hostname"].clone());
    Ok(expect_eq(
        "hostname",
        &json!("conformance-host"),
        &got["hostname"],
    )?)
}

fn domainname(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/domainname", json!("conformance.test"));
        },
        &["hostname"],
    )?;
    ctx.observe("domainname", got["domainname"].clone());
    Ok(expect_eq(
        "domainname",
        &json!("conformance.test"),
        &got["domainname"],
    )?)
}

//! config-linux.md#control-groups: cgroupsPath placement and the resources
//! the runtime must write, observed from the host's cgroup files. Works on
//! cgroup v1, v2 and hybrid hosts: each check reads the file of whichever
//! hierarchy holds the controller.

use super::{ensure, expect_eq, expect_error, expect_ok, skip, Ctx, Failure, Test, TestResult};
use crate::host;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub fn tests() -> Vec<Test> {
    vec![
        Test { name: "cgroups.path_absolute", spec: "config-linux.md#cgroups-path: an absolute path MUST be taken relative to the cgroups mount point", run: path_absolute },
        Test { name: "cgroups.path_relative", spec: "config-linux.md#cgroups-path: a relative path MAY be interpreted relative to a runtime-determined location", run: path_relative },
        Test { name: "cgroups.path_consistent", spec: "config-linux.md#cgroups-path: the same cgroupsPath MUST attach to the same place", run: path_consistent },
        Test { name: "cgroups.delete_removes_cgroup", spec: "runtime.md#delete: deleting MUST delete the resources created during create", run: delete_removes_cgroup },
        Test { name: "cgroups.delete_keeps_preexisting", spec: "runtime.md#delete: resources not created by this container MUST NOT be deleted", run: delete_keeps_preexisting },
        Test { name: "cgroups.memory", spec: "config-linux.md#memory: limit, reservation, swappiness, disableOOMKiller", run: memory },
        Test { name: "cgroups.memory_swap", spec: "config-linux.md#memory: swap limits memory+swap usage", run: memory_swap },
        Test { name: "cgroups.cpu", spec: "config-linux.md#cpu: shares, quota, period", run: cpu },
        Test { name: "cgroups.cpu_burst", spec: "config-linux.md#cpu: burst", run: cpu_burst },
        Test { name: "cgroups.cpu_realtime", spec: "config-linux.md#cpu: realtimeRuntime and realtimePeriod", run: cpu_realtime },
        Test { name: "cgroups.cpu_idle", spec: "config-linux.md#cpu: idle", run: cpu_idle },
        Test { name: "cgroups.cpuset", spec: "config-linux.md#cpu: cpus and mems", run: cpuset },
        Test { name: "cgroups.pids", spec: "config-linux.md#pids: limit is the maximum number of tasks", run: pids },
        Test { name: "cgroups.block_io", spec: "config-linux.md#block-io: weight and throttleReadBpsDevice", run: block_io },
        Test { name: "cgroups.hugepage_limits", spec: "config-linux.md#huge-page-limits: limit of a hugepage size", run: hugepage_limits },
        Test { name: "cgroups.network", spec: "config-linux.md#network: classID and priorities (net_cls, net_prio)", run: network },
        Test { name: "cgroups.rdma", spec: "config-linux.md#rdma: hcaHandles and hcaObjects", run: rdma },
        Test { name: "cgroups.unified_written", spec: "config-linux.md#unified: configuration unknown to the runtime MUST still be written to the file", run: unified_written },
        Test { name: "cgroups.unified_missing_controller_errors", spec: "config-linux.md#unified: the runtime MUST generate an error when a controller is not present", run: unified_missing_controller_errors },
    ]
}

/// Controllers that a placement test checks, when they are mounted as v1.
const PLACED: [&str; 5] = ["memory", "pids", "cpu", "devices", "freezer"];

/// Is `controller` usable: a mounted v1 hierarchy or enabled in cgroup2?
fn available(controller: &str) -> bool {
    host::cgroup_mount(controller).is_some() || v2_has(controller)
}

fn v2_has(controller: &str) -> bool {
    host::cgroup_mount("")
        .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
        .is_some_and(|c| c.split_whitespace().any(|x| x == controller))
}

fn require(controller: &str) -> Result<(), Failure> {
    if available(controller) {
        Ok(())
    } else {
        Err(skip(format!(
            "the {controller} cgroup controller is not available"
        )))
    }
}

/// Reads `v1_file` from the controller's v1 hierarchy, or `v2_file` from cgroup2.
fn read_resource(
    pid: u32,
    controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> Result<String, String> {
    if host::cgroup_mount(controller).is_some() {
        host::cgroup_file(pid, controller, v1_file)
    } else {
        host::cgroup_file(pid, "", v2_file)
    }
}

fn is_v1(controller: &str) -> bool {
    host::cgroup_mount(controller).is_some()
}

/// A running container with `resources` and a cgroupsPath owned by the test.
fn container_with(ctx: &mut Ctx, resources: Value) -> Result<u32, String> {
    let path = ctx.cgroup_path("res");
    let mut b = ctx.bundle()?;
    b.set("/linux/cgroupsPath", json!(path))
        .set("/linux/resources", resources);
    let id = ctx.waiting_container(&mut b)?;
    ctx.pid(&id)
}

fn path_absolute(ctx: &mut Ctx) -> TestResult {
    let path = ctx.cgroup_path("abs");
    let mut b = ctx.bundle()?;
    b.set("/linux/cgroupsPath", json!(path));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let mut placed = serde_json::Map::new();
    for ctl in PLACED.iter().filter(|c| host::cgroup_mount(c).is_some()) {
        let at = host::cgroup_path(pid, ctl)?;
        placed.insert(ctl.to_string(), json!(at == path));
        expect_eq(&format!("{ctl} cgroup"), &json!(path), &json!(at))?;
    }
    if host::cgroup_mount("").is_some() && placed.is_empty() {
        expect_eq(
            "cgroup2 path",
            &json!(path),
            &json!(host::cgroup_path(pid, "")?),
        )?;
    }
    ctx.observe("placed", Value::Object(placed));
    Ok(())
}

fn path_relative(ctx: &mut Ctx) -> TestResult {
    let abs = ctx.cgroup_path("rel");
    let rel = format!("{}/inner", abs.trim_start_matches('/'));
    let mut b = ctx.bundle()?;
    b.set("/linux/cgroupsPath", json!(rel));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let ctl = if is_v1("pids") { "pids" } else { "" };
    let at = host::cgroup_path(pid, ctl)?;
    ctx.observe("ends_with_relative_path", json!(at.ends_with(&rel)));
    Ok(ensure(
        at.ends_with(&rel),
        format!("cgroup {at} does not end with the relative cgroupsPath {rel}"),
    )?)
}

fn path_consistent(ctx: &mut Ctx) -> TestResult {
    let path = ctx.cgroup_path("same");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut b = ctx.bundle()?;
        b.set("/linux/cgroupsPath", json!(path));
        let id = ctx.waiting_container(&mut b)?;
        let pid = ctx.pid(&id)?;
        seen.push(host::cgroup_dir(
            pid,
            if is_v1("pids") { "pids" } else { "" },
        )?);
        expect_ok(&ctx.runtime.delete_force(&id), "delete --force")?;
    }
    Ok(ensure(
        seen[0] == seen[1],
        format!("the same cgroupsPath gave {seen:?}"),
    )?)
}

fn delete_removes_cgroup(ctx: &mut Ctx) -> TestResult {
    let path = ctx.cgroup_path("gone");
    let mut b = ctx.bundle()?;
    b.set("/linux/cgroupsPath", json!(path))
        .probe_args(&["exit", "0"]);
    let id = ctx.create_started(&b)?;
    ctx.wait_stopped(&id)?;
    expect_ok(&ctx.runtime.delete(&id), "delete")?;
    let left: Vec<String> = hierarchies()
        .into_iter()
        .filter(|h| h.join(path.trim_start_matches('/')).exists())
        .map(|h| h.display().to_string())
        .collect();
    ctx.observe("left_behind", json!(left.len()));
    Ok(ensure(
        left.is_empty(),
        format!("cgroup {path} is left in {left:?}"),
    )?)
}

fn hierarchies() -> Vec<std::path::PathBuf> {
    let mut all: Vec<_> = PLACED
        .iter()
        .filter_map(|c| host::cgroup_mount(c))
        .collect();
    all.extend(host::cgroup_mount(""));
    all
}

fn delete_keeps_preexisting(ctx: &mut Ctx) -> TestResult {
    let path = ctx.cgroup_path("pre");
    let made: Vec<_> = hierarchies()
        .into_iter()
        .map(|h| h.join(path.trim_start_matches('/')))
        .collect();
    for dir in &made {
        fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    }
    let mut b = ctx.bundle()?;
    b.set("/linux/cgroupsPath", json!(path))
        .probe_args(&["exit", "0"]);
    let id = ctx.create_started(&b)?;
    ctx.wait_stopped(&id)?;
    expect_ok(&ctx.runtime.delete(&id), "delete")?;
    let removed: Vec<String> = made
        .iter()
        .filter(|d| !d.exists())
        .map(|d| d.display().to_string())
        .collect();
    ctx.observe("removed_preexisting", json!(removed.len()));
    Ok(ensure(
        removed.is_empty(),
        format!("delete removed cgroups it did not create: {removed:?}"),
    )?)
}

fn memory(ctx: &mut Ctx) -> TestResult {
    require("memory")?;
    let limit = 64u64 << 20;
    let reservation = 32u64 << 20;
    let pid = container_with(
        ctx,
        json!({"memory": {"limit": limit, "reservation": reservation, "swappiness": 10, "disableOOMKiller": true}}),
    )?;
    let got_limit = read_resource(pid, "memory", "memory.limit_in_bytes", "memory.max")?;
    let got_res = read_resource(pid, "memory", "memory.soft_limit_in_bytes", "memory.low")?;
    ctx.observe(
        "memory",
        json!({"limit": got_limit, "reservation": got_res}),
    );
    expect_eq("memory limit", &json!(limit.to_string()), &json!(got_limit))?;
    expect_eq(
        "memory reservation",
        &json!(reservation.to_string()),
        &json!(got_res),
    )?;
    if is_v1("memory") {
        let swappiness = host::cgroup_file(pid, "memory", "memory.swappiness")?;
        let oom = host::cgroup_file(pid, "memory", "memory.oom_control")?;
        ctx.observe("v1", json!({"swappiness": swappiness, "oom_kill_disable": oom.contains("oom_kill_disable 1")}));
        expect_eq("memory.swappiness", &json!("10"), &json!(swappiness))?;
        ensure(
            oom.contains("oom_kill_disable 1"),
            format!("disableOOMKiller not applied: {oom:?}"),
        )?;
    }
    Ok(())
}

fn memory_swap(ctx: &mut Ctx) -> TestResult {
    require("memory")?;
    let v1_file = "memory.memsw.limit_in_bytes";
    if is_v1("memory") && host::cgroup_mount("memory").is_some_and(|m| !m.join(v1_file).exists()) {
        return Err(skip(
            "swap accounting is off (no memory.memsw.limit_in_bytes)",
        ));
    }
    let (limit, swap) = (64u64 << 20, 128u64 << 20);
    let pid = container_with(ctx, json!({"memory": {"limit": limit, "swap": swap}}))?;
    let got = read_resource(pid, "memory", v1_file, "memory.swap.max")?;
    ctx.observe("swap", json!(got));
    // cgroup v2 counts swap alone, v1 counts memory+swap.
    let want = if is_v1("memory") { swap } else { swap - limit };
    Ok(expect_eq(
        "swap limit",
        &json!(want.to_string()),
        &json!(got),
    )?)
}

fn cpu(ctx: &mut Ctx) -> TestResult {
    require("cpu")?;
    let pid = container_with(
        ctx,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
    )?;
    if is_v1("cpu") {
        let got: Vec<String> = ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"]
            .iter()
            .map(|f| host::cgroup_file(pid, "cpu", f))
            .collect::<Result<_, _>>()?;
        ctx.observe("cpu", json!(got));
        return Ok(expect_eq(
            "cpu.shares, cfs_quota_us, cfs_period_us",
            &json!(["512", "50000", "100000"]),
            &json!(got),
        )?);
    }
    let max = host::cgroup_file(pid, "", "cpu.max")?;
    ctx.observe("cpu", json!(max));
    Ok(expect_eq("cpu.max", &json!("50000 100000"), &json!(max))?)
}

/// Skips unless the container's cgroup directory for `controller` has `file`
/// (some files depend on kernel configuration).
fn require_file(controller: &str, file: &str) -> Result<(), Failure> {
    let mount = host::cgroup_mount(controller)
        .or_else(|| host::cgroup_mount(""))
        .ok_or_else(|| skip(format!("{controller} is not mounted")))?;
    if mount.join(file).exists()
        || mount
            .read_dir()
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join(file).exists())
    {
        Ok(())
    } else {
        Err(skip(format!("this kernel has no {file}")))
    }
}

fn cpu_burst(ctx: &mut Ctx) -> TestResult {
    require("cpu")?;
    let (v1, v2) = ("cpu.cfs_burst_us", "cpu.max.burst");
    require_file("cpu", if is_v1("cpu") { v1 } else { v2 })?;
    let pid = container_with(
        ctx,
        json!({"cpu": {"quota": 50000, "period": 100000, "burst": 10000}}),
    )?;
    let got = read_resource(pid, "cpu", v1, v2)?;
    ctx.observe("burst", json!(got));
    Ok(expect_eq("cpu burst", &json!("10000"), &json!(got))?)
}

fn cpu_realtime(ctx: &mut Ctx) -> TestResult {
    require("cpu")?;
    require_file("cpu", "cpu.rt_runtime_us")?;
    let pid = container_with(
        ctx,
        json!({"cpu": {"realtimeRuntime": 0, "realtimePeriod": 500000}}),
    )?;
    let got = host::cgroup_file(pid, "cpu", "cpu.rt_period_us")?;
    ctx.observe("rt_period", json!(got));
    Ok(expect_eq(
        "cpu.rt_period_us",
        &json!("500000"),
        &json!(got),
    )?)
}

fn cpu_idle(ctx: &mut Ctx) -> TestResult {
    require("cpu")?;
    require_file("cpu", "cpu.idle")?;
    let pid = container_with(ctx, json!({"cpu": {"idle": 1}}))?;
    let got = read_resource(pid, "cpu", "cpu.idle", "cpu.idle")?;
    ctx.observe("idle", json!(got));
    Ok(expect_eq("cpu.idle", &json!("1"), &json!(got))?)
}

fn cpuset(ctx: &mut Ctx) -> TestResult {
    require("cpuset")?;
    let pid = container_with(ctx, json!({"cpu": {"cpus": "0", "mems": "0"}}))?;
    let cpus = read_resource(pid, "cpuset", "cpuset.cpus", "cpuset.cpus")?;
    let mems = read_resource(pid, "cpuset", "cpuset.mems", "cpuset.mems")?;
    ctx.observe("cpuset", json!({"cpus": cpus, "mems": mems}));
    expect_eq("cpuset.cpus", &json!("0"), &json!(cpus))?;
    Ok(expect_eq("cpuset.mems", &json!("0"), &json!(mems))?)
}

fn pids(ctx: &mut Ctx) -> TestResult {
    require("pids")?;
    let pid = container_with(ctx, json!({"pids": {"limit": 42}}))?;
    let got = read_resource(pid, "pids", "pids.max", "pids.max")?;
    ctx.observe("pids.max", json!(got));
    Ok(expect_eq("pids.max", &json!("42"), &json!(got))?)
}

/// major:minor of the block device holding "/", when it is a whole disk.
fn root_disk() -> Option<(u64, u64)> {
    let dev = fs::metadata("/").ok()?.dev();
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    let sys = format!("/sys/dev/block/{major}:{minor}");
    (Path::new(&sys).exists() && !Path::new(&sys).join("partition").exists())
        .then_some((major, minor))
}

fn block_io(ctx: &mut Ctx) -> TestResult {
    require("blkio").or_else(|_| require("io"))?;
    let (major, minor) =
        root_disk().ok_or_else(|| skip("the root filesystem is not on a whole block device"))?;
    let rate = 1u64 << 20;
    let pid = container_with(
        ctx,
        json!({"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": rate}]}}),
    )?;
    let got = if is_v1("blkio") {
        host::cgroup_file(pid, "blkio", "blkio.throttle.read_bps_device")?
    } else {
        host::cgroup_file(pid, "", "io.max")?
    };
    ctx.observe("throttle", json!(got));
    let want = if is_v1("blkio") {
        format!("{major}:{minor} {rate}")
    } else {
        format!("{major}:{minor} rbps={rate}")
    };
    Ok(ensure(
        got.contains(&want),
        format!("{want:?} missing from {got:?}"),
    )?)
}

fn hugepage_limits(ctx: &mut Ctx) -> TestResult {
    require("hugetlb")?;
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        return Err(skip("no 2MB huge pages on this kernel"));
    }
    let limit = 4u64 << 20;
    let pid = container_with(
        ctx,
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": limit}]}),
    )?;
    let got = read_resource(
        pid,
        "hugetlb",
        "hugetlb.2MB.limit_in_bytes",
        "hugetlb.2MB.max",
    )?;
    ctx.observe("hugetlb", json!(got));
    Ok(expect_eq(
        "2MB hugetlb limit",
        &json!(limit.to_string()),
        &json!(got),
    )?)
}

fn network(ctx: &mut Ctx) -> TestResult {
    if host::cgroup_mount("net_cls").is_none() {
        return Err(skip("the net_cls cgroup v1 controller is not mounted"));
    }
    let pid = container_with(ctx, json!({"network": {"classID": 1048577}}))?;
    let got = host::cgroup_file(pid, "net_cls", "net_cls.classid")?;
    ctx.observe("classid", json!(got));
    Ok(expect_eq(
        "net_cls.classid",
        &json!("1048577"),
        &json!(got),
    )?)
}

fn rdma(_ctx: &mut Ctx) -> TestResult {
    require("rdma")?;
    Err(skip(
        "RDMA limits need an RDMA device; this suite does not exercise them",
    ))
}

fn unified_written(ctx: &mut Ctx) -> TestResult {
    let Some(mount) = host::cgroup_mount("") else {
        return Err(skip("cgroup2 is not mounted"));
    };
    if !mount.join("cgroup.max.depth").exists() {
        return Err(skip("cgroup2 has no cgroup.max.depth"));
    }
    let pid = container_with(ctx, json!({"unified": {"cgroup.max.depth": "5"}}))?;
    let got = host::cgroup_file(pid, "", "cgroup.max.depth")?;
    ctx.observe("cgroup.max.depth", json!(got));
    Ok(expect_eq("cgroup.max.depth", &json!("5"), &json!(got))?)
}

fn unified_missing_controller_errors(ctx: &mut Ctx) -> TestResult {
    if host::cgroup_mount("").is_none() {
        return Err(skip("cgroup2 is not mounted"));
    }
    // A made-up controller can never be present or enabled.
    let path = ctx.cgroup_path("nocontroller");
    let mut b = ctx.bundle()?;
    b.set("/linux/cgroupsPath", json!(path))
        .set(
            "/linux/resources",
            json!({"unified": {"nosuchcontroller.max": "1"}}),
        )
        .probe_args(&["exit", "0"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with a unified key of a controller that does not exist",
    )?)
}

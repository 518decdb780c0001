//! linux.resources → cgroup files, for `create` and `update`.
//!
//! For each controller (memory, cpu, cpuset, pids, blkio/io, hugetlb) the
//! container's v1 hierarchy of that controller is used when there is one;
//! otherwise the cgroup2 hierarchy, if its root offers the controller (then
//! it is enabled in `cgroup.subtree_control` of every ancestor of the
//! container's cgroup). That is exactly the hybrid case here: hugetlb lives in
//! /sys/fs/cgroup/unified.
//!
//! Each controller is first turned into a list of (file, value) writes by a
//! pure function (unit-tested, including the v1 → v2 conversions that runc
//! uses and that the clients expect), then the writes are done in order.
//!
//! `devices` is enforced through `devices` (v1 lists) or `bpf` (cgroup2).
//!
//! `network` goes to the v1 net_cls and net_prio controllers (cgroup2 has
//! none: an error there, as in runc); `rdma` to rdma.max in either version.
//! memory.kernel is written on v1 (Linux >= 6.1 accepts and ignores it) and
//! ignored with a warning on v2, which counts kernel memory in memory.max;
//! memory.checkBeforeUpdate makes a v2 limit below memory.current an error
//! (v1's kernel refuses such a limit by itself).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Linux, LinuxBlockIo, LinuxCpu, LinuxDevice, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxPids, LinuxRdma, LinuxResources,
};

use super::devices::{self, Policy, V1File, V1Plan, V1State};
use super::fsutil::{gone, read_file, write_file};
use super::{bpf, ContainerCgroup, Hierarchy};
use crate::error::{Error, Result};

/// One write to a file of the container's cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: String,
    pub value: String,
    /// Skipped when the kernel does not have the file.
    pub optional: bool,
}

fn w(file: impl Into<String>, value: impl ToString) -> Write {
    Write {
        file: file.into(),
        value: value.to_string(),
        optional: false,
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Error {
    Error::config(format!("linux.resources.{field}: {reason}"))
}

/// Parse linux.resources JSON (`husk update --resources`); errors are
/// config errors naming the field, e.g. `linux.resources.devices[0].type`.
pub fn parse_resources(raw: &[u8]) -> Result<LinuxResources> {
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(".{path}")
        };
        Error::config(format!("linux.resources{field}: {}", e.into_inner()))
    })
}

/// cpu.shares (v1, 2..262144, default 1024) → cpu.weight (v2, 1..10000,
/// default 100), the linear map runc uses. 0 means unset.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight (v1, 10..1000) → io.weight (v2, 1..10000), as runc. 0 means
/// unset.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = u64::from(weight.clamp(10, 1000));
    1 + ((weight - 10) * 9999) / 990
}

/// memory.swap (v1: memory+swap) → memory.swap.max (v2: swap only), as
/// runc: -1 = unlimited, 0 = unset.
pub fn memory_swap_to_v2(swap: i64, memory: i64) -> Result<i64> {
    // An unlimited memory with no swap given means both unlimited.
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(invalid(
            "memory.swap",
            "a swap limit needs a memory limit (memory.limit)",
        ));
    }
    if memory < 0 {
        return Err(invalid("memory.limit", format!("invalid value {memory}")));
    }
    if swap < memory {
        return Err(invalid(
            "memory.swap",
            format!("{swap} is below memory.limit {memory} (swap is memory+swap)"),
        ));
    }
    Ok(swap - memory)
}

/// "max" for negative (unlimited) values of v2 files.
fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// v1 memory. `current_limit` reads memory.limit_in_bytes: when memory and
/// memory+swap both change, the order of the two writes must keep
/// memsw >= memory at every step or the kernel refuses.
pub fn plan_v1_memory(
    m: &LinuxMemory,
    current_limit: impl FnOnce() -> Result<u64>,
) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    let limit = m.limit().filter(|&l| l != 0);
    let mut swap = m.swap().filter(|&s| s != 0);
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1);
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let swap_first = match u64::try_from(s) {
                Ok(s) => current_limit()? < s,
                // -1: unlimited memory+swap can always go first.
                Err(_) => s == -1,
            };
            if swap_first {
                out.push(w("memory.memsw.limit_in_bytes", s));
                out.push(w("memory.limit_in_bytes", l));
            } else {
                out.push(w("memory.limit_in_bytes", l));
                out.push(w("memory.memsw.limit_in_bytes", s));
            }
        }
        (Some(l), None) => out.push(w("memory.limit_in_bytes", l)),
        (None, Some(s)) => out.push(w("memory.memsw.limit_in_bytes", s)),
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0) {
        out.push(w("memory.soft_limit_in_bytes", r));
    }
    if let Some(k) = m.kernel().filter(|&k| k != 0) {
        // Removed in later kernels: skipped where the file is gone.
        out.push(Write {
            optional: true,
            ..w("memory.kmem.limit_in_bytes", k)
        });
    }
    if let Some(t) = m.kernel_tcp().filter(|&t| t != 0) {
        out.push(w("memory.kmem.tcp.limit_in_bytes", t));
    }
    if let Some(h) = m.use_hierarchy() {
        out.push(w("memory.use_hierarchy", u8::from(h)));
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(invalid(
                "memory.swappiness",
                format!("{s} is not in 0..=100"),
            ));
        }
        out.push(w("memory.swappiness", s));
    }
    if let Some(d) = m.disable_oom_killer() {
        out.push(w("memory.oom_control", u8::from(d)));
    }
    Ok(out)
}

/// cgroup2 memory. `current_usage` reads memory.current, for
/// checkBeforeUpdate.
pub fn plan_v2_memory(
    m: &LinuxMemory,
    current_usage: impl FnOnce() -> Result<u64>,
) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    let limit = m.limit().unwrap_or(0);
    if m.check_before_update() == Some(true) {
        if let Ok(limit) = u64::try_from(limit) {
            let usage = current_usage()?;
            if limit > 0 && limit < usage {
                return Err(invalid(
                    "memory.limit",
                    format!(
                        "{limit} is below the container's current usage ({usage} bytes) \
                         and checkBeforeUpdate is set"
                    ),
                ));
            }
        }
    }
    if m.kernel().is_some_and(|k| k != 0) || m.kernel_tcp().is_some_and(|k| k != 0) {
        // Kernel memory counts against memory.max in cgroup2; runc drops
        // these limits too, and older clients still send them.
        eprintln!(
            "husk: warning: linux.resources.memory.kernel/kernelTCP ignored: cgroup v2 \
             counts kernel memory in memory.max"
        );
    }
    if m.use_hierarchy() == Some(false) {
        return Err(invalid(
            "memory.useHierarchy",
            "cgroup v2 is always hierarchical",
        ));
    }
    let swap = memory_swap_to_v2(m.swap().unwrap_or(0), limit)?;
    if swap != 0 {
        out.push(w("memory.swap.max", v2_limit(swap)));
    }
    if limit != 0 {
        out.push(w("memory.max", v2_limit(limit)));
    }
    if let Some(r) = m.reservation().filter(|&r| r != 0) {
        out.push(w("memory.low", v2_limit(r)));
    }
    if m.swappiness().is_some() {
        return Err(invalid(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(invalid(
            "memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    Ok(out)
}

/// v1 cpu (the cpu controller; cpus/mems go to cpuset).
pub fn plan_v1_cpu(c: &LinuxCpu) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        out.push(w("cpu.shares", s));
    }
    // Period before quota: the quota is checked against the period.
    if let Some(p) = c.period().filter(|&p| p != 0) {
        out.push(w("cpu.cfs_period_us", p));
    }
    if let Some(q) = c.quota().filter(|&q| q != 0) {
        out.push(w("cpu.cfs_quota_us", q));
    }
    if let Some(b) = c.burst() {
        out.push(w("cpu.cfs_burst_us", b));
    }
    if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
        out.push(w("cpu.rt_period_us", p));
    }
    if let Some(r) = c.realtime_runtime().filter(|&r| r != 0) {
        out.push(w("cpu.rt_runtime_us", r));
    }
    if let Some(i) = c.idle() {
        out.push(w("cpu.idle", i));
    }
    out
}

/// cgroup2 cpu.
pub fn plan_v2_cpu(c: &LinuxCpu) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    if let Some(s) = c.shares().filter(|&s| s != 0) {
        out.push(w("cpu.weight", cpu_shares_to_weight(s)));
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    if quota.is_some() || period.is_some() {
        let mut v = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_owned(),
        };
        if let Some(p) = period {
            v = format!("{v} {p}");
        }
        out.push(w("cpu.max", v));
    }
    if let Some(b) = c.burst() {
        out.push(w("cpu.max.burst", b));
    }
    if c.realtime_period().is_some_and(|p| p != 0) || c.realtime_runtime().is_some_and(|r| r != 0) {
        return Err(invalid(
            "cpu.realtimeRuntime",
            "cgroup v2 has no real-time group scheduling",
        ));
    }
    if let Some(i) = c.idle() {
        out.push(w("cpu.idle", i));
    }
    Ok(out)
}

/// cpuset (same file names in v1 and v2).
pub fn plan_cpuset(c: &LinuxCpu) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        out.push(w("cpuset.cpus", cpus));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        out.push(w("cpuset.mems", mems));
    }
    out
}

/// pids (same in v1 and v2): 0 = unset, negative = unlimited.
pub fn plan_pids(p: &LinuxPids) -> Vec<Write> {
    match p.limit() {
        0 => Vec::new(),
        l if l < 0 => vec![w("pids.max", "max")],
        l => vec![w("pids.max", l)],
    }
}

/// v1 net_cls: the class id tagged on the container's packets.
pub fn plan_net_cls(n: &LinuxNetwork) -> Vec<Write> {
    n.class_id()
        .map(|id| vec![w("net_cls.classid", id)])
        .unwrap_or_default()
}

/// v1 net_prio: one write per interface (the file takes one "IFACE PRIO"
/// pair at a time).
pub fn plan_net_prio(n: &LinuxNetwork) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    for (i, p) in n.priorities().iter().flatten().enumerate() {
        let name = p.name();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(invalid(
                &format!("network.priorities[{i}].name"),
                format!("{name:?} is not an interface name"),
            ));
        }
        out.push(w("net_prio.ifpriomap", format!("{name} {}", p.priority())));
    }
    Ok(out)
}

/// rdma.max (same file in v1 and v2): one line per device, devices in
/// name order; an unset count is left as it is.
pub fn plan_rdma(rdma: &HashMap<String, LinuxRdma>) -> Result<Vec<Write>> {
    let mut names: Vec<&String> = rdma.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(invalid("rdma", format!("{name:?} is not a device name")));
        }
        let limits = &rdma[name];
        let counts: Vec<String> = [
            ("hca_handle", limits.hca_handles()),
            ("hca_object", limits.hca_objects()),
        ]
        .into_iter()
        .filter_map(|(key, count)| count.map(|c| format!(" {key}={c}")))
        .collect();
        if !counts.is_empty() {
            out.push(w("rdma.max", format!("{name}{}", counts.concat())));
        }
    }
    Ok(out)
}

/// v1 blkio. `has` tells which files the kernel offers: blkio.weight (CFQ)
/// or blkio.bfq.weight (BFQ).
pub fn plan_v1_blkio(b: &LinuxBlockIo, has: impl Fn(&str) -> bool) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    let bfq = !has("blkio.weight") && has("blkio.bfq.weight");
    let (weight, weight_device) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    let weights_wanted = b.weight().is_some_and(|v| v != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.weight().is_some_and(|v| v != 0));
    if weights_wanted && !has(weight) {
        return Err(invalid(
            "blockIO.weight",
            "this kernel has no blkio weight files (blkio.weight needs the CFQ I/O \
             scheduler, blkio.bfq.weight the BFQ one; neither is available)",
        ));
    }
    if let Some(v) = b.weight().filter(|&v| v != 0) {
        out.push(w(weight, v));
    }
    if let Some(v) = b.leaf_weight().filter(|&v| v != 0) {
        if !has("blkio.leaf_weight") {
            return Err(invalid(
                "blockIO.leafWeight",
                "the kernel has no blkio.leaf_weight (only the removed CFQ scheduler had it)",
            ));
        }
        out.push(w("blkio.leaf_weight", v));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight().filter(|&v| v != 0) {
            out.push(w(weight_device, format!("{}:{} {v}", d.major(), d.minor())));
        }
        if let Some(v) = d.leaf_weight().filter(|&v| v != 0) {
            out.push(w(
                "blkio.leaf_weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
    }
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (list, file) in throttles {
        for d in list.iter().flatten() {
            out.push(w(file, format!("{}:{} {}", d.major(), d.minor(), d.rate())));
        }
    }
    Ok(out)
}

/// cgroup2 io. `has` tells whether io.bfq.weight exists (BFQ takes the v1
/// weight range as it is; io.weight needs the conversion).
pub fn plan_v2_io(b: &LinuxBlockIo, has: impl Fn(&str) -> bool) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    let bfq = has("io.bfq.weight");
    if let Some(v) = b.weight().filter(|&v| v != 0) {
        if bfq {
            out.push(w("io.bfq.weight", v));
        } else {
            out.push(w(
                "io.weight",
                format!("default {}", blkio_weight_to_io_weight(v)),
            ));
        }
    }
    if b.leaf_weight().is_some_and(|v| v != 0) {
        return Err(invalid(
            "blockIO.leafWeight",
            "cgroup v2 has no leaf weights",
        ));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight().filter(|&v| v != 0) {
            let (file, v) = if bfq {
                ("io.bfq.weight", u64::from(v))
            } else {
                ("io.weight", blkio_weight_to_io_weight(v))
            };
            out.push(w(file, format!("{}:{} {v}", d.major(), d.minor())));
        }
    }
    let throttles = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    for (list, key) in throttles {
        for d in list.iter().flatten() {
            // 0 removes the limit, as in v1.
            let rate = match d.rate() {
                0 => "max".to_owned(),
                r => r.to_string(),
            };
            out.push(w(
                "io.max",
                format!("{}:{} {key}={rate}", d.major(), d.minor()),
            ));
        }
    }
    Ok(out)
}

/// The huge page sizes of this kernel as hugetlb cgroup files name them
/// ("2MB", "1GB", "64KB"), from /sys/kernel/mm/hugepages/hugepages-<n>kB.
pub fn huge_page_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(page_size_name(kb))
        })
        .collect();
    out.sort();
    out
}

fn page_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

/// hugetlb, v1 (`limit_in_bytes`) or v2 (`max`), for the page sizes in
/// `supported` (see [`huge_page_sizes`]); the reservation limits are set too
/// where the kernel has them.
pub fn plan_hugetlb(
    limits: &[LinuxHugepageLimit],
    v2: bool,
    supported: &[String],
) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    for l in limits {
        let size = l.page_size();
        if !supported.iter().any(|s| s == size) {
            return Err(invalid(
                "hugepageLimits",
                format!(
                    "page size {size:?} is not supported by this kernel (it has {})",
                    supported.join(", ")
                ),
            ));
        }
        let (file, rsvd, value) = if v2 {
            (
                format!("hugetlb.{size}.max"),
                format!("hugetlb.{size}.rsvd.max"),
                v2_limit(l.limit()),
            )
        } else {
            (
                format!("hugetlb.{size}.limit_in_bytes"),
                format!("hugetlb.{size}.rsvd.limit_in_bytes"),
                l.limit().to_string(),
            )
        };
        out.push(w(file, &value));
        out.push(Write {
            optional: true,
            ..w(rsvd, value)
        });
    }
    Ok(out)
}

/// `unified` keys: plain file names of the cgroup2 directory.
fn check_unified_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.contains('/')
        && key != "."
        && key != ".."
        && key.contains('.')
        && !key.starts_with('.')
        && key != "cgroup.procs"
        && key != "cgroup.threads"
        && key != "cgroup.subtree_control";
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "unified",
            format!("{key:?} is not a settable cgroup2 file name"),
        ))
    }
}

/// Where a controller's files go: its v1 hierarchy, or cgroup2 (the
/// controller name there).
#[derive(Clone, Copy)]
enum Target<'a> {
    V1(&'a Hierarchy),
    V2(&'a Hierarchy, &'static str),
    /// cgroup2 core files (cgroup.*): no controller to enable.
    Core(&'a Hierarchy),
}

impl Target<'_> {
    fn dir(&self) -> PathBuf {
        match self {
            Target::V1(h) | Target::V2(h, _) | Target::Core(h) => h.dir(),
        }
    }
}

/// One controller's share of linux.resources, ready to write.
struct Planned<'a> {
    target: Target<'a>,
    writes: Vec<Write>,
    /// cgroup2 io: planned again once io is enabled, when the files show
    /// whether BFQ's weight is there.
    replan_io: Option<&'a LinuxBlockIo>,
}

impl<'a> Planned<'a> {
    fn new(target: Target<'a>, writes: Vec<Write>) -> Self {
        Planned {
            target,
            writes,
            replan_io: None,
        }
    }
}

impl ContainerCgroup {
    /// The hierarchy for `v1` (a v1 controller name), else the cgroup2 one
    /// when its root offers `v2`. No side effects.
    fn locate(&self, field: &str, v1: &str, v2: &'static str) -> Result<Target<'_>> {
        if let Some(h) = self.v1_hierarchy(v1) {
            return Ok(Target::V1(h));
        }
        if let Some(u) = self.unified() {
            if v2_offers(u, v2)? {
                return Ok(Target::V2(u, v2));
            }
        }
        Err(Error::step(
            format!("apply linux.resources.{field}"),
            format!("this host has no {v1} controller (no v1 hierarchy, and not in cgroup2)"),
        ))
    }

    /// Apply linux.resources (memory, cpu, cpuset, pids, blockIO,
    /// hugepageLimits, unified, devices) to the container's cgroups.
    /// Everything is validated before the first write; then the first write
    /// that fails stops it with an error naming the file and value. Device
    /// rules get the default devices appended (see `devices`); use
    /// [`ContainerCgroup::apply_config`] to have `linux.devices` allowed too.
    pub fn apply_resources(&self, r: &LinuxResources) -> Result<()> {
        self.apply(r, &[], false)
    }

    /// linux.resources plus `linux.devices` (allowed in the device rules,
    /// as runc does): what `create` should apply.
    pub fn apply_config(&self, linux: &Linux) -> Result<()> {
        let devices = linux.devices().as_deref().unwrap_or_default();
        match linux.resources() {
            Some(r) => self.apply(r, devices, false),
            None => Ok(()),
        }
    }

    /// For `update`: like [`ContainerCgroup::apply_resources`], but when a
    /// write fails (a memory limit below the usage: EBUSY) the values
    /// already written are put back, so a refused update leaves the
    /// container as it was. `linux_devices` is the container's
    /// `linux.devices` (from its config), kept allowed if rules are given.
    pub fn update_resources(
        &self,
        r: &LinuxResources,
        linux_devices: &[LinuxDevice],
    ) -> Result<()> {
        self.apply(r, linux_devices, true)
    }

    fn apply(&self, r: &LinuxResources, linux_devices: &[LinuxDevice], undo: bool) -> Result<()> {
        let plans = self.plan_all(r)?;
        let devices = match r.devices().as_deref() {
            Some(rules) => Some(Policy::new(&devices::container_rules(
                rules,
                linux_devices,
            )?)),
            None => None,
        };
        let mut journal = Journal::new(undo);
        if let Err(e) = self.execute(plans, &mut journal) {
            journal.roll_back();
            return Err(e);
        }
        if let Some(policy) = devices {
            if let Err(e) = self.apply_devices(&policy) {
                journal.roll_back();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Validate every section and turn it into writes, without side effects.
    fn plan_all<'a>(&'a self, r: &'a LinuxResources) -> Result<Vec<Planned<'a>>> {
        let mut plans: Vec<Planned> = Vec::new();
        if let Some(m) = r.memory().as_ref().filter(|m| !memory_is_empty(m)) {
            plans.push(self.plan_memory(m)?);
        }
        if let Some(c) = r.cpu() {
            plans.extend(self.plan_cpu(c)?);
        }
        if let Some(p) = r.pids() {
            let writes = plan_pids(p);
            if !writes.is_empty() {
                let target = self.locate("pids", "pids", "pids")?;
                plans.push(Planned::new(target, writes));
            }
        }
        if let Some(b) = r.block_io().as_ref().filter(|b| !blkio_is_empty(b)) {
            plans.push(self.plan_blkio(b)?);
        }
        if let Some(limits) = r.hugepage_limits().as_deref().filter(|l| !l.is_empty()) {
            let target = self.locate("hugepageLimits", "hugetlb", "hugetlb")?;
            let writes =
                plan_hugetlb(limits, matches!(target, Target::V2(..)), &huge_page_sizes())?;
            plans.push(Planned::new(target, writes));
        }
        if let Some(n) = r.network() {
            plans.extend(self.plan_network(n)?);
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|r| !r.is_empty()) {
            let writes = plan_rdma(rdma)?;
            if !writes.is_empty() {
                let target = self.locate("rdma", "rdma", "rdma")?;
                plans.push(Planned::new(target, writes));
            }
        }
        if let Some(unified) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            plans.extend(self.plan_unified(unified)?);
        }
        Ok(plans)
    }

    fn plan_memory<'a>(&'a self, m: &LinuxMemory) -> Result<Planned<'a>> {
        let target = self.locate("memory", "memory", "memory")?;
        let writes = match target {
            Target::V1(h) => {
                plan_v1_memory(m, || read_u64(&h.dir().join("memory.limit_in_bytes")))?
            }
            _ => plan_v2_memory(m, || read_u64(&target.dir().join("memory.current")))?,
        };
        Ok(Planned::new(target, writes))
    }

    /// net_cls and net_prio exist only as v1 controllers.
    fn plan_network<'a>(&'a self, n: &LinuxNetwork) -> Result<Vec<Planned<'a>>> {
        let mut plans = Vec::new();
        for (controller, writes) in [
            ("net_cls", plan_net_cls(n)),
            ("net_prio", plan_net_prio(n)?),
        ] {
            if writes.is_empty() {
                continue;
            }
            let Some(h) = self.v1_hierarchy(controller) else {
                let reason = if self.layout == super::Layout::V2 {
                    format!("cgroup v2 has no {controller} controller")
                } else {
                    format!("this host has no v1 {controller} hierarchy mounted")
                };
                return Err(Error::step("apply linux.resources.network", reason));
            };
            plans.push(Planned::new(Target::V1(h), writes));
        }
        Ok(plans)
    }

    fn plan_cpu<'a>(&'a self, c: &LinuxCpu) -> Result<Vec<Planned<'a>>> {
        let mut plans = Vec::new();
        let v1 = plan_v1_cpu(c);
        if !v1.is_empty() {
            let target = self.locate("cpu", "cpu", "cpu")?;
            let writes = match target {
                Target::V1(_) => v1,
                _ => plan_v2_cpu(c)?,
            };
            plans.push(Planned::new(target, writes));
        }
        let writes = plan_cpuset(c);
        if !writes.is_empty() {
            let target = self.locate("cpu.cpus", "cpuset", "cpuset")?;
            check_cpuset(&target, &writes)?;
            plans.push(Planned::new(target, writes));
        }
        Ok(plans)
    }

    fn plan_blkio<'a>(&'a self, b: &'a LinuxBlockIo) -> Result<Planned<'a>> {
        let target = self.locate("blockIO", "blkio", "io")?;
        let dir = target.dir();
        Ok(match target {
            Target::V1(_) => Planned::new(target, plan_v1_blkio(b, |f| dir.join(f).exists())?),
            // Validated here; which weight file (BFQ's or not) is only
            // known once io is enabled for the cgroup: planned again then.
            _ => Planned {
                target,
                writes: plan_v2_io(b, |_| false)?,
                replan_io: Some(b),
            },
        })
    }

    fn plan_unified<'a>(
        &'a self,
        unified: &std::collections::HashMap<String, String>,
    ) -> Result<Vec<Planned<'a>>> {
        let Some(u) = self.unified() else {
            return Err(invalid(
                "unified",
                "this host has no cgroup2 hierarchy (pure cgroup v1)",
            ));
        };
        let mut plans = Vec::new();
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for key in keys {
            check_unified_key(key)?;
            let controller = key.split('.').next().unwrap_or_default();
            let writes = vec![w(key.as_str(), &unified[key])];
            if controller == "cgroup" {
                plans.push(Planned::new(Target::Core(u), writes));
                continue;
            }
            // Target::V2 needs a 'static name: the known controllers.
            let Some(name) = V2_CONTROLLERS.iter().find(|c| **c == controller) else {
                return Err(invalid(
                    "unified",
                    format!("{key}: unknown cgroup2 controller {controller:?}"),
                ));
            };
            if !v2_offers(u, name)? {
                return Err(invalid(
                    "unified",
                    format!("{key}: the {controller} controller is not in cgroup2 here"),
                ));
            }
            plans.push(Planned::new(Target::V2(u, name), writes));
        }
        Ok(plans)
    }

    fn execute(&self, plans: Vec<Planned>, journal: &mut Journal) -> Result<()> {
        for p in plans {
            if let Target::V2(u, controller) = p.target {
                enable_v2(u, controller)?;
            }
            let dir = p.target.dir();
            let writes = match p.replan_io {
                Some(b) => plan_v2_io(b, |f| dir.join(f).exists())?,
                None => p.writes,
            };
            apply_writes(&dir, &writes, journal)?;
        }
        Ok(())
    }

    /// Enforce a device policy: the v1 devices controller where the host
    /// has one (v1 and hybrid), else an eBPF program on the cgroup2 dir.
    /// Never skipped: without either, it is an error.
    pub fn apply_devices(&self, policy: &Policy) -> Result<()> {
        if let Some(h) = self.v1_hierarchy("devices") {
            return apply_v1_devices(&h.dir(), policy);
        }
        if let Some(u) = self.unified() {
            return apply_bpf_devices(&u.dir(), policy);
        }
        Err(Error::step(
            "apply linux.resources.devices",
            "this host has neither a v1 devices controller nor cgroup2 to attach a device \
             program to",
        ))
    }
}

fn apply_v1_devices(dir: &Path, policy: &Policy) -> Result<()> {
    let list = dir.join("devices.list");
    let text = read_file(&list).map_err(|e| Error::os(format!("read {}", list.display()), e))?;
    let current = V1State::parse_list(&text).unwrap_or_else(V1State::allow_all);
    let plan = V1Plan::new(policy, &current)?;
    // One open per file, one write(2) per rule: cgroupfs takes each write
    // as one value (this runs in every create).
    let mut files: [Option<std::fs::File>; 2] = [None, None];
    for (file, line) in plan.writes {
        let p = dir.join(file.name());
        let step = || format!("write {line:?} to {}", p.display());
        let slot = &mut files[usize::from(file == V1File::Deny)];
        if slot.is_none() {
            let f = std::fs::OpenOptions::new().write(true).open(&p);
            *slot = Some(f.map_err(|e| Error::os(step(), e))?);
        }
        let Some(f) = slot.as_mut() else { continue };
        match std::io::Write::write(f, line.as_bytes()) {
            Ok(n) if n == line.len() => {}
            Ok(n) => return Err(Error::step(step(), format!("short write ({n} bytes)"))),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return Err(Error::step(
                    step(),
                    "operation not permitted: the parent cgroup does not allow this device",
                ))
            }
            Err(e) => return Err(Error::os(step(), e)),
        }
    }
    Ok(())
}

fn apply_bpf_devices(dir: &Path, policy: &Policy) -> Result<()> {
    let step = || format!("attach the device eBPF program to {}", dir.display());
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::os(step(), e))?;
    bpf::install(std::os::fd::AsFd::as_fd(&fd), policy).map_err(|e| Error::os(step(), e))
}

/// cpuset.cpus / cpuset.mems must name CPUs and nodes the parent cgroup has
/// (the kernel says only EINVAL): checked before anything is written.
fn check_cpuset(target: &Target, writes: &[Write]) -> Result<()> {
    let dir = target.dir();
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for wr in writes {
        let (field, sys) = match wr.file.as_str() {
            "cpuset.cpus" => ("cpu.cpus", "/sys/devices/system/cpu/online"),
            _ => ("cpu.mems", "/sys/devices/system/node/online"),
        };
        let wanted = parse_id_list(&wr.value)
            .ok_or_else(|| invalid(field, format!("{:?} is not a list like 0-3,7", wr.value)))?;
        let effective = format!("{}.effective", wr.file);
        let have = [
            parent.join(&effective),
            parent.join(&wr.file),
            PathBuf::from(sys),
        ]
        .iter()
        .filter_map(|p| read_file(p).ok())
        .map(|t| t.trim().to_owned())
        .find(|t| !t.is_empty());
        let Some(have) = have else { continue };
        let Some(allowed) = parse_id_list(&have) else {
            continue;
        };
        let missing: Vec<String> = wanted
            .iter()
            .filter(|id| !allowed.contains(id))
            .map(u32::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(invalid(
                field,
                format!(
                    "{} not available to the container's cgroup (its parent has {have})",
                    missing.join(",")
                ),
            ));
        }
    }
    Ok(())
}

/// A cgroup file holding one number.
fn read_u64(p: &Path) -> Result<u64> {
    let v = read_file(p).map_err(|e| Error::os(format!("read {}", p.display()), e))?;
    v.trim()
        .parse::<u64>()
        .map_err(|_| Error::step(format!("read {}", p.display()), format!("bad value {v:?}")))
}

/// "0-3,7" → [0, 1, 2, 3, 7]; None when malformed.
pub fn parse_id_list(text: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let a = part.trim().parse::<u32>().ok()?;
                (a, a)
            }
        };
        if b < a || b - a > 65_536 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// Nothing to write (clients often send empty sections): no controller is
/// needed then.
fn memory_is_empty(m: &LinuxMemory) -> bool {
    let set = |v: Option<i64>| v.is_some_and(|v| v != 0);
    !set(m.limit())
        && !set(m.swap())
        && !set(m.reservation())
        && !set(m.kernel())
        && !set(m.kernel_tcp())
        && m.use_hierarchy().is_none()
        && m.swappiness().is_none()
        && m.disable_oom_killer().is_none()
}

fn blkio_is_empty(b: &LinuxBlockIo) -> bool {
    let none = |l: &Option<Vec<_>>| l.as_ref().is_none_or(|l: &Vec<_>| l.is_empty());
    b.weight().is_none_or(|w| w == 0)
        && b.leaf_weight().is_none_or(|w| w == 0)
        && b.weight_device().as_ref().is_none_or(|l| l.is_empty())
        && none(b.throttle_read_bps_device())
        && none(b.throttle_write_bps_device())
        && none(b.throttle_read_iops_device())
        && none(b.throttle_write_iops_device())
}

/// cgroup2 controllers (for `unified` keys).
const V2_CONTROLLERS: &[&str] = &[
    "cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

/// The old values of the files written so far, to put back when a later
/// write fails (update). Only single-line values are kept: they are what
/// the file accepts back (device-keyed lists such as io.max are not).
struct Journal {
    enabled: bool,
    old: Vec<(PathBuf, String)>,
}

impl Journal {
    fn new(enabled: bool) -> Self {
        Journal {
            enabled,
            old: Vec::new(),
        }
    }

    fn remember(&mut self, path: &Path) {
        if !self.enabled {
            return;
        }
        if let Ok(v) = read_file(path) {
            let v = v.trim();
            if !v.is_empty() && !v.contains('\n') {
                self.old.push((path.to_path_buf(), v.to_owned()));
            }
        }
    }

    /// Newest first, so that pairs with an order constraint (memory and
    /// memory+swap) go back the way they came.
    fn roll_back(&mut self) {
        for (p, v) in self.old.drain(..).rev() {
            let _ = write_file(&p, v.as_bytes());
        }
    }
}

fn apply_writes(dir: &Path, writes: &[Write], journal: &mut Journal) -> Result<()> {
    for wr in writes {
        let p = dir.join(&wr.file);
        journal.remember(&p);
        match write_file(&p, wr.value.as_bytes()) {
            Ok(()) => {}
            Err(e) if wr.optional && gone(&e) => {}
            Err(e) => return Err(write_error(&p, wr, e)),
        }
    }
    Ok(())
}

fn write_error(p: &Path, wr: &Write, e: std::io::Error) -> Error {
    let step = format!("set {} to {:?}", p.display(), wr.value);
    if gone(&e) {
        return Error::step(step, "the kernel has no such cgroup file");
    }
    let memory_limit = matches!(
        wr.file.as_str(),
        "memory.limit_in_bytes" | "memory.memsw.limit_in_bytes" | "memory.max"
    );
    if memory_limit && e.raw_os_error() == Some(libc::EBUSY) {
        return Error::step(
            step,
            "device or resource busy: the container uses more memory than that and the \
             kernel could not reclaim enough (the limit is unchanged)",
        );
    }
    if wr.file == "memory.limit_in_bytes" && e.raw_os_error() == Some(libc::EINVAL) {
        return Error::step(
            step,
            "invalid argument: the memory limit cannot be above the memory+swap limit \
             (memory.memsw.limit_in_bytes); raise memory.swap (--memory-swap) with it",
        );
    }
    Error::os(step, e)
}

/// The cgroup2 hierarchy root offers `controller` (cgroup.controllers).
fn v2_offers(u: &Hierarchy, controller: &str) -> Result<bool> {
    let p = u.mount_point.join("cgroup.controllers");
    let offered = read_file(&p).map_err(|e| Error::os(format!("read {}", p.display()), e))?;
    Ok(offered.split_whitespace().any(|c| c == controller))
}

/// Enable `controller` for the container's cgroup2 directory: written into
/// cgroup.subtree_control of every ancestor from the hierarchy root down to
/// the container's parent (the ones that have it already are left alone).
fn enable_v2(u: &Hierarchy, controller: &str) -> Result<()> {
    let comps: Vec<&std::ffi::OsStr> = u
        .path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut dir = u.mount_point.clone();
    for comp in comps {
        let p = dir.join("cgroup.subtree_control");
        let cur = read_file(&p).map_err(|e| Error::os(format!("read {}", p.display()), e))?;
        if !cur.split_whitespace().any(|c| c == controller) {
            write_file(&p, format!("+{controller}").as_bytes()).map_err(|e| {
                let step = format!("enable the {controller} controller in {}", p.display());
                if e.raw_os_error() == Some(libc::EBUSY) {
                    Error::step(
                        step,
                        "the cgroup has processes of its own (cgroup v2 allows controllers \
                         only for cgroups whose parent holds no processes); use a \
                         linux.cgroupsPath outside that cgroup",
                    )
                } else {
                    Error::os(step, e)
                }
            })?;
        }
        dir.push(comp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("resources json")
    }

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).expect("memory json")
    }

    fn pairs(v: &[Write]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect()
    }

    #[test]
    fn cgroups_resources_conversions() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(memory_swap_to_v2(0, 0).ok(), Some(0));
        assert_eq!(memory_swap_to_v2(0, -1).ok(), Some(-1));
        assert_eq!(memory_swap_to_v2(-1, 100).ok(), Some(-1));
        assert_eq!(memory_swap_to_v2(300, 100).ok(), Some(200));
        assert!(memory_swap_to_v2(50, 100).is_err());
        assert!(memory_swap_to_v2(300, 0).is_err());
        assert!(memory_swap_to_v2(300, -1).is_err());
    }

    fn no_usage() -> Result<u64> {
        Ok(0)
    }

    #[test]
    fn cgroups_resources_network_and_rdma_plans() {
        let r = res(
            r#"{"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}, {"name": "lo", "priority": 2}]}}"#,
        );
        let n = r.network().as_ref().expect("network");
        assert_eq!(
            pairs(&plan_net_cls(n)),
            vec![("net_cls.classid", "1048577")]
        );
        assert_eq!(
            pairs(&plan_net_prio(n).expect("plan")),
            vec![
                ("net_prio.ifpriomap", "eth0 5"),
                ("net_prio.ifpriomap", "lo 2")
            ]
        );
        let r = res(r#"{"network": {"priorities": [{"name": "eth 0", "priority": 1}]}}"#);
        let err = plan_net_prio(r.network().as_ref().expect("network")).expect_err("bad name");
        assert!(
            err.to_string().contains("network.priorities[0].name"),
            "{err}"
        );

        let r = res(
            r#"{"rdma": {"mlx5_1": {"hcaObjects": 100}, "mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}, "none": {}}}"#,
        );
        assert_eq!(
            pairs(&plan_rdma(r.rdma().as_ref().expect("rdma")).expect("plan")),
            vec![
                ("rdma.max", "mlx4_0 hca_handle=2 hca_object=2000"),
                ("rdma.max", "mlx5_1 hca_object=100")
            ]
        );
    }

    #[test]
    fn cgroups_resources_v2_plans() {
        let m = mem(r#"{"limit": 1048576, "swap": 3145728, "reservation": 524288}"#);
        assert_eq!(
            pairs(&plan_v2_memory(&m, no_usage).expect("plan")),
            vec![
                ("memory.swap.max", "2097152"),
                ("memory.max", "1048576"),
                ("memory.low", "524288")
            ]
        );
        let m = mem(r#"{"limit": -1}"#);
        assert_eq!(
            pairs(&plan_v2_memory(&m, no_usage).expect("plan")),
            vec![("memory.swap.max", "max"), ("memory.max", "max")]
        );
        assert!(plan_v2_memory(&mem(r#"{"swappiness": 10}"#), no_usage).is_err());
        assert!(plan_v2_memory(&mem(r#"{"useHierarchy": false}"#), no_usage).is_err());
        // checkBeforeUpdate: below the usage is refused, naming the field;
        // at or above it is written; without the flag usage is not read.
        let check = mem(r#"{"limit": 4096, "checkBeforeUpdate": true}"#);
        let err = plan_v2_memory(&check, || Ok(8192)).expect_err("below usage");
        assert!(err.to_string().contains("memory.limit"), "{err}");
        assert!(err.to_string().contains("8192"), "{err}");
        assert_eq!(
            pairs(&plan_v2_memory(&check, || Ok(4096)).expect("plan")),
            vec![("memory.max", "4096")]
        );
        let unchecked = mem(r#"{"limit": 4096}"#);
        assert_eq!(
            pairs(&plan_v2_memory(&unchecked, || panic!("usage read")).expect("plan")),
            vec![("memory.max", "4096")]
        );

        let r = res(
            r#"{"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0}}"#,
        );
        let c = r.cpu().as_ref().expect("cpu");
        assert_eq!(
            pairs(&plan_v2_cpu(c).expect("plan")),
            vec![
                ("cpu.weight", "39"),
                ("cpu.max", "50000 100000"),
                ("cpu.max.burst", "1000"),
                ("cpu.idle", "0")
            ]
        );
        let r = res(r#"{"cpu": {"quota": -1}}"#);
        assert_eq!(
            pairs(&plan_v2_cpu(r.cpu().as_ref().expect("cpu")).expect("plan")),
            vec![("cpu.max", "max")]
        );
        let r = res(r#"{"cpu": {"realtimeRuntime": 100}}"#);
        assert!(plan_v2_cpu(r.cpu().as_ref().expect("cpu")).is_err());

        let r = res(
            r#"{"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]}}"#,
        );
        let b = r.block_io().as_ref().expect("blkio");
        assert_eq!(
            pairs(&plan_v2_io(b, |_| false).expect("plan")),
            vec![
                ("io.weight", "default 4950"),
                ("io.weight", "8:0 910"),
                ("io.max", "8:0 rbps=1000"),
                ("io.max", "8:16 wiops=max")
            ]
        );
        assert_eq!(
            pairs(&plan_v2_io(b, |f| f == "io.bfq.weight").expect("plan"))[..2],
            [("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 100")]
        );

        let r = res(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": -1}]}"#);
        let l = r.hugepage_limits().as_ref().expect("hugetlb");
        let sizes = vec!["1GB".to_owned(), "2MB".to_owned()];
        let plan = plan_hugetlb(l, true, &sizes).expect("plan");
        assert_eq!(
            pairs(&plan),
            vec![("hugetlb.2MB.max", "max"), ("hugetlb.2MB.rsvd.max", "max")]
        );
        assert!(!plan[0].optional && plan[1].optional);
        assert!(plan_hugetlb(l, true, &sizes[..1]).is_err());
        let r = res(r#"{"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}"#);
        let l = r.hugepage_limits().as_ref().expect("hugetlb");
        assert!(plan_hugetlb(l, false, &sizes).is_err());
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1 << 20), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }

    #[test]
    fn cgroups_resources_v1_plans() {
        let m = mem(r#"{"limit": 100, "swap": 300}"#);
        // Raising above the current limit: memsw first.
        assert_eq!(
            pairs(&plan_v1_memory(&m, || Ok(50)).expect("plan")),
            vec![
                ("memory.memsw.limit_in_bytes", "300"),
                ("memory.limit_in_bytes", "100")
            ]
        );
        // Lowering: memory first.
        assert_eq!(
            pairs(&plan_v1_memory(&m, || Ok(1000)).expect("plan")),
            vec![
                ("memory.limit_in_bytes", "100"),
                ("memory.memsw.limit_in_bytes", "300")
            ]
        );
        let m = mem(r#"{"limit": -1}"#);
        assert_eq!(
            pairs(&plan_v1_memory(&m, || Ok(0)).expect("plan")),
            vec![
                ("memory.memsw.limit_in_bytes", "-1"),
                ("memory.limit_in_bytes", "-1")
            ]
        );
        assert!(plan_v1_memory(&mem(r#"{"swappiness": 101}"#), || Ok(0)).is_err());
        let m = mem(r#"{"kernel": 4096, "useHierarchy": true}"#);
        let writes = plan_v1_memory(&m, || Ok(0)).expect("plan");
        assert_eq!(
            pairs(&writes),
            vec![
                ("memory.kmem.limit_in_bytes", "4096"),
                ("memory.use_hierarchy", "1")
            ]
        );
        assert!(writes[0].optional, "kmem is gone from some kernels");
        let p: LinuxPids = serde_json::from_str(r#"{"limit": -1}"#).expect("pids");
        assert_eq!(pairs(&plan_pids(&p)), vec![("pids.max", "max")]);
        let p: LinuxPids = serde_json::from_str(r#"{"limit": 0}"#).expect("pids");
        assert!(plan_pids(&p).is_empty());
        assert!(check_unified_key("memory.high").is_ok());
        for bad in ["../x", "a/b", "cgroup.procs", "nodot", ""] {
            assert!(check_unified_key(bad).is_err(), "{bad}");
        }
    }
}

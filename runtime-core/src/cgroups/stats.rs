//! Resource usage of a container's cgroup, with runc's JSON field names (the
//! `data` of `runc events` stats), read from v1 or cgroup2 files — each
//! controller from where it lives on this host.
//!
//! Files the kernel does not have (a controller not mounted, CFQ-only blkio
//! files, no swap accounting) leave their fields at zero, as runc's
//! omitempty fields do; a value that does not parse is read as zero too.
//!
//! cgroups-rs can read most of these counters, but through its own
//! controller objects that detect the hierarchies again; here they come from
//! the directories recorded in the container's state, and the JSON shape is
//! runc's, which cgroups-rs does not produce.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fsutil::read_file;
use super::resources::huge_page_sizes;
use super::ContainerCgroup;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// One line of `husk events`: `{"type": "stats", "id": …, "data": {…}}` or
/// `{"type": "oom", "id": …}`, as runc prints them.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// A file's content, None when the kernel does not have it (or it is
/// unreadable: stats are best effort).
fn text(dir: &Path, file: &str) -> Option<String> {
    read_file(&dir.join(file)).ok()
}

/// A single number; "max" (cgroup2's unlimited) is u64::MAX, as runc.
fn num(dir: &Path, file: &str) -> u64 {
    text(dir, file).map_or(0, |t| parse_num(&t))
}

fn parse_num(t: &str) -> u64 {
    match t.trim() {
        "max" => u64::MAX,
        v => v.parse().unwrap_or(0),
    }
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, …).
pub fn flat_keyed(t: &str) -> BTreeMap<String, u64> {
    t.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    text(dir, file).map(|t| flat_keyed(&t)).unwrap_or_default()
}

fn list(dir: &Path, file: &str) -> Vec<u64> {
    text(dir, file)
        .map(|t| {
            t.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Where a controller's files are: its v1 directory, else the cgroup2 one.
enum Src {
    V1(PathBuf),
    V2(PathBuf),
    None,
}

impl ContainerCgroup {
    fn stats_src(&self, v1: &str) -> Src {
        if let Some(d) = self.v1_dir(v1) {
            return Src::V1(d);
        }
        match self.unified_dir() {
            Some(d) => Src::V2(d),
            None => Src::None,
        }
    }

    /// Usage counters of every controller the container has.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        match self.stats_src("cpuacct") {
            Src::V1(d) => v1_cpuacct(&d, &mut s.cpu.usage),
            Src::V2(d) => v2_cpu(&d, &mut s.cpu),
            Src::None => {}
        }
        if let Some(d) = self.v1_dir("cpu") {
            let st = keyed(&d, "cpu.stat");
            s.cpu.throttling = Throttling {
                periods: st.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: st.get("throttled_time").copied().unwrap_or(0),
            };
        }
        s.memory = match self.stats_src("memory") {
            Src::V1(d) => v1_memory(&d),
            Src::V2(d) => v2_memory(&d),
            Src::None => Memory::default(),
        };
        if let Src::V1(d) | Src::V2(d) = self.stats_src("pids") {
            let limit = num(&d, "pids.max");
            s.pids = Pids {
                current: num(&d, "pids.current"),
                limit: if limit == u64::MAX { 0 } else { limit },
            };
        }
        s.blkio = match self.stats_src("blkio") {
            Src::V1(d) => v1_blkio(&d),
            Src::V2(d) => text(&d, "io.stat").map(|t| v2_io(&t)).unwrap_or_default(),
            Src::None => Blkio::default(),
        };
        s.hugetlb = match self.stats_src("hugetlb") {
            Src::V1(d) => hugetlb(&d, false),
            Src::V2(d) => hugetlb(&d, true),
            Src::None => BTreeMap::new(),
        };
        s
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn v1_cpuacct(d: &Path, u: &mut CpuUsage) {
    u.total = num(d, "cpuacct.usage");
    u.percpu = list(d, "cpuacct.usage_percpu");
    u.percpu_kernel = list(d, "cpuacct.usage_percpu_sys");
    u.percpu_user = list(d, "cpuacct.usage_percpu_user");
    // cpuacct.stat is in clock ticks.
    let st = keyed(d, "cpuacct.stat");
    let ns = |k: &str| {
        st.get(k)
            .copied()
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            / clock_ticks()
    };
    u.user = ns("user");
    u.kernel = ns("system");
}

fn v2_cpu(d: &Path, c: &mut Cpu) {
    let st = keyed(d, "cpu.stat");
    let us = |k: &str| st.get(k).copied().unwrap_or(0).saturating_mul(1000);
    c.usage.total = us("usage_usec");
    c.usage.user = us("user_usec");
    c.usage.kernel = us("system_usec");
    c.throttling = Throttling {
        periods: st.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: us("throttled_usec"),
    };
}

fn v1_entry(d: &Path, prefix: &str) -> MemoryEntry {
    MemoryEntry {
        limit: num(d, &format!("{prefix}.limit_in_bytes")),
        usage: num(d, &format!("{prefix}.usage_in_bytes")),
        max: num(d, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: num(d, &format!("{prefix}.failcnt")),
    }
}

fn v1_memory(d: &Path) -> Memory {
    let raw = keyed(d, "memory.stat");
    Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: v1_entry(d, "memory"),
        swap: v1_entry(d, "memory.memsw"),
        kernel: v1_entry(d, "memory.kmem"),
        kernel_tcp: v1_entry(d, "memory.kmem.tcp"),
        raw,
    }
}

fn v2_memory(d: &Path) -> Memory {
    let raw = keyed(d, "memory.stat");
    let usage = MemoryEntry {
        limit: num(d, "memory.max"),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: keyed(d, "memory.events").get("max").copied().unwrap_or(0),
    };
    // As runc: swap is reported the v1 way (memory + swap), so clients
    // computing "swap used" as swap - usage keep working.
    let swap_limit = num(d, "memory.swap.max");
    let swap = MemoryEntry {
        limit: if swap_limit == u64::MAX || usage.limit == u64::MAX {
            u64::MAX
        } else {
            swap_limit.saturating_add(usage.limit)
        },
        usage: num(d, "memory.swap.current").saturating_add(usage.usage),
        max: 0,
        failcnt: keyed(d, "memory.swap.events")
            .get("max")
            .copied()
            .unwrap_or(0),
    };
    Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        kernel: MemoryEntry {
            usage: raw.get("kernel").copied().unwrap_or(0),
            ..MemoryEntry::default()
        },
        kernel_tcp: MemoryEntry::default(),
        raw,
    }
}

/// v1 blkio lists: "8:0 Read 4096" lines (or "8:0 4096" without an op),
/// and a "Total N" line that is skipped.
pub fn parse_blkio(t: &str) -> Vec<BlkioEntry> {
    t.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (maj, min) = it.next()?.split_once(':')?;
            let (op, value) = match (it.next()?, it.next()) {
                (op, Some(v)) => (op.to_owned(), v),
                (v, None) => (String::new(), v),
            };
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

fn v1_blkio(d: &Path) -> Blkio {
    let get = |f: &str| text(d, f).map(|t| parse_blkio(&t)).unwrap_or_default();
    let mut b = Blkio {
        io_service_bytes_recursive: get("blkio.io_service_bytes_recursive"),
        io_serviced_recursive: get("blkio.io_serviced_recursive"),
        io_queued_recursive: get("blkio.io_queued_recursive"),
        io_service_time_recursive: get("blkio.io_service_time_recursive"),
        io_wait_time_recursive: get("blkio.io_wait_time_recursive"),
        io_merged_recursive: get("blkio.io_merged_recursive"),
        io_time_recursive: get("blkio.time_recursive"),
        sectors_recursive: get("blkio.sectors_recursive"),
    };
    // Without CFQ only the throttle files count I/O (as runc).
    if b.io_service_bytes_recursive.is_empty() {
        b.io_service_bytes_recursive = get("blkio.throttle.io_service_bytes_recursive");
        b.io_serviced_recursive = get("blkio.throttle.io_serviced_recursive");
    }
    b
}

/// cgroup2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
pub fn v2_io(t: &str) -> Blkio {
    let mut b = Blkio::default();
    for l in t.lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let value = v.parse().unwrap_or(0);
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
    b
}

fn hugetlb(d: &Path, v2: bool) -> BTreeMap<String, Hugetlb> {
    let mut out = BTreeMap::new();
    for size in huge_page_sizes() {
        let h = if v2 {
            let Some(current) = text(d, &format!("hugetlb.{size}.current")) else {
                continue;
            };
            Hugetlb {
                usage: parse_num(&current),
                max: 0,
                failcnt: keyed(d, &format!("hugetlb.{size}.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            }
        } else {
            let Some(usage) = text(d, &format!("hugetlb.{size}.usage_in_bytes")) else {
                continue;
            };
            Hugetlb {
                usage: parse_num(&usage),
                max: num(d, &format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: num(d, &format!("hugetlb.{size}.failcnt")),
            }
        };
        out.insert(size, h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_stats_parsers() {
        let v1 = parse_blkio("8:0 Read 4096\n8:0 Write 512\n8:16 Sync 1\nTotal 4609\n");
        assert_eq!(v1.len(), 3);
        assert_eq!(
            v1[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
        assert_eq!(parse_blkio("8:0 77\n")[0].op, "");
        let v2 = v2_io("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(v2.io_service_bytes_recursive.len(), 2);
        assert_eq!(v2.io_service_bytes_recursive[1].op, "Write");
        assert_eq!(v2.io_serviced_recursive[0].value, 1);
        let k = flat_keyed("oom 1\noom_kill 2\nbad\n");
        assert_eq!(k.get("oom_kill"), Some(&2));
        assert_eq!(parse_num("max\n"), u64::MAX);
        assert_eq!(parse_num("junk"), 0);
    }

    /// A cgroup2 directory as the kernel lays it out (tmpfs files): every
    /// v2 stat lands in runc's field.
    #[test]
    fn cgroups_stats_v2_fake_tree() {
        let d = std::env::temp_dir().join(format!("husk-stats-v2-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        let files = [
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 3\nthrottled_usec 7\n"),
            ("memory.current", "4096\n"),
            ("memory.peak", "8192\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
            ("memory.swap.current", "100\n"),
            ("memory.swap.max", "max\n"),
            ("memory.stat", "anon 1000\nfile 2000\nkernel 300\n"),
            ("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"),
        ];
        for (f, t) in files {
            std::fs::write(d.join(f), t).expect("write");
        }
        let mut cpu = Cpu::default();
        v2_cpu(&d, &mut cpu);
        assert_eq!(cpu.usage.total, 1_500_000);
        assert_eq!(cpu.usage.kernel, 500_000);
        assert_eq!(cpu.throttling.throttled_periods, 3);
        assert_eq!(cpu.throttling.throttled_time, 7000);
        let m = v2_memory(&d);
        assert_eq!(m.usage.usage, 4096);
        assert_eq!(m.usage.max, 8192);
        assert_eq!(m.usage.limit, u64::MAX);
        assert_eq!(m.usage.failcnt, 4);
        assert_eq!(m.swap.usage, 4196);
        assert_eq!(m.cache, 2000);
        assert_eq!(m.kernel.usage, 300);
        let json = serde_json::to_value(Stats {
            cpu,
            memory: m,
            ..Stats::default()
        })
        .expect("json");
        assert_eq!(json["cpu"]["throttling"]["throttledPeriods"], 3);
        assert_eq!(json["memory"]["raw"]["anon"], 1000);
        assert!(json["memory"]["kernelTCP"].is_object());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}

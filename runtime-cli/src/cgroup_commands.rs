//! `pause`, `resume`, `ps`, `events` and `update`: runc's flags and output
//! formats over the library's cgroup commands.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Args;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use runtime_core::container;

#[derive(Args)]
pub struct PsArgs {
    /// Output format: table (the host's ps, filtered) or json (pids).
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Container id.
    id: String,
    /// Arguments for ps (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Container id.
    id: String,
    /// Print the stats once and exit.
    #[arg(long)]
    stats: bool,
    /// Time between two stats events (e.g. 5s, 500ms, 1m).
    #[arg(long, default_value = "5s")]
    interval: String,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Container id.
    id: String,
    /// A file with linux.resources JSON, or - for standard input. The flags
    /// below override its values.
    #[arg(short, long)]
    resources: Option<String>,
    /// Block IO weight (10..1000).
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds).
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    cpu_share: Option<u64>,
    /// Real-time period (microseconds).
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    /// Real-time runtime (microseconds).
    #[arg(long, allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs to run on, e.g. 0-3,7.
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use, e.g. 0-1.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Kernel memory limit (cgroup v1; Linux 6.1 and later accept and ignore it), e.g. 64m.
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit (cgroup v1), e.g. 64m.
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// Memory limit, e.g. 64m, 1g (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit, e.g. 32m.
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit, e.g. 128m (-1 for unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Maximum number of tasks (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
}

pub fn pause(root: &Path, id: &str) -> anyhow::Result<()> {
    Ok(container::pause(root, id)?)
}

pub fn resume(root: &Path, id: &str) -> anyhow::Result<()> {
    Ok(container::resume(root, id)?)
}

/// runc's `ps`: json prints the pids; table runs the host's ps and keeps the
/// header and the rows whose PID is in the container.
pub fn ps(root: &Path, args: &PsArgs) -> anyhow::Result<()> {
    let pids = container::ps(root, &args.id)?;
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        serde_json::to_writer(&mut out, &pids)?;
        writeln!(out)?;
        return Ok(());
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let output = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| anyhow!("run ps: {e}"))?;
    if !output.status.success() {
        bail!(
            "ps {}: {}: {}",
            ps_args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let table = filter_ps(&String::from_utf8_lossy(&output.stdout), &pids)?;
    out.write_all(table.as_bytes())?;
    Ok(())
}

/// The header of ps output and the rows whose PID column is in `pids`.
fn filter_ps(text: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| anyhow!("ps printed nothing"))?;
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| anyhow!("couldn't find PID field in ps output"))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// runc's `events`: one stats object with --stats, else a stream of
/// stats and oom events, one JSON object per line.
pub fn events(root: &Path, args: &EventsArgs) -> anyhow::Result<()> {
    if args.stats {
        let stats = container::stats(root, &args.id)?;
        let event = runtime_core::cgroups::stats::Event {
            kind: "stats",
            id: args.id.clone(),
            data: Some(stats),
        };
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &event)?;
        writeln!(out)?;
        return Ok(());
    }
    let interval = parse_duration(&args.interval)?;
    if interval.is_zero() {
        bail!("--interval must be greater than 0");
    }
    let mut out = std::io::stdout().lock();
    container::events(root, &args.id, interval, |event| {
        let mut line = serde_json::to_vec(event)
            .map_err(|e| runtime_core::Error::step("encode event", e.to_string()))?;
        line.push(b'\n');
        out.write_all(&line)
            .and_then(|()| out.flush())
            .map_err(|e| runtime_core::Error::os("write event", e))
    })?;
    Ok(())
}

/// A Go-style duration: "5s", "500ms", "1m30s", "1.5s", "2h".
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow!("invalid --interval {text:?} (use e.g. 5s, 500ms, 1m)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * seconds;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A memory size as runc takes it: bytes, or with a binary unit (k, m, g,
/// t, p, optionally followed by b or ib, any case); "-1" is unlimited.
fn parse_bytes(flag: &str, text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let bad = || anyhow!("--{flag}: invalid size {text:?} (use e.g. 64m, 1g, or -1)");
    let lower = t.to_ascii_lowercase();
    let stripped = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, mult) = match stripped.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let shift = match c {
                'k' => 10,
                'm' => 20,
                'g' => 30,
                't' => 40,
                'p' => 50,
                _ => return Err(bad()),
            };
            (&stripped[..stripped.len() - 1], 1u64 << shift)
        }
        _ => (stripped, 1),
    };
    let value: f64 = num.trim().parse().map_err(|_| bad())?;
    if value.is_nan() || value < 0.0 {
        return Err(bad());
    }
    let bytes = value * mult as f64;
    if bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// The resources to apply: the --resources JSON (if any) with the flags on
/// top.
fn update_resources(args: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut r = match args.resources.as_deref() {
        Some(src) => read_resources(src)?,
        None => LinuxResources::default(),
    };
    let mut memory = r.memory().unwrap_or_default();
    let size = |flag, v: &Option<String>| v.as_deref().map(|t| parse_bytes(flag, t)).transpose();
    set_if(
        &mut memory,
        size("memory", &args.memory)?,
        LinuxMemory::set_limit,
    );
    set_if(
        &mut memory,
        size("memory-reservation", &args.memory_reservation)?,
        LinuxMemory::set_reservation,
    );
    set_if(
        &mut memory,
        size("memory-swap", &args.memory_swap)?,
        LinuxMemory::set_swap,
    );
    set_if(
        &mut memory,
        size("kernel-memory", &args.kernel_memory)?,
        LinuxMemory::set_kernel,
    );
    set_if(
        &mut memory,
        size("kernel-memory-tcp", &args.kernel_memory_tcp)?,
        LinuxMemory::set_kernel_tcp,
    );
    if memory != LinuxMemory::default() {
        r.set_memory(Some(memory));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    set_if(&mut cpu, args.cpu_share, LinuxCpu::set_shares);
    set_if(&mut cpu, args.cpu_quota, LinuxCpu::set_quota);
    set_if(&mut cpu, args.cpu_period, LinuxCpu::set_period);
    set_if(
        &mut cpu,
        args.cpu_rt_runtime,
        LinuxCpu::set_realtime_runtime,
    );
    set_if(&mut cpu, args.cpu_rt_period, LinuxCpu::set_realtime_period);
    set_if(&mut cpu, args.cpuset_cpus.clone(), LinuxCpu::set_cpus);
    set_if(&mut cpu, args.cpuset_mems.clone(), LinuxCpu::set_mems);
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(w) = args.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_else(LinuxBlockIo::default);
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    if let Some(l) = args.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(l);
        r.set_pids(Some(p));
    }
    Ok(r)
}

fn set_if<S, T>(s: &mut S, v: Option<T>, set: impl FnOnce(&mut S, Option<T>) -> &mut S) {
    if v.is_some() {
        set(s, v);
    }
}

fn read_resources(src: &str) -> anyhow::Result<LinuxResources> {
    let raw = if src == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .map_err(|e| anyhow!("read standard input: {e}"))?;
        buf
    } else {
        std::fs::read(src).map_err(|e| anyhow!("read {src}: {e}"))?
    };
    let parsed = runtime_core::cgroups::resources::parse_resources(&raw);
    parsed.map_err(|e| anyhow!("--resources: {e}"))
}

pub fn update(root: &Path, args: &UpdateArgs) -> anyhow::Result<()> {
    let r = update_resources(args)?;
    Ok(container::update(root, &args.id, &r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("memory", "64m").ok(), Some(64 << 20));
        assert_eq!(parse_bytes("memory", "1g").ok(), Some(1 << 30));
        assert_eq!(parse_bytes("memory", "1GiB").ok(), Some(1 << 30));
        assert_eq!(parse_bytes("memory", "512KB").ok(), Some(512 << 10));
        assert_eq!(parse_bytes("memory", "1048576").ok(), Some(1 << 20));
        assert_eq!(parse_bytes("memory", "-1").ok(), Some(-1));
        assert_eq!(parse_bytes("memory", "1.5k").ok(), Some(1536));
        for bad in ["", "abc", "12x", "-5", "m"] {
            assert!(parse_bytes("memory", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1.5s").ok(),
            Some(Duration::from_millis(1500))
        );
        for bad in ["", "5", "s", "5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ps_table_is_filtered_on_the_pid_column() {
        let text = "UID PID PPID C STIME TTY TIME CMD\n\
                    root 1 0 0 10:00 ? 00:00:01 /sbin/init\n\
                    root 42 1 0 10:00 ? 00:00:00 sleep 1000\n\
                    root 43 42 0 10:00 ? 00:00:00 sh -c 42\n";
        let t = filter_ps(text, &[42]).expect("filter");
        assert_eq!(
            t,
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 1000\n"
        );
        assert!(filter_ps("USER COMMAND\nroot x\n", &[1]).is_err());
    }

    #[test]
    fn update_flags_build_resources() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            u: UpdateArgs,
        }
        let t = T::try_parse_from([
            "t",
            "c1",
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
            "--cpu-quota",
            "-1",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "20",
            "--blkio-weight",
            "300",
        ])
        .expect("parse");
        let r = update_resources(&t.u).expect("resources");
        let m = r.memory().as_ref().expect("memory");
        assert_eq!(m.limit(), Some(64 << 20));
        assert_eq!(m.swap(), Some(-1));
        let c = r.cpu().as_ref().expect("cpu");
        assert_eq!(c.quota(), Some(-1));
        assert_eq!(c.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(20));
        assert_eq!(r.block_io().as_ref().and_then(|b| b.weight()), Some(300));
        assert!(r.devices().is_none());
    }
}

//! The results as a markdown table plus notes.

use crate::measure::{Bench, PROBES};
use crate::runtime::{Runtime, HIDE_CGROUP2_SCRIPT};
use crate::stats::{self, Key, Metric, Probe, Series};

/// How a wrapped runtime's times are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    /// As measured, wrapper included.
    Raw,
    /// The wrapper's per-command overhead subtracted.
    Unwrapped,
}

enum Column<'a> {
    Median(&'a Runtime, View),
    /// subject / other, as medians of paired per-iteration ratios.
    Ratio(&'a Runtime, &'a Runtime, View),
}

struct Report<'a> {
    bench: &'a Bench<'a>,
    runtimes: &'a [Runtime],
    columns: Vec<Column<'a>>,
    /// The wrapper's cost per command (ms): median over the iterations of
    /// wrapper(true) - true. A constant: subtracting each iteration's own
    /// (noisy) difference would add its variance three times to a lifecycle.
    overhead: Option<f64>,
}

pub fn print(bench: &Bench, runtimes: &[Runtime]) {
    let report = Report::new(bench, runtimes);
    report.print_header();
    report.print_table();
    report.print_notes();
}

impl<'a> Report<'a> {
    fn new(bench: &'a Bench<'a>, runtimes: &'a [Runtime]) -> Self {
        let overhead = stats::median_of(&stats::paired_difference(
            &bench.samples.series(&Key::Probe(Probe::Wrapper)),
            &bench.samples.series(&Key::Probe(Probe::Exec)),
        ));
        Report {
            bench,
            runtimes,
            columns: columns(runtimes),
            overhead,
        }
    }

    fn print_header(&self) {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        println!(
            "\n{} interleaved iterations in {:.1} s; kernel {}, {cpus} CPUs; medians in ms.\n",
            self.bench.iterations(),
            self.bench.elapsed.as_secs_f64(),
            kernel.trim(),
        );
    }

    fn print_table(&self) {
        let mut header = vec!["phase".to_string()];
        header.extend(self.columns.iter().map(column_title));
        print_row(&header);
        print_row(
            &header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---" } else { "--:" }.to_string())
                .collect::<Vec<_>>(),
        );
        for metric in Metric::ALL {
            self.print_cells(metric.label(), |column| self.metric_cell(column, metric));
        }
        self.print_cells("peak RSS of create (KiB)", |column| self.rss_cell(column));
        self.print_cells("binary (KiB)", binary_cell);
        self.print_cells("failed commands", |column| self.failures_cell(column));
    }

    fn print_cells(&self, label: &str, cell: impl Fn(&Column) -> String) {
        let mut row = vec![label.to_string()];
        row.extend(self.columns.iter().map(cell));
        print_row(&row);
    }

    fn metric_cell(&self, column: &Column, metric: Metric) -> String {
        match column {
            Column::Median(rt, view) => {
                stats::median_of(&self.series(rt, metric, *view)).map_or(na(), ms)
            }
            Column::Ratio(subject, other, view) => {
                let ratio = stats::paired_ratio(
                    &self.series(subject, metric, *view),
                    &self.series(other, metric, *view),
                );
                ratio.map_or(na(), times)
            }
        }
    }

    /// Raw only: the peak of a wrapped command is the peak of its largest process.
    fn rss_cell(&self, column: &Column) -> String {
        match column {
            Column::Median(rt, View::Raw) => {
                self.median_rss(rt).map_or(na(), |kib| format!("{kib:.0}"))
            }
            Column::Ratio(subject, other, View::Raw) => {
                match (self.median_rss(subject), self.median_rss(other)) {
                    (Some(a), Some(b)) if b > 0.0 => times(a / b),
                    _ => na(),
                }
            }
            _ => na(),
        }
    }

    fn failures_cell(&self, column: &Column) -> String {
        match column {
            Column::Median(rt, View::Raw) => self.bench.failures_of(&rt.name).to_string(),
            _ => String::new(),
        }
    }

    fn median_rss(&self, rt: &Runtime) -> Option<f64> {
        self.rss_median(&Key::Runtime(rt.name.clone(), Metric::Create))
    }

    fn rss_median(&self, key: &Key) -> Option<f64> {
        let samples = self.bench.rss.get(key)?;
        stats::median(samples.iter().map(|kib| *kib as f64))
    }

    fn series(&self, rt: &Runtime, metric: Metric, view: View) -> Series {
        let raw = self
            .bench
            .samples
            .series(&Key::Runtime(rt.name.clone(), metric));
        match self.overhead {
            Some(overhead) if rt.wrapped && view == View::Unwrapped => {
                stats::subtract_overhead(&raw, overhead, metric.commands())
            }
            None if rt.wrapped && view == View::Unwrapped => vec![None; raw.len()],
            _ => raw,
        }
    }

    fn probe_median(&self, probe: Probe) -> String {
        stats::median_of(&self.bench.samples.series(&Key::Probe(probe))).map_or(na(), ms)
    }

    fn print_notes(&self) {
        let subject = self.runtimes.first().map_or("", |rt| rt.name.as_str());
        println!("\nCells are medians over the iterations; {subject}/X ratios are medians of per-iteration paired ratios.");
        if self.bench.uses_wrapper() {
            self.print_wrapper_note();
        }
        let rootfs = &self.bench.bundle().rootfs;
        println!(
            "floor: fork+exec of a static binary (busybox true): {} ms",
            self.probe_median(Probe::Exec)
        );
        println!(
            "floor: unshare --mount --uts --ipc --pid --net --fork chroot {rootfs} /bin/true: {} ms",
            self.probe_median(Probe::Floor)
        );
        let launcher_floor = self
            .rss_median(&Key::Probe(Probe::Exec))
            .map_or(na(), |kib| format!("{kib:.0}"));
        println!("peak RSS is ru_maxrss from a small launcher (fork + exec + wait4); busybox true (static) measures {launcher_floor} KiB that way.");
        let probe_failures = self.bench.failures_of(PROBES);
        if probe_failures > 0 {
            println!("probe commands failed: {probe_failures}");
        }
    }

    fn print_wrapper_note(&self) {
        let overhead = self.overhead.map_or(na(), ms);
        let wrapper_rss = self
            .rss_median(&Key::Probe(Probe::Wrapper))
            .map_or(na(), |kib| format!("{kib:.0}"));
        println!(
            "Wrapped runtimes (crun, which refuses hybrid cgroups) ran every command as \
             `unshare -m sh -c '{HIDE_CGROUP2_SCRIPT}' crun ...`.\n\
             That wrapper costs {overhead} ms per command (median over the iterations of wrapper-on-true minus \
             true, each pair timed back to back); the \"− wrapper\" column and the plain ratios subtract it \
             from every sample once per runtime command (3 times for the lifecycle); \"(raw)\" and \"raw\" include it.\n\
             A wrapped command's peak RSS is the largest of unshare, sh, umount and the runtime; \
             the wrapper on true peaks at {wrapper_rss} KiB."
        );
    }
}

/// Each runtime's medians (raw and unwrapped for a wrapped one), then the
/// first runtime's ratios to each other runtime.
fn columns(runtimes: &[Runtime]) -> Vec<Column<'_>> {
    let mut columns = Vec::new();
    for rt in runtimes {
        columns.push(Column::Median(rt, View::Raw));
        if rt.wrapped {
            columns.push(Column::Median(rt, View::Unwrapped));
        }
    }
    if let Some((subject, others)) = runtimes.split_first() {
        for other in others {
            columns.push(Column::Ratio(subject, other, View::Unwrapped));
            if subject.wrapped || other.wrapped {
                columns.push(Column::Ratio(subject, other, View::Raw));
            }
        }
    }
    columns
}

fn column_title(column: &Column) -> String {
    match column {
        Column::Median(rt, View::Raw) if rt.wrapped => format!("{} (raw)", rt.name),
        Column::Median(rt, View::Raw) => rt.name.clone(),
        Column::Median(rt, View::Unwrapped) => format!("{} − wrapper", rt.name),
        Column::Ratio(subject, other, View::Unwrapped) => {
            format!("{}/{}", subject.name, other.name)
        }
        Column::Ratio(subject, other, View::Raw) => format!("{}/{} raw", subject.name, other.name),
    }
}

fn binary_cell(column: &Column) -> String {
    match column {
        Column::Median(rt, View::Raw) => {
            format!("{} {}", rt.binary.size_kib, rt.binary.linkage.label())
        }
        _ => String::new(),
    }
}

fn print_row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

fn times(ratio: f64) -> String {
    format!("{ratio:.2}×")
}

fn na() -> String {
    "n/a".to_string()
}

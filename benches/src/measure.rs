//! The measurements: interleaved iterations over the runtimes, then peak RSS.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bundle::Bundle;
use crate::launcher;
use crate::process::{self, Failure};
use crate::runtime::{self, Runtime};
use crate::stats::{Key, Metric, Probe, Samples};

/// Failures printed in full per subject; later ones are only counted.
const PRINTED_FAILURES: usize = 3;
/// Failure subject of the probes.
pub const PROBES: &str = "probes";

pub struct Bench<'a> {
    runtimes: &'a [Runtime],
    bundle: &'a Bundle,
    workdir: &'a Path,
    iterations: usize,
    pub samples: Samples,
    /// Peak RSS samples (KiB): `create` per runtime, and the Exec/Wrapper probes.
    pub rss: HashMap<Key, Vec<u64>>,
    failures: HashMap<String, usize>,
    /// Per runtime: the running container that `exec` goes into, once made.
    sleepers: HashMap<String, String>,
    pub elapsed: Duration,
}

impl<'a> Bench<'a> {
    pub fn new(
        runtimes: &'a [Runtime],
        bundle: &'a Bundle,
        workdir: &'a Path,
        iterations: usize,
    ) -> Self {
        Bench {
            runtimes,
            bundle,
            workdir,
            iterations,
            samples: Samples::new(iterations),
            rss: HashMap::new(),
            failures: HashMap::new(),
            sleepers: HashMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn iterations(&self) -> usize {
        self.iterations
    }

    pub fn failures_of(&self, subject: &str) -> usize {
        self.failures.get(subject).copied().unwrap_or(0)
    }

    pub fn failure_count(&self) -> usize {
        self.failures.values().sum()
    }

    /// Whether the crun wrapper is in use, so its overhead is measured.
    pub fn uses_wrapper(&self) -> bool {
        self.runtimes.iter().any(|rt| rt.wrapped)
    }

    pub fn bundle(&self) -> &Bundle {
        self.bundle
    }

    /// All iterations; each phase runs for every runtime, in an order rotated
    /// by the iteration, before the next phase starts.
    pub fn time_all(&mut self) {
        let start = Instant::now();
        let names: Vec<&str> = self.runtimes.iter().map(|rt| rt.name.as_str()).collect();
        eprintln!(
            "lifecycle: {} iterations over {}",
            self.iterations,
            names.join(", ")
        );
        for iteration in 0..self.iterations {
            self.time_iteration(iteration);
        }
        self.elapsed = start.elapsed();
    }

    fn time_iteration(&mut self, iteration: usize) {
        let order = rotated(self.runtimes, iteration);
        for rt in &order {
            self.time_lifecycle(rt, iteration);
        }
        for rt in &order {
            self.time_steps(rt, iteration);
        }
        for rt in &order {
            self.time_version(rt, iteration);
        }
        for rt in &order {
            self.time_run(rt, iteration);
        }
        for rt in &order {
            self.time_exec(rt, iteration);
        }
        for probe in rotated(&self.exec_probes(), iteration) {
            self.time_probe(*probe, iteration);
        }
        self.time_probe(Probe::Floor, iteration);
        process::reap_orphans();
    }

    fn time_lifecycle(&mut self, rt: &Runtime, iteration: usize) {
        let id = container_id(rt, "life", iteration);
        match self.lifecycle(rt, &id) {
            Ok((total, create)) => {
                self.record(rt, Metric::Lifecycle, iteration, total);
                self.record(rt, Metric::Create, iteration, create);
            }
            Err(failure) => self.fail(rt, Metric::Lifecycle, iteration, failure, &id),
        }
    }

    /// create + start + wait for exit + delete; also returns the create's time.
    fn lifecycle(&self, rt: &Runtime, id: &str) -> Result<(Duration, Duration), Failure> {
        let start = Instant::now();
        let (create, pid) = rt.create(&self.bundle.dir, id)?;
        rt.run(&["start", id])?;
        rt.await_exit(pid)?;
        rt.run(&["delete", id])?;
        Ok((start.elapsed(), create))
    }

    fn time_steps(&mut self, rt: &Runtime, iteration: usize) {
        let id = container_id(rt, "step", iteration);
        if let Err((metric, failure)) = self.steps(rt, &id, iteration) {
            self.fail(rt, metric, iteration, failure, &id);
        }
    }

    /// On one container: `state` once created, `start`, then (after the exit)
    /// `delete`, each timed alone. Errors carry the phase they spoil.
    fn steps(&mut self, rt: &Runtime, id: &str, iteration: usize) -> Result<(), (Metric, Failure)> {
        let during = |metric: Metric| move |failure: Failure| (metric, failure);
        let (_, pid) = rt
            .create(&self.bundle.dir, id)
            .map_err(during(Metric::State))?;
        let state = rt.run(&["state", id]).map_err(during(Metric::State))?;
        self.record(rt, Metric::State, iteration, state);
        let start = rt.run(&["start", id]).map_err(during(Metric::Start))?;
        self.record(rt, Metric::Start, iteration, start);
        rt.await_exit(pid).map_err(during(Metric::Delete))?;
        let delete = rt.run(&["delete", id]).map_err(during(Metric::Delete))?;
        self.record(rt, Metric::Delete, iteration, delete);
        Ok(())
    }

    fn time_version(&mut self, rt: &Runtime, iteration: usize) {
        match rt.run(&["--version"]) {
            Ok(elapsed) => self.record(rt, Metric::Version, iteration, elapsed),
            Err(failure) => {
                self.note_failure(&rt.name, Metric::Version.label(), iteration, &failure)
            }
        }
    }

    /// `run` in the foreground: returns once the container has exited.
    fn time_run(&mut self, rt: &Runtime, iteration: usize) {
        let bundle = self.bundle;
        let id = container_id(rt, "run", iteration);
        match rt.run(&["run", "--bundle", &bundle.dir, &id]) {
            Ok(elapsed) => self.record(rt, Metric::Run, iteration, elapsed),
            Err(failure) => self.fail(rt, Metric::Run, iteration, failure, &id),
        }
    }

    /// `exec ID /bin/true`, not detached: the runtime returns once `true`
    /// has exited. The container (sleeping) is made on first use and
    /// removed with the leftovers at the end.
    fn time_exec(&mut self, rt: &Runtime, iteration: usize) {
        let id = match self.sleeper(rt) {
            Ok(id) => id,
            Err(failure) => {
                return self.note_failure(&rt.name, Metric::Exec.label(), iteration, &failure)
            }
        };
        match rt.run(&["exec", &id, "/bin/true"]) {
            Ok(elapsed) => self.record(rt, Metric::Exec, iteration, elapsed),
            Err(failure) => self.note_failure(&rt.name, Metric::Exec.label(), iteration, &failure),
        }
    }

    fn sleeper(&mut self, rt: &Runtime) -> Result<String, Failure> {
        if let Some(id) = self.sleepers.get(&rt.name) {
            return Ok(id.clone());
        }
        let id = container_id(rt, "exec", 0);
        let started = rt
            .create(&self.bundle.sleeper_dir, &id)
            .and_then(|_| rt.run(&["start", &id]));
        if let Err(failure) = started {
            rt.force_delete(&id);
            return Err(failure);
        }
        self.sleepers.insert(rt.name.clone(), id.clone());
        Ok(id)
    }

    /// `true` alone, and through the wrapper if one is in use: timed back to
    /// back, their difference is the wrapper's cost.
    fn exec_probes(&self) -> Vec<Probe> {
        if self.uses_wrapper() {
            vec![Probe::Exec, Probe::Wrapper]
        } else {
            vec![Probe::Exec]
        }
    }

    fn probe_argv(&self, probe: Probe) -> Vec<String> {
        let static_true = format!("{}/bin/true", self.bundle.rootfs);
        match probe {
            Probe::Exec => vec![static_true],
            Probe::Wrapper => runtime::wrapped_argv(&static_true, &[]),
            Probe::Floor => [
                "unshare", "--mount", "--uts", "--ipc", "--pid", "--net", "--fork", "chroot",
            ]
            .into_iter()
            .chain([self.bundle.rootfs.as_str(), "/bin/true"])
            .map(str::to_string)
            .collect(),
        }
    }

    fn time_probe(&mut self, probe: Probe, iteration: usize) {
        match process::timed_run(&self.probe_argv(probe), &self.probe_log()) {
            Ok(elapsed) => self.samples.record(Key::Probe(probe), iteration, elapsed),
            Err(failure) => self.note_failure(PROBES, &format!("{probe:?}"), iteration, &failure),
        }
    }

    /// Peak RSS of `create` per runtime (and of the Exec/Wrapper probes),
    /// each through the small launcher.
    pub fn measure_rss(&mut self, samples: usize) {
        for sample in 0..samples {
            for rt in rotated(self.runtimes, sample) {
                self.rss_of_create(rt, sample);
            }
            for probe in self.exec_probes() {
                self.rss_of_probe(probe, sample);
            }
            process::reap_orphans();
        }
    }

    fn rss_of_create(&mut self, rt: &Runtime, sample: usize) {
        let id = container_id(rt, "rss", sample);
        let result = rt.peak_rss(&Runtime::create_args(self.bundle, &id), &self.rss_report());
        rt.force_delete(&id);
        match result {
            Ok(kib) => self
                .rss
                .entry(Key::Runtime(rt.name.clone(), Metric::Create))
                .or_default()
                .push(kib),
            Err(failure) => self.note_failure(&rt.name, "peak RSS of create", sample, &failure),
        }
    }

    fn rss_of_probe(&mut self, probe: Probe, sample: usize) {
        match launcher::peak_rss(
            &self.probe_argv(probe),
            &self.rss_report(),
            &self.probe_log(),
        ) {
            Ok(kib) => self.rss.entry(Key::Probe(probe)).or_default().push(kib),
            Err(failure) => {
                self.note_failure(PROBES, &format!("peak RSS of {probe:?}"), sample, &failure)
            }
        }
    }

    /// `delete --force` whatever a runtime still lists.
    pub fn sweep_leftovers(&self) {
        for rt in self.runtimes {
            match rt.list() {
                Ok(ids) => {
                    for id in ids {
                        eprintln!("lifecycle: {}: deleting leftover container {id}", rt.name);
                        rt.force_delete(&id);
                    }
                }
                Err(failure) => {
                    eprintln!("lifecycle: {}: cannot list leftovers: {failure}", rt.name)
                }
            }
        }
        process::reap_orphans();
    }

    fn record(&mut self, rt: &Runtime, metric: Metric, iteration: usize, elapsed: Duration) {
        self.samples
            .record(Key::Runtime(rt.name.clone(), metric), iteration, elapsed);
    }

    /// Counts and reports a failure, then removes the container if it is left.
    fn fail(&mut self, rt: &Runtime, metric: Metric, iteration: usize, failure: Failure, id: &str) {
        self.note_failure(&rt.name, metric.label(), iteration, &failure);
        rt.force_delete(id);
    }

    fn note_failure(&mut self, subject: &str, what: &str, iteration: usize, failure: &Failure) {
        let count = self.failures.entry(subject.to_string()).or_default();
        *count += 1;
        if *count <= PRINTED_FAILURES {
            eprintln!("lifecycle: {subject}: {what} failed (iteration {iteration}): {failure}");
        }
        if *count == PRINTED_FAILURES {
            eprintln!("lifecycle: {subject}: further failures are only counted");
        }
    }

    fn probe_log(&self) -> PathBuf {
        self.workdir.join("probes-stderr.log")
    }

    fn rss_report(&self) -> PathBuf {
        self.workdir.join("rss-report")
    }
}

/// Unique per benchmark process, runtime, phase and iteration.
fn container_id(rt: &Runtime, phase: &str, iteration: usize) -> String {
    format!("bench{}-{}-{phase}{iteration}", std::process::id(), rt.name)
}

/// `items` starting at position `by` (mod len), wrapping around.
fn rotated<T>(items: &[T], by: usize) -> Vec<&T> {
    if items.is_empty() {
        return Vec::new();
    }
    items
        .iter()
        .cycle()
        .skip(by % items.len())
        .take(items.len())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rotated;

    #[test]
    fn rotation_starts_at_the_iteration() {
        let items = ["a", "b", "c"];
        assert_eq!(rotated(&items, 0), [&"a", &"b", &"c"]);
        assert_eq!(rotated(&items, 4), [&"b", &"c", &"a"]);
        assert!(rotated::<u8>(&[], 3).is_empty());
    }
}

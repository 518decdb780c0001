//! Samples per iteration, medians and paired ratios.

use std::collections::HashMap;
use std::time::Duration;

/// What is timed for each runtime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Metric {
    /// create + start + wait for exit + delete
    Lifecycle,
    /// the `create` inside the lifecycle
    Create,
    State,
    Start,
    Delete,
    Version,
    Run,
    /// `exec` of `true` into a running container, until it has exited
    Exec,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Lifecycle,
        Metric::Create,
        Metric::State,
        Metric::Start,
        Metric::Delete,
        Metric::Version,
        Metric::Run,
        Metric::Exec,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Metric::Lifecycle => "lifecycle: create + start + exit + delete",
            Metric::Create => "create (within the lifecycle)",
            Metric::State => "state (created container)",
            Metric::Start => "start",
            Metric::Delete => "delete (stopped container)",
            Metric::Version => "--version (fixed cost of a command)",
            Metric::Run => "run (foreground, until exit)",
            Metric::Exec => "exec `true` (running container, until exit)",
        }
    }

    /// Runtime commands in the measured span (each pays a wrapper's cost).
    pub fn commands(self) -> f64 {
        match self {
            Metric::Lifecycle => 3.0,
            _ => 1.0,
        }
    }
}

/// Reference timings that involve no runtime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Probe {
    /// fork+exec of the static busybox `true`
    Exec,
    /// the crun wrapper exec'ing the same `true`
    Wrapper,
    /// `unshare --mount --uts --ipc --pid --net --fork chroot ROOTFS /bin/true`
    Floor,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Key {
    Runtime(String, Metric),
    Probe(Probe),
}

/// Milliseconds per iteration; `None` where the measurement failed.
pub type Series = Vec<Option<f64>>;

pub struct Samples {
    iterations: usize,
    series: HashMap<Key, Series>,
}

impl Samples {
    pub fn new(iterations: usize) -> Self {
        Samples {
            iterations,
            series: HashMap::new(),
        }
    }

    pub fn record(&mut self, key: Key, iteration: usize, elapsed: Duration) {
        let iterations = self.iterations;
        let series = self
            .series
            .entry(key)
            .or_insert_with(|| vec![None; iterations]);
        if let Some(slot) = series.get_mut(iteration) {
            *slot = Some(elapsed.as_secs_f64() * 1000.0);
        }
    }

    /// All `None` if nothing was recorded.
    pub fn series(&self, key: &Key) -> Series {
        self.series
            .get(key)
            .cloned()
            .unwrap_or_else(|| vec![None; self.iterations])
    }
}

pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values
        .into_iter()
        .filter(|value| value.is_finite())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

pub fn median_of(series: &Series) -> Option<f64> {
    median(series.iter().flatten().copied())
}

/// Median over the iterations where both have a sample of `a[i] / b[i]`.
pub fn paired_ratio(a: &Series, b: &Series) -> Option<f64> {
    median(a.iter().zip(b).filter_map(|pair| match pair {
        (Some(a), Some(b)) if *b > 0.0 => Some(a / b),
        _ => None,
    }))
}

/// `a[i] - b[i]` where both exist.
pub fn paired_difference(a: &Series, b: &Series) -> Series {
    a.iter()
        .zip(b)
        .map(|pair| match pair {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        })
        .collect()
}

/// `raw[i] - times * overhead`, dropped where it is not positive (noise).
pub fn subtract_overhead(raw: &Series, overhead: f64, times: f64) -> Series {
    raw.iter()
        .map(|raw| {
            raw.map(|raw| raw - times * overhead)
                .filter(|value| *value > 0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
    }

    #[test]
    fn paired_ratio_skips_missing_pairs() {
        let a = vec![Some(2.0), None, Some(9.0), Some(3.0)];
        let b = vec![Some(1.0), Some(5.0), Some(3.0), None];
        assert_eq!(paired_ratio(&a, &b), Some(2.5));
    }

    #[test]
    fn overhead_is_subtracted_per_command() {
        let raw = vec![Some(10.0), Some(6.0), None];
        assert_eq!(
            subtract_overhead(&raw, 2.0, 3.0),
            vec![Some(4.0), None, None]
        );
    }
}

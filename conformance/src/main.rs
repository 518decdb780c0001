//! The conformance runner:
//! `conformance --runtime PATH [--filter RE] [--list] [--diff PATH2] [--keep]`.
//!
//! Prints `ok NAME` / `not ok NAME: REASON` / `skip NAME: REASON` per test and
//! a last line `N passed, M failed[, K skipped]`; with `--diff`, one line per
//! test saying whether the two runtimes' observations agree.

use conformance::suite::{self, Failure, Test};
use conformance::{probe_binary, procinfo, Runtime};
use regex::Regex;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: conformance --runtime PATH [--filter REGEX] [--list] [--spec-table] [--diff PATH2] [--report FILE] [--must-pass REPORT] [--timeout SECS] [--keep]";

struct Options {
    runtime: Option<PathBuf>,
    diff: Option<PathBuf>,
    filter: Option<Regex>,
    list: bool,
    spec_table: bool,
    keep: bool,
    /// Where to write a JSON report of the run.
    report: Option<PathBuf>,
    /// A report whose passing tests must pass again.
    must_pass: Option<PathBuf>,
    /// Time limit of each runtime command.
    timeout: Duration,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode, String> {
    let opts = parse_args(std::env::args().skip(1))?;
    let tests: Vec<Test> = suite::all()
        .into_iter()
        .filter(|t| opts.filter.as_ref().is_none_or(|re| re.is_match(t.name)))
        .collect();
    if opts.list {
        tests.iter().for_each(|t| println!("{}", t.name));
        return Ok(ExitCode::SUCCESS);
    }
    if opts.spec_table {
        print_spec_table(&tests);
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = resolve_executable(opts.runtime.as_deref().ok_or(USAGE)?)?;
    let other = opts.diff.as_deref().map(resolve_executable).transpose()?;
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the suite creates namespaces, cgroups and mounts: run it as root".into());
    }
    let probe = probe_binary()?;
    let run = RunDir::create(opts.timeout)?;
    let started = Instant::now();
    let failed = match &other {
        None => run_suite(&tests, &runtime, &probe, &run, &opts)?,
        Some(other) => diff_suite(&tests, &runtime, other, &probe, &run),
    };
    eprintln!(
        "# {} tests in {:.1}s",
        tests.len(),
        started.elapsed().as_secs_f64()
    );
    if opts.keep {
        eprintln!("# kept {}", run.path.display());
    } else {
        run.remove();
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        runtime: None,
        diff: None,
        filter: None,
        list: false,
        spec_table: false,
        keep: false,
        report: None,
        must_pass: None,
        timeout: Duration::from_secs(10),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--runtime" => opts.runtime = Some(PathBuf::from(value("--runtime")?)),
            "--diff" => opts.diff = Some(PathBuf::from(value("--diff")?)),
            "--filter" => {
                opts.filter = Some(
                    Regex::new(&value("--filter")?).map_err(|e| format!("bad --filter: {e}"))?,
                )
            }
            "--timeout" => {
                let secs = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("bad --timeout: {e}"))?;
                opts.timeout = Duration::from_secs(secs);
            }
            "--report" => opts.report = Some(PathBuf::from(value("--report")?)),
            "--must-pass" => opts.must_pass = Some(PathBuf::from(value("--must-pass")?)),
            "--list" => opts.list = true,
            "--spec-table" => opts.spec_table = true,
            "--keep" => opts.keep = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(opts)
}

/// An absolute path for the runtime: tests run it from bundle directories,
/// so a relative path or a bare name must be resolved first.
fn resolve_executable(path: &Path) -> Result<PathBuf, String> {
    let found = if path.components().count() > 1 || path.is_absolute() {
        std::path::absolute(path).ok()
    } else {
        std::env::var_os("PATH").and_then(|dirs| {
            std::env::split_paths(&dirs)
                .map(|d| d.join(path))
                .find(|p| p.is_file())
        })
    };
    match found {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(format!("runtime {} not found", path.display())),
    }
}

fn print_spec_table(tests: &[Test]) {
    println!("| test | spec rule |\n| --- | --- |");
    for t in tests {
        println!("| `{}` | {} |", t.name, t.spec.replace('|', "\\|"));
    }
}

/// A private directory for one run: bundles, state roots, scratch files.
struct RunDir {
    path: PathBuf,
    tag: String,
    timeout: Duration,
}

impl RunDir {
    fn create(timeout: Duration) -> Result<RunDir, String> {
        let tag = format!("cf{}", std::process::id());
        let path = std::env::temp_dir().join(format!("conformance-{}", std::process::id()));
        fs::create_dir_all(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        // Containers with user namespaces run as unprivileged host ids and
        // must be able to reach their bundles.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        Ok(RunDir { path, tag, timeout })
    }

    /// Unmounts anything left under the run directory, then deletes it; the
    /// unmount first keeps the removal from walking into a mounted host dir.
    fn remove(&self) {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = procinfo::parse_mountinfo(&text)
            .iter()
            .filter_map(|m| m["mount_point"].as_str().map(String::from))
            .filter(|p| Path::new(p).starts_with(&self.path))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        points
            .iter()
            .for_each(|p| conformance::host::umount(Path::new(p)));
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// What one test produced against one runtime.
struct Outcome {
    verdict: Result<(), Failure>,
    observations: Value,
}

fn run_one(
    test: &Test,
    index: usize,
    runtime: &Path,
    label: &str,
    probe: &Path,
    run: &RunDir,
) -> Outcome {
    let dir = run.path.join(format!("{index:03}{label}"));
    if let Err(e) = fs::create_dir_all(&dir)
        .and_then(|_| fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)))
    {
        return Outcome {
            verdict: Err(Failure::Fail(format!("mkdir {}: {e}", dir.display()))),
            observations: Value::Null,
        };
    }
    let rt = Runtime::new(runtime)
        .root(run.path.join(format!("root{label}")))
        .timeout(run.timeout);
    let prefix = format!("{}-{index}{label}", run.tag);
    let (verdict, observed) = suite::run_test(test, rt, probe, &dir, &prefix);
    let replacements = [
        (&*dir.to_string_lossy(), "<testdir>"),
        (&run.path.to_string_lossy(), "<dir>"),
        (&prefix, "<id>"),
        (&probe.to_string_lossy(), "<probe>"),
    ];
    Outcome {
        verdict,
        observations: sanitize(observed, &replacements),
    }
}

/// Runs every test against one runtime and prints a line per test. With a
/// reference report (`--must-pass`), only tests that passed there and fail
/// here make the run fail; without one, any failure does.
fn run_suite(
    tests: &[Test],
    runtime: &Path,
    probe: &Path,
    run: &RunDir,
    opts: &Options,
) -> Result<bool, String> {
    let must_pass = opts
        .must_pass
        .as_deref()
        .map(passed_in_report)
        .transpose()?;
    let (mut passed, mut failed, mut skipped, mut regressions) = (0, 0, 0, 0);
    let mut records = Vec::new();
    for (i, test) in tests.iter().enumerate() {
        let outcome = run_one(test, i, runtime, "", probe, run);
        let required = must_pass
            .as_ref()
            .is_some_and(|names| names.contains(test.name));
        match &outcome.verdict {
            Ok(()) => {
                passed += 1;
                println!("ok {}", test.name);
            }
            Err(Failure::Fail(why)) => {
                failed += 1;
                regressions += usize::from(required);
                let note = if required {
                    " (passes in the reference)"
                } else {
                    ""
                };
                println!("not ok {}: {}{note}", test.name, one_line(why));
            }
            Err(Failure::Skip(why)) => {
                skipped += 1;
                println!("skip {}: {}", test.name, one_line(why));
            }
        }
        records.push(report_entry(test, &outcome));
    }
    if let Some(path) = &opts.report {
        write_report(path, runtime, &records)?;
    }
    if let Some(reference) = &opts.must_pass {
        println!(
            "# {regressions} tests pass in {} but not here",
            reference.display()
        );
    }
    let skipped_text = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    println!("{passed} passed, {failed} failed{skipped_text}");
    Ok(if must_pass.is_some() {
        regressions > 0
    } else {
        failed > 0
    })
}

fn report_entry(test: &Test, o: &Outcome) -> Value {
    let reason = match &o.verdict {
        Ok(()) => None,
        Err(Failure::Fail(why) | Failure::Skip(why)) => Some(one_line(why)),
    };
    json!({"name": test.name, "verdict": verdict_word(o), "reason": reason, "observed": o.observations})
}

/// `--report FILE`: every test's verdict, reason and observations as JSON.
fn write_report(path: &Path, runtime: &Path, records: &[Value]) -> Result<(), String> {
    let report = json!({"runtime": runtime.display().to_string(), "tests": records});
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The names of the tests a `--report` file records as passed.
fn passed_in_report(path: &Path) -> Result<std::collections::HashSet<String>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let report: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a report: {e}", path.display()))?;
    let tests = report["tests"]
        .as_array()
        .ok_or_else(|| format!("{} has no tests", path.display()))?;
    Ok(tests
        .iter()
        .filter(|t| t["verdict"] == "ok")
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect())
}

fn diff_suite(tests: &[Test], a: &Path, b: &Path, probe: &Path, run: &RunDir) -> bool {
    let (mut same, mut differ) = (0, 0);
    for (i, test) in tests.iter().enumerate() {
        let first = run_one(test, i, a, "a", probe, run);
        let second = run_one(test, i, b, "b", probe, run);
        let (va, vb) = (record(&first), record(&second));
        let verdicts = format!(
            "({}: {}, {}: {})",
            short_name(a),
            verdict_word(&first),
            short_name(b),
            verdict_word(&second)
        );
        let mut diffs = Vec::new();
        json_diff("", &va, &vb, &mut diffs);
        if diffs.is_empty() {
            same += 1;
            println!("same {} {verdicts}", test.name);
        } else {
            differ += 1;
            println!("differ {} {verdicts}", test.name);
            diffs.iter().take(8).for_each(|d| println!("    {d}"));
        }
    }
    println!("{same} same, {differ} differ");
    differ > 0
}

/// The observations plus the kind of verdict, so that a test one runtime
/// passes and the other fails never counts as the same behaviour.
fn record(o: &Outcome) -> Value {
    json!({"verdict": verdict_word(o), "observed": o.observations})
}

fn verdict_word(o: &Outcome) -> &'static str {
    match o.verdict {
        Ok(()) => "ok",
        Err(Failure::Fail(_)) => "not ok",
        Err(Failure::Skip(_)) => "skip",
    }
}

/// Lists `pointer: a vs b` for every leaf where two JSON values differ.
fn json_diff(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                json_diff(&format!("{at}/{k}"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!(
            "{}: {} vs {}",
            if at.is_empty() { "/" } else { at },
            short(a),
            short(b)
        )),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// Replaces run-specific strings so observations compare across runs.
fn sanitize(v: Value, replacements: &[(&str, &str)]) -> Value {
    match v {
        Value::String(s) => {
            let mut s = s;
            for (from, to) in replacements {
                if !from.is_empty() {
                    s = s.replace(from, to);
                }
            }
            Value::String(s)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| sanitize(i, replacements))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, sanitize(v, replacements)))
                .collect(),
        ),
        other => other,
    }
}

fn short_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

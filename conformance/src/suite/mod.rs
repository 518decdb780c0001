//! The conformance tests and the context they run in.
//!
//! A test is a function of a [`Ctx`]: it builds bundles, drives the runtime,
//! records what it saw with [`Ctx::observe`] (compared across runtimes by
//! `--diff`) and returns its verdict. Everything a test creates is cleaned up
//! when its context is dropped, whatever the verdict.

mod cgroups;
mod cli;
mod hooks;
mod lifecycle;
mod linux;
mod mounts;
mod namespaces;
mod process;

use crate::bundle::Bundle;
use crate::host::{self, NsHolder};
use crate::procinfo;
use crate::runtime::{Call, Output, Runtime};
use serde_json::{Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a test did not pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Fail(String),
    /// The test cannot run on this host (missing kernel feature, tool...).
    Skip(String),
}

impl From<String> for Failure {
    fn from(reason: String) -> Failure {
        Failure::Fail(reason)
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Failure {
        Failure::Fail(reason.to_string())
    }
}

pub type TestResult = Result<(), Failure>;

/// One conformance test.
pub struct Test {
    /// `area.what`, e.g. `lifecycle.start_twice_errors`.
    pub name: &'static str,
    /// The spec section and rule the test checks.
    pub spec: &'static str,
    pub run: fn(&mut Ctx) -> TestResult,
}

/// Every test, in the order they run.
pub fn all() -> Vec<Test> {
    let mut tests = Vec::new();
    tests.extend(lifecycle::tests());
    tests.extend(hooks::tests());
    tests.extend(process::tests());
    tests.extend(mounts::tests());
    tests.extend(namespaces::tests());
    tests.extend(linux::tests());
    tests.extend(cgroups::tests());
    tests.extend(cli::tests());
    tests
}

/// Runs one test in a fresh context, which is dropped (so everything is
/// cleaned up) before this returns; `dir` must exist and be private to the
/// test. Returns the verdict and what the test observed.
pub fn run_test(
    test: &Test,
    runtime: Runtime,
    probe: &Path,
    dir: &Path,
    id_prefix: &str,
) -> (TestResult, Value) {
    let mut ctx = Ctx::new(runtime, probe, dir, id_prefix);
    let verdict = (test.run)(&mut ctx);
    (verdict, ctx.observations())
}

/// Skips the test with a reason.
pub fn skip(reason: impl Into<String>) -> Failure {
    Failure::Skip(reason.into())
}

/// Fails with `msg` unless `cond` holds.
pub fn ensure(cond: bool, msg: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg.into())
    }
}

/// Fails unless `actual == expected`, naming what was compared.
pub fn expect_eq(what: &str, expected: &Value, actual: &Value) -> Result<(), String> {
    ensure(
        expected == actual,
        format!("{what}: expected {expected}, got {actual}"),
    )
}

/// The command must have succeeded.
pub fn expect_ok(out: &Output, what: &str) -> Result<(), String> {
    ensure(out.success(), format!("{what} failed: {}", out.describe()))
}

/// The command must have failed (the spec says "MUST generate an error").
pub fn expect_error(out: &Output, what: &str) -> Result<(), String> {
    if out.error.is_some() {
        return Err(format!("{what}: {}", out.describe()));
    }
    ensure(
        !out.success(),
        format!("{what} succeeded, but the spec requires an error"),
    )
}

/// The last line of `text` that is a JSON value (the probe prints one line;
/// a terminal adds \r, a runtime may print warnings before it).
pub fn last_json(text: &str) -> Option<Value> {
    text.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l.trim())
            .ok()
            .filter(|v| !v.is_string())
    })
}

/// Everything one test uses; cleans up after it when dropped.
pub struct Ctx {
    pub runtime: Runtime,
    pub probe: PathBuf,
    dir: PathBuf,
    id_prefix: String,
    seq: u32,
    ids: Vec<String>,
    mounts: Vec<PathBuf>,
    cgroups: Vec<String>,
    holders: Vec<NsHolder>,
    observations: Map<String, Value>,
}

impl Ctx {
    /// `dir` must exist and be private to this test; `id_prefix` makes
    /// container ids unique across runs and runtimes.
    pub fn new(runtime: Runtime, probe: &Path, dir: &Path, id_prefix: &str) -> Ctx {
        Ctx {
            runtime,
            probe: probe.to_path_buf(),
            dir: dir.to_path_buf(),
            id_prefix: id_prefix.to_string(),
            seq: 0,
            ids: Vec::new(),
            mounts: Vec::new(),
            cgroups: Vec::new(),
            holders: Vec::new(),
            observations: Map::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records a fact for `--diff`; keep it free of pids, inodes and paths.
    pub fn observe(&mut self, key: &str, value: Value) {
        self.observations.insert(key.to_string(), value);
    }

    pub fn observations(&self) -> Value {
        Value::Object(self.observations.clone())
    }

    /// A fresh container id, deleted with --force when the test ends.
    pub fn new_id(&mut self) -> String {
        self.seq += 1;
        let id = format!("{}-{}", self.id_prefix, self.seq);
        self.ids.push(id.clone());
        id
    }

    /// A fresh directory inside the test's directory.
    pub fn scratch(&mut self, name: &str) -> Result<PathBuf, String> {
        self.seq += 1;
        let path = self.dir.join(format!("{name}{}", self.seq));
        fs::create_dir_all(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        Ok(path)
    }

    /// A busybox bundle with the probe at /probe.
    pub fn bundle(&mut self) -> Result<Bundle, String> {
        let dir = self.scratch("bundle")?;
        Bundle::busybox(&dir)
            .and_then(|b| b.with_probe(&self.probe))
            .map_err(|e| format!("building bundle in {}: {e}", dir.display()))
    }

    /// Runs the probe in the foreground in `bundle` and returns its JSON.
    pub fn probe_in(&mut self, bundle: &mut Bundle, args: &[&str]) -> Result<Value, String> {
        self.probe_in_call(bundle, args, Call::default())
    }

    /// `probe_in` with settings for the runtime process (umask, oom score).
    pub fn probe_in_call(
        &mut self,
        bundle: &mut Bundle,
        args: &[&str],
        call: Call,
    ) -> Result<Value, String> {
        bundle.probe_args(args);
        let id = self.new_id();
        let out = self.runtime.bundle_command("run", bundle, &id, &[], call);
        match last_json(&out.stdout) {
            Some(v) if out.success() => Ok(v),
            _ => Err(format!(
                "run {args:?}: {}{}",
                out.describe(),
                stdout_hint(&out)
            )),
        }
    }

    /// Builds a bundle, lets `edit` change its config, and runs the probe.
    pub fn probe_with(
        &mut self,
        edit: impl FnOnce(&mut Bundle),
        args: &[&str],
    ) -> Result<Value, String> {
        let mut bundle = self.bundle()?;
        edit(&mut bundle);
        self.probe_in(&mut bundle, args)
    }

    /// `create`; returns the id, or the failure with the runtime's words.
    pub fn create(&mut self, bundle: &Bundle) -> Result<String, String> {
        let id = self.new_id();
        let out = self.runtime.create(bundle, &id);
        expect_ok(&out, "create")?;
        Ok(id)
    }

    /// `create` then `start`.
    pub fn create_started(&mut self, bundle: &Bundle) -> Result<String, String> {
        let id = self.create(bundle)?;
        expect_ok(&self.runtime.start(&id), "start")?;
        Ok(id)
    }

    /// A container whose process waits for a signal (running after start).
    /// Returns once the probe has installed its signal handlers.
    pub fn waiting_container(&mut self, bundle: &mut Bundle) -> Result<String, String> {
        bundle.probe_args(&["wait-signal", "60"]);
        let id = self.create_started(bundle)?;
        self.wait_for_handlers(&id)?;
        Ok(id)
    }

    /// Waits until the container process catches signals (SigCgt is set), so
    /// that a signal sent next is not lost to the default action.
    pub fn wait_for_handlers(&self, id: &str) -> Result<(), String> {
        let pid = self.pid(id)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let status = host::proc_status(pid).ok();
            let caught = status.and_then(|s| procinfo::status_mask(&s, "SigCgt"));
            if caught.is_some_and(|m| m != 0) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(format!(
            "the container process {pid} never installed its signal handlers"
        ))
    }

    pub fn state(&self, id: &str) -> Result<Value, String> {
        self.runtime.state_json(id)
    }

    /// The container's pid as the state reports it.
    pub fn pid(&self, id: &str) -> Result<u32, String> {
        let state = self.state(id)?;
        state["pid"]
            .as_u64()
            .filter(|p| *p > 0)
            .map(|p| p as u32)
            .ok_or_else(|| format!("state has no valid pid: {state}"))
    }

    pub fn wait_stopped(&self, id: &str) -> Result<Value, String> {
        self.runtime
            .wait_status(id, "stopped", Duration::from_secs(20))
    }

    /// The probe output a created container wrote to its stdout.
    pub fn container_output(&self, bundle: &Bundle) -> Result<Value, String> {
        let path = bundle.dir.join("stdout");
        let text =
            fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        last_json(&text).ok_or_else(|| format!("container printed no JSON: {:?}", text.trim()))
    }

    /// A host process in new namespaces (unshare(1) flags); killed at the end.
    pub fn holder(&mut self, flags: &[&str]) -> Result<&NsHolder, String> {
        let h = NsHolder::spawn(flags)?;
        self.holders.push(h);
        self.holders
            .last()
            .ok_or_else(|| "holder vanished".to_string())
    }

    /// Mounts on the host; unmounted when the test ends.
    pub fn host_mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: libc::c_ulong,
        data: &str,
    ) -> Result<(), String> {
        host::mount(source, target, fstype, flags, data)?;
        self.mounts.push(target.to_path_buf());
        Ok(())
    }

    /// A cgroup path (relative to each hierarchy) to remove when the test ends.
    pub fn cgroup_path(&mut self, name: &str) -> String {
        let path = format!("/{}-{name}", self.id_prefix);
        self.cgroups.push(path.clone());
        path
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for id in self.ids.iter().rev() {
            let _ = self.runtime.delete_force(id);
        }
        self.holders.clear();
        for m in self.mounts.iter().rev() {
            host::umount(m);
        }
        // Also the cgroups a runtime names after the id by default, in case
        // it failed to remove them (rmdir only removes empty cgroups).
        let by_id = self.ids.iter().map(|id| format!("/{id}"));
        for cg in self.cgroups.iter().cloned().chain(by_id) {
            remove_cgroup_everywhere(&cg);
        }
    }
}

/// Removes a cgroup directory (and empty children) from every hierarchy.
fn remove_cgroup_everywhere(path: &str) {
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    // A relative cgroupsPath lands under this process's own cgroup, and a
    // runtime may leave the parents it made there (runc 1.1 does).
    roots.extend(own_cgroup_dirs());
    for root in roots {
        remove_tree(&root.join(path.trim_start_matches('/')));
    }
}

/// This process's own cgroup directory in each mounted hierarchy, where
/// relative cgroupsPaths land.
fn own_cgroup_dirs() -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/cgroup") else {
        return Vec::new();
    };
    procinfo::parse_cgroup(&text)
        .into_iter()
        .filter_map(|line| {
            let controller = if line["hierarchy"] == "0" {
                String::new()
            } else {
                line["controllers"]
                    .as_array()?
                    .first()?
                    .as_str()?
                    .to_string()
            };
            let own = line["path"].as_str()?.trim_start_matches('/').to_string();
            (!own.is_empty()).then(|| host::cgroup_mount(&controller).map(|m| m.join(own)))?
        })
        .collect()
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

fn stdout_hint(out: &Output) -> String {
    let text = out.stdout.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(" (stdout: {})", text.chars().take(300).collect::<String>())
    }
}

//! What every test uses: the per-test context (a private `--root`, a JSON
//! `--log`, a temp dir, unique container ids and a cleanup that always runs),
//! bundles made from `husk spec`, checks of husk's error reports, and the
//! host-side observations that prove nothing was left behind.
//!
//! Bundles, the runtime driver (time limits, output captured through files),
//! the console-socket receiver and the /proc parsers come from the
//! `conformance` crate; this module only adds what husk's own tests need.

pub use conformance::runtime::{Call, Output};
pub use conformance::{Bundle, Runtime};

use conformance::host;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Time limit for one husk command (a create that hangs must not hang the run).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// Environment marker put on hooks and container processes by tests that
/// check that no process survives them.
pub const MARK: &str = "HUSK_TEST_MARK";

// ------------------------------------------------------------------ verdicts

/// Why a test did not pass.
#[derive(Debug, Clone)]
pub enum Outcome {
    Fail(String),
    /// The host cannot run the test (missing tool or kernel feature).
    Skip(String),
}

impl From<String> for Outcome {
    fn from(reason: String) -> Outcome {
        Outcome::Fail(reason)
    }
}

impl From<&str> for Outcome {
    fn from(reason: &str) -> Outcome {
        Outcome::Fail(reason.to_string())
    }
}

pub type TestResult = Result<(), Outcome>;

pub fn skip(reason: impl Into<String>) -> Outcome {
    Outcome::Skip(reason.into())
}

pub struct Test {
    pub name: &'static str,
    pub run: fn(&mut Ctx) -> TestResult,
}

/// `Err(msg)` unless `cond`.
pub fn ensure(cond: bool, msg: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg.into())
    }
}

/// Fails with every message of `problems`, or passes when there are none.
pub fn all_ok(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

pub fn expect_ok(out: &Output, what: &str) -> Result<(), String> {
    ensure(out.success(), format!("{what} failed: {}", describe(out)))
}

/// The runtime's account of a command, with all of its stderr.
pub fn describe(out: &Output) -> String {
    let status = match (&out.error, out.code, out.signal) {
        (Some(e), _, _) => e.clone(),
        (None, Some(c), _) => format!("exit status {c}"),
        (None, None, Some(s)) => format!("killed by signal {s}"),
        _ => "no status".into(),
    };
    let err = out.stderr.trim();
    if err.is_empty() {
        status
    } else {
        format!("{status}, stderr: {err}")
    }
}

/// Whether `text` contains one of the `|`-separated alternatives of `needle`,
/// ignoring case.
pub fn contains_any(text: &str, needle: &str) -> bool {
    let text = text.to_lowercase();
    needle
        .split('|')
        .any(|alt| text.contains(&alt.to_lowercase()))
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}

/// Splits probe output made of `== name` headers into sections.
pub fn sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("== ") {
            current = name.trim().to_string();
            map.entry(current.clone()).or_default();
        } else {
            map.entry(current.clone())
                .or_default()
                .push(line.to_string());
        }
    }
    map
}

/// One section of `sections`' result, empty when the probe printed none.
pub fn section<'a>(s: &'a BTreeMap<String, Vec<String>>, name: &str) -> &'a [String] {
    s.get(name).map(Vec::as_slice).unwrap_or_default()
}

/// The value of `Key:` in /proc/<pid>/status text, whitespace-normalised.
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// A capability mask from status text ("CapEff" etc.) as sorted names.
pub fn caps_of(status: &str, key: &str) -> Result<Vec<String>, String> {
    let hex = status_field(status, key).ok_or_else(|| format!("no {key} in status"))?;
    let mask = u64::from_str_radix(&hex, 16).map_err(|e| format!("{key}: {hex}: {e}"))?;
    let mut names: Vec<String> = conformance::procinfo::cap_names(mask)
        .into_iter()
        .map(String::from)
        .collect();
    names.sort();
    Ok(names)
}

pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

// --------------------------------------------------------------------- host

/// One cgroup hierarchy: where it is mounted and this process's cgroup in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// "memory", "name=systemd"…, or "" for cgroup2.
    pub name: String,
    pub mount: PathBuf,
    /// This process's cgroup in the hierarchy, e.g. "/" or "/process_api/…".
    pub base: String,
}

/// Every hierarchy this process is in (from /proc/self/cgroup), mounted.
pub fn hierarchies() -> Result<Vec<Hierarchy>, String> {
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let mut out = Vec::new();
    for line in conformance::procinfo::parse_cgroup(&text) {
        let name = if line["hierarchy"] == "0" {
            String::new()
        } else {
            match line["controllers"]
                .as_array()
                .and_then(|c| c.first())
                .and_then(Value::as_str)
            {
                Some(c) => c.to_string(),
                None => continue,
            }
        };
        let base = line["path"].as_str().unwrap_or("/").to_string();
        if let Some(mount) = host::cgroup_mount(&name) {
            out.push(Hierarchy { name, mount, base });
        }
    }
    ensure(!out.is_empty(), "no mounted cgroup hierarchy found")?;
    Ok(out)
}

impl Hierarchy {
    /// The host directory of a cgroupsPath-like path: absolute from the
    /// hierarchy's root, relative from this process's cgroup.
    pub fn dir(&self, path: &str) -> PathBuf {
        match path.strip_prefix('/') {
            Some(abs) => self.mount.join(abs),
            None => self
                .mount
                .join(self.base.trim_start_matches('/'))
                .join(path),
        }
    }

    /// The hierarchy's line label in reports.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            "cgroup2"
        } else {
            &self.name
        }
    }

    /// Which line of a /proc/<pid>/cgroup text belongs to this hierarchy.
    pub fn path_in(&self, proc_cgroup: &str) -> Option<String> {
        conformance::procinfo::parse_cgroup(proc_cgroup)
            .into_iter()
            .find(|l| {
                if self.name.is_empty() {
                    l["hierarchy"] == "0"
                } else {
                    l["controllers"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|x| x == self.name.as_str()))
                }
            })
            .and_then(|l| l["path"].as_str().map(String::from))
    }
}

pub fn pid_alive(pid: u32) -> bool {
    pid > 0 && host::pid_alive(pid)
}

/// The fds of a process with their link targets, sorted by number.
pub fn proc_fds(pid: u32) -> Result<Vec<(i32, String)>, String> {
    let dir = format!("/proc/{pid}/fd");
    let mut fds = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| format!("read {dir}: {e}"))? {
        let entry = entry.map_err(|e| format!("read {dir}: {e}"))?;
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let target = fs::read_link(entry.path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|e| format!("<{e}>"));
        fds.push((n, target));
    }
    fds.sort();
    Ok(fds)
}

pub fn read_proc(pid: u32, file: &str) -> Result<String, String> {
    let path = format!("/proc/{pid}/{file}");
    fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))
}

/// Every process whose cgroup path has `id` as a component, or whose
/// environment carries the test marker for `id`: (pid, comm, why).
pub fn processes_of(id: &str) -> Vec<(u32, String, String)> {
    let marker = format!("{MARK}={id}");
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !host::pid_alive(pid) {
            continue;
        }
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let in_cgroup = cgroup.lines().any(|l| {
            l.splitn(3, ':')
                .nth(2)
                .is_some_and(|p| p.split('/').any(|c| c == id))
        });
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let marked = environ.split(|b| *b == 0).any(|v| v == marker.as_bytes());
        if in_cgroup || marked {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let why = if in_cgroup {
                "in its cgroup"
            } else {
                "carries its marker"
            };
            found.push((pid, comm.trim().to_string(), why.to_string()));
        }
    }
    found
}

/// Mount points in this mount namespace at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = conformance::procinfo::parse_mountinfo(&text)
        .into_iter()
        .filter_map(|m| m["mount_point"].as_str().map(PathBuf::from))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Mountinfo lines of this namespace that mention `needle` anywhere.
pub fn mount_lines_mentioning(needle: &str) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) touches no memory.
    unsafe { libc::kill(pid, sig) };
}

/// Sends `sig` to a process, reporting failures.
pub fn send_signal(pid: u32, sig: i32) -> Result<(), String> {
    // SAFETY: kill(2) touches no memory.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    ensure(
        rc == 0,
        format!("kill({pid}, {sig}): {}", std::io::Error::last_os_error()),
    )
}

/// Removes a directory tree after lazily unmounting anything mounted in it,
/// so that a mount leaked by the runtime never makes us delete host files.
pub fn remove_tree(dir: &Path) -> Result<(), String> {
    for m in mounts_under(dir) {
        host::umount(&m);
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(format!(
            "cannot unmount {left:?}; not removing {}",
            dir.display()
        ));
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", dir.display())),
    }
}

// -------------------------------------------------------------------- suite

/// What all tests share: the binary, the work dir, the default config.
pub struct Suite {
    pub husk: PathBuf,
    pub base: PathBuf,
    spec: Value,
    hierarchies: Vec<Hierarchy>,
}

impl Suite {
    pub fn new(husk: PathBuf) -> Result<Suite, String> {
        let base = std::env::temp_dir().join(format!("husk-cli-{}", std::process::id()));
        remove_tree(&base)?;
        make_dir(&base)?;
        let spec_dir = base.join("spec");
        make_dir(&spec_dir)?;
        let out = Command::new(&husk)
            .arg("spec")
            .arg("--bundle")
            .arg(&spec_dir)
            .output()
            .map_err(|e| format!("run {} spec: {e}", husk.display()))?;
        ensure(
            out.status.success(),
            format!("husk spec: {}", String::from_utf8_lossy(&out.stderr).trim()),
        )?;
        let text = fs::read_to_string(spec_dir.join("config.json"))
            .map_err(|e| format!("husk spec wrote no config.json: {e}"))?;
        let spec =
            serde_json::from_str(&text).map_err(|e| format!("husk spec: invalid JSON: {e}"))?;
        Ok(Suite {
            husk,
            base,
            spec,
            hierarchies: hierarchies()?,
        })
    }

    /// Removes the work dir.
    pub fn finish(self) {
        if let Err(e) = remove_tree(&self.base) {
            println!("# cleanup: {e}");
        }
    }
}

fn make_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    // A mapped root in a user namespace must be able to traverse it.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))
}

// ------------------------------------------------------------------ context

/// A husk process started without waiting, with its output files.
struct Spawned {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

/// One test's world. Everything registered here is undone by `cleanup`.
pub struct Ctx {
    /// husk with this test's `--root` and `--log FILE --log-format json`.
    pub husk: Runtime,
    pub husk_path: PathBuf,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    spec: Value,
    hierarchies: Vec<Hierarchy>,
    prefix: String,
    seq: u32,
    ids: Vec<String>,
    runc: Option<(Runtime, PathBuf)>,
    runc_ids: Vec<String>,
    children: Vec<Spawned>,
    mounts: Vec<PathBuf>,
    cgroups: Vec<String>,
    restore: Vec<(PathBuf, String)>,
    notes: Vec<String>,
}

impl Ctx {
    pub fn new(suite: &Suite, name: &str, index: usize) -> Result<Ctx, String> {
        let dir = suite.base.join(format!("{index:03}-{name}"));
        make_dir(&dir)?;
        let root = dir.join("root");
        let log = dir.join("husk.log");
        let husk = Runtime::new(&suite.husk)
            .root(&root)
            .global_args(&["--log", &log.to_string_lossy(), "--log-format", "json"])
            .timeout(COMMAND_LIMIT);
        Ok(Ctx {
            husk,
            husk_path: suite.husk.clone(),
            dir,
            root,
            log,
            spec: suite.spec.clone(),
            hierarchies: suite.hierarchies.clone(),
            prefix: format!("hk{}t{index}", std::process::id() % 100_000),
            seq: 0,
            ids: Vec::new(),
            runc: None,
            runc_ids: Vec::new(),
            children: Vec::new(),
            mounts: Vec::new(),
            cgroups: Vec::new(),
            restore: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// A line printed under the test's verdict (differences worth knowing).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// A fresh container id; the container is force-deleted at cleanup.
    pub fn new_id(&mut self) -> String {
        self.seq += 1;
        let id = format!("{}-{}", self.prefix, self.seq);
        self.ids.push(id.clone());
        id
    }

    /// A fresh directory in the test's dir.
    pub fn scratch(&mut self, name: &str) -> Result<PathBuf, String> {
        self.seq += 1;
        let path = self.dir.join(format!("{name}{}", self.seq));
        make_dir(&path)?;
        Ok(path)
    }

    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// A busybox bundle whose config is `husk spec`'s, with terminal false.
    pub fn bundle(&mut self) -> Result<Bundle, String> {
        let dir = self.scratch("bundle")?;
        let mut b =
            Bundle::busybox(&dir).map_err(|e| format!("bundle in {}: {e}", dir.display()))?;
        b.config = self.spec.clone();
        b.set("/process/terminal", json!(false));
        Ok(b)
    }

    /// Bind-mounts a fresh host dir read-write at /out in the container
    /// (the rootfs is read-only by default) and returns the host side.
    pub fn out_dir(&mut self, b: &mut Bundle) -> Result<PathBuf, String> {
        let out = self.scratch("out")?;
        fs::set_permissions(&out, fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("chmod {}: {e}", out.display()))?;
        make_dir(&b.rootfs().join("out"))?;
        b.push(
            "/mounts",
            json!({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]}),
        );
        Ok(out)
    }

    /// `husk create` of a fresh id; returns the id and the init's pid,
    /// after checking that state says `created` with a live pid.
    pub fn create(&mut self, b: &Bundle, extra: &[&str]) -> Result<(String, u32), String> {
        let id = self.new_id();
        let out = self.husk.create_with(b, &id, extra);
        expect_ok(&out, &format!("create {id}"))?;
        let state = self.state(&id)?;
        let pid = state["pid"].as_u64().unwrap_or(0) as u32;
        ensure(
            state["status"] == "created" && pid > 0,
            format!("right after a successful create, state says {state}"),
        )?;
        Ok((id, pid))
    }

    /// create + start; returns the id and the init's pid.
    pub fn start_new(&mut self, b: &Bundle) -> Result<(String, u32), String> {
        let (id, pid) = self.create(b, &[])?;
        self.start(&id).map_err(|e| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_else(|e| format!("<{e}>"));
            format!("{e} (init {pid}: /proc/{pid}/stat {:?})", stat.trim())
        })?;
        Ok((id, pid))
    }

    pub fn start(&self, id: &str) -> Result<(), String> {
        expect_ok(&self.husk.start(id), &format!("start {id}"))
    }

    /// Foreground `husk run` of a fresh id.
    pub fn run(&mut self, b: &Bundle, extra: &[&str]) -> (String, Output) {
        let id = self.new_id();
        let out = self.husk.run_with(b, &id, extra);
        (id, out)
    }

    /// Runs `sh -c script` in the foreground; its stdout if it exits 0.
    pub fn run_script(&mut self, b: &mut Bundle, script: &str) -> Result<String, String> {
        b.args(&["sh", "-c", script]);
        let (id, out) = self.run(b, &[]);
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "run {id}: {}; stdout: {}",
                describe(&out),
                out.stdout.trim()
            ))
        }
    }

    pub fn state(&self, id: &str) -> Result<Value, String> {
        self.husk.state_json(id)
    }

    pub fn pid(&self, id: &str) -> Result<u32, String> {
        let state = self.state(id)?;
        state["pid"]
            .as_u64()
            .map(|p| p as u32)
            .ok_or_else(|| format!("state {id} has no numeric pid: {state}"))
    }

    pub fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Result<Value, String> {
        self.husk.wait_status(id, want, limit)
    }

    /// The last line of the `--log` file, parsed.
    pub fn last_log_entry(&self) -> Result<Value, String> {
        let text = fs::read_to_string(&self.log)
            .map_err(|e| format!("read --log {}: {e}", self.log.display()))?;
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .ok_or_else(|| format!("--log {} is empty", self.log.display()))?;
        serde_json::from_str(line).map_err(|e| format!("last --log line is not JSON ({e}): {line}"))
    }

    /// A failed husk command reported properly: exit status 1, stderr
    /// `husk: COMMAND: …` naming every needle (`a|b` = either), and the same
    /// message as the last JSON line of `--log` with level error.
    pub fn expect_failure(
        &self,
        out: &Output,
        command: &str,
        needles: &[&str],
    ) -> Result<(), String> {
        if let Some(e) = &out.error {
            return Err(format!("husk {command}: {e}"));
        }
        match (out.code, out.signal) {
            (Some(0), _) => {
                return Err(format!(
                    "husk {command} succeeded; expected an error naming {needles:?}"
                ))
            }
            (None, s) => return Err(format!("husk {command} was killed by signal {s:?}")),
            (Some(1), _) => {}
            (Some(c), _) => {
                return Err(format!(
                    "husk {command} exited {c}, expected 1: {}",
                    out.stderr.trim()
                ))
            }
        }
        let line = out
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("husk: "))
            .ok_or_else(|| format!("no `husk: ` error line on stderr: {:?}", out.stderr))?;
        let prefix = format!("husk: {command}: ");
        ensure(
            line.starts_with(&prefix),
            format!("stderr does not start with {prefix:?}: {line}"),
        )?;
        let missing: Vec<&&str> = needles.iter().filter(|n| !contains_any(line, n)).collect();
        ensure(
            missing.is_empty(),
            format!("stderr does not name {missing:?}: {line}"),
        )?;
        let entry = self.last_log_entry()?;
        ensure(
            entry["level"] == "error",
            format!("--log level is not error: {entry}"),
        )?;
        ensure(
            entry["time"].as_str().is_some_and(|t| !t.is_empty()),
            format!("--log line has no time: {entry}"),
        )?;
        let msg = entry["msg"].as_str().unwrap_or_default();
        ensure(
            line == format!("husk: {msg}"),
            format!("--log msg differs from stderr: log {msg:?}, stderr {line:?}"),
        )?;
        Ok(())
    }

    /// Everything a container could leave behind, as readable lines.
    pub fn leftovers(&self, id: &str, bundle: Option<&Path>) -> Vec<String> {
        let mut left = Vec::new();
        let state_dir = self.root.join(id);
        if state_dir.exists() {
            left.push(format!("state dir {} exists", state_dir.display()));
        }
        for h in &self.hierarchies {
            for path in [id.to_string(), format!("/{id}")] {
                let d = h.dir(&path);
                if d.exists() {
                    left.push(format!("cgroup dir {} exists", d.display()));
                }
            }
        }
        for (pid, comm, why) in processes_of(id) {
            left.push(format!("process {pid} ({comm}) {why}"));
        }
        if let Some(b) = bundle {
            for line in mount_lines_mentioning(&b.to_string_lossy()) {
                left.push(format!("host mount: {line}"));
            }
        }
        left.sort();
        left.dedup();
        left
    }

    pub fn expect_nothing_left(&self, id: &str, bundle: Option<&Path>) -> Result<(), String> {
        let left = self.leftovers(id, bundle);
        ensure(left.is_empty(), format!("left behind: {}", left.join("; ")))
    }

    /// The host directories of the container's cgroup, one per hierarchy.
    pub fn cgroup_dirs(&self, path: &str) -> Vec<(String, PathBuf)> {
        self.hierarchies
            .iter()
            .map(|h| (h.label().to_string(), h.dir(path)))
            .collect()
    }

    /// A cgroupsPath the test uses, removed at cleanup if husk leaves it.
    pub fn register_cgroup(&mut self, path: &str) {
        self.cgroups.push(path.to_string());
    }

    /// A host mount the test made, unmounted at cleanup.
    pub fn register_mount(&mut self, path: &Path) {
        self.mounts.push(path.to_path_buf());
    }

    /// A host file to write back at cleanup (a sysctl husk must not change).
    pub fn register_restore(&mut self, path: &Path, content: &str) {
        self.restore.push((path.to_path_buf(), content.to_string()));
    }

    /// Debian's runc with its own `--root`, or a skip.
    pub fn runc(&mut self) -> Result<Runtime, Outcome> {
        if let Some((rt, _)) = &self.runc {
            return Ok(rt.clone());
        }
        let path = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| skip("runc is not installed (apt-get install runc)"))?;
        let root = self.dir.join("runc-root");
        let rt = Runtime::new(path).root(&root).timeout(COMMAND_LIMIT);
        self.runc = Some((rt.clone(), root));
        Ok(rt)
    }

    /// A fresh id for a runc container, force-deleted at cleanup.
    pub fn new_runc_id(&mut self) -> String {
        self.seq += 1;
        let id = format!("{}-runc-{}", self.prefix, self.seq);
        self.runc_ids.push(id.clone());
        id
    }

    /// Spawns `husk --root R --log L --log-format json ARGS` without waiting
    /// (stdin /dev/null, stdout/stderr to files), in its own process group.
    /// `fds` are (source, target) pairs dup2'ed in the child, so the targets
    /// are inherited even though Rust opens everything close-on-exec.
    pub fn spawn_husk(&mut self, args: &[&str], fds: &[(RawFd, RawFd)]) -> Result<usize, String> {
        self.seq += 1;
        let n = self.seq;
        let (out, err) = (
            self.dir.join(format!("spawn{n}.out")),
            self.dir.join(format!("spawn{n}.err")),
        );
        let open =
            |p: &Path| fs::File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
        let (stdout, stderr) = (open(&out)?, open(&err)?);
        let mut cmd = Command::new(&self.husk_path);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        ensure(fds.len() <= 8, "spawn_husk passes at most 8 fds")?;
        let fds = fds.to_vec();
        if !fds.is_empty() {
            // SAFETY: only fcntl(2) and dup2(2) between fork and exec, on fds
            // the caller keeps open across the spawn. Going through copies
            // above 100 first makes it work when a source already is a target
            // (dup2 of an fd onto itself would keep FD_CLOEXEC) or when
            // sources and targets overlap.
            unsafe {
                cmd.pre_exec(move || {
                    let mut tmp = [-1; 8];
                    for (t, (src, _)) in tmp.iter_mut().zip(&fds) {
                        *t = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 100);
                        if *t < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    for (t, (_, dst)) in tmp.iter().zip(&fds) {
                        if libc::dup2(*t, *dst) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn husk {args:?}: {e}"))?;
        self.children.push(Spawned { child, out, err });
        Ok(self.children.len() - 1)
    }

    pub fn child_pid(&self, handle: usize) -> u32 {
        self.children[handle].child.id()
    }

    /// Waits for a spawned husk; kills its process group at the limit.
    pub fn wait_child(&mut self, handle: usize, limit: Duration) -> Result<ExitStatus, String> {
        let child = &mut self.children[handle].child;
        conformance::runtime::wait_with_timeout(child, limit)
            .ok_or_else(|| format!("husk (pid {}) did not exit within {limit:?}", child.id()))
    }

    /// A spawned husk's stdout and stderr so far.
    pub fn child_output(&self, handle: usize) -> (String, String) {
        let s = &self.children[handle];
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        (read(&s.out), read(&s.err))
    }

    /// Exit code as a shell reports it: the code, or 128 + signal.
    pub fn shell_code(status: &ExitStatus) -> i32 {
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    }

    /// Undoes everything; returns what could not be undone.
    pub fn cleanup(&mut self) -> Option<String> {
        let mut problems = Vec::new();
        for Spawned { child, .. } in &mut self.children {
            kill(-(child.id() as i32), libc::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        let ids = std::mem::take(&mut self.ids);
        for id in ids.iter().rev() {
            if self.root.join(id).exists() {
                let out = self.husk.delete_force(id);
                if !out.success() {
                    problems.push(format!("delete --force {id}: {}", describe(&out)));
                }
            }
        }
        if let Some((runc, _)) = &self.runc {
            for id in &self.runc_ids {
                let _ = runc.delete_force(id);
            }
        }
        // Whatever husk left: kill it and remove it, then say so.
        let mut cgroups: Vec<String> = ids.clone();
        cgroups.extend(self.cgroups.iter().cloned());
        for id in &ids {
            for (pid, comm, why) in processes_of(id) {
                kill(pid as i32, libc::SIGKILL);
                problems.push(format!(
                    "process {pid} ({comm}) {why} was still running at cleanup of {id} (killed it)"
                ));
            }
        }
        for path in &cgroups {
            let is_id = ids.contains(path);
            for h in &self.hierarchies {
                let dir = h.dir(path);
                if dir.exists() {
                    if is_id {
                        problems.push(format!("cgroup {} survived delete --force", dir.display()));
                    }
                    remove_cgroup_tree(&dir);
                }
                // The parents a nested cgroupsPath made are ours to remove
                // (husk, like runc, leaves them).
                if !is_id {
                    remove_cgroup_parents(h, path);
                }
            }
        }
        for m in self.mounts.drain(..) {
            host::umount(&m);
        }
        for (path, content) in self.restore.drain(..) {
            if fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                let _ = fs::write(&path, &content);
            }
        }
        if let Err(e) = remove_tree(&self.dir) {
            problems.push(e);
        }
        if problems.is_empty() {
            None
        } else {
            Some(problems.join("; "))
        }
    }
}

/// rmdir a cgroup and its children, killing what is left in them.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            kill(pid, libc::SIGKILL);
        }
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Removes the empty intermediate directories of a nested cgroupsPath.
fn remove_cgroup_parents(h: &Hierarchy, path: &str) {
    let mut p = Path::new(path.trim_start_matches('/')).to_path_buf();
    while p.pop() && !p.as_os_str().is_empty() {
        let rel = p.to_string_lossy();
        let full = if path.starts_with('/') {
            h.dir(&format!("/{rel}"))
        } else {
            h.dir(&rel)
        };
        if fs::remove_dir(&full).is_err() {
            break;
        }
    }
}

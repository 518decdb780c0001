//! The cgroup commands of the `husk` binary against real busybox containers:
//! pause/resume (progress stops and resumes), ps, events (stats and an OOM
//! kill), update (a live pids limit and refused values), device rules inside
//! a container, and delete --force of a paused container.
//!
//! Needs root and the release binary: `cargo build --release -p runtime-cli`
//! (or HUSK_BINARY). Without them each test says why it is skipped.

mod cgroups_util;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cgroups_util::{uid, wait_until};
use runtime_core::cgroups::{detect_layout, Layout};
use serde_json::{json, Value};

fn husk_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HUSK_BINARY") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/x86_64-unknown-linux-gnu/release/husk");
    p.exists().then_some(p)
}

/// Why these tests cannot run here, if they cannot.
fn cli_skip_reason() -> Option<String> {
    if let Some(why) = cgroups_util::skip_reason() {
        return Some(why);
    }
    if husk_binary().is_none() {
        return Some("no husk binary (cargo build --release -p runtime-cli)".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no /bin/busybox".into());
    }
    None
}

macro_rules! need_husk {
    ($test:ident) => {
        if let Some(why) = cli_skip_reason() {
            eprintln!("SKIPPED {}: {why}", stringify!($test));
            return;
        }
    };
}

/// One test's containers: a private --root, a bundle, cleanup on drop.
struct Ctx {
    bin: PathBuf,
    dir: PathBuf,
    root: PathBuf,
    ids: Vec<String>,
}

impl Ctx {
    fn new(name: &str) -> Ctx {
        let dir = std::env::temp_dir().join(uid(name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let root = dir.join("root");
        Ctx {
            bin: husk_binary().expect("husk binary"),
            dir,
            root,
            ids: Vec::new(),
        }
    }

    fn husk(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Run a husk command to completion.
    fn run(&self, args: &[&str]) -> Output {
        self.husk(args)
            .stdin(Stdio::null())
            .output()
            .expect("run husk")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "husk {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A failing husk command's stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "husk {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A busybox bundle running `script`; `edit` changes the config.
    fn bundle(&self, name: &str, script: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let b = self.dir.join(name);
        let bin = b.join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("rootfs");
        std::fs::create_dir_all(b.join("rootfs/tmp")).expect("tmp");
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        let list = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
            }
        }
        self.ok(&["spec", "--bundle", b.to_str().expect("utf8")]);
        let path = b.join("config.json");
        let mut cfg: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read config")).expect("json");
        cfg["process"]["terminal"] = json!(false);
        cfg["process"]["args"] = json!(["sh", "-c", script]);
        cfg["root"]["readonly"] = json!(false);
        edit(&mut cfg);
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).expect("json")).expect("write");
        b
    }

    fn id(&mut self, name: &str) -> String {
        let id = format!("{}-{name}", uid("c"));
        self.ids.push(id.clone());
        id
    }

    /// `husk run -d`: returns once the container runs.
    fn run_detached(&mut self, name: &str, bundle: &Path) -> String {
        let id = self.id(name);
        // The container keeps husk's stdio: a file, not a pipe we would wait
        // on until it exits.
        let log = self.dir.join(format!("{name}.stderr"));
        let err = std::fs::File::create(&log).expect("stderr file");
        let st = self
            .husk(&["run", "-d", "--bundle", bundle.to_str().expect("utf8"), &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .expect("husk run -d");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(st.success(), "run -d: {st}: {text}");
        id
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_owned()
    }

    fn stats(&self, id: &str) -> Value {
        let out = self.ok(&["events", "--stats", id]);
        let v: Value = serde_json::from_str(&out).expect("stats json");
        assert_eq!(v["type"], "stats", "{v}");
        assert_eq!(v["id"], id, "{v}");
        v["data"].clone()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.run(&["delete", "--force", id]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The counter the looping container writes to /tmp/n (None mid-write).
fn counter(bundle: &Path) -> Option<u64> {
    std::fs::read_to_string(bundle.join("rootfs/tmp/n"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The raw content of /tmp/n (it may be caught between truncate and write).
fn counter_text(bundle: &Path) -> String {
    std::fs::read_to_string(bundle.join("rootfs/tmp/n")).unwrap_or_default()
}

#[test]
fn cgroups_cli_pause_resume_and_delete_paused() {
    need_husk!(cgroups_cli_pause_resume_and_delete_paused);
    let mut ctx = Ctx::new("pause");
    let script = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; done";
    let b = ctx.bundle("b", script, |_| {});
    let id = ctx.run_detached("loop", &b);
    assert!(wait_until(Duration::from_secs(5), || counter(&b)
        .is_some_and(|n| n > 10)));

    // resume of a running container is refused; pause freezes for real.
    let e = ctx.fails(&["resume", &id]);
    assert!(e.contains("running") && e.contains("paused"), "{e}");
    ctx.ok(&["pause", &id]);
    assert_eq!(ctx.status(&id), "paused");
    let frozen = counter_text(&b);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        counter_text(&b),
        frozen,
        "the loop made progress while paused"
    );
    let a = frozen.trim().parse::<u64>().unwrap_or(0);
    let e = ctx.fails(&["pause", &id]);
    assert!(e.contains("paused"), "{e}");
    // ps still lists the frozen processes.
    let pids: Vec<i32> =
        serde_json::from_str(&ctx.ok(&["ps", "--format", "json", &id])).expect("ps json");
    assert!(pids.contains(&(ctx.state(&id)["pid"].as_i64().unwrap_or(0) as i32)));

    ctx.ok(&["resume", &id]);
    assert_eq!(ctx.status(&id), "running");
    assert!(
        wait_until(Duration::from_secs(2), || counter(&b)
            .is_some_and(|n| n > a + 100)),
        "no progress after resume"
    );

    // A paused container can be deleted with --force, promptly, and leaves
    // no cgroup behind.
    ctx.ok(&["pause", &id]);
    let pid = ctx.state(&id)["pid"].as_i64().unwrap_or(0);
    let cgroup_line = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let start = Instant::now();
    ctx.ok(&["delete", "--force", &id]);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(wait_until(Duration::from_secs(2), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    }));
    let e = ctx.fails(&["state", &id]);
    assert!(e.contains("does not exist"), "{e}");
    // Every cgroup the init was in is gone (v1 ones under their mounts).
    for line in cgroup_line.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctl, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
        let mount = match ctl {
            "" => "unified".to_owned(),
            c => c.trim_start_matches("name=").to_owned(),
        };
        let mount = Path::new("/sys/fs/cgroup").join(mount);
        if path != "/" && mount.exists() {
            let dir = mount.join(path.trim_start_matches('/'));
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
}

#[test]
fn cgroups_cli_ps_json_and_table() {
    need_husk!(cgroups_cli_ps_json_and_table);
    let mut ctx = Ctx::new("ps");
    let b = ctx.bundle("b", "sleep 1000 & sleep 1001 & wait", |_| {});
    let id = ctx.run_detached("ps", &b);
    let init = ctx.state(&id)["pid"].as_i64().unwrap_or(0) as i32;
    let mut pids: Vec<i32> = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        pids = serde_json::from_str(&ctx.ok(&["ps", "-f", "json", &id])).expect("json");
        pids.len() == 3
    }));
    assert!(pids.contains(&init), "{pids:?} vs init {init}");

    let table = ctx.ok(&["ps", &id]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].split_whitespace().any(|f| f == "PID"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        table.contains("sleep 1000") && table.contains("sleep 1001"),
        "{table}"
    );

    // Extra ps arguments go to ps.
    let table = ctx.ok(&["ps", &id, "-o", "pid,comm"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert_eq!(lines.len(), 4, "{table}");
    for l in &lines[1..] {
        let pid: i32 = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse()
            .expect("pid");
        assert!(pids.contains(&pid), "{l}");
    }
    ctx.ok(&["delete", "--force", &id]);
    let e = ctx.fails(&["ps", &id]);
    assert!(e.contains("does not exist"), "{e}");
}

/// Reads `husk events` lines on a thread, so the test can wait with a limit.
fn event_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn cgroups_cli_events_stats_and_oom() {
    need_husk!(cgroups_cli_events_stats_and_oom);
    let mut ctx = Ctx::new("oom");
    let limit = 32u64 << 20;
    // Waits for /tmp/go, then grows a shell variable well past the limit.
    let script = "while [ ! -e /tmp/go ]; do sleep 0.05; done; \
                  x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived";
    let b = ctx.bundle("b", script, |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
    });
    let id = ctx.id("oom");
    let mut run = ctx
        .husk(&["run", "--keep", "--bundle", b.to_str().expect("utf8"), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("husk run");
    assert!(wait_until(Duration::from_secs(10), || {
        ctx.run(&["state", &id]).status.success() && ctx.status(&id) == "running"
    }));

    // --stats: one object with runc's field names.
    let data = ctx.stats(&id);
    assert_eq!(data["memory"]["usage"]["limit"], limit, "{data}");
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{data}"
    );
    assert!(data["memory"]["raw"].is_object(), "{data}");
    assert!(data["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{data}");
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{data}"
    );
    assert!(data["cpu"]["usage"]["kernel"].is_u64(), "{data}");
    assert!(
        data["blkio"].is_object() && data["hugetlb"].is_object(),
        "{data}"
    );

    // The stream: stats first, then the OOM, then the end with the container.
    let mut events = ctx
        .husk(&["events", "--interval", "1s", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("husk events");
    let rx = event_lines(&mut events);
    let first: Value = serde_json::from_str(
        &rx.recv_timeout(Duration::from_secs(5))
            .expect("first event"),
    )
    .expect("json");
    assert_eq!(first["type"], "stats");
    std::fs::write(b.join("rootfs/tmp/go"), "").expect("go");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = run.try_wait().expect("wait run") {
            break st;
        }
        assert!(Instant::now() < deadline, "the container did not die");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut o) = run.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    assert_eq!(status.code(), Some(137), "{status:?}, stdout {out:?}");
    assert!(!out.contains("survived"));

    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => lines.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {}
        }
    }
    let _ = events.kill();
    let st = events.wait().expect("events exit");
    assert!(st.success() || st.signal().is_some(), "{st:?}");
    let ooms: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "oom")
        .collect();
    assert!(!ooms.is_empty(), "no oom event in {lines:?}");
    assert_eq!(ooms[0], json!({"type": "oom", "id": id}));
}

#[test]
fn cgroups_cli_update_limits_and_refusals() {
    need_husk!(cgroups_cli_update_limits_and_refusals);
    let mut ctx = Ctx::new("update");
    // Forks sleepers until the pids limit stops it. A failed fork ends an
    // ash script, so the script re-execs itself from its EXIT trap (exec
    // needs no fork) and goes on forking as soon as the limit allows.
    let b = ctx.bundle("b", "", |c| {
        c["process"]["args"] = json!(["sh", "/loop.sh"]);
        c["linux"]["resources"]["pids"] = json!({"limit": 8});
        c["linux"]["resources"]["memory"] = json!({"limit": 128u64 << 20});
    });
    std::fs::write(
        b.join("rootfs/loop.sh"),
        "trap 'exec sh /loop.sh 2>/dev/null' EXIT\nwhile :; do sleep 1000 & done\n",
    )
    .expect("loop.sh");
    let id = ctx.run_detached("upd", &b);
    let pids = |ctx: &Ctx| ctx.stats(&id)["pids"].clone();
    assert!(wait_until(Duration::from_secs(5), || pids(&ctx)["current"] == 8));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pids(&ctx), json!({"current": 8, "limit": 8}));

    // Raise: the loop goes on to the new limit.
    ctx.ok(&["update", "--pids-limit", "16", &id]);
    assert!(
        wait_until(Duration::from_secs(5), || pids(&ctx)["current"] == 16),
        "{}",
        pids(&ctx)
    );
    // Lower below the count: no new process, the existing ones stay.
    ctx.ok(&["update", "--pids-limit", "12", &id]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pids(&ctx), json!({"current": 16, "limit": 12}));

    // Memory with units, through --resources from stdin too.
    ctx.ok(&["update", "--memory", "64m", "--memory-swap", "96m", &id]);
    let mem = ctx.stats(&id)["memory"].clone();
    assert_eq!(mem["usage"]["limit"], 64u64 << 20, "{mem}");
    let mut child = ctx
        .husk(&["update", "--resources", "-", &id])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("update -");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        br#"{"memory": {"limit": 100663296, "swap": 134217728}, "cpu": {"shares": 512}}"#,
    )
    .expect("write stdin");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    assert_eq!(ctx.stats(&id)["memory"]["usage"]["limit"], 96u64 << 20);
    // runc's kernel memory flags: TCP buffers are limited for real on v1;
    // the kernel memory limit is taken (Linux >= 6.1 ignores its value).
    if detect_layout().expect("layout") != Layout::V2 {
        ctx.ok(&[
            "update",
            "--kernel-memory",
            "64m",
            "--kernel-memory-tcp",
            "32m",
            &id,
        ]);
        assert_eq!(ctx.stats(&id)["memory"]["kernelTCP"]["limit"], 32u64 << 20);
    }

    // Refused: each leaves the container as it was.
    let check_unchanged = |ctx: &Ctx| {
        assert_eq!(ctx.status(&id), "running");
        let s = ctx.stats(&id);
        assert_eq!(s["pids"], json!({"current": 16, "limit": 12}));
        assert_eq!(s["memory"]["usage"]["limit"], 96u64 << 20);
    };
    let e = ctx.fails(&["update", "--memory", "4k", "--pids-limit", "20", &id]);
    assert!(e.contains("busy") && e.contains("memory"), "{e}");
    check_unchanged(&ctx);
    let e = ctx.fails(&["update", "--memory", "200m", &id]);
    assert!(e.contains("memory+swap"), "{e}");
    check_unchanged(&ctx);
    let e = ctx.fails(&["update", "--cpuset-cpus", "64", &id]);
    assert!(e.contains("cpu.cpus") && e.contains("64"), "{e}");
    check_unchanged(&ctx);
    let file = ctx.dir.join("bad.json");
    for (json, needle) in [
        (r#"{"unified": {"foo.bar": "1"}}"#, "foo"),
        (
            r#"{"pids": {"limit": 30}, "devices": [{"allow": true, "type": "c", "access": "rwx"}]}"#,
            "linux.resources.devices[0]",
        ),
        (
            r#"{"devices": [{"allow": true, "type": "x"}]}"#,
            "linux.resources.devices[0].type",
        ),
    ] {
        std::fs::write(&file, json).expect("write");
        let e = ctx.fails(&["update", "--resources", file.to_str().expect("utf8"), &id]);
        assert!(e.contains(needle), "{json}: {e}");
        check_unchanged(&ctx);
    }
    let e = ctx.fails(&["update", "--memory", "12q", &id]);
    assert!(e.contains("--memory"), "{e}");

    ctx.ok(&["delete", "--force", &id]);
    let e = ctx.fails(&["update", "--pids-limit", "5", &id]);
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn cgroups_cli_device_rules_inside_container() {
    need_husk!(cgroups_cli_device_rules_inside_container);
    let mut ctx = Ctx::new("devices");
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("SKIPPED cgroups_cli_device_rules_inside_container: no /dev/loop-control");
        return;
    }
    let script = "for d in null zero urandom loop-control; do \
                  if true </dev/$d; then echo $d=open; else echo $d=denied; fi; done 2>/dev/null";
    let bind = json!({"destination": "/dev/loop-control", "type": "bind",
                      "source": "/dev/loop-control", "options": ["bind"]});
    let run = |ctx: &mut Ctx, name: &str, extra: Option<Value>| {
        let bind = bind.clone();
        let b = ctx.bundle(name, script, move |c| {
            c["mounts"].as_array_mut().expect("mounts").push(bind);
            if let Some(rule) = extra {
                c["linux"]["resources"]["devices"]
                    .as_array_mut()
                    .expect("devices")
                    .push(rule);
            }
        });
        let id = ctx.id(name);
        let out = ctx
            .husk(&["run", "--bundle", b.to_str().expect("utf8"), &id])
            .stdin(Stdio::null())
            .output()
            .expect("husk run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The spec's deny-all: the default devices open, the bound one does not.
    assert_eq!(
        run(&mut ctx, "deny", None),
        "null=open\nzero=open\nurandom=open\nloop-control=denied\n"
    );
    let allow = json!({"allow": true, "type": "c", "major": 10, "minor": 237, "access": "rw"});
    assert_eq!(
        run(&mut ctx, "allow", Some(allow)),
        "null=open\nzero=open\nurandom=open\nloop-control=open\n"
    );
    // A malformed rule stops create with a config error naming the field.
    let b = ctx.bundle("bad", script, |c| {
        c["linux"]["resources"]["devices"] = json!([{"allow": true, "type": "c", "access": "rwz"}]);
    });
    let id = ctx.id("bad");
    let e = ctx.fails(&["run", "--bundle", b.to_str().expect("utf8"), &id]);
    assert!(e.contains("linux.resources.devices[0]"), "{e}");
    let e = ctx.fails(&["state", &id]);
    assert!(e.contains("does not exist"), "{e}");
}

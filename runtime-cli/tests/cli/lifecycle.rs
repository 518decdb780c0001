//! The lifecycle and runc's command-line shapes, observed from the host:
//! /proc/<pid>, the cgroup directories, files the container writes through a
//! bind mount, and the exact output formats containerd and Podman parse.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "lifecycle.create_start_exit_delete",
            run: create_start_exit_delete,
        },
        Test {
            name: "lifecycle.created_init_outlives_create",
            run: created_init_outlives_create,
        },
        Test {
            name: "lifecycle.delete_running_refused",
            run: delete_running_refused,
        },
        Test {
            name: "lifecycle.delete_force_running",
            run: delete_force_running,
        },
        Test {
            name: "cli.kill_signal_forms",
            run: kill_signal_forms,
        },
        Test {
            name: "cli.kill_all",
            run: kill_all,
        },
        Test {
            name: "cli.list_formats",
            run: list_formats,
        },
        Test {
            name: "cli.state_fields",
            run: state_fields,
        },
        Test {
            name: "cli.pid_file",
            run: pid_file,
        },
        Test {
            name: "cli.run_exit_code",
            run: run_exit_code,
        },
        Test {
            name: "cli.run_killed_from_outside",
            run: run_killed_from_outside,
        },
        Test {
            name: "cli.run_forwards_signals",
            run: run_forwards_signals,
        },
        Test {
            name: "cli.run_detach",
            run: run_detach,
        },
        Test {
            name: "cli.spec",
            run: spec,
        },
        Test {
            name: "cli.spec_rootless",
            run: spec_rootless,
        },
        Test {
            name: "cli.features",
            run: features,
        },
        Test {
            name: "cli.version",
            run: version,
        },
    ]
}

const LIMIT: Duration = Duration::from_secs(5);

fn sleeper(ctx: &mut Ctx) -> Result<Bundle, String> {
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "100"]);
    Ok(b)
}

/// A container that records TERM/USR1 in /out/sig and exits 10/11 on them,
/// touching /out/ready once its traps are set.
fn trapper(ctx: &mut Ctx) -> Result<(Bundle, std::path::PathBuf), String> {
    let mut b = ctx.bundle()?;
    let out = ctx.out_dir(&mut b)?;
    b.args(&[
        "sh",
        "-c",
        "trap 'echo TERM > /out/sig; exit 10' TERM; trap 'echo USR1 > /out/sig; exit 11' USR1; \
         touch /out/ready; while :; do sleep 0.1; done",
    ]);
    Ok((b, out))
}

fn wait_file(path: &Path, limit: Duration) -> Result<(), String> {
    ensure(
        wait_until(limit, || path.exists()),
        format!("{} did not appear within {limit:?}", path.display()),
    )
}

fn wait_dead(pid: u32, limit: Duration) -> Result<(), String> {
    ensure(
        wait_until(limit, || !pid_alive(pid)),
        format!("process {pid} still alive after {limit:?}"),
    )
}

/// create → `created` (pid > 0, the process exists, blocked before the
/// user's program) → start → `running` → exit → `stopped` (pid 0) →
/// delete → gone, cgroups included.
fn create_start_exit_delete(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let out = ctx.out_dir(&mut b)?;
    b.args(&["sh", "-c", "touch /out/started; sleep 1"]);
    let (id, pid) = ctx.create(&b, &[])?;
    let state = ctx.state(&id)?;
    ensure(
        state["status"] == "created",
        format!("status after create: {}", state["status"]),
    )?;
    ensure(
        pid > 0 && pid_alive(pid),
        format!("init pid {pid} is not a live process"),
    )?;
    let status = read_proc(pid, "status")?;
    let run_state = status_field(&status, "State").unwrap_or_default();
    ensure(
        run_state.starts_with('S'),
        format!("created init is not blocked (State: {run_state})"),
    )?;
    std::thread::sleep(Duration::from_millis(200));
    ensure(
        !out.join("started").exists(),
        "the user's program ran before start",
    )?;
    let comm = read_proc(pid, "comm")?;
    ensure(
        comm.trim() != "sh",
        "the created init already exec'd the user's program",
    )?;
    // Born in its cgroup, in every hierarchy.
    let cgroup = read_proc(pid, "cgroup")?;
    let mut problems = Vec::new();
    for h in ctx.hierarchies() {
        let want = Path::new(&h.base).join(&id);
        match h.path_in(&cgroup) {
            Some(p) if Path::new(&p) == want => {}
            other => problems.push(format!(
                "{}: init in {other:?}, expected {}",
                h.label(),
                want.display()
            )),
        }
        if !h.dir(&id).is_dir() {
            problems.push(format!(
                "{}: no cgroup dir {}",
                h.label(),
                h.dir(&id).display()
            ));
        }
    }
    all_ok(problems)?;
    ctx.start(&id)?;
    let state = ctx.state(&id)?;
    ensure(
        state["status"] == "running",
        format!("status after start: {}", state["status"]),
    )?;
    wait_file(&out.join("started"), LIMIT)?;
    let state = ctx.wait_status(&id, "stopped", LIMIT)?;
    ensure(
        state["pid"] == json!(0),
        format!("stopped container reports pid {}", state["pid"]),
    )?;
    ensure(
        !pid_alive(pid),
        format!("init {pid} still alive after stopped"),
    )?;
    expect_ok(&ctx.husk.delete(&id), "delete")?;
    let after = ctx.husk.state(&id);
    ensure(
        !after.success(),
        format!("state after delete succeeded: {}", after.stdout.trim()),
    )?;
    Ok(ctx.expect_nothing_left(&id, Some(&b.dir))?)
}

/// `husk create` exits right after the init reports ready; the init must
/// survive that, every time. 200 creates in a row, each checked at once.
fn created_init_outlives_create(ctx: &mut Ctx) -> TestResult {
    const ROUNDS: usize = 200;
    let mut b = ctx.bundle()?;
    b.args(&["true"]);
    b.write_config()
        .map_err(|e| format!("write config.json: {e}"))?;
    let dir = b.dir.to_string_lossy().into_owned();
    let mut dead = Vec::new();
    for _ in 0..ROUNDS {
        let id = ctx.new_id();
        let out = ctx
            .husk
            .invoke(&["create", "--bundle", &dir, &id], &Call::default());
        expect_ok(&out, &format!("create {id}"))?;
        let state = ctx.state(&id)?;
        if state["status"] != "created" {
            dead.push(format!(
                "{id}: {} ({})",
                state["status"],
                init_death(&ctx.root.join(&id))
            ));
        }
        expect_ok(&ctx.husk.delete_force(&id), &format!("delete --force {id}"))?;
    }
    Ok(ensure(
        dead.is_empty(),
        format!(
            "{} of {ROUNDS} inits were gone right after a successful create: {}",
            dead.len(),
            dead.join(", ")
        ),
    )?)
}

/// How the init recorded in a state dir ended, from its zombie's
/// /proc/<pid>/stat (exit_code is the last field), for the report.
fn init_death(state_dir: &Path) -> String {
    let recorded = fs::read_to_string(state_dir.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["pid"].as_u64());
    let Some(pid) = recorded else {
        return "no pid recorded".into();
    };
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let after = stat.rsplit(')').next().unwrap_or_default();
            let fields: Vec<&str> = after.split_whitespace().collect();
            let code: i64 = fields.last().and_then(|c| c.parse().ok()).unwrap_or(-1);
            let how = if code & 0x7f != 0 {
                format!("killed by signal {}", code & 0x7f)
            } else {
                format!("exited {}", code >> 8)
            };
            format!("init {pid} state {}, {how}", fields.first().unwrap_or(&"?"))
        }
        Err(_) => format!("init {pid} gone"),
    }
}

fn delete_running_refused(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    let (id, pid) = ctx.start_new(&b)?;
    let out = ctx.husk.delete(&id);
    ctx.expect_failure(&out, "delete", &["running"])?;
    let state = ctx.state(&id)?;
    ensure(
        state["status"] == "running",
        format!("status after refused delete: {}", state["status"]),
    )?;
    Ok(ensure(
        pid_alive(pid),
        "the container died from a refused delete",
    )?)
}

fn delete_force_running(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    let (id, pid) = ctx.start_new(&b)?;
    let missing: Vec<String> = ctx
        .cgroup_dirs(&id)
        .into_iter()
        .filter(|(_, d)| !d.is_dir())
        .map(|(l, d)| format!("{l}: {}", d.display()))
        .collect();
    ensure(
        missing.is_empty(),
        format!("cgroup dirs missing while running: {missing:?}"),
    )?;
    expect_ok(&ctx.husk.delete_force(&id), "delete --force")?;
    wait_dead(pid, Duration::from_secs(2))?;
    Ok(ctx.expect_nothing_left(&id, Some(&b.dir))?)
}

/// kill by name, SIG-name, number and lower case.
fn kill_signal_forms(ctx: &mut Ctx) -> TestResult {
    let mut problems = Vec::new();
    for (form, trapped) in [
        ("KILL", None),
        ("SIGKILL", None),
        ("9", None),
        ("TERM", Some("TERM")),
        ("sigusr1", Some("USR1")),
    ] {
        let (b, out) = trapper(ctx)?;
        let (id, pid) = ctx.start_new(&b)?;
        wait_file(&out.join("ready"), LIMIT)?;
        let k = ctx.husk.kill(&id, form);
        if !k.success() {
            problems.push(format!("kill {form}: {}", describe(&k)));
            continue;
        }
        if let Err(e) = wait_dead(pid, LIMIT) {
            problems.push(format!("kill {form}: {e}"));
            continue;
        }
        let seen = fs::read_to_string(out.join("sig"))
            .ok()
            .map(|s| s.trim().to_string());
        if seen.as_deref() != trapped {
            problems.push(format!(
                "kill {form}: container saw {seen:?}, expected {trapped:?}"
            ));
        }
        if let Err(e) = ctx.wait_status(&id, "stopped", LIMIT) {
            problems.push(format!("kill {form}: {e}"));
        }
    }
    Ok(all_ok(problems)?)
}

/// `kill --all ID TERM` reaches every process: the shell (pid 1 in its
/// namespace, which ignores TERM) only exits once both sleeps are dead.
fn kill_all(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.args(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let (id, pid) = ctx.start_new(&b)?;
    let children = |pid: u32| -> Vec<u32> {
        read_proc(pid, &format!("task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    ensure(
        wait_until(LIMIT, || children(pid).len() == 2),
        format!(
            "the container's shell did not start two sleeps: {:?}",
            children(pid)
        ),
    )?;
    let mut all = children(pid);
    all.push(pid);
    expect_ok(
        &ctx.husk.cmd(&["kill", "--all", &id, "TERM"]),
        "kill --all TERM",
    )?;
    let alive = || {
        all.iter()
            .copied()
            .filter(|p| pid_alive(*p))
            .collect::<Vec<_>>()
    };
    ensure(
        wait_until(LIMIT, || alive().is_empty()),
        format!("still alive after kill --all: {:?}", alive()),
    )?;
    ctx.wait_status(&id, "stopped", LIMIT)?;
    Ok(())
}

fn list_formats(ctx: &mut Ctx) -> TestResult {
    let b1 = sleeper(ctx)?;
    let (created, _) = ctx.create(&b1, &[])?;
    let b2 = sleeper(ctx)?;
    let (running, _) = ctx.start_new(&b2)?;
    let states = [ctx.state(&created)?, ctx.state(&running)?];
    let mut problems = Vec::new();

    let table = ctx.husk.cmd(&["list"]);
    expect_ok(&table, "list")?;
    let mut lines = table.stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header != ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        problems.push(format!("table header {header:?}"));
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    for st in &states {
        let want: Vec<String> = ["id", "pid", "status", "bundle", "created", "owner"]
            .iter()
            .map(|k| match &st[k] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        match rows
            .iter()
            .find(|r| r.first() == st["id"].as_str().as_ref())
        {
            Some(row) if *row == want => {}
            other => problems.push(format!("table row {other:?}, expected {want:?}")),
        }
    }
    if rows.len() != 2 {
        problems.push(format!("table has {} rows, expected 2", rows.len()));
    }

    let json_out = ctx.husk.cmd(&["list", "--format", "json"]);
    expect_ok(&json_out, "list --format json")?;
    match serde_json::from_str::<Value>(&json_out.stdout) {
        Ok(Value::Array(items)) => {
            for st in &states {
                match items.iter().find(|i| i["id"] == st["id"]) {
                    None => problems.push(format!("json list lacks {}", st["id"])),
                    Some(item) => {
                        for k in ["id", "pid", "status", "bundle", "created", "owner"] {
                            if item[k] != st[k] {
                                problems.push(format!(
                                    "json list {}.{k} = {}, state says {}",
                                    st["id"], item[k], st[k]
                                ));
                            }
                        }
                    }
                }
            }
            if items.len() != 2 {
                problems.push(format!("json list has {} entries", items.len()));
            }
        }
        other => problems.push(format!(
            "list --format json is not an array: {other:?} ({})",
            json_out.stdout.trim()
        )),
    }

    let quiet = ctx.husk.cmd(&["list", "-q"]);
    expect_ok(&quiet, "list -q")?;
    let mut ids: Vec<&str> = quiet.stdout.lines().collect();
    ids.sort();
    let mut want = vec![created.as_str(), running.as_str()];
    want.sort();
    if ids != want {
        problems.push(format!("list -q printed {ids:?}, expected {want:?}"));
    }
    Ok(all_ok(problems)?)
}

/// RFC 3339 with a time zone: 2026-01-02T03:04:05.123Z or …+01:00.
fn looks_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (t.ends_with('Z') || t[19..].contains('+') || t[19..].contains('-'))
}

fn state_fields(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    let (id, pid) = ctx.create(&b, &[])?;
    let st = ctx.state(&id)?;
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    check(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        format!("ociVersion {}", st["ociVersion"]),
    );
    check(st["id"] == json!(id), format!("id {}", st["id"]));
    check(
        pid > 0 && pid_alive(pid),
        format!("pid {} is not alive", st["pid"]),
    );
    check(
        st["status"] == "created",
        format!("status {}", st["status"]),
    );
    check(
        st["bundle"] == json!(b.dir),
        format!("bundle {}, expected {}", st["bundle"], b.dir.display()),
    );
    check(
        st["rootfs"] == json!(b.rootfs()),
        format!("rootfs {}, expected {}", st["rootfs"], b.rootfs().display()),
    );
    check(
        st["created"].as_str().is_some_and(looks_rfc3339),
        format!("created {} is not RFC 3339", st["created"]),
    );
    check(st["owner"] == "root", format!("owner {}", st["owner"]));
    Ok(all_ok(problems)?)
}

/// `--pid-file` relative to husk's cwd, content = the state's pid.
fn pid_file(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    // The runtime driver runs husk in the bundle dir.
    let (id, pid) = ctx.create(&b, &["--pid-file", "init.pid"])?;
    let path = b.dir.join("init.pid");
    let text = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(ensure(
        text.trim() == pid.to_string() && text.trim_end() == text.trim(),
        format!("pid file says {text:?}, state of {id} says {pid}"),
    )?)
}

fn run_exit_code(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.args(&["sh", "-c", "exit 3"]);
    let (id, out) = ctx.run(&b, &[]);
    ensure(
        out.code == Some(3),
        format!("run of `exit 3`: {}", describe(&out)),
    )?;
    Ok(ctx.expect_nothing_left(&id, Some(&b.dir))?)
}

/// Spawns `husk run` in the background for a bundle.
fn spawn_run(ctx: &mut Ctx, b: &Bundle) -> Result<(usize, String), String> {
    b.write_config()
        .map_err(|e| format!("write config.json: {e}"))?;
    let id = ctx.new_id();
    let dir = b.dir.to_string_lossy().into_owned();
    let h = ctx.spawn_husk(&["run", "--bundle", &dir, &id], &[])?;
    Ok((h, id))
}

/// The container's init is SIGKILLed from the host: `run` exits 137.
fn run_killed_from_outside(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    let (h, id) = spawn_run(ctx, &b)?;
    let pid = ensure(
        wait_until(LIMIT, || {
            ctx.state(&id).is_ok_and(|s| s["status"] == "running")
        }),
        format!("{id} never became running: {:?}", ctx.child_output(h)),
    )
    .and_then(|()| ctx.pid(&id))?;
    send_signal(pid, libc::SIGKILL)?;
    let status = ctx.wait_child(h, LIMIT)?;
    let code = Ctx::shell_code(&status);
    ensure(
        code == 137,
        format!(
            "run exited {code} ({status}), expected 137: {:?}",
            ctx.child_output(h)
        ),
    )?;
    Ok(ctx.expect_nothing_left(&id, Some(&b.dir))?)
}

/// SIGTERM and SIGUSR1 sent to `husk run` reach the container, whose trap
/// exit code `run` then returns.
fn run_forwards_signals(ctx: &mut Ctx) -> TestResult {
    let mut problems = Vec::new();
    for (sig, name, code) in [(libc::SIGTERM, "TERM", 10), (libc::SIGUSR1, "USR1", 11)] {
        let (b, out) = trapper(ctx)?;
        let (h, _id) = spawn_run(ctx, &b)?;
        if let Err(e) = wait_file(&out.join("ready"), LIMIT) {
            problems.push(format!("{name}: {e}: {:?}", ctx.child_output(h)));
            continue;
        }
        send_signal(ctx.child_pid(h), sig)?;
        match ctx.wait_child(h, LIMIT) {
            Ok(status) if Ctx::shell_code(&status) == code => {}
            Ok(status) => problems.push(format!(
                "SIG{name} to run: exited {} ({status}), expected the container's {code}; container saw {:?}",
                Ctx::shell_code(&status),
                fs::read_to_string(out.join("sig")).ok()
            )),
            Err(e) => problems.push(format!("SIG{name} to run: {e}")),
        }
    }
    Ok(all_ok(problems)?)
}

fn run_detach(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    let id = ctx.new_id();
    let pid_path = ctx.dir.join("detached.pid");
    let t0 = Instant::now();
    let out = ctx
        .husk
        .run_with(&b, &id, &["-d", "--pid-file", &pid_path.to_string_lossy()]);
    expect_ok(&out, "run -d")?;
    ensure(
        t0.elapsed() < LIMIT,
        format!("run -d took {:?}", t0.elapsed()),
    )?;
    let st = ctx.state(&id)?;
    ensure(
        st["status"] == "running",
        format!("status after run -d: {}", st["status"]),
    )?;
    let pid = ctx.pid(&id)?;
    ensure(
        pid_alive(pid),
        format!("pid {pid} of the detached container is not alive"),
    )?;
    let text = fs::read_to_string(&pid_path).map_err(|e| format!("read pid file: {e}"))?;
    Ok(ensure(
        text.trim() == pid.to_string(),
        format!("pid file {text:?}, state pid {pid}"),
    )?)
}

fn spec(ctx: &mut Ctx) -> TestResult {
    let dir = ctx.scratch("spec")?;
    let call = Call {
        cwd: Some(dir.clone()),
        ..Call::default()
    };
    expect_ok(&ctx.husk.invoke(&["spec"], &call), "spec")?;
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| format!("spec wrote no config.json: {e}"))?;
    let config: Value =
        serde_json::from_str(&text).map_err(|e| format!("spec wrote invalid JSON: {e}"))?;
    let mut problems = Vec::new();
    for ptr in [
        "/ociVersion",
        "/process/args",
        "/process/cwd",
        "/root/path",
        "/mounts",
        "/linux/namespaces",
    ] {
        if config.pointer(ptr).is_none() {
            problems.push(format!("config.json has no {ptr}"));
        }
    }
    if config["root"]["path"] != "rootfs" {
        problems.push(format!("root.path is {}", config["root"]["path"]));
    }
    let again = ctx.husk.invoke(&["spec"], &call);
    if let Err(e) = ctx.expect_failure(&again, "spec", &["config.json", "exists"]) {
        problems.push(format!("second spec: {e}"));
    }
    if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        problems.push("the second spec changed config.json".into());
    }
    let other = ctx.scratch("spec-bundle")?;
    expect_ok(
        &ctx.husk
            .cmd(&["spec", "--bundle", &other.to_string_lossy()]),
        "spec --bundle",
    )?;
    if !other.join("config.json").is_file() {
        problems.push("spec --bundle DIR wrote no DIR/config.json".into());
    }
    Ok(all_ok(problems)?)
}

fn spec_rootless(ctx: &mut Ctx) -> TestResult {
    let dir = ctx.scratch("spec")?;
    expect_ok(
        &ctx.husk
            .cmd(&["spec", "--rootless", "--bundle", &dir.to_string_lossy()]),
        "spec --rootless",
    )?;
    let text =
        fs::read_to_string(dir.join("config.json")).map_err(|e| format!("no config.json: {e}"))?;
    let config: Value = serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut problems = Vec::new();
    let has_userns = config["linux"]["namespaces"]
        .as_array()
        .is_some_and(|ns| ns.iter().any(|n| n["type"] == "user"));
    if !has_userns {
        problems.push(format!(
            "no user namespace: {}",
            config["linux"]["namespaces"]
        ));
    }
    let ids = [
        ("uidMappings", nix::unistd::geteuid().as_raw()),
        ("gidMappings", nix::unistd::getegid().as_raw()),
    ];
    for (key, host_id) in ids {
        let maps = config["linux"][key].as_array().cloned().unwrap_or_default();
        let ok = maps.iter().any(|m| {
            m["containerID"] == 0
                && m["hostID"] == json!(host_id)
                && m["size"].as_u64().is_some_and(|s| s >= 1)
        });
        if !ok {
            problems.push(format!(
                "{key} {} does not map 0 to {host_id}",
                config["linux"][key]
            ));
        }
    }
    Ok(all_ok(problems)?)
}

fn features(ctx: &mut Ctx) -> TestResult {
    let out = ctx.husk.cmd(&["features"]);
    expect_ok(&out, "features")?;
    let f: Value =
        serde_json::from_str(&out.stdout).map_err(|e| format!("features is not JSON: {e}"))?;
    let mut problems = Vec::new();
    for k in ["ociVersionMin", "ociVersionMax"] {
        if !f[k].as_str().is_some_and(|v| v.starts_with("1.")) {
            problems.push(format!("{k} = {}", f[k]));
        }
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let hooks = strings(&f["hooks"]);
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        if !hooks.iter().any(|x| x == h) {
            problems.push(format!("hooks lacks {h}"));
        }
    }
    let opts = strings(&f["mountOptions"]);
    for o in ["ro", "rbind", "nosuid", "nodev", "noexec"] {
        if !opts.iter().any(|x| x == o) {
            problems.push(format!("mountOptions lacks {o}"));
        }
    }
    let ns = strings(&f["linux"]["namespaces"]);
    for n in [
        "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time",
    ] {
        if !ns.iter().any(|x| x == n) {
            problems.push(format!("linux.namespaces lacks {n}"));
        }
    }
    let caps = strings(&f["linux"]["capabilities"]);
    for c in ["CAP_SYS_ADMIN", "CAP_KILL", "CAP_CHOWN"] {
        if !caps.iter().any(|x| x == c) {
            problems.push(format!("linux.capabilities lacks {c}"));
        }
    }
    Ok(all_ok(problems)?)
}

fn version(ctx: &mut Ctx) -> TestResult {
    let out = ctx.husk.cmd(&["--version"]);
    expect_ok(&out, "--version")?;
    let first = out.stdout.lines().next().unwrap_or_default();
    ensure(
        first.starts_with("husk version "),
        format!("first line {first:?}"),
    )?;
    Ok(ensure(
        out.stdout.lines().any(|l| l.starts_with("spec: 1.")),
        format!("no `spec: 1.x` line: {:?}", out.stdout),
    )?)
}

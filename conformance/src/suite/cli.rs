//! The runc command line that containerd, Docker and Podman rely on. These are
//! not runtime-spec rules but the interface a drop-in for runc must keep.

use super::{ensure, expect_eq, expect_ok, last_json, skip, Ctx, Test, TestResult};
use crate::host;
use crate::runtime::Call;
use crate::spec;
use serde_json::{json, Value};
use std::fs;
use std::thread::sleep;
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "cli.run_exit_status",
            spec: "runc CLI: run returns the container's exit status",
            run: run_exit_status,
        },
        Test {
            name: "cli.run_detached",
            spec: "runc CLI: run -d leaves the container running",
            run: run_detached,
        },
        Test {
            name: "cli.create_pid_file",
            spec: "runc CLI: create --pid-file writes the container pid",
            run: create_pid_file,
        },
        Test {
            name: "cli.kill_signal_name",
            spec: "runc CLI: kill accepts signal names (SIGUSR1)",
            run: kill_signal_name,
        },
        Test {
            name: "cli.kill_default_sigterm",
            spec: "runc CLI: kill without a signal sends SIGTERM",
            run: kill_default_sigterm,
        },
        Test {
            name: "cli.kill_all",
            spec: "runc CLI: kill --all signals every process of the container",
            run: kill_all,
        },
        Test {
            name: "cli.delete_force_running",
            spec: "runc CLI: delete --force kills and removes a running container",
            run: delete_force_running,
        },
        Test {
            name: "cli.list_json",
            spec: "runc CLI: list --format json lists id and status",
            run: list_json,
        },
        Test {
            name: "cli.ps_json",
            spec: "runc CLI: ps --format json lists the container's pids",
            run: ps_json,
        },
        Test {
            name: "cli.pause_resume",
            spec: "runc CLI: pause/resume freeze the container (status paused)",
            run: pause_resume,
        },
        Test {
            name: "cli.exec_process",
            spec: "runc CLI: exec --process runs a process with its args, env, cwd and user",
            run: exec_process,
        },
        Test {
            name: "cli.exec_detach_pid_file",
            spec: "runc CLI: exec --detach --pid-file",
            run: exec_detach_pid_file,
        },
        Test {
            name: "cli.update_resources",
            spec: "runc CLI: update --resources - reads linux.resources JSON from stdin",
            run: update_resources,
        },
        Test {
            name: "cli.log_json",
            spec: "runc CLI: --log FILE --log-format json records errors as JSON lines",
            run: log_json,
        },
        Test {
            name: "cli.features",
            spec: "features.md: the runtime reports ociVersionMin/ociVersionMax and its features",
            run: features,
        },
        Test {
            name: "cli.spec_default",
            spec: "runc CLI: spec writes a default config.json",
            run: spec_default,
        },
        Test {
            name: "cli.version",
            spec: "runc CLI: --version prints the version",
            run: version,
        },
    ]
}

fn run_exit_status(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.probe_args(&["exit", "3"]);
    let id = ctx.new_id();
    let out = ctx.runtime.run(&b, &id);
    ctx.observe("code", json!(out.code));
    Ok(expect_eq(
        "exit status of run",
        &json!(3),
        &json!(out.code),
    )?)
}

fn run_detached(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.probe_args(&["wait-signal", "60"]);
    let id = ctx.new_id();
    expect_ok(
        &ctx.runtime.run_with(&b, &id, &["--detach"]),
        "run --detach",
    )?;
    Ok(expect_eq(
        "status",
        &json!("running"),
        &ctx.state(&id)?["status"],
    )?)
}

fn create_pid_file(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.probe_args(&["wait-signal", "60"]);
    let file = b.dir.join("pid");
    let id = ctx.new_id();
    let file_arg = file.to_string_lossy().into_owned();
    expect_ok(
        &ctx.runtime.create_with(&b, &id, &["--pid-file", &file_arg]),
        "create --pid-file",
    )?;
    let text = fs::read_to_string(&file).map_err(|e| format!("read pid file: {e}"))?;
    Ok(expect_eq(
        "pid file",
        &json!(ctx.pid(&id)?.to_string()),
        &json!(text.trim()),
    )?)
}

/// Starts a waiting probe, sends `args` to kill, returns the signal it saw.
fn signal_seen(ctx: &mut Ctx, kill_args: &[&str]) -> Result<Value, String> {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let mut args = vec!["kill", id.as_str()];
    args.extend_from_slice(kill_args);
    expect_ok(&ctx.runtime.cmd(&args), &format!("kill {kill_args:?}"))?;
    ctx.wait_stopped(&id)?;
    Ok(ctx.container_output(&b)?["signal"].clone())
}

fn kill_signal_name(ctx: &mut Ctx) -> TestResult {
    let sig = signal_seen(ctx, &["SIGUSR1"])?;
    ctx.observe("signal", sig.clone());
    Ok(expect_eq("signal", &json!(libc::SIGUSR1), &sig)?)
}

fn kill_default_sigterm(ctx: &mut Ctx) -> TestResult {
    let sig = signal_seen(ctx, &[])?;
    ctx.observe("signal", sig.clone());
    Ok(expect_eq("signal", &json!(libc::SIGTERM), &sig)?)
}

fn kill_all(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    expect_ok(&ctx.runtime.cmd(&["kill", "--all", &id, "9"]), "kill --all")?;
    ctx.wait_stopped(&id)?;
    Ok(())
}

fn delete_force_running(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    expect_ok(&ctx.runtime.delete_force(&id), "delete --force")?;
    ensure(
        ctx.state(&id).is_err(),
        "the container still exists after delete --force",
    )?;
    sleep(Duration::from_millis(100));
    Ok(ensure(
        !host::pid_alive(pid),
        "the container process survived delete --force",
    )?)
}

fn list_json(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let out = ctx.runtime.cmd(&["list", "--format", "json"]);
    expect_ok(&out, "list --format json")?;
    let list: Value = serde_json::from_str(&out.stdout)
        .map_err(|e| format!("list output is not JSON ({e}): {}", out.stdout.trim()))?;
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == json!(id)))
        .cloned()
        .unwrap_or(Value::Null);
    ctx.observe("status", entry["status"].clone());
    Ok(expect_eq(
        "listed status",
        &json!("running"),
        &entry["status"],
    )?)
}

fn ps_json(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let out = ctx.runtime.cmd(&["ps", "--format", "json", &id]);
    expect_ok(&out, "ps --format json")?;
    let pids: Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| format!("ps output is not JSON ({e}): {}", out.stdout.trim()))?;
    Ok(ensure(
        pids.as_array().is_some_and(|a| a.contains(&json!(pid))),
        format!("ps {pids} lacks the container pid"),
    )?)
}

fn pause_resume(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    expect_ok(&ctx.runtime.cmd(&["pause", &id]), "pause")?;
    let paused = ctx.state(&id)?["status"].clone();
    expect_ok(&ctx.runtime.cmd(&["resume", &id]), "resume")?;
    let resumed = ctx.state(&id)?["status"].clone();
    ctx.observe("statuses", json!([paused, resumed]));
    expect_eq("status after pause", &json!("paused"), &paused)?;
    Ok(expect_eq(
        "status after resume",
        &json!("running"),
        &resumed,
    )?)
}

fn exec_process(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let mut process = b.config["process"].clone();
    process["args"] = json!(["/probe", "multi", "env", "cwd", "ids"]);
    process["env"] = json!(["PATH=/bin", "EXEC=1"]);
    process["cwd"] = json!("/tmp");
    process["user"] = json!({"uid": 1000, "gid": 1000});
    let file = b.dir.join("process.json");
    fs::write(&file, process.to_string()).map_err(|e| e.to_string())?;
    let out = ctx.runtime.exec_process(&id, &file);
    let got = last_json(&out.stdout)
        .filter(|_| out.success())
        .ok_or_else(|| format!("exec: {}", out.describe()))?;
    ctx.observe(
        "exec",
        json!({"cwd": got["cwd"]["cwd"], "uid": got["ids"]["uid"]}),
    );
    ensure(
        got["env"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("EXEC=1"))),
        format!("EXEC=1 missing from {}", got["env"]),
    )?;
    expect_eq("cwd", &json!("/tmp"), &got["cwd"]["cwd"])?;
    Ok(expect_eq("uid", &json!(1000), &got["ids"]["uid"])?)
}

fn exec_detach_pid_file(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let file = b.dir.join("exec.pid");
    let file_arg = file.to_string_lossy().into_owned();
    let out = ctx.runtime.cmd(&[
        "exec",
        "--detach",
        "--pid-file",
        &file_arg,
        &id,
        "/probe",
        "sleep",
        "60",
    ]);
    expect_ok(&out, "exec --detach --pid-file")?;
    let pid: u32 = fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or("no pid in the exec pid file")?;
    Ok(ensure(
        host::pid_alive(pid),
        format!("exec'd pid {pid} is not alive"),
    )?)
}

fn update_resources(ctx: &mut Ctx) -> TestResult {
    if host::cgroup_mount("pids").is_none() {
        return Err(skip("no cgroup v1 pids hierarchy to read back"));
    }
    let mut b = ctx.bundle()?;
    let path = ctx.cgroup_path("upd");
    b.set("/linux/cgroupsPath", json!(path));
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let call = Call {
        stdin: Some(br#"{"pids": {"limit": 77}}"#.to_vec()),
        ..Call::default()
    };
    expect_ok(
        &ctx.runtime
            .invoke(&["update", "--resources", "-", &id], &call),
        "update --resources -",
    )?;
    let got = host::cgroup_file(pid, "pids", "pids.max")?;
    ctx.observe("pids.max", json!(got));
    Ok(expect_eq(
        "pids.max after update",
        &json!("77"),
        &json!(got),
    )?)
}

fn log_json(ctx: &mut Ctx) -> TestResult {
    let log = ctx.dir().join("runtime.log");
    let log_arg = log.to_string_lossy().into_owned();
    let id = ctx.new_id();
    let out = ctx
        .runtime
        .cmd(&["--log", &log_arg, "--log-format", "json", "state", &id]);
    ensure(!out.success(), "state of a missing container succeeded")?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    ctx.observe("json_lines", json!(!lines.is_empty()));
    let has_error = lines
        .iter()
        .any(|l| l["level"] == "error" && l["msg"].is_string());
    Ok(ensure(
        has_error,
        format!(
            "no JSON error line with level and msg in the log: {:?}",
            text.trim()
        ),
    )?)
}

fn features(ctx: &mut Ctx) -> TestResult {
    let out = ctx.runtime.cmd(&["features"]);
    expect_ok(&out, "features")?;
    let f: Value = serde_json::from_str(&out.stdout)
        .map_err(|e| format!("features output is not JSON: {e}"))?;
    ctx.observe(
        "keys",
        json!(f.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>())),
    );
    ensure(
        f["ociVersionMin"].is_string() && f["ociVersionMax"].is_string(),
        "features lacks ociVersionMin/ociVersionMax",
    )?;
    Ok(ensure(
        f["hooks"].is_array() && f["mountOptions"].is_array(),
        "features lacks hooks/mountOptions",
    )?)
}

fn spec_default(ctx: &mut Ctx) -> TestResult {
    let dir = ctx.scratch("spec")?;
    let dir_arg = dir.to_string_lossy().into_owned();
    expect_ok(&ctx.runtime.cmd(&["spec", "--bundle", &dir_arg]), "spec")?;
    let text = fs::read_to_string(dir.join("config.json"))
        .map_err(|e| format!("spec wrote no config.json: {e}"))?;
    let got: Value =
        serde_json::from_str(&text).map_err(|e| format!("config.json is not JSON: {e}"))?;
    ctx.observe("matches_runc_default", json!(got == spec::default_config()));
    for key in [
        "/ociVersion",
        "/process/args",
        "/root/path",
        "/mounts",
        "/linux/namespaces",
    ] {
        ensure(
            got.pointer(key).is_some(),
            format!("the generated config lacks {key}"),
        )?;
    }
    Ok(())
}

fn version(ctx: &mut Ctx) -> TestResult {
    let out = ctx.runtime.cmd(&["--version"]);
    expect_ok(&out, "--version")?;
    Ok(ensure(
        out.stdout.to_lowercase().contains("version"),
        format!("--version printed {:?}", out.stdout.trim()),
    )?)
}

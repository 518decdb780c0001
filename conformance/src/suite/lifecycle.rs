//! runtime.md: the state of a container and the create/start/kill/delete/state
//! operations, including what each must refuse.

use super::{ensure, expect_eq, expect_error, expect_ok, Ctx, Test, TestResult};
use crate::bundle::Bundle;
use crate::host;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    vec![
        Test { name: "lifecycle.create_status_created", spec: "runtime.md#create: upon success the status MUST be created", run: create_status_created },
        Test { name: "lifecycle.create_does_not_run_program", spec: "runtime.md#lifecycle step 2: the user-specified program MUST NOT be run at create; #start: start MUST run it", run: create_does_not_run_program },
        Test { name: "lifecycle.state_fields", spec: "runtime.md#state: ociVersion, id, status, pid, bundle (absolute), annotations", run: state_fields },
        Test { name: "lifecycle.state_pid_is_container_process", spec: "runtime.md#state: pid is the container process as seen by the host", run: state_pid_is_container_process },
        Test { name: "lifecycle.state_unknown_errors", spec: "runtime.md#query-state: querying a container that does not exist MUST generate an error", run: state_unknown_errors },
        Test { name: "lifecycle.start_status_running", spec: "runtime.md#state: running after the program was executed", run: start_status_running },
        Test { name: "lifecycle.start_running_errors", spec: "runtime.md#start: starting a container that is not created MUST have no effect and MUST generate an error", run: start_running_errors },
        Test { name: "lifecycle.start_stopped_errors", spec: "runtime.md#start: starting a container that is not created MUST have no effect and MUST generate an error", run: start_stopped_errors },
        Test { name: "lifecycle.start_unknown_errors", spec: "runtime.md#start: starting a container that does not exist MUST generate an error", run: start_unknown_errors },
        Test { name: "lifecycle.start_without_process_errors", spec: "runtime.md#start: start MUST generate an error if process was not set", run: start_without_process_errors },
        Test { name: "lifecycle.status_stopped_after_exit", spec: "runtime.md#state: stopped once the container process has exited", run: status_stopped_after_exit },
        Test { name: "lifecycle.kill_created", spec: "runtime.md#kill: signals go to created or running containers", run: kill_created },
        Test { name: "lifecycle.kill_running_delivers_signal", spec: "runtime.md#kill: MUST send the specified signal to the container process", run: kill_running_delivers_signal },
        Test { name: "lifecycle.kill_stopped_errors", spec: "runtime.md#kill: signalling a container neither created nor running MUST have no effect and MUST generate an error", run: kill_stopped_errors },
        Test { name: "lifecycle.kill_unknown_errors", spec: "runtime.md#kill: a container id that does not exist MUST generate an error", run: kill_unknown_errors },
        Test { name: "lifecycle.delete_running_errors", spec: "runtime.md#delete: deleting a container that is not stopped MUST have no effect and MUST generate an error", run: delete_running_errors },
        Test { name: "lifecycle.delete_created_errors", spec: "runtime.md#delete: deleting a container that is not stopped MUST have no effect and MUST generate an error", run: delete_created_errors },
        Test { name: "lifecycle.delete_stopped", spec: "runtime.md#delete: deleting a stopped container removes it; its ID MAY be reused", run: delete_stopped },
        Test { name: "lifecycle.delete_unknown_errors", spec: "runtime.md#delete: a container id that does not exist MUST generate an error", run: delete_unknown_errors },
        Test { name: "lifecycle.create_duplicate_id_errors", spec: "runtime.md#create: an id that is not unique MUST generate an error and a new container MUST NOT be created", run: create_duplicate_id_errors },
        Test { name: "lifecycle.create_invalid_id_errors", spec: "runtime.md#create: an id not valid in any other way MUST generate an error", run: create_invalid_id_errors },
        Test { name: "lifecycle.create_missing_config_errors", spec: "bundle.md: config.json is REQUIRED; runtime.md#lifecycle: unable to create the environment MUST generate an error", run: create_missing_config_errors },
        Test { name: "lifecycle.create_missing_rootfs_errors", spec: "config.md#root: a directory MUST exist at root.path", run: create_missing_rootfs_errors },
        Test { name: "lifecycle.create_error_leaves_nothing", spec: "runtime.md#errors: an error MUST leave the environment as if the operation were never attempted", run: create_error_leaves_nothing },
        Test { name: "lifecycle.config_changes_after_create_ignored", spec: "runtime.md#create: changes to config.json after create do not affect the container", run: config_changes_after_create_ignored },
    ]
}

/// A bundle whose process leaves /marker in a writable rootfs and waits.
fn marking_bundle(ctx: &mut Ctx) -> Result<Bundle, String> {
    let mut b = ctx.bundle()?;
    b.set("/root/readonly", json!(false))
        .probe_args(&["mark", "/marker", "60"]);
    Ok(b)
}

/// A container whose process has already exited.
fn stopped_container(ctx: &mut Ctx) -> Result<String, String> {
    let mut b = ctx.bundle()?;
    b.probe_args(&["exit", "0"]);
    let id = ctx.create_started(&b)?;
    ctx.wait_stopped(&id)?;
    Ok(id)
}

fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        sleep(Duration::from_millis(10));
    }
    false
}

fn status_of(ctx: &Ctx, id: &str) -> Result<Value, String> {
    Ok(ctx.state(id)?["status"].clone())
}

fn create_status_created(ctx: &mut Ctx) -> TestResult {
    let b = marking_bundle(ctx)?;
    let id = ctx.create(&b)?;
    let status = status_of(ctx, &id)?;
    ctx.observe("status", status.clone());
    expect_eq("status after create", &json!("created"), &status)?;
    let pid = ctx.pid(&id)?;
    ensure(
        host::pid_alive(pid),
        format!("pid {pid} of the created container is not alive"),
    )?;
    Ok(())
}

fn create_does_not_run_program(ctx: &mut Ctx) -> TestResult {
    let b = marking_bundle(ctx)?;
    let marker = b.rootfs().join("marker");
    let id = ctx.create(&b)?;
    sleep(Duration::from_millis(200));
    let ran_at_create = marker.exists();
    ctx.observe("ran_at_create", json!(ran_at_create));
    ensure(!ran_at_create, "the user program ran during create")?;
    expect_ok(&ctx.runtime.start(&id), "start")?;
    let ran_at_start = wait_for_file(&marker, Duration::from_secs(5));
    ctx.observe("ran_at_start", json!(ran_at_start));
    ensure(ran_at_start, "the user program did not run after start")?;
    Ok(())
}

fn state_fields(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let annotations = json!({"org.example.conformance": "yes", "org.example.empty": ""});
    b.set("/annotations", annotations.clone())
        .probe_args(&["wait-signal", "60"]);
    let id = ctx.create(&b)?;
    let state = ctx.state(&id)?;
    let keys: Vec<&String> = state
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    ctx.observe("keys", json!(keys));
    ensure(
        state["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        format!("ociVersion missing: {state}"),
    )?;
    expect_eq("id", &json!(id), &state["id"])?;
    expect_eq("status", &json!("created"), &state["status"])?;
    ensure(
        state["pid"].as_u64().is_some_and(|p| p > 0),
        format!("pid missing while created: {state}"),
    )?;
    let bundle = state["bundle"].as_str().unwrap_or("");
    ensure(
        Path::new(bundle).is_absolute(),
        format!("bundle is not an absolute path: {bundle:?}"),
    )?;
    ensure(
        same_file(Path::new(bundle), &b.dir),
        format!("bundle {bundle:?} is not {}", b.dir.display()),
    )?;
    expect_eq("annotations", &annotations, &state["annotations"])?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

fn state_pid_is_container_process(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .map_err(|e| format!("read /proc/{pid}/cmdline: {e}"))?;
    let argv: Vec<String> = cmdline
        .split(|c| *c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ctx.observe("argv", json!(argv));
    expect_eq(
        "argv of the state's pid",
        &json!(["/probe", "wait-signal", "60"]),
        &json!(argv),
    )?;
    ensure(
        host::ns_link(pid, "pid")? != host::own_ns("pid")?,
        "the state's pid is not in the container's pid namespace",
    )?;
    Ok(())
}

fn state_unknown_errors(ctx: &mut Ctx) -> TestResult {
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.state(&id),
        "state of a container that does not exist",
    )?)
}

fn start_status_running(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let status = status_of(ctx, &id)?;
    ctx.observe("status", status.clone());
    expect_eq("status after start", &json!("running"), &status)?;
    Ok(())
}

fn start_running_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let again = ctx.runtime.start(&id);
    ctx.observe("second_start_ok", json!(again.success()));
    expect_error(&again, "start of a running container")?;
    expect_eq(
        "status after the refused start",
        &json!("running"),
        &status_of(ctx, &id)?,
    )?;
    ensure(
        ctx.pid(&id)? == pid && host::pid_alive(pid),
        "the refused start changed the container process",
    )?;
    Ok(())
}

fn start_stopped_errors(ctx: &mut Ctx) -> TestResult {
    let id = stopped_container(ctx)?;
    let again = ctx.runtime.start(&id);
    ctx.observe("start_stopped_ok", json!(again.success()));
    expect_error(&again, "start of a stopped container")?;
    expect_eq(
        "status after the refused start",
        &json!("stopped"),
        &status_of(ctx, &id)?,
    )?;
    Ok(())
}

fn start_unknown_errors(ctx: &mut Ctx) -> TestResult {
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.start(&id),
        "start of a container that does not exist",
    )?)
}

fn start_without_process_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.remove("/process");
    let id = ctx.new_id();
    let create = ctx.runtime.create(&b, &id);
    ctx.observe("create_ok", json!(create.success()));
    if !create.success() {
        // Refusing at create is also an error before any program runs.
        return Ok(());
    }
    let start = ctx.runtime.start(&id);
    ctx.observe("start_ok", json!(start.success()));
    Ok(expect_error(&start, "start without process")?)
}

fn status_stopped_after_exit(ctx: &mut Ctx) -> TestResult {
    let id = stopped_container(ctx)?;
    let state = ctx.state(&id)?;
    ctx.observe("status", state["status"].clone());
    ctx.observe("has_pid", json!(state.get("pid").is_some()));
    Ok(())
}

fn kill_created(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.probe_args(&["wait-signal", "60"]);
    let id = ctx.create(&b)?;
    let kill = ctx.runtime.kill(&id, "9");
    ctx.observe("kill_ok", json!(kill.success()));
    expect_ok(&kill, "kill 9 of a created container")?;
    ctx.wait_stopped(&id)?;
    Ok(())
}

fn kill_running_delivers_signal(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    expect_ok(&ctx.runtime.kill(&id, "10"), "kill 10 (SIGUSR1)")?;
    ctx.wait_stopped(&id)?;
    let out = ctx.container_output(&b)?;
    ctx.observe("received", out.clone());
    expect_eq(
        "signal seen by the process",
        &json!(libc::SIGUSR1),
        &out["signal"],
    )?;
    Ok(())
}

fn kill_stopped_errors(ctx: &mut Ctx) -> TestResult {
    let id = stopped_container(ctx)?;
    let kill = ctx.runtime.kill(&id, "9");
    ctx.observe("kill_ok", json!(kill.success()));
    expect_error(&kill, "kill of a stopped container")?;
    expect_eq(
        "status after the refused kill",
        &json!("stopped"),
        &status_of(ctx, &id)?,
    )?;
    Ok(())
}

fn kill_unknown_errors(ctx: &mut Ctx) -> TestResult {
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.kill(&id, "9"),
        "kill of a container that does not exist",
    )?)
}

fn delete_running_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let pid = ctx.pid(&id)?;
    let del = ctx.runtime.delete(&id);
    ctx.observe("delete_ok", json!(del.success()));
    expect_error(&del, "delete of a running container")?;
    ensure(
        host::pid_alive(pid),
        "the refused delete killed the container process",
    )?;
    expect_eq(
        "status after the refused delete",
        &json!("running"),
        &status_of(ctx, &id)?,
    )?;
    Ok(())
}

fn delete_created_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.probe_args(&["wait-signal", "60"]);
    let id = ctx.create(&b)?;
    let del = ctx.runtime.delete(&id);
    ctx.observe("delete_ok", json!(del.success()));
    expect_error(&del, "delete of a created (not stopped) container")?;
    expect_eq(
        "status after the refused delete",
        &json!("created"),
        &status_of(ctx, &id)?,
    )?;
    Ok(())
}

fn delete_stopped(ctx: &mut Ctx) -> TestResult {
    let id = stopped_container(ctx)?;
    expect_ok(&ctx.runtime.delete(&id), "delete of a stopped container")?;
    expect_error(&ctx.runtime.state(&id), "state after delete")?;
    // Once deleted, the id may be used again.
    let mut b = ctx.bundle()?;
    b.probe_args(&["exit", "0"]);
    expect_ok(
        &ctx.runtime.create(&b, &id),
        "create with the id of a deleted container",
    )?;
    Ok(())
}

fn delete_unknown_errors(ctx: &mut Ctx) -> TestResult {
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.delete(&id),
        "delete of a container that does not exist",
    )?)
}

fn create_duplicate_id_errors(ctx: &mut Ctx) -> TestResult {
    let mut first = ctx.bundle()?;
    first.probe_args(&["wait-signal", "60"]);
    let id = ctx.create(&first)?;
    let pid = ctx.pid(&id)?;
    let mut second = ctx.bundle()?;
    second.probe_args(&["exit", "0"]);
    let dup = ctx.runtime.create(&second, &id);
    ctx.observe("duplicate_ok", json!(dup.success()));
    expect_error(&dup, "create with an id already in use")?;
    let state = ctx.state(&id)?;
    ensure(
        state["pid"] == json!(pid),
        "the refused create replaced the first container",
    )?;
    ensure(
        state["bundle"]
            .as_str()
            .is_some_and(|p| same_file(Path::new(p), &first.dir)),
        "the refused create changed the first container's bundle",
    )?;
    Ok(())
}

fn create_invalid_id_errors(ctx: &mut Ctx) -> TestResult {
    let b = ctx.bundle()?;
    let escape = ctx.dir().join("escaped");
    // Relative to a --root under the test dir, this names a sibling directory.
    let bad = format!(
        "../{}",
        escape
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("escaped")
    );
    for id in [bad.as_str(), "has/slash", ""] {
        let out = ctx.runtime.create(&b, id);
        if out.success() {
            let _ = ctx.runtime.delete_force(id);
        }
        expect_error(&out, &format!("create with id {id:?}"))?;
    }
    ensure(
        !escape.exists(),
        "an id with ../ created a directory outside the state root",
    )?;
    Ok(())
}

fn create_missing_config_errors(ctx: &mut Ctx) -> TestResult {
    let b = ctx.bundle()?;
    let id = ctx.new_id();
    let dir = b.dir.to_string_lossy().into_owned();
    // No write_config: the bundle has a rootfs but no config.json.
    let out = ctx.runtime.cmd(&["create", "--bundle", &dir, &id]);
    expect_error(&out, "create of a bundle without config.json")?;
    Ok(expect_error(
        &ctx.runtime.state(&id),
        "state after the failed create",
    )?)
}

fn create_missing_rootfs_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/root/path", json!("no-such-rootfs"));
    let id = ctx.new_id();
    expect_error(
        &ctx.runtime.create(&b, &id),
        "create with a missing root.path",
    )?;
    Ok(expect_error(
        &ctx.runtime.state(&id),
        "state after the failed create",
    )?)
}

fn create_error_leaves_nothing(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.push(
        "/mounts",
        json!({"destination": "/bogus", "type": "no-such-fs", "source": "none"}),
    );
    let id = ctx.new_id();
    expect_error(
        &ctx.runtime.create(&b, &id),
        "create with a mount of an unknown filesystem type",
    )?;
    expect_error(&ctx.runtime.state(&id), "state after the failed create")?;
    let mut good = ctx.bundle()?;
    good.probe_args(&["exit", "0"]);
    Ok(expect_ok(
        &ctx.runtime.create(&good, &id),
        "create reusing the id of the failed create",
    )?)
}

fn config_changes_after_create_ignored(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.probe_args(&["wait-signal", "60"]);
    let id = ctx.create(&b)?;
    b.probe_args(&["exit", "7"]);
    b.write_config()
        .map_err(|e| format!("rewrite config.json: {e}"))?;
    expect_ok(&ctx.runtime.start(&id), "start")?;
    ctx.wait_for_handlers(&id)?;
    expect_eq(
        "status after start",
        &json!("running"),
        &status_of(ctx, &id)?,
    )?;
    expect_ok(&ctx.runtime.kill(&id, "10"), "kill 10")?;
    ctx.wait_stopped(&id)?;
    let out = ctx.container_output(&b)?;
    Ok(expect_eq(
        "the process is the one configured at create",
        &json!(libc::SIGUSR1),
        &out["signal"],
    )?)
}

//! config.md#posix-platform-hooks and runtime.md#lifecycle: when each hook
//! runs, in which namespace, with what on stdin, and what failures do.
//!
//! Every hook is the probe's `hook` command: it writes what it saw to
//! `DIR/NAME.json` and appends NAME to `DIR/order`. Hooks in the runtime
//! namespace use the host path of the probe and the directory; container hooks
//! after pivot_root use `/probe` and a bind mount of the directory at /hooks.

use super::{ensure, expect_eq, expect_error, expect_ok, Ctx, Test, TestResult};
use crate::bundle::Bundle;
use crate::host;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    vec![
        Test { name: "hooks.order_and_phases", spec: "config.md#hooks: hooks MUST be called in the listed order; prestart/createRuntime/createContainer during create, startContainer/poststart during start, poststop during delete", run: order_and_phases },
        Test { name: "hooks.state_on_stdin", spec: "config.md#hooks: the state of the container MUST be passed to hooks over stdin", run: state_on_stdin },
        Test { name: "hooks.args_and_env", spec: "config.md#hooks: args and env have the semantics of execv argv and environ", run: args_and_env },
        Test { name: "hooks.runtime_namespace", spec: "config.md#hooks: prestart, createRuntime, poststart and poststop MUST be executed in the runtime namespace", run: runtime_namespace },
        Test { name: "hooks.container_namespace", spec: "config.md#hooks: createContainer and startContainer MUST be executed in the container namespace; startContainer's path resolves in the container", run: container_namespace },
        Test { name: "hooks.prestart_failure_errors", spec: "runtime.md#lifecycle step 3: a failing prestart hook MUST generate an error and stop the container", run: prestart_failure_errors },
        Test { name: "hooks.create_runtime_failure_errors", spec: "runtime.md#lifecycle step 4: a failing createRuntime hook MUST generate an error and stop the container", run: create_runtime_failure_errors },
        Test { name: "hooks.create_container_failure_errors", spec: "runtime.md#lifecycle step 5: a failing createContainer hook MUST generate an error and stop the container", run: create_container_failure_errors },
        Test { name: "hooks.start_container_failure_errors", spec: "runtime.md#lifecycle step 7: a failing startContainer hook MUST generate an error and stop the container", run: start_container_failure_errors },
        Test { name: "hooks.failure_runs_poststop", spec: "runtime.md#lifecycle: after a failing create hook the lifecycle continues at step 12, so poststop hooks (step 13) MUST run", run: failure_runs_poststop },
        Test { name: "hooks.poststart_failure_warns", spec: "runtime.md#lifecycle step 9: a failing poststart hook MUST only log a warning; remaining hooks and lifecycle continue", run: poststart_failure_warns },
        Test { name: "hooks.poststop_failure_warns", spec: "runtime.md#lifecycle step 13: a failing poststop hook MUST only log a warning; remaining hooks and lifecycle continue", run: poststop_failure_warns },
        Test { name: "hooks.timeout_aborts", spec: "config.md#hooks: timeout is the number of seconds before aborting the hook", run: timeout_aborts },
        Test { name: "hooks.relative_path_errors", spec: "config.md#hooks: path MUST be absolute; config.md#valid-values: invalid values MUST generate an error", run: relative_path_errors },
        Test { name: "hooks.zero_timeout_errors", spec: "config.md#hooks: if set, timeout MUST be greater than zero; invalid values MUST generate an error", run: zero_timeout_errors },
    ]
}

/// A directory for hook records shared by host and container.
struct Rig {
    dir: PathBuf,
    probe: PathBuf,
}

impl Rig {
    fn new(ctx: &mut Ctx) -> Result<Rig, String> {
        let dir = ctx.scratch("hooks")?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
        Ok(Rig {
            dir,
            probe: ctx.probe.clone(),
        })
    }

    /// A hook that runs the host's probe and writes to the host directory.
    fn host(&self, name: &str, opts: &[&str]) -> Value {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args = vec!["probe".to_string(), "hook".into(), name.into(), dir];
        args.extend(opts.iter().map(|o| o.to_string()));
        json!({"path": self.probe.to_string_lossy(), "args": args, "env": [format!("HOOK={name}")]})
    }

    /// A hook resolved inside the container (after pivot_root).
    fn inside(&self, name: &str, opts: &[&str]) -> Value {
        let mut args = vec![
            "probe".to_string(),
            "hook".into(),
            name.into(),
            "/hooks".into(),
        ];
        args.extend(opts.iter().map(|o| o.to_string()));
        json!({"path": "/probe", "args": args, "env": [format!("HOOK={name}")]})
    }

    /// Adds the bind mount that container hooks write through.
    fn mount_into(&self, b: &mut Bundle) {
        b.push("/mounts", json!({"destination": "/hooks", "type": "bind", "source": self.dir.to_string_lossy(), "options": ["rbind", "rw"]}));
    }

    fn order(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("order"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn record(&self, name: &str) -> Option<Value> {
        let text = fs::read_to_string(self.dir.join(format!("{name}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn record_of(&self, name: &str) -> Result<Value, String> {
        self.record(name).ok_or_else(|| {
            format!(
                "the {name} hook did not run (order so far: {:?})",
                self.order()
            )
        })
    }
}

/// A bundle with the rig mounted, a writable rootfs and a marking program.
fn hooked_bundle(ctx: &mut Ctx, rig: &Rig, hooks: Value) -> Result<Bundle, String> {
    let mut b = ctx.bundle()?;
    rig.mount_into(&mut b);
    b.set("/hooks", hooks)
        .set("/root/readonly", json!(false))
        .probe_args(&["mark", "/marker", "60"]);
    Ok(b)
}

fn all_hooks(rig: &Rig) -> Value {
    json!({
        "prestart": [rig.host("prestart", &[])],
        "createRuntime": [rig.host("createRuntime1", &[]), rig.host("createRuntime2", &[])],
        "createContainer": [rig.host("createContainer", &[])],
        "startContainer": [rig.inside("startContainer", &[])],
        "poststart": [rig.host("poststart", &[])],
        "poststop": [rig.host("poststop", &[])],
    })
}

/// Waits until the hook list stops growing (poststart may be asynchronous).
fn settled_order(rig: &Rig, want_len: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while rig.order().len() < want_len && Instant::now() < deadline {
        sleep(Duration::from_millis(10));
    }
    rig.order()
}

fn order_and_phases(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let b = hooked_bundle(ctx, &rig, all_hooks(&rig))?;
    let id = ctx.create(&b)?;
    let after_create = rig.order();
    expect_ok(&ctx.runtime.start(&id), "start")?;
    let after_start = settled_order(&rig, 6);
    expect_ok(&ctx.runtime.kill(&id, "9"), "kill 9")?;
    ctx.wait_stopped(&id)?;
    expect_ok(&ctx.runtime.delete(&id), "delete")?;
    let after_delete = rig.order();
    ctx.observe("after_create", json!(after_create));
    ctx.observe("after_start", json!(after_start));
    ctx.observe("after_delete", json!(after_delete));
    let create_phase = [
        "prestart",
        "createRuntime1",
        "createRuntime2",
        "createContainer",
    ];
    expect_eq(
        "hooks run by create",
        &json!(create_phase),
        &json!(after_create),
    )?;
    let mut start_phase = create_phase.to_vec();
    start_phase.extend(["startContainer", "poststart"]);
    expect_eq(
        "hooks run by create and start",
        &json!(start_phase),
        &json!(after_start),
    )?;
    start_phase.push("poststop");
    Ok(expect_eq(
        "hooks run by create, start and delete",
        &json!(start_phase),
        &json!(after_delete),
    )?)
}

fn state_on_stdin(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let mut b = hooked_bundle(ctx, &rig, all_hooks(&rig))?;
    b.set("/annotations", json!({"org.example.hook": "1"}));
    let id = ctx.create(&b)?;
    let pid = ctx.pid(&id)?;
    expect_ok(&ctx.runtime.start(&id), "start")?;
    settled_order(&rig, 6);
    expect_ok(&ctx.runtime.kill(&id, "9"), "kill 9")?;
    ctx.wait_stopped(&id)?;
    expect_ok(&ctx.runtime.delete(&id), "delete")?;
    let names = [
        "prestart",
        "createRuntime1",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    let states: Vec<(&str, Value)> = names
        .iter()
        .map(|n| {
            (
                *n,
                rig.record(n)
                    .map(|r| r["stdin"].clone())
                    .unwrap_or(Value::Null),
            )
        })
        .collect();
    // What each hook was told, with the pid reduced to how it relates to the container.
    let seen: serde_json::Map<String, Value> = states
        .iter()
        .map(|(n, s)| {
            let pid_seen = if s["pid"] == json!(pid) {
                json!("host pid")
            } else {
                s["pid"].clone()
            };
            (
                n.to_string(),
                json!({"status": s["status"], "pid": pid_seen}),
            )
        })
        .collect();
    ctx.observe("states", Value::Object(seen));
    for (name, state) in &states {
        check_hook_state(name, state, &id, &b.dir)?;
    }
    Ok(())
}

fn check_hook_state(name: &str, state: &Value, id: &str, bundle: &Path) -> Result<(), String> {
    ensure(
        state.is_object(),
        format!("{name}: stdin is not a JSON state: {state}"),
    )?;
    ensure(
        state["ociVersion"].is_string(),
        format!("{name}: state has no ociVersion: {state}"),
    )?;
    expect_eq(&format!("{name}: state id"), &json!(id), &state["id"])?;
    let b = state["bundle"].as_str().unwrap_or("");
    ensure(
        fs::canonicalize(b).ok() == fs::canonicalize(bundle).ok(),
        format!("{name}: state bundle {b:?} is not {}", bundle.display()),
    )?;
    expect_eq(
        &format!("{name}: state annotations"),
        &json!({"org.example.hook": "1"}),
        &state["annotations"],
    )
}

fn args_and_env(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let mut hook = rig.host("createRuntime", &[]);
    hook["args"][0] = json!("custom-argv0");
    hook["env"] = json!(["HOOKVAR=1", "OTHER=two words"]);
    let b = hooked_bundle(ctx, &rig, json!({"createRuntime": [hook]}))?;
    ctx.create(&b)?;
    let rec = rig.record_of("createRuntime")?;
    ctx.observe("argv", rec["argv"].clone());
    ctx.observe("env", rec["env"].clone());
    let dir = rig.dir.to_string_lossy().into_owned();
    expect_eq(
        "hook argv",
        &json!(["custom-argv0", "hook", "createRuntime", dir]),
        &rec["argv"],
    )?;
    Ok(expect_eq(
        "hook environment",
        &json!(["HOOKVAR=1", "OTHER=two words"]),
        &rec["env"],
    )?)
}

fn runtime_namespace(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let hooks = json!({
        "prestart": [rig.host("prestart", &[])],
        "createRuntime": [rig.host("createRuntime", &[])],
        "poststart": [rig.host("poststart", &[])],
        "poststop": [rig.host("poststop", &[])],
    });
    let b = hooked_bundle(ctx, &rig, hooks)?;
    let id = ctx.create_started(&b)?;
    settled_order(&rig, 3);
    expect_ok(&ctx.runtime.kill(&id, "9"), "kill 9")?;
    ctx.wait_stopped(&id)?;
    expect_ok(&ctx.runtime.delete(&id), "delete")?;
    let mut seen = serde_json::Map::new();
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        let rec = rig.record_of(name)?;
        // The mount namespace is left out: a runtime may run in a private one.
        let same: Vec<bool> = ["net", "uts", "ipc", "pid"]
            .iter()
            .map(|ns| host::own_ns(ns).ok().as_deref() == rec["ns"][ns].as_str())
            .collect();
        seen.insert(name.into(), json!(same));
        ensure(
            same.iter().all(|s| *s),
            format!("{name} hook is not in the runtime's net/uts/ipc/pid namespaces"),
        )?;
    }
    ctx.observe("in_runtime_namespaces", Value::Object(seen));
    Ok(())
}

fn container_namespace(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let hooks = json!({
        "createContainer": [rig.host("createContainer", &[])],
        "startContainer": [rig.inside("startContainer", &[])],
    });
    let mut b = hooked_bundle(ctx, &rig, hooks)?;
    b.set("/hostname", json!("hooked"));
    let id = ctx.create_started(&b)?;
    let pid = ctx.pid(&id)?;
    for name in ["createContainer", "startContainer"] {
        let rec = rig.record_of(name)?;
        ctx.observe(&format!("{name}_hostname"), rec["hostname"].clone());
        for ns in ["net", "uts", "ipc", "mnt"] {
            let want = host::ns_link(pid, ns)?;
            ensure(
                rec["ns"][ns].as_str() == Some(want.as_str()),
                format!("{name} hook is not in the container's {ns} namespace"),
            )?;
        }
    }
    Ok(())
}

/// Runs create with a failing hook in `phase` and checks the aftermath.
fn failing_create_hook(ctx: &mut Ctx, phase: &str) -> TestResult {
    let rig = Rig::new(ctx)?;
    let make = |name: &str, opts: &[&str]| {
        if phase == "startContainer" {
            rig.inside(name, opts)
        } else {
            rig.host(name, opts)
        }
    };
    let hooks =
        json!({ phase: [make("first", &[]), make("failing", &["exit=1"]), make("after", &[])] });
    let b = hooked_bundle(ctx, &rig, hooks)?;
    let id = ctx.new_id();
    let create = ctx.runtime.create(&b, &id);
    let out = if phase == "startContainer" {
        expect_ok(&create, "create")?;
        ctx.runtime.start(&id)
    } else {
        create
    };
    ctx.observe("order", json!(rig.order()));
    expect_error(
        &out,
        &format!("the operation running a failing {phase} hook"),
    )?;
    ensure(
        rig.record("after").is_none(),
        format!("the {phase} hook after the failing one still ran"),
    )?;
    sleep(Duration::from_millis(100));
    ensure(
        !b.rootfs().join("marker").exists(),
        "the user program ran although a hook failed",
    )?;
    if let Ok(state) = ctx.state(&id) {
        ctx.observe("status_after", state["status"].clone());
        ensure(
            state["status"] != "running",
            "the container is running although a hook failed",
        )?;
    }
    Ok(())
}

fn prestart_failure_errors(ctx: &mut Ctx) -> TestResult {
    failing_create_hook(ctx, "prestart")
}

fn create_runtime_failure_errors(ctx: &mut Ctx) -> TestResult {
    failing_create_hook(ctx, "createRuntime")
}

fn create_container_failure_errors(ctx: &mut Ctx) -> TestResult {
    failing_create_hook(ctx, "createContainer")
}

fn start_container_failure_errors(ctx: &mut Ctx) -> TestResult {
    failing_create_hook(ctx, "startContainer")
}

fn failure_runs_poststop(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let hooks = json!({
        "createRuntime": [rig.host("failing", &["exit=1"])],
        "poststop": [rig.host("poststop", &[])],
    });
    let b = hooked_bundle(ctx, &rig, hooks)?;
    let id = ctx.new_id();
    let create = ctx.runtime.create(&b, &id);
    ctx.observe("order", json!(rig.order()));
    expect_error(&create, "create with a failing createRuntime hook")?;
    ensure(
        rig.record("poststop").is_some(),
        "the poststop hook did not run after the failed create",
    )?;
    Ok(())
}

fn poststart_failure_warns(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let hooks = json!({"poststart": [rig.host("failing", &["exit=1"]), rig.host("after", &[])]});
    let b = hooked_bundle(ctx, &rig, hooks)?;
    let id = ctx.create(&b)?;
    let start = ctx.runtime.start(&id);
    let order = settled_order(&rig, 2);
    ctx.observe("start_ok", json!(start.success()));
    ctx.observe("order", json!(order));
    expect_ok(&start, "start with a failing poststart hook")?;
    ensure(
        rig.record("after").is_some(),
        "the poststart hook after the failing one did not run",
    )?;
    Ok(expect_eq(
        "status",
        &json!("running"),
        &ctx.state(&id)?["status"],
    )?)
}

fn poststop_failure_warns(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let hooks = json!({"poststop": [rig.host("failing", &["exit=1"]), rig.host("after", &[])]});
    let b = hooked_bundle(ctx, &rig, hooks)?;
    let id = ctx.create_started(&b)?;
    expect_ok(&ctx.runtime.kill(&id, "9"), "kill 9")?;
    ctx.wait_stopped(&id)?;
    let del = ctx.runtime.delete(&id);
    ctx.observe("delete_ok", json!(del.success()));
    ctx.observe("order", json!(rig.order()));
    expect_ok(&del, "delete with a failing poststop hook")?;
    ensure(
        rig.record("after").is_some(),
        "the poststop hook after the failing one did not run",
    )?;
    Ok(expect_error(&ctx.runtime.state(&id), "state after delete")?)
}

fn timeout_aborts(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let mut hook = rig.host("slow", &["sleep=30"]);
    hook["timeout"] = json!(1);
    let b = hooked_bundle(ctx, &rig, json!({"createRuntime": [hook]}))?;
    let id = ctx.new_id();
    let out = ctx.runtime.create(&b, &id);
    ctx.observe("create_ok", json!(out.success()));
    ensure(
        out.elapsed < Duration::from_secs(15),
        format!("create took {:?} with a 1s hook timeout", out.elapsed),
    )?;
    Ok(expect_error(&out, "create whose hook timed out")?)
}

fn relative_path_errors(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let mut hook = rig.host("relative", &[]);
    hook["path"] = json!("probe");
    let b = hooked_bundle(ctx, &rig, json!({"createRuntime": [hook]}))?;
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.create(&b, &id),
        "create with a relative hook path",
    )?)
}

fn zero_timeout_errors(ctx: &mut Ctx) -> TestResult {
    let rig = Rig::new(ctx)?;
    let mut hook = rig.host("zero", &[]);
    hook["timeout"] = json!(0);
    let b = hooked_bundle(ctx, &rig, json!({"createRuntime": [hook]}))?;
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.create(&b, &id),
        "create with a hook timeout of 0",
    )?)
}

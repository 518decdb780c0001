//! Bad input: every mistake gets `husk: <command>: …` naming the cause on
//! stderr and as the last JSON line of `--log`, exit status 1, and a create
//! that fails leaves nothing: no state dir, no cgroup in any hierarchy, no
//! process, no host mount mentioning the bundle.

use crate::common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "bad_input.invalid_json",
            run: invalid_json,
        },
        Test {
            name: "bad_input.unknown_namespace",
            run: unknown_namespace,
        },
        Test {
            name: "bad_input.unknown_capability",
            run: unknown_capability,
        },
        Test {
            name: "bad_input.missing_rootfs",
            run: missing_rootfs,
        },
        Test {
            name: "bad_input.mount_through_symlink_out_of_rootfs",
            run: mount_symlink_escape,
        },
        Test {
            name: "bad_input.prestart_hook_fails",
            run: prestart_hook_fails,
        },
        Test {
            name: "bad_input.create_runtime_hook_fails",
            run: create_runtime_hook_fails,
        },
        Test {
            name: "bad_input.create_container_hook_fails",
            run: create_container_hook_fails,
        },
        Test {
            name: "bad_input.hook_timeout",
            run: hook_timeout,
        },
        Test {
            name: "bad_input.kill_unknown_signal",
            run: kill_unknown_signal,
        },
        Test {
            name: "bad_input.duplicate_id",
            run: duplicate_id,
        },
        Test {
            name: "bad_input.start_running",
            run: start_running,
        },
        Test {
            name: "bad_input.start_stopped",
            run: start_stopped,
        },
        Test {
            name: "bad_input.console_socket_missing",
            run: console_socket_missing,
        },
        Test {
            name: "bad_input.empty_args",
            run: empty_args,
        },
        Test {
            name: "bad_input.relative_cwd",
            run: relative_cwd,
        },
        Test {
            name: "bad_input.hostname_without_uts",
            run: hostname_without_uts,
        },
        Test {
            name: "bad_input.sysctl_not_namespaced",
            run: sysctl_not_namespaced,
        },
        Test {
            name: "bad_input.network_class_without_net_cls",
            run: network_class_without_net_cls,
        },
        Test {
            name: "bad_input.debug_lines_precede_the_error",
            run: debug_lines_precede_the_error,
        },
    ]
}

/// A bundle whose process carries the leftover marker for a fresh id.
fn marked_bundle(ctx: &mut Ctx) -> Result<(Bundle, String), String> {
    let mut b = ctx.bundle()?;
    let id = ctx.new_id();
    b.push("/process/env", json!(format!("{MARK}={id}")));
    b.args(&["true"]);
    Ok((b, id))
}

/// `husk create` with the config as it is on disk (not rewritten).
fn create_raw(ctx: &Ctx, b: &Bundle, id: &str, extra: &[&str]) -> Output {
    let dir = b.dir.to_string_lossy().into_owned();
    let mut args = vec!["create", "--bundle", dir.as_str()];
    args.extend_from_slice(extra);
    args.push(id);
    ctx.husk.invoke(&args, &Call::default())
}

/// Writes the config, expects create to fail naming `needles`, and checks
/// that nothing is left.
fn refused(ctx: &mut Ctx, b: &Bundle, id: &str, extra: &[&str], needles: &[&str]) -> TestResult {
    b.write_config()
        .map_err(|e| format!("write config.json: {e}"))?;
    refused_as_is(ctx, b, id, extra, needles)
}

fn refused_as_is(
    ctx: &mut Ctx,
    b: &Bundle,
    id: &str,
    extra: &[&str],
    needles: &[&str],
) -> TestResult {
    let out = create_raw(ctx, b, id, extra);
    ctx.expect_failure(&out, "create", needles)?;
    Ok(ctx.expect_nothing_left(id, Some(&b.dir))?)
}

fn invalid_json(ctx: &mut Ctx) -> TestResult {
    let (b, id) = marked_bundle(ctx)?;
    let text = r#"{"ociVersion": "1.0.2", "process": {"args": ["true"], "#;
    fs::write(b.config_path(), text).map_err(|e| format!("write config.json: {e}"))?;
    // The cause: the file and where parsing stopped.
    refused_as_is(ctx, &b, &id, &[], &["config.json", "line 1"])
}

fn unknown_namespace(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.push("/linux/namespaces", json!({"type": "foospace"}));
    refused(ctx, &b, &id, &[], &["foospace", "namespace"])
}

/// An unknown capability name is not refused: the runtime-spec says it MUST
/// be logged as a warning and the runtime SHOULD NOT fail (runc agrees, and
/// the conformance suite holds husk to it). The warning must name it, and
/// the container must get the known capabilities and nothing else.
fn unknown_capability(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.push("/process/capabilities/bounding", json!("CAP_FOO"));
    b.write_config()
        .map_err(|e| format!("write config.json: {e}"))?;
    let out = create_raw(ctx, &b, &id, &[]);
    expect_ok(&out, "create with CAP_FOO")?;
    let stderr = out.stderr.clone();
    ensure(
        stderr.contains("warning") && stderr.contains("CAP_FOO"),
        format!("no warning naming CAP_FOO on stderr: {stderr:?}"),
    )?;
    let state = ctx.state(&id)?;
    let pid = state["pid"].as_u64().ok_or("state has no pid")? as u32;
    let status = read_proc(pid, "status")?;
    let bounding = caps_of(&status, "CapBnd")?;
    Ok(ensure(
        bounding == sorted(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
        format!("bounding set of the init: {bounding:?}"),
    )?)
}

fn missing_rootfs(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.set("/root/path", json!("no-such-rootfs"));
    refused(ctx, &b, &id, &[], &["no-such-rootfs", "no such file"])
}

/// rootfs/mnt/evil -> a host dir. A tmpfs on /mnt/evil/sub and a bind on
/// /mnt/evil must land inside the rootfs (and be visible in the container)
/// or be refused; the host dir must stay exactly as it was.
fn mount_symlink_escape(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    let host_dir = ctx.scratch("hostdir")?;
    fs::write(host_dir.join("keep"), "host file\n").map_err(|e| e.to_string())?;
    let src = ctx.scratch("bindsrc")?;
    fs::write(src.join("from-bind-source"), "x").map_err(|e| e.to_string())?;
    let listing = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = listing(&host_dir);
    let mnt = b.rootfs().join("mnt");
    fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    symlink(&host_dir, mnt.join("evil")).map_err(|e| format!("symlink: {e}"))?;
    b.push(
        "/mounts",
        json!({"destination": "/mnt/evil/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/mnt/evil", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    );
    b.args(&["cat", "/proc/self/mountinfo"]);
    b.write_config()
        .map_err(|e| format!("write config.json: {e}"))?;
    let dir = b.dir.to_string_lossy().into_owned();
    let out = ctx
        .husk
        .invoke(&["run", "--bundle", &dir, &id], &Call::default());
    let mut problems = Vec::new();
    let after = listing(&host_dir);
    if after != before {
        problems.push(format!(
            "host dir {} changed: {before:?} -> {after:?}",
            host_dir.display()
        ));
    }
    if out.success() {
        // Accepted: both mounts must be visible inside, i.e. inside the root.
        let mounts = conformance::procinfo::parse_mountinfo(&out.stdout);
        let tmpfs_inside = mounts.iter().any(|m| {
            m["fstype"] == "tmpfs"
                && m["mount_point"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/sub"))
        });
        let src_name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bind_inside = mounts
            .iter()
            .any(|m| m["root"].as_str().is_some_and(|r| r.ends_with(&src_name)));
        if !tmpfs_inside {
            problems.push(
                "the tmpfs for /mnt/evil/sub is not inside the container's root (escaped?)".into(),
            );
        }
        if !bind_inside {
            problems.push(
                "the bind mount for /mnt/evil is not inside the container's root (escaped?)".into(),
            );
        }
        ctx.note("accepted: both mounts landed inside the rootfs");
    } else if let Err(e) = ctx.expect_failure(&out, "run", &["/mnt/evil|symlink"]) {
        problems.push(format!("refused, but badly: {e}"));
    }
    if ctx.root.join(&id).exists() {
        let del = ctx.husk.delete_force(&id);
        expect_ok(&del, "delete --force")?;
    }
    if let Err(e) = ctx.expect_nothing_left(&id, Some(&b.dir)) {
        problems.push(e);
    }
    Ok(all_ok(problems)?)
}

/// A hook that prints to stderr and exits 1.
fn failing_hook(ctx: &mut Ctx, kind: &str) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    let text = format!("hook-said-no-{kind}");
    b.set(
        &format!("/hooks/{kind}"),
        json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo {text} >&2; exit 1")],
            "env": [format!("{MARK}={id}")],
        }]),
    );
    refused(ctx, &b, &id, &[], &[kind, &text])
}

fn prestart_hook_fails(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "prestart")
}

fn create_runtime_hook_fails(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "createRuntime")
}

fn create_container_hook_fails(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "createContainer")
}

/// timeout: 1 on a hook that sleeps 10 s: create fails within a few seconds,
/// and the hook (and what it started) is gone.
fn hook_timeout(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.set(
        "/hooks/createRuntime",
        json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", "sleep 10; echo slept"],
            "env": [format!("{MARK}={id}")],
            "timeout": 1,
        }]),
    );
    b.write_config()
        .map_err(|e| format!("write config.json: {e}"))?;
    let t0 = Instant::now();
    let out = create_raw(ctx, &b, &id, &[]);
    let took = t0.elapsed();
    ctx.expect_failure(&out, "create", &["createRuntime", "timed out|timeout"])?;
    ensure(
        took < Duration::from_secs(5),
        format!("create took {took:?} with a 1 s hook timeout"),
    )?;
    Ok(ctx.expect_nothing_left(&id, Some(&b.dir))?)
}

/// A bundle whose process sleeps, so that the container stays up.
fn sleeper(ctx: &mut Ctx) -> Result<Bundle, String> {
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "100"]);
    Ok(b)
}

fn kill_unknown_signal(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    let (id, pid) = ctx.create(&b, &[])?;
    let out = ctx.husk.kill(&id, "FOO");
    ctx.expect_failure(&out, "kill", &["FOO", "signal"])?;
    let state = ctx.state(&id)?;
    ensure(
        state["status"] == "created",
        format!("status after a bad kill: {}", state["status"]),
    )?;
    Ok(ensure(
        pid_alive(pid),
        format!("init {pid} died after a bad kill"),
    )?)
}

/// A second create with the same id fails; the first container keeps its
/// pid, bundle and `created` status.
fn duplicate_id(ctx: &mut Ctx) -> TestResult {
    let first = sleeper(ctx)?;
    let (id, pid) = ctx.create(&first, &[])?;
    let mut second = ctx.bundle()?;
    second.args(&["true"]);
    let out = ctx.husk.create(&second, &id);
    ctx.expect_failure(&out, "create", &[&id, "exists"])?;
    let state = ctx.state(&id)?;
    let mut problems = Vec::new();
    if state["status"] != "created" {
        problems.push(format!("first container is now {}", state["status"]));
    }
    if state["pid"] != json!(pid) {
        problems.push(format!(
            "first container's pid changed {pid} -> {}",
            state["pid"]
        ));
    }
    if state["bundle"] != json!(first.dir) {
        problems.push(format!(
            "first container's bundle is now {}",
            state["bundle"]
        ));
    }
    if !pid_alive(pid) {
        problems.push(format!("first container's init {pid} died"));
    }
    let stray = mount_lines_mentioning(&second.dir.to_string_lossy());
    if !stray.is_empty() {
        problems.push(format!("host mounts of the second bundle: {stray:?}"));
    }
    Ok(all_ok(problems)?)
}

fn start_running(ctx: &mut Ctx) -> TestResult {
    let b = sleeper(ctx)?;
    let (id, pid) = ctx.start_new(&b)?;
    ctx.wait_status(&id, "running", Duration::from_secs(5))?;
    let out = ctx.husk.start(&id);
    ctx.expect_failure(&out, "start", &["running"])?;
    let state = ctx.state(&id)?;
    ensure(
        state["status"] == "running",
        format!("status after a second start: {}", state["status"]),
    )?;
    Ok(ensure(
        pid_alive(pid),
        "the container died after a second start",
    )?)
}

fn start_stopped(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.args(&["true"]);
    let (id, _) = ctx.start_new(&b)?;
    ctx.wait_status(&id, "stopped", Duration::from_secs(5))?;
    let out = ctx.husk.start(&id);
    ctx.expect_failure(&out, "start", &["stopped"])?;
    let state = ctx.state(&id)?;
    Ok(ensure(
        state["status"] == "stopped",
        format!("status after start of a stopped one: {}", state["status"]),
    )?)
}

fn console_socket_missing(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.set("/process/terminal", json!(true));
    let sock = ctx.dir.join("no-such-console.sock");
    let sock = sock.to_string_lossy().into_owned();
    refused(
        ctx,
        &b,
        &id,
        &["--console-socket", &sock],
        &["no-such-console.sock"],
    )
}

fn empty_args(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.set("/process/args", json!([]));
    refused(ctx, &b, &id, &[], &["args"])
}

fn relative_cwd(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.set("/process/cwd", json!("relative/dir"));
    refused(ctx, &b, &id, &[], &["cwd", "relative/dir|absolute"])
}

fn hostname_without_uts(ctx: &mut Ctx) -> TestResult {
    let (mut b, id) = marked_bundle(ctx)?;
    b.set("/hostname", json!("no-uts-here"));
    let namespaces: Vec<serde_json::Value> = b.config["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n["type"] != "uts")
        .collect();
    b.set("/linux/namespaces", json!(namespaces));
    refused(ctx, &b, &id, &[], &["hostname", "uts"])
}

/// kernel.panic is not namespaced: refused, and the host value unchanged.
fn sysctl_not_namespaced(ctx: &mut Ctx) -> TestResult {
    let path = Path::new("/proc/sys/kernel/panic");
    let before = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    ctx.register_restore(path, &before);
    let other = if before.trim() == "7" { "8" } else { "7" };
    let (mut b, id) = marked_bundle(ctx)?;
    b.set("/linux/sysctl", json!({"kernel.panic": other}));
    let verdict = refused(ctx, &b, &id, &[], &["kernel.panic"]);
    let after = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    ensure(
        after == before,
        format!(
            "the HOST's kernel.panic changed {} -> {}",
            before.trim(),
            after.trim()
        ),
    )?;
    verdict
}

/// linux.resources.network needs the v1 net_cls controller: where the host
/// has not mounted it (as here), the limit is refused, never dropped.
fn network_class_without_net_cls(ctx: &mut Ctx) -> TestResult {
    let mounts = fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read: {e}"))?;
    if mounts
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.contains("net_cls"))
    {
        return Err(skip(
            "this host has net_cls mounted: the class id would apply",
        ));
    }
    let (mut b, id) = marked_bundle(ctx)?;
    b.set("/linux/resources/network", json!({"classID": 1048577}));
    refused(ctx, &b, &id, &[], &["linux.resources.network", "net_cls"])
}

/// --debug adds debug lines to --log (the command line, how the command
/// ended); the error stays the last line, which is what containerd reads.
fn debug_lines_precede_the_error(ctx: &mut Ctx) -> TestResult {
    let id = ctx.new_id();
    let out = ctx
        .husk
        .invoke(&["--debug", "state", &id], &Call::default());
    ctx.expect_failure(&out, "state", &["does not exist"])?;
    let text = fs::read_to_string(&ctx.log).map_err(|e| format!("read --log: {e}"))?;
    let entries: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l}")))
        .collect::<Result<_, _>>()?;
    let debug: Vec<&str> = entries
        .iter()
        .filter(|e| e["level"] == "debug")
        .filter_map(|e| e["msg"].as_str())
        .collect();
    ensure(
        debug
            .iter()
            .any(|m| m.contains("command line") && m.contains(&id)),
        format!("no debug line with the command line: {debug:?}"),
    )?;
    ensure(
        debug.iter().any(|m| m.starts_with("state: failed after")),
        format!("no debug line with the outcome: {debug:?}"),
    )?;
    Ok(())
}

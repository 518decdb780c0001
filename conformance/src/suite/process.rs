//! config.md#process: args, env, cwd, user, capabilities, rlimits,
//! noNewPrivileges, oomScoreAdj, terminal/consoleSize, scheduler, ioPriority,
//! execCPUAffinity, apparmorProfile and selinuxLabel.

use super::{ensure, expect_eq, expect_error, expect_ok, last_json, skip, Ctx, Test, TestResult};
use crate::bundle::Bundle;
use crate::console::{read_until_closed, ConsoleSocket};
use crate::procinfo::{cap_mask, cap_names};
use crate::runtime::Call;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    vec![
        Test { name: "process.args", spec: "config.md#process: args with the semantics of execvp's argv", run: args },
        Test { name: "process.args_path_lookup", spec: "config.md#process: args[0] is used with the semantics of execvp's file (PATH lookup)", run: args_path_lookup },
        Test { name: "process.env", spec: "config.md#process: env with the semantics of environ", run: env },
        Test { name: "process.cwd", spec: "config.md#process: cwd is the working directory of the executable", run: cwd },
        Test { name: "process.user_uid_gid", spec: "config.md#posix-platform-user: uid and gid in the container namespace", run: user_uid_gid },
        Test { name: "process.user_additional_gids", spec: "config.md#posix-platform-user: additionalGids are added to the process", run: user_additional_gids },
        Test { name: "process.user_umask", spec: "config.md#posix-platform-user: umask of the user", run: user_umask },
        Test { name: "process.user_umask_unset_inherited", spec: "config.md#posix-platform-user: if umask is unspecified it should not be changed from the calling process' umask", run: user_umask_unset_inherited },
        Test { name: "process.capabilities_bounding", spec: "config.md#linux-process: capabilities.bounding are kept for the process", run: capabilities_bounding },
        Test { name: "process.capabilities_inheritable", spec: "config.md#linux-process: capabilities.inheritable are kept for the process", run: capabilities_inheritable },
        Test { name: "process.capabilities_nonroot_ambient", spec: "config.md#linux-process: effective/permitted/ambient kept for a non-root user", run: capabilities_nonroot_ambient },
        Test { name: "process.capabilities_empty", spec: "config.md#linux-process: empty capability sets leave the process none", run: capabilities_empty },
        Test { name: "process.capabilities_unknown_not_fatal", spec: "config.md#linux-process: capabilities that cannot be granted MUST be logged as a warning; runtimes SHOULD NOT fail", run: capabilities_unknown_not_fatal },
        Test { name: "process.no_new_privileges", spec: "config.md#linux-process: noNewPrivileges true sets no_new_privs", run: no_new_privileges },
        Test { name: "process.no_new_privileges_false", spec: "config.md#linux-process: noNewPrivileges false leaves no_new_privs unset", run: no_new_privileges_false },
        Test { name: "process.rlimits", spec: "config.md#posix-process: rlim_cur and rlim_max MUST match the configured soft and hard values", run: rlimits },
        Test { name: "process.rlimits_duplicate_errors", spec: "config.md#posix-process: duplicated rlimits types MUST generate an error", run: rlimits_duplicate_errors },
        Test { name: "process.rlimits_unknown_errors", spec: "config.md#posix-process: values that cannot be mapped to a kernel interface MUST generate an error", run: rlimits_unknown_errors },
        Test { name: "process.oom_score_adj", spec: "config.md#linux-process: if oomScoreAdj is set the runtime MUST set oom_score_adj", run: oom_score_adj },
        Test { name: "process.oom_score_adj_unset_unchanged", spec: "config.md#linux-process: if oomScoreAdj is not set the runtime MUST NOT change oom_score_adj", run: oom_score_adj_unset_unchanged },
        Test { name: "process.terminal", spec: "config.md#process: terminal true attaches a pseudoterminal to the standard streams; config-linux.md: /dev/console is the pty", run: terminal },
        Test { name: "process.console_size", spec: "config.md#process: consoleSize is the size of the terminal in characters", run: console_size },
        Test { name: "process.console_size_ignored_without_terminal", spec: "config.md#process: runtimes MUST ignore consoleSize if terminal is false or unset", run: console_size_ignored_without_terminal },
        Test { name: "process.scheduler", spec: "config.md#linux-process: scheduler policy and nice for the process", run: scheduler },
        Test { name: "process.io_priority", spec: "config.md#linux-process: ioPriority class and priority for the container's processes", run: io_priority },
        Test { name: "process.exec_cpu_affinity", spec: "config.md#linux-process: execCPUAffinity.final is the CPU list an exec'd process runs on", run: exec_cpu_affinity },
        Test { name: "process.exec_cpu_affinity_not_init", spec: "config.md#linux-process: execCPUAffinity is not applicable to the container's init process", run: exec_cpu_affinity_not_init },
        Test { name: "process.apparmor_profile", spec: "config.md#linux-process: apparmorProfile is the AppArmor profile of the process", run: apparmor_profile },
        Test { name: "process.selinux_label", spec: "config.md#linux-process: selinuxLabel is the SELinux label of the process", run: selinux_label },
    ]
}

fn args(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let got = ctx.probe_in(&mut b, &["argv", "two words", "", "--flag=é"])?;
    ctx.observe("argv", got.clone());
    Ok(expect_eq(
        "argv",
        &json!(["/probe", "argv", "two words", "", "--flag=é"]),
        &got,
    )?)
}

fn args_path_lookup(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/process/env", json!(["PATH=/bin:/"]));
    b.args(&["probe", "argv"]);
    let id = ctx.new_id();
    let out = ctx.runtime.run(&b, &id);
    let got = last_json(&out.stdout).ok_or_else(|| format!("run: {}", out.describe()))?;
    ctx.observe("argv", got.clone());
    Ok(expect_eq("argv", &json!(["probe", "argv"]), &got)?)
}

fn env(ctx: &mut Ctx) -> TestResult {
    let want = ["PATH=/bin", "A=1", "B=two words", "EMPTY="];
    let got = ctx.probe_with(
        |b| {
            b.set("/process/env", json!(want));
        },
        &["env"],
    )?;
    let list: Vec<&str> = got
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let extra: Vec<&&str> = list.iter().filter(|v| !want.contains(v)).collect();
    ctx.observe("extra", json!(extra));
    for w in want {
        ensure(
            list.contains(&w),
            format!("{w:?} missing from the environment {list:?}"),
        )?;
    }
    Ok(())
}

fn cwd(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/process/cwd", json!("/tmp"));
        },
        &["cwd"],
    )?;
    ctx.observe("cwd", got.clone());
    Ok(expect_eq("cwd", &json!("/tmp"), &got["cwd"])?)
}

fn user_uid_gid(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/process/user", json!({"uid": 1000, "gid": 1001}));
        },
        &["ids"],
    )?;
    ctx.observe("ids", got.clone());
    for k in ["uid", "euid", "suid", "fsuid"] {
        expect_eq(k, &json!(1000), &got[k])?;
    }
    for k in ["gid", "egid", "sgid", "fsgid"] {
        expect_eq(k, &json!(1001), &got[k])?;
    }
    Ok(())
}

fn user_additional_gids(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set(
                "/process/user",
                json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 6]}),
            );
        },
        &["ids"],
    )?;
    ctx.observe("groups", got["groups"].clone());
    let groups: Vec<u64> = got["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    Ok(ensure(
        groups.contains(&5) && groups.contains(&6),
        format!("supplementary groups {groups:?} lack 5 and 6"),
    )?)
}

fn user_umask(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/process/user/umask", json!(0o077));
        },
        &["ids"],
    )?;
    ctx.observe("umask", got["umask"].clone());
    Ok(expect_eq("umask", &json!(0o077), &got["umask"])?)
}

fn user_umask_unset_inherited(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let call = Call {
        umask: Some(0o027),
        ..Call::default()
    };
    let got = ctx.probe_in_call(&mut b, &["ids"], call)?;
    ctx.observe("umask", got["umask"].clone());
    Ok(expect_eq(
        "umask (runtime started with 027)",
        &json!(0o027),
        &got["umask"],
    )?)
}

/// Sets all five capability sets at once (an empty list is an empty set).
fn set_caps(b: &mut Bundle, sets: [(&str, &[&str]); 5]) {
    let caps: serde_json::Map<String, Value> = sets
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    b.set("/process/capabilities", Value::Object(caps));
}

fn caps_probe(ctx: &mut Ctx, edit: impl FnOnce(&mut Bundle)) -> Result<Value, String> {
    let got = ctx.probe_with(edit, &["caps"])?;
    let named: serde_json::Map<String, Value> = got
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), json!(cap_names(v.as_u64().unwrap_or(0)))))
                .collect()
        })
        .unwrap_or_default();
    ctx.observe("caps", Value::Object(named));
    Ok(got)
}

fn expect_caps(got: &Value, set: &str, names: &[&str]) -> Result<(), String> {
    let want = cap_mask(names.iter().copied());
    let have = got[set].as_u64().unwrap_or(u64::MAX);
    ensure(
        want == have,
        format!(
            "{set}: expected {:?}, got {:?}",
            cap_names(want),
            cap_names(have)
        ),
    )
}

fn capabilities_bounding(ctx: &mut Ctx) -> TestResult {
    let set = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"];
    let got = caps_probe(ctx, |b| {
        set_caps(
            b,
            [
                ("bounding", &set),
                ("effective", &set),
                ("permitted", &set),
                ("inheritable", &[]),
                ("ambient", &[]),
            ],
        );
    })?;
    Ok(expect_caps(&got, "bounding", &set)?)
}

fn capabilities_inheritable(ctx: &mut Ctx) -> TestResult {
    let all = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"];
    let got = caps_probe(ctx, |b| {
        set_caps(
            b,
            [
                ("bounding", &all),
                ("effective", &all),
                ("permitted", &all),
                ("inheritable", &["CAP_CHOWN"]),
                ("ambient", &[]),
            ],
        );
    })?;
    Ok(expect_caps(&got, "inheritable", &["CAP_CHOWN"])?)
}

fn capabilities_nonroot_ambient(ctx: &mut Ctx) -> TestResult {
    let set = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let got = caps_probe(ctx, |b| {
        b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
        set_caps(
            b,
            [
                ("bounding", &set),
                ("effective", &set),
                ("permitted", &set),
                ("inheritable", &set),
                ("ambient", &set),
            ],
        );
    })?;
    for s in [
        "effective",
        "permitted",
        "inheritable",
        "ambient",
        "bounding",
    ] {
        expect_caps(&got, s, &set)?;
    }
    Ok(())
}

fn capabilities_empty(ctx: &mut Ctx) -> TestResult {
    let got = caps_probe(ctx, |b| {
        set_caps(
            b,
            [
                ("bounding", &[]),
                ("effective", &[]),
                ("permitted", &[]),
                ("inheritable", &[]),
                ("ambient", &[]),
            ],
        );
    })?;
    for s in [
        "effective",
        "permitted",
        "inheritable",
        "ambient",
        "bounding",
    ] {
        expect_caps(&got, s, &[])?;
    }
    Ok(())
}

fn capabilities_unknown_not_fatal(ctx: &mut Ctx) -> TestResult {
    let got = caps_probe(ctx, |b| {
        let set: &[&str] = &["CAP_KILL", "CAP_NOT_A_CAPABILITY"];
        set_caps(
            b,
            [
                ("bounding", set),
                ("effective", set),
                ("permitted", set),
                ("inheritable", &[]),
                ("ambient", &[]),
            ],
        );
    })?;
    Ok(expect_caps(&got, "bounding", &["CAP_KILL"])?)
}

fn nnp(ctx: &mut Ctx, value: bool) -> Result<Value, String> {
    let got = ctx.probe_with(
        |b| {
            b.set("/process/noNewPrivileges", json!(value));
        },
        &["nnp"],
    )?;
    ctx.observe("nnp", got.clone());
    Ok(got)
}

fn no_new_privileges(ctx: &mut Ctx) -> TestResult {
    let got = nnp(ctx, true)?;
    Ok(expect_eq("NoNewPrivs", &json!(1), &got["no_new_privs"])?)
}

fn no_new_privileges_false(ctx: &mut Ctx) -> TestResult {
    let got = nnp(ctx, false)?;
    Ok(expect_eq("NoNewPrivs", &json!(0), &got["no_new_privs"])?)
}

/// The runner's own hard limit: a runtime cannot raise limits above it here
/// (the host's bounding set lacks CAP_SYS_RESOURCE).
fn host_hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    unsafe { libc::getrlimit(resource, &mut lim) };
    lim.rlim_max
}

fn rlimits(ctx: &mut Ctx) -> TestResult {
    let wanted = [
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, 512u64, 1000u64),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC, 300, 400),
        ("RLIMIT_CORE", libc::RLIMIT_CORE, 0, 4096),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE, 4096, 8192),
    ];
    let usable: Vec<_> = wanted
        .iter()
        .filter(|w| host_hard_limit(w.1) >= w.3)
        .collect();
    let config: Vec<Value> = usable
        .iter()
        .map(|(n, _, s, h)| json!({"type": n, "soft": s, "hard": h}))
        .collect();
    let got = ctx.probe_with(
        |b| {
            b.set("/process/rlimits", json!(config));
        },
        &["rlimits"],
    )?;
    let seen: serde_json::Map<String, Value> = usable
        .iter()
        .map(|(n, ..)| (n.to_string(), got[n].clone()))
        .collect();
    ctx.observe("rlimits", Value::Object(seen));
    for (name, _, soft, hard) in usable {
        expect_eq(name, &json!({"soft": soft, "hard": hard}), &got[name])?;
    }
    Ok(())
}

fn rlimits_duplicate_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
            {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}
        ]),
    );
    b.probe_args(&["rlimits"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with duplicated RLIMIT_NOFILE",
    )?)
}

fn rlimits_unknown_errors(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOT_A_LIMIT", "soft": 1, "hard": 1}]),
    );
    b.probe_args(&["rlimits"]);
    let id = ctx.new_id();
    Ok(expect_error(
        &ctx.runtime.run(&b, &id),
        "run with an unknown rlimit type",
    )?)
}

fn oom_score_adj(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/process/oomScoreAdj", json!(500));
        },
        &["oom"],
    )?;
    ctx.observe("oom_score_adj", got.clone());
    Ok(expect_eq("oom_score_adj", &json!(500), &got)?)
}

fn oom_score_adj_unset_unchanged(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let call = Call {
        oom_score_adj: Some(123),
        ..Call::default()
    };
    let got = ctx.probe_in_call(&mut b, &["oom"], call)?;
    ctx.observe("oom_score_adj", got.clone());
    Ok(expect_eq(
        "oom_score_adj (runtime started with 123)",
        &json!(123),
        &got,
    )?)
}

/// Runs the probe with a terminal through --console-socket; returns its JSON.
fn probe_on_terminal(ctx: &mut Ctx, b: &mut Bundle, args: &[&str]) -> Result<Value, String> {
    b.set("/process/terminal", json!(true)).probe_args(args);
    let sock = b.dir.join("console.sock");
    let listener = ConsoleSocket::bind(&sock)?;
    let id = ctx.new_id();
    let sock_arg = sock.to_string_lossy().into_owned();
    expect_ok(
        &ctx.runtime
            .create_with(b, &id, &["--console-socket", &sock_arg]),
        "create --console-socket",
    )?;
    let mut master = listener.receive_master(Duration::from_secs(10))?;
    expect_ok(&ctx.runtime.start(&id), "start")?;
    let text = read_until_closed(&mut master, Duration::from_secs(10));
    last_json(&text).ok_or_else(|| format!("no JSON on the terminal: {:?}", text.trim()))
}

fn terminal(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let got = probe_on_terminal(ctx, &mut b, &["tty"])?;
    let seen = json!({"stdin": got["stdin"], "stdout": got["stdout"], "stderr": got["stderr"], "console_type": got["console"]["type"]});
    ctx.observe("tty", seen);
    for fd in ["stdin", "stdout", "stderr"] {
        expect_eq(&format!("{fd} is a terminal"), &json!(true), &got[fd])?;
    }
    let console = &got["console"];
    ensure(
        console["exists"] == true && console["type"] == "c",
        format!("/dev/console is not a character device: {console}"),
    )?;
    // Unix98 pty slaves have major numbers 136-143.
    let major = console["major"].as_u64().unwrap_or(0);
    Ok(ensure(
        (136..=143).contains(&major),
        format!("/dev/console is not a pty slave (major {major})"),
    )?)
}

fn console_size(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/process/consoleSize", json!({"height": 33, "width": 101}));
    let got = probe_on_terminal(ctx, &mut b, &["tty"])?;
    ctx.observe("size", json!({"rows": got["rows"], "cols": got["cols"]}));
    expect_eq("rows", &json!(33), &got["rows"])?;
    Ok(expect_eq("cols", &json!(101), &got["cols"])?)
}

fn console_size_ignored_without_terminal(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set("/process/consoleSize", json!({"height": 33, "width": 101}));
        },
        &["tty"],
    )?;
    ctx.observe("stdout_is_tty", got["stdout"].clone());
    Ok(expect_eq(
        "stdout is a terminal",
        &json!(false),
        &got["stdout"],
    )?)
}

fn scheduler(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set(
                "/process/scheduler",
                json!({"policy": "SCHED_BATCH", "nice": 7}),
            );
        },
        &["sched"],
    )?;
    ctx.observe("sched", got.clone());
    expect_eq("policy", &json!("SCHED_BATCH"), &got["policy"])?;
    Ok(expect_eq("nice", &json!(7), &got["nice"])?)
}

fn io_priority(ctx: &mut Ctx) -> TestResult {
    let got = ctx.probe_with(
        |b| {
            b.set(
                "/process/ioPriority",
                json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
            );
        },
        &["ioprio"],
    )?;
    ctx.observe("ioprio", got.clone());
    Ok(expect_eq(
        "ioprio",
        &json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
        &got,
    )?)
}

fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Runs `probe affinity` with `exec --process` in a running container.
fn exec_affinity(ctx: &mut Ctx, exec_affinity: Value) -> Result<Value, String> {
    let mut b = ctx.bundle()?;
    let id = ctx.waiting_container(&mut b)?;
    let mut process = b.config["process"].clone();
    process["args"] = json!(["/probe", "affinity"]);
    process["execCPUAffinity"] = exec_affinity;
    let file = b.dir.join("exec.json");
    std::fs::write(&file, process.to_string()).map_err(|e| e.to_string())?;
    let out = ctx.runtime.exec_process(&id, &file);
    last_json(&out.stdout)
        .filter(|_| out.success())
        .ok_or_else(|| format!("exec: {}", out.describe()))
}

fn exec_cpu_affinity(ctx: &mut Ctx) -> TestResult {
    if online_cpus() < 2 {
        return Err(skip("needs at least 2 CPUs"));
    }
    let last = online_cpus() - 1;
    let got = exec_affinity(ctx, json!({"final": last.to_string()}))?;
    ctx.observe("affinity", got.clone());
    Ok(expect_eq(
        "affinity of the exec'd process",
        &json!([last]),
        &got,
    )?)
}

fn exec_cpu_affinity_not_init(ctx: &mut Ctx) -> TestResult {
    if online_cpus() < 2 {
        return Err(skip("needs at least 2 CPUs"));
    }
    let before = ctx.probe_with(|_| {}, &["affinity"])?;
    let got = ctx.probe_with(
        |b| {
            b.set(
                "/process/execCPUAffinity",
                json!({"initial": "0", "final": "0"}),
            );
        },
        &["affinity"],
    )?;
    ctx.observe("init_affinity_changed", json!(before != got));
    Ok(expect_eq("affinity of the init process", &before, &got)?)
}

fn apparmor_profile(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/sys/kernel/security/apparmor").exists() {
        return Err(skip("AppArmor is not enabled on this kernel"));
    }
    let got = ctx.probe_with(
        |b| {
            b.set("/process/apparmorProfile", json!("unconfined"));
        },
        &["read", "/proc/self/attr/current"],
    )?;
    ctx.observe("label", got["content"].clone());
    Ok(ensure(
        got["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("unconfined")),
        format!("label: {got}"),
    )?)
}

fn selinux_label(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        return Err(skip("SELinux is not enabled on this kernel"));
    }
    let label = "system_u:system_r:container_t:s0";
    let got = ctx.probe_with(
        |b| {
            b.set("/process/selinuxLabel", json!(label));
        },
        &["read", "/proc/self/attr/current"],
    )?;
    ctx.observe("label", got["content"].clone());
    Ok(ensure(
        got["content"]
            .as_str()
            .is_some_and(|c| c.starts_with(label)),
        format!("label: {got}"),
    )?)
}

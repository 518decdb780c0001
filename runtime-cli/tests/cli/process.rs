//! The container process as it sees itself: busybox reads /proc/self/status,
//! mountinfo, uid_map, limits, oom_score_adj and its fds inside the
//! container, and the host cross-checks through /proc/<pid>.

use crate::common::*;
use conformance::console::{read_until_closed, ConsoleSocket};
use conformance::procinfo::parse_mountinfo;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "process.user_groups_umask",
            run: user_groups_umask,
        },
        Test {
            name: "process.capabilities_root",
            run: capabilities_root,
        },
        Test {
            name: "process.capabilities_non_root",
            run: capabilities_non_root,
        },
        Test {
            name: "process.no_new_privileges",
            run: no_new_privileges,
        },
        Test {
            name: "process.rlimits",
            run: rlimits,
        },
        Test {
            name: "process.oom_score_adj",
            run: oom_score_adj,
        },
        Test {
            name: "process.hostname_domainname",
            run: hostname_domainname,
        },
        Test {
            name: "process.env_and_home",
            run: env_and_home,
        },
        Test {
            name: "process.cwd_created",
            run: cwd_created,
        },
        Test {
            name: "process.readonly_rootfs",
            run: readonly_rootfs,
        },
        Test {
            name: "process.masked_paths",
            run: masked_paths,
        },
        Test {
            name: "process.readonly_paths",
            run: readonly_paths,
        },
        Test {
            name: "process.default_devices",
            run: default_devices,
        },
        Test {
            name: "process.devpts_ptmx",
            run: devpts_ptmx,
        },
        Test {
            name: "process.preserve_fds",
            run: preserve_fds,
        },
        Test {
            name: "process.only_std_fds_inside",
            run: only_std_fds_inside,
        },
        Test {
            name: "process.no_pivot",
            run: no_pivot,
        },
        Test {
            name: "process.user_namespace_mappings",
            run: user_namespace_mappings,
        },
        Test {
            name: "process.join_netns_by_path",
            run: join_netns_by_path,
        },
        Test {
            name: "process.time_namespace_offsets",
            run: time_namespace_offsets,
        },
        Test {
            name: "process.cgroup_path_relative",
            run: cgroup_path_relative,
        },
        Test {
            name: "process.cgroup_path_absolute",
            run: cgroup_path_absolute,
        },
        Test {
            name: "process.terminal_console_socket",
            run: terminal_console_socket,
        },
    ]
}

const LIMIT: Duration = Duration::from_secs(5);

const STATUS_KEYS: &str = "^(Uid|Gid|Groups|Umask|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):";

/// The init's own /proc/1/status (pid 1 is the shell in its pid namespace).
fn status_script() -> String {
    format!("grep -E '{STATUS_KEYS}' /proc/1/status")
}

fn user_groups_umask(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/root/readonly", json!(false));
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 2000], "umask": 0o027}),
    );
    let script = format!(
        "{}; echo == ids; id -u; id -g; umask; touch /tmp/made; stat -c '%a %u %g' /tmp/made",
        status_script()
    );
    let out = ctx.run_script(&mut b, &script)?;
    let mut problems = Vec::new();
    let field = |k: &str| status_field(&out, k).unwrap_or_default();
    if field("Uid") != "1000 1000 1000 1000" {
        problems.push(format!("Uid: {}", field("Uid")));
    }
    if field("Gid") != "1000 1000 1000 1000" {
        problems.push(format!("Gid: {}", field("Gid")));
    }
    let groups: BTreeSet<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if groups != BTreeSet::from(["5", "2000"]) {
        problems.push(format!("Groups: {groups:?}, expected 5 and 2000"));
    }
    if field("Umask") != "0027" {
        problems.push(format!("Umask: {}", field("Umask")));
    }
    let ids = sections(&out).remove("ids").unwrap_or_default();
    if ids != ["1000", "1000", "0027", "640 1000 1000"] {
        problems.push(format!("id -u, id -g, umask, new file mode/owner: {ids:?}"));
    }
    match fs::metadata(b.rootfs().join("tmp/made")) {
        Ok(m) if m.uid() == 1000 && m.gid() == 1000 && m.mode() & 0o777 == 0o640 => {}
        Ok(m) => problems.push(format!(
            "host sees the file as {:o} {}:{}",
            m.mode() & 0o777,
            m.uid(),
            m.gid()
        )),
        Err(e) => problems.push(format!("host cannot see the file made inside: {e}")),
    }
    Ok(all_ok(problems)?)
}

/// Compares the five capability sets read inside with the expected names.
fn check_caps(out: &str, want: &[(&str, &[&str])]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (key, names) in want {
        let got = caps_of(out, key)?;
        if got != sorted(names) {
            problems.push(format!("{key}: {got:?}, expected {:?}", sorted(names)));
        }
    }
    all_ok(problems)
}

fn capabilities_root(ctx: &mut Ctx) -> TestResult {
    let set = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"];
    let mut b = ctx.bundle()?;
    b.set(
        "/process/capabilities",
        json!({"bounding": set, "permitted": set, "effective": set,
               "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]}),
    );
    let out = ctx.run_script(&mut b, &status_script())?;
    // For uid 0 exec gives permitted = effective = bounding | inheritable.
    Ok(check_caps(
        &out,
        &[
            ("CapBnd", &set),
            ("CapPrm", &set),
            ("CapEff", &set),
            ("CapInh", &["CAP_CHOWN"]),
            ("CapAmb", &["CAP_CHOWN"]),
        ],
    )?)
}

fn capabilities_non_root(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
               "permitted": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN", "CAP_KILL"],
               "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]}),
    );
    let out = ctx.run_script(&mut b, &status_script())?;
    // A non-root exec of a file without capabilities keeps only the ambient set.
    Ok(check_caps(
        &out,
        &[
            ("CapBnd", &["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]),
            ("CapPrm", &["CAP_CHOWN"]),
            ("CapEff", &["CAP_CHOWN"]),
            ("CapInh", &["CAP_CHOWN"]),
            ("CapAmb", &["CAP_CHOWN"]),
        ],
    )?)
}

fn no_new_privileges(ctx: &mut Ctx) -> TestResult {
    let mut problems = Vec::new();
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut b = ctx.bundle()?;
        b.set("/process/noNewPrivileges", json!(nnp));
        let out = ctx.run_script(&mut b, &status_script())?;
        let got = status_field(&out, "NoNewPrivs").unwrap_or_default();
        if got != want {
            problems.push(format!("noNewPrivileges {nnp}: NoNewPrivs {got:?}"));
        }
    }
    Ok(all_ok(problems)?)
}

fn rlimits(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
            {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
            {"type": "RLIMIT_MSGQUEUE", "soft": 409600, "hard": 819200},
        ]),
    );
    let out = ctx.run_script(&mut b, "cat /proc/1/limits; echo == n; ulimit -n")?;
    let mut problems = Vec::new();
    for (label, soft, hard) in [
        ("Max open files", "512", "1000"),
        ("Max core file size", "4096", "8192"),
        ("Max msgqueue size", "409600", "819200"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_default();
        let fields: Vec<&str> = line[label.len().min(line.len())..]
            .split_whitespace()
            .collect();
        if fields.get(..2) != Some(&[soft, hard][..]) {
            problems.push(format!("{label}: {fields:?}, expected {soft} {hard}"));
        }
    }
    let n = sections(&out).remove("n").unwrap_or_default();
    if n != ["512"] {
        problems.push(format!("ulimit -n {n:?}"));
    }
    Ok(all_ok(problems)?)
}

fn oom_score_adj(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/process/oomScoreAdj", json!(321));
    let out = ctx.run_script(&mut b, "cat /proc/1/oom_score_adj")?;
    Ok(ensure(
        out.trim() == "321",
        format!("oom_score_adj inside: {:?}", out.trim()),
    )?)
}

fn hostname_domainname(ctx: &mut Ctx) -> TestResult {
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut b = ctx.bundle()?;
    b.set("/hostname", json!("hk-inside"));
    b.set("/domainname", json!("hk.example"));
    let out = ctx.run_script(
        &mut b,
        "hostname; uname -n; cat /proc/sys/kernel/domainname",
    )?;
    let lines: Vec<&str> = out.lines().collect();
    ensure(
        lines == ["hk-inside", "hk-inside", "hk.example"],
        format!("hostname, uname -n, domainname inside: {lines:?}"),
    )?;
    let host_after = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Ok(ensure(
        host_after == host_before,
        format!("host hostname changed to {host_after:?}"),
    )?)
}

/// The init's environment is exactly process.env plus HOME from
/// /etc/passwd when it is not set; nothing of husk's own leaks in.
fn env_and_home(ctx: &mut Ctx) -> TestResult {
    const LEAK: &str = "HUSK_CLI_TEST_HOST_ONLY";
    // A pipeline keeps the shell as pid 1 (a lone command would be exec'd).
    let script = "cat /proc/1/environ | tr '\\0' '\\n'";
    let base = [
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "FOO=bar baz",
        "EMPTY=",
    ];
    let cases: [(Value, Option<&str>, &str); 3] = [
        (json!({"uid": 0, "gid": 0}), None, "HOME=/root"),
        (json!({"uid": 1000, "gid": 1000}), None, "HOME=/home"),
        (
            json!({"uid": 0, "gid": 0}),
            Some("HOME=/custom"),
            "HOME=/custom",
        ),
    ];
    // Single-threaded harness: the variable is only seen by husk children.
    std::env::set_var(LEAK, "leaked");
    let mut problems = Vec::new();
    for (user, extra, home) in cases {
        let mut b = ctx.bundle()?;
        let mut env: Vec<&str> = base.to_vec();
        env.extend(extra);
        b.set("/process/env", json!(env));
        b.set("/process/user", user.clone());
        let out = match ctx.run_script(&mut b, script) {
            Ok(o) => o,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let got: BTreeSet<&str> = out.lines().collect();
        let mut want: BTreeSet<&str> = base.iter().copied().collect();
        want.insert(home);
        if got != want {
            problems.push(format!(
                "user {user}: environment {got:?}, expected {want:?}"
            ));
        }
    }
    std::env::remove_var(LEAK);
    Ok(all_ok(problems)?)
}

/// A cwd that does not exist in the (read-only) rootfs is created.
fn cwd_created(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/process/cwd", json!("/work/deep/er"));
    let out = ctx.run_script(&mut b, "pwd")?;
    ensure(
        out.trim() == "/work/deep/er",
        format!("pwd inside: {:?}", out.trim()),
    )?;
    Ok(ensure(
        b.rootfs().join("work/deep/er").is_dir(),
        "the cwd was not created in the rootfs",
    )?)
}

fn root_mount_options(mountinfo: &str) -> Option<Vec<String>> {
    parse_mountinfo(mountinfo)
        .into_iter()
        .find(|m| m["mount_point"] == "/")
        .map(|m| {
            m["options"]
                .as_array()
                .map(|o| {
                    o.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        })
}

fn readonly_rootfs(ctx: &mut Ctx) -> TestResult {
    let script = "touch /written 2>&1; echo rc=$?; echo == mounts; cat /proc/self/mountinfo";
    let mut problems = Vec::new();
    for readonly in [true, false] {
        let mut b = ctx.bundle()?;
        b.set("/root/readonly", json!(readonly));
        let out = ctx.run_script(&mut b, script)?;
        let s = sections(&out);
        let touch = s.get("").cloned().unwrap_or_default().join(" ");
        let opts = root_mount_options(&s.get("mounts").cloned().unwrap_or_default().join("\n"));
        let is_ro = opts.as_ref().is_some_and(|o| o.iter().any(|x| x == "ro"));
        let written = b.rootfs().join("written").exists();
        if readonly && (!touch.contains("Read-only file system") || !is_ro || written) {
            problems.push(format!(
                "readonly: touch said {touch:?}, / options {opts:?}, file on host {written}"
            ));
        }
        if !readonly && (!touch.contains("rc=0") || is_ro || !written) {
            problems.push(format!(
                "read-write: touch said {touch:?}, / options {opts:?}, file on host {written}"
            ));
        }
    }
    Ok(all_ok(problems)?)
}

/// Default masked paths read as nothing; added ones too (a file and a dir).
fn masked_paths(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    fs::write(b.rootfs().join("home/secret"), "secret\n").map_err(|e| e.to_string())?;
    b.push("/linux/maskedPaths", json!("/etc/group"));
    b.push("/linux/maskedPaths", json!("/home"));
    let files = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/etc/group",
    ];
    let script = format!(
        "for f in {}; do if [ -e $f ]; then echo \"$f $(cat $f | wc -c)\"; else echo \"$f missing\"; fi; done; \
         echo == dirs; ls -A /sys/firmware /home",
        files.join(" ")
    );
    let out = ctx.run_script(&mut b, &script)?;
    let mut problems = Vec::new();
    let s = sections(&out);
    for f in files {
        let line = section(&s, "")
            .iter()
            .find(|l| l.starts_with(&format!("{f} ")))
            .cloned()
            .unwrap_or_default();
        let host_has = f.starts_with("/etc") || Path::new(f).exists();
        let ok = line == format!("{f} 0") || (!host_has && line == format!("{f} missing"));
        if !ok {
            problems.push(format!("{f}: {line:?}"));
        }
    }
    let dirs: Vec<&String> = s
        .get("dirs")
        .map(|d| {
            d.iter()
                .filter(|l| !l.is_empty() && !l.ends_with(':'))
                .collect()
        })
        .unwrap_or_default();
    if !dirs.is_empty() {
        problems.push(format!("masked dirs list entries: {dirs:?}"));
    }
    if !Path::new("/proc/kcore").exists() {
        ctx.note(
            "/proc/kcore does not exist on this kernel; checked /proc/keys and /proc/timer_list",
        );
    }
    Ok(all_ok(problems)?)
}

/// Writing under a read-only path fails with EROFS; the rest stays writable.
fn readonly_paths(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/root/readonly", json!(false));
    fs::write(b.rootfs().join("mnt/file"), "data\n").map_err(|e| e.to_string())?;
    b.push("/linux/readonlyPaths", json!("/mnt"));
    // kernel.hostname is per uts namespace: harmless if the write went through.
    let script = "echo x > /proc/sys/kernel/hostname; echo sys=$?; touch /mnt/new; echo mnt=$?; \
                  cat /mnt/file; touch /tmp/ok; echo tmp=$?; \
                  echo == mounts; cat /proc/self/mountinfo";
    b.args(&["sh", "-c", script]);
    let (_id, out) = ctx.run(&b, &[]);
    ensure(
        out.error.is_none() && out.code.is_some(),
        format!("run: {}", describe(&out)),
    )?;
    let s = sections(&out.stdout);
    let main = s.get("").cloned().unwrap_or_default();
    let mut problems = Vec::new();
    for want in ["data", "tmp=0"] {
        if !main.iter().any(|l| l == want) {
            problems.push(format!("expected {want:?} in {main:?}"));
        }
    }
    for denied in ["sys", "mnt"] {
        if !main
            .iter()
            .any(|l| l.starts_with(&format!("{denied}=")) && *l != format!("{denied}=0"))
        {
            problems.push(format!("the write to {denied} did not fail: {main:?}"));
        }
    }
    let erofs = out.stderr.matches("Read-only file system").count();
    if erofs < 2 {
        problems.push(format!(
            "expected two EROFS errors, stderr: {:?}",
            out.stderr.trim()
        ));
    }
    let mounts = parse_mountinfo(&s.get("mounts").cloned().unwrap_or_default().join("\n"));
    // Paths the kernel does not have are skipped, as runc does.
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/mnt"] {
        if p.starts_with("/proc") && !Path::new(p).exists() {
            continue;
        }
        // The last mount on a path is the one that is visible.
        let ro = mounts
            .iter()
            .rfind(|m| m["mount_point"] == p)
            .is_some_and(|m| {
                m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "ro"))
            });
        if !ro {
            problems.push(format!("{p} is not a read-only mount inside"));
        }
    }
    Ok(all_ok(problems)?)
}

fn default_devices(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let script = "for d in null zero full random urandom tty; do stat -c '%n|%F|%a|%t:%T' /dev/$d; done; \
                  echo == links; for l in fd stdin stdout stderr ptmx; do echo \"$l $(readlink /dev/$l)\"; done; \
                  echo == ls; ls -A /dev; echo == mounts; cat /proc/self/mountinfo";
    let out = ctx.run_script(&mut b, script)?;
    let s = sections(&out);
    let mut problems = Vec::new();
    for (name, dev) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let want = format!("/dev/{name}|character special file|666|{dev}");
        if !section(&s, "").contains(&want) {
            let got = section(&s, "")
                .iter()
                .find(|l| l.starts_with(&format!("/dev/{name}|")));
            problems.push(format!("/dev/{name}: {got:?}, expected {want:?}"));
        }
    }
    let links = s.get("links").cloned().unwrap_or_default();
    for want in [
        "fd /proc/self/fd",
        "stdin /proc/self/fd/0",
        "stdout /proc/self/fd/1",
        "stderr /proc/self/fd/2",
    ] {
        if !links.iter().any(|l| l == want) {
            problems.push(format!("link {want:?} missing: {links:?}"));
        }
    }
    let ptmx = links
        .iter()
        .find(|l| l.starts_with("ptmx"))
        .cloned()
        .unwrap_or_default();
    if ptmx != "ptmx pts/ptmx" && ptmx != "ptmx /dev/pts/ptmx" {
        problems.push(format!("/dev/ptmx: {ptmx:?}, expected a link to pts/ptmx"));
    }
    let allowed = [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd",
        "stdin", "stdout", "stderr", "core", "console",
    ];
    let extra: Vec<&String> = s
        .get("ls")
        .map(|l| {
            l.iter()
                .filter(|n| !allowed.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if !extra.is_empty() {
        problems.push(format!("unexpected entries in /dev: {extra:?}"));
    }
    let mounts = parse_mountinfo(&s.get("mounts").cloned().unwrap_or_default().join("\n"));
    for (p, fstype) in [
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        if !mounts
            .iter()
            .any(|m| m["mount_point"] == p && m["fstype"] == fstype)
        {
            problems.push(format!("no {fstype} mounted on {p}"));
        }
    }
    Ok(all_ok(problems)?)
}

/// /dev/pts is a private devpts instance and /dev/ptmx allocates from it.
fn devpts_ptmx(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let out = ctx.run_script(
        &mut b,
        "exec 3<>/dev/ptmx && ls /dev/pts; echo == mounts; cat /proc/self/mountinfo",
    )?;
    let s = sections(&out);
    let pts: BTreeSet<&str> = section(&s, "").iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    if !pts.contains("0") || !pts.contains("ptmx") {
        problems.push(format!(
            "/dev/pts after opening /dev/ptmx: {pts:?}, expected 0 and ptmx"
        ));
    }
    let mounts = parse_mountinfo(&s.get("mounts").cloned().unwrap_or_default().join("\n"));
    match mounts.iter().find(|m| m["mount_point"] == "/dev/pts") {
        None => problems.push("no /dev/pts mount".into()),
        Some(m) => {
            let sup: Vec<&str> = m["super_options"]
                .as_array()
                .map(|o| o.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for want in ["ptmxmode=666", "mode=620", "gid=5"] {
                if !sup.contains(&want) {
                    problems.push(format!("/dev/pts options {sup:?} lack {want}"));
                }
            }
        }
    }
    Ok(all_ok(problems)?)
}

fn open_file(path: &Path) -> Result<fs::File, String> {
    fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))
}

/// `create --preserve-fds 2`: the container's process has exactly 0-4, with
/// 3 and 4 the files husk got as 3 and 4.
fn preserve_fds(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "100"]);
    b.write_config()
        .map_err(|e| format!("write config.json: {e}"))?;
    let (fa, fb) = (ctx.dir.join("preserved-a"), ctx.dir.join("preserved-b"));
    let (a, bf) = (open_file(&fa)?, open_file(&fb)?);
    let id = ctx.new_id();
    let dir = b.dir.to_string_lossy().into_owned();
    let h = ctx.spawn_husk(
        &["create", "--preserve-fds", "2", "--bundle", &dir, &id],
        &[(a.as_raw_fd(), 3), (bf.as_raw_fd(), 4)],
    )?;
    let status = ctx.wait_child(h, COMMAND_LIMIT)?;
    ensure(
        status.success(),
        format!(
            "create --preserve-fds 2: {status}: {:?}",
            ctx.child_output(h)
        ),
    )?;
    let pid = ctx.pid(&id)?;
    ctx.start(&id)?;
    ensure(
        wait_until(LIMIT, || {
            read_proc(pid, "comm").is_ok_and(|c| c.trim() == "sleep")
        }),
        "the container did not exec sleep",
    )?;
    let fds = proc_fds(pid)?;
    let numbers: Vec<i32> = fds.iter().map(|(n, _)| *n).collect();
    let mut problems = Vec::new();
    if numbers != [0, 1, 2, 3, 4] {
        problems.push(format!("container fds {fds:?}, expected 0-4"));
    }
    for (n, path) in [(3, &fa), (4, &fb)] {
        let target = fds.iter().find(|(m, _)| *m == n).map(|(_, t)| t.clone());
        if target.as_deref() != Some(&*path.to_string_lossy()) {
            problems.push(format!("fd {n} -> {target:?}, expected {}", path.display()));
        }
    }
    Ok(all_ok(problems)?)
}

/// Seen from inside: the init holds 0, 1 and 2 and nothing else.
fn only_std_fds_inside(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    // `; true` keeps the shell as pid 1 instead of exec'ing ls.
    let out = ctx.run_script(&mut b, "ls /proc/1/fd; true")?;
    let fds: Vec<&str> = out.split_whitespace().collect();
    Ok(ensure(
        fds == ["0", "1", "2"],
        format!("fds of the init inside: {fds:?}"),
    )?)
}

/// `--no-pivot`: the container still sees only its rootfs.
fn no_pivot(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let secret = ctx.scratch("host-only")?;
    b.args(&[
        "sh",
        "-c",
        &format!(
            "ls /; echo == host; ls {} 2>&1; echo rc=$?",
            secret.display()
        ),
    ]);
    let (_id, out) = ctx.run(&b, &["--no-pivot"]);
    expect_ok(&out, "run --no-pivot")?;
    let s = sections(&out.stdout);
    let root: BTreeSet<&str> = section(&s, "").iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    for want in ["bin", "proc", "dev", "etc"] {
        if !root.contains(want) {
            problems.push(format!("/ lacks {want}: {root:?}"));
        }
    }
    let host = s.get("host").cloned().unwrap_or_default();
    if !host.iter().any(|l| l == "rc=1") {
        problems.push(format!("a host dir is reachable: {host:?}"));
    }
    Ok(all_ok(problems)?)
}

/// uid/gid 0 → host 100000 (65536 ids): the maps inside and from the host,
/// and the host uid of the running process.
fn user_namespace_mappings(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    let out = ctx.out_dir(&mut b)?;
    b.push("/linux/namespaces", json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.set("/linux/uidMappings", map.clone());
    b.set("/linux/gidMappings", map);
    b.args(&[
        "sh",
        "-c",
        "{ cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g; } > /out/inside; touch /out/done; sleep 100",
    ]);
    let (_id, pid) = ctx.start_new(&b)?;
    ensure(
        wait_until(LIMIT, || out.join("done").exists()),
        "the container did not write /out/inside",
    )?;
    let inside = fs::read_to_string(out.join("inside")).map_err(|e| e.to_string())?;
    let norm = |t: &str| {
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let mut problems = Vec::new();
    let want = ["0 100000 65536", "0 100000 65536", "0", "0"];
    if norm(&inside) != want {
        problems.push(format!("inside: {:?}, expected {want:?}", norm(&inside)));
    }
    for f in ["uid_map", "gid_map"] {
        let host = norm(&read_proc(pid, f)?);
        if host != ["0 100000 65536"] {
            problems.push(format!("host /proc/{pid}/{f}: {host:?}"));
        }
    }
    let status = read_proc(pid, "status")?;
    for k in ["Uid", "Gid"] {
        let v = status_field(&status, k).unwrap_or_default();
        if v != "100000 100000 100000 100000" {
            problems.push(format!("host sees {k}: {v}"));
        }
    }
    let host_ns = conformance::host::own_ns("user")?;
    if conformance::host::ns_link(pid, "user")? == host_ns {
        problems.push("the container is in the host's user namespace".into());
    }
    Ok(all_ok(problems)?)
}

/// network namespace by path: a namespace bind-mounted on a file by
/// `unshare --net=FILE`; inside, /proc/self/ns/net is that inode.
fn join_netns_by_path(ctx: &mut Ctx) -> TestResult {
    let file = ctx.dir.join("netns");
    fs::write(&file, "").map_err(|e| format!("create {}: {e}", file.display()))?;
    let status = std::process::Command::new("unshare")
        .arg(format!("--net={}", file.display()))
        .arg("true")
        .status()
        .map_err(|e| skip(format!("cannot run unshare: {e}")))?;
    if !status.success() {
        return Err(skip(format!("unshare --net=FILE failed: {status}")));
    }
    ctx.register_mount(&file);
    let inode = fs::metadata(&file).map_err(|e| e.to_string())?.ino();
    let mut b = ctx.bundle()?;
    let namespaces: Vec<Value> = b.config["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|n| {
            if n["type"] == "network" {
                json!({"type": "network", "path": file})
            } else {
                n
            }
        })
        .collect();
    b.set("/linux/namespaces", json!(namespaces));
    let out = ctx.run_script(&mut b, "readlink /proc/self/ns/net")?;
    let want = format!("net:[{inode}]");
    ensure(
        out.trim() == want,
        format!("inside: {:?}, the file's namespace is {want}", out.trim()),
    )?;
    let host = conformance::host::own_ns("net")?;
    Ok(ensure(
        host != want,
        "the namespace file is the host's own netns",
    )?)
}

fn uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// A new time namespace with boottime/monotonic offsets: /proc/uptime
/// inside is ahead of the host's by the boottime offset.
fn time_namespace_offsets(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/proc/self/ns/time").exists() {
        return Err(skip("the kernel has no time namespaces"));
    }
    let (boot, mono) = (1_000_000i64, 2_000_000i64);
    let mut b = ctx.bundle()?;
    b.push("/linux/namespaces", json!({"type": "time"}));
    b.set(
        "/linux/timeOffsets",
        json!({"boottime": {"secs": boot, "nanosecs": 0}, "monotonic": {"secs": mono, "nanosecs": 0}}),
    );
    let out = ctx.run_script(
        &mut b,
        "cat /proc/uptime; echo == offsets; cat /proc/self/timens_offsets",
    )?;
    let host = fs::read_to_string("/proc/uptime")
        .ok()
        .as_deref()
        .and_then(uptime)
        .unwrap_or(0.0);
    let s = sections(&out);
    let inside = section(&s, "")
        .first()
        .map(String::as_str)
        .and_then(uptime)
        .unwrap_or(0.0);
    let mut problems = Vec::new();
    let delta = inside - host;
    if (delta - boot as f64).abs() > 10.0 {
        problems.push(format!(
            "uptime inside {inside}, host {host}: offset {delta:.1}, expected {boot}"
        ));
    }
    let offsets: BTreeSet<String> = s
        .get("offsets")
        .map(|l| {
            l.iter()
                .map(|x| x.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default();
    let want = BTreeSet::from([format!("monotonic {mono} 0"), format!("boottime {boot} 0")]);
    if offsets != want {
        problems.push(format!("timens_offsets {offsets:?}, expected {want:?}"));
    }
    Ok(all_ok(problems)?)
}

/// The init's cgroup in every hierarchy is `expect(hierarchy)`, the dirs
/// exist while it lives and are gone after delete.
fn cgroup_placement(ctx: &mut Ctx, path: &str) -> TestResult {
    ctx.register_cgroup(path);
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "100"]);
    b.set("/linux/cgroupsPath", json!(path));
    let (id, pid) = ctx.create(&b, &[])?;
    let cgroup = read_proc(pid, "cgroup")?;
    let mut problems = Vec::new();
    for h in ctx.hierarchies() {
        let want = match path.strip_prefix('/') {
            Some(_) => path.to_string(),
            None => Path::new(&h.base).join(path).to_string_lossy().into_owned(),
        };
        match h.path_in(&cgroup) {
            Some(p) if p == want => {}
            other => problems.push(format!("{}: init in {other:?}, expected {want}", h.label())),
        }
        if !h.dir(path).is_dir() {
            problems.push(format!("{}: {} missing", h.label(), h.dir(path).display()));
        }
    }
    all_ok(problems)?;
    expect_ok(&ctx.husk.delete_force(&id), "delete --force")?;
    let left: Vec<String> = ctx
        .cgroup_dirs(path)
        .into_iter()
        .filter(|(_, d)| d.exists())
        .map(|(l, d)| format!("{l}: {}", d.display()))
        .collect();
    Ok(ensure(
        left.is_empty(),
        format!("cgroup dirs left after delete: {left:?}"),
    )?)
}

fn cgroup_path_relative(ctx: &mut Ctx) -> TestResult {
    let path = format!("hk-rel-{}/leaf", std::process::id());
    cgroup_placement(ctx, &path)
}

fn cgroup_path_absolute(ctx: &mut Ctx) -> TestResult {
    let path = format!("/hk-abs-{}", std::process::id());
    cgroup_placement(ctx, &path)
}

/// terminal: true: the pty master arrives on our socket, carries the
/// container's output, and the console has consoleSize.
fn terminal_console_socket(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    b.set("/process/terminal", json!(true));
    b.set("/process/consoleSize", json!({"height": 33, "width": 101}));
    b.args(&["sh", "-c", "stty size; tty; echo hello-from-the-pty"]);
    let sock_path = ctx.dir.join("console.sock");
    let sock = ConsoleSocket::bind(&sock_path)?;
    let sock_arg = sock_path.to_string_lossy().into_owned();
    let (id, _pid) = ctx.create(&b, &["--console-socket", &sock_arg])?;
    let mut master = sock.receive_master(LIMIT)?;
    ctx.start(&id)?;
    let text = read_until_closed(&mut master, LIMIT);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut problems = Vec::new();
    for want in ["33 101", "hello-from-the-pty"] {
        if !lines.contains(&want) {
            problems.push(format!("{want:?} not read from the pty: {lines:?}"));
        }
    }
    if !lines.iter().any(|l| l.starts_with("/dev/pts/")) {
        problems.push(format!("tty inside is not a /dev/pts device: {lines:?}"));
    }
    Ok(all_ok(problems)?)
}

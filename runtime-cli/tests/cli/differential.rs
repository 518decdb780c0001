//! Differential: the same bundle under Debian's runc and under husk, with
//! the same busybox probe; every observation that differs is reported.
//! husk is a drop-in for runc, so a difference fails the test unless it is
//! listed in `ACCEPTED` with the reason it is deliberate.

use crate::common::*;
use conformance::procinfo::parse_mountinfo;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "differential.default_config_vs_runc",
            run: default_config,
        },
        Test {
            name: "differential.rich_config_vs_runc",
            run: rich_config,
        },
    ]
}

/// What the container reports about itself, one section per aspect.
const PROBE: &str = "\
echo '== status'; grep -E '^(Uid|Gid|Groups|Umask|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/1/status
echo '== limits'; cat /proc/1/limits
echo '== hostname'; hostname; cat /proc/sys/kernel/domainname
echo '== env'; tr '\\0' '\\n' < /proc/1/environ | sort
echo '== cwd'; pwd
echo '== oom_score_adj'; cat /proc/1/oom_score_adj
echo '== devices'; for f in /dev/* /dev/pts/* /dev/shm/* /dev/mqueue/*; do [ -e \"$f\" ] || [ -L \"$f\" ] && stat -c '%n|%F|%a|%u:%g|%t:%T' \"$f\"; done
echo '== fds'; ls /proc/1/fd
echo '== mounts'; cat /proc/self/mountinfo
";

/// Differences between runc 1.1.5 and husk that were reviewed and are not
/// bugs, as (section, the exact difference line, why). An exact match keeps
/// any further change visible.
const ACCEPTED: &[(&str, &str, &str)] = &[
    (
        "mounts",
        r#"/proc/acpi: runc Some(["tmpfs relatime,ro [ro]"]), husk Some(["tmpfs nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "masked dir: husk's tmpfs is also nosuid,nodev,noexec (stricter, empty either way)",
    ),
    (
        "mounts",
        r#"/sys/firmware: runc Some(["tmpfs relatime,ro [ro]"]), husk Some(["tmpfs nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "masked dir: husk's tmpfs is also nosuid,nodev,noexec (stricter, empty either way)",
    ),
    (
        "mounts",
        r#"/proc/bus: runc Some(["proc relatime,ro [rw]"]), husk Some(["proc nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "readonly path: husk adds nosuid,nodev,noexec to the read-only bind (stricter; nothing there to execute)",
    ),
    (
        "mounts",
        r#"/proc/fs: runc Some(["proc relatime,ro [rw]"]), husk Some(["proc nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "readonly path: husk adds nosuid,nodev,noexec to the read-only bind (stricter; nothing there to execute)",
    ),
    (
        "mounts",
        r#"/proc/irq: runc Some(["proc relatime,ro [rw]"]), husk Some(["proc nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "readonly path: husk adds nosuid,nodev,noexec to the read-only bind (stricter; nothing there to execute)",
    ),
    (
        "mounts",
        r#"/proc/sys: runc Some(["proc relatime,ro [rw]"]), husk Some(["proc nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "readonly path: husk adds nosuid,nodev,noexec to the read-only bind (stricter; nothing there to execute)",
    ),
    (
        "mounts",
        r#"/sys: runc Some(["sysfs nodev,noexec,nosuid,relatime,ro [ro]"]), husk Some(["sysfs nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "runc passes MS_RDONLY at mount time (read-only superblock), husk makes the mount read-only; same access inside",
    ),
    (
        "mounts",
        r#"/sys/fs/cgroup: runc Some(["tmpfs nodev,noexec,nosuid,relatime,rw [mode=755,rw]"]), husk Some(["tmpfs nodev,noexec,nosuid,relatime,ro [mode=755,rw]"])"#,
        "the config asks for ro on /sys/fs/cgroup; runc 1.1.5 leaves the tmpfs under the cgroup mounts writable",
    ),
    (
        "mounts",
        r#"/sys/fs/cgroup/unified: runc None, husk Some(["cgroup2 nodev,noexec,nosuid,relatime,ro [rw]"])"#,
        "hybrid host: husk also mounts the container's own cgroup2 dir (read-only); runc 1.1.5 mounts only the v1 hierarchies",
    ),
    ("hostname", "only runc: (none)", "runc 1.1.5 ignores domainname; husk sets it as the spec says"),
    ("hostname", "only husk: diff.example", "runc 1.1.5 ignores domainname; husk sets it as the spec says"),
];

/// Mounts under /, /dev, /proc and /sys as `point -> type, options, super
/// options` (sorted, so that order of options does not matter).
fn mounts(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in parse_mountinfo(&lines.join("\n")) {
        let point = m["mount_point"].as_str().unwrap_or_default().to_string();
        let wanted = point == "/"
            || ["/dev", "/proc", "/sys"]
                .iter()
                .any(|p| point == *p || point.starts_with(&format!("{p}/")));
        if !wanted {
            continue;
        }
        let list = |v: &Value| -> String {
            let mut o: Vec<&str> = v
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            o.sort();
            o.join(",")
        };
        let desc = format!(
            "{} {} [{}]",
            m["fstype"].as_str().unwrap_or_default(),
            list(&m["options"]),
            list(&m["super_options"])
        );
        map.entry(point).or_default().push(desc);
    }
    map
}

/// Every difference between the two probe outputs, as readable lines.
fn differences(runc: &str, husk: &str) -> Vec<(String, String)> {
    let (r, h) = (sections(runc), sections(husk));
    let mut diffs = Vec::new();
    let names: BTreeSet<&String> = r.keys().chain(h.keys()).collect();
    for name in names {
        let empty = Vec::new();
        let (rl, hl) = (r.get(name).unwrap_or(&empty), h.get(name).unwrap_or(&empty));
        if name == "mounts" {
            let (rm, hm) = (mounts(rl), mounts(hl));
            let points: BTreeSet<&String> = rm.keys().chain(hm.keys()).collect();
            for p in points {
                let (a, b) = (rm.get(p), hm.get(p));
                if a != b {
                    diffs.push((name.clone(), format!("{p}: runc {a:?}, husk {b:?}")));
                }
            }
            continue;
        }
        let (rs, hs): (BTreeSet<&String>, BTreeSet<&String>) =
            (rl.iter().collect(), hl.iter().collect());
        for only in rs.difference(&hs) {
            diffs.push((name.clone(), format!("only runc: {only}")));
        }
        for only in hs.difference(&rs) {
            diffs.push((name.clone(), format!("only husk: {only}")));
        }
    }
    diffs
}

fn compare(ctx: &mut Ctx, edit: impl Fn(&mut Bundle)) -> TestResult {
    let runc = ctx.runc()?;
    let mut b = ctx.bundle()?;
    edit(&mut b);
    b.args(&["sh", "-c", PROBE]);
    let rid = ctx.new_runc_id();
    let r = runc.run(&b, &rid);
    if !r.success() {
        return Err(skip(format!(
            "runc cannot run the bundle: {}",
            describe(&r)
        )));
    }
    let (_hid, h) = ctx.run(&b, &[]);
    expect_ok(&h, "husk run")?;
    // Two empty observations would compare equal: make sure both saw.
    for (who, text) in [("runc", &r.stdout), ("husk", &h.stdout)] {
        let s = sections(text);
        for name in [
            "status",
            "limits",
            "hostname",
            "env",
            "cwd",
            "oom_score_adj",
            "devices",
            "fds",
            "mounts",
        ] {
            if s.get(name)
                .is_none_or(|l| l.iter().all(|x| x.trim().is_empty()))
            {
                return Err(format!("{who}: the probe saw nothing for {name}: {text:?}").into());
            }
        }
    }
    let mut failing = Vec::new();
    for (section, line) in differences(&r.stdout, &h.stdout) {
        match ACCEPTED
            .iter()
            .find(|(s, exact, _)| *s == section && line == *exact)
        {
            Some((_, _, why)) => {
                ctx.note(format!("accepted difference in {section}: {line} ({why})"))
            }
            None => failing.push(format!("[{section}] {line}")),
        }
    }
    Ok(all_ok(failing)?)
}

fn default_config(ctx: &mut Ctx) -> TestResult {
    compare(ctx, |_| {})
}

fn rich_config(ctx: &mut Ctx) -> TestResult {
    compare(ctx, |b| {
        let caps = [
            "CAP_CHOWN",
            "CAP_KILL",
            "CAP_NET_RAW",
            "CAP_SETUID",
            "CAP_SETGID",
        ];
        b.set(
            "/process/user",
            json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 2000], "umask": 0o077}),
        );
        b.set(
            "/process/capabilities",
            json!({"bounding": caps, "permitted": caps, "effective": caps,
                   "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}),
        );
        b.set(
            "/process/rlimits",
            json!([
                {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
            ]),
        );
        b.set("/process/env", json!(["PATH=/bin", "GREETING=hello world"]));
        b.set("/process/cwd", json!("/home"));
        b.set("/process/oomScoreAdj", json!(100));
        b.set("/process/noNewPrivileges", json!(false));
        b.set("/hostname", json!("diffhost"));
        b.set("/domainname", json!("diff.example"));
        b.set("/root/readonly", json!(false));
        b.push("/linux/maskedPaths", json!("/etc/group"));
        b.push("/linux/readonlyPaths", json!("/mnt"));
    })
}

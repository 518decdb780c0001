//! The container-escape attack suite of issue 5, modelled on runc's and
//! crun's advisories (docs/attacks.md maps each test to its CVE and to the
//! husk code that stops it).
//!
//! Every test first shows that its primitive works, the way a naive runtime
//! would meet it: a path joined from the rootfs and handed to mount(2), a
//! plain chroot, a write through a path string (run in a private mount
//! namespace on the host, or against scratch files). Then it runs the
//! attack against husk and checks that husk either refuses with a clear
//! error or keeps the effect inside the container, and that the host is
//! unchanged: host files byte-identical, no host mount added, host sysctls
//! as they were, the husk binary byte-identical. Tests that open husk's
//! /proc/<pid>/exe run a copy of the binary.

use crate::common::*;
use crate::exec::{open_dir, peek, running, use_husk_copy, wait_comm, LIMIT};
use crate::tracer::StoppedExec;
use conformance::console::{read_until_closed, ConsoleSocket};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "attack.mount_symlink_absolute",
            run: mount_symlink_absolute,
        },
        Test {
            name: "attack.mount_symlink_relative",
            run: mount_symlink_relative,
        },
        Test {
            name: "attack.mount_symlink_nested",
            run: mount_symlink_nested,
        },
        Test {
            name: "attack.mount_symlink_race",
            run: mount_symlink_race,
        },
        Test {
            name: "attack.dev_null_symlink_host_file",
            run: dev_null_symlink_host_file,
        },
        Test {
            name: "attack.dev_null_symlink_core_pattern",
            run: dev_null_symlink_core_pattern,
        },
        Test {
            name: "attack.cwd_proc_self_fd_create",
            run: cwd_proc_self_fd_create,
        },
        Test {
            name: "attack.cwd_proc_self_fd_exec",
            run: cwd_proc_self_fd_exec,
        },
        Test {
            name: "attack.inherited_fds",
            run: inherited_fds,
        },
        Test {
            name: "attack.proc_exe_create",
            run: proc_exe_create,
        },
        Test {
            name: "attack.proc_exe_exec",
            run: proc_exe_exec,
        },
        Test {
            name: "attack.proc_write_bind_over_proc_files",
            run: proc_write_bind_over_proc_files,
        },
        Test {
            name: "attack.proc_write_fake_proc_volume",
            run: proc_write_fake_proc_volume,
        },
        Test {
            name: "attack.proc_write_symlinked_proc",
            run: proc_write_symlinked_proc,
        },
        Test {
            name: "attack.console_symlink_host_file",
            run: console_symlink_host_file,
        },
        Test {
            name: "attack.ptmx_not_devpts",
            run: ptmx_not_devpts,
        },
        Test {
            name: "attack.devpts_symlink_host_dir",
            run: devpts_symlink_host_dir,
        },
        Test {
            name: "attack.console_own_dev_readonly_root",
            run: console_own_dev_readonly_root,
        },
        Test {
            name: "attack.image_device_nodes",
            run: image_device_nodes,
        },
    ]
}

// ------------------------------------------------------------------ helpers

/// A host tree as (relative path → what it is: file content, link target,
/// "dir" or the device numbers), to show it did not change.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let what = if m.file_type().is_symlink() {
                format!(
                    "-> {}",
                    fs::read_link(&p)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                )
            } else if m.is_dir() {
                walk(base, &p, out);
                format!("dir {:o}", m.mode() & 0o7777)
            } else if m.is_file() {
                format!(
                    "file {:o} {:?}",
                    m.mode() & 0o7777,
                    String::from_utf8_lossy(&fs::read(&p).unwrap_or_default())
                )
            } else {
                format!("special {:o} rdev {}", m.mode(), m.rdev())
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A host directory with files the attacks aim at, and its snapshot.
struct HostTarget {
    dir: PathBuf,
    before: BTreeMap<String, String>,
}

impl HostTarget {
    fn new(ctx: &mut Ctx, name: &str) -> Result<HostTarget, String> {
        let dir = ctx.scratch(name)?;
        fs::write(dir.join("host-marker"), "host data, not for containers\n")
            .map_err(|e| e.to_string())?;
        fs::write(
            dir.join("shadow"),
            "root:$6$SECRET-HASH:19000:0:99999:7:::\n",
        )
        .map_err(|e| e.to_string())?;
        fs::create_dir_all(dir.join("sub")).map_err(|e| e.to_string())?;
        Ok(HostTarget {
            before: snapshot(&dir),
            dir,
        })
    }

    /// Problems if the tree changed or something is mounted in it.
    fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let now = snapshot(&self.dir);
        if now != self.before {
            problems.push(format!(
                "host dir {} changed: {:?} -> {now:?}",
                self.dir.display(),
                self.before
            ));
        }
        let mounts = mounts_under(&self.dir);
        if !mounts.is_empty() {
            problems.push(format!("host mounts appeared at {mounts:?}"));
        }
        problems
    }

    fn path(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
}

/// Runs `sh -c script` on the host in a private mount namespace, as a
/// naive runtime would act (mounts vanish with it). Its stdout and stderr.
fn naive(script: &str, args: &[&str]) -> Result<(bool, String), String> {
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "naive",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run unshare: {e}"))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// The demonstration of a primitive must have worked, or the test cannot
/// show anything on this host (a skip, with why).
fn primitive(ctx: &mut Ctx, what: &str, shown: Result<bool, String>) -> Result<(), Outcome> {
    match shown {
        Ok(true) => {
            ctx.note(format!("primitive shown: {what}"));
            Ok(())
        }
        Ok(false) => Err(skip(format!(
            "could not show the primitive ({what}) on this host"
        ))),
        Err(e) => Err(skip(format!("could not show the primitive ({what}): {e}"))),
    }
}

/// How husk met an attack.
enum Verdict {
    /// It ran: the container's output.
    Ran(String),
    /// husk refused with this `husk: run: …` line.
    Refused(String),
}

/// `husk run` of the bundle (the container must exit 0): ran, or refused
/// properly (exit 1, an error naming one of `needles`, in --log too), and
/// nothing left behind either way.
fn run_attack(ctx: &mut Ctx, b: &Bundle, needles: &str) -> Result<Verdict, String> {
    let (id, out) = ctx.run(b, &[]);
    let verdict = if out.success() {
        Verdict::Ran(out.stdout.clone())
    } else {
        ctx.expect_failure(&out, "run", &[needles]).map_err(|e| {
            format!(
                "neither ran nor refused cleanly: {e}; stdout {:?}",
                out.stdout
            )
        })?;
        let line = out
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("husk: "))
            .unwrap_or_default()
            .to_string();
        Verdict::Refused(line)
    };
    if ctx.root.join(&id).exists() {
        expect_ok(&ctx.husk.delete_force(&id), "delete --force")?;
    }
    ctx.expect_nothing_left(&id, Some(&b.dir))?;
    Ok(verdict)
}

/// Notes a refusal; returns the output when it ran.
fn ran(ctx: &mut Ctx, what: &str, v: Verdict) -> Option<String> {
    match v {
        Verdict::Ran(out) => Some(out),
        Verdict::Refused(line) => {
            ctx.note(format!("{what}: refused: {line}"));
            None
        }
    }
}

/// Removes the config mount at `dest` (e.g. the /dev tmpfs, so that the
/// image's own /dev is what the container gets).
fn drop_mount(b: &mut Bundle, dest: &str) {
    if let Some(m) = b.config["mounts"].as_array_mut() {
        m.retain(|x| x["destination"] != dest);
    }
}

fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> Result<(), String> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: valid C string; mknod takes integers otherwise.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o666, libc::makedev(major, minor)) };
    if rc != 0 {
        return Err(format!(
            "mknod {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

fn link(target: &str, at: &Path) -> Result<(), String> {
    if let Some(p) = at.parent() {
        fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    }
    let _ = fs::remove_dir(at);
    let _ = fs::remove_file(at);
    symlink(target, at).map_err(|e| format!("symlink {} -> {target}: {e}", at.display()))
}

/// Mount points of a container's mountinfo (as the container sees them).
fn mount_points(mountinfo: &str) -> Vec<(String, String, String)> {
    conformance::procinfo::parse_mountinfo(mountinfo)
        .into_iter()
        .map(|m| {
            (
                m["mount_point"].as_str().unwrap_or_default().to_string(),
                m["fstype"].as_str().unwrap_or_default().to_string(),
                m["root"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

// ------------------------------------------------ mount destination symlinks

/// One mount-destination case: symlinks planted in the rootfs, the
/// destination that goes through them, and where the naive join lands.
struct SymlinkCase {
    links: Vec<(&'static str, String)>,
    dest: String,
    /// The host path a naive join of rootfs + dest reaches.
    host_path: PathBuf,
}

/// Plants the case's links, shows that a naive mount(2) on the joined path
/// lands on the host dir, then runs a tmpfs and a bind mount at the
/// destination under husk: refused, or visible inside the container (so
/// inside its root); the host dir is unchanged either way.
fn mount_symlink_case(ctx: &mut Ctx, case: impl Fn(&HostTarget) -> SymlinkCase) -> TestResult {
    let host = HostTarget::new(ctx, "host-target")?;
    let src = ctx.scratch("attacker-src")?;
    write(&src.join("attacker-file"), "planted by the attacker\n")?;
    let c = case(&host);
    let mut problems = Vec::new();
    for kind in ["tmpfs", "bind"] {
        let mut b = ctx.bundle()?;
        for (at, target) in &c.links {
            link(target, &b.rootfs().join(at))?;
        }
        if kind == "tmpfs" {
            // The primitive, once: the joined path reaches the host dir.
            let joined = b.rootfs().join(c.dest.trim_start_matches('/'));
            let hp = c.host_path.to_string_lossy().into_owned();
            let shown = naive(
                "mount -t tmpfs naive \"$1\" && grep -qF \" $2 \" /proc/self/mountinfo",
                &[&joined.to_string_lossy(), &hp],
            )
            .map(|(ok, _)| ok);
            primitive(
                ctx,
                &format!("mount on {} lands on {hp}", joined.display()),
                shown,
            )?;
        }
        let mount = if kind == "tmpfs" {
            json!({"destination": c.dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
        } else {
            json!({"destination": c.dest, "type": "bind", "source": src, "options": ["rbind", "rw"]})
        };
        b.push("/mounts", mount);
        b.args(&["sh", "-c", "cat /proc/self/mountinfo; true"]);
        match run_attack(ctx, &b, &format!("{}|symlink", c.dest))? {
            Verdict::Refused(line) => ctx.note(format!("{kind} at {}: refused: {line}", c.dest)),
            Verdict::Ran(out) => {
                let src_name = src
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                // Resolved inside the root, the destination is the host
                // path taken as a path in the container.
                let inside = c.host_path.to_string_lossy().into_owned();
                let landed: Vec<String> = mount_points(&out)
                    .into_iter()
                    .filter(|(point, fstype, root)| {
                        (point == &inside || point == &c.dest)
                            && if kind == "tmpfs" {
                                fstype == "tmpfs"
                            } else {
                                root.ends_with(&src_name)
                            }
                    })
                    .map(|(p, _, _)| p)
                    .collect();
                if landed.is_empty() {
                    problems.push(format!(
                        "{kind} at {}: husk reported success but the mount is not inside the container: {out:?}",
                        c.dest
                    ));
                } else {
                    ctx.note(format!(
                        "{kind} at {}: inside the root, at {landed:?}",
                        c.dest
                    ));
                }
            }
        }
        problems.extend(host.check());
    }
    Ok(all_ok(problems)?)
}

fn mount_symlink_absolute(ctx: &mut Ctx) -> TestResult {
    mount_symlink_case(ctx, |h| SymlinkCase {
        links: vec![("mnt/evil", h.path())],
        dest: "/mnt/evil".into(),
        host_path: h.dir.clone(),
    })
}

fn mount_symlink_relative(ctx: &mut Ctx) -> TestResult {
    mount_symlink_case(ctx, |h| SymlinkCase {
        links: vec![(
            "mnt/evil",
            format!("{}{}", "../".repeat(24), h.path().trim_start_matches('/')),
        )],
        dest: "/mnt/evil".into(),
        host_path: h.dir.clone(),
    })
}

/// A chain (relative → relative → absolute) in the middle of the
/// destination, with the last component a real directory on the host.
fn mount_symlink_nested(ctx: &mut Ctx) -> TestResult {
    mount_symlink_case(ctx, |h| SymlinkCase {
        links: vec![
            ("mnt/evil", "hop".into()),
            ("mnt/hop", "../etc/hop2".into()),
            ("etc/hop2", h.path()),
        ],
        dest: "/mnt/evil/sub".into(),
        host_path: h.dir.join("sub"),
    })
}

/// renameat2(RENAME_EXCHANGE) of two names in one directory.
fn exchange(a: &CString, b: &CString) -> bool {
    // SAFETY: valid C strings; renameat2 takes integers otherwise.
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// CVE-2021-30465: while husk sets the container up, a helper thread
/// swaps rootfs/mnt/x between a directory and a symlink to a host dir as
/// fast as it can; 50 containers with a tmpfs and a bind at /mnt/x. Each
/// is refused cleanly or has its mounts inside; the host dir never gets a
/// mount and its files never change.
fn mount_symlink_race(ctx: &mut Ctx) -> TestResult {
    const RUNS: usize = 50;
    let host = HostTarget::new(ctx, "race-target")?;
    let src = ctx.scratch("race-src")?;
    write(&src.join("attacker-file"), "planted\n")?;
    let mut b = ctx.bundle()?;
    let (x, xl) = (b.rootfs().join("mnt/x"), b.rootfs().join("mnt/x-link"));
    fs::create_dir_all(&x).map_err(|e| e.to_string())?;
    link(&host.path(), &xl)?;
    // The primitive: whenever the swap has put the symlink at mnt/x, a
    // naive mount of the joined path lands on the host dir.
    let (cx, cxl) = (
        CString::new(x.as_os_str().as_bytes()).map_err(|e| e.to_string())?,
        CString::new(xl.as_os_str().as_bytes()).map_err(|e| e.to_string())?,
    );
    ensure(exchange(&cx, &cxl), "renameat2(RENAME_EXCHANGE) failed")?;
    let shown = naive(
        "mount -t tmpfs naive \"$1\" && grep -qF \" $2 \" /proc/self/mountinfo",
        &[&x.to_string_lossy(), &host.path()],
    )
    .map(|(ok, _)| ok);
    ensure(exchange(&cx, &cxl), "renameat2(RENAME_EXCHANGE) failed")?;
    primitive(
        ctx,
        "a mount on the swapped-in symlink lands on the host dir",
        shown,
    )?;
    b.push(
        "/mounts",
        json!({"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/mnt/x", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
    );
    b.args(&["sh", "-c", "cat /proc/self/mountinfo; true"]);
    let stop = AtomicBool::new(false);
    let swaps = AtomicU64::new(0);
    let src_name = src
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut problems = Vec::new();
    let (mut ran_n, mut refused_n) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if exchange(&cx, &cxl) {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        for i in 0..RUNS {
            match run_attack(
                ctx,
                &b,
                "/mnt/x|symlink|ELOOP|too many levels|no such file|not a directory",
            ) {
                Err(e) => problems.push(format!("run {i}: {e}")),
                Ok(Verdict::Refused(_)) => refused_n += 1,
                Ok(Verdict::Ran(out)) => {
                    ran_n += 1;
                    let points = mount_points(&out);
                    let tmpfs = points
                        .iter()
                        .any(|(_, t, r)| t == "tmpfs" && r == "/" && !out.is_empty());
                    let bind = points.iter().any(|(_, _, r)| r.ends_with(&src_name));
                    if !(tmpfs && bind) {
                        problems.push(format!(
                            "run {i}: success, but the tmpfs ({tmpfs}) or the bind ({bind}) is not inside the container"
                        ));
                    }
                }
            }
            problems.extend(
                host.check()
                    .into_iter()
                    .map(|p| format!("after run {i}: {p}")),
            );
            if problems.len() > 5 {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Leave mnt/x a directory.
    if fs::symlink_metadata(&x).is_ok_and(|m| m.file_type().is_symlink()) {
        exchange(&cx, &cxl);
    }
    ctx.note(format!(
        "{ran_n} ran, {refused_n} refused, {} swaps during the runs",
        swaps.load(Ordering::Relaxed)
    ));
    Ok(all_ok(problems)?)
}

// ------------------------------------------------------ /dev/null symlinked

/// The image's own /dev (no tmpfs over it) with dev/null a symlink to
/// `target`; the container reads and writes the masked paths.
fn dev_null_bundle(ctx: &mut Ctx, target: &str) -> Result<Bundle, String> {
    let mut b = ctx.bundle()?;
    drop_mount(&mut b, "/dev");
    link(target, &b.rootfs().join("dev/null"))?;
    b.args(&[
        "sh",
        "-c",
        "for f in /proc/kcore /proc/timer_list /proc/keys /proc/sched_debug; do \
           [ -e $f ] || continue; echo \"== $f\"; stat -c '%F %t:%T' $f; head -c 200 $f; \
           echo '|/tmp/evil %p' 2>/dev/null > $f && echo WROTE; done; \
         echo '== /dev/null'; stat -c '%F %t:%T' /dev/null; true",
    ]);
    Ok(b)
}

/// Every masked file is the null device, empty, and shows nothing of `secret`.
fn masked_paths_ok(out: &str, secret: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if out.contains(secret) {
        problems.push(format!("{secret:?} visible in the container: {out:?}"));
    }
    for (name, lines) in sections(out) {
        if !name.starts_with("/proc/") {
            continue;
        }
        if lines.first().map(String::as_str) != Some("character special file 1:3") {
            problems.push(format!(
                "masked {name} is {:?}, not the null device",
                lines.first()
            ));
        }
    }
    problems
}

/// CVE-2025-31133: the image ships dev/null -> a host file (a shadow-like
/// secret). A runtime that binds "/dev/null" over the masked paths by path
/// would show the secret at /proc/kcore and make it writable.
fn dev_null_symlink_host_file(ctx: &mut Ctx) -> TestResult {
    let host = HostTarget::new(ctx, "shadow-dir")?;
    let shadow = host.dir.join("shadow");
    let b = dev_null_bundle(ctx, &shadow.to_string_lossy())?;
    let scratch = ctx.scratch("masked")?;
    let target = scratch.join("kcore");
    write(&target, "")?;
    let shown = naive(
        "mount --bind \"$1\" \"$2\" && cat \"$2\"",
        &[
            &b.rootfs().join("dev/null").to_string_lossy(),
            &target.to_string_lossy(),
        ],
    )
    .map(|(ok, out)| ok && out.contains("SECRET-HASH"));
    primitive(
        ctx,
        "binding the image's dev/null over a masked path shows the host file",
        shown,
    )?;
    let mut problems = Vec::new();
    let verdict = run_attack(ctx, &b, "/dev/null")?;
    if let Some(out) = ran(ctx, "dev/null -> host shadow", verdict) {
        problems.extend(masked_paths_ok(&out, "SECRET-HASH"));
        if out.contains("WROTE") && !problems.is_empty() {
            problems.push("a masked path was writable".into());
        }
    }
    problems.extend(host.check());
    Ok(all_ok(problems)?)
}

/// CVE-2025-31133 as published: dev/null -> /proc/sys/kernel/core_pattern,
/// so that writing a masked path would set the host's core_pattern.
fn dev_null_symlink_core_pattern(ctx: &mut Ctx) -> TestResult {
    let core = Path::new("/proc/sys/kernel/core_pattern");
    let before = fs::read_to_string(core).map_err(|e| format!("read {}: {e}", core.display()))?;
    ctx.register_restore(core, &before);
    let b = dev_null_bundle(ctx, "/proc/sys/kernel/core_pattern")?;
    // The primitive, in a private mount namespace: a bind of the joined
    // dev/null path follows the symlink to the host's core_pattern.
    let scratch = ctx.scratch("masked")?;
    let target = scratch.join("timer_list");
    write(&target, "")?;
    let shown = naive(
        "mount --bind \"$1\" \"$2\" && cat \"$2\"",
        &[
            &b.rootfs().join("dev/null").to_string_lossy(),
            &target.to_string_lossy(),
        ],
    )
    .map(|(ok, out)| ok && out.trim() == before.trim());
    primitive(
        ctx,
        "binding the image's dev/null over a masked path exposes core_pattern",
        shown,
    )?;
    let mut problems = Vec::new();
    let verdict = run_attack(ctx, &b, "/dev/null")?;
    if let Some(out) = ran(ctx, "dev/null -> core_pattern", verdict) {
        problems.extend(masked_paths_ok(&out, before.trim()));
    }
    let after = fs::read_to_string(core).unwrap_or_default();
    if after != before {
        problems.push(format!(
            "the host's core_pattern changed: {before:?} -> {after:?}"
        ));
    }
    Ok(all_ok(problems)?)
}

// ------------------------------------------------------- cwd and leaked fds

/// Host dir fds at 3..=10, all on `dir`, as (source, target) pairs.
/// (source, target) fd pairs for `Ctx::spawn_husk`.
type FdPairs = Vec<(RawFd, RawFd)>;

fn leaked_dir_fds(dir: &Path) -> Result<(Vec<OwnedFd>, FdPairs), String> {
    let fds: Vec<OwnedFd> = (3..=10).map(|_| open_dir(dir)).collect::<Result<_, _>>()?;
    let pairs = fds
        .iter()
        .zip(3..=10)
        .map(|(f, n)| (f.as_raw_fd(), n))
        .collect();
    Ok((fds, pairs))
}

/// The container's script: it escaped if it can read the host marker
/// relative to its cwd, or climb out to the host's root.
fn escape_probe(host: &HostTarget) -> String {
    format!(
        "pwd -P 2>&1; if cat ./host-marker 2>/dev/null; then echo ESCAPED-CWD; fi; \
         cd ../../../../../../../../../../.. 2>/dev/null; \
         if [ -e \".{}/host-marker\" ]; then echo ESCAPED-ROOT; fi; true",
        host.path()
    )
}

/// The plain-chroot primitive of CVE-2024-21626: with a host directory fd
/// inherited, `cd /proc/self/fd/9` in a chroot leads out of it.
fn show_cwd_primitive(ctx: &mut Ctx, host: &HostTarget) -> Result<(), Outcome> {
    let mut demo = ctx.bundle()?;
    let rootfs = demo.rootfs();
    demo.args(&["true"]);
    let dirfd = open_dir(&host.dir)?;
    let raw = dirfd.as_raw_fd();
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    let proc_s = rootfs.join("proc").to_string_lossy().into_owned();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--pid", "--fork", "--propagation", "private"])
        .arg(format!("--mount-proc={proc_s}"))
        .args([
            "chroot",
            &rootfs_s,
            "/bin/sh",
            "-c",
            "cd /proc/self/fd/9 && cat ./host-marker",
        ])
        .stdin(Stdio::null());
    // SAFETY: only dup2(2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let shown = cmd
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("host data"))
        .map_err(|e| format!("unshare chroot: {e}"));
    drop(dirfd);
    primitive(
        ctx,
        "a chroot with an inherited dir fd escapes through cwd /proc/self/fd/9",
        shown,
    )
}

/// CVE-2024-21626 through create: husk is started with host directory fds
/// at 3..10 (as a leaky caller would) and cwd /proc/self/fd/N, N = 3..12.
fn cwd_proc_self_fd_create(ctx: &mut Ctx) -> TestResult {
    let host = HostTarget::new(ctx, "cwd-target")?;
    show_cwd_primitive(ctx, &host)?;
    let (_fds, pairs) = leaked_dir_fds(&host.dir)?;
    let mut problems = Vec::new();
    let mut refused = 0;
    for n in 3..=12 {
        let mut b = ctx.bundle()?;
        b.set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
        b.args(&["sh", "-c", &escape_probe(&host)]);
        b.write_config().map_err(|e| e.to_string())?;
        let id = ctx.new_id();
        let dir = b.dir.to_string_lossy().into_owned();
        let h = ctx.spawn_husk(&["run", "--bundle", &dir, &id], &pairs)?;
        let status = ctx.wait_child(h, COMMAND_LIMIT)?;
        let (out, err) = ctx.child_output(h);
        if out.contains("ESCAPED") || out.contains("unreachable") {
            problems.push(format!(
                "cwd /proc/self/fd/{n}: the process left its root: {out:?}"
            ));
        } else if status.success() {
            if !out.starts_with('/') {
                problems.push(format!("cwd /proc/self/fd/{n}: pwd {out:?}"));
            }
        } else if contains_any(&err, "husk: run: ") && contains_any(&err, "cwd") {
            refused += 1;
        } else {
            problems.push(format!("cwd /proc/self/fd/{n}: {status}, {err:?}"));
        }
        if ctx.root.join(&id).exists() {
            let _ = ctx.husk.delete_force(&id);
        }
    }
    ctx.note(format!(
        "{refused} of 10 cwds refused, the rest stayed inside"
    ));
    problems.extend(host.check());
    Ok(all_ok(problems)?)
}

/// The exec variant: `husk exec --cwd /proc/self/fd/N`, and the same cwd
/// in a --process file, with host dir fds leaked into husk.
fn cwd_proc_self_fd_exec(ctx: &mut Ctx) -> TestResult {
    let host = HostTarget::new(ctx, "cwd-target")?;
    show_cwd_primitive(ctx, &host)?;
    let (_b, id, _init) = running(ctx, |_| {})?;
    let (_fds, pairs) = leaked_dir_fds(&host.dir)?;
    let probe = escape_probe(&host);
    let mut problems = Vec::new();
    let mut refused = 0;
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        let file = ctx.dir.join(format!("process-{n}.json"));
        let process = json!({
            "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": cwd,
            "args": ["sh", "-c", probe], "env": ["PATH=/bin"]
        });
        fs::write(&file, process.to_string()).map_err(|e| e.to_string())?;
        let fp = file.to_string_lossy().into_owned();
        let variants: [Vec<&str>; 2] = [
            vec!["exec", "--cwd", &cwd, &id, "sh", "-c", &probe],
            vec!["exec", "--process", &fp, &id],
        ];
        for args in variants {
            let h = ctx.spawn_husk(&args, &pairs)?;
            let status = ctx.wait_child(h, COMMAND_LIMIT)?;
            let (out, err) = ctx.child_output(h);
            if out.contains("ESCAPED") || out.contains("unreachable") {
                problems.push(format!("{args:?}: the process left its root: {out:?}"));
            } else if status.success() {
                if !out.starts_with('/') {
                    problems.push(format!("{args:?}: pwd {out:?}"));
                }
            } else if status.code() == Some(255) && contains_any(&err, "husk: exec: ") {
                refused += 1;
            } else {
                problems.push(format!("{args:?}: {status}, {err:?}"));
            }
        }
    }
    ctx.note(format!(
        "{refused} of 20 exec cwds refused, the rest stayed inside"
    ));
    problems.extend(host.check());
    Ok(all_ok(problems)?)
}

/// A process inside looks for fds it should not have: husk gets host dir
/// fds at 3..10 (as a leaky caller would hand them) with --preserve-fds 1,
/// for the init (create) and for an exec'd process. `ls` run in the
/// container lists their fds: exactly 0, 1, 2 and the preserved 3. (A
/// shell's own fd table is no witness: busybox ash keeps fds of its own.)
fn inherited_fds(ctx: &mut Ctx) -> TestResult {
    let host = HostTarget::new(ctx, "fd-target")?;
    let (_fds, pairs) = leaked_dir_fds(&host.dir)?;
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "1000"]);
    b.write_config().map_err(|e| e.to_string())?;
    let id = ctx.new_id();
    let dir = b.dir.to_string_lossy().into_owned();
    let h = ctx.spawn_husk(
        &["create", "--preserve-fds", "1", "--bundle", &dir, &id],
        &pairs,
    )?;
    let status = ctx.wait_child(h, COMMAND_LIMIT)?;
    ensure(
        status.success(),
        format!("create: {status}: {:?}", ctx.child_output(h)),
    )?;
    let init = ctx.pid(&id)?;
    ctx.start(&id)?;
    wait_comm(init, "sleep")?;
    let pid_file = ctx.dir.join("exec.pid");
    let pf = pid_file.to_string_lossy().into_owned();
    let h = ctx.spawn_husk(
        &[
            "exec",
            "-d",
            "--pid-file",
            &pf,
            "--preserve-fds",
            "1",
            &id,
            "sleep",
            "1000",
        ],
        &pairs,
    )?;
    let status = ctx.wait_child(h, COMMAND_LIMIT)?;
    ensure(
        status.success(),
        format!("exec -d: {status}: {:?}", ctx.child_output(h)),
    )?;
    let pid = crate::exec::read_pid_file(&pid_file)?;
    wait_comm(pid, "sleep")?;
    let nspid = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| e.to_string())?
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last().map(String::from))
        .ok_or("no NSpid")?;
    let mut problems = Vec::new();
    for (who, p) in [("init", "1".to_string()), ("exec'd process", nspid)] {
        let path = format!("/proc/{p}/fd");
        let out = crate::exec::exec_ok(ctx, &[&id, "ls", &path])?;
        let fds: Vec<&str> = out.split_whitespace().collect();
        if fds != ["0", "1", "2", "3"] {
            problems.push(format!("{who} holds fds {fds:?}, expected 0 1 2 3"));
        }
    }
    problems.extend(host.check());
    Ok(all_ok(problems)?)
}

// ----------------------------------------------------- /proc/<pid>/exe (5736)

/// The primitive of CVE-2019-5736 on a scratch binary: a handle on a
/// running process's /proc/<pid>/exe, re-opened for writing once the
/// process has exited, writes the binary on the host.
fn show_exe_primitive(ctx: &mut Ctx) -> Result<(), Outcome> {
    let dir = ctx.scratch("victim")?;
    let victim = dir.join("victim-runtime");
    fs::copy(conformance::bundle::BUSYBOX, &victim).map_err(|e| e.to_string())?;
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let before = fs::read(&victim).map_err(|e| e.to_string())?;
    let mut child = Command::new(&victim)
        .arg0("sleep")
        .arg("0.3")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("run {}: {e}", victim.display()))?;
    let exe = format!("/proc/{}/exe", child.id());
    let c = CString::new(exe.clone()).map_err(|e| e.to_string())?;
    // SAFETY: valid C string; O_PATH open returns a new fd or -1.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    let _ = child.wait();
    if fd < 0 {
        return Err(skip(format!(
            "open {exe}: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a fresh fd nobody else owns.
    let handle = unsafe { OwnedFd::from_raw_fd(fd) };
    let reopened = fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .and_then(|mut f| f.write_all(b"overwritten by the container"));
    let after = fs::read(&victim).unwrap_or_default();
    primitive(
        ctx,
        "an O_PATH handle on /proc/<pid>/exe re-opens for writing after exit and changes the binary",
        Ok(reopened.is_ok() && after != before),
    )
}

/// CVE-2019-5736 against `create`: while the init waits (still husk code,
/// its exe is husk), a process exec'd into the created container tries to
/// get at /proc/1/exe: not readable (the init is not dumpable), not
/// writable; after start the binaries are byte-identical. Uses a copy.
fn proc_exe_create(ctx: &mut Ctx) -> TestResult {
    show_exe_primitive(ctx)?;
    let husk = use_husk_copy(ctx)?;
    let mut b = ctx.bundle()?;
    b.args(&["sleep", "1000"]);
    let (id, init) = ctx.create(&b, &[])?;
    let mut problems = Vec::new();
    let before = peek(ctx, &id, 1)?;
    for want in [
        "exe denied",
        "environ denied",
        "fd/0 denied",
        "exe not-writable",
    ] {
        if !before.contains(want) {
            problems.push(format!(
                "created init seen from inside: not {want:?} ({before:?})"
            ));
        }
    }
    // The held-handle variant from inside: hold /proc/1/exe open while the
    // init is husk, re-open it for writing after it exec'd the user's
    // program.
    let h = ctx.spawn_husk(
        &[
            "exec", &id, "sh", "-c",
            "if (: < /proc/1/exe) 2>/dev/null; then exec 3< /proc/1/exe; echo held; else echo not-held; fi; \
             while [ \"$(cat /proc/1/comm)\" != sleep ]; do sleep 0.02; done; \
             if [ -e /proc/self/fd/3 ] && (: >> /proc/self/fd/3) 2>/dev/null; then echo REOPENED-FOR-WRITING; else echo not-writable; fi",
        ],
        &[],
    )?;
    std::thread::sleep(Duration::from_millis(200));
    ctx.start(&id)?;
    wait_comm(init, "sleep")?;
    let status = ctx.wait_child(h, LIMIT)?;
    let (out, err) = ctx.child_output(h);
    let lines: Vec<&str> = out.lines().collect();
    if !status.success() || lines != ["not-held", "not-writable"] {
        problems.push(format!(
            "held-handle attack: {status}: {out:?} {err:?}, expected not-held, not-writable"
        ));
    }
    ctx.note(format!(
        "held-handle attack on the created init: {}",
        out.trim().replace('\n', ", ")
    ));
    if let Err(e) = husk.unchanged(ctx) {
        problems.push(e);
    }
    Ok(all_ok(problems)?)
}

/// CVE-2019-5736 against `exec`, as published: the image's /bin/evil is
/// `#!/proc/self/exe`, so exec'ing it runs the runtime's own binary inside
/// the container; a racing process in the container grabs that exe and
/// re-opens it for writing once it exits. husk's exec'd process is held
/// (ptrace) at its execve: non-dumpable, its exe unreadable from inside;
/// then after the exec into husk-as-interpreter the exe can be held but
/// never opened for writing, before or after exit. Uses a copy of husk.
fn proc_exe_exec(ctx: &mut Ctx) -> TestResult {
    show_exe_primitive(ctx)?;
    let husk = use_husk_copy(ctx)?;
    let copy = husk.copy.clone();
    let mut b = ctx.bundle()?;
    let out_dir = ctx.out_dir(&mut b)?;
    write(&b.rootfs().join("bin/evil"), "#!/proc/self/exe\n")?;
    fs::set_permissions(
        b.rootfs().join("bin/evil"),
        fs::Permissions::from_mode(0o755),
    )
    .map_err(|e| e.to_string())?;
    b.args(&["sleep", "1000"]);
    let (id, _init) = ctx.start_new(&b)?;
    let root = ctx.root.to_string_lossy().into_owned();
    let mut held = StoppedExec::spawn(
        &copy,
        &["--root", &root, "exec", "-d", &id, "/bin/evil"],
        &ctx.dir,
        LIMIT,
    )?;
    let nspid = held.ns_pid()?;
    let mut problems = Vec::new();
    let before = peek(ctx, &id, nspid)?;
    for want in [
        "exe denied",
        "environ denied",
        "fd/0 denied",
        "exe not-writable",
    ] {
        if !before.contains(want) {
            problems.push(format!("before execve: not {want:?} ({before:?})"));
        }
    }
    held.continue_past_exec(LIMIT)?;
    let exe_now = fs::read_link(format!("/proc/{}/exe", held.pid))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("<{e}>"));
    ctx.note(format!(
        "after exec of /bin/evil the process runs husk's bytes from {exe_now:?} (the detached read-only bind)"
    ));
    if !husk.runs_husk(Path::new(&format!("/proc/{}/exe", held.pid))) {
        problems.push(
            "after exec of #!/proc/self/exe the process does not run husk: the attack's setup failed"
                .into(),
        );
    }
    let racer = format!(
        "P={nspid}; if (: < /proc/$P/exe) 2>/dev/null; then exec 3< /proc/$P/exe; echo held; else echo not-held; fi; \
         if (: >> /proc/$P/exe) 2>/dev/null; then echo WRITABLE-WHILE-RUNNING; else echo not-writable-running; fi; \
         touch /out/ready; while [ ! -e /out/go ]; do sleep 0.02; done; \
         if (: >> /proc/self/fd/3) 2>/dev/null; then echo WRITABLE-AFTER-EXIT; else echo not-writable-after-exit; fi"
    );
    let h = ctx.spawn_husk(&["exec", &id, "sh", "-c", &racer], &[])?;
    ensure(
        wait_until(LIMIT, || out_dir.join("ready").exists()),
        format!(
            "the racing process did not start: {:?}",
            ctx.child_output(h)
        ),
    )?;
    let status = held.release(LIMIT)?;
    let pid = held.pid as u32;
    let gone = wait_until(LIMIT, || !pid_alive(pid));
    write(&out_dir.join("go"), "")?;
    let racer_status = ctx.wait_child(h, LIMIT)?;
    let (out, err) = ctx.child_output(h);
    ctx.note(format!(
        "husk exec of /bin/evil: {status}; racer: {}",
        out.trim().replace('\n', ", ")
    ));
    if !gone {
        problems.push("husk-as-interpreter did not exit".into());
    }
    if !racer_status.success()
        || out.contains("WRITABLE")
        || !out.contains("not-writable-after-exit")
    {
        problems.push(format!("racer: {racer_status}: {out:?} {err:?}"));
    }
    drop(held);
    if let Err(e) = husk.unchanged(ctx) {
        problems.push(e);
    }
    Ok(all_ok(problems)?)
}

// ------------------------------------------------- /proc writes redirected

/// A host value that must not change, restored at cleanup anyway.
fn guard(ctx: &mut Ctx, path: &str) -> Result<String, String> {
    let v = fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    ctx.register_restore(Path::new(path), &v);
    Ok(v)
}

/// Fake procfs files on the host: a dir with sys/net/ipv4/ip_forward,
/// sys/kernel/domainname and self/{oom_score_adj,attr/exec,attr/current}.
fn fake_proc(ctx: &mut Ctx) -> Result<HostTarget, String> {
    let host = HostTarget::new(ctx, "fake-proc")?;
    for (f, v) in [
        ("sys/net/ipv4/ip_forward", "fake-0\n"),
        ("sys/kernel/domainname", "fake-domain\n"),
        ("self/oom_score_adj", "fake-oom\n"),
        ("self/attr/exec", "fake-attr\n"),
        ("self/attr/current", "fake-attr\n"),
    ] {
        write(&host.dir.join(f), v)?;
    }
    Ok(HostTarget {
        before: snapshot(&host.dir),
        dir: host.dir,
    })
}

/// The config's /proc writes: a namespaced sysctl and oomScoreAdj (and an
/// AppArmor profile, applied only where AppArmor is on).
fn proc_writes(b: &mut Bundle) {
    b.set("/linux/sysctl", json!({"net.ipv4.ip_forward": "1"}));
    b.set("/process/oomScoreAdj", json!(321));
    b.set("/process/apparmorProfile", json!("husk-test-unconfined"));
    b.args(&["sleep", "1000"]);
}

/// When the container runs: its sysctl and oom_score_adj are the config's
/// in its own namespace/process, the host's are unchanged.
fn proc_writes_landed(
    ctx: &mut Ctx,
    b: &Bundle,
    host_forward: &str,
) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let id = ctx.new_id();
    let out = ctx.husk.create_with(b, &id, &[]);
    if !out.success() {
        ctx.expect_failure(&out, "create", &["/proc|proc"])?;
        ctx.note(format!("refused: {}", out.stderr.trim()));
        return Ok(problems);
    }
    let pid = ctx.pid(&id)?;
    ctx.start(&id)?;
    wait_comm(pid, "sleep")?;
    let oom = read_proc(pid, "oom_score_adj")?;
    if oom.trim() != "321" {
        problems.push(format!(
            "the init's oom_score_adj is {:?}, not 321",
            oom.trim()
        ));
    }
    let netns = format!("--net=/proc/{pid}/ns/net");
    match Command::new("nsenter")
        .args([&netns, "cat", "/proc/sys/net/ipv4/ip_forward"])
        .output()
    {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "1" => {}
        Ok(o) => problems.push(format!(
            "the container's net.ipv4.ip_forward is {:?}, not 1",
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Err(e) => problems.push(format!("nsenter: {e}")),
    }
    let now = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    if now != host_forward {
        problems.push(format!(
            "the host's ip_forward changed: {host_forward:?} -> {now:?}"
        ));
    }
    expect_ok(&ctx.husk.delete_force(&id), "delete --force")?;
    if problems.is_empty() {
        let lsm = if Path::new("/sys/module/apparmor/parameters/enabled").exists() {
            "AppArmor on"
        } else {
            "AppArmor off here, so the attr write is not exercised"
        };
        ctx.note(format!(
            "ran: the init's oom_score_adj 321, ip_forward 1 in its netns, the host's untouched ({lsm})"
        ));
    }
    Ok(problems)
}

/// The primitive: in a private mount namespace, a bind of a fake file over
/// a procfs file redirects a write made through the path.
fn show_bind_redirect(ctx: &mut Ctx, fake: &HostTarget) -> Result<(), Outcome> {
    let d = ctx.scratch("naive-proc")?;
    let file = fake.dir.join("sys/net/ipv4/ip_forward");
    let saved = fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let shown = naive(
        "mount -t proc proc \"$1\" && mount --bind \"$2\" \"$1/sys/net/ipv4/ip_forward\" && \
         echo redirected > \"$1/sys/net/ipv4/ip_forward\" && cat \"$2\"",
        &[&d.to_string_lossy(), &file.to_string_lossy()],
    )
    .map(|(ok, out)| ok && out.contains("redirected"));
    write(&file, &saved)?;
    primitive(
        ctx,
        "a sysctl write through a path lands in a file bound over it",
        shown,
    )
}

/// CVE-2025-52881: config mounts bind host files over the procfs files
/// husk writes (ip_forward, the init's oom_score_adj). Refused, or the
/// writes reach the real procfs and the host files stay as they were.
fn proc_write_bind_over_proc_files(ctx: &mut Ctx) -> TestResult {
    let host_forward = guard(ctx, "/proc/sys/net/ipv4/ip_forward")?;
    let fake = fake_proc(ctx)?;
    show_bind_redirect(ctx, &fake)?;
    let mut problems = Vec::new();
    for (dest, file) in [
        ("/proc/sys/net/ipv4/ip_forward", "sys/net/ipv4/ip_forward"),
        ("/proc/self/oom_score_adj", "self/oom_score_adj"),
        ("/proc/1/oom_score_adj", "self/oom_score_adj"),
    ] {
        let mut b = ctx.bundle()?;
        proc_writes(&mut b);
        b.push(
            "/mounts",
            json!({"destination": dest, "type": "bind", "source": fake.dir.join(file), "options": ["bind", "rw"]}),
        );
        problems.extend(
            proc_writes_landed(ctx, &b, &host_forward)?
                .into_iter()
                .map(|p| format!("bind over {dest}: {p}")),
        );
        problems.extend(fake.check());
    }
    Ok(all_ok(problems)?)
}

/// CVE-2019-16884 / CVE-2023-27561: a volume over /proc (after the real
/// proc mount) with a fake tree, so that path-based writes of sysctls,
/// oom_score_adj and LSM attrs go to the fake files instead.
fn proc_write_fake_proc_volume(ctx: &mut Ctx) -> TestResult {
    let host_forward = guard(ctx, "/proc/sys/net/ipv4/ip_forward")?;
    let fake = fake_proc(ctx)?;
    show_bind_redirect(ctx, &fake)?;
    let mut b = ctx.bundle()?;
    proc_writes(&mut b);
    b.push(
        "/mounts",
        json!({"destination": "/proc", "type": "bind", "source": fake.dir, "options": ["rbind", "rw"]}),
    );
    let mut problems = proc_writes_landed(ctx, &b, &host_forward)?;
    problems.extend(fake.check());
    Ok(all_ok(problems)?)
}

/// CVE-2023-27561's symlink flavour (runc's fix for it refuses a symlinked
/// /proc): the image's /proc is a symlink to a host dir of fake files.
fn proc_write_symlinked_proc(ctx: &mut Ctx) -> TestResult {
    let host_forward = guard(ctx, "/proc/sys/net/ipv4/ip_forward")?;
    let fake = fake_proc(ctx)?;
    let mut b = ctx.bundle()?;
    link(&fake.path(), &b.rootfs().join("proc"))?;
    // The primitive: a write through the joined path lands in the host file.
    let joined = b.rootfs().join("proc/sys/net/ipv4/ip_forward");
    let target = fake.dir.join("sys/net/ipv4/ip_forward");
    let saved = fs::read_to_string(&target).map_err(|e| e.to_string())?;
    let shown = fs::write(&joined, "redirected\n")
        .map(|()| fs::read_to_string(&target).unwrap_or_default() == "redirected\n")
        .map_err(|e| format!("write {}: {e}", joined.display()));
    write(&target, &saved)?;
    primitive(
        ctx,
        "a sysctl write through rootfs/proc lands in the host dir",
        shown,
    )?;
    proc_writes(&mut b);
    let mut problems = proc_writes_landed(ctx, &b, &host_forward)?;
    problems.extend(fake.check());
    Ok(all_ok(problems)?)
}

// ------------------------------------------------------ console and devpts

/// Runs a terminal container through a console socket; what it printed.
fn run_with_console(ctx: &mut Ctx, b: &Bundle, needles: &str) -> Result<Option<String>, String> {
    let sock_path = ctx.scratch("console")?.join("sock");
    let sock = ConsoleSocket::bind(&sock_path)?;
    let sp = sock_path.to_string_lossy().into_owned();
    let id = ctx.new_id();
    let out = ctx.husk.create_with(b, &id, &["--console-socket", &sp]);
    if !out.success() {
        ctx.expect_failure(&out, "create", &[needles])?;
        ctx.note(format!("refused: {}", out.stderr.trim()));
        ctx.expect_nothing_left(&id, Some(&b.dir))?;
        return Ok(None);
    }
    let mut master = sock.receive_master(LIMIT)?;
    ctx.start(&id)?;
    let text = read_until_closed(&mut master, LIMIT);
    ctx.note(format!(
        "ran; through the pty: {}",
        text.trim().replace("\r\n", ", ")
    ));
    let _ = ctx.husk.delete_force(&id);
    ctx.expect_nothing_left(&id, Some(&b.dir))?;
    Ok(Some(text))
}

const CONSOLE_SCRIPT: &str = "echo to-console > /dev/console; tty; \
    grep -c ' /dev/console ' /proc/self/mountinfo; echo console-done";

/// CVE-2025-52565: the image (its own /dev, no tmpfs) ships dev/console
/// as a symlink to a host file; terminal: true, with the root read-only
/// (the default) and writable. The pty is bound by fd inside the root or
/// husk refuses; the host file never sees the output.
fn console_symlink_host_file(ctx: &mut Ctx) -> TestResult {
    let host = HostTarget::new(ctx, "console-target")?;
    let victim = host.dir.join("shadow");
    let mut problems = Vec::new();
    for readonly in [true, false] {
        let mut b = ctx.bundle()?;
        drop_mount(&mut b, "/dev");
        b.set("/root/readonly", json!(readonly));
        link(&victim.to_string_lossy(), &b.rootfs().join("dev/console"))?;
        if readonly {
            // The primitive: console output written through the joined
            // path appends to the host file.
            let joined = b.rootfs().join("dev/console");
            let saved = fs::read(&victim).map_err(|e| e.to_string())?;
            let shown = fs::OpenOptions::new()
                .append(true)
                .open(&joined)
                .and_then(|mut f| f.write_all(b"naive console output\n"))
                .map(|()| fs::read(&victim).unwrap_or_default() != saved)
                .map_err(|e| e.to_string());
            fs::write(&victim, &saved).map_err(|e| e.to_string())?;
            primitive(
                ctx,
                "writing the joined dev/console path changes the host file",
                shown,
            )?;
        }
        b.set("/process/terminal", json!(true));
        b.args(&["sh", "-c", CONSOLE_SCRIPT]);
        if let Some(text) = run_with_console(ctx, &b, "/dev/console|console")? {
            let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
            if !lines.contains(&"to-console") || !lines.iter().any(|l| l.starts_with("/dev/pts/")) {
                problems.push(format!(
                    "readonly {readonly}: the console output did not come through the pty: {lines:?}"
                ));
            }
        }
        problems.extend(host.check());
    }
    Ok(all_ok(problems)?)
}

/// The image's own /dev (no tmpfs over it) ships a fake pty multiplexer:
/// dev/ptmx a regular file, or a symlink to a host file, with the config's
/// devpts mount over dev/pts, and then without any devpts (dev/ptmx ->
/// pts/ptmx, a regular file). The pty must come from the container's
/// devpts (as runc, which replaces dev/ptmx by a symlink to pts/ptmx) or
/// husk refuses; the image's files and the host file are untouched.
fn ptmx_not_devpts(ctx: &mut Ctx) -> TestResult {
    let host = HostTarget::new(ctx, "ptmx-target")?;
    let shadow = host.dir.join("shadow").to_string_lossy().into_owned();
    let mut problems = Vec::new();
    // (dev/ptmx: None = a regular file, Some = a symlink; keep devpts)
    let cases: [(Option<&str>, bool); 4] = [
        (None, true),
        (Some(shadow.as_str()), true),
        (Some("pts/ptmx"), false),
        (Some(shadow.as_str()), false),
    ];
    for (target, devpts) in cases {
        let what = format!(
            "dev/ptmx {}, {}",
            target.map_or("a regular file".to_string(), |t| format!("-> {t}")),
            if devpts {
                "devpts mounted"
            } else {
                "no devpts"
            }
        );
        let mut b = ctx.bundle()?;
        drop_mount(&mut b, "/dev");
        if !devpts {
            drop_mount(&mut b, "/dev/pts");
        }
        b.set("/root/readonly", json!(false));
        let fake = b.rootfs().join("dev/pts/ptmx");
        write(&fake, "not a pty\n")?;
        let ptmx = b.rootfs().join("dev/ptmx");
        match target {
            Some(t) => link(t, &ptmx)?,
            None => write(&ptmx, "not a pty either\n")?,
        }
        if target == Some(shadow.as_str()) && devpts {
            // The primitive: opening the joined dev/ptmx path gives the
            // host file.
            let shown = fs::read_to_string(&ptmx)
                .map(|t| t.contains("SECRET-HASH"))
                .map_err(|e| e.to_string());
            primitive(
                ctx,
                "the joined dev/ptmx path opens a host file, not a pty multiplexer",
                shown,
            )?;
        }
        b.set("/process/terminal", json!(true));
        b.args(&["sh", "-c", CONSOLE_SCRIPT]);
        ctx.note(format!("{what}:"));
        if let Some(text) = run_with_console(ctx, &b, "ptmx|devpts|pty")? {
            if !text.contains("/dev/pts/") {
                problems.push(format!("{what}: ran without a devpts pty: {text:?}"));
            }
        }
        if fs::read_to_string(&fake).unwrap_or_default() != "not a pty\n" {
            problems.push(format!("{what}: the image's fake dev/pts/ptmx changed"));
        }
        problems.extend(host.check());
    }
    Ok(all_ok(problems)?)
}

/// The image's dev/pts is a symlink to a host dir, root read-only and
/// writable: the devpts mount and the console must not land there.
fn devpts_symlink_host_dir(ctx: &mut Ctx) -> TestResult {
    let host = HostTarget::new(ctx, "devpts-target")?;
    let mut problems = Vec::new();
    for readonly in [true, false] {
        let mut b = ctx.bundle()?;
        drop_mount(&mut b, "/dev");
        b.set("/root/readonly", json!(readonly));
        link(&host.path(), &b.rootfs().join("dev/pts"))?;
        if readonly {
            let joined = b.rootfs().join("dev/pts");
            let shown = naive(
                "mount -t devpts -o newinstance,ptmxmode=0666 devpts \"$1\" && grep -qF \" $2 \" /proc/self/mountinfo",
                &[&joined.to_string_lossy(), &host.path()],
            )
            .map(|(ok, _)| ok);
            primitive(
                ctx,
                "a devpts mount on the joined dev/pts lands on the host dir",
                shown,
            )?;
        }
        b.set("/process/terminal", json!(true));
        b.args(&["sh", "-c", CONSOLE_SCRIPT]);
        if let Some(text) = run_with_console(ctx, &b, "/dev/pts|symlink|devpts|console")? {
            if !text.contains("console-done") {
                problems.push(format!(
                    "readonly {readonly}: the container did not run through its pty: {text:?}"
                ));
            }
        }
        problems.extend(host.check());
    }
    Ok(all_ok(problems)?)
}

/// Not an attack, but the setup the console attacks rely on: an image with
/// its own /dev (no tmpfs over it) and no dev/console, a read-only root and
/// terminal: true. runc creates and binds /dev/console before it makes the
/// root read-only, so the container starts; husk must too.
fn console_own_dev_readonly_root(ctx: &mut Ctx) -> TestResult {
    let mut b = ctx.bundle()?;
    drop_mount(&mut b, "/dev");
    b.set("/process/terminal", json!(true));
    b.args(&["sh", "-c", CONSOLE_SCRIPT]);
    let runc = ctx.runc();
    let husk = run_with_console(ctx, &b, "console")?;
    if let Ok(runc) = runc {
        let mut rb = ctx.bundle()?;
        drop_mount(&mut rb, "/dev");
        rb.set("/process/terminal", json!(true));
        rb.args(&["sh", "-c", "true"]);
        let rid = ctx.new_runc_id();
        let sock_path = ctx.scratch("runc-console")?.join("sock");
        let sock = ConsoleSocket::bind(&sock_path)?;
        let out = runc.create_with(
            &rb,
            &rid,
            &["--console-socket", &sock_path.to_string_lossy()],
        );
        let runc_ok = out.success() && sock.receive_master(LIMIT).is_ok();
        ctx.note(format!(
            "runc create of the same setup: {}",
            if runc_ok {
                "ok".to_string()
            } else {
                describe(&out)
            }
        ));
        let _ = runc.delete_force(&rid);
    }
    match husk {
        Some(text) if text.contains("console-done") => Ok(()),
        Some(text) => Err(format!("ran, but the script did not finish: {text:?}").into()),
        None => Err(
            "husk refuses a read-only root whose image has no dev/console (see the note above)"
                .into(),
        ),
    }
}

// ------------------------------------------------------------ device nodes

/// Host devices a container must not reach, as (name, kind, major, minor):
/// the disk under the host's root filesystem, a loop device, /dev/mem,
/// /dev/kmsg, /dev/loop-control, /dev/kvm, /dev/fuse, /dev/tty0. None of
/// them is in the container's default rules.
fn candidate_devices() -> Vec<(String, libc::mode_t, u32, u32)> {
    let mut v = Vec::new();
    if let Ok(m) = fs::metadata("/") {
        let (ma, mi) = (libc::major(m.dev()), libc::minor(m.dev()));
        if ma != 0 {
            v.push(("hostdisk".to_string(), libc::S_IFBLK, ma, mi));
        }
    }
    for (name, kind, ma, mi) in [
        ("loop0", libc::S_IFBLK, 7, 0),
        ("mem", libc::S_IFCHR, 1, 1),
        ("kmsg", libc::S_IFCHR, 1, 11),
        ("loopctl", libc::S_IFCHR, 10, 237),
        ("kvm", libc::S_IFCHR, 10, 232),
        ("fuse", libc::S_IFCHR, 10, 229),
        ("tty0", libc::S_IFCHR, 4, 0),
    ] {
        v.push((name.to_string(), kind, ma, mi));
    }
    v
}

/// Whether root on this host can open a node for the device (some hosts,
/// sandboxes among them, forbid their own disk): the primitive needs a
/// device the host itself can open.
fn host_can_open(dir: &Path, kind: libc::mode_t, ma: u32, mi: u32) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join(format!("probe-{ma}-{mi}"));
    let ok = mknod(&probe, kind, ma, mi).is_ok()
        && fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&probe)
            .is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

/// The image ships device nodes for host devices (a block device, /dev/mem,
/// /dev/kmsg...: those this host lets root open), outside /dev (which is a
/// fresh tmpfs) and, with the image's own /dev, inside it too. With
/// CAP_MKNOD the container also makes its own node for the block device.
/// In a plain chroot the nodes open; in the container every open fails
/// (devices cgroup), while the config's devices (/dev/null, /dev/zero)
/// still work.
fn image_device_nodes(ctx: &mut Ctx) -> TestResult {
    let probe_dir = ctx.scratch("device-probe")?;
    let nodes: Vec<(String, libc::mode_t, u32, u32)> = candidate_devices()
        .into_iter()
        .filter(|(_, kind, ma, mi)| host_can_open(&probe_dir, *kind, *ma, *mi))
        .collect();
    let Some(block) = nodes.iter().find(|n| n.1 == libc::S_IFBLK).cloned() else {
        return Err(skip("this host lets root open no block device node"));
    };
    let names: Vec<String> = nodes
        .iter()
        .map(|n| format!("{} {}:{}", n.0, n.2, n.3))
        .collect();
    ctx.note(format!("host devices tried: {names:?}"));
    let list = nodes
        .iter()
        .map(|n| n.0.clone())
        .collect::<Vec<_>>()
        .join(" ");
    let mut problems = Vec::new();
    for own_dev in [false, true] {
        let mut b = ctx.bundle()?;
        let base = if own_dev {
            drop_mount(&mut b, "/dev");
            b.rootfs().join("dev")
        } else {
            b.rootfs().join("opt")
        };
        fs::create_dir_all(&base).map_err(|e| e.to_string())?;
        for (name, kind, a, c) in &nodes {
            mknod(&base.join(name), *kind, *a, *c)?;
        }
        let dir = if own_dev { "/dev" } else { "/opt" };
        let opens = format!(
            "for n in {list}; do \
               if (: < {dir}/$n) 2>/dev/null; then echo \"OPENED $n\"; else echo \"denied $n\"; fi; done"
        );
        if !own_dev {
            // The primitive: in a plain chroot the nodes open.
            let shown = Command::new("chroot")
                .args([&b.rootfs().to_string_lossy(), "/bin/sh", "-c", &opens])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout).matches("OPENED").count() == nodes.len()
                })
                .map_err(|e| format!("chroot: {e}"));
            primitive(
                ctx,
                "a chroot opens every host device through the image's nodes",
                shown,
            )?;
        }
        let caps = [
            "CAP_AUDIT_WRITE",
            "CAP_KILL",
            "CAP_NET_BIND_SERVICE",
            "CAP_MKNOD",
        ];
        b.set(
            "/process/capabilities",
            json!({"bounding": caps, "effective": caps, "permitted": caps}),
        );
        let script = format!(
            "{opens}; \
             if mknod /dev/made b {} {} 2>/dev/null; then \
               if (: < /dev/made) 2>/dev/null; then echo OPENED made; else echo denied made; fi; \
             else echo denied mknod; fi; \
             head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; true",
            block.2, block.3
        );
        b.args(&["sh", "-c", &script]);
        match run_attack(ctx, &b, "dev|device")? {
            Verdict::Refused(line) => ctx.note(format!("own /dev {own_dev}: refused: {line}")),
            Verdict::Ran(out) => {
                if out.contains("OPENED") {
                    problems.push(format!("own /dev {own_dev}: a host device opened: {out:?}"));
                }
                let lines: Vec<&str> = out.lines().map(str::trim).collect();
                if !lines.contains(&"3") || !lines.contains(&"null-ok") {
                    problems.push(format!(
                        "own /dev {own_dev}: the config's devices fail: {out:?}"
                    ));
                }
                if lines.iter().filter(|l| l.starts_with("denied ")).count() < nodes.len() {
                    problems.push(format!(
                        "own /dev {own_dev}: not every node was tried: {out:?}"
                    ));
                }
            }
        }
    }
    Ok(all_ok(problems)?)
}

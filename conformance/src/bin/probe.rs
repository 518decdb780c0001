//! The probe runs inside test containers (and as a hook on the host) and
//! prints one line of JSON describing what it sees. It is statically linked so
//! that it runs in a busybox root filesystem. Usage: `probe COMMAND [ARGS]`;
//! argv[0] is ignored so that tests can set it freely.

use conformance::procinfo;
use serde_json::{json, Map, Value};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

type Probe = Result<Value, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (code, value) = match run(&args) {
        Ok(v) => (0, v),
        Err(e) => (2, json!({ "error": e })),
    };
    if !value.is_null() {
        println!("{value}");
    }
    let _ = io::stdout().flush();
    std::process::exit(code);
}

fn run(args: &[String]) -> Probe {
    let (cmd, rest) = args.split_first().ok_or("usage: probe COMMAND [ARGS]")?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (cmd.as_str(), rest.as_slice()) {
        ("multi", names) => multi(names),
        ("argv", _) => Ok(json!(std::env::args().collect::<Vec<_>>())),
        ("sysctl", keys) => Ok(sysctl(keys)),
        ("stat", paths) => Ok(Value::Object(
            paths.iter().map(|p| (p.to_string(), stat(p))).collect(),
        )),
        ("write", [path]) => Ok(write(path)),
        ("read", [path]) => Ok(read(path)),
        ("exit", [code]) => std::process::exit(code.parse().unwrap_or(1)),
        ("sleep", [secs]) => {
            std::thread::sleep(Duration::from_secs(secs.parse().unwrap_or(600)));
            Ok(Value::Null)
        }
        ("wait-signal", rest) => Ok(wait_signal(timeout_arg(rest.first()))),
        ("mark", [path, rest @ ..]) => mark(path, timeout_arg(rest.first())),
        ("hook", [name, dir, opts @ ..]) => hook(name, dir, opts),
        (name, []) => simple(name),
        _ => Err(format!("unknown probe command {args:?}")),
    }
}

/// Commands without arguments.
fn simple(name: &str) -> Probe {
    Ok(match name {
        "ids" => ids()?,
        "caps" => caps()?,
        "mounts" => json!(procinfo::parse_mountinfo(&read_text(
            "/proc/self/mountinfo"
        )?)),
        "ns" => namespaces(),
        "rlimits" => rlimits(),
        "env" => env(),
        "cwd" => cwd(),
        "hostname" | "uname" => uname(),
        "fds" => fds()?,
        "oom" => json!(read_text("/proc/self/oom_score_adj")?
            .trim()
            .parse::<i64>()
            .ok()),
        "nnp" => nnp()?,
        "personality" => personality(),
        "sched" => sched(),
        "ioprio" => ioprio(),
        "affinity" => json!(affinity()),
        "tty" => tty(),
        "clocks" => clocks(),
        "cgroup" => json!(procinfo::parse_cgroup(&read_text("/proc/self/cgroup")?)),
        "seccomp" => seccomp(),
        "net" => net()?,
        "pid" => json!({"pid": std::process::id(), "ppid": unsafe { libc::getppid() }}),
        _ => return Err(format!("unknown probe command {name:?}")),
    })
}

/// Several argument-less commands at once: {"ids": ..., "caps": ...}.
fn multi(names: &[&str]) -> Probe {
    let mut out = Map::new();
    for name in names {
        out.insert(
            name.to_string(),
            simple(name).unwrap_or_else(|e| json!({ "error": e })),
        );
    }
    Ok(Value::Object(out))
}

fn read_text(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))
}

fn status() -> Result<Map<String, Value>, String> {
    Ok(procinfo::parse_status(&read_text("/proc/self/status")?))
}

fn ids() -> Probe {
    let s = status()?;
    let umask = s
        .get("Umask")
        .and_then(Value::as_str)
        .and_then(|u| u32::from_str_radix(u, 8).ok());
    let uid = procinfo::status_numbers(&s, "Uid");
    let gid = procinfo::status_numbers(&s, "Gid");
    Ok(json!({
        "uid": uid.first(), "euid": uid.get(1), "suid": uid.get(2), "fsuid": uid.get(3),
        "gid": gid.first(), "egid": gid.get(1), "sgid": gid.get(2), "fsgid": gid.get(3),
        "groups": procinfo::status_numbers(&s, "Groups"),
        "umask": umask,
    }))
}

fn caps() -> Probe {
    let s = status()?;
    let mut out = Map::new();
    for (key, name) in [
        ("CapInh", "inheritable"),
        ("CapPrm", "permitted"),
        ("CapEff", "effective"),
        ("CapBnd", "bounding"),
        ("CapAmb", "ambient"),
    ] {
        out.insert(name.into(), json!(procinfo::status_mask(&s, key)));
    }
    Ok(Value::Object(out))
}

fn nnp() -> Probe {
    let s = status()?;
    let num = |k: &str| {
        s.get(k)
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
    };
    Ok(json!({"no_new_privs": num("NoNewPrivs"), "seccomp": num("Seccomp")}))
}

fn namespaces() -> Value {
    let kinds = [
        "cgroup",
        "ipc",
        "mnt",
        "net",
        "pid",
        "pid_for_children",
        "time",
        "time_for_children",
        "user",
        "uts",
    ];
    let map = kinds
        .iter()
        .map(|k| {
            let link = fs::read_link(format!("/proc/self/ns/{k}"))
                .map(|p| p.to_string_lossy().into_owned());
            (k.to_string(), json!(link.ok()))
        })
        .collect();
    Value::Object(map)
}

const RLIMITS: [&str; 16] = [
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

fn rlimits() -> Value {
    let map = RLIMITS
        .iter()
        .enumerate()
        .map(|(res, name)| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: lim is a valid out-pointer; res is a resource number.
            let rc = unsafe { libc::getrlimit(res as _, &mut lim) };
            let v = if rc == 0 {
                json!({"soft": lim.rlim_cur, "hard": lim.rlim_max})
            } else {
                Value::Null
            };
            (name.to_string(), v)
        })
        .collect();
    Value::Object(map)
}

fn env() -> Value {
    let vars: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    json!(vars)
}

fn cwd() -> Value {
    match std::env::current_dir() {
        Ok(p) => json!({"cwd": p.to_string_lossy()}),
        Err(e) => json!({"cwd": null, "errno": e.raw_os_error()}),
    }
}

fn uname() -> Value {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    json!({
        "hostname": field(&u.nodename), "domainname": field(&u.domainname),
        "sysname": field(&u.sysname), "release": field(&u.release), "machine": field(&u.machine),
    })
}

fn fds() -> Probe {
    let dir = fs::read_dir("/proc/self/fd").map_err(|e| format!("read_dir /proc/self/fd: {e}"))?;
    let mut fds: Vec<(i64, String)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let fd = e.file_name().to_string_lossy().parse::<i64>().ok()?;
            let target = fs::read_link(e.path()).ok()?.to_string_lossy().into_owned();
            Some((fd, target))
        })
        // The directory handle used for this listing is not the container's.
        .filter(|(_, t)| !(t.starts_with("/proc/") && t.ends_with("/fd")))
        .collect();
    fds.sort();
    Ok(json!(fds
        .iter()
        .map(|(fd, t)| json!({"fd": fd, "target": t}))
        .collect::<Vec<_>>()))
}

fn sysctl(keys: &[&str]) -> Value {
    let map = keys
        .iter()
        .map(|k| {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            (
                k.to_string(),
                json!(fs::read_to_string(path).ok().map(|v| v.trim().to_string())),
            )
        })
        .collect();
    Value::Object(map)
}

fn stat(path: &str) -> Value {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return json!({"exists": false, "errno": e.raw_os_error()}),
    };
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else if ft.is_fifo() {
        "p"
    } else if ft.is_dir() {
        "d"
    } else if ft.is_symlink() {
        "l"
    } else if ft.is_socket() {
        "s"
    } else {
        "f"
    };
    let rdev = meta.rdev();
    json!({
        "exists": true, "type": kind, "mode": meta.mode() & 0o7777,
        "major": libc::major(rdev), "minor": libc::minor(rdev),
        "uid": meta.uid(), "gid": meta.gid(), "size": meta.size(),
        "target": fs::read_link(path).ok().map(|t| t.to_string_lossy().into_owned()),
    })
}

fn write(path: &str) -> Value {
    let res = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(b"probe\n"));
    match res {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "errno": e.raw_os_error(), "error": e.to_string()}),
    }
}

fn read(path: &str) -> Value {
    if Path::new(path).is_dir() {
        return match fs::read_dir(path) {
            Ok(d) => {
                let mut names: Vec<String> = d
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                json!({"ok": true, "entries": names})
            }
            Err(e) => json!({"ok": false, "errno": e.raw_os_error()}),
        };
    }
    let mut buf = Vec::new();
    match fs::File::open(path).and_then(|f| f.take(65536).read_to_end(&mut buf)) {
        Ok(_) => json!({"ok": true, "content": String::from_utf8_lossy(&buf)}),
        Err(e) => json!({"ok": false, "errno": e.raw_os_error()}),
    }
}

fn personality() -> Value {
    // SAFETY: 0xffffffff only queries the persona.
    let p = unsafe { libc::personality(0xffff_ffff) };
    json!({"personality": p, "machine": uname()["machine"]})
}

fn sched() -> Value {
    // SAFETY: plain queries on the calling process.
    let raw = unsafe { libc::sched_getscheduler(0) };
    let mut param = libc::sched_param { sched_priority: 0 };
    unsafe { libc::sched_getparam(0, &mut param) };
    let policy = match raw & !libc::SCHED_RESET_ON_FORK {
        libc::SCHED_OTHER => "SCHED_OTHER",
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        libc::SCHED_BATCH => "SCHED_BATCH",
        libc::SCHED_IDLE => "SCHED_IDLE",
        6 => "SCHED_DEADLINE",
        _ => "unknown",
    };
    json!({
        "policy": policy, "priority": param.sched_priority, "nice": nice(),
        "reset_on_fork": raw & libc::SCHED_RESET_ON_FORK != 0,
    })
}

fn nice() -> i64 {
    // The raw system call returns 20 - nice, avoiding errno games.
    // SAFETY: getpriority has no pointer arguments.
    let v = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) };
    20 - v
}

fn ioprio() -> Value {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get has no pointer arguments.
    let v = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    if v < 0 {
        return json!({"errno": io::Error::last_os_error().raw_os_error()});
    }
    let class = match v >> 13 {
        0 => "IOPRIO_CLASS_NONE",
        1 => "IOPRIO_CLASS_RT",
        2 => "IOPRIO_CLASS_BE",
        3 => "IOPRIO_CLASS_IDLE",
        _ => "unknown",
    };
    json!({"class": class, "priority": v & 0x1fff})
}

fn affinity() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data filled by the kernel.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
        .collect()
}

fn tty() -> Value {
    let isatty = |fd| unsafe { libc::isatty(fd) == 1 };
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    json!({
        "stdin": isatty(0), "stdout": isatty(1), "stderr": isatty(2),
        "ttyname": fs::read_link("/proc/self/fd/0").ok().map(|p| p.to_string_lossy().into_owned()),
        "rows": (rc == 0).then_some(ws.ws_row), "cols": (rc == 0).then_some(ws.ws_col),
        "console": stat("/dev/console"),
    })
}

fn clocks() -> Value {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out-pointer.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    };
    json!({
        "monotonic": read(libc::CLOCK_MONOTONIC),
        "boottime": read(libc::CLOCK_BOOTTIME),
        "realtime": read(libc::CLOCK_REALTIME),
    })
}

/// System calls that seccomp tests filter: the errno each one returned.
fn seccomp() -> Value {
    let errno_of = |rc: libc::c_long| {
        if rc < 0 {
            io::Error::last_os_error().raw_os_error()
        } else {
            None
        }
    };
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    let getcwd = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let getcwd = errno_of(getcwd);
    // SAFETY: no pointer arguments.
    let prio_process =
        errno_of(unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) });
    let prio_pgrp = errno_of(unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PGRP, 0) });
    json!({"getcwd": getcwd, "getpriority_process": prio_process, "getpriority_pgrp": prio_pgrp})
}

fn net() -> Probe {
    let text = read_text("/proc/self/net/dev")?;
    let mut names: Vec<String> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    Ok(json!(names))
}

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

fn timeout_arg(arg: Option<&&str>) -> Duration {
    Duration::from_secs(arg.and_then(|a| a.parse().ok()).unwrap_or(60))
}

/// Catches every catchable signal and reports the first one to arrive.
fn wait_signal(limit: Duration) -> Value {
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: the handler only stores into an atomic.
            unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
        }
    }
    let deadline = Instant::now() + limit;
    while CAUGHT.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let sig = CAUGHT.load(Ordering::SeqCst);
    json!({"signal": (sig != 0).then_some(sig)})
}

/// Leaves a marker file (proof the user process ran), then waits for a signal.
fn mark(path: &str, limit: Duration) -> Probe {
    fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|e| format!("write {path}: {e}"))?;
    Ok(wait_signal(limit))
}

/// Runs as a lifecycle hook: records what the hook saw into DIR/NAME.json and
/// appends NAME to DIR/order. Options: `exit=N` to fail, `sleep=S` to hang.
fn hook(name: &str, dir: &str, opts: &[&str]) -> Probe {
    let mut stdin = String::new();
    let _ = io::stdin().read_to_string(&mut stdin);
    let record = json!({
        "name": name, "argv": std::env::args().collect::<Vec<_>>(), "env": env(),
        "stdin": serde_json::from_str::<Value>(&stdin).unwrap_or(json!(stdin)),
        "ns": namespaces(), "hostname": uname()["hostname"], "cwd": cwd()["cwd"],
        "pid": std::process::id(),
    });
    fs::write(format!("{dir}/{name}.json"), record.to_string())
        .map_err(|e| format!("write hook record: {e}"))?;
    let mut order = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(format!("{dir}/order"))
        .map_err(|e| format!("open order: {e}"))?;
    let _ = writeln!(order, "{name}");
    for opt in opts {
        match opt.split_once('=') {
            Some(("sleep", s)) => std::thread::sleep(Duration::from_secs(s.parse().unwrap_or(60))),
            Some(("exit", c)) => std::process::exit(c.parse().unwrap_or(1)),
            _ => {}
        }
    }
    Ok(Value::Null)
}

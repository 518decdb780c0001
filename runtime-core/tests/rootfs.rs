//! Real mount tests for `runtime_core::rootfs`. Each test forks a child that
//! unshares its mount namespace (and more when the test needs it), runs the
//! rootfs code there and looks at the result from inside: mountinfo, stat of
//! nodes, reads and writes. Nothing is mounted on the host; temp dirs are
//! removed afterwards. Without root each test prints why it is skipped.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::Spec;
use runtime_core::cgroups::{HierarchyView, MountView};
use runtime_core::rootfs;
use serde_json::json;

// ---------------------------------------------------------------- harness

fn skip_reason() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("no /bin/busybox");
    }
    None
}

macro_rules! need_root {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("SKIPPED {}: {why}", module_path!());
            return;
        }
    };
}

/// Fail the child's check with a message.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

type Check = Result<(), String>;

/// A temp dir removed on drop (after the child and its mounts are gone).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("husk-rootfs-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A busybox rootfs at `base/rootfs`.
fn busybox_rootfs(base: &Path) -> PathBuf {
    let rootfs = base.join("rootfs");
    for dir in ["bin", "etc", "proc", "sys", "dev", "tmp", "mnt"] {
        fs::create_dir_all(rootfs.join(dir)).expect("mkdir in rootfs");
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).expect("symlink sh");
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
    rootfs
}

fn spec(value: serde_json::Value) -> Spec {
    let mut value = value;
    value["ociVersion"] = json!("1.2.0");
    if value.get("root").is_none() {
        value["root"] = json!({"path": "rootfs"});
    }
    serde_json::from_value(value).expect("valid spec")
}

/// Run `f` in a forked child with its own mount namespace (plus `extra`
/// namespaces) and fail the test with the child's message if it fails.
fn in_child(extra: CloneFlags, f: impl FnOnce() -> Check) {
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the child only runs `f` (mount syscalls, file I/O, allocation,
    // which glibc keeps fork-safe) and leaves with _exit, never returning
    // into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(read_end);
            close_inherited_fds(write_end.as_raw_fd());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                enter_namespaces(extra)?;
                f()
            }))
            .unwrap_or_else(|payload| Err(format!("child panicked: {}", panic_text(&*payload))));
            let mut out = fs::File::from(write_end);
            let msg = match &result {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            };
            let _ = out.write_all(msg.as_bytes());
            drop(out);
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or destructors.
            unsafe { libc::_exit(if result.is_ok() { 0 } else { 1 }) };
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut msg = String::new();
            fs::File::from(read_end)
                .read_to_string(&mut msg)
                .expect("read child result");
            let status = waitpid(child, None).expect("waitpid");
            assert!(
                matches!(status, WaitStatus::Exited(_, 0)),
                "child failed ({status:?}): {msg}"
            );
        }
    }
}

/// Close every fd the fork copied from other test threads but `keep`: a
/// busybox another test is still copying stays open for writing in our
/// copy of its fd, and its exec would then fail with ETXTBSY.
fn close_inherited_fds(keep: i32) {
    let keep = keep as libc::c_uint;
    for (first, last) in [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)] {
        if first <= last {
            // SAFETY: close_range only closes descriptors; this child owns
            // none of them (its closure holds no fds) except `keep`.
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn enter_namespaces(extra: CloneFlags) -> Check {
    unshare(CloneFlags::CLONE_NEWNS | extra).map_err(|e| format!("unshare: {e}"))?;
    if extra.contains(CloneFlags::CLONE_NEWUSER) {
        // Map root to root: the only mapping a process may write for itself.
        fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
        fs::write("/proc/self/uid_map", "0 0 1").map_err(|e| format!("uid_map: {e}"))?;
        fs::write("/proc/self/gid_map", "0 0 1").map_err(|e| format!("gid_map: {e}"))?;
    }
    // Nothing we do may propagate back to the host.
    let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("make / private: {e}"))
}

fn prepare(spec: &Spec, rootfs: &Path) -> Check {
    prepare_with(spec, rootfs, &MountView::default(), false, false)
}

fn prepare_with(spec: &Spec, rootfs: &Path, view: &MountView, userns: bool, cgns: bool) -> Check {
    rootfs::prepare(spec, rootfs, view, userns, cgns).map_err(|e| format!("prepare: {e}"))
}

// ------------------------------------------------------------ observations

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
struct MountLine {
    root: String,
    point: String,
    opts: Vec<String>,
    optional: Vec<String>,
    fstype: String,
    super_opts: Vec<String>,
}

impl MountLine {
    fn has(&self, opt: &str) -> bool {
        self.opts.iter().any(|o| o == opt)
    }

    fn has_super(&self, opt: &str) -> bool {
        self.super_opts.iter().any(|o| o == opt)
    }
}

fn mountinfo() -> Vec<MountLine> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountLine {
                root: l.get(3)?.to_string(),
                point: l.get(4)?.to_string(),
                opts: l.get(5)?.split(',').map(String::from).collect(),
                optional: l[6..].iter().map(|s| s.to_string()).collect(),
                fstype: r.first()?.to_string(),
                super_opts: r.get(2)?.split(',').map(String::from).collect(),
            })
        })
        .collect()
}

/// The top mount at `point`.
fn mount_at(point: &Path) -> Result<MountLine, String> {
    let point = point.to_string_lossy();
    mountinfo()
        .into_iter()
        .rev()
        .find(|m| m.point == point)
        .ok_or_else(|| format!("nothing mounted at {point}"))
}

fn not_mounted(point: &Path) -> Check {
    ensure!(
        mount_at(point).is_err(),
        "{} is a mount point",
        point.display()
    );
    Ok(())
}

fn errno_of(result: std::io::Result<impl Sized>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

fn dev_of(path: &Path) -> Result<(char, u32, u32, u32, u32, u32), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("stat {}: {e}", path.display()))?;
    let kind = if meta.file_type().is_char_device() {
        'c'
    } else if meta.file_type().is_block_device() {
        'b'
    } else if meta.file_type().is_fifo() {
        'p'
    } else {
        '?'
    };
    let rdev = meta.rdev();
    Ok((
        kind,
        libc::major(rdev),
        libc::minor(rdev),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid(),
    ))
}

fn readlink(path: &str) -> String {
    fs::read_link(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("<{e}>"))
}

fn tmpfs_dev() -> serde_json::Value {
    json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
           "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]})
}

// ------------------------------------------------------------------ tests

/// Bind mounts: per-mount flags, recursive flags, atime, propagation, file
/// binds; all visible in mountinfo.
#[test]
fn bind_options_show_in_mountinfo() {
    need_root!();
    let tmp = TempDir::new("bind");
    let rootfs = busybox_rootfs(tmp.path());
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).expect("mkdir src");
    fs::write(src.join("file"), "data").expect("write src file");
    let src_s = src.display().to_string();
    let spec = spec(json!({"mounts": [
        tmpfs_dev(),
        {"destination": "/mnt/a", "type": "bind", "source": src_s,
         "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "noatime"]},
        {"destination": "/mnt/b", "source": src_s, "options": ["rbind", "rro", "rnosuid"]},
        {"destination": "/mnt/file", "source": format!("{src_s}/file"),
         "options": ["bind", "strictatime", "nodiratime"]},
        {"destination": "/mnt/shared", "source": src_s, "options": ["bind", "shared"]},
        {"destination": "/mnt/private", "source": src_s, "options": ["rbind", "rprivate", "rw"]},
        {"destination": "/mnt/new/deep", "source": src_s, "options": ["bind", "relatime"]},
    ]}));
    let (src2, rootfs2) = (src.clone(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        // A submount in the source, to tell recursive flags from top-only.
        mount(
            Some("tmpfs"),
            &src2.join("sub"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount sub: {e}"))?;
        prepare(&spec, &rootfs2)?;
        let a = mount_at(&rootfs2.join("mnt/a"))?;
        for opt in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
            ensure!(a.has(opt), "/mnt/a lacks {opt}: {:?}", a.opts);
        }
        let a_sub = mount_at(&rootfs2.join("mnt/a/sub"))?;
        ensure!(
            a_sub.has("rw"),
            "ro is not recursive, yet /mnt/a/sub is {:?}",
            a_sub.opts
        );
        for point in ["mnt/b", "mnt/b/sub"] {
            let b = mount_at(&rootfs2.join(point))?;
            ensure!(b.has("ro") && b.has("nosuid"), "{point}: {:?}", b.opts);
        }
        let file = mount_at(&rootfs2.join("mnt/file"))?;
        ensure!(file.has("nodiratime"), "file: {:?}", file.opts);
        ensure!(
            !file.has("relatime") && !file.has("noatime"),
            "strictatime: {:?}",
            file.opts
        );
        ensure!(
            fs::read_to_string(rootfs2.join("mnt/file")).ok().as_deref() == Some("data"),
            "file bind does not show the source"
        );
        let shared = mount_at(&rootfs2.join("mnt/shared"))?;
        ensure!(
            shared.optional.iter().any(|o| o.starts_with("shared:")),
            "shared: {:?}",
            shared.optional
        );
        let private = mount_at(&rootfs2.join("mnt/private"))?;
        ensure!(
            private.optional.is_empty() && private.has("rw"),
            "private: {private:?}"
        );
        let deep = mount_at(&rootfs2.join("mnt/new/deep"))?;
        ensure!(deep.has("relatime"), "deep: {:?}", deep.opts);
        Ok(())
    });
}

/// tmpfs, devpts, mqueue, proc, sysfs, overlay, a pass-through type, and
/// unknown options as filesystem data.
#[test]
fn filesystems_mount_with_their_data() {
    need_root!();
    let tmp = TempDir::new("fs");
    let rootfs = busybox_rootfs(tmp.path());
    for dir in ["lower", "upper", "work"] {
        fs::create_dir_all(tmp.path().join(dir)).expect("mkdir overlay dir");
    }
    fs::write(tmp.path().join("lower/from-lower"), "low").expect("lower file");
    let p = |d: &str| tmp.path().join(d).display().to_string();
    let spec = spec(json!({"mounts": [
        tmpfs_dev(),
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "nr_inodes=1000", "mode=700"]},
        {"destination": "/mnt/ovl", "type": "overlay", "source": "overlay",
         "options": [format!("lowerdir={}", p("lower")), format!("upperdir={}", p("upper")),
                     format!("workdir={}", p("work"))]},
        {"destination": "/mnt/ram", "type": "ramfs", "source": "ramfs", "options": ["mode=700"]},
    ]}));
    let (rootfs2, upper) = (rootfs.clone(), tmp.path().join("upper"));
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        let at = |p: &str| mount_at(&rootfs2.join(p));
        let dev = at("dev")?;
        ensure!(dev.fstype == "tmpfs" && dev.has("nosuid"), "dev: {dev:?}");
        ensure!(
            dev.has_super("size=65536k") && dev.has_super("mode=755"),
            "dev: {dev:?}"
        );
        let pts = at("dev/pts")?;
        ensure!(pts.fstype == "devpts", "pts: {pts:?}");
        for opt in ["gid=5", "mode=620", "ptmxmode=666"] {
            ensure!(pts.has_super(opt), "pts lacks {opt}: {:?}", pts.super_opts);
        }
        let mq = at("dev/mqueue")?;
        ensure!(mq.fstype == "mqueue" && mq.has("nodev"), "mqueue: {mq:?}");
        ensure!(at("proc")?.fstype == "proc", "proc");
        ensure!(
            fs::read_link(rootfs2.join("proc/self")).is_ok(),
            "proc is not usable"
        );
        let sys = at("sys")?;
        ensure!(
            sys.fstype == "sysfs" && sys.has("ro") && sys.has("noexec"),
            "sys: {sys:?}"
        );
        let tmp = at("tmp")?;
        ensure!(
            tmp.has_super("nr_inodes=1000") && tmp.has_super("mode=700"),
            "tmp: {tmp:?}"
        );
        let ovl = at("mnt/ovl")?;
        ensure!(ovl.fstype == "overlay", "overlay: {ovl:?}");
        ensure!(
            fs::read_to_string(rootfs2.join("mnt/ovl/from-lower"))
                .ok()
                .as_deref()
                == Some("low"),
            "overlay does not show the lower dir"
        );
        fs::write(rootfs2.join("mnt/ovl/new"), "up").map_err(|e| format!("overlay write: {e}"))?;
        ensure!(
            upper.join("new").exists(),
            "overlay write did not reach upperdir"
        );
        let ram = at("mnt/ram")?;
        ensure!(
            ram.fstype == "ramfs" && ram.has_super("mode=700"),
            "ramfs: {ram:?}"
        );
        Ok(())
    });
}

/// Destinations that are symlinks pointing out of the rootfs (absolute and
/// relative, to missing and existing host paths, file and directory) are
/// created and mounted inside the rootfs; the host is left untouched.
#[test]
fn symlinked_destinations_stay_inside_the_rootfs() {
    need_root!();
    let tmp = TempDir::new("escape");
    let base = tmp.path().to_path_buf();
    let rootfs = busybox_rootfs(&base);
    // Host-side targets the symlinks would reach if followed naively.
    fs::create_dir_all(base.join("host-dir")).expect("host dir");
    fs::write(base.join("host-file"), "host").expect("host file");
    let link = |name: &str, target: &str| {
        std::os::unix::fs::symlink(target, rootfs.join("etc").join(name)).expect("symlink")
    };
    link("abs-dir", "/etc/../../host-dir");
    link("rel-dir", "../../host-dir2");
    link("abs-file", "/etc/../../host-file");
    link("rel-file", "../../host-file2");
    std::os::unix::fs::symlink("../..", rootfs.join("up")).expect("symlink up");
    fs::write(base.join("src-file"), "bound").expect("src file");
    let src_file = base.join("src-file").display().to_string();
    let spec = spec(json!({"mounts": [
        {"destination": "/etc/abs-dir", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/etc/rel-dir", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/etc/abs-file", "type": "bind", "source": src_file, "options": ["bind"]},
        {"destination": "/etc/rel-file", "type": "bind", "source": src_file, "options": ["bind"]},
        {"destination": "/up/host-dir3/x", "type": "tmpfs", "source": "tmpfs"},
    ]}));
    let (base2, rootfs2) = (base.clone(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        for inside in [
            "host-dir",
            "host-dir2",
            "host-file",
            "host-file2",
            "host-dir3/x",
        ] {
            mount_at(&rootfs2.join(inside))?;
        }
        for outside in [
            "host-dir",
            "host-dir2",
            "host-file",
            "host-file2",
            "host-dir3",
        ] {
            not_mounted(&base2.join(outside))?;
        }
        // (Read through the in-rootfs path: from the host's view the
        // absolute symlink would of course lead to the host.)
        let bound = fs::read_to_string(rootfs2.join("host-file")).ok();
        ensure!(
            bound.as_deref() == Some("bound"),
            "the bind for abs-file is not inside the rootfs"
        );
        Ok(())
    });
    // And on the host: nothing created or changed outside the rootfs.
    assert_eq!(
        fs::read_to_string(base.join("host-file")).ok().as_deref(),
        Some("host")
    );
    assert!(fs::read_dir(base.join("host-dir"))
        .expect("host dir")
        .next()
        .is_none());
    for missing in ["host-dir2", "host-file2", "host-dir3"] {
        assert!(
            !base.join(missing).exists(),
            "{missing} created on the host"
        );
    }
    assert!(rootfs.join("host-dir").is_dir() && rootfs.join("host-dir2").is_dir());
    assert!(rootfs.join("host-file").is_file() && rootfs.join("host-file2").is_file());
    assert!(rootfs.join("host-dir3/x").is_dir());
}

/// Default devices, linux.devices (char, block, fifo, with mode and
/// owner), the /dev symlinks, and a device path through a symlink.
#[test]
fn devices_are_created_with_the_right_numbers_and_modes() {
    need_root!();
    let tmp = TempDir::new("dev");
    let rootfs = busybox_rootfs(tmp.path());
    std::os::unix::fs::symlink("/../../devout", rootfs.join("etc/devlink")).expect("symlink");
    let spec = spec(json!({
        "mounts": [tmpfs_dev(),
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["newinstance", "ptmxmode=0666"]}],
        "linux": {"devices": [
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o600, "uid": 1000, "gid": 1001},
            {"path": "/dev/sub/loop9", "type": "b", "major": 7, "minor": 9, "fileMode": 0o640},
            {"path": "/dev/fifo", "type": "p", "fileMode": 0o620},
            {"path": "/etc/devlink/zero", "type": "c", "major": 1, "minor": 5},
        ]}
    }));
    let (base2, rootfs2) = (tmp.path().to_path_buf(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        let dev = |p: &str| dev_of(&rootfs2.join(p));
        let defaults = [
            ("dev/null", 1, 3),
            ("dev/zero", 1, 5),
            ("dev/full", 1, 7),
            ("dev/random", 1, 8),
            ("dev/urandom", 1, 9),
            ("dev/tty", 5, 0),
        ];
        for (path, major, minor) in defaults {
            let got = dev(path)?;
            ensure!(got == ('c', major, minor, 0o666, 0, 0), "{path}: {got:?}");
        }
        ensure!(
            dev("dev/mynull")? == ('c', 1, 3, 0o600, 1000, 1001),
            "mynull: {:?}",
            dev("dev/mynull")
        );
        ensure!(
            dev("dev/sub/loop9")? == ('b', 7, 9, 0o640, 0, 0),
            "loop9: {:?}",
            dev("dev/sub/loop9")
        );
        let fifo = dev("dev/fifo")?;
        ensure!(fifo.0 == 'p' && fifo.3 == 0o620, "fifo: {fifo:?}");
        ensure!(
            dev("devout/zero")?.0 == 'c',
            "device through a symlink not inside the rootfs"
        );
        ensure!(
            !base2.join("devout").exists(),
            "device created outside the rootfs"
        );
        let links = [
            ("dev/fd", "/proc/self/fd"),
            ("dev/stdin", "/proc/self/fd/0"),
            ("dev/stdout", "/proc/self/fd/1"),
            ("dev/stderr", "/proc/self/fd/2"),
            ("dev/ptmx", "pts/ptmx"),
        ];
        for (link, target) in links {
            let got = readlink(&rootfs2.join(link).display().to_string());
            ensure!(got == target, "{link} -> {got}, want {target}");
        }
        let core = rootfs2.join("dev/core");
        let want_core = Path::new("/proc/kcore").exists();
        ensure!(
            core.symlink_metadata().is_ok() == want_core,
            "/dev/core vs /proc/kcore"
        );
        Ok(())
    });
}

/// A linux.devices path that already holds something else (a regular file,
/// a fifo, a device of another type or number) is an error naming the
/// path; a matching device node is kept.
#[test]
fn existing_files_must_match_the_device() {
    need_root!();
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let node = |path: &Path, kind: SFlag, major: u64, minor: u64| {
        mknod(
            path,
            kind,
            Mode::from_bits_truncate(0o600),
            makedev(major, minor),
        )
        .expect("mknod in the rootfs")
    };
    let cases = [
        ("regular", "c", 1, 3, Some("a regular file")),
        ("other-minor", "c", 1, 3, Some("character device 1:5")),
        ("other-type", "b", 1, 5, Some("character device 1:5")),
        ("fifo", "c", 1, 3, Some("a fifo")),
        ("dir", "p", 0, 0, Some("a directory")),
        ("same", "c", 1, 5, None),
        ("same-fifo", "p", 0, 0, None),
    ];
    for (name, kind, major, minor, error) in cases {
        let tmp = TempDir::new("devmismatch");
        let rootfs = busybox_rootfs(tmp.path());
        let extra = rootfs.join("extra");
        fs::create_dir_all(&extra).expect("mkdir extra");
        let planted = extra.join(name);
        match name {
            "regular" => fs::write(&planted, "not a device\n").expect("write"),
            "fifo" | "same-fifo" => node(&planted, SFlag::S_IFIFO, 0, 0),
            "dir" => fs::create_dir(&planted).expect("mkdir"),
            _ => node(&planted, SFlag::S_IFCHR, 1, 5),
        }
        let path = format!("/extra/{name}");
        let spec = spec(json!({
            "mounts": [tmpfs_dev()],
            "linux": {"devices": [{"path": path, "type": kind, "major": major, "minor": minor}]}
        }));
        let rootfs2 = rootfs.clone();
        in_child(CloneFlags::empty(), move || {
            let result = prepare(&spec, &rootfs2);
            match (error, result) {
                (None, Ok(())) => Ok(()),
                (None, Err(e)) => Err(format!("{name}: a matching node was refused: {e}")),
                (Some(_), Ok(())) => Err(format!("{name}: prepare succeeded")),
                (Some(what), Err(e)) => {
                    ensure!(
                        e.contains(&path) && e.contains(what),
                        "{name}: the error does not say {path} is {what}: {e}"
                    );
                    Ok(())
                }
            }
        });
        let kept = fs::symlink_metadata(&planted).expect("the planted file is gone");
        if name == "regular" {
            assert!(kept.is_file() && kept.len() > 0, "{name} changed");
        }
    }
}

/// In a user namespace (devices are binds of the host's nodes): the host's
/// node must be the device asked for, and a file already in the rootfs must
/// match it or be an empty file (a mount point left by an earlier run).
#[test]
fn user_namespace_device_binds_check_both_ends() {
    need_root!();
    let cases = [
        ("/extra/regular", 1, 3, Some("a regular file")),
        (
            "/dev/null",
            1,
            5,
            Some("the host's /dev/null is the character device 1:3"),
        ),
        ("/extra/empty", 1, 3, Some("the host's /extra/empty")),
        ("/dev/zero", 1, 5, None),
    ];
    for (path, major, minor, error) in cases {
        let tmp = TempDir::new("devuserns");
        let rootfs = busybox_rootfs(tmp.path());
        fs::create_dir_all(rootfs.join("extra")).expect("mkdir extra");
        fs::write(rootfs.join("extra/regular"), "not a device\n").expect("write");
        fs::write(rootfs.join("extra/empty"), "").expect("write");
        // No /dev mount: the rootfs's own /dev, with an empty file where a
        // previous run would have left its mount point.
        fs::write(rootfs.join("dev/zero"), "").expect("write");
        let spec = spec(json!({
            "linux": {"devices": [{"path": path, "type": "c", "major": major, "minor": minor}]}
        }));
        let rootfs2 = rootfs.clone();
        in_child(CloneFlags::CLONE_NEWUSER, move || {
            let result = prepare_with(&spec, &rootfs2, &MountView::default(), true, false);
            match (error, result) {
                (None, Ok(())) => {
                    let got = dev_of(&rootfs2.join(&path[1..]))?;
                    ensure!(got.0 == 'c' && (got.1, got.2) == (1, 5), "{path}: {got:?}");
                    Ok(())
                }
                (None, Err(e)) => Err(format!("{path}: refused: {e}")),
                (Some(_), Ok(())) => Err(format!("{path}: prepare succeeded")),
                (Some(what), Err(e)) => {
                    ensure!(
                        e.contains(path) && e.contains(what),
                        "{path}: the error does not say {what}: {e}"
                    );
                    Ok(())
                }
            }
        });
    }
}

/// In a user namespace: device nodes are bind mounts of the host's, and
/// sysfs (no netns of our own) falls back to a recursive bind of /sys.
#[test]
fn user_namespace_binds_devices_and_sysfs() {
    need_root!();
    let tmp = TempDir::new("userns");
    let rootfs = busybox_rootfs(tmp.path());
    let spec = spec(json!({
        "mounts": [tmpfs_dev(),
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}],
        "linux": {"devices": [{"path": "/dev/fifo", "type": "p"}]}
    }));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::CLONE_NEWUSER, move || {
        prepare_with(&spec, &rootfs2, &MountView::default(), true, false)?;
        for (path, minor) in [("dev/null", 3), ("dev/zero", 5), ("dev/urandom", 9)] {
            let node = rootfs2.join(path);
            let m = mount_at(&node)?;
            ensure!(
                m.fstype == "devtmpfs",
                "{path} is not the host's node: {m:?}"
            );
            let got = dev_of(&node)?;
            ensure!(
                got.0 == 'c' && got.1 == 1 && got.2 == minor,
                "{path}: {got:?}"
            );
        }
        ensure!(
            dev_of(&rootfs2.join("dev/fifo"))?.0 == 'p',
            "fifo not made by mknod"
        );
        let sys = mount_at(&rootfs2.join("sys"))?;
        ensure!(sys.fstype == "sysfs" && sys.has("ro"), "sys: {sys:?}");
        mount_at(&rootfs2.join("sys/fs/cgroup"))
            .map_err(|e| format!("the /sys fallback is not recursive: {e}"))?;
        Ok(())
    });
}

fn cgroup_view(mount_point: &Path, container_path: &str) -> MountView {
    MountView {
        hierarchies: vec![HierarchyView {
            mount_point: mount_point.to_path_buf(),
            fstype: "cgroup2".into(),
            options: String::new(),
            subdir: String::new(),
            container_path: container_path.into(),
        }],
        symlinks: Vec::new(),
    }
}

fn cgroup_mount() -> serde_json::Value {
    json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
           "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
}

/// cgroup v2 without a cgroup namespace: a read-only bind of the
/// container's cgroup directory.
#[test]
fn cgroup_v2_binds_the_container_cgroup() {
    need_root!();
    let tmp = TempDir::new("cg2");
    let rootfs = busybox_rootfs(tmp.path());
    // Any directory does for a bind: make a fake hierarchy.
    let fake = tmp.path().join("cg2");
    fs::create_dir_all(fake.join("husk/c1")).expect("fake cgroup");
    fs::write(fake.join("husk/c1/cgroup.procs"), "").expect("fake file");
    let view = cgroup_view(&fake, "/husk/c1");
    let spec = spec(json!({"mounts": [cgroup_mount()]}));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        prepare_with(&spec, &rootfs2, &view, false, false)?;
        let cg = mount_at(&rootfs2.join("sys/fs/cgroup"))?;
        ensure!(
            cg.root.ends_with("cg2/husk/c1"),
            "bound the wrong dir: {cg:?}"
        );
        ensure!(cg.has("ro") && cg.has("nosuid"), "cg: {cg:?}");
        ensure!(
            rootfs2.join("sys/fs/cgroup/cgroup.procs").exists(),
            "contents not visible"
        );
        Ok(())
    });
}

/// cgroup v1 (and hybrid) with a cgroup namespace: a tmpfs with one real
/// cgroup mount per host hierarchy, and the co-mount symlinks. Uses the
/// host's own hierarchies, if it has v1 ones.
#[test]
fn cgroup_v1_with_namespace_mounts_each_hierarchy() {
    need_root!();
    let host = mountinfo();
    let v1: Vec<MountLine> = host
        .iter()
        .filter(|m| m.fstype == "cgroup" && m.point.starts_with("/sys/fs/cgroup/"))
        .cloned()
        .collect();
    if v1.is_empty() {
        eprintln!("SKIPPED cgroup_v1_with_namespace_mounts_each_hierarchy: host has no cgroup v1");
        return;
    }
    let hierarchies: Vec<HierarchyView> = v1
        .iter()
        .map(|m| {
            let subdir = m.point.trim_start_matches("/sys/fs/cgroup/").to_string();
            let options = m
                .super_opts
                .iter()
                .filter(|o| *o != "rw" && *o != "ro")
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            HierarchyView {
                mount_point: PathBuf::from(&m.point),
                fstype: "cgroup".into(),
                options,
                subdir,
                container_path: "/".into(),
            }
        })
        .collect();
    let view = MountView {
        hierarchies,
        symlinks: vec![("cpu-link".into(), "cpu".into())],
    };
    let tmp = TempDir::new("cg1");
    let rootfs = busybox_rootfs(tmp.path());
    let spec = spec(json!({"mounts": [cgroup_mount()]}));
    let (rootfs2, view2) = (rootfs.clone(), view.clone());
    in_child(CloneFlags::CLONE_NEWCGROUP, move || {
        prepare_with(&spec, &rootfs2, &view2, false, true)?;
        let top = mount_at(&rootfs2.join("sys/fs/cgroup"))?;
        ensure!(top.fstype == "tmpfs" && top.has("ro"), "top: {top:?}");
        for h in &view2.hierarchies {
            let m = mount_at(&rootfs2.join("sys/fs/cgroup").join(&h.subdir))?;
            ensure!(m.fstype == "cgroup" && m.has("ro"), "{}: {m:?}", h.subdir);
            ensure!(
                m.root == "/",
                "{} is not rooted at the namespace: {m:?}",
                h.subdir
            );
        }
        let link = rootfs2.join("sys/fs/cgroup/cpu-link").display().to_string();
        ensure!(readlink(&link) == "cpu", "cpu-link -> {}", readlink(&link));
        Ok(())
    });
}

/// cgroup v2 with a cgroup namespace: a real cgroup2 mount.
#[test]
fn cgroup_v2_with_namespace_mounts_cgroup2() {
    need_root!();
    let unified = mountinfo().into_iter().find(|m| m.fstype == "cgroup2");
    let Some(unified) = unified else {
        eprintln!("SKIPPED cgroup_v2_with_namespace_mounts_cgroup2: no cgroup2 on the host");
        return;
    };
    let tmp = TempDir::new("cg2ns");
    let rootfs = busybox_rootfs(tmp.path());
    let view = cgroup_view(Path::new(&unified.point), "/");
    let spec = spec(json!({"mounts": [cgroup_mount()]}));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::CLONE_NEWCGROUP, move || {
        prepare_with(&spec, &rootfs2, &view, false, true)?;
        let cg = mount_at(&rootfs2.join("sys/fs/cgroup"))?;
        ensure!(
            cg.fstype == "cgroup2" && cg.root == "/" && cg.has("ro"),
            "cg: {cg:?}"
        );
        Ok(())
    });
}

/// The whole flow: prepare, pivot_root, finish. Masked files read empty,
/// masked dirs are empty and read-only, readonly paths refuse writes, the
/// root is read-only, the old root is gone, and busybox runs.
#[test]
fn masked_and_readonly_paths_after_pivot() {
    need_root!();
    let tmp = TempDir::new("mask");
    let rootfs = busybox_rootfs(tmp.path());
    fs::write(rootfs.join("etc/secret"), "s3cret").expect("secret");
    fs::create_dir_all(rootfs.join("etc/secretdir")).expect("secretdir");
    fs::write(rootfs.join("etc/secretdir/key"), "k").expect("key");
    fs::create_dir_all(rootfs.join("etc/rodir")).expect("rodir");
    std::os::unix::fs::symlink("/etc/secret", rootfs.join("etc/secret-link")).expect("link");
    let spec = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [tmpfs_dev(),
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}],
        "linux": {
            "maskedPaths": ["/proc/kcore", "/proc/timer_list", "/sys/firmware", "/etc/secret-link",
                            "/etc/secretdir", "/does/not/exist"],
            "readonlyPaths": ["/proc/sys", "/etc/rodir", "/missing/too"]
        }
    }));
    let (base2, rootfs2) = (tmp.path().to_path_buf(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
        rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
        let base_s = base2.display().to_string();
        ensure!(
            !mountinfo().iter().any(|m| m.point.starts_with(&base_s)),
            "the old root is still visible"
        );
        ensure!(
            fs::read_to_string("/etc/secret").ok().as_deref() == Some(""),
            "secret readable"
        );
        ensure!(
            dev_of(Path::new("/etc/secret"))?.0 == 'c',
            "secret not masked by /dev/null"
        );
        let timer = fs::read_to_string("/proc/timer_list").ok();
        ensure!(timer.as_deref() == Some(""), "timer_list: {timer:?}");
        ensure!(
            fs::read_dir("/etc/secretdir").map(|d| d.count()).ok() == Some(0),
            "secretdir not empty"
        );
        ensure!(
            errno_of(fs::write("/etc/secretdir/x", "")) == Some(libc::EROFS),
            "masked dir writable"
        );
        ensure!(
            fs::read_dir("/sys/firmware").map(|d| d.count()).ok() == Some(0),
            "/sys/firmware not empty"
        );
        ensure!(
            errno_of(fs::write("/etc/rodir/x", "")) == Some(libc::EROFS),
            "readonly path writable"
        );
        let hostname = fs::OpenOptions::new()
            .write(true)
            .open("/proc/sys/kernel/hostname");
        ensure!(
            errno_of(hostname) == Some(libc::EROFS),
            "/proc/sys writable"
        );
        ensure!(
            errno_of(fs::write("/newfile", "")) == Some(libc::EROFS),
            "root writable"
        );
        fs::write("/tmp/ok", "").map_err(|e| format!("/tmp on a read-only root: {e}"))?;
        let out = std::process::Command::new("/bin/busybox")
            .args(["cat", "/etc/passwd", "/etc/secret"])
            .output()
            .map_err(|e| format!("run busybox: {e}"))?;
        ensure!(
            String::from_utf8_lossy(&out.stdout).starts_with("root:x:0:0"),
            "busybox: {out:?}"
        );
        Ok(())
    });
}

/// --no-pivot: MS_MOVE onto "/" and chroot.
#[test]
fn enter_without_pivot_root() {
    need_root!();
    let tmp = TempDir::new("nopivot");
    let rootfs = busybox_rootfs(tmp.path());
    let spec = spec(json!({"mounts": [tmpfs_dev()]}));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        rootfs::enter(&rootfs2, true).map_err(|e| format!("enter: {e}"))?;
        rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
        ensure!(Path::new("/bin/busybox").is_file(), "not in the rootfs");
        ensure!(dev_of(Path::new("/dev/null"))?.1 == 1, "no /dev/null");
        ensure!(
            std::env::current_dir().ok() == Some(PathBuf::from("/")),
            "cwd is not /"
        );
        Ok(())
    });
}

/// A /dev/null that is a symlink (or a plain file) is refused for masking,
/// and the masked path is left as it was rather than bound to something
/// else.
#[test]
fn planted_dev_null_is_refused_for_masking() {
    need_root!();
    for planted in ["symlink", "file"] {
        let tmp = TempDir::new("devnull");
        let rootfs = busybox_rootfs(tmp.path());
        fs::write(rootfs.join("etc/secret"), "s3cret").expect("secret");
        match planted {
            "symlink" => std::os::unix::fs::symlink("/etc/passwd", rootfs.join("dev/null")),
            _ => fs::write(rootfs.join("dev/null"), "not null"),
        }
        .expect("plant /dev/null");
        // No /dev mount: the image's /dev (with the planted null) is used.
        let spec = spec(json!({"linux": {"maskedPaths": ["/etc/secret"]}}));
        let rootfs2 = rootfs.clone();
        in_child(CloneFlags::empty(), move || {
            prepare(&spec, &rootfs2)?;
            rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
            let err = match rootfs::finish(&spec) {
                Ok(()) => return Err("masking with a planted /dev/null succeeded".into()),
                Err(e) => e.to_string(),
            };
            ensure!(
                err.contains("/dev/null"),
                "error does not name /dev/null: {err}"
            );
            not_mounted(Path::new("/etc/secret"))?;
            ensure!(
                fs::read_to_string("/etc/passwd")
                    .map(|s| s.starts_with("root"))
                    .unwrap_or(false),
                "/etc/passwd changed"
            );
            Ok(())
        });
    }
}

/// The pty slave is bound onto /dev/console by fd; a non-pty fd is refused.
#[test]
fn console_is_bound_from_the_pty_slave() {
    need_root!();
    let tmp = TempDir::new("console");
    let rootfs = busybox_rootfs(tmp.path());
    let spec = spec(json!({"mounts": [tmpfs_dev(),
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["newinstance", "ptmxmode=0666", "mode=0620"]}]}));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
        let null = fs::File::open("/dev/null").map_err(|e| format!("open null: {e}"))?;
        ensure!(
            rootfs::bind_console(null.as_fd()).is_err(),
            "/dev/null accepted as a console"
        );
        let slave = open_pty_slave()?;
        rootfs::bind_console(slave.as_fd()).map_err(|e| format!("bind_console: {e}"))?;
        // (No /proc in this container: stat the fd itself.)
        let slave_st = nix::sys::stat::fstat(&slave).map_err(|e| format!("stat slave: {e}"))?;
        let want = slave_st.st_rdev;
        let got = fs::metadata("/dev/console").map_err(|e| format!("stat console: {e}"))?;
        ensure!(
            got.rdev() == want,
            "console rdev {} != slave {want}",
            got.rdev()
        );
        // The same inode as the slave on devpts, not a node made on /dev.
        ensure!(
            got.dev() == slave_st.st_dev && got.ino() == slave_st.st_ino,
            "/dev/console is not the pty slave bound from devpts"
        );
        Ok(())
    });
}

/// A pty pair from the container's own devpts, the slave by TIOCGPTPEER.
fn open_pty_slave() -> Result<OwnedFd, String> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY)
        .map_err(|e| format!("open /dev/ptmx: {e}"))?;
    nix::pty::unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd we own.
    let fd = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if fd < 0 {
        return Err(format!("TIOCGPTPEER: {}", std::io::Error::last_os_error()));
    }
    std::mem::forget(master);
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// rootfsPropagation "shared" with a shared parent mount: pivot_root still
/// works (the parent is made a slave), and "/" ends up shared.
#[test]
fn shared_rootfs_propagation() {
    need_root!();
    let tmp = TempDir::new("shared");
    let rootfs = busybox_rootfs(tmp.path());
    let spec = spec(json!({
        "mounts": [tmpfs_dev(), {"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"rootfsPropagation": "shared"}
    }));
    let (base2, rootfs2) = (tmp.path().to_path_buf(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        let _host = share(&base2)?;
        prepare(&spec, &rootfs2)?;
        rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
        rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
        let root = mount_at(Path::new("/"))?;
        let shared = root.optional.iter().any(|o| o.starts_with("shared:"));
        ensure!(shared, "/ is not shared: {root:?}");
        Ok(())
    });
}

/// The default (rslave): with a shared host mount holding the rootfs, the
/// container root receives the host's mounts but sends none back.
#[test]
fn default_propagation_is_rslave() {
    need_root!();
    let tmp = TempDir::new("rslave");
    let rootfs = busybox_rootfs(tmp.path());
    fs::create_dir_all(rootfs.join("mnt/later")).expect("mkdir");
    let spec = spec(json!({"mounts": [tmpfs_dev(),
        {"destination": "/proc", "type": "proc", "source": "proc"}]}));
    let (base2, rootfs2) = (tmp.path().to_path_buf(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        let _host = share(&base2)?;
        prepare(&spec, &rootfs2)?;
        let root = mount_at(&rootfs2)?;
        let slave = root.optional.iter().any(|o| o.starts_with("master:"));
        let shared = root.optional.iter().any(|o| o.starts_with("shared:"));
        ensure!(slave && !shared, "rootfs mount is not a slave: {root:?}");
        let dev = mount_at(&rootfs2.join("dev"))?;
        ensure!(
            !dev.optional.iter().any(|o| o.starts_with("shared:")),
            "a container mount is shared: {dev:?}"
        );
        Ok(())
    });
}

/// The propagation options of the config's bind mounts are what the mounts
/// end up with, after pivot_root and finish, whatever rootfsPropagation
/// (the default rslave included) says about the rest of the tree.
#[test]
fn mount_propagation_options_survive_pivot_and_finish() {
    need_root!();
    // (name, options, optional field expected, optional field refused)
    let cases: [(&str, &[&str], &str, &str); 8] = [
        ("rshared", &["rbind", "rshared"], "shared:", ""),
        ("shared", &["bind", "shared"], "shared:", ""),
        ("rslave", &["rbind", "rslave"], "master:", "shared:"),
        ("slave", &["bind", "slave"], "master:", "shared:"),
        ("rprivate", &["rbind", "rprivate"], "", ""),
        ("private", &["bind", "private"], "", ""),
        ("runbindable", &["rbind", "runbindable"], "unbindable", ""),
        ("unbindable", &["bind", "unbindable"], "unbindable", ""),
    ];
    for root_propagation in [None, Some("rslave"), Some("slave"), Some("private")] {
        let tmp = TempDir::new("mountprop");
        let rootfs = busybox_rootfs(tmp.path());
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).expect("mkdir src");
        let mut mounts = vec![
            tmpfs_dev(),
            json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        ];
        for (name, options, _, _) in cases {
            mounts.push(json!({"destination": format!("/p/{name}"), "type": "bind",
                               "source": src.display().to_string(), "options": options}));
        }
        let mut linux = json!({});
        if let Some(value) = root_propagation {
            linux["rootfsPropagation"] = json!(value);
        }
        let spec = spec(json!({"mounts": mounts, "linux": linux}));
        let (base2, rootfs2) = (tmp.path().to_path_buf(), rootfs.clone());
        in_child(CloneFlags::empty(), move || {
            // The source is shared with the "host", so that a slave has a
            // master to show.
            let _host = share(&base2)?;
            prepare(&spec, &rootfs2)?;
            rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
            rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
            for (name, _, want, refuse) in cases {
                let m = mount_at(&Path::new("/p").join(name))?;
                let has = |p: &str| m.optional.iter().any(|o| o.starts_with(p));
                let ok = if want.is_empty() {
                    m.optional.is_empty()
                } else {
                    has(want) && (refuse.is_empty() || !has(refuse))
                };
                ensure!(
                    ok,
                    "rootfsPropagation {root_propagation:?}: {name} bind has {:?}",
                    m.optional
                );
            }
            Ok(())
        });
    }
}

/// rootfsPropagation slave and shared: a mount made on the host under the
/// rootfs (held by a shared host mount) appears in the container; one made
/// in the container does not reach the host. private and unbindable receive
/// nothing. An unbindable root is set last: readonlyPaths on the root
/// filesystem still work (they clone it).
#[test]
fn rootfs_propagation_receives_host_mounts() {
    need_root!();
    let values = [
        "slave",
        "rslave",
        "shared",
        "rshared",
        "private",
        "rprivate",
        "unbindable",
        "runbindable",
    ];
    for value in values {
        let tmp = TempDir::new("rootprop");
        let rootfs = busybox_rootfs(tmp.path());
        fs::create_dir_all(rootfs.join("mnt/later")).expect("mkdir later");
        fs::create_dir_all(rootfs.join("mnt/back")).expect("mkdir back");
        let spec = spec(json!({
            "mounts": [tmpfs_dev(), {"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"rootfsPropagation": value, "readonlyPaths": ["/etc"],
                      "maskedPaths": ["/bin/sh"]}
        }));
        let (base2, rootfs2) = (tmp.path().to_path_buf(), rootfs.clone());
        in_child(CloneFlags::empty(), move || {
            let host = share(&base2)?;
            prepare(&spec, &rootfs2)?;
            rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
            rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
            // From the container to the host: never.
            mount(
                Some("tmpfs"),
                "/mnt/back",
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|e| format!("mount /mnt/back: {e}"))?;
            let back = rootfs2.join("mnt/back");
            in_host(&host, move || not_mounted(&back))
                .map_err(|e| format!("{value}: the container's mount reached the host: {e}"))?;
            // From the host to the container.
            let later = rootfs2.join("mnt/later");
            in_host(&host, move || {
                mount(
                    Some("tmpfs"),
                    &later,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(|e| format!("mount on the host: {e}"))
            })?;
            let received = mount_at(Path::new("/mnt/later")).is_ok();
            let root = mount_at(Path::new("/"))?;
            let has = |p: &str| root.optional.iter().any(|o| o.starts_with(p));
            let ok = match value {
                "private" | "rprivate" => !received && root.optional.is_empty(),
                "unbindable" | "runbindable" => !received && root.optional == ["unbindable"],
                "shared" | "rshared" => received && has("master:") && has("shared:"),
                _ => received && has("master:") && !has("shared:"),
            };
            ensure!(
                ok,
                "{value}: / has {:?}, host mount received: {received}",
                root.optional
            );
            Ok(())
        });
    }
}

/// Detaching the old root after pivot_root unmounts nothing on the host,
/// even where our copies of the host's mounts are still shared with it
/// (a non-recursive rootfsPropagation leaves them so).
#[test]
fn detaching_the_old_root_leaves_host_mounts_alone() {
    need_root!();
    let tmp = TempDir::new("oldroot");
    let rootfs = busybox_rootfs(tmp.path());
    let shared = tmp.path().join("shared");
    fs::create_dir_all(shared.join("sub")).expect("mkdir shared/sub");
    let spec = spec(json!({
        "mounts": [tmpfs_dev()],
        "linux": {"rootfsPropagation": "slave"}
    }));
    let (sub, rootfs2) = (shared.join("sub"), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        // On the "host": a shared mount with a submount, both of which our
        // namespace gets copies of, peers of the host's.
        mount(
            Some(&shared),
            &shared,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind shared: {e}"))?;
        mount(
            None::<&str>,
            &shared,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .map_err(|e| format!("share: {e}"))?;
        mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount sub: {e}"))?;
        let host = fs::File::open("/proc/self/ns/mnt").map_err(|e| format!("open ns: {e}"))?;
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
        prepare(&spec, &rootfs2)?;
        rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
        rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
        in_host(&host, move || {
            mount_at(&sub)
                .map(drop)
                .map_err(|e| format!("the host lost its mount when the old root was detached: {e}"))
        })
    });
}

/// Run `f` in a forked process that has joined the mount namespace `ns`.
fn in_host(ns: &fs::File, f: impl FnOnce() -> Check) -> Check {
    let (read_end, write_end) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: as in `in_child`: the forked process only makes syscalls and
    // small allocations, and leaves with _exit.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(read_end);
            let result = nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("setns: {e}"))
                .and_then(|()| f());
            let mut out = fs::File::from(write_end);
            let _ = out.write_all(result.as_ref().err().map_or("", String::as_str).as_bytes());
            drop(out);
            // SAFETY: see in_child.
            unsafe { libc::_exit(if result.is_ok() { 0 } else { 1 }) };
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut msg = String::new();
            let _ = fs::File::from(read_end).read_to_string(&mut msg);
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                status => Err(format!("{status:?}: {msg}")),
            }
        }
    }
}

/// Make `dir` a shared mount with a peer in another mount namespace, as the
/// container's copy of a host mount on a systemd host is. Returns the fd
/// that keeps that other namespace (the "host") alive.
fn share(dir: &Path) -> Result<fs::File, String> {
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| format!("bind {}: {e}", dir.display()))?;
    let shared = MsFlags::MS_SHARED;
    mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)
        .map_err(|e| format!("share {}: {e}", dir.display()))?;
    let host = fs::File::open("/proc/self/ns/mnt").map_err(|e| format!("open mnt ns: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
    Ok(host)
}

/// "remount" changes the mount already at the destination: attributes by
/// mount_setattr, filesystem data by fspick + reconfigure.
#[test]
fn remount_changes_an_existing_mount() {
    need_root!();
    let tmp = TempDir::new("remount");
    let rootfs = busybox_rootfs(tmp.path());
    let spec = spec(json!({"mounts": [
        {"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]},
        {"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["remount", "ro", "nosuid", "size=1m"]},
    ]}));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        let points = mountinfo();
        let point = rootfs2.join("mnt/t").display().to_string();
        let count = points.iter().filter(|m| m.point == point).count();
        ensure!(count == 1, "remount stacked a new mount ({count} mounts)");
        let t = mount_at(&rootfs2.join("mnt/t"))?;
        ensure!(t.has("ro") && t.has("nosuid"), "t: {t:?}");
        ensure!(t.has_super("size=1024k"), "size not reconfigured: {t:?}");
        Ok(())
    });
}

/// Errors say which mount failed and why.
#[test]
fn errors_name_the_mount_and_the_cause() {
    need_root!();
    let tmp = TempDir::new("errors");
    let rootfs = busybox_rootfs(tmp.path());
    std::os::unix::fs::symlink("/tmp", rootfs.join("proc-link")).expect("symlink");
    let cases = [
        (
            json!({"destination": "/mnt/x", "source": "/nonexistent-husk", "options": ["bind"]}),
            vec!["mount /nonexistent-husk on /mnt/x", "no such file"],
        ),
        (
            json!({"destination": "/mnt/x", "source": "/tmp", "options": ["bind", "idmap"]}),
            vec!["mount /tmp on /mnt/x", "idmap"],
        ),
        (
            json!({"destination": "/mnt/o", "type": "overlay", "source": "overlay",
                   "options": ["lowerdir=/nonexistent-husk"]}),
            vec!["mount overlay on /mnt/o"],
        ),
        (
            json!({"destination": "/proc-link", "type": "proc", "source": "proc"}),
            vec!["mount proc on /proc-link", "symlink"],
        ),
    ];
    for (m, wants) in cases {
        let spec = spec(json!({"mounts": [m]}));
        let rootfs2 = rootfs.clone();
        in_child(CloneFlags::empty(), move || {
            let err = match rootfs::prepare(&spec, &rootfs2, &MountView::default(), false, false) {
                Ok(()) => return Err("prepare succeeded".into()),
                Err(e) => e.to_string(),
            };
            for want in &wants {
                let found = err.to_lowercase().contains(&want.to_lowercase());
                ensure!(found, "error {err:?} lacks {want:?}");
            }
            Ok(())
        });
    }
}

/// A container without /proc: missing masked and read-only paths are
/// skipped cleanly (pathrs would abort formatting the ENOENT there).
#[test]
fn finish_without_proc_skips_missing_paths() {
    need_root!();
    let tmp = TempDir::new("noproc");
    let rootfs = busybox_rootfs(tmp.path());
    fs::write(rootfs.join("etc/secret"), "s3cret").expect("secret");
    let spec = spec(json!({
        "mounts": [tmpfs_dev()],
        "linux": {"maskedPaths": ["/proc/kcore", "/nope", "/etc/secret"],
                  "readonlyPaths": ["/proc/sys", "/nope2"]}
    }));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
        rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
        let secret = fs::read_to_string("/etc/secret").ok();
        ensure!(secret.as_deref() == Some(""), "secret: {secret:?}");
        Ok(())
    });
}

// ------------------------------------------------- tmpcopyup and idmap

/// (kind, mode, uid, gid) of `path`, never following a symlink.
fn owner_of(path: &Path) -> Result<(char, u32, u32, u32), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("lstat {}: {e}", path.display()))?;
    let t = meta.file_type();
    let kind = match () {
        _ if t.is_symlink() => 'l',
        _ if t.is_dir() => 'd',
        _ if t.is_file() => 'f',
        _ if t.is_fifo() => 'p',
        _ if t.is_char_device() => 'c',
        _ => '?',
    };
    Ok((kind, meta.mode() & 0o7777, meta.uid(), meta.gid()))
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// tmpcopyup: the new tmpfs starts with a copy of the destination: file
/// contents, modes (set-id bits too), owners and mtimes, directories,
/// symlinks as symlinks (one pointing at a real host file is not followed),
/// fifos and device nodes by mknod; the destination's own mode and owner
/// go to the tmpfs root; a mount below the destination is not entered. The
/// copy is writable and writes stay in the tmpfs.
#[test]
fn tmpcopyup_copies_the_destination_tree() {
    need_root!();
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let tmp = TempDir::new("copyup");
    let base = tmp.path().to_path_buf();
    let rootfs = busybox_rootfs(&base);
    let t = rootfs.join("tmp");
    fs::write(base.join("host-secret"), "host").expect("host file");
    fs::create_dir_all(base.join("host-dir")).expect("host dir");
    fs::write(base.join("host-dir/x"), "x").expect("host dir file");
    fs::write(t.join("file"), "data").expect("file");
    set_owner_mode(&t.join("file"), 1000, 1001, 0o640);
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(t.join("file"))
        .and_then(|f| f.set_times(fs::FileTimes::new().set_modified(old)))
        .expect("set mtime");
    fs::write(t.join("suid"), "#!/bin/sh\n").expect("suid");
    set_owner_mode(&t.join("suid"), 1000, 1000, 0o4755);
    fs::create_dir_all(t.join("sub/deeper")).expect("sub");
    fs::write(t.join("sub/inner"), "deep").expect("inner");
    set_owner_mode(&t.join("sub/inner"), 0, 0, 0o644);
    set_owner_mode(&t.join("sub/deeper"), 0, 0, 0o755);
    set_owner_mode(&t.join("sub"), 1002, 1003, 0o750);
    std::os::unix::fs::symlink(base.join("host-secret"), t.join("out")).expect("symlink");
    std::os::unix::fs::lchown(t.join("out"), Some(1004), Some(1005)).expect("lchown");
    std::os::unix::fs::symlink(base.join("host-dir"), t.join("dirlink")).expect("symlink");
    std::os::unix::fs::symlink("sub/inner", t.join("rel")).expect("symlink");
    mknod(
        &t.join("fifo"),
        SFlag::S_IFIFO,
        Mode::from_bits_truncate(0o620),
        0,
    )
    .expect("fifo");
    set_owner_mode(&t.join("fifo"), 1006, 1007, 0o620);
    let null = SFlag::S_IFCHR;
    mknod(
        &t.join("null"),
        null,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .expect("null");
    set_owner_mode(&t.join("null"), 0, 0, 0o666);
    fs::create_dir_all(t.join("mnt")).expect("mnt");
    set_owner_mode(&t, 5, 6, 0o1777);
    let spec = spec(json!({"mounts": [tmpfs_dev(),
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]}]}));
    let (base2, rootfs2) = (base.clone(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        let t = rootfs2.join("tmp");
        // Another filesystem below the destination: not to be entered.
        mount(
            Some("tmpfs"),
            &t.join("mnt"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount tmp/mnt: {e}"))?;
        fs::write(t.join("mnt/hidden"), "h").map_err(|e| format!("write hidden: {e}"))?;
        prepare(&spec, &rootfs2)?;
        let m = mount_at(&t)?;
        ensure!(
            m.fstype == "tmpfs" && m.has("nosuid") && m.has("nodev") && m.has("rw"),
            "/tmp: {m:?}"
        );
        let want = [
            ("", ('d', 0o1777, 5, 6)),
            ("file", ('f', 0o640, 1000, 1001)),
            ("suid", ('f', 0o4755, 1000, 1000)),
            ("sub", ('d', 0o750, 1002, 1003)),
            ("sub/inner", ('f', 0o644, 0, 0)),
            ("sub/deeper", ('d', 0o755, 0, 0)),
            ("fifo", ('p', 0o620, 1006, 1007)),
            ("null", ('c', 0o666, 0, 0)),
            ("mnt", ('d', 0o1777, 0, 0)),
        ];
        for (name, (kind, mode, uid, gid)) in want {
            // (tmp/mnt: the mounted tmpfs's root is what the copy sees.)
            let got = owner_of(&t.join(name))?;
            ensure!(got == (kind, mode, uid, gid), "tmp/{name}: {got:?}");
        }
        ensure!(
            dev_of(&t.join("null"))? == ('c', 1, 3, 0o666, 0, 0),
            "null: {:?}",
            dev_of(&t.join("null"))
        );
        let read = |p: &str| fs::read_to_string(t.join(p)).map_err(|e| format!("read {p}: {e}"));
        ensure!(
            read("file")? == "data" && read("sub/inner")? == "deep",
            "contents"
        );
        let mtime = fs::metadata(t.join("file"))
            .map_err(|e| e.to_string())?
            .mtime();
        ensure!(mtime == 1_000_000_000, "mtime not kept: {mtime}");
        for (link, target) in [
            ("out", base2.join("host-secret")),
            ("dirlink", base2.join("host-dir")),
            ("rel", PathBuf::from("sub/inner")),
        ] {
            ensure!(owner_of(&t.join(link))?.0 == 'l', "{link} is not a symlink");
            let got = fs::read_link(t.join(link)).map_err(|e| e.to_string())?;
            ensure!(got == target, "{link} -> {}", got.display());
        }
        let out = owner_of(&t.join("out"))?;
        ensure!((out.2, out.3) == (1004, 1005), "symlink owner: {out:?}");
        ensure!(
            fs::read_dir(t.join("mnt"))
                .map_err(|e| e.to_string())?
                .count()
                == 0,
            "the mount below /tmp was copied"
        );
        fs::write(t.join("new"), "n").map_err(|e| format!("/tmp not writable: {e}"))?;
        fs::write(t.join("file"), "changed").map_err(|e| format!("rewrite: {e}"))?;
        Ok(())
    });
    // The rootfs and the host are untouched.
    assert!(!t.join("new").exists(), "a write reached the rootfs");
    assert_eq!(
        fs::read_to_string(t.join("file")).ok().as_deref(),
        Some("data")
    );
    assert_eq!(
        fs::read_to_string(base.join("host-secret")).ok().as_deref(),
        Some("host")
    );
    assert!(fs::symlink_metadata(t.join("out"))
        .expect("out")
        .file_type()
        .is_symlink());
}

/// tmpcopyup with nothing to copy (a missing destination), through a
/// symlink inside the rootfs, and with the tmpfs's own mode=/uid= options,
/// which win over the destination's.
#[test]
fn tmpcopyup_edge_cases() {
    need_root!();
    let tmp = TempDir::new("copyup2");
    let rootfs = busybox_rootfs(tmp.path());
    fs::create_dir_all(rootfs.join("real/run")).expect("real run");
    fs::write(rootfs.join("real/run/pidfile"), "1").expect("pidfile");
    set_owner_mode(&rootfs.join("real/run"), 7, 8, 0o710);
    std::os::unix::fs::symlink("/../real/run", rootfs.join("run")).expect("run link");
    fs::create_dir_all(rootfs.join("opt/cache")).expect("cache");
    fs::write(rootfs.join("opt/cache/c"), "c").expect("c");
    set_owner_mode(&rootfs.join("opt/cache"), 7, 8, 0o755);
    let spec = spec(json!({"mounts": [
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
        {"destination": "/var/missing/deep", "type": "tmpfs", "source": "tmpfs",
         "options": ["tmpcopyup", "ro"]},
        {"destination": "/opt/cache", "type": "tmpfs", "source": "tmpfs",
         "options": ["mode=700", "uid=1234", "tmpcopyup", "ro"]},
    ]}));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        let run = rootfs2.join("real/run");
        ensure!(
            mount_at(&run)?.fstype == "tmpfs",
            "/run not mounted at its target"
        );
        ensure!(
            owner_of(&run)? == ('d', 0o710, 7, 8),
            "run: {:?}",
            owner_of(&run)
        );
        ensure!(run.join("pidfile").is_file(), "pidfile not copied");
        let missing = rootfs2.join("var/missing/deep");
        ensure!(
            mount_at(&missing)?.has("ro"),
            "missing: not mounted read-only"
        );
        ensure!(
            fs::read_dir(&missing).map_err(|e| e.to_string())?.count() == 0,
            "missing destination not empty"
        );
        let cache = rootfs2.join("opt/cache");
        ensure!(
            owner_of(&cache)? == ('d', 0o700, 1234, 8),
            "cache: {:?}",
            owner_of(&cache)
        );
        ensure!(cache.join("c").is_file(), "c not copied before ro");
        ensure!(
            errno_of(fs::write(cache.join("x"), "")) == Some(libc::EROFS),
            "cache writable"
        );
        Ok(())
    });
}

/// The `husk run` case of Podman's --read-only: a read-only root with a
/// tmpcopyup tmpfs on /tmp. The image's file is there, /tmp is writable,
/// the rest of the root is not, and busybox sees it that way.
#[test]
fn readonly_root_with_tmpcopyup_tmp() {
    need_root!();
    let tmp = TempDir::new("podmanro");
    let rootfs = busybox_rootfs(tmp.path());
    fs::write(rootfs.join("tmp/from-image"), "kept\n").expect("image file");
    let spec = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [tmpfs_dev(),
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]}]
    }));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        prepare(&spec, &rootfs2)?;
        rootfs::enter(&rootfs2, false).map_err(|e| format!("enter: {e}"))?;
        rootfs::finish(&spec).map_err(|e| format!("finish: {e}"))?;
        let script = "cat /tmp/from-image && echo hi > /tmp/new && cat /tmp/new \
                      && ! touch /etc/nope 2>/dev/null && echo ro";
        let out = std::process::Command::new("/bin/busybox")
            .args(["sh", "-c", script])
            .output()
            .map_err(|e| format!("run busybox: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(stdout == "kept\nhi\nro\n", "busybox: {out:?}");
        Ok(())
    });
    assert!(
        !rootfs.join("tmp/new").exists(),
        "the write reached the rootfs"
    );
}

/// A source tree for id-mapped binds: files owned by 1000:1000 and 0:0, and
/// a directory `sub` to mount a tmpfs on (a submount, for ridmap).
fn idmap_source(base: &Path) -> PathBuf {
    let src = base.join("idsrc");
    fs::create_dir_all(src.join("sub")).expect("mkdir idsrc");
    fs::write(src.join("owned-1000"), "u").expect("file");
    std::os::unix::fs::chown(src.join("owned-1000"), Some(1000), Some(1000)).expect("chown");
    fs::write(src.join("owned-0"), "r").expect("file");
    src
}

/// uid, gid of `path`.
fn ids(path: &Path) -> Result<(u32, u32), String> {
    let meta = fs::metadata(path).map_err(|e| format!("stat {}: {e}", path.display()))?;
    Ok((meta.uid(), meta.gid()))
}

/// idmap / ridmap: the mount's mapping is applied as a user namespace's
/// (on-disk containerID + n is seen as hostID + n, as runc does): a file
/// owned by 1000 on the host is 101000 through `0 100000 65536`; ridmap maps
/// the submounts of an rbind too, idmap only the top; ids outside the
/// mapping cannot be written; the host's view is unchanged.
#[test]
fn idmap_and_ridmap_binds_apply_the_mount_mapping() {
    need_root!();
    let tmp = TempDir::new("idmap");
    let rootfs = busybox_rootfs(tmp.path());
    let src = idmap_source(tmp.path());
    let src_s = src.display().to_string();
    let uids = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let gids = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let spec = spec(json!({"mounts": [
        {"destination": "/mnt/idmap", "type": "bind", "source": src_s,
         "options": ["rbind", "idmap"], "uidMappings": uids, "gidMappings": gids},
        {"destination": "/mnt/ridmap", "type": "bind", "source": src_s,
         "options": ["rbind", "ridmap", "ro"], "uidMappings": uids, "gidMappings": gids},
        {"destination": "/mnt/one", "type": "bind", "source": format!("{src_s}/owned-1000"),
         "options": ["bind", "idmap"],
         "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
         "gidMappings": [{"containerID": 1000, "hostID": 5, "size": 1}]},
    ]}));
    let (src2, rootfs2) = (src.clone(), rootfs.clone());
    in_child(CloneFlags::empty(), move || {
        mount(
            Some("tmpfs"),
            &src2.join("sub"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mount sub: {e}"))?;
        fs::write(src2.join("sub/file"), "s").map_err(|e| e.to_string())?;
        std::os::unix::fs::chown(src2.join("sub/file"), Some(1000), Some(1000))
            .map_err(|e| e.to_string())?;
        prepare(&spec, &rootfs2)?;
        let at = |p: &str| ids(&rootfs2.join(p));
        let cases = [
            ("mnt/idmap/owned-1000", (101000, 201000)),
            ("mnt/idmap/owned-0", (100000, 200000)),
            ("mnt/idmap/sub/file", (1000, 1000)),
            ("mnt/ridmap/owned-1000", (101000, 201000)),
            ("mnt/ridmap/sub/file", (101000, 201000)),
            ("mnt/one", (0, 5)),
        ];
        for (path, want) in cases {
            let got = at(path)?;
            ensure!(got == want, "{path}: {got:?}, want {want:?}");
        }
        ensure!(
            ids(&src2.join("owned-1000"))? == (1000, 1000),
            "host view changed"
        );
        for point in ["mnt/idmap", "mnt/ridmap", "mnt/one"] {
            let m = mount_at(&rootfs2.join(point))?;
            ensure!(m.has("idmapped"), "{point}: {:?}", m.opts);
        }
        ensure!(
            mount_at(&rootfs2.join("mnt/ridmap/sub"))?.has("idmapped"),
            "ridmap sub"
        );
        ensure!(
            !mount_at(&rootfs2.join("mnt/idmap/sub"))?.has("idmapped"),
            "idmap sub"
        );
        ensure!(
            mount_at(&rootfs2.join("mnt/ridmap"))?.has("ro"),
            "ridmap: ro lost"
        );
        // Our uid 0 has no id on disk through `0 100000 65536`.
        let write = fs::write(rootfs2.join("mnt/idmap/new"), "");
        ensure!(
            errno_of(write) == Some(libc::EOVERFLOW),
            "root could write unmapped"
        );
        Ok(())
    });
}

/// The init usually runs in a new pid namespace while the procfs it sees
/// (here: pathrs's handle, made before) numbers pids as the host does: the
/// helper's /proc entry must still be the helper's.
#[test]
fn idmap_inside_a_pid_namespace() {
    need_root!();
    let tmp = TempDir::new("idmappid");
    let rootfs = busybox_rootfs(tmp.path());
    let src = idmap_source(tmp.path());
    let spec = spec(json!({"mounts": [
        {"destination": "/mnt/one", "type": "bind", "source": src.display().to_string(),
         "options": ["bind", "idmap"],
         "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
         "gidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}]},
    ]}));
    let rootfs2 = rootfs.clone();
    in_child(CloneFlags::empty(), move || {
        // Cached by pathrs, and inherited by the fork below.
        pathrs::procfs::ProcfsHandle::new().map_err(|e| format!("procfs: {e}"))?;
        unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid: {e}"))?;
        in_forked(move || {
            ensure!(std::process::id() == 1, "not pid 1 of a new pid namespace");
            // As the init.
            nix::sys::prctl::set_dumpable(false).map_err(|e| format!("dumpable: {e}"))?;
            prepare(&spec, &rootfs2)?;
            let got = ids(&rootfs2.join("mnt/one/owned-1000"))?;
            ensure!(got == (0, 0), "owned-1000 through 1000->0: {got:?}");
            Ok(())
        })
    });
}

/// Run `f` in a forked process and return its result.
fn in_forked(f: impl FnOnce() -> Check) -> Check {
    let (read_end, write_end) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: as in `in_child`: the forked process only makes syscalls and
    // small allocations, and leaves with _exit.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(read_end);
            let result = f();
            let mut out = fs::File::from(write_end);
            let _ = out.write_all(result.as_ref().err().map_or("", String::as_str).as_bytes());
            drop(out);
            // SAFETY: see in_child.
            unsafe { libc::_exit(if result.is_ok() { 0 } else { 1 }) };
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut msg = String::new();
            let _ = fs::File::from(read_end).read_to_string(&mut msg);
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                status => Err(format!("{status:?}: {msg}")),
            }
        }
    }
}

/// Misused tmpcopyup / idmap options are config errors naming the mount and
/// the rule; in a user namespace the kernel's refusal is explained.
#[test]
fn tmpcopyup_and_idmap_errors_name_the_mount() {
    need_root!();
    let tmp = TempDir::new("idmaperr");
    let rootfs = busybox_rootfs(tmp.path());
    let src = idmap_source(tmp.path()).display().to_string();
    let one = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let cases = [
        (
            json!({"destination": "/mnt/x", "type": "bind", "source": src,
                   "options": ["bind", "tmpcopyup"]}),
            vec!["mount", "on /mnt/x", "tmpcopyup", "tmpfs"],
        ),
        (
            json!({"destination": "/mnt/x", "type": "bind", "source": src, "options": ["bind"],
                   "uidMappings": one, "gidMappings": one}),
            vec!["on /mnt/x", "without the \"idmap\" or \"ridmap\" option"],
        ),
        (
            json!({"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs",
                   "options": ["idmap"], "uidMappings": one, "gidMappings": one}),
            vec!["mount tmpfs on /mnt/x", "only for bind mounts"],
        ),
        (
            json!({"destination": "/mnt/x", "type": "bind", "source": src,
                   "options": ["bind", "ridmap"], "uidMappings": one}),
            vec!["on /mnt/x", "ridmap", "together"],
        ),
        (
            json!({"destination": "/mnt/x", "type": "bind", "source": src,
                   "options": ["bind", "idmap"]}),
            vec![
                "on /mnt/x",
                "needs uidMappings and gidMappings",
                "no user namespace",
            ],
        ),
    ];
    for (m, wants) in cases {
        let spec = spec(json!({"mounts": [m]}));
        let rootfs2 = rootfs.clone();
        in_child(CloneFlags::empty(), move || {
            let err = match prepare(&spec, &rootfs2) {
                Ok(()) => return Err("prepare succeeded".into()),
                Err(e) => e,
            };
            for want in &wants {
                ensure!(err.contains(want), "error {err:?} lacks {want:?}");
            }
            ensure!(
                mount_at(&rootfs2.join("mnt/x")).is_err(),
                "something was mounted anyway"
            );
            Ok(())
        });
    }
    // In a user namespace (and, like the init, pid 1 of a new pid namespace
    // and not dumpable) the init lacks CAP_SYS_ADMIN over the host's
    // filesystems: the helper namespace is made, the kernel refuses the
    // id-mapping, and the error says why.
    let spec = spec(json!({"mounts": [
        {"destination": "/mnt/x", "type": "bind", "source": src, "options": ["bind", "idmap"],
         "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
         "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}]}));
    let rootfs2 = rootfs.clone();
    in_child(
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID,
        move || {
            in_forked(move || {
                nix::sys::prctl::set_dumpable(false).map_err(|e| format!("dumpable: {e}"))?;
                let err = match prepare_with(&spec, &rootfs2, &MountView::default(), true, false) {
                    Ok(()) => return Err("an id-mapped mount made inside a user namespace".into()),
                    Err(e) => e,
                };
                for want in ["mount", "on /mnt/x", "id-map", "own user namespace"] {
                    ensure!(err.contains(want), "error {err:?} lacks {want:?}");
                }
                Ok(())
            })
        },
    );
}

//! Cgroups: placement of the container from birth, and cleanup.
//!
//! Layouts: pure v2 (cgroup2 at /sys/fs/cgroup), v1 (one cgroupfs per
//! controller set under /sys/fs/cgroup) and hybrid (v1 controllers plus a
//! cgroup2 at /sys/fs/cgroup/unified, as on the development hosts). The
//! layout comes from two statfs calls; v1 hierarchies are matched to their
//! mounts through /proc/self/cgroup and /proc/self/mountinfo.
//!
//! A [`ContainerCgroup`] is one directory in every hierarchy husk uses (every
//! mounted v1 hierarchy, named ones such as name=systemd included, plus the
//! cgroup2 one). It remembers which directories it created, so that
//! [`ContainerCgroup::destroy`] removes those and nothing else, and it is
//! serialised into state.json so later commands need no detection.
//!
//! The life of a container's cgroup:
//!
//! | step                | who         | what                                                       |
//! |---------------------|-------------|------------------------------------------------------------|
//! | `create`            | husk create | validate linux.cgroupsPath, mkdir -p in every hierarchy    |
//! | `clone_into_fd`     | husk create | O_PATH fd of the cgroup2 dir for clone3(CLONE_INTO_CGROUP) |
//! | `attach`            | husk create | pid into cgroup.procs of the v1 hierarchies (and v2 if the child was not born there) |
//! | `procs`/`signal_all`| ps, kill --all | list / signal the cgroup's processes (pidfd, freezer)   |
//! | `destroy`           | delete      | cgroup.kill or freezer + SIGKILL, wait empty, rmdir ours   |
//! | `apply_resources`   | create      | limits (`resources`), device rules (`devices`: v1 lists, or the `bpf` program on cgroup2) |
//! | `freeze`/`thaw`     | pause, resume | cgroup.freeze (v2, also on hybrid) or the v1 freezer; both wait for the kernel's confirmation |
//! | `stats`/`oom_watcher` | events    | usage counters with runc's names (`stats`), OOM eventfd / memory.events (`events`) |
//! | `update_resources`  | update      | like `apply_resources`, putting back what it wrote if a later write is refused |
//!
//! Why not cgroups-rs: it is built around a controller/resource model and
//! detects hierarchies itself on every use; it has no notion of "the
//! directories we created" (so it could not give an idempotent destroy that
//! leaves shared parents alone), no CLONE_INTO_CGROUP fd, no pid-reuse-safe
//! signalling and no cgroup.kill. Placement and cleanup are a few dozen
//! syscalls on plain files; doing them directly keeps `create` fast and every
//! error precise.

pub mod bpf;
pub mod devices;
mod discover;
pub mod events;
mod fsutil;
mod kill;
mod path;
pub mod resources;
pub mod stats;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use fsutil::{gone, read_file, subtree_pids, write_file};
use kill::Freezer;

/// One hierarchy the container is placed in, as the rootfs code needs it to
/// mount `/sys/fs/cgroup` inside the container.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HierarchyView {
    /// Where the hierarchy is mounted on the host, e.g. /sys/fs/cgroup/memory.
    pub mount_point: PathBuf,
    /// "cgroup" (v1) or "cgroup2".
    pub fstype: String,
    /// v1 mount options naming the controllers, e.g. "memory", "cpu,cpuacct",
    /// "name=systemd"; empty for cgroup2.
    pub options: String,
    /// The name of the directory under /sys/fs/cgroup inside the container:
    /// "memory", "cpu,cpuacct", "systemd", "unified"; empty when the hierarchy
    /// is mounted at /sys/fs/cgroup itself (pure v2).
    pub subdir: String,
    /// The container's cgroup relative to the hierarchy root, e.g. /husk/abc.
    pub container_path: PathBuf,
}

/// Everything the rootfs code needs to mount cgroupfs inside a container.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MountView {
    pub hierarchies: Vec<HierarchyView>,
    /// Symlinks that the host has under /sys/fs/cgroup for co-mounted
    /// controllers (e.g. "cpu" -> "cpu,cpuacct"), as (name, target).
    pub symlinks: Vec<(String, String)>,
}

/// How the host's cgroup hierarchies are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// v1 controllers plus a cgroup2 at /sys/fs/cgroup/unified.
    Hybrid,
    /// cgroup2 at /sys/fs/cgroup.
    V2,
}

/// Detect the host's layout (statfs of /sys/fs/cgroup and, unless that is
/// cgroup2, /sys/fs/cgroup/unified).
pub fn detect_layout() -> Result<Layout> {
    discover::layout()
}

/// How long `destroy` waits for the processes to go and the dirs to be
/// removable.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `signal_all` and `destroy` wait for a freeze before signalling
/// anyway.
const FREEZE_ASSIST_TIMEOUT: Duration = Duration::from_millis(500);
/// How long `freeze` (pause) waits before giving up.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// The container's cgroup in one hierarchy.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Hierarchy {
    /// v1 controllers as named in /proc/self/cgroup ("memory", "cpu,cpuacct",
    /// "name=systemd"); empty for the cgroup2 hierarchy.
    controllers: String,
    /// Where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory.
    mount_point: PathBuf,
    /// The container's cgroup as seen under `mount_point`, e.g. /husk/abc
    /// (the hierarchy path itself when the mount shows the root, as on
    /// every host).
    path: PathBuf,
    /// Directories this container created, shallowest first (full host paths).
    created: Vec<PathBuf>,
}

impl Hierarchy {
    fn is_unified(&self) -> bool {
        self.controllers.is_empty()
    }

    fn has(&self, controller: &str) -> bool {
        self.controllers.split(',').any(|c| c == controller)
    }

    /// The container's cgroup directory on the host.
    fn dir(&self) -> PathBuf {
        let rel = self.path.strip_prefix("/").unwrap_or(&self.path);
        self.mount_point.join(rel)
    }

    fn view(&self) -> HierarchyView {
        let subdir = if self.mount_point == Path::new(discover::CGROUP_ROOT) {
            String::new()
        } else {
            self.mount_point
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        HierarchyView {
            mount_point: self.mount_point.clone(),
            fstype: if self.is_unified() {
                "cgroup2"
            } else {
                "cgroup"
            }
            .into(),
            options: self.controllers.clone(),
            subdir,
            container_path: self.path.clone(),
        }
    }

    /// The leaf (the container's cgroup itself) was made by us.
    fn leaf_ours(&self) -> bool {
        self.created.last().is_some_and(|l| *l == self.dir())
    }

    /// rmdir the dirs we created, deepest first (sub-cgroups the container
    /// made inside its own cgroup before that). EBUSY on the container's
    /// cgroups (tasks still exiting) is retried until `deadline`.
    fn remove_created(&self, deadline: Instant) -> Result<()> {
        if self.leaf_ours() {
            let leaf = self.dir();
            let subs = fsutil::subdirs_deepest_first(&leaf)
                .step(|| format!("list sub-cgroups of {}", leaf.display()))?;
            for d in subs {
                rmdir_retry(&d, deadline)?;
            }
            rmdir_retry(&leaf, deadline)?;
        }
        self.remove_ancestors()
    }

    /// rmdir the parents of the container's cgroup that we created, deepest
    /// first. One still in use by another container (EBUSY) is left alone,
    /// and so are its parents. Missing dirs are fine.
    fn remove_ancestors(&self) -> Result<()> {
        let leaf = self.dir();
        for d in self.created.iter().rev().filter(|d| **d != leaf) {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {
                    return Ok(())
                }
                Err(e) => return Err(Error::os(format!("remove cgroup {}", d.display()), e)),
            }
        }
        Ok(())
    }
}

/// rmdir a cgroup of the container; EBUSY (tasks still exiting) is retried
/// until `deadline`, with any process found there killed again.
fn rmdir_retry(d: &Path, deadline: Instant) -> Result<()> {
    let mut pause = Duration::from_micros(200);
    loop {
        match std::fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if gone(&e) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                let _ = kill::signal_dirs(&[d.to_path_buf()], libc::SIGKILL);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::os(format!("remove cgroup {}", d.display()), e)),
        }
    }
}

/// The container's cgroup in every hierarchy it uses. Serializable: it is
/// stored in state.json so later commands (kill --all, delete, ps) can find it
/// without re-detecting.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContainerCgroup {
    layout: Layout,
    hierarchies: Vec<Hierarchy>,
    /// Co-mount symlinks under /sys/fs/cgroup, for the mount view.
    #[serde(default)]
    symlinks: Vec<(String, String)>,
}

impl ContainerCgroup {
    /// Validate `cgroups_path` (linux.cgroupsPath: absolute = from each
    /// hierarchy root; relative = relative to husk's own cgroup in that
    /// hierarchy, except on pure v2 where, as runc does, it is relative to the
    /// parent of husk's own cgroup: that one holds husk itself, and the
    /// no-internal-process rule would keep controllers from being enabled for
    /// a child of it; None = relative path equal to the container id), then
    /// mkdir the cgroup in every hierarchy, remembering which dirs we created.
    /// An existing cgroup that already has processes is refused.
    pub fn create(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<Self> {
        let cpath = path::parse(cgroups_path, id, systemd)?;
        let layout = discover::layout()?;
        let own = discover::own_cgroups()?;
        let found = discover::hierarchies(layout, &own)?;

        let mut cg = ContainerCgroup {
            layout,
            hierarchies: Vec::with_capacity(found.len()),
            symlinks: Vec::new(),
        };
        let mut made_all = || -> Result<()> {
            for f in &found {
                cg.hierarchies.push(make_one(layout, f, &cpath)?);
            }
            Ok(())
        };
        if let Err(e) = made_all() {
            cg.undo_create();
            return Err(e);
        }
        if layout != Layout::V2 {
            let views: Vec<HierarchyView> = cg.hierarchies.iter().map(Hierarchy::view).collect();
            let subdirs: Vec<&str> = views.iter().map(|v| v.subdir.as_str()).collect();
            cg.symlinks = discover::symlinks(&subdirs);
        }
        Ok(cg)
    }

    /// Remove what a failed `create` made (all empty, just created).
    fn undo_create(&self) {
        for h in &self.hierarchies {
            for d in h.created.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// True when the container's init must be moved into v1 hierarchies
    /// after the clone (V1 and Hybrid): `attach` then does a migration.
    pub fn needs_migration(&self) -> bool {
        self.hierarchies.iter().any(|h| !h.is_unified())
    }

    /// The container's cgroup directory in every hierarchy (host paths).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.hierarchies.iter().map(Hierarchy::dir).collect()
    }

    /// The container's cgroup2 directory (V2 and Hybrid).
    pub fn unified_dir(&self) -> Option<PathBuf> {
        self.unified().map(Hierarchy::dir)
    }

    /// The container's directory in the v1 hierarchy of `controller` (e.g.
    /// "memory", "name=systemd").
    pub fn v1_dir(&self, controller: &str) -> Option<PathBuf> {
        self.v1_hierarchy(controller).map(Hierarchy::dir)
    }

    /// The v1 hierarchy that holds `controller`, if the host mounts one.
    fn v1_hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| !h.is_unified() && h.has(controller))
    }

    fn unified(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.is_unified())
    }

    /// The hierarchy to list processes from: cgroup2 if present, else a v1
    /// one that every setup has.
    fn procs_hierarchy(&self) -> Option<&Hierarchy> {
        if let Some(u) = self.unified() {
            return Some(u);
        }
        for c in [
            "pids",
            "freezer",
            "memory",
            "cpu",
            "devices",
            "name=systemd",
        ] {
            if let Some(h) = self.hierarchies.iter().find(|h| h.has(c)) {
                return Some(h);
            }
        }
        self.hierarchies.first()
    }

    /// cgroup2's freezer when the kernel has it (also in hybrid mode: SIGKILL
    /// wakes tasks it froze, and it never sticks in FREEZING), else v1's.
    fn freezer(&self) -> Option<Freezer> {
        if let Some(u) = self.unified() {
            let d = u.dir();
            if d.join("cgroup.freeze").exists() {
                return Some(Freezer::V2(d));
            }
        }
        self.v1_hierarchy("freezer").map(|h| Freezer::V1(h.dir()))
    }

    /// An O_PATH|O_DIRECTORY|O_CLOEXEC fd of the container's cgroup2 dir (V2
    /// and Hybrid: the unified hierarchy), for clone3(CLONE_INTO_CGROUP).
    /// None on pure V1.
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>> {
        let Some(u) = self.unified() else {
            return Ok(None);
        };
        let dir = u.dir();
        let fd = open(
            &dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .step(|| format!("open cgroup {}", dir.display()))?;
        Ok(Some(fd))
    }

    /// Write `pid` into cgroup.procs of every hierarchy that the process is
    /// not in yet (`already_in_v2`: clone3(CLONE_INTO_CGROUP) put it in the
    /// cgroup2 one). The first v1 migration waits for an RCU grace period;
    /// this does nothing else, so callers can overlap it with the child's
    /// own setup.
    pub fn attach(&self, pid: i32, already_in_v2: bool) -> Result<()> {
        let data = pid.to_string();
        for h in &self.hierarchies {
            if already_in_v2 && h.is_unified() {
                continue;
            }
            let p = h.dir().join("cgroup.procs");
            write_file(&p, data.as_bytes())
                .step(|| format!("move pid {pid} into cgroup {}", p.display()))?;
        }
        Ok(())
    }

    /// Pids in the container's cgroup, sub-cgroups included (from cgroup2 if
    /// present, else one v1 hierarchy). A cgroup that is gone has none.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let Some(h) = self.procs_hierarchy() else {
            return Ok(Vec::new());
        };
        let d = h.dir();
        subtree_pids(&d).step(|| format!("list processes of cgroup {}", d.display()))
    }

    /// Send `signal` to every process in the cgroup (`kill --all`). SIGKILL
    /// uses cgroup.kill where the kernel has it; otherwise the cgroup is
    /// frozen while signalling (so no fork escapes) and thawed after, unless
    /// it was already frozen (a paused container stays paused; for SIGKILL it
    /// is thawed so the processes can die).
    pub fn signal_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL {
            if let Some(u) = self.unified() {
                if kill::cgroup_kill(&u.dir())? {
                    return Ok(());
                }
            }
        }
        let Some(h) = self.procs_hierarchy() else {
            return Ok(());
        };
        let dirs = [h.dir()];
        let freezer = self.freezer();
        let was_frozen = match &freezer {
            Some(f) => match f.is_frozen() {
                Ok(v) => v,
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => {
                    return Err(Error::os(
                        format!("read freezer state of {}", f.dir().display()),
                        e,
                    ))
                }
            },
            None => false,
        };
        if was_frozen {
            let r = kill::signal_dirs(&dirs, signal);
            if signal == libc::SIGKILL {
                if let Some(f) = &freezer {
                    f.thaw()
                        .step(|| format!("thaw cgroup {}", f.dir().display()))?;
                }
            }
            return r.map(|_| ());
        }
        if signal == libc::SIGKILL {
            return kill::frozen_kill(freezer.as_ref(), &dirs).map(|_| ());
        }
        if let Some(f) = &freezer {
            match f.freeze(FREEZE_ASSIST_TIMEOUT) {
                Ok(_) => {}
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => {
                    let _ = f.thaw();
                    return Err(Error::os(format!("freeze cgroup {}", f.dir().display()), e));
                }
            }
        }
        let r = kill::signal_dirs(&dirs, signal);
        if let Some(f) = &freezer {
            match f.thaw() {
                Ok(()) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(Error::os(format!("thaw cgroup {}", f.dir().display()), e)),
            }
        }
        r.map(|_| ())
    }

    /// Freeze every process of the container (`pause`); waits until all are
    /// frozen (bounded) and thaws again on failure.
    pub fn freeze(&self) -> Result<()> {
        let Some(f) = self.freezer() else {
            return Err(Error::step(
                "freeze cgroup",
                "no freezer: neither cgroup.freeze (cgroup2) nor the v1 freezer controller is available",
            ));
        };
        let step = || format!("freeze cgroup {}", f.dir().display());
        match f.freeze(FREEZE_TIMEOUT) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = f.thaw();
                Err(Error::step(
                    step(),
                    format!("not every task froze within {FREEZE_TIMEOUT:?}"),
                ))
            }
            Err(e) => {
                let _ = f.thaw();
                Err(Error::os(step(), e))
            }
        }
    }

    /// Thaw the container (`resume`) and wait (bounded) until the kernel
    /// reports no task frozen.
    pub fn thaw(&self) -> Result<()> {
        let Some(f) = self.freezer() else {
            return Ok(());
        };
        let step = || format!("thaw cgroup {}", f.dir().display());
        f.thaw().step(step)?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut pause = Duration::from_micros(50);
        loop {
            match f.thawed() {
                Ok(true) => return Ok(()),
                Ok(false) if Instant::now() < deadline => {}
                Ok(false) => {
                    return Err(Error::step(
                        step(),
                        format!("tasks still frozen after {FREEZE_TIMEOUT:?}"),
                    ))
                }
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(Error::os(step(), e)),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Whether the container's cgroup is frozen (paused), for status
    /// reports: a cgroup that is gone or unreadable counts as not frozen.
    pub fn is_frozen(&self) -> bool {
        self.try_is_frozen().unwrap_or(false)
    }

    /// Whether the container's cgroup is frozen (paused); errors other than
    /// "the cgroup is gone" are reported.
    pub fn try_is_frozen(&self) -> Result<bool> {
        match self.freezer() {
            Some(f) => match f.is_frozen() {
                Ok(v) => Ok(v),
                Err(e) if gone(&e) => Ok(false),
                Err(e) => Err(Error::os(
                    format!("read freezer state of {}", f.dir().display()),
                    e,
                )),
            },
            None => Ok(false),
        }
    }

    /// Kill everything left (cgroup.kill where the kernel has it, otherwise a
    /// freezer-assisted SIGKILL loop so that no fork escapes), wait until the
    /// cgroups are empty (at most 5 s, then an error naming the pids left),
    /// and rmdir the dirs we created, deepest first. Idempotent: missing dirs
    /// are fine.
    pub fn destroy(&self) -> Result<()> {
        // Fast path: the container has exited (the usual `delete`), so its
        // cgroups are empty and rmdir succeeds at once: one syscall per
        // directory, nothing to list. A cgroup that still has processes or
        // sub-cgroups refuses with EBUSY and goes the slow way.
        let mut busy = Vec::new();
        for h in &self.hierarchies {
            if !h.leaf_ours() {
                // Not ours to remove, but its processes are ours to kill.
                busy.push(h);
                continue;
            }
            let leaf = h.dir();
            match std::fs::remove_dir(&leaf) {
                Ok(()) => h.remove_ancestors()?,
                Err(e) if gone(&e) => h.remove_ancestors()?,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {
                    busy.push(h)
                }
                Err(e) => return Err(Error::os(format!("remove cgroup {}", leaf.display()), e)),
            }
        }
        if busy.is_empty() {
            return Ok(());
        }

        let start = Instant::now();
        let deadline = start + DESTROY_TIMEOUT;
        let dirs: Vec<PathBuf> = busy.iter().map(|h| h.dir()).collect();
        let all_pids = || -> Result<Vec<i32>> {
            let mut v = Vec::new();
            for d in &dirs {
                v.extend(
                    subtree_pids(d).step(|| format!("list processes of cgroup {}", d.display()))?,
                );
            }
            v.sort_unstable();
            v.dedup();
            Ok(v)
        };

        let freezer = self.freezer();
        let unified = busy.iter().find(|h| h.is_unified()).map(|h| h.dir());
        let mut rounds = 0u32;
        let mut next_kill = start;
        let mut pause = Duration::from_micros(100);
        loop {
            let pids = all_pids()?;
            if pids.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::step(
                    format!("destroy cgroup {}", self.describe()),
                    format!(
                        "processes {pids:?} are still there {:?} after SIGKILL",
                        DESTROY_TIMEOUT
                    ),
                ));
            }
            if now >= next_kill {
                let killed = rounds == 0
                    && match &unified {
                        Some(u) => kill::cgroup_kill(u)?,
                        None => false,
                    };
                if !killed {
                    kill::frozen_kill(freezer.as_ref(), &dirs)?;
                }
                rounds += 1;
                // Stragglers (a process only in v1 cgroups, a fork that raced
                // a freezer-less kill) are killed again from time to time.
                next_kill = Instant::now() + Duration::from_millis(100);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        for h in busy {
            h.remove_created(deadline)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match self.hierarchies.first() {
            Some(h) => h.path.display().to_string(),
            None => "(none)".into(),
        }
    }

    /// What rootfs needs to mount /sys/fs/cgroup inside the container.
    pub fn mount_view(&self) -> MountView {
        MountView {
            hierarchies: self.hierarchies.iter().map(Hierarchy::view).collect(),
            symlinks: self.symlinks.clone(),
        }
    }
}

/// Make the container's cgroup in one hierarchy.
fn make_one(layout: Layout, f: &discover::Found, cpath: &path::CgroupPath) -> Result<Hierarchy> {
    if cpath.absolute {
        // Taken from the root the mount shows (as runc does); when the mount
        // shows a subtree and the path lies inside it, from there.
        if f.mount_root != "/" {
            if let Some(seen) = discover::under_mount(&f.mount_root, &cpath.display()) {
                let comps: Vec<String> = seen
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                if !comps.is_empty() {
                    return make_at(f, "/", &comps);
                }
            }
        }
        return make_at(f, "/", &cpath.components);
    }
    // Relative: below husk's own cgroup (pure v2: below its parent).
    let own = if layout == Layout::V2 {
        match Path::new(&f.own).parent() {
            Some(p) => p.to_string_lossy().into_owned(),
            None => f.own.clone(),
        }
    } else {
        f.own.clone()
    };
    let base = discover::under_mount(&f.mount_root, &own).ok_or_else(|| {
        Error::step(
            format!("create cgroup {}", cpath.display()),
            format!(
                "husk's own cgroup {own} is not visible under the mount {} (which shows {})",
                f.mount_point.display(),
                f.mount_root
            ),
        )
    })?;
    make_at(f, &base, &cpath.components)
}

fn make_at(f: &discover::Found, base: &str, components: &[String]) -> Result<Hierarchy> {
    let base_dir = f.mount_point.join(base.trim_start_matches('/'));
    let mut seen = PathBuf::from(base);
    for c in components {
        seen.push(c);
    }
    let made = fsutil::mkdir_p(&base_dir, components)
        .map_err(|(at, e)| Error::os(format!("create cgroup {}", at.display()), e))?;
    let h = Hierarchy {
        controllers: f.controllers.clone(),
        mount_point: f.mount_point.clone(),
        path: seen,
        created: made.created,
    };
    let check = || -> Result<()> {
        let dir = h.dir();
        if made.leaf_existed {
            refuse_populated(&h, &dir)?;
        }
        if h.has("cpuset") {
            init_cpuset(&h.mount_point, &dir)?;
        }
        Ok(())
    };
    if let Err(e) = check() {
        for d in h.created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return Err(e);
    }
    Ok(h)
}

/// An existing cgroup may be reused only if no process is in it (cgroup2:
/// nor in any cgroup below it).
fn refuse_populated(h: &Hierarchy, dir: &Path) -> Result<()> {
    let step = || format!("create cgroup {}", dir.display());
    let populated = if h.is_unified() {
        let ev = read_file(&dir.join("cgroup.events")).map_err(|e| not_a_cgroup(step(), e))?;
        ev.lines().any(|l| l.trim() == "populated 1")
    } else {
        let procs = read_file(&dir.join("cgroup.procs")).map_err(|e| not_a_cgroup(step(), e))?;
        !procs.trim().is_empty()
    };
    if populated {
        return Err(Error::step(
            step(),
            "the cgroup already exists and has processes in it; refusing to share it \
             (pick another linux.cgroupsPath)",
        ));
    }
    Ok(())
}

fn not_a_cgroup(step: String, e: std::io::Error) -> Error {
    if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ENOENT)) {
        Error::step(step, "exists and is not a cgroup directory")
    } else {
        Error::os(step, e)
    }
}

/// A new v1 cpuset cgroup has no cpus and no mems (unless the parent has
/// cgroup.clone_children), and the kernel refuses to move a task into it
/// (ENOSPC). Fill empty ones on the way down from the nearest ancestor that
/// has values.
fn init_cpuset(mount_point: &Path, leaf: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut empty = Vec::new();
        let mut value = None;
        let mut d = Some(leaf);
        while let Some(dir) = d {
            let p = dir.join(file);
            let v = read_file(&p).step(|| format!("read {}", p.display()))?;
            let v = v.trim();
            if !v.is_empty() {
                value = Some(v.to_owned());
                break;
            }
            empty.push(p);
            if dir == mount_point {
                break;
            }
            d = dir.parent();
        }
        let Some(value) = value else {
            return Err(Error::step(
                format!("set up cpuset cgroup {}", leaf.display()),
                format!("no ancestor has a non-empty {file}"),
            ));
        };
        for p in empty.iter().rev() {
            write_file(p, value.as_bytes())
                .step(|| format!("write {value:?} to {}", p.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The v1-only paths (no cgroup.kill, the v1 freezer) on a hybrid host:
    //! the container's cgroup with its cgroup2 part hidden. Root only.
    use super::*;
    use std::process::{Child, Command, Stdio};

    fn skip(name: &str) -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED {name}: not root");
            return true;
        }
        if detect_layout().is_err() {
            eprintln!("SKIPPED {name}: no cgroupfs at /sys/fs/cgroup");
            return true;
        }
        false
    }

    /// A view of `cg` without its cgroup2 part; None when the host has no v1
    /// freezer (pure v2), which these tests are about.
    fn v1_only(cg: &ContainerCgroup) -> Option<ContainerCgroup> {
        let mut v1 = cg.clone();
        v1.hierarchies.retain(|h| !h.is_unified());
        v1.layout = Layout::V1;
        v1.v1_dir("freezer")?;
        Some(v1)
    }

    fn wait_dead(child: &mut Child) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return st.signal();
            }
            assert!(Instant::now() < deadline, "child did not die");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Run `script` with sh in the cgroup2 dir `dir` (joined between fork
    /// and exec) and return its stdout.
    fn sh_in_cgroup2(dir: &Path, script: &str) -> String {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::process::CommandExt;
        let procs =
            std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).expect("path");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).stderr(Stdio::null());
        // SAFETY: only open/write/close (async-signal-safe) on a string
        // prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let out = cmd.output().expect("run sh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A host whose only hierarchy is cgroup2 (the container's cgroup with its
    /// v1 parts hidden): `apply_resources` enforces device rules with the
    /// eBPF program, for real, and `update_resources` replaces it.
    #[test]
    fn cgroups_devices_through_bpf_when_no_v1_devices() {
        if skip("cgroups_devices_through_bpf_when_no_v1_devices") {
            return;
        }
        let path = format!("/husk-unit-{}-bpfdev", std::process::id());
        let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
        let mut v2 = cg.clone();
        v2.hierarchies.retain(Hierarchy::is_unified);
        v2.layout = Layout::V2;
        let Some(dir) = v2.unified_dir() else {
            eprintln!("SKIPPED: no cgroup2 here");
            cg.destroy().expect("destroy");
            return;
        };
        let script = "for d in null zero loop-control; do \
                        if true </dev/$d; then echo $d=open; else echo $d=denied; fi; done";
        let res = |json: &str| -> oci_spec::runtime::LinuxResources {
            serde_json::from_str(json).expect("json")
        };
        let check = || {
            v2.apply_resources(&res(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#))
                .expect("apply");
            assert_eq!(
                sh_in_cgroup2(&dir, script),
                "null=open\nzero=open\nloop-control=denied\n"
            );
            v2.update_resources(
                &res(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#),
                &serde_json::from_str::<Vec<oci_spec::runtime::LinuxDevice>>(
                    r#"[{"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237}]"#,
                )
                .expect("devices"),
            )
            .expect("update");
            assert_eq!(
                sh_in_cgroup2(&dir, script),
                "null=open\nzero=open\nloop-control=open\n"
            );
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
        cg.destroy().expect("destroy");
        if let Err(p) = outcome {
            std::panic::resume_unwind(p);
        }
    }

    #[test]
    fn cgroups_v1_freezer_kill_loop_catches_forks() {
        if skip("cgroups_v1_freezer_kill_loop_catches_forks") {
            return;
        }
        let path = format!("/husk-unit-{}-forks", std::process::id());
        let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
        let Some(v1) = v1_only(&cg) else {
            eprintln!("SKIPPED: no v1 freezer here");
            cg.destroy().expect("destroy");
            return;
        };
        assert!(matches!(v1.freezer(), Some(Freezer::V1(_))));
        if let Some(pids) = v1.v1_dir("pids") {
            // A bound on the fork loop, whatever happens.
            write_file(&pids.join("pids.max"), b"300").expect("pids.max");
        }
        // A shell that forks as fast as it can.
        let mut sh = Command::new("sh")
            .arg("-c")
            .arg("read x; while :; do sleep 1000 & done")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        v1.attach(sh.id() as i32, false).expect("attach");
        drop(sh.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while v1.procs().expect("procs").len() < 20 {
            assert!(Instant::now() < deadline, "no forks");
            std::thread::sleep(Duration::from_millis(2));
        }
        v1.destroy().expect("destroy (v1 path)");
        assert_eq!(wait_dead(&mut sh), Some(libc::SIGKILL));
        for d in v1.dirs() {
            assert!(!d.exists(), "{}", d.display());
        }
        cg.destroy().expect("destroy the rest");
        for d in cg.dirs() {
            assert!(!d.exists(), "{}", d.display());
        }
    }

    /// A paused (v1-frozen) container is destroyed promptly: frozen tasks
    /// only die once thawed, and destroy thaws them.
    #[test]
    fn cgroups_v1_destroy_of_a_frozen_cgroup() {
        if skip("cgroups_v1_destroy_of_a_frozen_cgroup") {
            return;
        }
        let path = format!("/husk-unit-{}-frozen", std::process::id());
        let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
        let Some(v1) = v1_only(&cg) else {
            eprintln!("SKIPPED: no v1 freezer here");
            cg.destroy().expect("destroy");
            return;
        };
        let mut a = Command::new("sleep").arg("1000").spawn().expect("sleep");
        v1.attach(a.id() as i32, false).expect("attach");
        v1.freeze().expect("freeze");
        assert!(v1.is_frozen());
        let start = Instant::now();
        v1.destroy().expect("destroy frozen");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(wait_dead(&mut a), Some(libc::SIGKILL));
        cg.destroy().expect("destroy the rest");
        for d in cg.dirs() {
            assert!(!d.exists(), "{}", d.display());
        }
    }

    #[test]
    fn cgroups_v1_signal_all_and_freezer() {
        if skip("cgroups_v1_signal_all_and_freezer") {
            return;
        }
        let path = format!("/husk-unit-{}-v1sig", std::process::id());
        let cg = ContainerCgroup::create(Some(&path), "x", false).expect("create");
        let Some(v1) = v1_only(&cg) else {
            eprintln!("SKIPPED: no v1 freezer here");
            cg.destroy().expect("destroy");
            return;
        };
        let spawn = || {
            Command::new("sleep")
                .arg("1000")
                .spawn()
                .expect("spawn sleep")
        };
        let mut a = spawn();
        v1.attach(a.id() as i32, false).expect("attach");
        assert_eq!(v1.procs().expect("procs"), vec![a.id() as i32]);

        // Paused: a signal waits for the thaw, and the cgroup stays frozen.
        v1.freeze().expect("freeze");
        assert!(v1.is_frozen());
        v1.signal_all(libc::SIGTERM).expect("signal frozen");
        assert!(v1.is_frozen());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            a.try_wait().expect("try_wait").is_none(),
            "died while frozen"
        );
        v1.thaw().expect("thaw");
        assert_eq!(wait_dead(&mut a), Some(libc::SIGTERM));

        // SIGKILL without cgroup.kill: freezer-assisted, cgroup left thawed.
        let mut b = spawn();
        let mut c = spawn();
        v1.attach(b.id() as i32, false).expect("attach b");
        v1.attach(c.id() as i32, false).expect("attach c");
        v1.signal_all(libc::SIGKILL).expect("kill --all");
        assert_eq!(wait_dead(&mut b), Some(libc::SIGKILL));
        assert_eq!(wait_dead(&mut c), Some(libc::SIGKILL));
        assert!(!v1.is_frozen());

        cg.destroy().expect("destroy");
        for d in cg.dirs() {
            assert!(!d.exists(), "{}", d.display());
        }
    }
}

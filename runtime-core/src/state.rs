//! Container state on disk (design.md §4): one directory per container under
//! the root (default /run/husk), holding `state.json` (written to a temp file
//! and renamed), `config.json` (the config as created) and the start socket.
//! Commands that change a container hold an exclusive flock on its directory;
//! `state` and `list` read without locking. Liveness is the init's pid plus
//! its start time, so a recycled pid is never taken for the container.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cgroups::ContainerCgroup;
use crate::error::{Context, Error, Result};

pub const DEFAULT_ROOT: &str = "/run/husk";
const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const START_SOCKET: &str = "start.sock";
/// sun_path of struct sockaddr_un, with its terminating NUL.
const SUN_PATH_MAX: usize = 107;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What husk records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// The init's pid in husk's pid namespace; 0 before it exists.
    pub pid: i32,
    /// The init's start time (clock ticks since boot, /proc/<pid>/stat field 22).
    pub pid_start_time: u64,
    /// The last status a command set (created, running); the live status is
    /// derived from this and the init's liveness by [`State::status`].
    pub recorded: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Option<ContainerCgroup>,
    /// The config's ociVersion, for the state hooks see.
    #[serde(default)]
    pub oci_version: String,
    /// poststart and poststop hooks, kept here so that start and delete need
    /// not parse config.json again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    /// Host mounts that a shared rootfsPropagation may have let escape, to be
    /// swept at delete (only recorded when propagation can leak).
    #[serde(default)]
    pub sweep_mounts_under: Option<PathBuf>,
}

impl State {
    /// The container's status now: a dead (or zombie, or recycled) init means
    /// stopped, whatever was recorded.
    pub fn status(&self) -> Status {
        if self.pid <= 0 || !process_alive(self.pid, self.pid_start_time) {
            return Status::Stopped;
        }
        if self.recorded == Status::Running && self.cgroup.as_ref().is_some_and(|cg| cg.is_frozen())
        {
            return Status::Paused;
        }
        self.recorded
    }
}

/// The directory of one container, locked or not.
pub struct ContainerDir {
    pub path: PathBuf,
    /// Held while the command runs, for commands that change the container.
    _lock: Option<Flock<File>>,
}

/// Container ids become directory names: allow what runc allows.
pub fn validate_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::step(
            "container id",
            format!("invalid id {id:?}: use letters, digits, _ + - ."),
        ))
    }
}

fn ensure_root(root: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .step(|| format!("create state root {}", root.display()))
}

impl ContainerDir {
    /// Make the directory of a new container, locked. Fails if the id exists.
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        ensure_root(root)?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()))
            }
            Err(e) => return Err(Error::os(format!("create {}", path.display()), e)),
        }
        let lock = lock_dir(&path)?;
        Ok(ContainerDir {
            path,
            _lock: Some(lock),
        })
    }

    /// Open an existing container's directory, locked exclusively when the
    /// command will change the container.
    pub fn open(root: &Path, id: &str, exclusive: bool) -> Result<Self> {
        validate_id(id).map_err(|_| Error::NotFound(id.to_string()))?;
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() && !path.is_dir() {
            return Err(Error::NotFound(id.to_string()));
        }
        let lock = if exclusive {
            Some(lock_dir(&path)?)
        } else {
            None
        };
        Ok(ContainerDir { path, _lock: lock })
    }

    pub fn load(&self) -> Result<State> {
        let path = self.path.join(STATE_FILE);
        let bytes = fs::read(&path).step(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::step(format!("parse {}", path.display()), e.to_string()))
    }

    /// Write state.json atomically: a temp file in the same directory,
    /// fsync-free (tmpfs), renamed over the old one.
    pub fn save(&self, state: &State) -> Result<()> {
        let bytes =
            serde_json::to_vec(state).map_err(|e| Error::step("serialize state", e.to_string()))?;
        write_atomic(&self.path.join(STATE_FILE), &bytes)
    }

    pub fn save_config(&self, raw: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(CONFIG_FILE), raw)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// The start socket's address. A unix socket path must fit in 108
    /// bytes, and dockerd's state root plus a 64-hex id does not: then the
    /// socket is reached through the locked directory's fd instead.
    pub fn start_socket(&self) -> PathBuf {
        let full = self.path.join(START_SOCKET);
        match &self._lock {
            Some(dir) if full.as_os_str().len() >= SUN_PATH_MAX => {
                PathBuf::from(format!("/proc/self/fd/{}/{START_SOCKET}", dir.as_raw_fd()))
            }
            _ => full,
        }
    }

    /// Remove the directory and everything in it.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::os(format!("remove {}", self.path.display()), e)),
        }
    }
}

/// Whether a command holds the container's lock right now (a create in
/// progress holds it from the start).
pub fn is_locked(path: &Path) -> bool {
    let Ok(dir) = File::open(path) else {
        return false;
    };
    match Flock::lock(dir, FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, e)) => e == nix::Error::EWOULDBLOCK,
    }
}

fn lock_dir(path: &Path) -> Result<Flock<File>> {
    let dir = File::open(path).step(|| format!("open {}", path.display()))?;
    Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::os(format!("lock {}", path.display()), e))
}

/// Write `bytes` to `path` through a temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .step(|| format!("create {}", tmp.display()))?;
    file.write_all(bytes)
        .step(|| format!("write {}", tmp.display()))?;
    drop(file);
    replace(&tmp, path).step(|| format!("rename {}", path.display()))
}

/// Put `tmp` in the place of `path` atomically. An existing `path` is
/// swapped with RENAME_EXCHANGE and its old content unlinked: a plain
/// rename over an existing file makes ext4 (auto_da_alloc) start writing
/// the new file back inside the rename, which cost 0.3-0.8 ms of every
/// `start` here. Readers see the old or the new file, never none.
fn replace(tmp: &Path, path: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RenameFlags::RENAME_EXCHANGE) {
        // The new state is in place; the old one left under the temp name
        // is harmless (the next write truncates it, delete removes the dir).
        Ok(()) => {
            let _ = fs::remove_file(tmp);
            Ok(())
        }
        // No file to exchange with yet, or a filesystem without exchange.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL) => fs::rename(tmp, path),
        Err(e) => Err(e.into()),
    }
}

/// Ids of every container under `root` (directories with a state file).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::os(format!("read {}", root.display()), e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Fields of /proc/<pid>/stat that tell who a pid is.
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Parse /proc/<pid>/stat; None if the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // state is field 3; starttime is field 22, i.e. 19 fields further.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Is `pid` still the process that started at `start_time`, and not a zombie?
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start_time == start_time && s.state != 'Z' && s.state != 'X')
}

/// The current time in RFC 3339 with nanoseconds, UTC, as runc prints it.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The user name of `uid` from the host's /etc/passwd, or the number.
pub fn user_name(uid: u32) -> String {
    let name = fs::read_to_string("/etc/passwd").ok().and_then(|text| {
        text.lines().find_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    name.unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2.3+x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn own_process_is_alive_and_start_time_matters() {
        let me = std::process::id() as i32;
        let stat = proc_stat(me).expect("own /proc/self/stat");
        assert!(process_alive(me, stat.start_time));
        assert!(!process_alive(me, stat.start_time + 1));
    }
}

//! /dev inside the container: the default device nodes, `linux.devices`,
//! and the standard symlinks. Skipped entirely when /dev is a bind mount of
//! the host's, as in runc.

use std::fs::Permissions;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use oci_spec::runtime::{LinuxDeviceType, Spec};
use pathrs::{InodeType, Root};
use rustix::fs::{AtFlags, FileType, Gid, Uid, CWD};

use super::mounts::attach_at;
use super::options::MountOptions;
use super::paths::{self, Kind};
use super::sys;
use crate::error::{Context, Error, Result};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    path: PathBuf,
    kind: NodeKind,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    /// From linux.devices: a file already at the path must be this very
    /// device. The defaults keep runc's leniency and leave whatever the
    /// image has there (masking checks /dev/null before using it).
    configured: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// The devices every container gets (runtime-spec "Default Devices").
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Whether the config bind-mounts /dev from the host, in which case the
/// runtime leaves /dev alone.
pub(crate) fn dev_is_bound(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        bind && m.destination().as_path() == Path::new("/dev")
    })
}

/// Create the device nodes and symlinks in /dev.
pub(crate) fn setup(root: &Root, spec: &Spec, in_user_ns: bool) -> Result<()> {
    let nodes = nodes(spec)?;
    {
        // The modes in the config are exact: no umask. We are the only thread.
        let _umask = UmaskGuard::clear();
        for node in &nodes {
            create(root, node, in_user_ns)?;
        }
    }
    symlinks(root, spec)
}

/// The default devices not overridden by the config, then the config's.
fn nodes(spec: &Spec) -> Result<Vec<Node>> {
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut nodes = Vec::new();
    for (path, major, minor) in DEFAULT_DEVICES {
        if !configured
            .iter()
            .any(|d| d.path().as_path() == Path::new(path))
        {
            nodes.push(Node {
                path: path.into(),
                kind: NodeKind::Char,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
                configured: false,
            });
        }
    }
    for d in configured {
        let what = || format!("linux.devices {}", d.path().display());
        let number = |n: i64| {
            u32::try_from(n)
                .map_err(|_| Error::config(format!("{}: bad device number {n}", what())))
        };
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => NodeKind::Char,
            LinuxDeviceType::B => NodeKind::Block,
            LinuxDeviceType::P => NodeKind::Fifo,
            LinuxDeviceType::A => {
                return Err(Error::config(format!(
                    "{}: type \"a\" is not a device",
                    what()
                )))
            }
        };
        nodes.push(Node {
            path: d.path().clone(),
            kind,
            major: number(d.major())?,
            minor: number(d.minor())?,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            configured: true,
        });
    }
    Ok(nodes)
}

fn create(root: &Root, node: &Node, in_user_ns: bool) -> Result<()> {
    // In a user namespace mknod of a device is refused: bind the host's node.
    // A fifo needs no privilege, so it is always made.
    if in_user_ns && node.kind != NodeKind::Fifo {
        return bind_host_node(root, node);
    }
    let step = format!("create device {}", node.path.display());
    let path = paths::in_root_path(root, &node.path).step(|| step.clone())?;
    if let Some(parent) = path.parent() {
        root.mkdir_all(parent, &paths::dir_mode())
            .step(|| format!("{step}: create {}", parent.display()))?;
    }
    let perm = Permissions::from_mode(node.mode);
    let dev = rustix::fs::makedev(node.major, node.minor);
    let inode = match node.kind {
        NodeKind::Char => InodeType::CharacterDevice(perm, dev),
        NodeKind::Block => InodeType::BlockDevice(perm, dev),
        NodeKind::Fifo => InodeType::Fifo(perm),
    };
    match root.create(&path, &inode) {
        Ok(()) => chown_node(root, &path, node, &step),
        // As runc, a node the image already has is left as it is (mode and
        // owner included); but for linux.devices it must be that device.
        Err(e) if paths::errno(&e) == Some(libc::EEXIST) => {
            if !node.configured {
                return Ok(());
            }
            let found = paths::lookup(root, &path, false).step(|| step.clone())?;
            let found = found.ok_or_else(|| Error::step(&step, "the file there disappeared"))?;
            match existing(&found, node).step(|| step.clone())? {
                Existing::Same => Ok(()),
                other => Err(mismatch(node, &other)),
            }
        }
        Err(e) if paths::errno(&e) == Some(libc::EPERM) => bind_host_node(root, node),
        Err(e) => Err(e).step(|| step.clone()),
    }
}

/// What a device's path already holds.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    /// The device asked for.
    Same,
    /// An empty regular file: a mount point for a bind of the device.
    EmptyFile,
    /// Something else, described ("a regular file", "the character device
    /// 1:5").
    Other(String),
}

impl std::fmt::Display for Existing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Existing::Same => write!(f, "the device asked for"),
            Existing::EmptyFile => write!(f, "an empty regular file"),
            Existing::Other(what) => write!(f, "{what}"),
        }
    }
}

fn existing(found: impl AsFd, node: &Node) -> std::io::Result<Existing> {
    let st = rustix::fs::fstat(found)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    let same_kind = match node.kind {
        NodeKind::Char => kind == FileType::CharacterDevice,
        NodeKind::Block => kind == FileType::BlockDevice,
        NodeKind::Fifo => kind == FileType::Fifo,
    };
    if same_kind && (node.kind == NodeKind::Fifo || (major, minor) == (node.major, node.minor)) {
        return Ok(Existing::Same);
    }
    let what = match kind {
        FileType::CharacterDevice => format!("the character device {major}:{minor}"),
        FileType::BlockDevice => format!("the block device {major}:{minor}"),
        FileType::Fifo => "a fifo".to_string(),
        FileType::RegularFile if st.st_size == 0 => return Ok(Existing::EmptyFile),
        FileType::RegularFile => "a regular file".to_string(),
        FileType::Directory => "a directory".to_string(),
        FileType::Symlink => "a symlink".to_string(),
        FileType::Socket => "a socket".to_string(),
        _ => "a file of unknown type".to_string(),
    };
    Ok(Existing::Other(what))
}

/// "linux.devices: /x already exists in the rootfs as a regular file, not
/// the character device 1:3 asked for".
fn mismatch(node: &Node, what: &Existing) -> Error {
    let wanted = match node.kind {
        NodeKind::Char => format!("the character device {}:{}", node.major, node.minor),
        NodeKind::Block => format!("the block device {}:{}", node.major, node.minor),
        NodeKind::Fifo => "a fifo".to_string(),
    };
    Error::config(format!(
        "linux.devices: {} already exists in the rootfs as {what}, not {wanted} asked for",
        node.path.display()
    ))
}

/// chown the node we just made, after checking through its fd that it is
/// still that node.
fn chown_node(root: &Root, path: &Path, node: &Node, step: &str) -> Result<()> {
    let handle = paths::lookup(root, path, false).step(|| step.to_string())?;
    let handle = handle.ok_or_else(|| Error::step(step, "the new node disappeared"))?;
    if existing(&handle, node).step(|| step.to_string())? != Existing::Same {
        return Err(Error::step(
            step,
            "the node was replaced while being created",
        ));
    }
    let (uid, gid) = (Uid::from_raw(node.uid), Gid::from_raw(node.gid));
    sys::io(rustix::fs::chownat(
        &handle,
        "",
        Some(uid),
        Some(gid),
        AtFlags::EMPTY_PATH,
    ))
    .step(|| format!("{step}: chown {}:{}", node.uid, node.gid))
}

/// Bind the host's node at the same path onto an empty file in the rootfs.
///
/// The host's node must be the device asked for. For linux.devices, a file
/// already in the rootfs must be that device too, or an empty regular file:
/// the mount point this very function leaves behind in a rootfs without a
/// /dev mount of its own, found again by the next container.
fn bind_host_node(root: &Root, node: &Node) -> Result<()> {
    let step = format!("bind device {}", node.path.display());
    if node.configured {
        if let Some(found) = paths::resolve(root, &node.path, &step)? {
            let found = existing(&found, node).step(|| step.clone())?;
            if !matches!(found, Existing::Same | Existing::EmptyFile) {
                return Err(mismatch(node, &found));
            }
        }
    }
    let tree = sys::clone_tree(CWD, &node.path, false)
        .step(|| format!("{step}: open the host's {}", node.path.display()))?;
    let host = existing(&tree, node).step(|| step.clone())?;
    if host != Existing::Same {
        return Err(Error::step(
            &step,
            format!("the host's {} is {host}", node.path.display()),
        ));
    }
    let target = paths::resolve_or_create(root, &node.path, Kind::File, &step)?;
    attach_at(
        root,
        &tree,
        &target,
        &node.path,
        &MountOptions::default(),
        &step,
    )
}

/// /dev/fd, stdin, stdout, stderr, core, and ptmx when /dev/pts is a devpts.
fn symlinks(root: &Root, spec: &Spec) -> Result<()> {
    let mut links = vec![
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    // Checked on the host, like runc: only link to a kcore that exists.
    if Path::new("/proc/kcore").exists() {
        links.push(("/dev/core", "/proc/kcore"));
    }
    for (link, target) in links {
        symlink(root, link, target)?;
    }
    if has_devpts(spec) {
        // The image's /dev/ptmx would open the host's pty instance (or none):
        // point it at our devpts instance instead.
        match root.remove_file("/dev/ptmx") {
            Ok(()) => {}
            Err(e) if paths::errno(&e) == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).step(|| "remove /dev/ptmx".to_string()),
        }
        symlink(root, "/dev/ptmx", "pts/ptmx")?;
    }
    Ok(())
}

fn has_devpts(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.typ().as_deref() == Some("devpts") && m.destination().as_path() == Path::new("/dev/pts")
    })
}

fn symlink(root: &Root, link: &str, target: &str) -> Result<()> {
    match root.create(link, &InodeType::Symlink(target.into())) {
        Ok(()) => Ok(()),
        Err(e) if paths::errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(e).step(|| format!("symlink {link} -> {target}")),
    }
}

/// Clears the umask for its lifetime.
struct UmaskGuard(Mode);

impl UmaskGuard {
    fn clear() -> Self {
        UmaskGuard(umask(Mode::empty()))
    }
}

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        umask(self.0);
    }
}

//! Namespaces: which to create, which to join, and who does it.
//!
//! The common case is one clone3() with every CLONE_NEW* flag, the child born
//! in all its namespaces (design.md §1). Namespaces that only affect children
//! (pid, time) are joined or created by `husk create` itself right before the
//! clone, so even those need no second fork. A second fork is needed only when
//! the child must first join a user namespace, or join other namespaces with
//! host privileges before creating a user namespace and a pid namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};
use crate::procfs::Procfs;
use crate::syscall;

/// A namespace to join: its type and the path of a file for it.
#[derive(Debug, Clone)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
}

/// Who creates and joins which namespace.
#[derive(Debug, Default)]
pub struct Plan {
    /// CLONE_NEW* flags for the clone itself.
    pub clone_flags: u64,
    /// pid and time namespaces `husk create` joins before cloning.
    pub parent_joins: Vec<Join>,
    /// `husk create` unshares a new time namespace before cloning.
    pub parent_new_time: bool,
    /// Namespaces the child joins, user first.
    pub child_joins: Vec<Join>,
    /// CLONE_NEW* flags the child unshares after joining (second-fork path).
    pub child_unshare: u64,
    /// The child must fork once more after unsharing (a new pid namespace
    /// created by unshare only applies to children).
    pub second_fork: bool,
    /// A new user namespace is created: the parent writes the id maps.
    pub new_user: bool,
    /// A cgroup namespace is created by the child after it is placed in its
    /// cgroups (on v1, placement is a migration after the clone).
    pub late_cgroupns: bool,
}

/// The CLONE_NEW* flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> u64 {
    let flag = match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    };
    flag as u64
}

/// Decide the plan for `spec`. `cgroup_v1_placement` is true when the child
/// is placed in v1 hierarchies by migration after the clone.
pub fn plan(spec: &Spec, cgroup_v1_placement: bool) -> Plan {
    let mut plan = Plan::default();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut new_flags = 0u64;
    for ns in &namespaces {
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::Pid | LinuxNamespaceType::Time, Some(path)) => {
                plan.parent_joins.push(Join {
                    typ: ns.typ(),
                    path: path.clone(),
                })
            }
            (LinuxNamespaceType::Time, None) => plan.parent_new_time = true,
            (typ, Some(path)) => plan.child_joins.push(Join {
                typ,
                path: path.clone(),
            }),
            (typ, None) => new_flags |= clone_flag(typ),
        }
    }
    // Joining a user namespace must come first, so the others are joined with
    // the privileges it grants.
    plan.child_joins
        .sort_by_key(|j| j.typ != LinuxNamespaceType::User);
    plan.new_user = new_flags & libc::CLONE_NEWUSER as u64 != 0;
    if cgroup_v1_placement && new_flags & libc::CLONE_NEWCGROUP as u64 != 0 {
        new_flags &= !(libc::CLONE_NEWCGROUP as u64);
        plan.late_cgroupns = true;
    }
    let joins_user = plan
        .child_joins
        .iter()
        .any(|j| j.typ == LinuxNamespaceType::User);
    if joins_user || (plan.new_user && !plan.child_joins.is_empty()) {
        plan.child_unshare = new_flags;
        plan.second_fork = new_flags & libc::CLONE_NEWPID as u64 != 0;
    } else {
        plan.clone_flags = new_flags;
    }
    plan
}

fn open_ns(join: &Join) -> Result<File> {
    File::open(&join.path).step(|| format!("open {} namespace {}", join.typ, join.path.display()))
}

fn enter(join: &Join) -> Result<()> {
    let file = open_ns(join)?;
    syscall::setns(file.as_fd(), clone_flag(join.typ))
        .step(|| format!("join {} namespace {}", join.typ, join.path.display()))
}

/// In `husk create`, before the clone: join or create the namespaces that
/// take effect for children only, and write the time offsets.
pub fn prepare_parent(plan: &Plan, spec: &Spec) -> Result<()> {
    for join in &plan.parent_joins {
        enter(join)?;
    }
    if plan.parent_new_time {
        syscall::unshare(libc::CLONE_NEWTIME as u64).step(|| "create time namespace".into())?;
        write_time_offsets(spec)?;
    }
    Ok(())
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, offset) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            offset.secs().unwrap_or(0),
            offset.nanosecs().unwrap_or(0)
        ));
    }
    Procfs::open()?.write_self("timens_offsets", text.as_bytes())
}

/// In the child: join the namespaces given by path, user first.
pub fn join_child(plan: &Plan) -> Result<()> {
    for join in &plan.child_joins {
        enter(join)?;
    }
    Ok(())
}

/// In the child, second-fork path: create the namespaces not made by clone.
pub fn unshare_child(flags: u64) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    syscall::unshare(flags).step(|| "create namespaces".into())
}

/// In the child, after its cgroups are joined: a cgroup namespace rooted there.
pub fn unshare_cgroupns() -> Result<()> {
    syscall::unshare(libc::CLONE_NEWCGROUP as u64).step(|| "create cgroup namespace".into())
}

/// In the parent: write the child's uid_map and gid_map.
pub fn write_id_maps(procfs: &Procfs, pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::config("linux: missing"))?;
    let uid = format_map(linux.uid_mappings().as_deref().unwrap_or_default());
    let gid = format_map(linux.gid_mappings().as_deref().unwrap_or_default());
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::config(
            "linux.uidMappings: a new user namespace needs uid and gid mappings",
        ));
    }
    procfs.write_pid(pid, "uid_map", uid.as_bytes())?;
    procfs.write_pid(pid, "gid_map", gid.as_bytes())
}

fn format_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

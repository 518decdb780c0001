//! Cgroups: placement of the container from birth, and cleanup.
//! (Being written; see the shared interface below, used by rootfs to mount
//! /sys/fs/cgroup inside the container.)

use std::path::PathBuf;

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

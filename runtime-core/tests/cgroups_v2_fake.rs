//! linux.resources on pure cgroup v2, against a fake cgroupfs: a tmpfs laid
//! out as the kernel lays out /sys/fs/cgroup (root with cgroup.controllers
//! and cgroup.subtree_control, the container's directory with the files of
//! the enabled controllers). This host's cgroup2 owns only hugetlb and misc,
//! so the memory, cpu, cpuset, io, pids and rdma writes cannot be made for
//! real here; what these tests check is that each field lands in the file
//! and format that the kernel (and runc) use, that a missing file or
//! controller is an error, and that a refusal writes nothing.
//!
//! What a tmpfs cannot imitate: a file takes one value per write (cgroupfs
//! parses each write, tmpfs keeps bytes), so each file here is written once
//! per test; multi-line files (io.max, rdma.max) are covered by the plan
//! unit tests in `resources.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use runtime_core::cgroups::resources::parse_resources;
use runtime_core::cgroups::ContainerCgroup;

/// Every controller of a current kernel's cgroup2 root.
const CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc";

/// The files that the kernel shows in a cgroup with every controller on.
const LEAF_FILES: &[&str] = &[
    "cgroup.procs",
    "cgroup.freeze",
    "cgroup.max.depth",
    "cgroup.subtree_control",
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "io.weight",
    "io.max",
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "memory.high",
    "memory.current",
    "pids.max",
    "hugetlb.2MB.max",
    "hugetlb.2MB.rsvd.max",
    "rdma.max",
];

/// A tmpfs mounted on a temp dir, unmounted and removed on drop.
struct FakeTree {
    root: PathBuf,
}

impl FakeTree {
    /// Root at `root`, the container at `/husk/<name>` (parent `husk` made
    /// with no controllers enabled yet, as a fresh parent is).
    fn new(name: &str) -> Option<FakeTree> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED {name}: not root (a tmpfs must be mounted)");
            return None;
        }
        let root =
            std::env::temp_dir().join(format!("husk-fake-cg2-{name}-{}", std::process::id()));
        fs::create_dir_all(&root).expect("mkdir root");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "husk-fake-cgroup2"])
            .arg(&root)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs on {}", root.display());
        let tree = FakeTree { root };
        tree.write("cgroup.controllers", &format!("{CONTROLLERS}\n"));
        tree.write("cgroup.subtree_control", &format!("{CONTROLLERS}\n"));
        tree.write("cpuset.cpus.effective", "0-1\n");
        tree.write("cpuset.mems.effective", "0\n");
        fs::create_dir_all(tree.leaf()).expect("mkdir leaf");
        tree.write("husk/cgroup.controllers", &format!("{CONTROLLERS}\n"));
        tree.write("husk/cgroup.subtree_control", "");
        tree.write("husk/cpuset.cpus.effective", "0-1\n");
        tree.write("husk/cpuset.mems.effective", "0\n");
        for f in LEAF_FILES {
            tree.write(&format!("husk/c1/{f}"), "");
        }
        tree.write("husk/c1/memory.current", "104857600\n");
        Some(tree)
    }

    fn leaf(&self) -> PathBuf {
        self.root.join("husk/c1")
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.root.join(rel), text).expect("write fake file");
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).expect("read fake file")
    }

    /// The container's files that are no longer empty.
    fn written(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for f in LEAF_FILES {
            let text = self.read(&format!("husk/c1/{f}"));
            if !text.is_empty() {
                out.insert((*f).to_owned(), text);
            }
        }
        out.remove("memory.current");
        out
    }

    /// The container's cgroup as `create` would have recorded it on a pure
    /// v2 host whose cgroup2 is mounted at our tmpfs.
    fn cgroup(&self) -> ContainerCgroup {
        serde_json::from_value(serde_json::json!({
            "layout": "v2",
            "hierarchies": [{
                "controllers": "",
                "mount_point": self.root,
                "path": "/husk/c1",
                "created": [],
            }],
        }))
        .expect("container cgroup")
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.root).status();
        let _ = fs::remove_dir(&self.root);
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn has_2mb_pages() -> bool {
    Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
}

/// Every v2 resource, with the v1-style values that clients send, lands in
/// the cgroup2 file and format: shares → cpu.weight, blkio weight →
/// io.weight, swap (memory+swap) → memory.swap.max (swap alone), -1 → max.
#[test]
fn cgroups_v2_fake_tree_every_resource() {
    let Some(tree) = FakeTree::new("every") else {
        return;
    };
    let hugetlb = if has_2mb_pages() {
        r#", "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]"#
    } else {
        ""
    };
    let json = format!(
        r#"{{
        "memory": {{"limit": 268435456, "swap": 402653184, "reservation": 134217728}},
        "cpu": {{"shares": 512, "quota": 50000, "period": 100000, "burst": 10000, "idle": 1,
                 "cpus": "0-1", "mems": "0"}},
        "pids": {{"limit": -1}},
        "blockIO": {{"weight": 500,
                     "throttleReadBpsDevice": [{{"major": 8, "minor": 0, "rate": 1048576}}]}},
        "rdma": {{"mlx4_0": {{"hcaHandles": 2, "hcaObjects": 2000}}}},
        "unified": {{"memory.high": "201326592", "cgroup.max.depth": "4"}}
        {hugetlb}
    }}"#
    );
    let r = parse_resources(json.as_bytes()).expect("resources");
    tree.cgroup().apply_resources(&r).expect("apply");

    let mut want = map(&[
        ("memory.max", "268435456"),
        ("memory.swap.max", "134217728"),
        ("memory.low", "134217728"),
        ("memory.high", "201326592"),
        ("cpu.weight", "20"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "10000"),
        ("cpu.idle", "1"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "max"),
        ("io.weight", "default 4950"),
        ("io.max", "8:0 rbps=1048576"),
        ("rdma.max", "mlx4_0 hca_handle=2 hca_object=2000"),
        ("cgroup.max.depth", "4"),
    ]);
    if has_2mb_pages() {
        want.insert("hugetlb.2MB.max".into(), "4194304".into());
        want.insert("hugetlb.2MB.rsvd.max".into(), "4194304".into());
    }
    assert_eq!(tree.written(), want);
    // Each controller was enabled for the container in its parent (the
    // root had them all); a tmpfs keeps only the last "+controller" write.
    assert!(
        tree.read("husk/cgroup.subtree_control").starts_with('+'),
        "parent's subtree_control: {:?}",
        tree.read("husk/cgroup.subtree_control")
    );
    assert_eq!(
        tree.read("cgroup.subtree_control"),
        format!("{CONTROLLERS}\n")
    );
}

/// The v1-only fields are refused on v2 with the field's name, and a
/// refusal writes nothing at all (everything is validated first).
#[test]
fn cgroups_v2_fake_tree_refusals_write_nothing() {
    let Some(tree) = FakeTree::new("refusals") else {
        return;
    };
    // Each refused section comes with a valid pids limit, which must not be
    // written either.
    let cases = [
        (r#""memory": {"swappiness": 10}"#, "memory.swappiness"),
        (
            r#""memory": {"disableOOMKiller": true}"#,
            "disableOOMKiller",
        ),
        (r#""memory": {"useHierarchy": false}"#, "useHierarchy"),
        (r#""cpu": {"realtimeRuntime": 1000}"#, "realtime"),
        (r#""blockIO": {"leafWeight": 100}"#, "leafWeight"),
        (r#""network": {"classID": 1}"#, "net_cls"),
        (r#""unified": {"foo.bar": "1"}"#, "foo"),
        (r#""unified": {"../memory.max": "1"}"#, "unified"),
        (r#""cpu": {"cpus": "0-7"}"#, "cpu.cpus"),
        (
            r#""memory": {"limit": 1048576, "checkBeforeUpdate": true}"#,
            "below the container's current usage",
        ),
    ];
    for (section, needle) in cases {
        let json = format!(r#"{{"pids": {{"limit": 5}}, {section}}}"#);
        let r = parse_resources(json.as_bytes()).expect("resources");
        let err = tree
            .cgroup()
            .update_resources(&r, &[])
            .expect_err(&json)
            .to_string();
        assert!(err.contains(needle), "{json}: {err}");
        assert_eq!(tree.written(), BTreeMap::new(), "{json} wrote something");
    }
    // checkBeforeUpdate with a limit above the usage (100 MiB) goes through.
    let r = parse_resources(br#"{"memory": {"limit": 209715200, "checkBeforeUpdate": true}}"#)
        .expect("resources");
    tree.cgroup()
        .update_resources(&r, &[])
        .expect("above usage");
    assert_eq!(tree.written(), map(&[("memory.max", "209715200")]));
}

/// A controller file that the kernel does not have (the controller is not
/// enabled for the cgroup) is an error naming the file, not a silent skip.
#[test]
fn cgroups_v2_fake_tree_missing_file_is_an_error() {
    let Some(tree) = FakeTree::new("missing") else {
        return;
    };
    fs::remove_file(tree.leaf().join("pids.max")).expect("rm pids.max");
    let r = parse_resources(br#"{"pids": {"limit": 10}}"#).expect("resources");
    let err = tree
        .cgroup()
        .apply_resources(&r)
        .expect_err("no pids.max")
        .to_string();
    assert!(
        err.contains("pids.max") && err.contains("no such cgroup file"),
        "{err}"
    );
    // A controller that the root does not offer at all.
    tree.write("cgroup.controllers", "cpu memory\n");
    let r = parse_resources(br#"{"rdma": {"mlx4_0": {"hcaHandles": 1}}}"#).expect("resources");
    let err = tree
        .cgroup()
        .apply_resources(&r)
        .expect_err("no rdma")
        .to_string();
    assert!(err.contains("rdma"), "{err}");
    assert_eq!(tree.read("husk/c1/rdma.max"), "");
}

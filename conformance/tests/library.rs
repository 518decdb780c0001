//! The library as other test suites use it: build a busybox bundle, run it
//! with a runtime, read the output. Runs against runc when the machine has
//! it and the test runs as root (containers need root); otherwise it says
//! why and passes, as there is nothing to drive.

use conformance::{Bundle, Runtime};
use std::path::Path;

const RUNC: &str = "/usr/sbin/runc";

fn can_run_containers() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && Path::new(RUNC).exists() && Path::new(conformance::bundle::BUSYBOX).exists()
}

#[test]
fn busybox_bundle_runs_under_runc() {
    if !can_run_containers() {
        eprintln!("skipped: needs root, {RUNC} and busybox-static");
        return;
    }
    let base = std::env::temp_dir().join(format!("conformance-lib-{}", std::process::id()));
    let mut bundle = Bundle::busybox(&base.join("bundle")).expect("bundle");
    bundle.args(&["sh", "-c", "echo hello from $(hostname)"]);
    let runtime = Runtime::new(RUNC).root(base.join("root"));
    let out = runtime.run(&bundle, "conformance-lib-test");
    let _ = runtime.delete_force("conformance-lib-test");
    let _ = std::fs::remove_dir_all(&base);
    assert!(out.success(), "run failed: {}", out.describe());
    assert_eq!(out.stdout, "hello from runc\n");
}

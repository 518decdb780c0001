//! Checks that libseccomp (linux.seccomp) will be linked the way husk's
//! binaries need it.
//!
//! husk is built with `+crt-static` (.cargo/config.toml): every binary is
//! fully static, so libseccomp must come from its static archive. The
//! libseccomp-sys crate links it dynamically unless told otherwise, and a
//! static binary that names a shared library crashes at startup. The
//! workspace's .cargo/config.toml tells it through `[env]`:
//!
//! ```toml
//! [env]
//! LIBSECCOMP_LINK_TYPE = "static"
//! LIBSECCOMP_LIB_PATH = "/usr/lib/x86_64-linux-gnu"
//! ```
//!
//! and Debian's libseccomp-dev provides the archive there.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBSECCOMP_LINK_TYPE");
    println!("cargo:rerun-if-env-changed=LIBSECCOMP_LIB_PATH");
    println!("cargo:rerun-if-changed=build.rs");
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if !features.split(',').any(|f| f == "crt-static") {
        return;
    }
    let link_type = env::var("LIBSECCOMP_LINK_TYPE").unwrap_or_default();
    let Ok(dir) = env::var("LIBSECCOMP_LIB_PATH") else {
        println!(
            "cargo:warning=static build without LIBSECCOMP_LINK_TYPE=static and \
             LIBSECCOMP_LIB_PATH: binaries that use linux.seccomp will crash at \
             startup (see runtime-core/build.rs for the .cargo/config.toml [env] lines)"
        );
        return;
    };
    if link_type != "static" {
        panic!("LIBSECCOMP_LINK_TYPE must be \"static\" for a crt-static build, not {link_type:?}");
    }
    let archive = Path::new(&dir).join("libseccomp.a");
    if !archive.is_file() {
        panic!(
            "{} is missing: install Debian's libseccomp-dev (apt-get install libseccomp-dev)",
            archive.display()
        );
    }
}

//! husk's runtime core: turns an OCI bundle into a running container.
//!
//! One module per kernel facility; the lifecycle state machine lives in
//! [`container`]. The `husk` binary and the shim are thin layers over this.

pub mod capabilities;
pub mod cgroups;
pub mod channel;
pub mod config;
pub mod container;
pub mod defaults;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod init;
pub mod namespaces;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod seccomp;
pub mod selfexe;
pub mod signals;
pub mod state;
pub mod syscall;
pub mod terminal;

pub use error::{Error, Result};

/// The runtime-spec version husk implements.
pub const OCI_VERSION: &str = "1.2.0";

//! The library's error type. Every failure names the step that failed and the
//! cause, so `husk create` can print "mount /proc: permission denied" rather
//! than "child exited 1".

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json is unreadable, malformed or asks for something invalid.
    #[error("config: {0}")]
    Config(String),
    /// A step failed with an OS error.
    #[error("{step}: {}", errno_text(source))]
    Os {
        step: String,
        #[source]
        source: io::Error,
    },
    /// A step failed for a reason that is not an errno.
    #[error("{step}: {reason}")]
    Step { step: String, reason: String },
    /// The container is not in a state that allows the operation.
    #[error("container {id} is {status}: {reason}")]
    WrongState {
        id: String,
        status: String,
        reason: String,
    },
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    Exists(String),
    /// The container's init reported an error over the parent-child channel.
    #[error("{}", join_step(step, reason))]
    Child { step: String, reason: String },
}

impl Error {
    /// An OS error at `step`, from `errno`.
    pub fn os(step: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Os {
            step: step.into(),
            source: source.into(),
        }
    }

    pub fn step(step: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Step {
            step: step.into(),
            reason: reason.into(),
        }
    }

    pub fn config(reason: impl Into<String>) -> Self {
        Error::Config(reason.into())
    }

    /// The errno behind this error, if any (used by the CLI to pick exit codes).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Attach a step name to the error of a fallible OS call.
pub trait Context<T> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::os(step(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::os(step(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, pathrs::error::Error> {
    fn step(self, step: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| match e.kind() {
            pathrs::error::ErrorKind::OsError(Some(errno)) => {
                Error::os(step(), io::Error::from_raw_os_error(errno))
            }
            _ => Error::step(step(), e.to_string()),
        })
    }
}

/// An OS error as lower-case text, as runc prints it ("no such file or directory").
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_lowercase(),
        None => e.to_string(),
    }
}

fn join_step(step: &str, reason: &str) -> String {
    if step.is_empty() {
        reason.to_string()
    } else {
        format!("{step}: {reason}")
    }
}

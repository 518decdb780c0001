//! `--log` and `--log-format`: what containerd and Podman read back to show
//! the user why a command failed (the last json line of the log file).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

pub struct Logger {
    path: Option<PathBuf>,
    json: bool,
    debug: bool,
}

impl Logger {
    pub fn new(path: Option<PathBuf>, format: &str, debug: bool) -> Self {
        Logger {
            path,
            json: format == "json",
            debug,
        }
    }

    pub fn error(&self, message: &str) {
        if self.path.is_some() {
            self.write("error", message);
        }
    }

    /// With --debug only: to the --log file, or to stderr without one (as
    /// runc does).
    pub fn debug(&self, message: &str) {
        if self.debug {
            self.write("debug", message);
        }
    }

    fn write(&self, level: &str, message: &str) {
        let time = runtime_core::state::now_rfc3339();
        let line = if self.json {
            serde_json::json!({"level": level, "msg": message, "time": time}).to_string()
        } else {
            format!("time={time:?} level={level} msg={message:?}")
        };
        match &self.path {
            Some(path) => {
                if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
                    let _ = writeln!(file, "{line}");
                }
            }
            None => eprintln!("{line}"),
        }
    }
}

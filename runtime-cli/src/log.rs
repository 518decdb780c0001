//! `--log` and `--log-format`: what containerd and Podman read back to show
//! the user why a command failed (the last json line of the log file).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

pub struct Logger {
    path: Option<PathBuf>,
    json: bool,
}

impl Logger {
    pub fn new(path: Option<PathBuf>, format: &str, _debug: bool) -> Self {
        Logger {
            path,
            json: format == "json",
        }
    }

    pub fn error(&self, message: &str) {
        self.write("error", message);
    }

    fn write(&self, level: &str, message: &str) {
        let Some(path) = &self.path else {
            return;
        };
        let time = runtime_core::state::now_rfc3339();
        let line = if self.json {
            serde_json::json!({"level": level, "msg": message, "time": time}).to_string()
        } else {
            format!("time={time:?} level={level} msg={message:?}")
        };
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{line}");
        }
    }
}

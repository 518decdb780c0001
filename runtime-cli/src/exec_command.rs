//! `husk exec`: runc's flags, mapped onto runtime_core::exec.

use std::path::PathBuf;

use clap::Args;
use runtime_core::exec::{self, ExecOptions, ProcessFlags, ProcessSource};

#[derive(Args)]
pub struct ExecArgs {
    /// Container id.
    id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// A runtime-spec process JSON file to run instead of the command.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=value); repeatable.
    #[arg(short, long)]
    env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional gids; repeatable.
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    /// Add a capability; repeatable.
    #[arg(short, long)]
    cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    no_new_privs: bool,
    /// Pass this many extra fds (3, 4, …) into the process.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// SELinux label of the process (ignored where SELinux is off).
    #[arg(long)]
    process_label: Option<String>,
    /// AppArmor profile of the process (ignored where AppArmor is off).
    #[arg(long)]
    apparmor: Option<String>,
    /// Exec even if the container is paused.
    #[arg(long)]
    ignore_paused: bool,
}

pub fn run(root: PathBuf, args: &ExecArgs) -> anyhow::Result<u8> {
    let process = match &args.process {
        Some(path) => ProcessSource::File(path.clone()),
        None => ProcessSource::Flags(ProcessFlags {
            args: args.command.clone(),
            tty: args.tty,
            cwd: args.cwd.clone(),
            env: args.env.clone(),
            user: args.user.clone(),
            additional_gids: args.additional_gids.clone(),
            caps: args.cap.clone(),
            no_new_privs: args.no_new_privs,
            apparmor: args.apparmor.clone(),
            process_label: args.process_label.clone(),
        }),
    };
    let code = exec::exec(&ExecOptions {
        root,
        id: args.id.clone(),
        process,
        detach: args.detach,
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        preserve_fds: args.preserve_fds,
        ignore_paused: args.ignore_paused,
    })?;
    Ok(u8::try_from(code).unwrap_or(255))
}

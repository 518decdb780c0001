//! `husk`: runc's command line over runtime-core. Argument parsing and output
//! formats only; all container logic lives in the library.

mod cgroup_commands;
mod exec_command;
mod log;
mod signal;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use runtime_core::container::{self, CreateOptions};
use runtime_core::state::DEFAULT_ROOT;

#[derive(Parser)]
#[command(
    name = "husk",
    about = "husk: an OCI container runtime, a drop-in for runc",
    disable_version_flag = true
)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Write errors (and with --debug, debug lines) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the --log file: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log debug lines.
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver (cgroupsPath is slice:prefix:name).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (true, false or auto).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Container id.
    id: String,
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the pty master to (process.terminal).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the init's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, …) into the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Create and start a container, and wait for it unless detached.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the process runs.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container as JSON.
    State { id: String },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Print ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal to a container's init (default SIGTERM).
    Kill {
        id: String,
        signal: Option<String>,
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container and everything it holds.
    Delete {
        id: String,
        /// Kill it first if it is running.
        #[arg(short, long)]
        force: bool,
    },
    /// Write a starting config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports, as runtime-spec features JSON.
    Features,
    /// Run a process inside a running container.
    Exec(Box<exec_command::ExecArgs>),
    /// Freeze every process of a running container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the processes of a container.
    Ps(cgroup_commands::PsArgs),
    /// Resource usage and OOM events of a container.
    Events(cgroup_commands::EventsArgs),
    /// Change the resource limits of a running container.
    Update(Box<cgroup_commands::UpdateArgs>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let logger = log::Logger::new(cli.log.clone(), &cli.log_format, cli.debug);
    if cli.version {
        print_version();
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command.as_ref() else {
        eprintln!("husk: no command given; see husk --help");
        return ExitCode::FAILURE;
    };
    let name = command_name(command);
    logger.debug(&format!(
        "command line: {:?}",
        std::env::args().collect::<Vec<_>>()
    ));
    let started = std::time::Instant::now();
    let result = dispatch(&cli, command);
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(code) => {
            logger.debug(&format!(
                "{name}: done in {elapsed:.2} ms, exit status {code}"
            ));
            ExitCode::from(code)
        }
        Err(err) => {
            logger.debug(&format!("{name}: failed after {elapsed:.2} ms"));
            let message = format!("{name}: {err}");
            logger.error(&message);
            eprintln!("husk: {message}");
            // runc exits 255 when exec cannot start the process; clients
            // (docker exec) tell that apart from the process's own status.
            if name == "exec" {
                ExitCode::from(255)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A command line clap cannot parse: clients read the reason from the last
/// line of --log, so it goes there too (found by hand, since parsing failed).
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let args: Vec<String> = std::env::args().collect();
    let value_of = |flag: &str| {
        let prefix = format!("{flag}=");
        args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix(&prefix)
                .map(str::to_string)
                .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
        })
    };
    if let Some(path) = value_of("--log") {
        let format = value_of("--log-format").unwrap_or_else(|| "text".into());
        let text = err.to_string();
        let first = text.lines().next().unwrap_or("invalid command line");
        log::Logger::new(Some(PathBuf::from(path)), &format, false).error(first);
    }
    let _ = err.print();
    ExitCode::from(2)
}

fn print_version() {
    println!("husk version {}", env!("CARGO_PKG_VERSION"));
    println!(
        "commit: {}",
        option_env!("HUSK_COMMIT").unwrap_or("unknown")
    );
    println!("spec: {}", runtime_core::OCI_VERSION);
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Create(_) => "create",
        Command::Start { .. } => "start",
        Command::Run { .. } => "run",
        Command::State { .. } => "state",
        Command::List { .. } => "list",
        Command::Kill { .. } => "kill",
        Command::Delete { .. } => "delete",
        Command::Spec { .. } => "spec",
        Command::Features => "features",
        Command::Exec(_) => "exec",
        Command::Pause { .. } => "pause",
        Command::Resume { .. } => "resume",
        Command::Ps(_) => "ps",
        Command::Events(_) => "events",
        Command::Update(_) => "update",
    }
}

fn create_options(cli: &Cli, args: &CreateArgs) -> CreateOptions {
    CreateOptions {
        root: cli.root.clone(),
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        console_socket: args.console_socket.clone(),
        pid_file: args.pid_file.clone(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
    }
}

fn dispatch(cli: &Cli, command: &Command) -> anyhow::Result<u8> {
    match command {
        Command::Create(args) => {
            runtime_core::selfexe::ensure_sealed()?;
            container::create(&create_options(cli, args))?;
        }
        Command::Run {
            create,
            detach,
            keep,
        } => {
            runtime_core::selfexe::ensure_sealed()?;
            let code = container::run(&create_options(cli, create), *detach, *keep)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Start { id } => container::start(&cli.root, id)?,
        Command::State { id } => print_json(&container::state(&cli.root, id)?)?,
        Command::List { format, quiet } => list(cli, format, *quiet)?,
        Command::Kill { id, signal, all } => {
            let signal = signal::parse(signal.as_deref().unwrap_or("SIGTERM"))?;
            container::kill(&cli.root, id, signal, *all)?;
        }
        Command::Delete { id, force } => container::delete(&cli.root, id, *force)?,
        Command::Spec { bundle, rootless } => write_spec(bundle, *rootless)?,
        Command::Features => print_json(&runtime_core::defaults::features())?,
        Command::Exec(args) => {
            runtime_core::selfexe::ensure_sealed()?;
            return exec_command::run(cli.root.clone(), args);
        }
        Command::Pause { id } => cgroup_commands::pause(&cli.root, id)?,
        Command::Resume { id } => cgroup_commands::resume(&cli.root, id)?,
        Command::Ps(args) => cgroup_commands::ps(&cli.root, args)?,
        Command::Events(args) => cgroup_commands::events(&cli.root, args)?,
        Command::Update(args) => cgroup_commands::update(&cli.root, args)?,
    }
    Ok(0)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn list(cli: &Cli, format: &str, quiet: bool) -> anyhow::Result<()> {
    let containers = container::list(&cli.root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for c in &containers {
            writeln!(out, "{}", c.id)?;
        }
        return Ok(());
    }
    if format == "json" {
        serde_json::to_writer(&mut out, &containers)?;
        writeln!(out)?;
        return Ok(());
    }
    let rows: Vec<[String; 6]> =
        std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from))
            .chain(containers.iter().map(|c| {
                [
                    c.id.clone(),
                    c.pid.to_string(),
                    c.status.clone(),
                    c.bundle.clone(),
                    c.created.clone(),
                    c.owner.clone(),
                ]
            }))
            .collect();
    write_table(&mut out, &rows)?;
    Ok(())
}

/// Columns padded like runc's tabwriter (min width 12, padding 3).
fn write_table(out: &mut impl Write, rows: &[[String; 6]]) -> std::io::Result<()> {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len() + 3).max(12);
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn write_spec(bundle: &std::path::Path, rootless: bool) -> anyhow::Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("{}: file exists, remove it first", path.display());
    }
    let spec = runtime_core::defaults::spec(
        rootless,
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let mut text = serde_json::to_string_pretty(&spec)?;
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
    Ok(())
}

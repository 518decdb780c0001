//! `lifecycle`: times the container lifecycle commands of several OCI runtimes
//! (husk, runc, crun), interleaved, and prints medians and paired ratios.
//!
//! See `benches/README.md` for the method.

mod binary;
mod bundle;
mod launcher;
mod measure;
mod options;
mod process;
mod report;
mod runtime;
mod stats;

use std::ffi::OsString;
use std::process::ExitCode;

use options::Parsed;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|first| first == launcher::FLAG) {
        return launcher::main(&args[1..]);
    }
    match bench(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("lifecycle: {failures} command(s) failed (see above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("lifecycle: {err}");
            ExitCode::from(2)
        }
    }
}

/// Runs the whole benchmark; returns the number of failed commands.
fn bench(args: &[OsString]) -> Result<usize, String> {
    let options = match options::parse(args)? {
        Parsed::Run(options) => options,
        Parsed::Help => {
            print!("{}", options::USAGE);
            return Ok(0);
        }
    };
    process::become_subreaper().map_err(|err| format!("PR_SET_CHILD_SUBREAPER: {err}"))?;
    let workdir = bundle::Workdir::create()?;
    let bundle = bundle::build(workdir.path())?;
    let runtimes = runtime::prepare(&options.runtimes, workdir.path())?;
    let mut bench = measure::Bench::new(&runtimes, &bundle, workdir.path(), options.iterations);
    bench.time_all();
    bench.measure_rss(options.rss_samples);
    bench.sweep_leftovers();
    report::print(&bench, &runtimes);
    Ok(bench.failure_count())
}

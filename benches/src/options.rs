//! Command-line options.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const USAGE: &str = "\
usage: lifecycle [--iterations N] [--quick] [--runtimes NAME[=PATH],...]

  --iterations N   interleaved iterations (default 30)
  --quick          5 iterations and 2 RSS samples (CI smoke test)
  --runtimes LIST  runtimes to compare, the first one is the subject of the
                   ratios (default husk=target/x86_64-unknown-linux-gnu/release/husk,
                   runc=runc,crun=crun; a PATH without '/' is looked up in $PATH)

Exits 1 if any runtime command failed, 2 if the benchmark could not run.
";

const DEFAULT_ITERATIONS: usize = 30;
const DEFAULT_RSS_SAMPLES: usize = 5;
const QUICK_ITERATIONS: usize = 5;
const QUICK_RSS_SAMPLES: usize = 2;
const HUSK_RELEASE: &str = "target/x86_64-unknown-linux-gnu/release/husk";

pub struct Options {
    pub iterations: usize,
    pub rss_samples: usize,
    /// (name, path); the path may not exist.
    pub runtimes: Vec<(String, PathBuf)>,
}

pub enum Parsed {
    Run(Options),
    Help,
}

pub fn parse(args: &[OsString]) -> Result<Parsed, String> {
    let mut options = Options {
        iterations: DEFAULT_ITERATIONS,
        rss_samples: DEFAULT_RSS_SAMPLES,
        runtimes: default_runtimes(),
    };
    let mut args = args.iter().map(|arg| arg.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--iterations" => options.iterations = parse_count(&value()?)?,
            "--quick" => {
                options.iterations = QUICK_ITERATIONS;
                options.rss_samples = QUICK_RSS_SAMPLES;
            }
            "--runtimes" => options.runtimes = parse_runtimes(&value()?)?,
            "-h" | "--help" => return Ok(Parsed::Help),
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    Ok(Parsed::Run(options))
}

fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive count, got {text:?}")),
    }
}

fn default_runtimes() -> Vec<(String, PathBuf)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    vec![
        ("husk".to_string(), workspace.join(HUSK_RELEASE)),
        ("runc".to_string(), resolve_program("runc")),
        ("crun".to_string(), resolve_program("crun")),
    ]
}

/// `husk=PATH,runc,crun=PATH`: a bare name is looked up in $PATH.
fn parse_runtimes(list: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let mut runtimes = Vec::new();
    for entry in list.split(',').filter(|entry| !entry.is_empty()) {
        let (name, program) = entry.split_once('=').unwrap_or((entry, entry));
        check_name(name)?;
        if runtimes.iter().any(|(known, _)| known == name) {
            return Err(format!("runtime {name:?} listed twice"));
        }
        runtimes.push((name.to_string(), resolve_program(program)));
    }
    if runtimes.is_empty() {
        return Err("--runtimes is empty".to_string());
    }
    Ok(runtimes)
}

/// Names end up in container ids and file names.
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "bad runtime name {name:?} (use letters, digits, '-', '_')"
        ))
    }
}

/// A program with a '/' is a path; otherwise the first match in $PATH (or the
/// bare name, which `runtime::prepare` then reports as missing).
fn resolve_program(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Options, String> {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        match parse(&args)? {
            Parsed::Run(options) => Ok(options),
            Parsed::Help => Err("help".to_string()),
        }
    }

    #[test]
    fn defaults_and_quick() {
        let options = parse_words(&[]).expect("defaults");
        assert_eq!(options.iterations, DEFAULT_ITERATIONS);
        let names: Vec<&str> = options
            .runtimes
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["husk", "runc", "crun"]);
        assert!(options.runtimes[0].1.ends_with(HUSK_RELEASE));
        assert_eq!(
            parse_words(&["--quick"]).expect("quick").iterations,
            QUICK_ITERATIONS
        );
    }

    #[test]
    fn iterations_and_runtimes_with_or_without_equals() {
        let options =
            parse_words(&["--iterations=7", "--runtimes", "a=/x/a,b=/y/b"]).expect("parse");
        assert_eq!(options.iterations, 7);
        assert_eq!(
            options.runtimes,
            [("a".into(), "/x/a".into()), ("b".into(), "/y/b".into())]
        );
        let options = parse_words(&["--runtimes=c=/z/c", "--iterations", "2"]).expect("parse");
        assert_eq!(options.iterations, 2);
        assert_eq!(options.runtimes, [("c".into(), "/z/c".into())]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_words(&["--iterations", "0"]).is_err());
        assert!(parse_words(&["--iterations"]).is_err());
        assert!(parse_words(&["--runtimes", "a b=/x"]).is_err());
        assert!(parse_words(&["--runtimes", "a=/x,a=/y"]).is_err());
        assert!(parse_words(&["--bogus"]).is_err());
    }
}

//! husk's own end-to-end tests: real containers, as root, driven through the
//! `husk` binary exactly as containerd or Podman drive runc.
//!
//! A custom harness (`harness = false`) because a test must be able to say
//! *skipped, and why* (no runc, no time namespace, not root) without that
//! counting as a pass. Output, one line per test:
//!
//! ```text
//! ok NAME
//! not ok NAME: reason
//! skip NAME: reason
//! N passed, M failed, K skipped
//! ```
//!
//! Arguments: substrings of test names to run (any of them), `--skip SUBSTR`
//! to leave tests out, `--list` to print the names. libtest flags that cargo
//! or scripts pass through (`--test-threads N`, `--nocapture`...) are
//! accepted and ignored: the tests always run one after the other.
//!
//! The husk binary is `$HUSK_BINARY`, else the release build, else the debug
//! build under target/x86_64-unknown-linux-gnu/.

mod attacks;
mod bad_input;
mod common;
mod differential;
mod exec;
mod lifecycle;
mod process;
mod security;
mod tracer;

use common::{Ctx, Outcome, Test};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

fn all_tests() -> Vec<Test> {
    let mut tests = Vec::new();
    tests.extend(bad_input::tests());
    tests.extend(lifecycle::tests());
    tests.extend(process::tests());
    tests.extend(security::tests());
    tests.extend(differential::tests());
    tests.extend(exec::tests());
    tests.extend(attacks::tests());
    tests
}

struct Selection {
    include: Vec<String>,
    exclude: Vec<String>,
    list: bool,
}

fn parse_args() -> Selection {
    // libtest options that take a value as the next argument.
    const WITH_VALUE: [&str; 6] = [
        "--test-threads",
        "--color",
        "--format",
        "--logfile",
        "-Z",
        "--report-time",
    ];
    let mut sel = Selection {
        include: Vec::new(),
        exclude: Vec::new(),
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--skip" {
            sel.exclude.extend(args.next());
        } else if arg == "--list" {
            sel.list = true;
        } else if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            sel.include.push(arg);
        }
    }
    sel
}

impl Selection {
    fn wants(&self, name: &str) -> bool {
        let included = self.include.is_empty() || self.include.iter().any(|f| name.contains(f));
        included && !self.exclude.iter().any(|f| name.contains(f))
    }
}

/// The husk binary under test.
fn husk_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("HUSK_BINARY") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("HUSK_BINARY={} is not a file", p.display()))
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let triple = target.join("x86_64-unknown-linux-gnu");
    for profile in ["release", "debug"] {
        let p = triple.join(profile).join("husk");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "no husk binary: set HUSK_BINARY or run `cargo build --release -p runtime-cli` (looked in {})",
        triple.display()
    ))
}

/// Why no test can run at all, if so.
fn global_skip() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (real containers, cgroups, mounts)".into());
    }
    if !std::path::Path::new(conformance::bundle::BUSYBOX).is_file() {
        return Some(format!(
            "{} is missing (apt-get install busybox-static)",
            conformance::bundle::BUSYBOX
        ));
    }
    None
}

/// One line, whatever the reason contains.
fn one_line(reason: &str) -> String {
    reason
        .split('\n')
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn main() {
    let sel = parse_args();
    let tests: Vec<Test> = all_tests()
        .into_iter()
        .filter(|t| sel.wants(t.name))
        .collect();
    if sel.list {
        for t in &tests {
            println!("{}: test", t.name);
        }
        return;
    }
    let started = Instant::now();
    let setup = match global_skip() {
        Some(why) => Err(Outcome::Skip(why)),
        None => husk_binary()
            .map_err(Outcome::Fail)
            .and_then(|husk| common::Suite::new(husk).map_err(Outcome::Fail)),
    };
    if let Ok(suite) = &setup {
        println!("# husk binary: {}", suite.husk.display());
        println!("# work dir: {}", suite.base.display());
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (index, test) in tests.iter().enumerate() {
        let verdict = match &setup {
            Err(o) => Err(o.clone()),
            Ok(suite) => match Ctx::new(suite, test.name, index) {
                Err(e) => Err(Outcome::Fail(format!("test setup: {e}"))),
                Ok(mut ctx) => {
                    let verdict = catch_unwind(AssertUnwindSafe(|| (test.run)(&mut ctx)))
                        .unwrap_or_else(|panic| {
                            let msg = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_else(|| "unknown panic".into());
                            Err(Outcome::Fail(format!("panicked: {msg}")))
                        });
                    // Cleanup runs here, whatever the verdict; what it could
                    // not undo fails the test.
                    let notes = ctx.take_notes();
                    let leftover = ctx.cleanup();
                    for note in notes {
                        println!("  # {}", one_line(&note));
                    }
                    match (verdict, leftover) {
                        (v, None) => v,
                        (Ok(()) | Err(Outcome::Skip(_)), Some(l)) => {
                            Err(Outcome::Fail(format!("cleanup: {l}")))
                        }
                        (Err(Outcome::Fail(r)), Some(l)) => {
                            Err(Outcome::Fail(format!("{r}; cleanup: {l}")))
                        }
                    }
                }
            },
        };
        match verdict {
            Ok(()) => {
                passed += 1;
                println!("ok {}", test.name);
            }
            Err(Outcome::Fail(reason)) => {
                failed += 1;
                println!("not ok {}: {}", test.name, one_line(&reason));
            }
            Err(Outcome::Skip(reason)) => {
                skipped += 1;
                println!("skip {}: {}", test.name, one_line(&reason));
            }
        }
    }
    if let Ok(suite) = setup {
        suite.finish();
    }
    println!("# total time {:.1}s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        std::process::exit(1);
    }
}

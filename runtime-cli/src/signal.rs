//! Signal names and numbers as `kill` accepts them: KILL, SIGKILL, 9.

use anyhow::{bail, Result};

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parse a signal given by name (with or without SIG, any case) or number.
pub fn parse(text: &str) -> Result<i32> {
    if let Ok(number) = text.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&number) {
            return Ok(number);
        }
        bail!("unknown signal {text:?}");
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(offset) = name.strip_prefix("RTMIN+") {
        return realtime(libc::SIGRTMIN(), offset, 1, text);
    }
    if let Some(offset) = name.strip_prefix("RTMAX-") {
        return realtime(libc::SIGRTMAX(), offset, -1, text);
    }
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, number)| *number)
        .ok_or_else(|| anyhow::anyhow!("unknown signal {text:?}"))
}

fn realtime(base: i32, offset: &str, direction: i32, text: &str) -> Result<i32> {
    let offset: i32 = offset
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown signal {text:?}"))?;
    let number = base + direction * offset;
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&number) {
        Ok(number)
    } else {
        bail!("unknown signal {text:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_numbers_and_prefixes() {
        assert_eq!(parse("KILL").ok(), Some(9));
        assert_eq!(parse("SIGKILL").ok(), Some(9));
        assert_eq!(parse("sigterm").ok(), Some(15));
        assert_eq!(parse("10").ok(), Some(10));
        assert_eq!(parse("RTMIN+1").ok(), Some(libc::SIGRTMIN() + 1));
        for bad in ["FOO", "SIGFOO", "0", "999", "-1", "RTMIN+99"] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}

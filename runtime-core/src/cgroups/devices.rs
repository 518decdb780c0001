//! Device access rules (linux.resources.devices): one model, two enforcers.
//!
//! The rules of the config are validated into [`DeviceRule`]s, then the
//! devices every container needs (the ones husk creates in /dev) and the
//! config's `linux.devices` are appended as allow rules, as runc does.
//!
//! What a list of rules means (the *policy*): for each access bit asked for
//! (read, write, mknod), the last rule that matches the device and has that
//! bit decides; a bit that no rule mentions gets the default. The default is
//! what the last "all devices, rwm" rule says (everything before such a rule
//! is moot), and allow when there is none: a new cgroup inherits its parent's
//! permissions, and the parent of a container is normally unrestricted.
//!
//! - cgroup v1 (and hybrid, where the devices controller is a v1 one): the
//!   rules are written to devices.allow / devices.deny. The kernel's v1
//!   semantics are not "last match wins" (a deny in deny-by-default mode only
//!   removes an *identical* exception, so `deny c 1:5` after `allow c *:*`
//!   does nothing). [`V1Plan`] therefore runs the planned writes through a
//!   model of the kernel's rules and refuses a config that the v1 controller
//!   would enforce more permissively than the policy says: a device rule is
//!   a security boundary and is never dropped silently.
//! - cgroup v2: an eBPF program generated from the policy (see `bpf`).

use std::collections::BTreeSet;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// Access bits, with the values the kernel's cgroup device eBPF context uses
/// (BPF_DEVCG_ACC_*), so the program can use them as they are.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Which devices a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

impl DeviceKind {
    fn letter(self) -> char {
        match self {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        }
    }

    fn covers(self, kind: DeviceKind) -> bool {
        self == DeviceKind::All || self == kind
    }
}

/// One validated rule. `None` major/minor: any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// ACC_* bits, never 0.
    pub access: u8,
}

impl DeviceRule {
    const fn allow_char(major: u32, minor: Option<u32>) -> Self {
        DeviceRule {
            allow: true,
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access: ACC_ALL,
        }
    }

    /// "all devices, every access": resets the default.
    fn is_reset(&self) -> bool {
        self.kind == DeviceKind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }

    fn matches(&self, kind: DeviceKind, major: u32, minor: u32) -> bool {
        self.kind.covers(kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }

    /// The rule in the kernel's v1 syntax, e.g. "c 1:3 rwm", "b *:* m".
    pub fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            num(self.major),
            num(self.minor),
            access_text(self.access)
        )
    }
}

impl std::fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.allow { "allow" } else { "deny" };
        write!(f, "{verb} {}", self.v1_line())
    }
}

pub fn access_text(access: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if access & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// The devices husk creates in every container's /dev (plus the console and
/// the pty slaves), always allowed, as runc does; like runc also
/// /dev/net/tun.
pub const DEFAULT_ALLOWED: [DeviceRule; 10] = [
    DeviceRule::allow_char(10, Some(200)), // net/tun
    DeviceRule::allow_char(1, Some(3)),    // null
    DeviceRule::allow_char(1, Some(5)),    // zero
    DeviceRule::allow_char(1, Some(7)),    // full
    DeviceRule::allow_char(1, Some(8)),    // random
    DeviceRule::allow_char(1, Some(9)),    // urandom
    DeviceRule::allow_char(5, Some(0)),    // tty
    DeviceRule::allow_char(5, Some(1)),    // console
    DeviceRule::allow_char(5, Some(2)),    // ptmx
    DeviceRule::allow_char(136, None),     // /dev/pts/*
];

fn bad(field: &str, reason: impl std::fmt::Display) -> Error {
    Error::config(format!("{field}: {reason}"))
}

/// A major or minor number: absent or -1 means any.
fn number(field: &str, what: &str, v: Option<i64>) -> Result<Option<u32>> {
    match v {
        None | Some(-1) => Ok(None),
        // The eBPF program compares with a signed 32-bit immediate; real
        // numbers are far smaller (12-bit majors, 20-bit minors).
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(u32::try_from(n).ok()),
        Some(n) => Err(bad(field, format!("{what} {n} is out of range"))),
    }
}

/// "rwm" letters → ACC_* bits; absent or empty means all (as runc).
fn parse_access(field: &str, access: Option<&str>) -> Result<u8> {
    let Some(text) = access.filter(|a| !a.is_empty()) else {
        return Ok(ACC_ALL);
    };
    let mut bits = 0;
    for c in text.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => {
                return Err(bad(
                    field,
                    format!("access {text:?} has {other:?}; only r, w and m are allowed"),
                ))
            }
        };
    }
    Ok(bits)
}

/// Validate one linux.resources.devices entry (`index` for the message).
pub fn parse_rule(index: usize, r: &LinuxDeviceCgroup) -> Result<DeviceRule> {
    let field = format!("linux.resources.devices[{index}]");
    let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => DeviceKind::All,
        LinuxDeviceType::C => DeviceKind::Char,
        LinuxDeviceType::B => DeviceKind::Block,
        other => {
            return Err(bad(
                &field,
                format!("type {:?} is not a, c or b", other.as_str()),
            ))
        }
    };
    Ok(DeviceRule {
        allow: r.allow(),
        kind,
        major: number(&field, "major", r.major())?,
        minor: number(&field, "minor", r.minor())?,
        access: parse_access(&field, r.access().as_deref())?,
    })
}

/// The allow rule for one linux.devices entry; None for a FIFO (not a
/// device the devices controller knows).
fn device_rule(index: usize, d: &LinuxDevice) -> Result<Option<DeviceRule>> {
    let field = format!("linux.devices[{index}]");
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
        LinuxDeviceType::B => DeviceKind::Block,
        LinuxDeviceType::P => return Ok(None),
        LinuxDeviceType::A => return Err(bad(&field, "type \"a\" is not a device node type")),
    };
    let num = |what, v: i64| match number(&field, what, Some(v))? {
        Some(n) => Ok(n),
        None => Err(bad(&field, format!("{what} {v} is out of range"))),
    };
    Ok(Some(DeviceRule {
        allow: true,
        kind,
        major: Some(num("major", d.major())?),
        minor: Some(num("minor", d.minor())?),
        access: ACC_ALL,
    }))
}

/// The full rule list of a container: the default devices go right after
/// the config's last "all devices" reset (usually the leading deny-all), so
/// the config's own later rules still apply in order (runtime-spec: "in the
/// listed order" — a configured deny of /dev/zero wins); `linux.devices` come
/// last, so those stay usable whatever the rules.
pub fn container_rules(
    rules: &[LinuxDeviceCgroup],
    devices: &[LinuxDevice],
) -> Result<Vec<DeviceRule>> {
    let parsed = rules
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(i, r))
        .collect::<Result<Vec<_>>>()?;
    let after_reset = parsed
        .iter()
        .rposition(DeviceRule::is_reset)
        .map_or(0, |i| i + 1);
    let mut out = Vec::with_capacity(parsed.len() + DEFAULT_ALLOWED.len() + devices.len());
    out.extend_from_slice(&parsed[..after_reset]);
    out.extend(DEFAULT_ALLOWED);
    out.extend_from_slice(&parsed[after_reset..]);
    for (i, d) in devices.iter().enumerate() {
        out.extend(device_rule(i, d)?);
    }
    // mknod of any node, as runc allows (CAP_MKNOD still gates it). Last:
    // v1 cannot take back part of a wildcard, so no later deny may follow.
    out.extend(MKNOD_ANY);
    Ok(out)
}

const MKNOD_ANY: [DeviceRule; 2] = [
    DeviceRule {
        allow: true,
        kind: DeviceKind::Char,
        major: None,
        minor: None,
        access: ACC_MKNOD,
    },
    DeviceRule {
        allow: true,
        kind: DeviceKind::Block,
        major: None,
        minor: None,
        access: ACC_MKNOD,
    },
];

/// What a rule list means, ready to enforce: a default and the rules that
/// come after the last reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub default_allow: bool,
    pub rules: Vec<DeviceRule>,
}

impl Policy {
    pub fn new(rules: &[DeviceRule]) -> Policy {
        let last_reset = rules.iter().rposition(DeviceRule::is_reset);
        let (default_allow, rest) = match last_reset {
            Some(i) => (rules[i].allow, &rules[i + 1..]),
            None => (true, rules),
        };
        Policy {
            default_allow,
            rules: rest.to_vec(),
        }
    }

    /// Whether `access` (ACC_* bits) to the device is allowed.
    pub fn permits(&self, kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
        let mut undecided = access;
        for r in self.rules.iter().rev() {
            if undecided == 0 {
                break;
            }
            if !r.matches(kind, major, minor) {
                continue;
            }
            if !r.allow && undecided & r.access != 0 {
                return false;
            }
            undecided &= !r.access;
        }
        undecided == 0 || self.default_allow
    }
}

/// Which v1 file a rule goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1File {
    Allow,
    Deny,
}

impl V1File {
    pub fn name(self) -> &'static str {
        match self {
            V1File::Allow => "devices.allow",
            V1File::Deny => "devices.deny",
        }
    }
}

/// The v1 writes that enforce a policy, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Plan {
    pub writes: Vec<(V1File, String)>,
}

/// The kernel's v1 device cgroup state, as security/device_cgroup.c keeps
/// it: a default behaviour and a list of exceptions, where an exception
/// with the same type and numbers as a new one is merged or trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1State {
    pub default_allow: bool,
    /// (kind Char/Block, major, minor) → access bits.
    pub exceptions: Vec<(DeviceKind, Option<u32>, Option<u32>, u8)>,
}

impl V1State {
    /// An unrestricted cgroup ("a *:* rwm").
    pub fn allow_all() -> V1State {
        V1State {
            default_allow: true,
            exceptions: Vec::new(),
        }
    }

    /// Apply one write the way the kernel does (parent permission checks
    /// aside: those fail loudly with EPERM).
    fn write(&mut self, file: V1File, rule: &DeviceRule) {
        let allow = file == V1File::Allow;
        if rule.kind == DeviceKind::All {
            // Type "a" resets, whatever the rest of the line says.
            self.default_allow = allow;
            self.exceptions.clear();
            return;
        }
        let key = (rule.kind, rule.major, rule.minor);
        let pos = self.exceptions.iter().position(|e| (e.0, e.1, e.2) == key);
        // An allow in allow mode, or a deny in deny mode, removes access
        // from an identical exception; otherwise it adds an exception.
        if allow == self.default_allow {
            if let Some(i) = pos {
                self.exceptions[i].3 &= !rule.access;
                if self.exceptions[i].3 == 0 {
                    self.exceptions.remove(i);
                }
            }
        } else if let Some(i) = pos {
            self.exceptions[i].3 |= rule.access;
        } else {
            self.exceptions
                .push((rule.kind, rule.major, rule.minor, rule.access));
        }
    }

    /// The kernel's permission check for one access.
    pub fn permits(&self, kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
        let hits = |e: &&(DeviceKind, Option<u32>, Option<u32>, u8)| {
            e.0 == kind && e.1.is_none_or(|m| m == major) && e.2.is_none_or(|m| m == minor)
        };
        if self.default_allow {
            // Denied when any exception shares any bit.
            !self
                .exceptions
                .iter()
                .filter(hits)
                .any(|e| e.3 & access != 0)
        } else {
            // Allowed only when one exception covers every bit.
            self.exceptions
                .iter()
                .filter(hits)
                .any(|e| access & !e.3 == 0)
        }
    }

    /// Parse devices.list. In allow mode the kernel shows only
    /// "a *:* rwm" (its deny exceptions are not listed), so that state is
    /// taken as unrestricted; callers reset it before relying on it.
    pub fn parse_list(text: &str) -> Option<V1State> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.iter().any(|l| l.starts_with("a ")) {
            return Some(V1State::allow_all());
        }
        let mut st = V1State {
            default_allow: false,
            exceptions: Vec::new(),
        };
        for l in lines {
            let r = parse_v1_line(l)?;
            st.exceptions.push((r.kind, r.major, r.minor, r.access));
        }
        Some(st)
    }
}

/// "c 1:3 rwm" → rule (allow).
fn parse_v1_line(line: &str) -> Option<DeviceRule> {
    let mut it = line.split_whitespace();
    let kind = match it.next()? {
        "a" => DeviceKind::All,
        "c" => DeviceKind::Char,
        "b" => DeviceKind::Block,
        _ => return None,
    };
    let (maj, min) = it.next()?.split_once(':')?;
    let num = |s: &str| -> Option<Option<u32>> {
        if s == "*" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let access = parse_access("", it.next()).ok()?;
    Some(DeviceRule {
        allow: true,
        kind,
        major: num(maj)?,
        minor: num(min)?,
        access,
    })
}

/// Split a rule of type "a" that is not a reset into its char and block
/// halves: v1 treats any "a" line as a reset.
fn v1_rules(r: &DeviceRule) -> Vec<DeviceRule> {
    if r.kind != DeviceKind::All {
        return vec![*r];
    }
    [DeviceKind::Char, DeviceKind::Block]
        .into_iter()
        .map(|kind| DeviceRule { kind, ..*r })
        .collect()
}

fn file_of(r: &DeviceRule) -> V1File {
    if r.allow {
        V1File::Allow
    } else {
        V1File::Deny
    }
}

impl V1Plan {
    /// The writes that take a cgroup from `current` (its devices.list) to
    /// `policy`, checked against the kernel model. When both are
    /// deny-by-default only the differences are written, so a running
    /// container never loses access it keeps (update); otherwise the cgroup is
    /// reset first ("a" to devices.deny or devices.allow) and every rule is
    /// written in order.
    pub fn new(policy: &Policy, current: &V1State) -> Result<V1Plan> {
        let mut target = V1State::allow_all();
        let mut writes = Vec::new();
        let reset = if policy.default_allow {
            V1File::Allow
        } else {
            V1File::Deny
        };
        writes.push((reset, "a".to_owned()));
        target.write(reset, &reset_rule(policy.default_allow));
        for r in &policy.rules {
            for v in v1_rules(r) {
                target.write(file_of(&v), &v);
                writes.push((file_of(&v), v.v1_line()));
            }
        }
        check_v1(policy, &target)?;
        if !current.default_allow && !target.default_allow {
            writes = diff_writes(current, &target);
        }
        Ok(V1Plan { writes })
    }
}

fn reset_rule(allow: bool) -> DeviceRule {
    DeviceRule {
        allow,
        kind: DeviceKind::All,
        major: None,
        minor: None,
        access: ACC_ALL,
    }
}

/// deny-mode to deny-mode: add what is missing first, then take away what
/// is no longer allowed (exact-match removals, which is what the kernel does
/// for a deny in deny mode).
fn diff_writes(current: &V1State, target: &V1State) -> Vec<(V1File, String)> {
    let key = |e: &(DeviceKind, Option<u32>, Option<u32>, u8)| (e.0, e.1, e.2);
    let bits_in = |st: &V1State, k| {
        st.exceptions
            .iter()
            .filter(|e| key(e) == k)
            .fold(0u8, |acc, e| acc | e.3)
    };
    let line = |k: (DeviceKind, Option<u32>, Option<u32>), access| {
        DeviceRule {
            allow: true,
            kind: k.0,
            major: k.1,
            minor: k.2,
            access,
        }
        .v1_line()
    };
    let mut out = Vec::new();
    for e in &target.exceptions {
        let missing = e.3 & !bits_in(current, key(e));
        if missing != 0 {
            out.push((V1File::Allow, line(key(e), missing)));
        }
    }
    for e in &current.exceptions {
        let extra = e.3 & !bits_in(target, key(e));
        if extra != 0 {
            out.push((V1File::Deny, line(key(e), extra)));
        }
    }
    out
}

/// The kernel state `v1` must not permit anything the policy denies. Checked
/// on every combination of the numbers the rules mention (plus one they do
/// not) and the accesses the kernel asks about (r, w, rw, m).
fn check_v1(policy: &Policy, v1: &V1State) -> Result<()> {
    const OTHER: u32 = u32::MAX - 1;
    let mut majors: BTreeSet<u32> = policy.rules.iter().filter_map(|r| r.major).collect();
    let mut minors: BTreeSet<u32> = policy.rules.iter().filter_map(|r| r.minor).collect();
    majors.insert(OTHER);
    minors.insert(OTHER);
    let accesses = [ACC_READ, ACC_WRITE, ACC_READ | ACC_WRITE, ACC_MKNOD];
    for kind in [DeviceKind::Char, DeviceKind::Block] {
        for &major in &majors {
            for &minor in &minors {
                for access in accesses {
                    if v1.permits(kind, major, minor, access)
                        && !policy.permits(kind, major, minor, access)
                    {
                        return Err(inexpressible(policy, kind, major, minor, access));
                    }
                }
            }
        }
    }
    Ok(())
}

fn inexpressible(policy: &Policy, kind: DeviceKind, major: u32, minor: u32, access: u8) -> Error {
    let rule = policy
        .rules
        .iter()
        .rev()
        .find(|r| !r.allow && r.matches(kind, major, minor) && r.access & access != 0);
    let show = |n: u32| {
        if n == u32::MAX - 1 {
            "N".to_owned()
        } else {
            n.to_string()
        }
    };
    let what = format!(
        "{} {}:{} {}",
        kind.letter(),
        show(major),
        show(minor),
        access_text(access)
    );
    let why = match rule {
        Some(r) => format!(
            "the cgroup v1 devices controller cannot enforce \"{r}\" after a broader allow \
             rule (it would still permit {what}); list the allowed devices explicitly instead"
        ),
        None => {
            format!("the cgroup v1 devices controller would permit {what}, which the rules deny")
        }
    };
    Error::config(format!("linux.resources.devices: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).expect("rules json")
    }

    fn parse(json: &str) -> Result<Vec<DeviceRule>> {
        rules(json)
            .iter()
            .enumerate()
            .map(|(i, r)| parse_rule(i, r))
            .collect()
    }

    const C: DeviceKind = DeviceKind::Char;
    const B: DeviceKind = DeviceKind::Block;
    const RW: u8 = ACC_READ | ACC_WRITE;

    #[test]
    fn cgroups_devices_bad_rules_are_config_errors() {
        for (json, needle) in [
            (r#"[{"allow": true, "type": "u", "access": "rwm"}]"#, "type"),
            (r#"[{"allow": true, "type": "p"}]"#, "type"),
            (
                r#"[{"allow": true, "type": "c", "access": "rwx"}]"#,
                "access",
            ),
            (r#"[{"allow": true, "type": "c", "access": "R"}]"#, "access"),
            (r#"[{"allow": true, "type": "c", "major": -2}]"#, "major"),
            (
                r#"[{"allow": true, "type": "c", "minor": 99999999999}]"#,
                "minor",
            ),
        ] {
            let e = parse(json).expect_err(json);
            assert!(matches!(e, Error::Config(_)), "{json}: {e:?}");
            let text = e.to_string();
            assert!(text.contains("linux.resources.devices[0]"), "{text}");
            assert!(text.contains(needle), "{text}");
        }
        let ok =
            parse(r#"[{"allow": false}, {"allow": true, "type": "c", "major": -1, "access": ""}]"#)
                .expect("valid");
        assert_eq!(ok[0].kind, DeviceKind::All);
        assert_eq!(ok[0].access, ACC_ALL);
        assert_eq!(ok[1].major, None);
        assert_eq!(ok[1].access, ACC_ALL);
    }

    #[test]
    fn cgroups_devices_policy_last_match_per_bit() {
        let r = parse(
            r#"[{"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                {"allow": false},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "w"},
                {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                {"allow": false, "type": "c", "major": 136, "minor": 7, "access": "w"},
                {"allow": true, "type": "a", "access": "m"}]"#,
        )
        .expect("rules");
        let p = Policy::new(&r);
        assert!(!p.default_allow);
        // The rule before the reset is moot.
        assert!(!p.permits(C, 1, 5, ACC_READ));
        // r and w from two rules make rw.
        assert!(p.permits(C, 1, 3, RW));
        assert!(!p.permits(B, 1, 3, ACC_READ));
        assert!(p.permits(C, 136, 2, RW));
        assert!(p.permits(C, 136, 7, ACC_READ));
        assert!(!p.permits(C, 136, 7, ACC_WRITE));
        assert!(!p.permits(C, 136, 7, RW));
        // mknod of anything, nothing else.
        assert!(p.permits(B, 8, 0, ACC_MKNOD));
        assert!(!p.permits(B, 8, 0, ACC_READ));
        // No reset: default allow.
        let p = Policy::new(
            &parse(r#"[{"allow": false, "type": "c", "major": 1, "minor": 5}]"#).expect("rules"),
        );
        assert!(p.default_allow);
        assert!(!p.permits(C, 1, 5, ACC_READ));
        assert!(p.permits(C, 1, 3, RW));
    }

    #[test]
    fn cgroups_devices_defaults_and_linux_devices_appended() {
        let devs: Vec<LinuxDevice> = serde_json::from_str(
            r#"[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}]"#,
        )
        .expect("devices");
        let all = container_rules(&rules(r#"[{"allow": false, "access": "rwm"}]"#), &devs)
            .expect("rules");
        assert_eq!(all.len(), 1 + DEFAULT_ALLOWED.len() + 2 + MKNOD_ANY.len());
        let p = Policy::new(&all);
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (136, 4),
        ] {
            assert!(p.permits(C, maj, min, RW), "{maj}:{min}");
        }
        assert!(p.permits(C, 10, 229, RW));
        assert!(p.permits(B, 8, 0, ACC_READ));
        assert!(!p.permits(C, 10, 237, ACC_READ));
        // mknod of any node is allowed (as runc; CAP_MKNOD still gates it),
        // opening one is not.
        assert!(p.permits(C, 1, 1, ACC_MKNOD));
        assert!(!p.permits(C, 1, 1, ACC_READ));
        let bad: Vec<LinuxDevice> =
            serde_json::from_str(r#"[{"path": "/dev/x", "type": "c", "major": -1, "minor": 0}]"#)
                .expect("devices");
        let e = container_rules(&[], &bad).expect_err("major -1");
        assert!(e.to_string().contains("linux.devices[0]"), "{e}");
    }

    #[test]
    fn cgroups_devices_v1_plan_and_kernel_model() {
        let all = container_rules(
            &rules(
                r#"[{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "a", "major": 10, "minor": 200, "access": "rw"}]"#,
            ),
            &[],
        )
        .expect("rules");
        let plan = V1Plan::new(&Policy::new(&all), &V1State::allow_all()).expect("plan");
        assert_eq!(plan.writes[0], (V1File::Deny, "a".to_owned()));
        // The defaults follow the reset; type "a" that is not a reset is
        // split for v1 and comes after them, in the config's order.
        let has = |line: &str| plan.writes.contains(&(V1File::Allow, line.to_owned()));
        for line in [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 136:* rwm",
            "b 10:200 rw",
        ] {
            assert!(has(line), "{line} missing from {:?}", plan.writes);
        }
        let pos = |line: &str| plan.writes.iter().position(|w| w.1 == line);
        assert!(pos("c 1:3 rwm") < pos("b 10:200 rw"), "{:?}", plan.writes);

        // A deny after a wildcard allow cannot be enforced by v1: refused.
        let r = parse(
            r#"[{"allow": false}, {"allow": true, "type": "c", "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 5}]"#,
        )
        .expect("rules");
        let e = V1Plan::new(&Policy::new(&r), &V1State::allow_all()).expect_err("inexpressible");
        assert!(matches!(e, Error::Config(_)));
        assert!(e.to_string().contains("deny c 1:5 rwm"), "{e}");
        // The same deny in allow mode is an exception v1 enforces.
        let r = parse(r#"[{"allow": false, "type": "c", "major": 1, "minor": 5}]"#).expect("rules");
        let plan = V1Plan::new(&Policy::new(&r), &V1State::allow_all()).expect("plan");
        assert_eq!(
            plan.writes,
            vec![
                (V1File::Allow, "a".to_owned()),
                (V1File::Deny, "c 1:5 rwm".to_owned())
            ]
        );
    }

    #[test]
    fn cgroups_devices_v1_update_writes_only_differences() {
        let current =
            V1State::parse_list("c 1:3 rwm\nc 1:5 rwm\nc 136:* rw\nb 8:0 r\n").expect("list");
        assert!(!current.default_allow);
        let r = parse(
            r#"[{"allow": false},
                {"allow": true, "type": "c", "major": 1, "minor": 3},
                {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                {"allow": true, "type": "b", "major": 8, "minor": 16, "access": "r"}]"#,
        )
        .expect("rules");
        let plan = V1Plan::new(&Policy::new(&r), &current).expect("plan");
        assert_eq!(
            plan.writes,
            vec![
                (V1File::Allow, "c 136:* m".to_owned()),
                (V1File::Allow, "b 8:16 r".to_owned()),
                (V1File::Deny, "c 1:5 rwm".to_owned()),
                (V1File::Deny, "b 8:0 r".to_owned()),
            ]
        );
        assert_eq!(
            V1State::parse_list("a *:* rwm\n"),
            Some(V1State::allow_all())
        );
    }
}

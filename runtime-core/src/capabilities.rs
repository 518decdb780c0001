//! The five capability sets of process.capabilities.
//!
//! Applied in two steps around the user switch: the bounding set is reduced
//! while we still have CAP_SETPCAP, then (after setuid with keep-caps) the
//! effective, inheritable, permitted and ambient sets are set exactly.

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

/// The kernel's capabilities named by `list`; capabilities this kernel does
/// not know are skipped, as runc skips them.
fn to_kernel_set(list: Option<&Capabilities>) -> Result<CapsHashSet> {
    let supported = caps::runtime::thread_all_supported();
    let mut set = CapsHashSet::new();
    for cap in list.into_iter().flatten() {
        let name = format!("CAP_{cap}");
        let cap: Capability = name.parse().map_err(|_| {
            Error::config(format!("process.capabilities: unknown capability {name}"))
        })?;
        if supported.contains(&cap) {
            set.insert(cap);
        }
    }
    Ok(set)
}

/// Drop from the bounding set every capability the config does not list.
pub fn limit_bounding(caps_config: &LinuxCapabilities) -> Result<()> {
    let keep = to_kernel_set(caps_config.bounding().as_ref())?;
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                Error::step(format!("drop {cap} from the bounding set"), e.to_string())
            })?;
        }
    }
    Ok(())
}

/// Set the effective, inheritable, permitted and ambient sets exactly.
pub fn apply_sets(caps_config: &LinuxCapabilities) -> Result<()> {
    let effective = to_kernel_set(caps_config.effective().as_ref())?;
    let inheritable = to_kernel_set(caps_config.inheritable().as_ref())?;
    let permitted = to_kernel_set(caps_config.permitted().as_ref())?;
    let ambient = to_kernel_set(caps_config.ambient().as_ref())?;
    // Effective must stay a subset of permitted at every step: set it first
    // (we still hold everything), then narrow permitted.
    set(CapSet::Effective, &effective)?;
    set(CapSet::Inheritable, &inheritable)?;
    set(CapSet::Permitted, &permitted)?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::step("clear ambient capabilities", e.to_string()))?;
    for cap in ambient {
        // Raising an ambient capability needs it permitted and inheritable;
        // runc ignores the ones that are not, and so do we.
        if permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| Error::step(format!("raise ambient {cap}"), e.to_string()))?;
        }
    }
    Ok(())
}

fn set(which: CapSet, value: &CapsHashSet) -> Result<()> {
    caps::set(None, which, value)
        .map_err(|e| Error::step(format!("set {which:?} capabilities"), e.to_string()))
}

/// Check every capability name before anything is created, so a typo is a
/// config error, not a failure half way through create.
pub fn validate(caps_config: &LinuxCapabilities) -> Result<()> {
    for list in [
        caps_config.bounding(),
        caps_config.effective(),
        caps_config.inheritable(),
        caps_config.permitted(),
        caps_config.ambient(),
    ] {
        to_kernel_set(list.as_ref())?;
    }
    Ok(())
}

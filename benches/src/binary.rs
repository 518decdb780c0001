//! Size and linkage of an executable.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

const PT_INTERP: u32 = 3;
/// Program headers sit near the start of the file; this much is enough.
const HEADER_BYTES: u64 = 64 * 1024;

pub struct BinaryInfo {
    pub size_kib: u64,
    pub linkage: Linkage,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    Static,
    /// Has an ELF interpreter (the dynamic loader).
    Dynamic,
    /// A script, or not a 64-bit little-endian ELF file.
    NotElf,
}

impl Linkage {
    pub fn label(self) -> &'static str {
        match self {
            Linkage::Static => "static",
            Linkage::Dynamic => "dynamic",
            Linkage::NotElf => "not ELF",
        }
    }
}

pub fn inspect(path: &Path) -> io::Result<BinaryInfo> {
    let file = File::open(path)?;
    let size_kib = file.metadata()?.len().div_ceil(1024);
    let mut head = Vec::new();
    file.take(HEADER_BYTES).read_to_end(&mut head)?;
    Ok(BinaryInfo {
        size_kib,
        linkage: linkage(&head),
    })
}

/// Dynamic if a 64-bit little-endian ELF image has a PT_INTERP program header.
fn linkage(elf: &[u8]) -> Linkage {
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Linkage::NotElf;
    }
    let (Some(offset), Some(entry_size), Some(count)) = (
        read_u64(elf, 0x20),
        read_u16(elf, 0x36),
        read_u16(elf, 0x38),
    ) else {
        return Linkage::NotElf;
    };
    let interpreter = (0..u64::from(count))
        .filter_map(|index| {
            index
                .checked_mul(u64::from(entry_size))?
                .checked_add(offset)
        })
        .filter_map(|at| usize::try_from(at).ok())
        .any(|at| read_u32(elf, at) == Some(PT_INTERP));
    if interpreter {
        Linkage::Dynamic
    } else {
        Linkage::Static
    }
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 LE header with `types` as program header types (56-byte entries at 64).
    fn elf_with(types: &[u32]) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56 * types.len()];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&u16::try_from(types.len()).expect("few").to_le_bytes());
        for (index, kind) in types.iter().enumerate() {
            let at = 64 + 56 * index;
            elf[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        }
        elf
    }

    #[test]
    fn linkage_from_program_headers() {
        assert!(linkage(&elf_with(&[6, PT_INTERP, 1])) == Linkage::Dynamic);
        assert!(linkage(&elf_with(&[1, 1])) == Linkage::Static);
        assert!(linkage(b"#!/bin/sh\n") == Linkage::NotElf);
        assert!(linkage(&elf_with(&[PT_INTERP])[..66]) == Linkage::Static);
    }
}

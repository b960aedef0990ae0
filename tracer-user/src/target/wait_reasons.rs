//! `g.waitreason` code → the runtime's own string, read from the target's
//! `runtime.waitReasonStrings` array so it is exact for its Go version (the
//! enum was extended in 1.24 and 1.25 and reordered in 1.26).

use super::elf::{ElfImage, SymbolInfo};
use super::memory::Memory;

/// The runtime's `waitReasonStrings`, indexed by `waitReason` code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitReasons {
    names: Vec<String>,
}

/// `runtime.waitReasonStrings`.
pub(crate) const SYMBOL: &str = "runtime.waitReasonStrings";
/// A Go string header: `{ptr u64, len u64}`.
const HEADER: usize = 16;
/// Codes are `uint8`.
const MAX_CODES: usize = 256;
/// No wait reason string is anywhere near this long.
const MAX_NAME: u64 = 256;

impl WaitReasons {
    /// Builds the table from the strings in code order. Code 0 is
    /// `waitReasonZero` and must be `""`.
    pub fn from_names(names: Vec<String>) -> Result<Self, &'static str> {
        if names.len() > MAX_CODES {
            return Err("more than 256 wait reasons");
        }
        match names.first() {
            None => Err("empty table"),
            Some(zero) if !zero.is_empty() => Err("wait reason 0 is not the empty string"),
            Some(_) => Ok(WaitReasons { names }),
        }
    }

    /// The runtime's string for `code` (`""` for 0), `None` if out of range.
    pub fn name(&self, code: u8) -> Option<&str> {
        self.names.get(usize::from(code)).map(String::as_str)
    }

    /// The code whose string is `name`, if any.
    pub fn code_of(&self, name: &str) -> Option<u8> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| u8::try_from(i).ok())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// `(code, string)` pairs in code order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &str)> + '_ {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u8, n.as_str()))
    }
}

/// Splits the array's bytes into `(ptr, len)` string headers.
pub(crate) fn string_headers(bytes: &[u8]) -> Vec<(u64, u64)> {
    bytes
        .chunks_exact(HEADER)
        .map(|h| {
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&h[i..i + 8]);
                u64::from_le_bytes(w)
            };
            (word(0), word(8))
        })
        .collect()
}

fn decode_name(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

/// Reads the table from the executable file. Pointers are link-time addresses
/// (for a PIE the file holds them too, or a `R_X86_64_RELATIVE` relocation
/// does); they must land in file-backed sections.
pub(crate) fn from_file(elf: &ElfImage<'_>, table: SymbolInfo) -> Result<WaitReasons, String> {
    let bytes = elf
        .bytes_at(table.address, table.size)
        .ok_or("the array is not stored in the file")?;
    let mut names = Vec::new();
    for (index, (mut ptr, len)) in string_headers(bytes).into_iter().enumerate() {
        if len == 0 {
            names.push(String::new());
            continue;
        }
        if len > MAX_NAME {
            return Err(format!("implausible string length {len} at index {index}"));
        }
        if ptr == 0 && elf.pie {
            let slot = table.address + (index * HEADER) as u64;
            ptr = elf.relative_relocation_at(slot).unwrap_or(0);
        }
        let name = elf
            .bytes_at(ptr, len)
            .and_then(decode_name)
            .ok_or_else(|| {
                format!("string {index} (at {ptr:#x}) is not in a file-backed section")
            })?;
        names.push(name);
    }
    WaitReasons::from_names(names).map_err(str::to_string)
}

/// Reads the table from the live process (pointers are runtime addresses).
pub(crate) fn from_memory(
    memory: &dyn Memory,
    table: SymbolInfo,
    load_bias: u64,
) -> Result<WaitReasons, String> {
    let size = usize::try_from(table.size).map_err(|_| "array too large".to_string())?;
    if size > MAX_CODES * HEADER {
        return Err(format!("array of {size} bytes is too large"));
    }
    let address = table.address.wrapping_add(load_bias);
    let mut bytes = vec![0u8; size];
    memory
        .read(address, &mut bytes)
        .map_err(|e| format!("cannot read the array: {e}"))?;
    let mut names = Vec::new();
    for (index, (ptr, len)) in string_headers(&bytes).into_iter().enumerate() {
        if len == 0 {
            names.push(String::new());
            continue;
        }
        if len > MAX_NAME {
            return Err(format!("implausible string length {len} at index {index}"));
        }
        let mut raw = vec![0u8; len as usize];
        let name = memory
            .read(ptr, &mut raw)
            .ok()
            .and_then(|()| decode_name(&raw))
            .ok_or_else(|| format!("cannot read string {index} at {ptr:#x}"))?;
        names.push(name);
    }
    WaitReasons::from_names(names).map_err(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let reasons = WaitReasons::from_names(vec![
            "".into(),
            "GC assist marking".into(),
            "chan receive".into(),
        ])
        .unwrap();
        assert_eq!(reasons.len(), 3);
        assert_eq!(reasons.name(0), Some(""));
        assert_eq!(reasons.name(2), Some("chan receive"));
        assert_eq!(reasons.name(3), None);
        assert_eq!(reasons.name(255), None);
        assert_eq!(reasons.code_of("chan receive"), Some(2));
        assert_eq!(reasons.code_of("sleep"), None);
        assert_eq!(reasons.iter().nth(1), Some((1, "GC assist marking")));
    }

    #[test]
    fn validation() {
        assert!(WaitReasons::from_names(vec![]).is_err());
        assert!(WaitReasons::from_names(vec!["x".into()]).is_err());
        assert!(WaitReasons::from_names(vec![String::new(); 257]).is_err());
        assert!(WaitReasons::from_names(vec![String::new(); 256]).is_ok());
    }

    #[test]
    fn headers() {
        let mut bytes = Vec::new();
        for (p, l) in [(0u64, 0u64), (0x4a11e8, 0x11), (0x49f460, 7)] {
            bytes.extend_from_slice(&p.to_le_bytes());
            bytes.extend_from_slice(&l.to_le_bytes());
        }
        bytes.extend_from_slice(&[1, 2, 3]); // trailing partial header is ignored
        assert_eq!(
            string_headers(&bytes),
            vec![(0, 0), (0x4a11e8, 0x11), (0x49f460, 7)]
        );
        assert!(string_headers(&[]).is_empty());
    }
}

//! The Go version recorded in an executable's `.go.buildinfo` section.
//!
//! Layout (Go 1.18+, `debug/buildinfo`): a 32-byte header — the 14-byte magic
//! `"\xff Go buildinf:"`, the pointer size, a flags byte — followed, when
//! `flags & 2` is set ("inline strings", every supported release), by two
//! uvarint-length-prefixed strings: the runtime version (`"go1.26.6"`, possibly
//! followed by `" X:experiment,…"`) and the module info.

use std::fmt;

/// The oldest and newest supported Go minor releases (`1.MIN ..= 1.MAX`).
pub const MIN_SUPPORTED_MINOR: u32 = 21;
pub const MAX_SUPPORTED_MINOR: u32 = 27;

/// Human-readable supported range, used in error messages.
pub const SUPPORTED_RANGE: &str = "Go 1.21 to 1.27";

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE_STRINGS: u8 = 0x2;
const FLAG_BIG_ENDIAN: u8 = 0x1;

/// A released Go version, e.g. `go1.26.6`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The version string exactly as recorded, e.g. `"go1.26.6"` or
    /// `"go1.25.5 X:nodwarf5"` when built with a `GOEXPERIMENT`.
    pub raw: String,
}

impl GoVersion {
    /// Parses a `runtime.Version()` string. Release candidates, betas and
    /// development builds are rejected with the reason.
    pub fn parse(raw: &str) -> Result<GoVersion, VersionError> {
        let err = |reason: &'static str| VersionError {
            version: raw.to_string(),
            reason,
        };
        let first = raw.split_whitespace().next().unwrap_or("");
        if raw.starts_with("devel") {
            return Err(err("development builds of Go are not supported"));
        }
        let numbers = first
            .strip_prefix("go")
            .ok_or_else(|| err("not a Go version string"))?;
        if numbers.contains("rc") || numbers.contains("beta") {
            return Err(err("pre-release builds of Go are not supported"));
        }
        let mut parts = numbers.split('.');
        let mut number = || -> Result<Option<u32>, VersionError> {
            match parts.next() {
                None => Ok(None),
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                    .parse()
                    .map(Some)
                    .map_err(|_| err("version number out of range")),
                Some(_) => Err(err("unrecognized version format")),
            }
        };
        let major = number()?.ok_or_else(|| err("unrecognized version format"))?;
        let minor = number()?.ok_or_else(|| err("unrecognized version format"))?;
        let patch = number()?.unwrap_or(0);
        if number()?.is_some() {
            return Err(err("unrecognized version format"));
        }
        Ok(GoVersion {
            major,
            minor,
            patch,
            raw: raw.to_string(),
        })
    }

    /// Whether the tracer knows this runtime (Go 1.21 to 1.27).
    pub fn is_supported(&self) -> bool {
        self.major == 1 && (MIN_SUPPORTED_MINOR..=MAX_SUPPORTED_MINOR).contains(&self.minor)
    }

    /// `true` for `1.minor` or any later release.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A version string that is not a supported release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError {
    pub version: String,
    pub reason: &'static str,
}

/// Why the Go version could not be read from `.go.buildinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildInfoError {
    /// No magic header: not a (Go 1.18+ style) Go build info blob.
    NoMagic,
    /// The pre-Go 1.18 layout (version referenced through pointers).
    PointerFormat,
    /// Header present but the strings are truncated or malformed.
    Malformed(&'static str),
}

impl fmt::Display for BuildInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildInfoError::NoMagic => f.write_str(".go.buildinfo has no Go build info header"),
            BuildInfoError::PointerFormat => {
                f.write_str("build info uses the pre-Go 1.18 layout (Go 1.17 or older)")
            }
            BuildInfoError::Malformed(why) => write!(f, "malformed .go.buildinfo: {why}"),
        }
    }
}

/// Extracts the runtime version string from the contents of `.go.buildinfo`.
pub fn version_string(section: &[u8]) -> Result<String, BuildInfoError> {
    // The header is 16-byte aligned; the linker puts it at the section start,
    // but search like debug/buildinfo does in case of padding.
    let start = (0..section.len())
        .step_by(16)
        .find(|&at| {
            section
                .get(at..)
                .is_some_and(|rest| rest.starts_with(MAGIC))
        })
        .ok_or(BuildInfoError::NoMagic)?;
    let header = section
        .get(start..start + HEADER_LEN)
        .ok_or(BuildInfoError::Malformed("truncated header"))?;
    let flags = header[15];
    if flags & FLAG_INLINE_STRINGS == 0 {
        return Err(BuildInfoError::PointerFormat);
    }
    if flags & FLAG_BIG_ENDIAN != 0 {
        return Err(BuildInfoError::Malformed(
            "big-endian build info on an amd64 binary",
        ));
    }
    let mut rest = &section[start + HEADER_LEN..];
    let version = read_varint_string(&mut rest)?;
    if version.is_empty() {
        return Err(BuildInfoError::Malformed("empty version string"));
    }
    String::from_utf8(version.to_vec())
        .map_err(|_| BuildInfoError::Malformed("version is not UTF-8"))
}

/// Reads a uvarint length followed by that many bytes, advancing `data`.
fn read_varint_string<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], BuildInfoError> {
    let (len, used) = uvarint(data).ok_or(BuildInfoError::Malformed("bad string length"))?;
    let rest = data
        .get(used..)
        .ok_or(BuildInfoError::Malformed("bad string length"))?;
    let len = usize::try_from(len).map_err(|_| BuildInfoError::Malformed("string too long"))?;
    let bytes = rest
        .get(..len)
        .ok_or(BuildInfoError::Malformed("truncated string"))?;
    *data = &rest[len..];
    Ok(bytes)
}

/// Decodes a Go `binary.Uvarint` (LEB128, at most 10 bytes, no overflow).
/// Returns the value and the number of bytes used.
pub(crate) fn uvarint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in data.iter().enumerate().take(10) {
        let low = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return None; // overflows 64 bits
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(flags: u8, strings: &[&[u8]]) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.push(8);
        data.push(flags);
        data.resize(HEADER_LEN, 0);
        for s in strings {
            let mut len = s.len() as u64;
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    data.push(byte);
                    break;
                }
                data.push(byte | 0x80);
            }
            data.extend_from_slice(s);
        }
        data
    }

    #[test]
    fn uvarint_decoding() {
        assert_eq!(uvarint(&[0x00]), Some((0, 1)));
        assert_eq!(uvarint(&[0x08, 0xff]), Some((8, 1)));
        assert_eq!(uvarint(&[0xac, 0x02]), Some((300, 2)));
        assert_eq!(uvarint(&[0x80, 0x80]), None); // truncated
        assert_eq!(uvarint(&[]), None);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(uvarint(&max), Some((u64::MAX, 10)));
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(uvarint(&overflow), None);
        assert_eq!(uvarint(&[0x80; 11]), None);
    }

    #[test]
    fn reads_inline_version() {
        let data = blob(0x2, &[b"go1.26.6", b"path\tcommand-line-arguments\n"]);
        assert_eq!(version_string(&data).unwrap(), "go1.26.6");
        // Found after 16-byte aligned padding too.
        let mut padded = vec![0u8; 32];
        padded.extend_from_slice(&data);
        assert_eq!(version_string(&padded).unwrap(), "go1.26.6");
    }

    #[test]
    fn long_version_uses_multibyte_varint() {
        let long = format!("go1.22.10 X:{}", "a".repeat(200));
        let data = blob(0x2, &[long.as_bytes()]);
        assert_eq!(version_string(&data).unwrap(), long);
    }

    #[test]
    fn rejects_malformed_blobs() {
        assert_eq!(version_string(b""), Err(BuildInfoError::NoMagic));
        assert_eq!(version_string(&[0u8; 64]), Err(BuildInfoError::NoMagic));
        assert_eq!(
            version_string(&blob(0x0, &[])),
            Err(BuildInfoError::PointerFormat)
        );
        assert!(matches!(
            version_string(&blob(0x2, &[])),
            Err(BuildInfoError::Malformed(_))
        ));
        assert!(matches!(
            version_string(&blob(0x2, &[b""])),
            Err(BuildInfoError::Malformed(_))
        ));
        assert!(matches!(
            version_string(&MAGIC[..]),
            Err(BuildInfoError::Malformed(_))
        ));
        // Length larger than the data.
        let mut truncated = blob(0x2, &[b"go1.26.6"]);
        truncated.truncate(truncated.len() - 2);
        assert!(matches!(
            version_string(&truncated),
            Err(BuildInfoError::Malformed(_))
        ));
        // Huge varint length.
        let mut huge = blob(0x2, &[]);
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(
            version_string(&huge),
            Err(BuildInfoError::Malformed(_))
        ));
        assert!(matches!(
            version_string(&blob(0x3, &[b"go1.26.6"])),
            Err(BuildInfoError::Malformed(_))
        ));
    }

    #[test]
    fn parses_release_versions() {
        let v = GoVersion::parse("go1.26.6").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 26, 6));
        assert_eq!(v.to_string(), "go1.26.6");
        assert!(v.is_supported());
        let v = GoVersion::parse("go1.21.0").unwrap();
        assert!(v.is_supported() && v.at_least(1, 21) && !v.at_least(1, 22));
        let v = GoVersion::parse("go1.22").unwrap();
        assert_eq!((v.minor, v.patch), (22, 0));
        let v = GoVersion::parse("go1.25.5 X:nodwarf5,jsonv2").unwrap();
        assert_eq!((v.minor, v.patch), (25, 5));
        assert_eq!(v.raw, "go1.25.5 X:nodwarf5,jsonv2");
        assert!(!GoVersion::parse("go1.20.14").unwrap().is_supported());
        assert!(!GoVersion::parse("go1.28.0").unwrap().is_supported());
        assert!(!GoVersion::parse("go2.0.0").unwrap().is_supported());
    }

    #[test]
    fn rejects_unreleased_and_garbage_versions() {
        for raw in [
            "go1.27rc1",
            "go1.27beta2",
            "devel go1.27-abcdef Tue Jan 1 00:00:00 2026 +0000",
            "",
            "go",
            "go1",
            "go1.",
            "go1.x.3",
            "go1.26.6.1",
            "1.26.6",
            "go99999999999999999999.1",
            "go1.26.-1",
        ] {
            let err = GoVersion::parse(raw).unwrap_err();
            assert_eq!(err.version, raw);
        }
    }
}

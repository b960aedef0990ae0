//! `cargo xtask gen-offsets`: regenerates
//! `tracer-user/src/target/offsets_table.rs`, the runtime offsets and
//! wait-reason strings tracer falls back to when a binary has no DWARF or no
//! `.symtab`.
//!
//! For every Go toolchain of [`GO_VERSIONS`] it builds a tiny Go program (in
//! `target/gen-offsets/`, with DWARF and symbols), runs the release
//! `tracer inspect --json` on it and takes the JSON's `offsets` (which must
//! come from DWARF) and `wait_reason_strings` (which must come from the
//! binary's `runtime.waitReasonStrings`). The offsets are written field by
//! field as the JSON names them, so a field added to `RuntimeOffsets` but
//! missing here, or the reverse, fails to compile.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::{build_tracer, toolchain, GO_VERSIONS};

/// Where the table goes, relative to the workspace root.
const TABLE: &str = "tracer-user/src/target/offsets_table.rs";

const PROGRAM: &str = r#"package main

import "fmt"

func main() {
	done := make(chan int)
	go func() { done <- 1 }()
	fmt.Println(<-done)
}
"#;

/// One Go release's row of the table.
struct Row {
    version: String,
    minor: u32,
    /// `(field, offset)`, sorted by field name.
    offsets: Vec<(String, u64)>,
    wait_reasons: Vec<String>,
}

pub fn gen_offsets(root: &Path) -> Result<()> {
    let tracer = build_tracer(root)?;
    let mut rows = Vec::new();
    for version in GO_VERSIONS {
        let go = toolchain::go(root, version)?;
        let binary = build_program(root, &go, version)?;
        let out = Command::new(&tracer)
            .args(["inspect", "--json"])
            .arg(&binary)
            .output()
            .with_context(|| format!("cannot start {}", tracer.display()))?;
        ensure!(
            out.status.success(),
            "tracer inspect {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout)
            .context("tracer inspect --json printed invalid JSON")?;
        let row = parse_row(&json).with_context(|| format!("inspecting {}", binary.display()))?;
        ensure!(
            row.version == format!("go{version}"),
            "{} reports {}, expected go{version}",
            binary.display(),
            row.version
        );
        eprintln!(
            "xtask: Go 1.{}: {} offsets, {} wait reasons",
            row.minor,
            row.offsets.len(),
            row.wait_reasons.len()
        );
        rows.push(row);
    }
    for (i, row) in rows.iter().enumerate() {
        if rows[..i].iter().any(|r| r.minor == row.minor) {
            bail!(
                "two toolchains for Go 1.{}: keep one per minor version",
                row.minor
            );
        }
    }
    let path = root.join(TABLE);
    std::fs::write(&path, render(&rows))
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// Builds [`PROGRAM`] with `go` into target/gen-offsets/go<version>/prog.
fn build_program(root: &Path, go: &Path, version: &str) -> Result<std::path::PathBuf> {
    let dir = root.join(format!("target/gen-offsets/go{version}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("main.go"), PROGRAM)?;
    std::fs::write(dir.join("go.mod"), "module genoffsets\n\ngo 1.21\n")?;
    let out = dir.join("prog");
    let cache = root.join("target/gocache");
    crate::run(
        Command::new(go)
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&dir)
            .env("GOCACHE", cache.join("cache"))
            .env("GOPATH", cache.join("path"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0"),
    )?;
    Ok(out)
}

fn parse_row(json: &Value) -> Result<Row> {
    let version = json["go_version"]
        .as_str()
        .context("no go_version")?
        .to_string();
    let minor = version
        .strip_prefix("go1.")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot parse the minor version of {version:?}"))?;
    let offsets = json["offsets"].as_object().context("no offsets")?;
    let source = offsets.get("source").and_then(Value::as_str);
    ensure!(
        source == Some("dwarf"),
        "offsets come from {source:?}, not DWARF"
    );
    let offsets = offsets
        .iter()
        .filter(|(name, _)| *name != "source")
        .map(|(name, value)| {
            let value = value
                .as_u64()
                .with_context(|| format!("offset {name} is not a number: {value}"))?;
            Ok((name.clone(), value))
        })
        .collect::<Result<Vec<_>>>()?;
    let source = json["wait_reasons_source"].as_str();
    ensure!(
        source == Some("binary"),
        "wait reasons come from {source:?}, not the binary's runtime.waitReasonStrings"
    );
    let wait_reasons = json["wait_reason_strings"]
        .as_array()
        .context("no wait_reason_strings")?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .context("a wait reason is not a string")
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        wait_reasons.first().is_some_and(String::is_empty),
        "wait reason 0 is not the empty string"
    );
    Ok(Row {
        version,
        minor,
        offsets,
        wait_reasons,
    })
}

fn render(rows: &[Row]) -> String {
    let versions: Vec<String> = rows.iter().map(|r| r.version.clone()).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"//! GENERATED FILE — do not edit. Regenerate with `cargo xtask gen-offsets`
//! (xtask/src/gen_offsets.rs), after adding the toolchain to xtask's
//! `GO_VERSIONS` for a new Go release.
//!
//! Runtime struct offsets ([`RuntimeOffsets`]) and `runtime.waitReasonStrings`
//! (code → string) per Go minor version, read by `tracer inspect --json` from
//! the DWARF and `.symtab` of programs built with
//! {versions}.
//! Used for binaries built without DWARF (`-ldflags=-w`) or without `.symtab`
//! (`-ldflags=-s`). `target::tests` checks every entry against a freshly
//! built binary of each installed toolchain.

use super::RuntimeOffsets;

/// One Go minor version's runtime layout.
#[derive(Debug)]
pub(crate) struct VersionTable {{
    /// `1.minor`
    pub(crate) minor: u32,
    /// The release the entry was read from.
    pub(crate) generated_from: &'static str,
    pub(crate) offsets: RuntimeOffsets,
    /// `runtime.waitReasonStrings`, indexed by `waitReason` code.
    pub(crate) wait_reasons: &'static [&'static str],
}}

/// The entry for Go `1.minor`, if there is one.
pub(crate) fn entry(minor: u32) -> Option<&'static VersionTable> {{
    TABLE.iter().find(|t| t.minor == minor)
}}

pub(crate) const TABLE: &[VersionTable] = &[
"#,
        versions = versions.join(", ")
    );
    for row in rows {
        let _ = writeln!(out, "    VersionTable {{");
        let _ = writeln!(out, "        minor: {},", row.minor);
        let _ = writeln!(out, "        generated_from: {:?},", row.version);
        let _ = writeln!(out, "        offsets: RuntimeOffsets {{");
        for (name, value) in &row.offsets {
            let _ = writeln!(out, "            {name}: {value},");
        }
        let _ = writeln!(out, "        }},");
        let _ = writeln!(out, "        wait_reasons: &[");
        for name in &row.wait_reasons {
            let _ = writeln!(out, "            {name:?},");
        }
        let _ = writeln!(out, "        ],");
        let _ = writeln!(out, "    }},");
    }
    out.push_str("];\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_a_row() {
        let json: Value = serde_json::from_str(
            r#"{"go_version": "go1.26.6",
                "offsets": {"source": "dwarf", "g_goid": 152, "m_curg": 184},
                "wait_reasons_source": "binary",
                "wait_reason_strings": ["", "GC assist marking", "chan \"x\""]}"#,
        )
        .unwrap();
        let row = parse_row(&json).unwrap();
        assert_eq!(row.minor, 26);
        assert_eq!(
            row.offsets,
            vec![("g_goid".to_string(), 152), ("m_curg".to_string(), 184)]
        );
        let text = render(&[row]);
        assert!(text.starts_with("//! GENERATED FILE"));
        assert!(text.contains("        minor: 26,\n"));
        assert!(text.contains("            g_goid: 152,\n"));
        assert!(text.contains("            \"chan \\\"x\\\"\",\n"));

        let mut table = json.clone();
        table["offsets"]["source"] = "table".into();
        assert!(parse_row(&table).is_err());
        let mut table = json;
        table["wait_reasons_source"] = "table".into();
        assert!(parse_row(&table).is_err());
    }
}

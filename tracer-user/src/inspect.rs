//! `tracer inspect`: what tracer finds in a Go process or executable.

use anyhow::Result;
use serde::Serialize;

use crate::{
    cli::InspectArgs,
    target::{Placement, ProbePoint, RuntimeOffsets, Target},
};

#[derive(Serialize)]
struct ProbeReport<'a> {
    program: &'static str,
    function: &'a str,
    vaddr: u64,
    file_offset: u64,
    placement: Placement,
}

#[derive(Serialize)]
struct OffsetsReport<'a> {
    source: &'static str,
    #[serde(flatten)]
    offsets: &'a RuntimeOffsets,
}

#[derive(Serialize)]
struct InspectReport<'a> {
    pid: Option<u32>,
    binary: &'a str,
    attach_path: String,
    go_version: &'a str,
    pie: bool,
    load_bias: u64,
    offsets: OffsetsReport<'a>,
    probes: Vec<ProbeReport<'a>>,
    wait_reasons: Vec<(u8, &'a str)>,
}

fn report(target: &Target) -> InspectReport<'_> {
    use tracer_ebpf::program;
    let plan = &target.probes;
    let mut points: Vec<(&'static str, &ProbePoint)> =
        plan.spawn.iter().map(|p| (program::SPAWN, p)).collect();
    points.extend([
        (program::PARK, &plan.park),
        (program::READY, &plan.ready),
        (program::EXIT, &plan.exit),
    ]);
    InspectReport {
        pid: target.pid,
        binary: &target.display_path,
        attach_path: target.attach_path.display().to_string(),
        go_version: &target.go_version.raw,
        pie: target.pie,
        load_bias: target.load_bias,
        offsets: OffsetsReport {
            source: "DWARF",
            offsets: &target.offsets,
        },
        probes: points
            .into_iter()
            .map(|(program, p)| ProbeReport {
                program,
                function: &p.function,
                vaddr: p.vaddr,
                file_offset: p.file_offset,
                placement: p.placement,
            })
            .collect(),
        wait_reasons: (0..=u8::MAX)
            .filter_map(|code| {
                target
                    .wait_reasons
                    .name(code)
                    .filter(|n| !n.is_empty())
                    .map(|n| (code, n))
            })
            .collect(),
    }
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let target = match (args.pid, &args.binary) {
        (Some(pid), _) => Target::from_pid(pid)?,
        (None, Some(path)) => Target::from_path(path)?,
        (None, None) => anyhow::bail!("give a --pid or the path of a Go executable"),
    };
    let r = report(&target);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("binary:      {}", r.binary);
    if let Some(pid) = r.pid {
        println!("pid:         {pid}");
    }
    println!("go version:  {}", r.go_version);
    println!("pie:         {} (load bias {:#x})", r.pie, r.load_bias);
    println!("offsets ({}): {}", r.offsets.source, target.offsets);
    println!("probes:");
    for p in &r.probes {
        println!(
            "  {:<16} {:<22} vaddr {:#x}  file offset {:#x}  {:?}",
            p.program, p.function, p.vaddr, p.file_offset, p.placement
        );
    }
    println!(
        "wait reasons: {} known (e.g. {})",
        r.wait_reasons.len(),
        sample_reasons(&r.wait_reasons)
    );
    Ok(())
}

fn sample_reasons(reasons: &[(u8, &str)]) -> String {
    reasons
        .iter()
        .filter(|(_, n)| matches!(*n, "chan receive" | "select" | "sync.Mutex.Lock"))
        .map(|(c, n)| format!("{c}={n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

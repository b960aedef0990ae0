//! `tracer inspect`: what tracer finds in a Go process or executable.

use std::{fmt::Write as _, io::Write as _};

use anyhow::Result;
use serde::Serialize;

use crate::{
    cli::InspectArgs,
    target::{
        timers::TimerPlan, OffsetsSource, Placement, ProbePoint, RuntimeOffsets, RuntimeVars,
        Target, WaitReasonsSource,
    },
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
    source: OffsetsSource,
    #[serde(flatten)]
    offsets: &'a RuntimeOffsets,
}

#[derive(Serialize)]
struct InspectReport<'a> {
    pid: Option<u32>,
    binary: &'a str,
    attach_path: String,
    go_version: &'a str,
    /// No `.symtab` or no DWARF: functions and lines come from `.gopclntab`.
    stripped: bool,
    pclntab_version: &'a str,
    pie: bool,
    load_bias: u64,
    offsets: OffsetsReport<'a>,
    probes: Vec<ProbeReport<'a>>,
    /// `runtime.newproc1`'s entry; the spawn probes are its RETs.
    newproc1_entry: u64,
    /// Link-time addresses of `runtime.allglen`, `runtime.allgptr` and
    /// `runtime.sched` (`null` when not found), and where `sched` came from.
    runtime_vars: RuntimeVars,
    /// Non-empty wait reasons as `(code, string)`.
    wait_reasons: Vec<(u8, &'a str)>,
    wait_reasons_source: WaitReasonsSource,
    /// The whole `waitReasonStrings` table, indexed by code (`""` included).
    wait_reason_strings: Vec<&'a str>,
    /// The timer and context probes (`attach` without `--no-timers`), the
    /// functions the program does not have, and what is and is not seen.
    timer_probes: Vec<ProbeReport<'a>>,
    timer_functions_missing: &'a [&'static str],
    timer_coverage: Vec<String>,
}

/// What the timer and context probes and the attach-time read cover on
/// this target, one sentence each.
fn timer_coverage(target: &Target) -> Vec<String> {
    let Some(offsets) = target.timer_offsets else {
        return vec![format!(
            "timers and contexts: not traced (no timer layout for Go 1.{})",
            target.go_version.minor
        )];
    };
    let plan = &target.timer_probes;
    let mut out = Vec::new();
    out.push(if target.go_version.minor <= 22 {
        "timers created, reset, stopped, fired and Sleeps: one trap each; network deadlines and \
         the scavenger are not probed (their fires are counted and dropped)"
            .to_string()
    } else {
        "timers created, reset, stopped, fired and Sleeps: one trap each; network deadlines and \
         the scavenger are not probed (their fires are counted and dropped); channel timers \
         (NewTimer, After, NewTicker with Go >=1.23 semantics) fire only for a receiver, \
         and are collected by the GC when unreferenced: never suspects"
            .to_string()
    });
    out.push(match (target.runtime_vars.allp, offsets.heap_entry) {
        (None, _) => "timers armed before attach: not read (no runtime.allp: no .symtab); \
                      each appears when it next fires, is reset or stopped"
            .to_string(),
        (Some(_), 8) => "timers armed before attach: read from every P's timer heap \
                         (p.timers): all of them"
            .to_string(),
        (Some(_), _) => "timers armed before attach: read from every P's timer heap \
                         (p.timers.heap): AfterFunc, context deadlines, Sleep and async-mode \
                         timers; a channel timer is in a heap only while a goroutine waits on it, \
                         others appear when they next fire, are reset or stopped"
            .to_string(),
    });
    out.push(
        "contexts created before attach: not visible (no registry to read); their cancels \
         are counted as \"before attach\""
            .to_string(),
    );
    out.push(if plan.itab_cancel_ctx != 0 {
        "context parents: told apart by their itabs (through WithValue wrappers): a \
         never-cancelled child of a cancelable parent is retained (a leak), one of Background \
         or WithoutCancel is collected by the GC"
            .to_string()
    } else {
        "context parents: not told apart (no context itabs in .symtab): only contexts with a \
         deadline count as retained"
            .to_string()
    });
    out
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
        // Attached only with `attach --creation-stacks`.
        (program::CREATOR_STACK, &plan.newproc),
    ]);
    InspectReport {
        pid: target.pid,
        binary: &target.display_path,
        attach_path: target.attach_path.display().to_string(),
        go_version: &target.go_version.raw,
        stripped: target.stripped,
        pclntab_version: &target.pclntab_version,
        pie: target.pie,
        load_bias: target.load_bias,
        offsets: OffsetsReport {
            source: target.offsets_source,
            offsets: &target.offsets,
        },
        probes: probe_reports(points),
        newproc1_entry: plan.newproc1_entry,
        runtime_vars: target.runtime_vars,
        wait_reasons: (0..=u8::MAX)
            .filter_map(|code| {
                target
                    .wait_reasons
                    .name(code)
                    .filter(|n| !n.is_empty())
                    .map(|n| (code, n))
            })
            .collect(),
        wait_reasons_source: target.wait_reasons_source,
        wait_reason_strings: target.wait_reasons.iter().map(|(_, n)| n).collect(),
        timer_probes: probe_reports(timer_points(&target.timer_probes)),
        timer_functions_missing: &target.timer_probes.missing,
        timer_coverage: timer_coverage(target),
    }
}

fn probe_reports<'a>(points: Vec<(&'static str, &'a ProbePoint)>) -> Vec<ProbeReport<'a>> {
    points
        .into_iter()
        .map(|(program, p)| ProbeReport {
            program,
            function: &p.function,
            vaddr: p.vaddr,
            file_offset: p.file_offset,
            placement: p.placement,
        })
        .collect()
}

fn timer_points(plan: &TimerPlan) -> Vec<(&'static str, &ProbePoint)> {
    use tracer_ebpf::program;
    [
        (program::TIMER_CREATE, &plan.create),
        (program::TIMER_RESET, &plan.reset),
        (program::TIMER_RESET_WHEN, &plan.reset_when),
        (program::TIMER_STOP, &plan.stop),
        (program::TIMER_FIRE, &plan.fire),
        (program::SLEEP, &plan.sleep),
        (program::CONTEXT_CREATE, &plan.context_create),
        (program::CONTEXT_CANCEL, &plan.context_cancel),
    ]
    .into_iter()
    .flat_map(|(program, points)| points.iter().map(move |p| (program, p)))
    .collect()
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let target = match (args.pid, &args.binary) {
        (Some(pid), _) => Target::from_pid(pid)?,
        (None, Some(path)) => Target::from_path(path)?,
        (None, None) => anyhow::bail!("give a --pid or the path of a Go executable"),
    };
    let r = report(&target);
    let text = if args.json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        text(&r, &target)?
    };
    // A reader that stops early (`| head`) is not an error.
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The human-readable report.
fn text(r: &InspectReport, target: &Target) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "binary:      {}", r.binary)?;
    if let Some(pid) = r.pid {
        writeln!(out, "pid:         {pid}")?;
    }
    writeln!(out, "go version:  {}", r.go_version)?;
    writeln!(
        out,
        "stripped:    {}",
        if r.stripped {
            "yes (no .symtab or no DWARF)"
        } else {
            "no"
        }
    )?;
    writeln!(out, "pclntab:     {}", r.pclntab_version)?;
    writeln!(out, "pie:         {} (load bias {:#x})", r.pie, r.load_bias)?;
    writeln!(out, "offsets ({}): {}", r.offsets.source, target.offsets)?;
    writeln!(
        out,
        "allgs:       runtime.allglen @ {:#x}, runtime.allgptr @ {:#x}",
        r.runtime_vars.allglen, r.runtime_vars.allgptr
    )?;
    writeln!(out, "{}", sched_line(&r.runtime_vars, &target.offsets))?;
    let rets: Vec<String> = plan_rets(r);
    writeln!(
        out,
        "newproc1:    @ {:#x}, RETs at +{}",
        r.newproc1_entry,
        rets.join(", +")
    )?;
    writeln!(out, "probes:")?;
    for p in &r.probes {
        let optional = match p.program {
            tracer_ebpf::program::CREATOR_STACK => "  (--creation-stacks only)",
            tracer_ebpf::program::PARK | tracer_ebpf::program::READY => "  (--precise only)",
            _ => "",
        };
        writeln!(
            out,
            "  {:<16} {:<22} vaddr {:#x}  file offset {:#x}  {:?}{optional}",
            p.program, p.function, p.vaddr, p.file_offset, p.placement
        )?;
    }
    writeln!(
        out,
        "wait reasons: {} known, from {} (e.g. {})",
        r.wait_reasons.len(),
        r.wait_reasons_source,
        sample_reasons(&r.wait_reasons)
    )?;
    writeln!(out, "timer and context probes (not with --no-timers):")?;
    for p in &r.timer_probes {
        writeln!(
            out,
            "  {:<16} {:<38} vaddr {:#x}  file offset {:#x}  {:?}",
            p.program, p.function, p.vaddr, p.file_offset, p.placement
        )?;
    }
    if !r.timer_functions_missing.is_empty() {
        writeln!(
            out,
            "  not in the binary (the program does not use them): {}",
            r.timer_functions_missing.join(", ")
        )?;
    }
    for line in &r.timer_coverage {
        writeln!(out, "  {line}")?;
    }
    Ok(out)
}

/// Where `runtime.sched` and its goroutine-id generator are.
fn sched_line(vars: &RuntimeVars, offsets: &RuntimeOffsets) -> String {
    match vars.sched {
        Some(sched) => format!(
            "sched:       runtime.sched @ {sched:#x} (from {}), goidgen @ {:#x} (+{})",
            vars.sched_source,
            sched + offsets.schedt_goidgen,
            offsets.schedt_goidgen
        ),
        None => "sched:       absent (no .symtab, and runtime.newproc1 has no recognizable \
                 sched.goidgen update): goroutine creations are not counted without probes"
            .to_string(),
    }
}

/// Offsets of the spawn probes (newproc1's RETs) from newproc1's entry.
fn plan_rets(r: &InspectReport<'_>) -> Vec<String> {
    r.probes
        .iter()
        .filter(|p| p.placement == Placement::Ret)
        .map(|p| format!("{:#x}", p.vaddr.wrapping_sub(r.newproc1_entry)))
        .collect()
}

fn sample_reasons(reasons: &[(u8, &str)]) -> String {
    reasons
        .iter()
        .filter(|(_, n)| matches!(*n, "chan receive" | "select" | "sync.Mutex.Lock"))
        .map(|(c, n)| format!("{c}={n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::SchedSource;

    #[test]
    fn sched_line_says_where_sched_is_and_where_it_came_from() {
        let offsets = RuntimeOffsets {
            schedt_goidgen: 8,
            ..Default::default()
        };
        let mut vars = RuntimeVars {
            allglen: 0x5a_0000,
            allgptr: 0x5a_0008,
            sched: Some(0x57_dba0),
            sched_source: SchedSource::Disassembly,
            allp: None,
        };
        assert_eq!(
            sched_line(&vars, &offsets),
            "sched:       runtime.sched @ 0x57dba0 (from disassembly of runtime.newproc1), \
             goidgen @ 0x57dba8 (+8)"
        );
        vars.sched_source = SchedSource::Symtab;
        assert!(sched_line(&vars, &offsets).contains("(from .symtab)"));
        vars.sched = None;
        vars.sched_source = SchedSource::Absent;
        assert!(sched_line(&vars, &offsets).starts_with("sched:       absent ("));
        let json = serde_json::to_value(vars).unwrap();
        assert_eq!(json["sched"], serde_json::Value::Null);
        assert_eq!(json["sched_source"], "absent");
    }
}

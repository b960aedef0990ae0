//! Views of the model for people and programs: the JSON documents of
//! `tracer attach --json` and the compact human summary.
//!
//! The model keeps raw PCs and wait-reason codes; this is where they become
//! `file:line` and Go's own wait-reason strings, using the target's symbols.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use crate::model::{Goroutine, GoroutineState, GoroutineTable, Origin, SiteStats, Totals};
use crate::probes::{BudgetStatus, ProbeCounters, ProbeGroup};
use crate::suspects::{timers::TimerAnalysis, Analysis, Suspect};
use crate::target::{memory::symbolization_pc, ProcessUsage, Target};

/// A source location of the target program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    /// Runtime address, hex.
    pub pc: String,
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GoroutineReport {
    pub goid: u64,
    pub parent_goid: Option<u64>,
    pub state: GoroutineState,
    /// Go's own text for the wait reason ("chan receive", "select", …).
    pub wait_reason: Option<String>,
    pub wait_reason_code: Option<u8>,
    /// The `go` statement that created it (unknown for pre-attach goroutines).
    pub creation_site: Option<SourceLocation>,
    /// The goroutine's function.
    pub start_function: Option<String>,
    pub created_at_ns: Option<u64>,
    pub first_seen_ns: u64,
    pub parked_since_ns: Option<u64>,
    /// Seconds spent in the current wait, at the document's `now_ns`.
    pub waiting_s: Option<f64>,
    pub wake_count: u64,
    pub last_waker: Option<u64>,
    pub origin: Origin,
    /// Where it is blocked, innermost frame first (inlined frames expanded);
    /// empty unless waiting and its stack could be read.
    pub blocked_at: Vec<SourceLocation>,
    /// The channels it is blocked on (channel operations and `select`),
    /// hex, read from its `g.waiting` sudogs; absent until read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_channels: Option<Vec<String>>,
    /// With `--creation-stacks`: the creating goroutine's stack at the `go`
    /// statement, innermost first (starting in `runtime.newproc`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub creation_stack: Vec<SourceLocation>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteReport {
    pub site: SourceLocation,
    #[serde(flatten)]
    pub stats: SiteStats,
}

/// How the session traces right now.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ModeReport {
    /// `default` (spawn/exit probes, states read from memory every interval)
    /// or `precise` (park/wake probes too).
    pub name: Cow<'static, str>,
    /// Probe groups attached now.
    pub attached: Vec<ProbeGroup>,
    /// Where goroutine states and wait times come from: `events` (park/wake
    /// probes: exact) or `memory reads` (each interval: a wait's start is
    /// known to within one interval).
    pub states_from: Cow<'static, str>,
    pub budget: BudgetStatus,
    /// `--max-tracked`, and the goroutines met beyond it (not tracked).
    pub max_tracked: u64,
    pub untracked: u64,
}

impl ModeReport {
    /// One line for people: "default · spawn/exit probes · states read from
    /// memory · est. 0.20% of the target's CPU (budget 1%)", plus what the
    /// budget detached and why.
    pub fn summary(&self) -> String {
        let probes = if self.attached.is_empty() {
            "no probes".to_string()
        } else {
            let names: Vec<&str> = self.attached.iter().map(|g| g.describe()).collect();
            format!("{} probes", names.join(", "))
        };
        let budget = match self.budget.max_overhead_pct {
            Some(max) => format!(
                "est. {:.2}% of the target's CPU (budget {max}%)",
                self.budget.estimated_overhead_pct
            ),
            None => format!(
                "est. {:.2}% of the target's CPU",
                self.budget.estimated_overhead_pct
            ),
        };
        let mut line = format!(
            "{} · {probes} · states from {} · {budget}",
            self.name, self.states_from
        );
        for d in &self.budget.detached {
            line.push_str(&format!(" · DETACHED {}", d.reason));
        }
        if self.untracked > 0 {
            line.push_str(&format!(
                " · CAPPED at {} goroutines ({} not tracked; raise --max-tracked)",
                crate::suspects::thousands(self.max_tracked),
                crate::suspects::thousands(self.untracked)
            ));
        }
        line
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub pid: u32,
    pub go_version: String,
    pub binary: String,
    /// CLOCK_MONOTONIC time of this document, comparable with event times.
    pub now_ns: u64,
    pub elapsed_s: f64,
    /// Which probes and where states come from (`--precise`,
    /// `--max-overhead`).
    pub mode: ModeReport,
    pub totals: Totals,
    pub probes: ProbeCounters,
    /// The target's resident memory and threads (`/proc/PID/status`).
    pub process: ProcessUsage,
    /// Live goroutines per wait reason ("running"/"runnable" for the others).
    pub by_state: BTreeMap<String, u64>,
    /// Leak suspects, highest score first (README, "Leak suspects").
    pub suspects: Vec<Suspect>,
    /// Timers and contexts by kind and creation site, with totals.
    pub timers: TimerAnalysis,
    /// Creation sites, most live goroutines first.
    pub sites: Vec<SiteReport>,
    /// Live goroutines, ordered by goid (the first `--max-goroutines`).
    pub goroutines: Vec<GoroutineReport>,
    /// Live goroutines left out of `goroutines` by `--max-goroutines`.
    pub goroutines_omitted: u64,
    /// Waiting goroutines whose blocked-at stack has not been read yet.
    pub stacks_pending: u64,
    /// The attach-time read of the target's goroutine list.
    pub snapshot: Option<SnapshotSummary>,
    /// Set on the last document of a session: why tracing stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// What the attach-time memory snapshot found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Goroutines read and seeded into the model.
    pub goroutines: u64,
    /// Entries discarded as torn or invalid reads.
    pub discarded: u64,
    pub duration_s: f64,
    /// Pending timers read from the runtime's timer heaps (`None`: not
    /// read: timers not traced, or no `runtime.allp` in a stripped binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers: Option<u64>,
}

/// Everything a document is made of besides the model: who the target is,
/// how to name its pcs, and the session's latest readings.
pub struct SnapshotContext<'a> {
    pub symbols: &'a dyn Symbols,
    pub pid: u32,
    pub go_version: String,
    /// The target's executable, as shown.
    pub binary: String,
    pub attached_at_ns: u64,
    pub now_ns: u64,
    pub probes: ProbeCounters,
    /// List at most this many goroutines per document.
    pub max_goroutines: Option<usize>,
    pub snapshot: Option<SnapshotSummary>,
    pub mode: ModeReport,
    /// Creator stacks by stack-map id (`--creation-stacks`).
    pub creation_stacks: HashMap<u32, Arc<[u64]>>,
    /// The target's resident memory and threads at `now_ns`.
    pub process: ProcessUsage,
}

/// Symbolization of the target's pcs into the model's views: creation
/// sites, unwound stacks, function names and wait-reason texts. The live
/// session uses the [`Target`]; tests use a table of names.
pub trait Symbols {
    /// The `go` statement behind a `g.gopc`.
    fn creation_site(&self, runtime_pc: u64) -> SourceLocation;
    /// An unwound stack (frame 0 a saved pc, the others return addresses),
    /// innermost first, inlined frames expanded, `runtime.goexit` left out.
    fn stack(&self, pcs: &[u64]) -> Vec<SourceLocation>;
    /// The function containing a pc (e.g. `g.startpc`).
    fn function(&self, runtime_pc: u64) -> Option<String>;
    /// Go's own text for a wait-reason code.
    fn wait_reason(&self, code: u8) -> String;
}

impl Symbols for Target {
    fn creation_site(&self, runtime_pc: u64) -> SourceLocation {
        runtime_pc
            .checked_sub(self.load_bias)
            .and_then(|pc| self.symbolizer.creation_site(pc))
            .map(|frame| SourceLocation {
                pc: format!("{runtime_pc:#x}"),
                function: frame.function,
                file: frame.file,
                line: frame.line,
            })
            .unwrap_or_else(|| unknown(runtime_pc))
    }

    /// Frame 0 is a saved PC, the others are return addresses, looked up one
    /// byte earlier (inside the call). Like Go's own tracebacks, the
    /// `runtime.goexit` frame every goroutine starts from is left out.
    fn stack(&self, pcs: &[u64]) -> Vec<SourceLocation> {
        let mut out = Vec::with_capacity(pcs.len());
        for (i, &runtime_pc) in pcs.iter().enumerate() {
            let Some(pc) = runtime_pc.checked_sub(self.load_bias) else {
                continue;
            };
            let frames = if i == 0 {
                resume_frames(self, pc)
            } else {
                self.symbolizer.frames(symbolization_pc(i, pc))
            };
            if frames.len() == 1 && frames[0].function == "runtime.goexit" {
                continue;
            }
            if frames.is_empty() {
                out.push(unknown(runtime_pc));
            }
            for frame in frames {
                out.push(SourceLocation {
                    pc: format!("{runtime_pc:#x}"),
                    function: frame.function,
                    file: frame.file,
                    line: frame.line,
                });
            }
        }
        out
    }

    fn function(&self, runtime_pc: u64) -> Option<String> {
        self.symbolizer
            .function_name(runtime_pc.checked_sub(self.load_bias)?)
    }

    fn wait_reason(&self, code: u8) -> String {
        match self.wait_reasons.name(code) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => format!("wait reason {code}"),
        }
    }
}

/// Frames of a parked goroutine's saved pc. It is the return address of
/// the `mcall` that parked it, so, like Go's tracebacks, look inside the
/// call (pc − 1) — unless the goroutine never ran and the pc is its
/// function's entry, where pc − 1 would be another function.
fn resume_frames(target: &Target, pc: u64) -> Vec<crate::target::Frame> {
    let sym = &target.symbolizer;
    let inside = sym.frames(pc.saturating_sub(1));
    let at = sym.frames(pc);
    match (inside.first(), at.first()) {
        (Some(a), Some(b)) if a.function == b.function => inside,
        _ => at,
    }
}

/// What a goroutine is doing, in words: Go's wait-reason text, or
/// "running"/"runnable"/"syscall".
pub fn state_label(g: &Goroutine, symbols: &dyn Symbols) -> String {
    match (g.state, g.wait_reason) {
        (GoroutineState::Waiting, Some(code)) => symbols.wait_reason(code),
        (GoroutineState::Waiting, None) => "waiting".into(),
        (GoroutineState::Runnable, _) => "runnable".into(),
        (GoroutineState::Running, _) => "running".into(),
        (GoroutineState::Syscall, _) => "syscall".into(),
    }
}

impl SnapshotContext<'_> {
    pub fn snapshot(&self, table: &GoroutineTable, analysis: &Analysis) -> Snapshot {
        let mut goroutines: Vec<&Goroutine> = table.iter().collect();
        // Count by (state, reason code) first: one label per kind, not one
        // string per goroutine.
        let mut counts: HashMap<(GoroutineState, Option<u8>), (&Goroutine, u64)> = HashMap::new();
        for g in &goroutines {
            counts.entry((g.state, g.wait_reason)).or_insert((g, 0)).1 += 1;
        }
        let mut by_state = BTreeMap::new();
        for (g, n) in counts.into_values() {
            *by_state.entry(state_label(g, self.symbols)).or_insert(0) += n;
        }
        let stacks_pending = goroutines
            .iter()
            .filter(|g| g.state == GoroutineState::Waiting && g.blocked_stack.is_none())
            .count() as u64;
        let total = goroutines.len();
        let listed = self.max_goroutines.unwrap_or(usize::MAX).min(total);
        if listed < total {
            goroutines.select_nth_unstable_by_key(listed, |g| g.goid);
            goroutines.truncate(listed);
        }
        goroutines.sort_unstable_by_key(|g| g.goid);
        let mut sites: Vec<(u64, SiteStats)> = table.sites().map(|(pc, s)| (pc, *s)).collect();
        sites.sort_by(|a, b| {
            b.1.live
                .cmp(&a.1.live)
                .then(b.1.spawned.cmp(&a.1.spawned))
                .then(a.0.cmp(&b.0))
        });
        let sites = sites
            .into_iter()
            .map(|(pc, stats)| SiteReport {
                site: self.symbols.creation_site(pc),
                stats,
            })
            .collect();
        let goroutines_omitted = (total - listed) as u64;
        let goroutines = goroutines
            .into_iter()
            .map(|g| GoroutineReport {
                goid: g.goid,
                parent_goid: g.parent_goid,
                state: g.state,
                wait_reason: g.wait_reason.map(|c| self.symbols.wait_reason(c)),
                wait_reason_code: g.wait_reason,
                creation_site: g.gopc.map(|pc| self.symbols.creation_site(pc)),
                start_function: g.start_pc.and_then(|pc| self.symbols.function(pc)),
                created_at_ns: g.created_at_ns,
                first_seen_ns: g.first_seen_ns,
                parked_since_ns: g.parked_since_ns,
                waiting_s: g
                    .parked_since_ns
                    .map(|t| seconds(self.now_ns.saturating_sub(t))),
                wake_count: g.wake_count,
                last_waker: g.last_waker,
                origin: g.origin,
                blocked_at: g
                    .blocked_stack
                    .as_deref()
                    .map(|pcs| self.symbols.stack(pcs))
                    .unwrap_or_default(),
                wait_channels: g
                    .wait_channels
                    .as_deref()
                    .map(|chans| chans.iter().map(|c| format!("{c:#x}")).collect()),
                creation_stack: g
                    .creation_stack
                    .and_then(|id| self.creation_stacks.get(&id))
                    .map(|pcs| self.symbols.stack(pcs))
                    .unwrap_or_default(),
            })
            .collect();
        Snapshot {
            pid: self.pid,
            go_version: self.go_version.clone(),
            binary: self.binary.clone(),
            now_ns: self.now_ns,
            elapsed_s: seconds(self.now_ns.saturating_sub(self.attached_at_ns)),
            mode: self.mode.clone(),
            totals: table.totals(),
            probes: self.probes,
            process: self.process,
            by_state,
            suspects: analysis.suspects.clone(),
            timers: analysis.timers.clone(),
            sites,
            goroutines,
            goroutines_omitted,
            stacks_pending,
            snapshot: self.snapshot.clone(),
            ended: None,
        }
    }
}

/// A pc with no name: shown by address.
pub fn unknown(pc: u64) -> SourceLocation {
    SourceLocation {
        pc: format!("{pc:#x}"),
        function: "?".into(),
        file: None,
        line: None,
    }
}

fn seconds(ns: u64) -> f64 {
    (ns as f64 / 1e9 * 1000.0).round() / 1000.0
}

impl SourceLocation {
    /// `file:line` (base name of the file) or the function when unknown.
    pub fn short(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => {
                let base = file.rsplit('/').next().unwrap_or(file);
                format!("{base}:{line}")
            }
            _ => self.function.clone(),
        }
    }
}

/// The compact human summary printed once per interval without `--json`.
pub fn human_line(s: &Snapshot, previous: Option<&Totals>) -> String {
    let t = &s.totals;
    let (dspawn, dexit) = previous.map_or((t.spawned, t.exited), |p| {
        (
            t.spawned - p.spawned.min(t.spawned),
            t.exited - p.exited.min(t.exited),
        )
    });
    let mut states: Vec<(&String, &u64)> = s.by_state.iter().collect();
    states.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let states: Vec<String> = states
        .iter()
        .take(4)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let mut line = format!(
        "[{:>7.1}s] live {} (+{} -{})  {}",
        s.elapsed_s,
        t.live,
        dspawn,
        dexit,
        states.join(", ")
    );
    if let Some(top) = s.sites.iter().find(|site| site.stats.live > 0) {
        line.push_str(&format!(
            "  | top site {} live {}",
            top.site.short(),
            top.stats.live
        ));
    }
    if t.lost_events > 0 {
        line.push_str(&format!("  | LOST {} events", t.lost_events));
    }
    if let Some(top) = s.suspects.first() {
        line.push_str(&format!(
            "\n  {} suspect{}; top: {}",
            s.suspects.len(),
            if s.suspects.len() == 1 { "" } else { "s" },
            top.evidence
        ));
    }
    line
}

/// The final summary printed when a session ends without `--json`.
pub fn human_final(s: &Snapshot) -> String {
    let t = &s.totals;
    let mut out = format!(
        "tracer: {} after {:.1}s — pid {} ({})\n  mode: {}\n  goroutines: {} live, {} spawned, {} exited ({} of them created before attach), {} first seen after attach\n  events: {} parks, {} wakes, {} lost, {} malformed\n",
        s.ended.as_deref().unwrap_or("stopped"),
        s.elapsed_s,
        s.pid,
        s.go_version,
        s.mode.summary(),
        t.live,
        t.spawned,
        t.exited,
        t.pre_attach_exited,
        t.pre_attach_seen,
        t.parks,
        t.wakes,
        t.lost_events,
        t.malformed_events,
    );
    let mut states: Vec<(&String, &u64)> = s.by_state.iter().collect();
    states.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !states.is_empty() {
        out.push_str("  live by state:\n");
        for (state, n) in states {
            out.push_str(&format!("    {n:>8}  {state}\n"));
        }
    }
    if s.suspects.is_empty() {
        out.push_str("  leak suspects: none\n");
    } else {
        out.push_str("  leak suspects (score, kind, evidence):\n");
        for suspect in &s.suspects {
            out.push_str(&format!(
                "    {:>3}  {:<8} {}\n",
                suspect.score,
                suspect.kind.as_str(),
                suspect.evidence
            ));
        }
    }
    let live_sites: Vec<&SiteReport> = s
        .sites
        .iter()
        .filter(|site| site.stats.live > 0)
        .take(10)
        .collect();
    if !live_sites.is_empty() {
        out.push_str("  creation sites with live goroutines:\n");
        for site in live_sites {
            out.push_str(&format!(
                "    {:>8} live  {:>8} spawned  {:>8} at attach  {}  ({})\n",
                site.stats.live,
                site.stats.spawned,
                site.stats.at_attach,
                site.site.short(),
                site.site.function
            ));
        }
    }
    out
}

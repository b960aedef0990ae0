//! The live attach loop: target inspection → probes → memory snapshot →
//! model → output, until Ctrl-C, SIGTERM, `--duration`, or the target
//! exiting. Always detaches.

mod display;
mod memory;
mod model;
pub use self::model::Model;
pub mod replay;

use std::{
    collections::HashMap,
    io::{IsTerminal, Write},
    os::fd::{FromRawFd, OwnedFd},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
};

use self::display::{Dashboard, Display};
use self::memory::TargetMemory;

use crate::{
    cli::AttachArgs,
    model::GoroutineTable,
    probes::{Budget, Change, ProbeGroup, ProbeOptions, ProbeSession},
    record::{
        format::{Header, Tick, SESSION_FORMAT, SESSION_VERSION},
        Recorder, SymbolCache,
    },
    report::{human_final, ModeReport, SnapshotContext, SnapshotSummary},
    suspects::SuspectEngine,
    target::{process_cpu_ns, process_start_unix_ns, process_usage, Target},
    tui::{Action, Input, TargetInfo},
};

/// How often the ring buffer is drained. The probes only wake the reader
/// when the ring is a quarter full (see `tracer_ebpf::EVENTS_WAKEUP_BYTES`),
/// so this bounds the latency of events in quiet periods.
const DRAIN_PERIOD: Duration = Duration::from_millis(10);

/// Records drained per wake-up before the loop looks at timers and signals
/// again, so an event storm cannot starve the output or Ctrl-C.
const DRAIN_BATCH: usize = 65_536;

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Why a session ended; printed and put in the last JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Interrupted,
    Terminated,
    DurationReached,
    TargetExited,
    OutputClosed,
    /// `q` in the dashboard.
    Quit,
    /// Writing the recording failed.
    RecordingFailed,
}

impl End {
    fn describe(self) -> &'static str {
        match self {
            End::Interrupted => "interrupted (Ctrl-C)",
            End::Terminated => "terminated (SIGTERM)",
            End::DurationReached => "duration reached",
            End::TargetExited => "target process exited",
            End::OutputClosed => "output closed",
            End::Quit => "quit from the dashboard",
            End::RecordingFailed => "the recording could not be written",
        }
    }
}

pub fn attach(args: &AttachArgs) -> anyhow::Result<()> {
    let pid = args.pid;
    let started = std::time::Instant::now();
    let target = Target::from_pid(pid)?;
    log::info!("target inspected in {:?}", started.elapsed());
    // Open the exit notification before attaching, so a target that dies
    // during attach is still noticed.
    let pidfd = open_pidfd(pid).with_context(|| format!("cannot watch process {pid}"))?;
    let options = ProbeOptions {
        lifecycle: true,
        scheduling: args.precise,
        creation_stacks: args.creation_stacks,
        timers: !args.no_timers && target.timer_offsets.is_some(),
    };
    let (mut probes, ring) = ProbeSession::attach(&target, pid, options)?;
    let attached_at_ns = monotonic_ns();
    log::info!("probes attached {:?} after start", started.elapsed());
    eprintln!(
        "tracer: attached to pid {pid} ({}, {}): {} uprobes on {}",
        target.display_path,
        target.go_version.raw,
        probes.attached().len(),
        summarize_functions(&probes),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let recorder = match &args.record {
        Some(path) => Some(
            Recorder::create(path, &header(args, &target, attached_at_ns))
                .with_context(|| format!("cannot create the recording {}", path.display()))?,
        ),
        None => None,
    };
    let symbols = SymbolCache::new(&target, recorder.is_some());
    let mut model = Model::new(GoroutineTable::with_cap(args.max_tracked), recorder);
    // The probes are already attached: every goroutine the snapshot misses
    // because it was created meanwhile is seen by its spawn event.
    let (memory, mut snapshot) = seed_from_memory(&target, pid, &mut model, attached_at_ns);
    if options.timers {
        model.timers_traced(true);
        let timers = memory
            .as_ref()
            .and_then(|m| seed_timers_from_memory(m, &mut model, attached_at_ns));
        if let Some(summary) = &mut snapshot {
            summary.timers = timers;
        }
    }
    let mut ctx = SnapshotContext {
        symbols: &symbols,
        pid,
        go_version: target.go_version.raw.clone(),
        binary: target.display_path.clone(),
        attached_at_ns,
        now_ns: attached_at_ns,
        probes: probes.counters(),
        max_goroutines: args.max_goroutines,
        snapshot,
        mode: ModeReport::default(),
        creation_stacks: HashMap::new(),
        process: process_usage(pid),
    };
    let mut engine = SuspectEngine::new(args.rules.rules());
    let mut budget = Budget::new(
        args.max_overhead
            .or((!args.precise).then_some(DEFAULT_MAX_OVERHEAD_PCT)),
    );
    ctx.mode = mode_report(args, &probes, &budget, &model.table);
    if ctx.mode.untracked > 0 {
        warn_capped(args);
    }
    let mut display = if args.quiet {
        Display::Quiet
    } else if args.json || args.no_tui || !std::io::stdout().is_terminal() {
        Display::Lines {
            json: args.json,
            previous: None,
        }
    } else {
        let info = TargetInfo {
            pid,
            binary: target.display_path.clone(),
            go_version: target.go_version.raw.clone(),
            mode: ctx.mode.summary(),
        };
        Display::Dashboard(Box::new(
            Dashboard::open(info, args.no_color).context("cannot open the dashboard")?,
        ))
    };
    let result = runtime.block_on(run(
        Loop {
            args,
            probes: &mut probes,
            memory: memory.as_ref(),
            model: &mut model,
            symbols: &symbols,
            engine: &mut engine,
            budget: &mut budget,
            ctx: &mut ctx,
            display: &mut display,
        },
        ring,
        pidfd,
    ));
    if let Display::Dashboard(dashboard) = display {
        if let Err(err) = dashboard.close() {
            eprintln!("tracer: warning: cannot restore the terminal: {err}");
        }
    }
    // The observation ends here; whatever happened, the probes come out of
    // the target first (unregistering uprobes waits for RCU grace periods).
    let ended_at_ns = monotonic_ns();
    let on_at_end = ProbesOn::of(&probes);
    let detach_started = std::time::Instant::now();
    probes.detach();
    log::info!("probes detached in {:?}", detach_started.elapsed());
    let (end, mut ring, goids) = result?;
    drain(&mut ring, &mut model, usize::MAX);
    if let Some(memory) = &memory {
        if end != End::TargetExited {
            // A last read, as if the probes were still as they were:
            // goroutines that exited after the probes came out go, states
            // come up to date without park/wake probes, and spawns are
            // counted without spawn/exit probes.
            let before = goids.resolve(&model.table);
            sweep(memory, on_at_end, &mut model, before, ended_at_ns);
            if on_at_end.scheduling && on_at_end.lifecycle {
                // The sweep had nothing to do; states stay the events'.
                if let Err(err) = memory.reconcile(&mut model, ended_at_ns, false) {
                    log::warn!("the final read of the goroutine list failed: {err}");
                }
            }
        }
        memory.refresh_stacks(&mut model);
    }
    let mut new_stacks = resolve_creation_stacks(&model.table, &probes, &mut ctx.creation_stacks);
    ctx.probes = probes.counters();
    model.lost_events(ctx.probes.ringbuf_full);
    ctx.now_ns = ended_at_ns;
    ctx.process = process_usage(pid);
    ctx.mode.untracked = model.table.totals().untracked;
    let analysis = engine.update(&model.table, &model.timers, ended_at_ns, &symbols);
    let mut last = ctx.snapshot(&model.table, &analysis);
    last.ended = Some(end.describe().to_string());
    eprintln!("tracer: detached from pid {pid}: {}", end.describe());
    let recorded = model.recorder.take().map(|mut recorder| {
        symbols.cover(&model.table);
        let mut tick = tick_record(&ctx, &mut new_stacks);
        tick.ended = last.ended.clone();
        recorder.tick(&symbols.take_delta(), &tick);
        recorder.finish()
    });
    if end != End::OutputClosed && !args.quiet {
        let mut out = std::io::stdout().lock();
        let written = if args.json {
            serde_json::to_writer(&mut out, &last)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            write!(out, "{}", human_final(&last))
        };
        // A closed stdout at the very end is not worth an error exit.
        let _ = written.and_then(|()| out.flush());
    }
    if let (Some(recorded), Some(path)) = (recorded, &args.record) {
        let stats =
            recorded.with_context(|| format!("the recording {} is incomplete", path.display()))?;
        if end == End::RecordingFailed {
            anyhow::bail!("the recording {} stops early: see above", path.display());
        }
        eprintln!(
            "tracer: recorded {} records in {} ({:.1} MB)",
            stats.records,
            path.display(),
            stats.bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// `tracer record`: `attach --record FILE` without the dashboard.
pub fn record(args: crate::cli::RecordArgs) -> anyhow::Result<()> {
    let mut attach = args.attach;
    attach.record = Some(args.output);
    attach.no_tui = true;
    self::attach(&attach)
}

/// `tracer report`: from a recording, or from a live process recorded to
/// a temporary file for `--duration` first. Returns whether a suspect
/// reached `--min-score`.
pub fn report(args: &crate::cli::ReportArgs) -> anyhow::Result<bool> {
    if let Some(file) = &args.file {
        return replay::report(args, file);
    }
    let (Some(pid), Some(duration)) = (args.pid, args.duration) else {
        anyhow::bail!("report needs a recording, or --pid with --duration");
    };
    let dir = std::env::temp_dir().join(format!("tracer-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join("session.trc");
    let mut attach = AttachArgs::defaults(pid);
    attach.duration = Some(duration);
    attach.rules = args.rules.clone();
    attach.record = Some(file.clone());
    attach.quiet = true;
    let result = self::attach(&attach).and_then(|()| replay::report(args, &file));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The recording's header: the target's identity and the settings that
/// shape the documents.
fn header(args: &AttachArgs, target: &Target, attached_at_ns: u64) -> Header {
    let unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Header {
        format: SESSION_FORMAT.to_string(),
        session_version: SESSION_VERSION,
        tracer_version: env!("CARGO_PKG_VERSION").to_string(),
        pid: args.pid,
        binary: target.display_path.clone(),
        build_id: target.build_id.clone(),
        go_version: target.go_version.raw.clone(),
        target_started_unix_ns: process_start_unix_ns(args.pid),
        attached_at_ns,
        // The wall clock now, taken as the monotonic clock's attach time
        // (microseconds apart).
        attached_at_unix_ns: unix_ns - (monotonic_ns() - attached_at_ns) as i64,
        interval_ns: args.interval.as_nanos() as u64,
        rules: args.rules.rules(),
        max_goroutines: args.max_goroutines,
        max_tracked: args.max_tracked,
        command: std::env::args().collect(),
    }
}

/// The session's readings of this interval, for the recording; takes the
/// creator stacks resolved since the last one.
fn tick_record(ctx: &SnapshotContext<'_>, new_stacks: &mut Vec<(u32, Vec<u64>)>) -> Tick {
    Tick {
        now_ns: ctx.now_ns,
        probes: ctx.probes,
        mode: ctx.mode.clone(),
        process: ctx.process,
        snapshot: ctx.snapshot.clone(),
        creation_stacks: std::mem::take(new_stacks),
        ended: None,
    }
}

/// Reads the target's goroutine list into `table`. Failing that, tracing
/// goes on with the live events only, and the user is told why.
fn seed_from_memory(
    target: &Target,
    pid: u32,
    model: &mut Model,
    now_ns: u64,
) -> (Option<TargetMemory>, Option<SnapshotSummary>) {
    let memory = match TargetMemory::open(target, pid) {
        Ok(memory) => memory,
        Err(err) => {
            eprintln!("tracer: warning: cannot read the target's memory ({err}): goroutines created before attach appear only when they next park, wake or exit");
            return (None, None);
        }
    };
    match memory.seed(model, now_ns) {
        Ok(summary) => {
            eprintln!(
                "tracer: snapshot: {} goroutines read in {:.3}s ({} discarded as torn reads)",
                summary.goroutines, summary.duration_s, summary.discarded
            );
            (Some(memory), Some(summary))
        }
        Err(err) => {
            eprintln!("tracer: warning: cannot read the goroutine list ({err}): goroutines created before attach appear only when they next park, wake or exit");
            (Some(memory), None)
        }
    }
}

/// Reads the timers pending in the runtime's timer heaps into the model
/// and says what was found; `None` if they could not be read.
fn seed_timers_from_memory(memory: &TargetMemory, model: &mut Model, now_ns: u64) -> Option<u64> {
    match memory.seed_timers(model, now_ns) {
        None => {
            eprintln!("tracer: timers armed before attach are not read (no runtime.allp symbol): they appear when they next fire, are reset or stopped");
            None
        }
        Some(Ok(heaps)) => {
            eprintln!(
                "tracer: timers: {} pending in the timer heaps of {} Ps ({} of the runtime's own left out, {} discarded as torn reads)",
                heaps.timers.len(),
                heaps.ps,
                heaps.not_time,
                heaps.discarded
            );
            Some(heaps.timers.len() as u64)
        }
        Some(Err(err)) => {
            eprintln!("tracer: warning: cannot read the timer heaps ({err}): timers armed before attach appear when they next fire, are reset or stopped");
            None
        }
    }
}

/// Everything the event loop works on.
struct Loop<'a, 't> {
    args: &'a AttachArgs,
    probes: &'a mut ProbeSession,
    memory: Option<&'a TargetMemory>,
    model: &'a mut Model,
    symbols: &'a SymbolCache<'t>,
    engine: &'a mut SuspectEngine,
    budget: &'a mut Budget,
    ctx: &'a mut SnapshotContext<'t>,
    display: &'a mut Display,
}

/// The next key or resize of the dashboard; never ready without one.
async fn next_input(display: &mut Display) -> Option<std::io::Result<Input>> {
    match display {
        Display::Dashboard(dashboard) => dashboard.input.next().await,
        Display::Lines { .. } | Display::Quiet => std::future::pending().await,
    }
}

async fn run(
    l: Loop<'_, '_>,
    ring: RingBuf<MapData>,
    pidfd: OwnedFd,
) -> anyhow::Result<(End, RingBuf<MapData>, GoidBase)> {
    let Loop {
        args,
        probes,
        memory,
        model,
        symbols,
        engine,
        budget,
        ctx,
        display,
    } = l;
    // Creator stacks resolved since the last tick, for the recording.
    let mut new_stacks = Vec::new();
    // SAFETY: both values own their file descriptors and keep them open,
    // unreplaced, for as long as the AsyncFd wraps them.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .context("cannot poll the event ring buffer")?;
    // SAFETY: as above.
    let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .context("cannot poll the process")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let start = tokio::time::Instant::now();
    // The dashboard shows its first picture at once; lines come per interval.
    let first_tick = match display {
        Display::Dashboard(_) => start,
        Display::Lines { .. } | Display::Quiet => start + args.interval,
    };
    let mut ticks = tokio::time::interval_at(first_tick, args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep_until(
        start + args.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)),
    );
    tokio::pin!(deadline);
    let reread_period = args
        .snapshot_interval
        .unwrap_or(Duration::from_secs(u64::MAX / 4));
    let mut rereads = tokio::time::interval_at(start + reread_period, reread_period);
    rereads.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain_ticks = tokio::time::interval(DRAIN_PERIOD);
    // The budget looks often, so that a busy target pays for its probes a
    // fraction of a second at most.
    let mut budget_ticks = tokio::time::interval(BUDGET_PERIOD);
    budget_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the goroutine list may be read again (see SWEEP_DUTY_INVERSE).
    let mut next_sweep = std::time::Instant::now();
    let mut goids = GoidBase::Read(memory.and_then(TargetMemory::goids_allocated));
    drain_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let end = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("event ring buffer failed")?;
                if drain(guard.get_inner_mut(), model, DRAIN_BATCH) < DRAIN_BATCH {
                    guard.clear_ready();
                }
            }
            _ = drain_ticks.tick() => {
                drain(ring.get_mut(), model, DRAIN_BATCH);
            }
            _ = budget_ticks.tick() => {
                let now = memory.and_then(TargetMemory::goids_allocated);
                for change in budget_changes(budget, probes, monotonic_ns(), ctx.pid, now) {
                    let lifecycle = change.group() == ProbeGroup::Lifecycle;
                    if let (true, true, Some(memory)) = (lifecycle, change.attaches(), memory) {
                        // Spawns are traced again from here: count those
                        // since the last read from the generator first.
                        // (The few between this read and the probes'
                        // return are missed; the rate is low by then.)
                        drain(ring.get_mut(), model, usize::MAX);
                        let before = goids.resolve(&model.table);
                        let at = monotonic_ns();
                        goids = GoidBase::Read(sweep(memory, ProbesOn::of(probes), model, before, at));
                    }
                    let done = carry_out(probes, &change, display);
                    if done && lifecycle && !change.attaches() {
                        goids = GoidBase::AfterTraced(now);
                    }
                    if done && change.group() == ProbeGroup::Timers {
                        // What the probes sent before they came out first.
                        drain(ring.get_mut(), model, usize::MAX);
                        model.timers_traced(change.attaches());
                    }
                }
            }
            _ = rereads.tick(), if args.snapshot_interval.is_some() && memory.is_some() => {
                drain(ring.get_mut(), model, usize::MAX);
                if let Some(memory) = memory {
                    let started = std::time::Instant::now();
                    let states = !probes.is_attached(ProbeGroup::Scheduling);
                    match memory.reconcile(model, monotonic_ns(), states) {
                        Ok(_) => log::info!("goroutine list re-read in {:?}", started.elapsed()),
                        Err(err) => log::warn!("re-reading the goroutine list failed: {err}"),
                    }
                }
            }
            _ = ticks.tick() => {
                drain(ring.get_mut(), model, usize::MAX);
                if let Some(memory) = memory {
                    let started = std::time::Instant::now();
                    if started >= next_sweep {
                        let before = goids.resolve(&model.table);
                        goids = GoidBase::Read(sweep(memory, ProbesOn::of(probes), model, before, monotonic_ns()));
                        // Reading millions of goroutines takes seconds: keep
                        // the reads under a quarter of a core.
                        next_sweep = started + started.elapsed() * SWEEP_DUTY_INVERSE;
                    }
                    memory.refresh_stacks(model);
                }
                let added = resolve_creation_stacks(&model.table, probes, &mut ctx.creation_stacks);
                if model.recorder.is_some() {
                    new_stacks.extend(added);
                }
                probes.flush_logs();
                ctx.probes = probes.counters();
                model.lost_events(ctx.probes.ringbuf_full);
                ctx.now_ns = monotonic_ns();
                let was_capped = ctx.mode.untracked > 0;
                ctx.mode = mode_report(args, probes, budget, &model.table);
                if !was_capped && ctx.mode.untracked > 0 && matches!(display, Display::Lines { .. }) {
                    warn_capped(args);
                }
                if let Display::Dashboard(dashboard) = display {
                    dashboard.app.set_mode(ctx.mode.summary());
                }
                ctx.process = process_usage(ctx.pid);
                let analysis = engine.update(&model.table, &model.timers, ctx.now_ns, ctx.symbols);
                if !display.tick(analysis, &mut model.table, engine, ctx).context("cannot draw the dashboard")? {
                    break End::OutputClosed;
                }
                if let Some(recorder) = &mut model.recorder {
                    symbols.cover(&model.table);
                    recorder.tick(&symbols.take_delta(), &tick_record(ctx, &mut new_stacks));
                    if let Some(err) = recorder.error() {
                        eprintln!("tracer: error: cannot write the recording: {err}");
                        break End::RecordingFailed;
                    }
                }
            }
            input = next_input(display) => {
                let Display::Dashboard(dashboard) = display else { continue };
                let action = match input {
                    Some(Ok(Input::Key(key))) => dashboard.app.handle_key(key),
                    Some(Ok(Input::Resize { .. })) => dashboard.app.handle_resize(),
                    Some(Err(err)) => return Err(err).context("cannot read the terminal"),
                    None => break End::OutputClosed,
                };
                match action {
                    Action::Quit => break End::Quit,
                    Action::Redraw | Action::None if dashboard.focus_changed() => {
                        ctx.now_ns = monotonic_ns();
                        dashboard.update(None, &model.table, engine, ctx);
                        dashboard.draw().context("cannot draw the dashboard")?;
                    }
                    Action::Redraw => dashboard.draw().context("cannot draw the dashboard")?,
                    Action::None => {}
                }
            }
            _ = sigint.recv() => break End::Interrupted,
            _ = sigterm.recv() => break End::Terminated,
            _ = &mut deadline, if args.duration.is_some() => break End::DurationReached,
            _ = pidfd.readable() => break End::TargetExited,
        }
    };
    Ok((end, ring.into_inner(), goids))
}

/// A read of the whole goroutine list is followed by at least this many
/// times its duration without one: at most a quarter of a core goes to
/// reading, whatever the number of goroutines (every interval up to about
/// 250,000 goroutines here).
const SWEEP_DUTY_INVERSE: u32 = 4;

/// How often the overhead budget compares the probes' hit rate with the
/// target's CPU time.
const BUDGET_PERIOD: Duration = Duration::from_millis(250);

fn warn_capped(args: &AttachArgs) {
    eprintln!(
        "tracer: warning: the target has more than {} goroutines; the others are counted (totals.untracked) but not tracked: raise --max-tracked",
        args.max_tracked
    );
}

/// The budget's default cap without `--precise`, percent of the target's CPU.
const DEFAULT_MAX_OVERHEAD_PCT: f64 = 1.0;

/// Which probe groups that matter to the model are attached.
#[derive(Clone, Copy, Debug)]
struct ProbesOn {
    scheduling: bool,
    lifecycle: bool,
}

impl ProbesOn {
    fn of(probes: &ProbeSession) -> Self {
        ProbesOn {
            scheduling: probes.is_attached(ProbeGroup::Scheduling),
            lifecycle: probes.is_attached(ProbeGroup::Lifecycle),
        }
    }
}

/// Where counting spawns from the target's goid generator starts while the
/// spawn/exit probes are out.
#[derive(Clone, Copy, Debug)]
enum GoidBase {
    /// The generator's value at the last read (`None`: unreadable).
    Read(Option<u64>),
    /// The spawn/exit probes just came out: counting starts after the
    /// highest goid they traced, whose events are all applied by the next
    /// read (each drains the ring first); or from this read of the
    /// generator, taken before the detach, if they traced none. A read
    /// after the detach would miss the spawns between the probes leaving
    /// and that read: 200,000 in a 3M/s churn.
    AfterTraced(Option<u64>),
}

impl GoidBase {
    fn resolve(self, table: &GoroutineTable) -> Option<u64> {
        match self {
            GoidBase::Read(read) => read,
            GoidBase::AfterTraced(read) => table.max_spawned_goid().or(read),
        }
    }
}

/// The read of the goroutine list done every tick while a probe group is
/// off: without park/wake probes it sets every goroutine's state; without
/// spawn/exit probes it adds and removes goroutines and counts, from the
/// goid generator, those that came and went between two reads. Returns the
/// goid generator's value.
fn sweep(
    memory: &TargetMemory,
    on: ProbesOn,
    model: &mut Model,
    goids_before: Option<u64>,
    now_ns: u64,
) -> Option<u64> {
    let ProbesOn {
        scheduling,
        lifecycle,
    } = on;
    if scheduling && lifecycle {
        return memory.goids_allocated();
    }
    let goids = memory.goids_allocated();
    match memory.reconcile(model, now_ns, !scheduling) {
        Ok(read) => {
            if let (false, Some(now), Some(before)) = (lifecycle, goids, goids_before) {
                model.untraced_spawns(now.saturating_sub(before), read.added);
            }
        }
        Err(err) => log::warn!("reading the goroutine list failed: {err}"),
    }
    goids
}

/// Feeds the budget one tick: the probe groups to detach or re-attach.
fn budget_changes(
    budget: &mut Budget,
    probes: &ProbeSession,
    now_ns: u64,
    pid: u32,
    goids: Option<u64>,
) -> Vec<Change> {
    let attached: Vec<ProbeGroup> = ProbeGroup::ALL
        .into_iter()
        .filter(|&g| probes.is_attached(g))
        .collect();
    let Some(cpu_ns) = process_cpu_ns(pid) else {
        return Vec::new();
    };
    budget.tick(now_ns, probes.counters(), cpu_ns, goids, &attached)
}

/// Carries out one budget change; in the line-oriented display, says so on
/// stderr (the dashboard shows the mode). Returns whether it was done.
fn carry_out(probes: &mut ProbeSession, change: &Change, display: &Display) -> bool {
    let (group, on) = (change.group(), change.attaches());
    let (Change::Detach { reason, .. } | Change::Reattach { reason, .. }) = change;
    if let Err(err) = probes.set_attached(group, on) {
        log::warn!("cannot change the {} probes: {err}", group.describe());
        return false;
    }
    if matches!(display, Display::Lines { .. }) {
        let verb = if on { "re-attached" } else { "detached" };
        eprintln!("tracer: {verb} {reason}");
    }
    true
}

fn mode_report(
    args: &AttachArgs,
    probes: &ProbeSession,
    budget: &Budget,
    table: &GoroutineTable,
) -> ModeReport {
    let attached: Vec<ProbeGroup> = ProbeGroup::ALL
        .into_iter()
        .filter(|&g| probes.is_attached(g))
        .collect();
    ModeReport {
        name: if args.precise { "precise" } else { "default" }.into(),
        states_from: if attached.contains(&ProbeGroup::Scheduling) {
            "events"
        } else {
            "memory reads"
        }
        .into(),
        attached,
        budget: budget.status(),
        max_tracked: args.max_tracked as u64,
        untracked: table.totals().untracked,
    }
}

/// Reads from the probes' stack map the creator stacks that live goroutines
/// refer to and are not cached yet (identical stacks share one id);
/// returns those it added.
fn resolve_creation_stacks(
    table: &GoroutineTable,
    probes: &ProbeSession,
    cache: &mut HashMap<u32, Arc<[u64]>>,
) -> Vec<(u32, Vec<u64>)> {
    let mut added = Vec::new();
    for id in table.iter().filter_map(|g| g.creation_stack) {
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(id) {
            if let Some(pcs) = probes.stack(id) {
                slot.insert(Arc::from(pcs.as_slice()));
                added.push((id, pcs));
            }
        }
    }
    added
}

/// Applies up to `max` records from the ring buffer; returns how many.
fn drain(ring: &mut RingBuf<MapData>, model: &mut Model, max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = ring.next() else { break };
        model.event(&item);
        n += 1;
    }
    n
}

fn open_pidfd(pid: u32) -> anyhow::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            anyhow::bail!("process {pid} exited while attaching");
        }
        return Err(err).context("pidfd_open failed");
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn summarize_functions(probes: &ProbeSession) -> String {
    let mut names: Vec<&str> = probes
        .attached()
        .iter()
        .map(|p| p.function.as_str())
        .collect();
    names.dedup();
    names.join(", ")
}

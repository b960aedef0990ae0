//! The live attach loop: target inspection → probes → memory snapshot →
//! model → output, until Ctrl-C, SIGTERM, `--duration`, or the target
//! exiting. Always detaches.

mod display;
mod memory;

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
    model::{decode_event, GoroutineTable},
    probes::{Budget, Change, ProbeGroup, ProbeOptions, ProbeSession},
    report::{human_final, ModeReport, SnapshotContext, SnapshotSummary},
    suspects::SuspectEngine,
    target::{process_cpu_ns, process_usage, Target},
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
    let mut table = GoroutineTable::with_cap(args.max_tracked);
    // The probes are already attached: every goroutine the snapshot misses
    // because it was created meanwhile is seen by its spawn event.
    let (memory, snapshot) = seed_from_memory(&target, pid, &mut table, attached_at_ns);
    let mut ctx = SnapshotContext {
        symbols: &target,
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
    ctx.mode = mode_report(args, &probes, &budget, &table);
    if ctx.mode.untracked > 0 {
        warn_capped(args);
    }
    let mut display = if args.json || args.no_tui || !std::io::stdout().is_terminal() {
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
            table: &mut table,
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
    drain(&mut ring, &mut table, usize::MAX);
    if let Some(memory) = &memory {
        if end != End::TargetExited {
            // A last read, as if the probes were still as they were:
            // goroutines that exited after the probes came out go, states
            // come up to date without park/wake probes, and spawns are
            // counted without spawn/exit probes.
            let before = goids.resolve(&table);
            sweep(memory, on_at_end, &mut table, before, ended_at_ns);
            if on_at_end.scheduling && on_at_end.lifecycle {
                // The sweep had nothing to do; states stay the events'.
                if let Err(err) = memory.reconcile(&mut table, ended_at_ns, false) {
                    log::warn!("the final read of the goroutine list failed: {err}");
                }
            }
        }
        memory.refresh_stacks(&mut table);
    }
    resolve_creation_stacks(&table, &probes, &mut ctx.creation_stacks);
    ctx.probes = probes.counters();
    table.set_lost_events(ctx.probes.ringbuf_full);
    ctx.now_ns = ended_at_ns;
    ctx.process = process_usage(pid);
    ctx.mode.untracked = table.totals().untracked;
    let analysis = engine.update(&table, ended_at_ns, &target);
    let mut last = ctx.snapshot(&table, &analysis.suspects);
    last.ended = Some(end.describe().to_string());
    eprintln!("tracer: detached from pid {pid}: {}", end.describe());
    if end != End::OutputClosed {
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
    Ok(())
}

/// Reads the target's goroutine list into `table`. Failing that, tracing
/// goes on with the live events only, and the user is told why.
fn seed_from_memory(
    target: &Target,
    pid: u32,
    table: &mut GoroutineTable,
    now_ns: u64,
) -> (Option<TargetMemory>, Option<SnapshotSummary>) {
    let memory = match TargetMemory::open(target, pid) {
        Ok(memory) => memory,
        Err(err) => {
            eprintln!("tracer: warning: cannot read the target's memory ({err}): goroutines created before attach appear only when they next park, wake or exit");
            return (None, None);
        }
    };
    match memory.seed(table, now_ns) {
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

/// Everything the event loop works on.
struct Loop<'a, 't> {
    args: &'a AttachArgs,
    probes: &'a mut ProbeSession,
    memory: Option<&'a TargetMemory>,
    table: &'a mut GoroutineTable,
    engine: &'a mut SuspectEngine,
    budget: &'a mut Budget,
    ctx: &'a mut SnapshotContext<'t>,
    display: &'a mut Display,
}

/// The next key or resize of the dashboard; never ready without one.
async fn next_input(display: &mut Display) -> Option<std::io::Result<Input>> {
    match display {
        Display::Dashboard(dashboard) => dashboard.input.next().await,
        Display::Lines { .. } => std::future::pending().await,
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
        table,
        engine,
        budget,
        ctx,
        display,
    } = l;
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
        Display::Lines { .. } => start + args.interval,
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
                if drain(guard.get_inner_mut(), table, DRAIN_BATCH) < DRAIN_BATCH {
                    guard.clear_ready();
                }
            }
            _ = drain_ticks.tick() => {
                drain(ring.get_mut(), table, DRAIN_BATCH);
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
                        drain(ring.get_mut(), table, usize::MAX);
                        let before = goids.resolve(table);
                        let at = monotonic_ns();
                        goids = GoidBase::Read(sweep(memory, ProbesOn::of(probes), table, before, at));
                    }
                    if carry_out(probes, &change, display) && lifecycle && !change.attaches() {
                        goids = GoidBase::AfterTraced(now);
                    }
                }
            }
            _ = rereads.tick(), if args.snapshot_interval.is_some() && memory.is_some() => {
                drain(ring.get_mut(), table, usize::MAX);
                if let Some(memory) = memory {
                    let started = std::time::Instant::now();
                    let states = !probes.is_attached(ProbeGroup::Scheduling);
                    match memory.reconcile(table, monotonic_ns(), states) {
                        Ok(_) => log::info!("goroutine list re-read in {:?}", started.elapsed()),
                        Err(err) => log::warn!("re-reading the goroutine list failed: {err}"),
                    }
                }
            }
            _ = ticks.tick() => {
                drain(ring.get_mut(), table, usize::MAX);
                if let Some(memory) = memory {
                    let started = std::time::Instant::now();
                    if started >= next_sweep {
                        let before = goids.resolve(table);
                        goids = GoidBase::Read(sweep(memory, ProbesOn::of(probes), table, before, monotonic_ns()));
                        // Reading millions of goroutines takes seconds: keep
                        // the reads under a quarter of a core.
                        next_sweep = started + started.elapsed() * SWEEP_DUTY_INVERSE;
                    }
                    memory.refresh_stacks(table);
                }
                resolve_creation_stacks(table, probes, &mut ctx.creation_stacks);
                probes.flush_logs();
                ctx.probes = probes.counters();
                table.set_lost_events(ctx.probes.ringbuf_full);
                ctx.now_ns = monotonic_ns();
                let was_capped = ctx.mode.untracked > 0;
                ctx.mode = mode_report(args, probes, budget, table);
                if !was_capped && ctx.mode.untracked > 0 && matches!(display, Display::Lines { .. }) {
                    warn_capped(args);
                }
                if let Display::Dashboard(dashboard) = display {
                    dashboard.app.set_mode(ctx.mode.summary());
                }
                ctx.process = process_usage(ctx.pid);
                let analysis = engine.update(table, ctx.now_ns, ctx.symbols);
                if !display.tick(analysis, table, engine, ctx).context("cannot draw the dashboard")? {
                    break End::OutputClosed;
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
                        dashboard.update(None, table, engine, ctx);
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
    table: &mut GoroutineTable,
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
    match memory.reconcile(table, now_ns, !scheduling) {
        Ok(read) => {
            if let (false, Some(now), Some(before)) = (lifecycle, goids, goids_before) {
                table.count_untraced_spawns(now.saturating_sub(before), read.added);
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
        name: if args.precise { "precise" } else { "default" },
        states_from: if attached.contains(&ProbeGroup::Scheduling) {
            "events"
        } else {
            "memory reads"
        },
        attached,
        budget: budget.status(),
        max_tracked: args.max_tracked as u64,
        untracked: table.totals().untracked,
    }
}

/// Reads from the probes' stack map the creator stacks that live goroutines
/// refer to and are not cached yet (identical stacks share one id).
fn resolve_creation_stacks(
    table: &GoroutineTable,
    probes: &ProbeSession,
    cache: &mut HashMap<u32, Arc<[u64]>>,
) {
    for id in table.iter().filter_map(|g| g.creation_stack) {
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(id) {
            if let Some(pcs) = probes.stack(id) {
                slot.insert(Arc::from(pcs));
            }
        }
    }
}

/// Applies up to `max` records from the ring buffer; returns how many.
fn drain(ring: &mut RingBuf<MapData>, table: &mut GoroutineTable, max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = ring.next() else { break };
        match decode_event(&item) {
            Ok(event) => table.apply(&event),
            Err(err) => {
                log::debug!("dropping malformed event: {err}");
                table.record_malformed();
            }
        }
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

//! Sessions over a recording: `tracer replay`, `report` and `export` read
//! a file with [`Playback`], which feeds the recorded inputs through the
//! same [`Model`] door as live and judges suspects at the recorded ticks
//! with the same engine, so every document is the one the live session
//! made at that tick.

use std::{
    cell::RefCell,
    collections::HashMap,
    fs::File,
    io::{BufReader, Write},
    path::Path,
    sync::Arc,
};

use anyhow::Context;

use super::{display::Display, model::Model};
use crate::{
    cli::ReplayArgs,
    model::GoroutineTable,
    record::{
        format::{self, kind, Decoder, Header, ListCodec, PayloadError, SymbolDelta, Tick},
        RecordReader, SymbolStore,
    },
    report::{human_final, SnapshotContext, SourceLocation, Symbols},
    suspects::{Analysis, SuspectEngine},
};

/// The recording's names, grown as `SYMBOLS` records are read while
/// documents borrow them.
#[derive(Default)]
pub struct RecordedSymbols(RefCell<SymbolStore>);

impl Symbols for RecordedSymbols {
    fn creation_site(&self, runtime_pc: u64) -> SourceLocation {
        self.0.borrow().creation_site(runtime_pc)
    }
    fn stack(&self, pcs: &[u64]) -> Vec<SourceLocation> {
        self.0.borrow().stack(pcs)
    }
    fn function(&self, runtime_pc: u64) -> Option<String> {
        self.0.borrow().function(runtime_pc)
    }
    fn wait_reason(&self, code: u8) -> String {
        self.0.borrow().wait_reason(code)
    }
}

/// The session's readings at the latest tick.
#[derive(Default)]
pub struct Readings {
    pub tick: Tick,
    pub creation_stacks: HashMap<u32, Arc<[u64]>>,
}

/// A recording being replayed: the model and engine at the current
/// position.
pub struct Playback {
    reader: RecordReader<BufReader<File>>,
    pub header: Header,
    lists: ListCodec,
    pub model: Model,
    pub engine: SuspectEngine,
    pub readings: Readings,
    /// Ticks replayed so far.
    pub ticks: u64,
    /// Set when a record could not be decoded: replay stops before it.
    damaged: Option<PayloadError>,
}

impl Playback {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open the recording {}", path.display()))?;
        let (reader, payload) = RecordReader::open(BufReader::with_capacity(1 << 20, file))
            .with_context(|| format!("cannot read {}", path.display()))?;
        let header: Header = serde_json::from_slice(&payload)
            .ok()
            .filter(|h: &Header| h.format == format::SESSION_FORMAT)
            .with_context(|| {
                format!(
                    "{} is a recording container, but not of a tracer session",
                    path.display()
                )
            })?;
        if header.session_version != format::SESSION_VERSION {
            anyhow::bail!(
                "{} holds a session of version {}; this tracer reads version {}",
                path.display(),
                header.session_version,
                format::SESSION_VERSION
            );
        }
        Ok(Playback {
            reader,
            model: Model::new(GoroutineTable::with_cap(header.max_tracked), None),
            engine: SuspectEngine::new(header.rules.clone()),
            header,
            lists: ListCodec::default(),
            readings: Readings::default(),
            ticks: 0,
            damaged: None,
        })
    }

    /// Applies the records up to the next tick and returns it (its readings
    /// are then in [`Playback::readings`]); `None` at the end of the
    /// recording. Symbols met on the way go into `symbols`.
    pub fn next_tick(&mut self, symbols: &RecordedSymbols) -> Option<&Tick> {
        if self.damaged.is_some() {
            return None;
        }
        while let Some((kind, payload)) = self.reader.next_record() {
            let applied = apply(kind, payload, &mut self.model, &mut self.lists, symbols);
            match applied {
                Ok(None) => {}
                Ok(Some(tick)) => {
                    for (id, pcs) in &tick.creation_stacks {
                        self.readings
                            .creation_stacks
                            .insert(*id, Arc::from(pcs.as_slice()));
                    }
                    self.readings.tick = tick;
                    self.ticks += 1;
                    return Some(&self.readings.tick);
                }
                Err(err) => {
                    self.damaged = Some(err);
                    return None;
                }
            }
        }
        None
    }

    /// Judges suspects at the current tick, as live did.
    pub fn analyze(&mut self, symbols: &RecordedSymbols) -> Analysis {
        self.engine.update(
            &self.model.table,
            &self.model.timers,
            self.readings.tick.now_ns,
            symbols,
        )
    }

    /// The context of documents at the current tick.
    pub fn context<'s>(&self, symbols: &'s RecordedSymbols) -> SnapshotContext<'s> {
        let tick = &self.readings.tick;
        SnapshotContext {
            symbols,
            pid: self.header.pid,
            go_version: self.header.go_version.clone(),
            binary: self.header.binary.clone(),
            attached_at_ns: self.header.attached_at_ns,
            now_ns: tick.now_ns,
            probes: tick.probes,
            max_goroutines: self.header.max_goroutines,
            snapshot: tick.snapshot.clone(),
            mode: tick.mode.clone(),
            creation_stacks: self.readings.creation_stacks.clone(),
            process: tick.process,
        }
    }

    /// Why the replay stopped short of the session's end, if it did: a cut
    /// or damaged file (`None` when it ended as recorded, or is not over).
    pub fn warning(&self) -> Option<String> {
        if let Some(err) = &self.damaged {
            return Some(format!(
                "recording is damaged after {} intervals ({err}): replayed up to there",
                self.ticks
            ));
        }
        let ended = self.readings.tick.ended.is_some();
        match self.reader.end_warning() {
            Some(warning) => Some(warning),
            None if !ended && self.reader.end().is_some() => Some(format!(
                "recording stops after {} intervals without the session's end (the tracer was killed?)",
                self.ticks
            )),
            None => None,
        }
    }
}

/// Applies one record to the model; returns the tick it is, if it is one.
fn apply(
    kind: u8,
    payload: &[u8],
    model: &mut Model,
    lists: &mut ListCodec,
    symbols: &RecordedSymbols,
) -> Result<Option<Tick>, PayloadError> {
    let mut input = Decoder::new(kind, payload);
    match kind {
        kind::EVENTS => {
            while !input.is_empty() {
                model.event(input.bytes()?);
            }
        }
        kind::LIST_PART => lists.decode_chunk(&mut input)?,
        kind::SEED => {
            let now_ns = input.u64()?;
            lists.decode_chunk(&mut input)?;
            model.seed(lists.finish(now_ns), now_ns);
        }
        kind::RECONCILE => {
            let started_ns = input.u64()?;
            let states = input.bool()?;
            lists.decode_chunk(&mut input)?;
            model.reconcile(lists.finish(started_ns), started_ns, states);
        }
        kind::BLOCKED_AT => {
            while !input.is_empty() {
                model.blocked_at(format::decode_blocked_at(&mut input)?);
            }
        }
        kind::UNTRACED_SPAWNS => {
            let spawned = input.u64()?;
            let found = input.u64()?;
            model.untraced_spawns(spawned, found);
        }
        kind::LOST_EVENTS => model.lost_events(input.u64()?),
        kind::TIMERS_TRACED => model.timers_traced(input.bool()?),
        kind::TIMER_SEED => {
            let (timers, now_ns) = format::decode_timer_seed(&mut input)?;
            model.seed_timers(timers, now_ns);
        }
        kind::SYMBOLS => {
            let delta: SymbolDelta = format::json(kind, payload)?;
            symbols.0.borrow_mut().extend(delta);
            return Ok(None);
        }
        kind::TICK => return format::json(kind, payload).map(Some),
        // A kind from a newer minor version: not needed to replay.
        _ => return Ok(None),
    }
    input.finish()?;
    Ok(None)
}

/// `tracer replay`.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if args.json || args.no_tui || !std::io::stdout().is_terminal() {
        return replay_lines(&args.file, args.json);
    }
    replay_dashboard(args)
}

/// Where the dashboard's replay stands.
struct Transport {
    playing: bool,
    speed: f64,
    /// The recording is over: the last tick is shown.
    at_end: bool,
}

/// How far `[` and `]` seek.
const SEEK_STEP_NS: u64 = 10_000_000_000;

/// `tracer replay` on a terminal: the live dashboard over the recording.
/// Space plays/pauses, `<`/`>` halve/double the speed, `[`/`]` seek 10 s
/// back/forward; every view shows the state at the replay position.
fn replay_dashboard(args: &ReplayArgs) -> anyhow::Result<()> {
    use crossterm::event::KeyCode;
    use std::time::Duration;

    use crate::tui::{Action, Input, TargetInfo};

    let symbols = RecordedSymbols::default();
    let mut playback = Playback::open(&args.file)?;
    let info = TargetInfo {
        pid: playback.header.pid,
        binary: playback.header.binary.clone(),
        go_version: playback.header.go_version.clone(),
        mode: String::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let mut dashboard = super::display::Dashboard::open(info, args.no_color)
        .context("cannot open the dashboard")?;
    let mut transport = Transport {
        playing: true,
        speed: args.speed,
        at_end: false,
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        // The first tick at once.
        let mut due = tokio::time::Instant::now();
        loop {
            let wait = tokio::time::sleep_until(due);
            tokio::select! {
                _ = wait, if transport.playing && !transport.at_end => {
                    let before = playback.readings.tick.now_ns;
                    if playback.next_tick(&symbols).is_some() {
                        show(&mut dashboard, &mut playback, &symbols, &transport)?;
                        let step = playback.readings.tick.now_ns.saturating_sub(before);
                        let step = if before == 0 { 0 } else { step };
                        due = tokio::time::Instant::now()
                            + Duration::from_nanos((step as f64 / transport.speed) as u64);
                    } else {
                        transport.at_end = true;
                        show_transport(&mut dashboard, &playback, &transport)?;
                    }
                }
                input = dashboard.input.next() => {
                    let key = match input {
                        Some(Ok(Input::Key(key))) => key,
                        Some(Ok(Input::Resize { .. })) => {
                            dashboard.app.handle_resize();
                            dashboard.draw()?;
                            continue;
                        }
                        Some(Err(err)) => return Err(err).context("cannot read the terminal"),
                        None => return Ok(()),
                    };
                    let typing = dashboard.app.is_typing();
                    let seek = match key.code {
                        KeyCode::Char(' ') if !typing => {
                            transport.playing = !transport.playing;
                            due = tokio::time::Instant::now();
                            None
                        }
                        KeyCode::Char('>') if !typing => {
                            transport.speed = (transport.speed * 2.0).min(10_000.0);
                            None
                        }
                        KeyCode::Char('<') if !typing => {
                            transport.speed = (transport.speed / 2.0).max(0.01);
                            None
                        }
                        KeyCode::Char(']') if !typing => {
                            Some(playback.readings.tick.now_ns.saturating_add(SEEK_STEP_NS))
                        }
                        KeyCode::Char('[') if !typing => Some(
                            playback
                                .readings
                                .tick
                                .now_ns
                                .saturating_sub(SEEK_STEP_NS)
                                .max(playback.header.attached_at_ns),
                        ),
                        _ => {
                            match dashboard.app.handle_key(key) {
                                Action::Quit => return Ok(()),
                                Action::Redraw | Action::None if dashboard.focus_changed() => {
                                    let ctx = playback.context(&symbols);
                                    dashboard.update(None, &playback.model.table, &playback.engine, &ctx);
                                    dashboard.draw()?;
                                }
                                Action::Redraw => dashboard.draw()?,
                                Action::None => {}
                            }
                            continue;
                        }
                    };
                    if let Some(to_ns) = seek {
                        if to_ns < playback.readings.tick.now_ns {
                            playback = Playback::open(&args.file)?;
                            *symbols.0.borrow_mut() = SymbolStore::default();
                            dashboard.app.clear_history();
                        }
                        transport.at_end = !seek_to(&mut playback, &symbols, &mut dashboard, to_ns);
                        show(&mut dashboard, &mut playback, &symbols, &transport)?;
                        due = tokio::time::Instant::now()
                            + Duration::from_nanos((playback.header.interval_ns as f64 / transport.speed) as u64);
                    } else {
                        show_transport(&mut dashboard, &playback, &transport)?;
                    }
                }
            }
        }
    });
    if let Err(err) = dashboard.close() {
        eprintln!("tracer: warning: cannot restore the terminal: {err}");
    }
    if let Some(warning) = playback.warning() {
        eprintln!("tracer: warning: {warning}");
    }
    result
}

/// Replays ticks until the one at or after `to_ns`, judging each (the
/// engine's growth windows need them all) and feeding the Overview's
/// history; returns `false` when the recording ended first.
fn seek_to(
    playback: &mut Playback,
    symbols: &RecordedSymbols,
    dashboard: &mut super::display::Dashboard,
    to_ns: u64,
) -> bool {
    while playback.readings.tick.now_ns < to_ns || playback.ticks == 0 {
        if playback.next_tick(symbols).is_none() {
            return false;
        }
        judge(dashboard, playback, symbols);
    }
    true
}

/// Judges suspects at the current tick and gives the dashboard the frame.
fn judge(
    dashboard: &mut super::display::Dashboard,
    playback: &mut Playback,
    symbols: &RecordedSymbols,
) {
    let analysis = playback.analyze(symbols);
    let ctx = playback.context(symbols);
    dashboard.update(
        Some(Arc::new(analysis)),
        &playback.model.table,
        &playback.engine,
        &ctx,
    );
}

/// Judges and draws the current tick.
fn show(
    dashboard: &mut super::display::Dashboard,
    playback: &mut Playback,
    symbols: &RecordedSymbols,
    transport: &Transport,
) -> anyhow::Result<()> {
    judge(dashboard, playback, symbols);
    playback.model.table.watch(&dashboard.examples());
    show_transport(dashboard, playback, transport)
}

/// The header line: the replay position and controls, then the recorded
/// mode.
fn show_transport(
    dashboard: &mut super::display::Dashboard,
    playback: &Playback,
    transport: &Transport,
) -> anyhow::Result<()> {
    let at = playback
        .readings
        .tick
        .now_ns
        .saturating_sub(playback.header.attached_at_ns);
    let state = if transport.at_end {
        "end of recording"
    } else if transport.playing {
        "playing"
    } else {
        "paused"
    };
    dashboard.app.set_mode(format!(
        "replay {:.0}s {state} {}x (space play/pause, [ ] seek 10s, < > speed) · {}",
        at as f64 / 1e9,
        transport.speed,
        playback.readings.tick.mode.summary()
    ));
    dashboard.draw()?;
    Ok(())
}

/// Prints the documents of every tick, as `attach --json` (or the summary
/// lines) printed them live, and the final one.
fn replay_lines(path: &Path, json: bool) -> anyhow::Result<()> {
    let symbols = RecordedSymbols::default();
    let mut playback = Playback::open(path)?;
    let mut display = Display::Lines {
        json,
        previous: None,
    };
    let mut last = None;
    while let Some(tick) = playback.next_tick(&symbols) {
        let ended = tick.ended.clone();
        let analysis = playback.analyze(&symbols);
        let ctx = playback.context(&symbols);
        if ended.is_some() {
            let mut doc = ctx.snapshot(&playback.model.table, &analysis);
            doc.ended = ended;
            last = Some(doc);
            break;
        }
        if !display.tick(analysis, &mut playback.model.table, &playback.engine, &ctx)? {
            return Ok(());
        }
    }
    if let Some(warning) = playback.warning() {
        eprintln!("tracer: warning: {warning}");
    }
    let last = match last {
        Some(doc) => doc,
        // A cut recording: the state at its last complete tick.
        None if playback.ticks > 0 => {
            let analysis = playback.analyze(&symbols);
            let mut doc = playback
                .context(&symbols)
                .snapshot(&playback.model.table, &analysis);
            doc.ended = Some("recording cut short".to_string());
            doc
        }
        None => anyhow::bail!("{} holds no complete interval to replay", path.display()),
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &last)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", human_final(&last))?;
    }
    out.flush()?;
    Ok(())
}

/// What `tracer report` prints with `--json` (README, "tracer report
/// --json").
#[derive(serde::Serialize)]
struct ReportDocument<'a> {
    target: ReportTarget<'a>,
    /// Seconds from attach to the end of the recording.
    duration_s: f64,
    /// Why the session ended; `None` for a cut recording.
    ended: Option<String>,
    /// Set when the recording was cut or damaged.
    warning: Option<String>,
    totals: crate::model::Totals,
    /// The thresholds the suspects were judged by.
    rules: &'a crate::suspects::Rules,
    suspects: &'a [crate::suspects::Suspect],
}

#[derive(serde::Serialize)]
struct ReportTarget<'a> {
    pid: u32,
    binary: &'a str,
    go_version: &'a str,
    build_id: Option<&'a str>,
}

/// `tracer report`: the suspects at the end of a recording (or of a live
/// session recorded to a temporary file first). Returns whether a suspect
/// scored at least `min_score`.
pub fn report(args: &crate::cli::ReportArgs, path: &Path) -> anyhow::Result<bool> {
    let symbols = RecordedSymbols::default();
    let mut playback = Playback::open(path)?;
    // Judged by the recorded rules, with the thresholds given here instead.
    let rules = args.rules.over(playback.header.rules.clone());
    playback.engine = SuspectEngine::new(rules.clone());
    let mut analysis = None;
    let mut ended = None;
    while let Some(tick) = playback.next_tick(&symbols) {
        ended = tick.ended.clone();
        analysis = Some(playback.analyze(&symbols));
    }
    let analysis =
        analysis.with_context(|| format!("{} holds no complete interval", path.display()))?;
    let warning = playback.warning();
    let header = &playback.header;
    let doc = ReportDocument {
        target: ReportTarget {
            pid: header.pid,
            binary: &header.binary,
            go_version: &header.go_version,
            build_id: header.build_id.as_deref(),
        },
        duration_s: playback
            .readings
            .tick
            .now_ns
            .saturating_sub(header.attached_at_ns) as f64
            / 1e9,
        ended,
        warning,
        totals: playback.model.table.totals(),
        rules: &rules,
        suspects: &analysis.suspects,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report_text(&doc))?;
    }
    out.flush()?;
    Ok(analysis.suspects.iter().any(|s| s.score >= args.min_score))
}

fn report_text(doc: &ReportDocument<'_>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let t = &doc.target;
    let _ = writeln!(
        out,
        "tracer report: pid {} ({}, {}), {:.1}s traced{}",
        t.pid,
        t.binary,
        t.go_version,
        doc.duration_s,
        doc.ended
            .as_deref()
            .map_or(String::new(), |e| format!(", ended: {e}"))
    );
    if let Some(warning) = &doc.warning {
        let _ = writeln!(out, "warning: {warning}");
    }
    let _ = writeln!(
        out,
        "goroutines: {} live, {} spawned, {} exited",
        doc.totals.live, doc.totals.spawned, doc.totals.exited
    );
    if doc.suspects.is_empty() {
        let _ = writeln!(out, "no leak suspects");
        return out;
    }
    let _ = writeln!(out, "{} leak suspect(s):", doc.suspects.len());
    for (i, s) in doc.suspects.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n{}. [{} score {}] {}",
            i + 1,
            s.kind.as_str(),
            s.score,
            s.evidence
        );
        if let Some(site) = &s.creation_site {
            let _ = writeln!(out, "   created at  {}", location(site));
        }
        for (j, frame) in s.blocked_at.iter().take(8).enumerate() {
            let label = if j == 0 { "blocked at" } else { "          " };
            let _ = writeln!(out, "   {label}  {}", location(frame));
        }
        let _ = writeln!(out, "   example goroutine {}", s.example_goid);
    }
    out
}

fn location(l: &SourceLocation) -> String {
    match (&l.file, l.line) {
        (Some(file), Some(line)) => format!("{} {}:{}", l.function, file, line),
        _ => format!("{} {}", l.function, l.pc),
    }
}

/// `tracer export`: a goroutine profile and/or a timeline of a recording.
pub fn export(args: &crate::cli::ExportArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.pprof {
        export_pprof(&args.file, out, args.at)?;
    }
    if let Some(out) = &args.perfetto {
        export_perfetto(&args.file, out)?;
    }
    Ok(())
}

/// The goroutines alive at `at` (since attach; default: the end) as a
/// pprof goroutine profile: one sample per blocked-at stack, state and
/// creation site, like Go's own `goroutine` profile. Goroutines not
/// waiting have no stack read from memory: their start function stands
/// for it.
fn export_pprof(path: &Path, out: &Path, at: Option<std::time::Duration>) -> anyhow::Result<()> {
    use crate::export::pprof;

    let symbols = RecordedSymbols::default();
    let mut playback = Playback::open(path)?;
    let until = at.map(|at| playback.header.attached_at_ns + at.as_nanos() as u64);
    while until.is_none_or(|until| playback.readings.tick.now_ns < until) {
        if playback.next_tick(&symbols).is_none() {
            break;
        }
    }
    if playback.ticks == 0 {
        anyhow::bail!("{} holds no complete interval", path.display());
    }
    if let Some(warning) = playback.warning() {
        eprintln!("tracer: warning: {warning}");
    }
    // Goroutines by (blocked-at stack, start pc, state, creation site).
    type Key = (Option<Arc<[u64]>>, Option<u64>, String, Option<u64>);
    let mut samples: HashMap<Key, u64> = HashMap::new();
    for g in playback.model.table.iter() {
        let state = crate::report::state_label(g, &symbols);
        *samples
            .entry((g.blocked_stack.clone(), g.start_pc, state, g.gopc))
            .or_default() += 1;
    }
    let samples: Vec<pprof::ProfileSample> = samples
        .into_iter()
        .map(|((stack, start_pc, state, gopc), count)| {
            let frames = match (&stack, start_pc) {
                (Some(pcs), _) if !pcs.is_empty() => symbols.stack(pcs),
                (_, Some(pc)) => vec![SourceLocation {
                    function: symbols.function(pc).unwrap_or_else(|| "?".to_string()),
                    ..crate::report::unknown(pc)
                }],
                _ => vec![SourceLocation {
                    function: "unknown".to_string(),
                    ..crate::report::unknown(0)
                }],
            };
            let mut labels = vec![("state".to_string(), state)];
            if let Some(pc) = gopc {
                let site = symbols.creation_site(pc);
                labels.push(("created_by".to_string(), crate::suspects::site_label(&site)));
            }
            pprof::ProfileSample {
                frames,
                count,
                labels,
            }
        })
        .collect();
    let header = &playback.header;
    let now_ns = playback.readings.tick.now_ns;
    let elapsed = now_ns.saturating_sub(header.attached_at_ns);
    let bytes = pprof::goroutine_profile(
        &samples,
        header.attached_at_unix_ns + elapsed as i64,
        elapsed as i64,
    );
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "tracer: wrote the {} goroutines alive {:.1}s after attach to {}",
        playback.model.table.totals().live,
        elapsed as f64 / 1e9,
        out.display()
    );
    Ok(())
}

/// The whole recording as a Chrome JSON trace: a track per goroutine with
/// its lifetime as a slice (from its spawn, or from when the session first
/// saw it, to its exit or the end), parks and wakes as instants (with
/// `--precise`), and counters of live goroutines and spawns.
fn export_perfetto(path: &Path, out: &Path) -> anyhow::Result<()> {
    use crate::{export::perfetto::TraceWriter, model::EventBody};
    use std::collections::HashSet;

    let symbols = RecordedSymbols::default();
    let mut playback = Playback::open(path)?;
    playback.model.tap = Some(Vec::new());
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let origin = playback.header.attached_at_ns;
    let name = format!(
        "pid {} {} ({})",
        playback.header.pid, playback.header.binary, playback.header.go_version
    );
    let mut trace = TraceWriter::new(std::io::BufWriter::new(file), &name, origin)?;
    let label = |goid: u64, start_pc: Option<u64>| {
        let function = start_pc
            .and_then(|pc| symbols.function(pc))
            .unwrap_or_else(|| "?".to_string());
        format!("g{goid} {function}")
    };
    let mut open: HashSet<u64> = HashSet::new();
    while playback.next_tick(&symbols).is_some() {
        let events = playback.model.tap.replace(Vec::new()).unwrap_or_default();
        for event in &events {
            match event.body {
                EventBody::Spawn(spawn) => {
                    let site = crate::suspects::site_label(&symbols.creation_site(spawn.gopc));
                    let name = label(spawn.goid, Some(spawn.start_pc));
                    trace.goroutine_start(
                        spawn.goid,
                        event.ts_ns,
                        &name,
                        &[("created_at", &site)],
                    )?;
                    open.insert(spawn.goid);
                }
                EventBody::Exit { goid, .. } => {
                    trace.goroutine_end(goid, event.ts_ns)?;
                    open.remove(&goid);
                }
                EventBody::Park { goid, reason, .. } => {
                    let reason = symbols.wait_reason(reason);
                    trace.instant(goid, event.ts_ns, &format!("park: {reason}"), &[])?;
                }
                EventBody::Ready { goid, waker, .. } => {
                    let waker = waker.map_or_else(|| "runtime".to_string(), |w| format!("g{w}"));
                    trace.instant(goid, event.ts_ns, "wake", &[("woken_by", &waker)])?;
                }
                _ => {}
            }
        }
        // Goroutines the events did not show: found by reads of the list
        // (from attach, or while spawn probes were out), and gone from it.
        let now_ns = playback.readings.tick.now_ns;
        let table = &playback.model.table;
        let unseen: Vec<_> = table.iter().filter(|g| !open.contains(&g.goid)).collect();
        for g in unseen {
            let site = g
                .gopc
                .map(|pc| crate::suspects::site_label(&symbols.creation_site(pc)))
                .unwrap_or_default();
            let start = g.created_at_ns.unwrap_or(g.first_seen_ns);
            trace.goroutine_start(
                g.goid,
                start,
                &label(g.goid, g.start_pc),
                &[("created_at", &site)],
            )?;
            open.insert(g.goid);
        }
        let gone: Vec<u64> = open
            .iter()
            .copied()
            .filter(|&goid| table.get(goid).is_none())
            .collect();
        for goid in gone {
            trace.goroutine_end(goid, now_ns)?;
            open.remove(&goid);
        }
        let totals = table.totals();
        trace.counter(now_ns, "live goroutines", totals.live as f64)?;
        trace.counter(now_ns, "goroutines spawned", totals.spawned as f64)?;
    }
    if let Some(warning) = playback.warning() {
        eprintln!("tracer: warning: {warning}");
    }
    let end_ns = playback.readings.tick.now_ns;
    let mut file = trace.finish(end_ns)?;
    file.flush()?;
    eprintln!(
        "tracer: wrote the timeline of {} to {}",
        path.display(),
        out.display()
    );
    Ok(())
}

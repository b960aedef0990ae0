//! Timers and contexts for the suspect engine: their sites named and
//! grouped by kind and first user frame, and the rules that make suspects
//! of them (README, "Leak suspects").
//!
//! - **context_leak**: contexts of one site never cancelled and kept alive
//!   by a cancelable parent or their deadline timer, whose count grew
//!   through the growth window, or at least `backlog_min` of them older
//!   than `blocked_after`. A never-cancelled context nothing keeps (child of
//!   `Background` or `WithoutCancel`, no deadline) is collected by the GC:
//!   not a leak.
//! - **timer_leak** / **after_in_loop**: the same for armed timers of
//!   `AfterFunc`, `NewTimer` and `time.After` (the latter in a loop).
//! - **ticker_leak**: more than a handful of tickers armed for longer than
//!   `blocked_after` whose creating goroutine has exited.
//!
//! Go's semantics decide what can leak: since Go 1.23 a channel timer or
//! ticker nobody references is collected by the GC and one nobody receives
//! from never runs, so channel timers (`isChan`) are never suspects. A
//! context's deadline timer is the context's: it makes no second suspect.

use std::{collections::HashMap, time::Duration};

use serde::Serialize;

use super::{
    human_duration, oldest_and_median, round1, seconds, site_label, sustained_growth, thousands,
    History, Rules, Suspect, SuspectKind,
};
use crate::model::{GoroutineTable, TimerSiteKey, TimerTable};
use crate::report::{SourceLocation, Symbols};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// `time.NewTimer`.
    Timer,
    /// `time.After` (inlined into its caller).
    After,
    Ticker,
    AfterFunc,
    /// The timer of a context with a deadline (`WithTimeout`,
    /// `WithDeadline`).
    ContextDeadline,
    Sleep,
    Other,
}

impl TimerKind {
    pub fn label(self) -> &'static str {
        match self {
            TimerKind::Timer => "NewTimer",
            TimerKind::After => "After",
            TimerKind::Ticker => "Ticker",
            TimerKind::AfterFunc => "AfterFunc",
            TimerKind::ContextDeadline => "ctx deadline",
            TimerKind::Sleep => "Sleep",
            TimerKind::Other => "other",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextKind {
    /// `WithCancel`, `WithCancelCause`.
    Cancel,
    /// `WithTimeout`, `WithTimeoutCause`.
    Timeout,
    /// `WithDeadline`, `WithDeadlineCause`.
    Deadline,
    /// `context.AfterFunc`.
    AfterFunc,
    Other,
}

impl ContextKind {
    pub fn label(self) -> &'static str {
        match self {
            ContextKind::Cancel => "WithCancel",
            ContextKind::Timeout => "WithTimeout",
            ContextKind::Deadline => "WithDeadline",
            ContextKind::AfterFunc => "AfterFunc",
            ContextKind::Other => "other",
        }
    }
}

/// The timers of one kind and creation site.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimerGroup {
    pub id: u64,
    pub kind: TimerKind,
    /// The first frame outside `time`, `context` and the runtime; `None`
    /// for timers armed before attach, and for Sleep.
    pub site: Option<SourceLocation>,
    pub created: u64,
    pub reset: u64,
    /// Stopped while pending.
    pub stopped: u64,
    pub fired: u64,
    /// Channel timers whose deadline passed with nobody receiving.
    pub expired: u64,
    /// Armed ones whose memory was reused: collected by the GC.
    pub collected: u64,
    pub before_attach: u64,
    /// Armed now and still to run.
    pub pending: u64,
    /// Pending tickers older than `--blocked-after` whose creating goroutine
    /// has exited.
    pub orphaned: u64,
    /// Go ≥1.23 channel timers (collected by the GC when unreferenced).
    pub channel_timers: bool,
    pub oldest_pending_s: f64,
    /// The latest timer's delay and period.
    pub delay_s: f64,
    pub period_s: f64,
    /// Change of `pending` per minute over the growth window.
    pub growth_per_min: f64,
    #[serde(skip)]
    pub example_goid: u64,
    #[serde(skip)]
    pub median_pending_s: f64,
}

/// The cancelable contexts of one kind and creation site.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContextGroup {
    pub id: u64,
    pub kind: ContextKind,
    /// `None` for contexts created before attach.
    pub site: Option<SourceLocation>,
    pub created: u64,
    /// First cancellations, and by whom.
    pub cancelled: u64,
    pub by_caller: u64,
    pub by_parent: u64,
    pub by_deadline: u64,
    pub by_other: u64,
    pub collected: u64,
    /// Created and not cancelled yet.
    pub live: u64,
    /// Live ones something keeps until they are cancelled: a cancelable
    /// parent (its `children`) or their own deadline timer. The others are
    /// collected by the GC once unreferenced; these leak.
    pub retained: u64,
    /// Age of the oldest retained one.
    pub oldest_live_s: f64,
    /// Deadline contexts: how far the deadline was from creation.
    pub deadline_s: Option<f64>,
    pub growth_per_min: f64,
    #[serde(skip)]
    pub example_goid: u64,
    #[serde(skip)]
    pub median_live_s: f64,
}

/// Totals over every group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TimerTotals {
    pub created: u64,
    pub stopped: u64,
    pub fired: u64,
    pub reset: u64,
    pub expired: u64,
    pub collected: u64,
    /// Pending timers (Sleep excluded).
    pub pending: u64,
    /// Goroutines in `time.Sleep`.
    pub sleeping: u64,
    pub contexts_created: u64,
    pub contexts_cancelled: u64,
    pub contexts_live: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimerAnalysis {
    /// The timer and context probes are attached. When not, `pending` and
    /// `live` are 0 (what was armed or live could not be followed) and no
    /// timer or context is a suspect.
    pub traced: bool,
    pub totals: TimerTotals,
    /// Most pending first.
    pub timers: Vec<TimerGroup>,
    /// Most live first.
    pub contexts: Vec<ContextGroup>,
}

/// Names what [`TimerTable`] keeps as addresses, once per address.
#[derive(Default)]
pub struct Namer {
    functions: HashMap<u64, Option<String>>,
    sites: HashMap<Vec<u64>, (Option<SourceLocation>, Option<String>)>,
}

impl Namer {
    /// The function around a return address (or a function entry).
    fn function(&mut self, pc: u64, symbols: &dyn Symbols) -> Option<String> {
        if pc == 0 {
            return None;
        }
        self.functions
            .entry(pc)
            .or_insert_with(|| symbols.function(pc))
            .clone()
    }

    /// The first frame outside the library of a call chain of return
    /// addresses, and the library function called from it.
    fn site(
        &mut self,
        pcs: &[u64],
        symbols: &dyn Symbols,
    ) -> (Option<SourceLocation>, Option<String>) {
        if pcs.is_empty() {
            return (None, None);
        }
        self.sites
            .entry(pcs.to_vec())
            .or_insert_with(|| {
                // Every pc is a return address: look inside the call.
                let inside: Vec<u64> = pcs.iter().map(|pc| pc.saturating_sub(1)).collect();
                let stack = symbols.stack(&inside);
                let user = stack.iter().position(|l| !is_library(&l.function));
                match user {
                    Some(i) => (
                        Some(stack[i].clone()),
                        i.checked_sub(1).map(|j| stack[j].function.clone()),
                    ),
                    None => (None, stack.last().map(|l| l.function.clone())),
                }
            })
            .clone()
    }
}

/// Code a timer or context passes through on its way from user code.
fn is_library(function: &str) -> bool {
    ["runtime.", "time.", "context.", "internal/"]
        .iter()
        .any(|p| function.starts_with(p))
        || function == "?"
}

fn timer_kind(
    key: &TimerSiteKey,
    called: Option<&str>,
    namer: &mut Namer,
    symbols: &dyn Symbols,
) -> TimerKind {
    if key.sleep {
        return TimerKind::Sleep;
    }
    match namer.function(key.func, symbols).as_deref() {
        Some("runtime.goroutineReady") => TimerKind::Sleep,
        Some("time.sendTime") if key.ticker => TimerKind::Ticker,
        Some("time.sendTime") if called == Some("time.After") => TimerKind::After,
        Some("time.sendTime") => TimerKind::Timer,
        Some("time.goFunc") => match namer.function(key.callback, symbols).as_deref() {
            Some(f) if f.starts_with("context.WithDeadlineCause.func2") => {
                TimerKind::ContextDeadline
            }
            _ => TimerKind::AfterFunc,
        },
        _ => TimerKind::Other,
    }
}

fn context_kind(pcs: &[u64], namer: &mut Namer, symbols: &dyn Symbols) -> ContextKind {
    let f = |i: usize, namer: &mut Namer| {
        pcs.get(i)
            .and_then(|&pc| namer.function(pc.saturating_sub(1), symbols))
    };
    match f(0, namer).as_deref() {
        Some("context.WithCancel" | "context.WithCancelCause") => ContextKind::Cancel,
        Some("context.WithDeadlineCause" | "context.WithDeadline") => {
            match f(1, namer).as_deref() {
                Some("context.WithTimeout" | "context.WithTimeoutCause") => ContextKind::Timeout,
                _ => ContextKind::Deadline,
            }
        }
        Some("context.AfterFunc") => ContextKind::AfterFunc,
        _ => ContextKind::Other,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Canceller {
    Caller,
    Parent,
    Deadline,
    Other,
}

/// Who cancelled, from the two calls below `(*cancelCtx).cancel`.
fn canceller(who: (u64, u64), namer: &mut Namer, symbols: &dyn Symbols) -> Canceller {
    let name = |pc: u64, namer: &mut Namer| namer.function(pc.saturating_sub(1), symbols);
    let (f0, f1) = (name(who.0, namer), name(who.1, namer));
    let parent = |f: &str| {
        f == "context.(*cancelCtx).cancel" || f.starts_with("context.(*cancelCtx).propagateCancel")
    };
    match (f0.as_deref().unwrap_or(""), f1.as_deref().unwrap_or("")) {
        ("context.WithCancel.func1" | "context.WithCancelCause.func1", _) => Canceller::Caller,
        (f, _) if parent(f) => Canceller::Parent,
        ("context.(*timerCtx).cancel", f) => {
            if f == "context.WithDeadlineCause" || f.starts_with("context.WithDeadlineCause.func2")
            {
                Canceller::Deadline
            } else if f.starts_with("context.WithDeadlineCause.") {
                Canceller::Caller
            } else if parent(f) {
                Canceller::Parent
            } else {
                Canceller::Other
            }
        }
        ("context.(*afterFuncCtx).cancel", f) => {
            if f.starts_with("context.AfterFunc.") {
                Canceller::Caller
            } else if parent(f) {
                Canceller::Parent
            } else {
                Canceller::Other
            }
        }
        _ => Canceller::Other,
    }
}

fn group_id(tag: &str, kind: impl std::hash::Hash, site: &Option<SourceLocation>) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    tag.hash(&mut h);
    kind.hash(&mut h);
    site.as_ref()
        .map(|s| (&s.function, &s.file, s.line))
        .hash(&mut h);
    h.finish()
}

/// A group's members as `(age_ns, goid)` → the oldest one's goroutine, and
/// the oldest and median ages in seconds.
fn age_summary(ages: &mut [(u64, u64)]) -> (u64, f64, f64) {
    let ((oldest_ns, example_goid), median_ns) = oldest_and_median(ages);
    (example_goid, seconds(oldest_ns), seconds(median_ns))
}

/// Records a group's count at `now_ns` in its history; its growth per
/// minute over the window.
fn record_growth(
    histories: &mut HashMap<u64, History>,
    id: u64,
    count: u64,
    now_ns: u64,
    window: Duration,
) -> f64 {
    let h = histories.entry(id).or_default();
    h.push(now_ns, count);
    round1(h.growth_per_min(now_ns, window))
}

/// Groups the timer table at `now_ns` and records each group's count.
pub(super) fn analyze(
    timers: &TimerTable,
    goroutines: &GoroutineTable,
    now_ns: u64,
    symbols: &dyn Symbols,
    namer: &mut Namer,
    histories: &mut HashMap<u64, History>,
    rules: &Rules,
) -> TimerAnalysis {
    let (window, orphaned_after) = (rules.growth_window, rules.blocked_after);
    let mut out = TimerAnalysis {
        traced: timers.is_traced(),
        ..TimerAnalysis::default()
    };
    // Site index → group index.
    let mut site_group = Vec::with_capacity(timers.sites().len());
    let mut index: HashMap<u64, usize> = HashMap::new();
    for s in timers.sites() {
        let (site, called) = namer.site(s.key.frames.pcs(), symbols);
        let kind = timer_kind(&s.key, called.as_deref(), namer, symbols);
        let id = group_id("timer", kind, &site);
        let g = *index.entry(id).or_insert_with(|| {
            out.timers.push(TimerGroup {
                id,
                kind,
                site,
                created: 0,
                reset: 0,
                stopped: 0,
                fired: 0,
                expired: 0,
                collected: 0,
                before_attach: 0,
                pending: 0,
                orphaned: 0,
                channel_timers: false,
                oldest_pending_s: 0.0,
                delay_s: 0.0,
                period_s: 0.0,
                growth_per_min: 0.0,
                example_goid: 0,
                median_pending_s: 0.0,
            });
            out.timers.len() - 1
        });
        let t = &mut out.timers[g];
        t.created += s.created;
        t.reset += s.reset;
        t.stopped += s.stopped;
        t.fired += s.fired;
        t.expired += s.expired_stopped;
        t.collected += s.collected;
        t.before_attach += s.before_attach;
        t.delay_s = seconds(s.last_delay_ns.max(0) as u64);
        t.period_s = seconds(s.period_ns.max(0) as u64);
        site_group.push(g);
    }
    let mut ages: Vec<Vec<(u64, u64)>> = vec![Vec::new(); out.timers.len()];
    for (_, e) in timers.armed() {
        let g = site_group[e.site as usize];
        let t = &mut out.timers[g];
        t.channel_timers |= e.is_chan;
        if e.expired(now_ns) {
            t.expired += 1;
            continue;
        }
        t.pending += 1;
        // Its creator is gone from the table, and long enough ago that the
        // table has been brought up to date since (spawn/exit probes, or
        // the reads of the goroutine list when they are detached).
        let age = now_ns.saturating_sub(e.since_ns);
        if t.kind == TimerKind::Ticker
            && e.owner != 0
            && age >= orphaned_after.as_nanos() as u64
            && goroutines.get(e.owner).is_none()
        {
            t.orphaned += 1;
        }
        ages[g].push((age, e.owner));
    }
    for (t, ages) in out.timers.iter_mut().zip(&mut ages) {
        (t.example_goid, t.oldest_pending_s, t.median_pending_s) = age_summary(ages);
        t.growth_per_min = record_growth(histories, t.id, t.pending, now_ns, window);
    }

    let mut cindex: HashMap<u64, usize> = HashMap::new();
    let mut csite_group = Vec::with_capacity(timers.context_sites().len());
    for s in timers.context_sites() {
        let pcs = s.frames.pcs();
        let (site, _) = namer.site(pcs, symbols);
        let kind = if pcs.is_empty() {
            ContextKind::Other
        } else {
            context_kind(pcs, namer, symbols)
        };
        let id = group_id("context", kind, &site);
        let g = *cindex.entry(id).or_insert_with(|| {
            out.contexts.push(ContextGroup {
                id,
                kind,
                site,
                created: 0,
                cancelled: 0,
                by_caller: 0,
                by_parent: 0,
                by_deadline: 0,
                by_other: 0,
                collected: 0,
                live: 0,
                retained: 0,
                oldest_live_s: 0.0,
                deadline_s: None,
                growth_per_min: 0.0,
                example_goid: 0,
                median_live_s: 0.0,
            });
            out.contexts.len() - 1
        });
        let c = &mut out.contexts[g];
        c.created += s.created;
        c.cancelled += s.cancelled;
        c.collected += s.collected;
        c.live += s.live;
        if let Some(d) = s.deadline_ns {
            c.deadline_s = Some(seconds(d.max(0) as u64));
        }
        for (&who, &n) in &s.cancellers {
            let c = &mut out.contexts[g];
            match canceller(who, namer, symbols) {
                Canceller::Caller => c.by_caller += n,
                Canceller::Parent => c.by_parent += n,
                Canceller::Deadline => c.by_deadline += n,
                Canceller::Other => c.by_other += n,
            }
        }
        csite_group.push(g);
    }
    let mut cages: Vec<Vec<(u64, u64)>> = vec![Vec::new(); out.contexts.len()];
    for (_, e) in timers.live_contexts() {
        let g = csite_group[e.site as usize];
        if e.retained() {
            out.contexts[g].retained += 1;
            cages[g].push((now_ns.saturating_sub(e.created_ns), e.goid));
        }
    }
    for (c, ages) in out.contexts.iter_mut().zip(&mut cages) {
        (c.example_goid, c.oldest_live_s, c.median_live_s) = age_summary(ages);
        c.growth_per_min = record_growth(histories, c.id, c.retained, now_ns, window);
    }

    out.timers.sort_by(|a, b| {
        b.pending
            .cmp(&a.pending)
            .then(b.created.cmp(&a.created))
            .then(a.id.cmp(&b.id))
    });
    out.contexts.sort_by(|a, b| {
        b.live
            .cmp(&a.live)
            .then(b.created.cmp(&a.created))
            .then(a.id.cmp(&b.id))
    });
    let t = &mut out.totals;
    for g in &out.timers {
        if g.kind == TimerKind::Sleep {
            t.sleeping += g.pending;
            continue;
        }
        t.created += g.created;
        t.stopped += g.stopped;
        t.fired += g.fired;
        t.reset += g.reset;
        t.expired += g.expired;
        t.collected += g.collected;
        t.pending += g.pending;
    }
    for c in &out.contexts {
        t.contexts_created += c.created;
        t.contexts_cancelled += c.cancelled;
        t.contexts_live += c.live;
    }
    out
}

/// A site whose count grew through the window, or has at least
/// `backlog_min` members older than `blocked_after`.
fn leaking(
    history: Option<&History>,
    count: u64,
    oldest_s: f64,
    median_s: f64,
    now_ns: u64,
    rules: &Rules,
) -> Option<u64> {
    if count <= rules.handful {
        return None;
    }
    let window = history.map(|h| h.window(now_ns, rules.growth_window));
    if let Some(gain) = window
        .as_deref()
        .and_then(|w| sustained_growth(w, rules.growth_window, rules.growth_min))
    {
        return Some(gain);
    }
    let old = rules.blocked_after.as_secs_f64();
    (count >= rules.backlog_min && oldest_s >= old && median_s >= old).then_some(0)
}

/// The timer and context suspects of one analysis.
pub(super) fn judge(
    analysis: &TimerAnalysis,
    histories: &HashMap<u64, History>,
    now_ns: u64,
    rules: &Rules,
) -> Vec<Suspect> {
    let mut out = Vec::new();
    if !analysis.traced {
        return out;
    }
    let grow_window = human_duration(rules.growth_window.as_nanos() as u64);
    for c in &analysis.contexts {
        let h = histories.get(&c.id);
        let Some(gain) = leaking(
            h,
            c.retained,
            c.oldest_live_s,
            c.median_live_s,
            now_ns,
            rules,
        ) else {
            continue;
        };
        let site = c.site.as_ref().map_or("an unknown site".into(), site_label);
        let mut evidence = format!(
            "context.{} at {site}: {} contexts never cancelled",
            c.kind.label(),
            thousands(c.retained)
        );
        if gain > 0 {
            evidence.push_str(&format!(
                ", +{} in the last {grow_window} ({:+.0}/min)",
                thousands(gain),
                c.growth_per_min
            ));
        }
        match c.deadline_s {
            Some(d) => evidence.push_str(&format!(
                ", each holding a timer until its {} deadline",
                human_duration((d * 1e9) as u64)
            )),
            None => evidence.push_str(&format!(
                ", each kept by its parent context, the oldest for {}",
                human_duration((c.oldest_live_s * 1e9) as u64)
            )),
        }
        out.push(suspect(
            SuspectKind::ContextLeak,
            c.site.clone(),
            "context not cancelled",
            (
                c.retained,
                c.oldest_live_s,
                c.median_live_s,
                c.growth_per_min,
            ),
            c.example_goid,
            c.id,
            evidence,
            rules,
        ));
    }
    for t in &analysis.timers {
        if t.channel_timers {
            continue;
        }
        let h = histories.get(&t.id);
        let site = t.site.as_ref().map_or("an unknown site".into(), site_label);
        match t.kind {
            TimerKind::Ticker => {
                if t.orphaned <= rules.handful {
                    continue;
                }
                let evidence = format!(
                    "time.NewTicker at {site}: {} tickers never stopped, still firing every {} after the goroutine that created them exited",
                    thousands(t.orphaned),
                    human_duration((t.period_s * 1e9) as u64)
                );
                out.push(suspect(
                    SuspectKind::TickerLeak,
                    t.site.clone(),
                    "ticker not stopped",
                    (
                        t.orphaned,
                        t.oldest_pending_s,
                        t.median_pending_s,
                        t.growth_per_min,
                    ),
                    t.example_goid,
                    t.id,
                    evidence,
                    rules,
                ));
            }
            TimerKind::Timer | TimerKind::After | TimerKind::AfterFunc => {
                let Some(gain) = leaking(
                    h,
                    t.pending,
                    t.oldest_pending_s,
                    t.median_pending_s,
                    now_ns,
                    rules,
                ) else {
                    continue;
                };
                let (kind, what) = match t.kind {
                    TimerKind::After => (SuspectKind::AfterInLoop, "time.After"),
                    TimerKind::AfterFunc => (SuspectKind::TimerLeak, "time.AfterFunc"),
                    _ => (SuspectKind::TimerLeak, "time.NewTimer"),
                };
                let mut evidence = format!(
                    "{what} at {site}: {} timers pending, none stopped, each armed for {}",
                    thousands(t.pending),
                    human_duration((t.delay_s * 1e9) as u64)
                );
                if t.stopped > 0 {
                    evidence = format!(
                        "{what} at {site}: {} timers pending ({} stopped), each armed for {}",
                        thousands(t.pending),
                        thousands(t.stopped),
                        human_duration((t.delay_s * 1e9) as u64)
                    );
                }
                if gain > 0 {
                    evidence.push_str(&format!(
                        "; +{} in the last {grow_window} ({:+.0}/min)",
                        thousands(gain),
                        t.growth_per_min
                    ));
                }
                if kind == SuspectKind::AfterInLoop {
                    evidence.push_str(
                        "; each loop iteration arms a new timer that lives until it fires: use one time.NewTimer and Reset it",
                    );
                }
                out.push(suspect(
                    kind,
                    t.site.clone(),
                    "timer pending",
                    (
                        t.pending,
                        t.oldest_pending_s,
                        t.median_pending_s,
                        t.growth_per_min,
                    ),
                    t.example_goid,
                    t.id,
                    evidence,
                    rules,
                ));
            }
            _ => {}
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn suspect(
    kind: SuspectKind,
    site: Option<SourceLocation>,
    state: &str,
    (count, oldest_s, median_s, growth): (u64, f64, f64, f64),
    example_goid: u64,
    group: u64,
    evidence: String,
    rules: &Rules,
) -> Suspect {
    let growth = round1(growth);
    Suspect {
        kind,
        score: super::score(kind, count, (oldest_s * 1e9) as u64, growth, rules),
        creation_site: site,
        start_function: None,
        state: state.to_string(),
        blocked_at: Vec::new(),
        count,
        oldest_age_s: oldest_s,
        median_age_s: median_s,
        ages_are_lower_bounds: false,
        growth_per_min: growth,
        example_goid,
        evidence,
        group,
    }
}

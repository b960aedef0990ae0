//! A realistic, fixed picture of a leaking HTTP service for the UI tests:
//! seven goroutine groups, seven timer groups, four context groups, five
//! suspects, a minute of history.
//!
//! The timers and contexts: a `context.WithTimeout(ctx, 30*time.Second)`
//! whose CancelFunc is never called (9,876 contexts live, each holding its
//! deadline timer), `time.AfterFunc` cache expiries piling up, a
//! `time.After` in a select loop and tickers whose goroutines exited (Go
//! 1.26 channel timers: collected by the GC, not suspects), a healthy
//! `net/http` per-connection context, a `time.NewTimer` that is stopped
//! and reset, goroutines in `time.Sleep`, and timers and contexts from
//! before attach.

use std::sync::Arc;

use super::{App, FocusDetail, Frame, MemberRow, Style, TargetInfo, Timeline};
use crate::model::{Origin, Totals};
use crate::probes::ProbeCounters;
use crate::report::SourceLocation;
use crate::suspects::timers::{
    ContextGroup, ContextKind, TimerAnalysis, TimerGroup, TimerKind, TimerTotals,
};
use crate::suspects::{thousands, Analysis, Group, Suspect, SuspectKind, WaitClass};
use crate::target::ProcessUsage;

pub const S: u64 = 1_000_000_000;
/// The events' clock at the last frame (CLOCK_MONOTONIC, ns).
pub const NOW: u64 = 5_000 * S;
/// Frames fed before the last one, one a second.
pub const TICKS: u64 = 60;

pub const LEAK: u64 = 0xa1;
pub const POOL: u64 = 0xa2;
pub const HTTP: u64 = 0xa3;
pub const CACHE: u64 = 0xa4;
pub const GC: u64 = 0xa5;
pub const MAIN: u64 = 0xa6;
pub const FLUSH: u64 = 0xa7;

/// Timer groups.
pub const DEADLINES: u64 = 0xb1;
pub const EXPIRY: u64 = 0xb2;
pub const POLL_AFTER: u64 = 0xb3;
pub const FEED_TICKER: u64 = 0xb4;
pub const RPC_TIMER: u64 = 0xb5;
pub const SLEEP: u64 = 0xb6;
pub const EARLY_TICKER: u64 = 0xb7;

/// Context groups.
pub const LOOKUP: u64 = 0xc1;
pub const CONN: u64 = 0xc2;
pub const JOBS: u64 = 0xc3;
pub const EARLY_CTX: u64 = 0xc4;

pub fn info() -> TargetInfo {
    TargetInfo {
        pid: 4242,
        binary: "api-server".into(),
        go_version: "go1.26.6".into(),
        mode: "precise: spawn, park, ready, exit probes".into(),
    }
}

fn loc(function: &str, file: &str, line: u32) -> SourceLocation {
    SourceLocation {
        pc: "0x4a1f20".into(),
        function: function.into(),
        file: Some(file.into()),
        line: Some(line),
    }
}

#[allow(clippy::too_many_arguments)]
fn group(
    id: u64,
    site: Option<SourceLocation>,
    function: &str,
    state: &str,
    count: u64,
    oldest_s: u64,
    growth: f64,
    lower_bounds: bool,
) -> Group {
    let class = WaitClass::of_wait_reason(state);
    let runtime_owned = function.starts_with("runtime.");
    Group {
        id,
        site_pc: site.as_ref().map(|_| id << 12),
        site,
        start_function: Some(function.into()),
        state: state.into(),
        class,
        blocked_at: Arc::from(Vec::new()),
        count,
        oldest_age_ns: oldest_s * S,
        median_age_ns: oldest_s * S / 2,
        ages_are_lower_bounds: lower_bounds,
        growth_per_min: growth,
        example_goid: 4711 + id,
        goids: (0..count).map(|i| 5000 + i).collect(),
        runtime_owned,
    }
}

/// Groups as the engine orders them (largest first), with `leak_count`
/// goroutines in the leaking group.
pub fn groups(leak_count: u64) -> Vec<Group> {
    let mut leak = group(
        LEAK,
        Some(loc("main.(*Server).handle", "/src/api/handler.go", 42)),
        "main.(*Server).handle.func1",
        "chan send",
        leak_count,
        372,
        20.0,
        false,
    );
    leak.blocked_at = Arc::from(vec![
        loc("runtime.chansend1", "/usr/lib/go/src/runtime/chan.go", 161),
        loc("main.(*Server).handle.func1", "/src/api/handler.go", 47),
    ]);
    let mut groups = vec![
        leak,
        group(
            CACHE,
            Some(loc(
                "main.(*Cache).refreshLoop",
                "/src/cache/refresh.go",
                88,
            )),
            "main.(*Cache).fetch",
            "sync.Mutex.Lock",
            310,
            1500,
            0.0,
            true,
        ),
        group(
            HTTP,
            Some(loc(
                "net/http.(*Server).Serve",
                "/usr/lib/go/src/net/http/server.go",
                3454,
            )),
            "net/http.(*conn).serve",
            "IO wait",
            48,
            95,
            30.0,
            false,
        ),
        group(
            POOL,
            Some(loc("main.startPool", "/src/pool/pool.go", 10)),
            "main.worker",
            "chan receive",
            16,
            3600,
            0.0,
            true,
        ),
        group(
            GC,
            Some(loc(
                "runtime.gcBgMarkStartWorkers",
                "/usr/lib/go/src/runtime/mgc.go",
                1230,
            )),
            "runtime.gcBgMarkWorker",
            "GC worker (idle)",
            2,
            83,
            0.0,
            false,
        ),
        group(
            MAIN,
            Some(loc("main.main", "/src/main.go", 30)),
            "main.(*Server).acceptLoop",
            "runnable",
            1,
            83,
            0.0,
            true,
        ),
        group(FLUSH, None, "main.logFlusher", "select", 1, 83, 0.0, true),
    ];
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    groups
}

/// Live WithTimeout contexts of the lookup site (and their pending
/// deadline timers) at tick `i`: traffic grows, cancel() is never called.
fn lookups(i: u64) -> u64 {
    9_636 + 4 * i
}

/// Pending cache-expiry AfterFunc timers at tick `i`.
fn expiries(i: u64) -> u64 {
    2_380 + i / 3
}

#[allow(clippy::too_many_arguments)]
fn timer(
    id: u64,
    kind: TimerKind,
    site: Option<SourceLocation>,
    [created, fired, stopped, reset, expired, collected, before_attach]: [u64; 7],
    pending: u64,
    oldest_s: f64,
    (delay_s, period_s): (f64, f64),
    growth: f64,
) -> TimerGroup {
    TimerGroup {
        id,
        kind,
        site,
        created,
        reset,
        stopped,
        fired,
        expired,
        collected,
        before_attach,
        pending,
        orphaned: 0,
        // Go 1.26: NewTimer, After and NewTicker timers have channels.
        channel_timers: matches!(
            kind,
            TimerKind::Timer | TimerKind::After | TimerKind::Ticker
        ),
        oldest_pending_s: oldest_s,
        delay_s,
        period_s,
        growth_per_min: growth,
        example_goid: 4_800 + id,
        median_pending_s: oldest_s / 2.0,
    }
}

/// The timer groups at tick `i`, as the engine orders them (most pending
/// first).
pub fn timer_groups(i: u64) -> Vec<TimerGroup> {
    let lookup = loc("main.(*Server).lookup", "/src/api/handler.go", 61);
    let mut feed = timer(
        FEED_TICKER,
        TimerKind::Ticker,
        Some(loc("main.(*Feed).subscribe", "/src/stream/feed.go", 88)),
        [40, 51_340, 26, 0, 0, 0, 0],
        14,
        1_390.0,
        (1.0, 1.0),
        0.0,
    );
    feed.orphaned = 12;
    let mut groups = vec![
        timer(
            DEADLINES,
            TimerKind::ContextDeadline,
            Some(lookup),
            [612_340, 602_464, 0, 0, 0, 0, 0],
            lookups(i),
            29.6,
            (30.0, 0.0),
            236.0,
        ),
        timer(
            EXPIRY,
            TimerKind::AfterFunc,
            Some(loc("main.(*Cache).expireLater", "/src/cache/ttl.go", 40)),
            [2_412, 0, 12, 0, 0, 0, 0],
            expiries(i),
            310.0,
            (3_600.0, 0.0),
            20.0,
        ),
        timer(
            POLL_AFTER,
            TimerKind::After,
            Some(loc("main.(*Poller).run", "/src/poll/loop.go", 73)),
            [84_210, 0, 0, 0, 82_930, 100, 0],
            1_180,
            59.8,
            (60.0, 0.0),
            0.0,
        ),
        feed,
        timer(
            RPC_TIMER,
            TimerKind::Timer,
            Some(loc("main.(*Client).call", "/src/rpc/client.go", 130)),
            [3_200, 46, 3_150, 310, 0, 0, 0],
            4,
            4.2,
            (5.0, 0.0),
            0.0,
        ),
        timer(
            SLEEP,
            TimerKind::Sleep,
            None,
            [1_610, 1_607, 0, 0, 0, 0, 0],
            3,
            0.7,
            (1.0, 0.0),
            0.0,
        ),
        timer(
            EARLY_TICKER,
            TimerKind::Ticker,
            None,
            [0, 166, 0, 0, 0, 0, 2],
            2,
            83.0,
            (30.0, 30.0),
            0.0,
        ),
    ];
    groups.sort_by(|a, b| b.pending.cmp(&a.pending).then(a.id.cmp(&b.id)));
    groups
}

#[allow(clippy::too_many_arguments)]
fn context(
    id: u64,
    kind: ContextKind,
    site: Option<SourceLocation>,
    [created, by_caller, by_parent, by_deadline, by_other]: [u64; 5],
    (live, retained): (u64, u64),
    oldest_s: f64,
    deadline_s: Option<f64>,
    growth: f64,
) -> ContextGroup {
    ContextGroup {
        id,
        kind,
        site,
        created,
        cancelled: by_caller + by_parent + by_deadline + by_other,
        by_caller,
        by_parent,
        by_deadline,
        by_other,
        collected: 0,
        live,
        retained,
        oldest_live_s: oldest_s,
        deadline_s,
        growth_per_min: growth,
        example_goid: 4_900 + id,
        median_live_s: oldest_s / 2.0,
    }
}

/// The context groups at tick `i`, most live first (as the engine orders
/// them).
pub fn context_groups(i: u64) -> Vec<ContextGroup> {
    let mut groups = vec![
        context(
            LOOKUP,
            ContextKind::Timeout,
            Some(loc("main.(*Server).lookup", "/src/api/handler.go", 61)),
            [612_340, 0, 0, 602_464, 0],
            (lookups(i), lookups(i)),
            29.6,
            Some(30.0),
            236.0,
        ),
        context(
            CONN,
            ContextKind::Cancel,
            Some(loc(
                "net/http.(*conn).serve",
                "/usr/lib/go/src/net/http/server.go",
                2011,
            )),
            [48_210, 48_150, 12, 0, 0],
            // Children of the server's base context: not retained.
            (48, 0),
            0.0,
            None,
            0.0,
        ),
        context(
            JOBS,
            ContextKind::Deadline,
            Some(loc("main.(*Runner).run", "/src/jobs/runner.go", 27)),
            [1_900, 1_200, 7, 690, 0],
            (3, 3),
            41.0,
            Some(120.0),
            0.0,
        ),
        context(
            EARLY_CTX,
            ContextKind::Other,
            None,
            // Created before attach, cancelled since.
            [0, 0, 37, 0, 0],
            (0, 0),
            0.0,
            None,
            0.0,
        ),
    ];
    groups.sort_by(|a, b| b.live.cmp(&a.live).then(a.id.cmp(&b.id)));
    groups
}

/// The timers and contexts at tick `i`, traced.
pub fn timer_analysis(i: u64) -> TimerAnalysis {
    let timers = timer_groups(i);
    let contexts = context_groups(i);
    let mut totals = TimerTotals::default();
    for g in &timers {
        if g.kind == TimerKind::Sleep {
            totals.sleeping += g.pending;
            continue;
        }
        totals.created += g.created;
        totals.stopped += g.stopped;
        totals.fired += g.fired;
        totals.reset += g.reset;
        totals.expired += g.expired;
        totals.collected += g.collected;
        totals.pending += g.pending;
    }
    for c in &contexts {
        totals.contexts_created += c.created;
        totals.contexts_cancelled += c.cancelled;
        totals.contexts_live += c.live;
    }
    TimerAnalysis {
        traced: true,
        totals,
        timers,
        contexts,
    }
}

fn suspect(g: &Group, kind: SuspectKind, score: u32, evidence: &str) -> Suspect {
    Suspect {
        kind,
        score,
        creation_site: g.site.clone(),
        start_function: g.start_function.clone(),
        state: g.state.clone(),
        blocked_at: g.blocked_at.to_vec(),
        count: g.count,
        oldest_age_s: g.oldest_age_ns as f64 / 1e9,
        median_age_s: g.median_age_ns as f64 / 1e9,
        ages_are_lower_bounds: g.ages_are_lower_bounds,
        growth_per_min: g.growth_per_min,
        example_goid: g.example_goid,
        evidence: evidence.into(),
        group: g.id,
    }
}

/// The analysis at tick `i` (0..=TICKS).
pub fn analysis(now_ns: u64, i: u64) -> Analysis {
    let leak_count = leak(i);
    let groups = groups(leak_count);
    let timers = timer_analysis(i);
    let by_id = |id: u64| {
        groups
            .iter()
            .find(|g| g.id == id)
            .cloned()
            .unwrap_or_else(|| groups[0].clone())
    };
    let suspects = vec![
        suspect(
            &by_id(LEAK),
            SuspectKind::Blocked,
            72,
            &format!(
                "{} goroutines created at api/handler.go:42 have been waiting on chan send for up to 6m12s; +20/min",
                crate::suspects::thousands(leak_count)
            ),
        ),
        suspect(
            &by_id(CACHE),
            SuspectKind::Backlog,
            55,
            "310 goroutines created at cache/refresh.go:88 were already waiting on sync.Mutex.Lock when the tracer attached (for at least 25m00s)",
        ),
        suspect(
            &by_id(HTTP),
            SuspectKind::Growing,
            39,
            "live goroutines created at http/server.go:3454 grew by 30 to 48 in the last 1m00s (+30/min), 48 of them waiting on IO wait",
        ),
        Suspect {
            kind: SuspectKind::ContextLeak,
            score: 37,
            creation_site: Some(loc("main.(*Server).lookup", "/src/api/handler.go", 61)),
            start_function: None,
            state: "context not cancelled".into(),
            blocked_at: Vec::new(),
            count: lookups(i),
            oldest_age_s: 29.6,
            median_age_s: 14.8,
            ages_are_lower_bounds: false,
            growth_per_min: 236.0,
            example_goid: 4_900 + LOOKUP,
            evidence: format!(
                "context.WithTimeout at api/handler.go:61: {} contexts never cancelled, +236 in the last 1m00s (+236/min), each holding a timer until its 30s deadline",
                thousands(lookups(i))
            ),
            group: LOOKUP,
        },
        Suspect {
            kind: SuspectKind::TimerLeak,
            score: 33,
            creation_site: Some(loc("main.(*Cache).expireLater", "/src/cache/ttl.go", 40)),
            start_function: None,
            state: "timer pending".into(),
            blocked_at: Vec::new(),
            count: expiries(i),
            oldest_age_s: 310.0,
            median_age_s: 155.0,
            ages_are_lower_bounds: false,
            growth_per_min: 20.0,
            example_goid: 4_800 + EXPIRY,
            evidence: format!(
                "time.AfterFunc at cache/ttl.go:40: {} timers pending (12 stopped), each armed for 1h00m; +20 in the last 1m00s (+20/min)",
                thousands(expiries(i))
            ),
            group: EXPIRY,
        },
    ];
    Analysis {
        now_ns,
        groups,
        suspects,
        timers,
    }
}

/// Goroutines of the leaking group at tick `i`.
fn leak(i: u64) -> u64 {
    1184 + i / 3
}

/// A timer or context group's count at tick `i`, if `id` is one.
fn timer_or_context_count(id: u64, i: u64) -> Option<u64> {
    let timers = timer_groups(i);
    let contexts = context_groups(i);
    let timer = timers.iter().find(|g| g.id == id).map(|g| g.pending);
    timer.or_else(|| contexts.iter().find(|c| c.id == id).map(|c| c.retained))
}

pub fn focus(group: u64, now_ns: u64) -> FocusDetail {
    let history_of = |count: &dyn Fn(u64) -> u64| {
        (0..TICKS)
            .map(|i| (now_ns - (TICKS - 1 - i) * S, count(i + 1)))
            .collect()
    };
    if let Some(members_total) = timer_or_context_count(group, TICKS) {
        return FocusDetail {
            group,
            history: history_of(&|i| timer_or_context_count(group, i).unwrap_or(0)),
            members: Vec::new(),
            members_total,
            example: None,
        };
    }
    let members = (0..5)
        .map(|i| MemberRow {
            goid: 4711 + i,
            state: "chan send".into(),
            age_ns: (372 - 31 * i) * S,
            age_is_lower_bound: false,
            wake_count: i % 2,
            parent_goid: Some(57),
            origin: Origin::Traced,
        })
        .collect();
    FocusDetail {
        group,
        history: history_of(&leak),
        members,
        members_total: 1204,
        example: Some(Timeline {
            goid: 4711,
            entries: vec![
                (
                    now_ns - 372 * S,
                    "created by goroutine 57 at api/handler.go:42".into(),
                ),
                (now_ns - 372 * S + S / 100, "parked: chan send".into()),
                (now_ns - 371 * S, "woken by goroutine 63".into()),
                (now_ns - 371 * S + S / 2, "parked: chan send".into()),
            ],
        }),
    }
}

/// The frame of the tick `i` (0..=TICKS); the last is at [`NOW`].
pub fn frame(i: u64, focus_group: Option<u64>) -> Frame {
    let now_ns = NOW - (TICKS - i) * S;
    let live = leak(i) + 310 + 48 + 16 + 2 + 1 + 1;
    // Steady churn around a slow leak: live = at attach + spawned - exited.
    let (seeded, spawned) = (1_400, 1_020 + i * 31 + (i * i) % 17);
    Frame {
        now_ns,
        elapsed_ns: 23 * S + i * S,
        totals: Totals {
            live,
            spawned,
            exited: seeded + spawned - live,
            snapshot_seeded: seeded,
            parks: 40_210 + i * 700,
            wakes: 39_002 + i * 690,
            ..Totals::default()
        },
        probes: ProbeCounters {
            spawn_hits: 1_020 + i * 31,
            park_hits: 40_210 + i * 700,
            ready_hits: 39_002 + i * 690,
            exit_hits: seeded + spawned - live,
            ..ProbeCounters::default()
        },
        process: ProcessUsage {
            rss_bytes: Some(129_394_278),
            threads: Some(14),
        },
        analysis: Arc::new(analysis(now_ns, i)),
        focus: focus_group.map(|g| focus(g, now_ns)),
    }
}

/// An app that has seen a minute of ticks.
pub fn app(style: Style) -> App {
    let mut app = App::new(info(), style);
    for i in 0..=TICKS {
        let focus = app.focus();
        app.update(frame(i, focus));
    }
    app
}

pub const COLORS: Style = Style { colors: true };

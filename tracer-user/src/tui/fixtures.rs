//! A realistic, fixed picture of a leaking HTTP service for the UI tests:
//! seven groups, three suspects, a minute of history.

use std::sync::Arc;

use super::{App, FocusDetail, Frame, MemberRow, Style, TargetInfo, Timeline};
use crate::model::{Origin, Totals};
use crate::probes::ProbeCounters;
use crate::report::SourceLocation;
use crate::suspects::{Analysis, Group, Suspect, SuspectKind, WaitClass};
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

pub fn analysis(now_ns: u64, leak_count: u64) -> Analysis {
    let groups = groups(leak_count);
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
    ];
    Analysis {
        now_ns,
        groups,
        suspects,
        timers: Default::default(),
    }
}

pub fn focus(group: u64, now_ns: u64) -> FocusDetail {
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
        history: (0..TICKS)
            .map(|i| (now_ns - (TICKS - 1 - i) * S, 1184 + (i + 1) / 3))
            .collect(),
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
    let leak = 1184 + i / 3;
    let live = leak + 310 + 48 + 16 + 2 + 1 + 1;
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
        analysis: Arc::new(analysis(now_ns, leak)),
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

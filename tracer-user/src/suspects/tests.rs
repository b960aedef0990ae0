//! One test per rule and per "not a suspect" case, on goroutine tables built
//! from events the way the probes would report them.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::*;
use crate::model::{
    ContextEvent, ContextOp, Event, EventBody, Frames, SnapshotGoroutine, Spawn, TimerEvent,
    TimerOp,
};

const S: u64 = 1_000_000_000;

/// Wait-reason codes of the fake target.
const CHAN_RECEIVE: u8 = 1;
const CHAN_SEND: u8 = 2;
const SELECT: u8 = 3;
const IO_WAIT: u8 = 4;
const MUTEX: u8 = 5;
const GC_IDLE: u8 = 6;
const REASONS: &[&str] = &[
    "",
    "chan receive",
    "chan send",
    "select",
    "IO wait",
    "sync.Mutex.Lock",
    "GC worker (idle)",
];

/// Creation sites (gopc), goroutine functions (start pc) and blocking pcs.
const SITE_LEAK: u64 = 0x1000;
const SITE_POOL: u64 = 0x2000;
const SITE_HTTP: u64 = 0x3000;
const SITE_RUNTIME: u64 = 0x4000;
const SITE_CHURN: u64 = 0x5000;
const FN_WORKER: u64 = 0x10_000;
const FN_GC: u64 = 0x20_000;
const BLOCK_SEND: u64 = 0x30_000;
const BLOCK_RECV: u64 = 0x30_100;
/// Timer and context functions (entries, or where their calls return).
const CTX_WITH_CANCEL: u64 = 0x40_000;
const TIME_AFTER_FUNC: u64 = 0x40_100;
const TIME_NEW_TICKER: u64 = 0x40_200;
const FN_SEND_TIME: u64 = 0x40_300;
const FN_GO_FUNC: u64 = 0x40_400;
const FN_CALLBACK: u64 = 0x40_500;

struct FakeSymbols {
    sites: HashMap<u64, (&'static str, &'static str, u32)>,
    functions: HashMap<u64, &'static str>,
}

impl FakeSymbols {
    fn new() -> Self {
        FakeSymbols {
            sites: HashMap::from([
                (SITE_LEAK, ("main.handle", "/src/api/handler.go", 42)),
                (SITE_POOL, ("main.startPool", "/src/pool/pool.go", 10)),
                (
                    SITE_HTTP,
                    (
                        "net/http.(*Server).Serve",
                        "/go/src/net/http/server.go",
                        3454,
                    ),
                ),
                (
                    SITE_RUNTIME,
                    (
                        "runtime.gcBgMarkStartWorkers",
                        "/go/src/runtime/mgc.go",
                        1230,
                    ),
                ),
                (SITE_CHURN, ("main.loop", "/src/churn.go", 7)),
                (BLOCK_SEND, ("main.compute", "/src/api/handler.go", 60)),
                (BLOCK_RECV, ("main.worker", "/src/pool/pool.go", 22)),
                (
                    CTX_WITH_CANCEL,
                    ("context.WithCancel", "/go/src/context/context.go", 237),
                ),
                (
                    TIME_AFTER_FUNC,
                    ("time.AfterFunc", "/go/src/time/sleep.go", 176),
                ),
                (
                    TIME_NEW_TICKER,
                    ("time.NewTicker", "/go/src/time/tick.go", 38),
                ),
            ]),
            functions: HashMap::from([
                (FN_WORKER, "main.worker"),
                (FN_GC, "runtime.gcBgMarkWorker"),
                (CTX_WITH_CANCEL, "context.WithCancel"),
                (FN_SEND_TIME, "time.sendTime"),
                (FN_GO_FUNC, "time.goFunc"),
                (FN_CALLBACK, "main.handle.func1"),
            ]),
        }
    }

    fn loc(&self, pc: u64) -> SourceLocation {
        match self.sites.get(&pc) {
            Some(&(function, file, line)) => SourceLocation {
                pc: format!("{pc:#x}"),
                function: function.into(),
                file: Some(file.into()),
                line: Some(line),
            },
            None => SourceLocation {
                pc: format!("{pc:#x}"),
                function: "?".into(),
                file: None,
                line: None,
            },
        }
    }
}

impl Symbols for FakeSymbols {
    fn creation_site(&self, runtime_pc: u64) -> SourceLocation {
        self.loc(runtime_pc)
    }
    fn stack(&self, pcs: &[u64]) -> Vec<SourceLocation> {
        pcs.iter().map(|&pc| self.loc(pc)).collect()
    }
    fn function(&self, runtime_pc: u64) -> Option<String> {
        self.functions.get(&runtime_pc).map(|f| f.to_string())
    }
    fn wait_reason(&self, code: u8) -> String {
        REASONS.get(usize::from(code)).unwrap_or(&"?").to_string()
    }
}

/// A goroutine table driven by hand, with an engine judging it.
struct Scenario {
    table: GoroutineTable,
    timers: TimerTable,
    engine: SuspectEngine,
    symbols: FakeSymbols,
    next_goid: u64,
}

impl Scenario {
    fn new(rules: Rules) -> Self {
        Scenario {
            table: GoroutineTable::new(),
            timers: {
                let mut t = TimerTable::new();
                t.set_traced(true);
                t
            },
            engine: SuspectEngine::new(rules),
            symbols: FakeSymbols::new(),
            next_goid: 100,
        }
    }

    fn spawn(&mut self, ts: u64, site: u64, function: u64) -> u64 {
        let goid = self.next_goid;
        self.next_goid += 1;
        self.table.apply(&Event {
            ts_ns: ts,
            tid: 1,
            body: EventBody::Spawn(Spawn {
                goid,
                parent_goid: 1,
                gopc: site,
                start_pc: function,
                g_addr: 0xc000_0000 + goid * 0x200,
                status: 1,
                wait_reason: 0,
            }),
        });
        goid
    }

    /// Parks `goid` at `ts` with its stack and the channels it waits on read
    /// (none: not read).
    fn park(&mut self, ts: u64, goid: u64, reason: u8, stack: &[u64], channels: &[u64]) {
        self.table.apply(&Event {
            ts_ns: ts,
            tid: 1,
            body: EventBody::Park {
                goid,
                reason,
                lock: 0,
                g_addr: 0,
            },
        });
        self.table.set_blocked_at(
            goid,
            Some(ts),
            Arc::from(stack),
            (!channels.is_empty()).then(|| Arc::from(channels)),
        );
    }

    fn exit(&mut self, ts: u64, goid: u64) {
        self.table.apply(&Event {
            ts_ns: ts,
            tid: 1,
            body: EventBody::Exit { goid, g_addr: 0 },
        });
    }

    fn update(&mut self, now: u64) -> Analysis {
        self.engine
            .update(&self.table, &self.timers, now, &self.symbols)
    }

    /// Updates once per second from `from` to `to` seconds; returns the last.
    fn run(&mut self, from: u64, to: u64, mut each_second: impl FnMut(&mut Self, u64)) -> Analysis {
        let mut last = Analysis::default();
        for t in from..=to {
            each_second(self, t * S);
            last = self.update(t * S);
        }
        last
    }
}

fn rules() -> Rules {
    Rules {
        blocked_after: Duration::from_secs(5),
        growth_window: Duration::from_secs(20),
        ..Rules::default()
    }
}

fn evidence(a: &Analysis) -> Vec<&str> {
    a.suspects.iter().map(|s| s.evidence.as_str()).collect()
}

/// `per_second` leaked goroutines per second, each on its own channel.
fn leak(s: &mut Scenario, ts: u64, per_second: u64) {
    for i in 0..per_second {
        let goid = s.spawn(ts, SITE_LEAK, FN_WORKER);
        s.park(
            ts,
            goid,
            CHAN_SEND,
            &[BLOCK_SEND],
            &[0xc100_0000 + goid * 0x60 + i],
        );
    }
}

#[test]
fn goroutines_blocked_on_their_own_channels_become_one_blocked_suspect() {
    let mut s = Scenario::new(rules());
    let early = s.run(1, 4, |s, ts| leak(s, ts, 3));
    assert!(early.suspects.is_empty(), "{:?}", evidence(&early));
    let a = s.run(5, 12, |s, ts| leak(s, ts, 3));
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    let suspect = &a.suspects[0];
    assert_eq!(suspect.kind, SuspectKind::Blocked);
    assert_eq!(suspect.count, 36);
    assert_eq!(suspect.state, "chan send");
    assert_eq!(suspect.creation_site.as_ref().unwrap().line, Some(42));
    assert_eq!(suspect.blocked_at[0].function, "main.compute");
    assert_eq!(suspect.example_goid, 100, "the oldest member");
    assert_eq!(suspect.oldest_age_s, 11.0);
    assert!(
        (suspect.growth_per_min - 180.0).abs() < 1.0,
        "{}",
        suspect.growth_per_min
    );
    assert!(!suspect.ages_are_lower_bounds);
    assert_eq!(
        suspect.evidence,
        "36 goroutines created at api/handler.go:42 have been waiting on chan send for up to 11s; +180/min"
    );
    assert_eq!(
        suspect.score,
        score(SuspectKind::Blocked, 36, 11 * S, 180.0, s.engine.rules())
    );
}

#[test]
fn a_leak_that_stopped_growing_is_still_blocked() {
    let mut s = Scenario::new(rules());
    s.run(1, 2, |s, ts| leak(s, ts, 10));
    let a = s.run(3, 60, |_, _| {});
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    assert_eq!(a.suspects[0].kind, SuspectKind::Blocked);
    assert_eq!(a.suspects[0].count, 20);
    assert_eq!(a.suspects[0].growth_per_min, 0.0);
    assert!(
        !a.suspects[0].evidence.contains("/min"),
        "{}",
        a.suspects[0].evidence
    );
}

#[test]
fn idle_pool_workers_sharing_a_job_channel_are_not_suspects() {
    let mut s = Scenario::new(rules());
    let jobs = 0xc200_0000;
    let workers: Vec<u64> = (0..16).map(|_| s.spawn(S, SITE_POOL, FN_WORKER)).collect();
    for &w in &workers {
        s.park(S, w, CHAN_RECEIVE, &[BLOCK_RECV], &[jobs]);
    }
    let a = s.run(1, 120, |_, _| {});
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
    let group = &a.groups[0];
    assert_eq!((group.count, group.state.as_str()), (16, "chan receive"));
}

#[test]
fn thousands_parked_on_one_channel_are_not_a_pool() {
    let mut s = Scenario::new(rules());
    let never_closed = 0xc200_0000;
    for _ in 0..1500 {
        let w = s.spawn(S, SITE_POOL, FN_WORKER);
        s.park(S, w, CHAN_RECEIVE, &[BLOCK_RECV], &[never_closed]);
    }
    let a = s.run(1, 10, |_, _| {});
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    assert_eq!(a.suspects[0].count, 1500);
}

#[test]
fn workers_in_a_select_on_jobs_and_their_own_quit_channel_are_a_pool() {
    let mut s = Scenario::new(rules());
    let jobs = 0xc200_0000;
    for i in 0..8 {
        let w = s.spawn(S, SITE_POOL, FN_WORKER);
        s.park(S, w, SELECT, &[BLOCK_RECV], &[jobs, 0xc300_0000 + i * 0x60]);
    }
    let a = s.run(1, 60, |_, _| {});
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
}

#[test]
fn a_growing_group_on_a_shared_channel_is_not_a_pool() {
    // One goroutine per request, all waiting on the server's root context.
    let mut s = Scenario::new(rules());
    let root_done = 0xc400_0000;
    let a = s.run(1, 25, |s, ts| {
        let g = s.spawn(ts, SITE_LEAK, FN_WORKER);
        s.park(ts, g, CHAN_RECEIVE, &[BLOCK_RECV], &[root_done]);
    });
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    assert_eq!(a.suspects[0].kind, SuspectKind::Blocked);
    assert!(a.suspects[0].growth_per_min > 50.0);
}

#[test]
fn receivers_without_their_channels_read_are_judged_like_a_leak() {
    // Without the channel set, an idle pool cannot be told from a leak; a
    // large idle group is reported.
    let mut s = Scenario::new(rules());
    for _ in 0..16 {
        let w = s.spawn(S, SITE_POOL, FN_WORKER);
        s.park(S, w, CHAN_RECEIVE, &[BLOCK_RECV], &[]);
    }
    let a = s.run(1, 10, |_, _| {});
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
}

#[test]
fn connections_in_io_wait_are_not_suspects() {
    let mut s = Scenario::new(rules());
    for _ in 0..500 {
        let g = s.spawn(S, SITE_HTTP, FN_WORKER);
        s.park(S, g, IO_WAIT, &[0x9000], &[]);
    }
    let a = s.run(1, 300, |_, _| {});
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
}

#[test]
fn runtime_goroutines_are_not_suspects() {
    let mut s = Scenario::new(rules());
    for _ in 0..8 {
        let g = s.spawn(S, SITE_RUNTIME, FN_GC);
        s.park(S, g, GC_IDLE, &[0x9100], &[]);
    }
    // Even in a wait that could last forever.
    for _ in 0..8 {
        let g = s.spawn(S, SITE_LEAK, FN_GC);
        s.park(S, g, CHAN_RECEIVE, &[0x9200], &[]);
    }
    let a = s.run(1, 120, |_, _| {});
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
}

#[test]
fn a_handful_of_long_lived_singletons_are_not_suspects() {
    let mut s = Scenario::new(rules());
    // e.g. a signal.Notify waiter and two background loops.
    for (reason, pc) in [(CHAN_RECEIVE, 0x9300), (SELECT, 0x9400), (SELECT, 0x9400)] {
        let g = s.spawn(S, SITE_LEAK, FN_WORKER);
        s.park(S, g, reason, &[pc], &[0xc500_0000 + pc]);
    }
    let a = s.run(1, 600, |_, _| {});
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
}

#[test]
fn one_slow_call_in_a_busy_group_is_not_blocked() {
    let mut s = Scenario::new(rules());
    let slow = s.spawn(S, SITE_LEAK, FN_WORKER);
    s.park(S, slow, CHAN_RECEIVE, &[BLOCK_RECV], &[0xc700_0000]);
    // 40 in-flight calls waiting a moment each, replaced every second.
    let mut in_flight: Vec<u64> = Vec::new();
    let a = s.run(1, 30, |s, ts| {
        for g in in_flight.drain(..) {
            s.exit(ts, g);
        }
        for i in 0..40 {
            let g = s.spawn(ts, SITE_LEAK, FN_WORKER);
            s.park(
                ts,
                g,
                CHAN_RECEIVE,
                &[BLOCK_RECV],
                &[0xc800_0000 + i * 0x60],
            );
            in_flight.push(g);
        }
    });
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
    assert_eq!(a.groups[0].oldest_age_ns, 29 * S);
}

#[test]
fn a_mutex_never_unlocked_piles_up_goroutines_as_one_suspect() {
    let mut s = Scenario::new(rules());
    let a = s.run(1, 10, |s, ts| {
        for _ in 0..2 {
            let g = s.spawn(ts, SITE_LEAK, FN_WORKER);
            s.park(ts, g, MUTEX, &[0x9500, 0x9600], &[]);
        }
    });
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    assert_eq!(a.suspects[0].state, "sync.Mutex.Lock");
    assert_eq!(a.suspects[0].count, 20);
}

fn snapshot_goroutine(goid: u64, site: u64, reason: u8, seen_at: u64) -> SnapshotGoroutine {
    SnapshotGoroutine {
        goid,
        parent_goid: Some(1),
        gopc: Some(site),
        start_pc: Some(FN_WORKER),
        g_addr: 0xc000_0000 + goid * 0x200,
        status: 4,
        wait_reason: reason,
        waiting_since_ns: None,
        tracking_seq: None,
        seen_at_ns: seen_at,
    }
}

#[test]
fn a_large_group_found_at_attach_is_a_backlog_suspect_at_once() {
    let mut s = Scenario::new(rules());
    s.table
        .seed((1..=150).map(|goid| snapshot_goroutine(goid, SITE_LEAK, CHAN_SEND, S)));
    for goid in 1..=150 {
        s.table.set_blocked_at(
            goid,
            None,
            Arc::from(&[BLOCK_SEND][..]),
            Some(Arc::from(&[0xc600_0000 + goid * 0x60][..])),
        );
    }
    let a = s.update(S);
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    let suspect = &a.suspects[0];
    assert_eq!((suspect.kind, suspect.count), (SuspectKind::Backlog, 150));
    assert!(suspect.ages_are_lower_bounds);
    assert_eq!(
        suspect.evidence,
        "150 goroutines created at api/handler.go:42 were already waiting on chan send when the tracer attached (for at least 0ms)"
    );
}

#[test]
fn a_small_group_found_at_attach_waits_for_the_blocked_threshold() {
    let mut s = Scenario::new(rules());
    s.table
        .seed((1..=20).map(|goid| snapshot_goroutine(goid, SITE_LEAK, CHAN_SEND, S)));
    assert!(s.update(S).suspects.is_empty());
    let a = s.run(2, 6, |_, _| {});
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    assert_eq!(a.suspects[0].kind, SuspectKind::Blocked);
    assert!(
        a.suspects[0].evidence.contains("for at least 5s"),
        "{}",
        a.suspects[0].evidence
    );
}

#[test]
fn backlog_members_that_wake_up_are_not_a_backlog() {
    let mut s = Scenario::new(rules());
    s.table
        .seed((1..=150).map(|goid| snapshot_goroutine(goid, SITE_POOL, CHAN_RECEIVE, S)));
    for goid in 1..=150 {
        s.table.apply(&Event {
            ts_ns: S + goid,
            tid: 1,
            body: EventBody::Ready {
                goid,
                waker: None,
                g_addr: 0,
            },
        });
    }
    assert!(s.update(2 * S).suspects.is_empty());
}

#[test]
fn a_site_whose_running_goroutines_keep_growing_is_a_growing_suspect() {
    let mut s = Scenario::new(rules());
    let a = s.run(1, 30, |s, ts| {
        s.spawn(ts, SITE_LEAK, FN_WORKER);
        s.spawn(ts, SITE_LEAK, FN_WORKER);
    });
    assert_eq!(a.suspects.len(), 1, "{:?}", evidence(&a));
    let suspect = &a.suspects[0];
    assert_eq!(suspect.kind, SuspectKind::Growing);
    assert_eq!(suspect.count, 60);
    assert!((suspect.growth_per_min - 120.0).abs() < 1.0);
    assert_eq!(
        suspect.evidence,
        "live goroutines created at api/handler.go:42 grew by 40 to 60 in the last 20s (+120/min), 60 of them runnable"
    );
}

#[test]
fn healthy_churn_is_not_growth() {
    let mut s = Scenario::new(rules());
    let mut live: std::collections::VecDeque<u64> = Default::default();
    // 50 spawns and ~50 exits a second, with the in-flight count wobbling.
    let a = s.run(1, 120, |s, ts| {
        for i in 0..50 {
            live.push_back(s.spawn(ts, SITE_CHURN, FN_WORKER));
            let in_flight = 20 + (ts / S + i) % 7;
            while live.len() as u64 > in_flight {
                let g = live.pop_front().unwrap();
                s.exit(ts, g);
            }
        }
    });
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
}

#[test]
fn growth_that_stopped_is_no_longer_growing() {
    let mut s = Scenario::new(rules());
    s.run(1, 30, |s, ts| {
        s.spawn(ts, SITE_LEAK, FN_WORKER);
    });
    let a = s.run(31, 60, |_, _| {});
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
}

#[test]
fn ignored_sites_are_dropped() {
    let mut s = Scenario::new(Rules {
        ignore_sites: vec!["handler.go:42".into()],
        ..rules()
    });
    let a = s.run(1, 12, |s, ts| leak(s, ts, 3));
    assert!(a.suspects.is_empty(), "{:?}", evidence(&a));
}

#[test]
fn goroutines_whose_stack_is_not_read_yet_join_their_group() {
    let mut s = Scenario::new(rules());
    s.run(1, 6, |s, ts| leak(s, ts, 3));
    let g = s.spawn(7 * S, SITE_LEAK, FN_WORKER);
    s.table.apply(&Event {
        ts_ns: 7 * S,
        tid: 1,
        body: EventBody::Park {
            goid: g,
            reason: CHAN_SEND,
            lock: 0,
            g_addr: 0,
        },
    });
    let a = s.update(7 * S);
    assert_eq!(a.groups.len(), 1);
    assert_eq!(a.suspects[0].count, 19);
}

#[test]
fn group_histories_are_bounded_and_forgotten() {
    let mut s = Scenario::new(rules());
    let g = s.spawn(S, SITE_LEAK, FN_WORKER);
    let a = s.run(1, 700, |_, _| {});
    let id = a.groups[0].id;
    assert_eq!(s.engine.history(id).unwrap().samples().count(), HISTORY);
    s.exit(701 * S, g);
    s.run(701, 730, |_, _| {});
    assert!(s.engine.history(id).is_none());
}

#[test]
fn numbers_and_durations_read_like_go_developers_write_them() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1204), "1,204");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(human_duration(950_000_000), "950ms");
    assert_eq!(human_duration(42 * S), "42s");
    assert_eq!(human_duration(372 * S), "6m12s");
    assert_eq!(human_duration(3 * 3600 * S + 300 * S), "3h05m");
    assert_eq!(human_duration(52 * 3600 * S), "2d04h");
    let loc = |file: Option<&str>, line| SourceLocation {
        pc: "0x1".into(),
        function: "main.f".into(),
        file: file.map(str::to_string),
        line,
    };
    assert_eq!(
        site_label(&loc(Some("/src/api/handler.go"), Some(42))),
        "api/handler.go:42"
    );
    assert_eq!(
        site_label(&loc(Some("handler.go"), Some(42))),
        "handler.go:42"
    );
    assert_eq!(site_label(&loc(None, None)), "main.f");
}

#[test]
fn scores_grow_with_size_age_and_growth_and_stay_within_100() {
    let r = rules();
    let small = score(SuspectKind::Blocked, 5, 6 * S, 0.0, &r);
    let large = score(SuspectKind::Blocked, 5000, 6 * S, 0.0, &r);
    let old = score(SuspectKind::Blocked, 5, 600 * S, 0.0, &r);
    let fast = score(SuspectKind::Blocked, 5, 6 * S, 600.0, &r);
    assert!(small < large && small < old && small < fast);
    assert_eq!(
        score(SuspectKind::Blocked, u64::MAX, u64::MAX, 1e9, &r),
        100
    );
}

// ---- timers and contexts --------------------------------------------------

impl Scenario {
    /// A context created at `SITE_LEAK` through `context.WithCancel`
    /// (frames are return addresses, one past the call).
    fn context(&mut self, ts: u64, addr: u64, registered: Option<bool>) {
        self.timers.apply_context(
            ts,
            &ContextEvent {
                context: addr,
                op: ContextOp::Create { registered },
                goid: 1,
                frames: Frames::new(&[CTX_WITH_CANCEL + 1, SITE_LEAK + 1]),
            },
        );
    }

    /// A timer created at `SITE_LEAK` by `goid`, of `kind`.
    fn timer(&mut self, ts: u64, addr: u64, goid: u64, kind: TimerShape) {
        let callback = (kind.func == FN_GO_FUNC).then_some((FN_CALLBACK, 0));
        self.timers.apply_timer(
            ts,
            &TimerEvent {
                timer: addr,
                op: TimerOp::Create {
                    when: (ts + 3600 * S) as i64,
                    period: kind.period,
                    func: kind.func,
                    callback,
                    is_chan: kind.is_chan,
                },
                goid,
                frames: Frames::new(&[kind.via + 1, SITE_LEAK + 1]),
            },
        );
    }
}

/// What a timer is: the `time` function that made it, its function,
/// period, and whether it is a Go >=1.23 channel timer.
#[derive(Clone, Copy)]
struct TimerShape {
    via: u64,
    func: u64,
    period: i64,
    is_chan: bool,
}

const AFTER_FUNC: TimerShape = TimerShape {
    via: TIME_AFTER_FUNC,
    func: FN_GO_FUNC,
    period: 0,
    is_chan: false,
};
const CHANNEL_TIMER: TimerShape = TimerShape {
    via: TIME_AFTER_FUNC,
    func: FN_SEND_TIME,
    period: 0,
    is_chan: true,
};
const TICKER: TimerShape = TimerShape {
    via: TIME_NEW_TICKER,
    func: FN_SEND_TIME,
    period: S as i64,
    is_chan: false,
};

#[test]
fn contexts_kept_by_their_parent_and_never_cancelled_are_one_suspect() {
    let mut s = Scenario::new(rules());
    for i in 0..150 {
        s.context(i * S / 100, 0xc000 + i * 0x100, Some(true));
    }
    let a = s.update(20 * S);
    assert_eq!(a.suspects.len(), 1, "{:#?}", a.suspects);
    let suspect = &a.suspects[0];
    assert_eq!(
        (suspect.kind, suspect.count, suspect.state.as_str()),
        (SuspectKind::ContextLeak, 150, "context not cancelled")
    );
    assert_eq!(
        suspect.evidence,
        "context.WithCancel at api/handler.go:42: 150 contexts never cancelled, each kept by its parent context, the oldest for 20s"
    );
    let group = &a.timers.contexts[0];
    assert_eq!(
        (group.kind, group.live, group.retained),
        (timers::ContextKind::Cancel, 150, 150)
    );
    assert_eq!(suspect.group, group.id);
}

#[test]
fn contexts_nothing_keeps_are_collected_not_leaked() {
    let mut s = Scenario::new(rules());
    for i in 0..150 {
        s.context(i * S / 100, 0xc000 + i * 0x100, Some(false));
    }
    let a = s.update(20 * S);
    assert!(a.suspects.is_empty(), "{:#?}", a.suspects);
    assert_eq!(
        (a.timers.contexts[0].live, a.timers.contexts[0].retained),
        (150, 0)
    );
}

#[test]
fn pending_after_funcs_are_a_suspect_and_channel_timers_never() {
    let mut s = Scenario::new(rules());
    for i in 0..150 {
        s.timer(i * S / 100, 0x7000 + i * 0x100, 1, AFTER_FUNC);
    }
    let a = s.update(20 * S);
    assert_eq!(a.suspects.len(), 1, "{:#?}", a.suspects);
    assert_eq!(
        (a.suspects[0].kind, a.suspects[0].count),
        (SuspectKind::TimerLeak, 150)
    );
    assert!(a.suspects[0]
        .evidence
        .starts_with("time.AfterFunc at api/handler.go:42: 150 timers pending, none stopped, each armed for 1h00m"));

    // Go >= 1.23 channel timers: collected by the GC when unreferenced.
    let mut s = Scenario::new(rules());
    for i in 0..150 {
        s.timer(i * S / 100, 0x7000 + i * 0x100, 1, CHANNEL_TIMER);
    }
    let a = s.update(20 * S);
    assert!(a.suspects.is_empty(), "{:#?}", a.suspects);
    assert_eq!(a.timers.timers[0].pending, 150);
}

#[test]
fn tickers_outliving_the_goroutine_that_made_them_are_a_suspect() {
    let mut s = Scenario::new(rules());
    let mut owners = Vec::new();
    for i in 0..10 {
        let goid = s.spawn(i * S, SITE_CHURN, FN_WORKER);
        s.timer(i * S, 0x7000 + i * 0x100, goid, TICKER);
        owners.push(goid);
    }
    let a = s.update(11 * S);
    assert!(a.suspects.is_empty(), "owners alive: {:#?}", a.suspects);
    for (i, goid) in owners.into_iter().enumerate() {
        s.exit(11 * S + i as u64, goid);
    }
    // Only tickers older than --blocked-after (5 s here) count: the table
    // may not know a goroutine spawned a moment ago.
    let a = s.update(12 * S);
    assert_eq!(a.timers.timers[0].orphaned, 8, "{:#?}", a.timers.timers[0]);
    let a = s.update(15 * S);
    assert_eq!(a.suspects.len(), 1, "{:#?}", a.suspects);
    assert_eq!(
        (a.suspects[0].kind, a.suspects[0].count),
        (SuspectKind::TickerLeak, 10)
    );
    assert_eq!(a.timers.timers[0].orphaned, 10);
}

#[test]
fn without_the_timer_probes_nothing_is_judged() {
    let mut s = Scenario::new(rules());
    for i in 0..150 {
        s.context(i * S / 100, 0xc000 + i * 0x100, Some(true));
    }
    s.timers.set_traced(false);
    let a = s.update(20 * S);
    assert!(a.suspects.is_empty(), "{:#?}", a.suspects);
    assert!(!a.timers.traced);
    assert_eq!(a.timers.totals.contexts_live, 0);
}

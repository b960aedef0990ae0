//! The leak-suspect engine on real Go programs: each classic leak of
//! `tests/go/leaks` (timeout, producer, waitgroup, mutex, context) is
//! reported as exactly one suspect whose site, wait reason, stack and count
//! the program's own goroutine dump confirms; goroutines already leaked at
//! attach are reported at once as a "backlog"; and the healthy patterns of
//! `tests/go/healthy` (idle pool, busy HTTP service, tickers) are never
//! reported.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::*;

/// The rule thresholds every test here attaches with (except the backlog
/// test, which keeps the defaults): short enough for a few seconds of run.
const RULE_FLAGS: &[&str] = &[
    "--interval",
    "1s",
    "--blocked-after",
    "2s",
    "--growth-window",
    "10s",
];
/// How long a leak pattern runs under the tracer before the target stops
/// leaking: at 20 leaks/s, ~140 goroutines, the first ones waiting far past
/// --blocked-after.
const LEAK_RUN: Duration = Duration::from_secs(7);
/// Leaks per second of the leak patterns (the target's -rate).
const LEAK_RATE: u64 = 20;
/// How long a healthy pattern runs under the tracer: 4× --blocked-after,
/// and the idle pool gets at least two jobs (one every 3s).
const HEALTHY_RUN: Duration = Duration::from_secs(8);
/// Goroutines the backlog target leaks before READY (> --backlog-min 100).
const PREFILL: u64 = 150;
/// Pause of each HTTP client between requests. With no pause, 8 clients on
/// this 2-core machine make ~40,000 requests/s (~80,000 goroutines/s from
/// the fan-out) and the tracer loses events by the million; at 20ms the
/// service still makes ~400 requests/s (~800 fan-out goroutines/s plus the
/// server's per-request background reads) with no event lost, so the test
/// is about the rules, not the ring buffer.
const HTTP_THINK: &str = "20ms";

/// The wait reason Go prints for each pattern's leaked goroutines, per Go
/// version (checked on 1.21–1.27 with the fixture's own dumps): a WaitGroup
/// wait is "semacquire" up to Go 1.23, "sync.WaitGroup.Wait" from Go 1.24;
/// a context that is never cancelled is a plain `<-ctx.Done()` receive.
fn expected_state(pattern: &str, version: &str) -> &'static str {
    match pattern {
        "timeout" | "producer" => "chan send",
        "waitgroup" if minor(version) <= 23 => "semacquire",
        "waitgroup" => "sync.WaitGroup.Wait",
        "mutex" => "sync.Mutex.Lock",
        "context" => "chan receive",
        _ => panic!("unknown leak pattern {pattern}"),
    }
}

fn dump_path(name: &str, version: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tracer-suspects-{name}-{version}.dump"))
}

/// The goroutines of a dump created at `file_line` (`leaks/main.go:94`).
fn dumped_at<'a>(dumped: &'a [DumpGoroutine], file_line: &str) -> Vec<&'a DumpGoroutine> {
    dumped
        .iter()
        .filter(|g| {
            g.created_at
                .as_deref()
                .is_some_and(|c| c.ends_with(file_line))
        })
        .collect()
}

/// Every document carries a `"suspects"` array; returns the final one's.
fn final_suspects(docs: &[Value]) -> &[Value] {
    for (i, d) in docs.iter().enumerate() {
        assert!(
            d["suspects"].is_array(),
            "document {i} after the first has no \"suspects\" array: {}",
            d.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
    }
    suspects(docs.last().expect("a final document"))
}

/// Facts of one leaked group as the target itself reports them.
struct Confirmed {
    site: u32,
    block: u32,
    state: String,
    goids: Vec<u64>,
}

/// Runs `leaks -pattern <pattern>` and asserts the one suspect it causes.
fn leak_for(env: &TestEnv, version: &str, pattern: &str) {
    eprintln!("--- Go {version} leaks -pattern {pattern}");
    let started = Instant::now();
    let dump = dump_path(pattern, version);
    let _ = std::fs::remove_file(&dump);
    let mut cmd = Command::new(env.go_target(version, "leaks"));
    cmd.args([
        "-pattern",
        pattern,
        "-rate",
        &LEAK_RATE.to_string(),
        "-dump",
    ])
    .arg(&dump);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(10));
    let inspected = inspect(env, target.pid);

    let mut tracer = attach_json_with(env, target.pid, RULE_FLAGS);
    std::thread::sleep(LEAK_RUN);
    // Stop leaking, so that the dump, the target's counter and the tracer's
    // last document all describe the same set of leaked goroutines: the
    // target answers once every leaked goroutine is parked where it leaks.
    target.signal(libc::SIGUSR2);
    let paused = fields(&target.stdout.expect("PAUSED", Duration::from_secs(15)));
    let leaked: u64 = paused["leaked"].parse().unwrap();
    assert_eq!(
        paused["settled"], paused["leaked"],
        "{pattern}: the target's leaked goroutines did not all park: {paused:?}"
    );
    target.signal(libc::SIGUSR1);
    let dumped_line = fields(&target.stdout.expect("DUMPED", Duration::from_secs(10)));
    assert_eq!(
        dumped_line["leaked"],
        leaked.to_string(),
        "{pattern}: nothing may leak while paused"
    );
    let docs = stop_tracer_all(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
    let last = docs.last().unwrap();

    // The target's own view of its leak.
    let site = env.site_line("leaks", pattern);
    let block = env.marked_line("leaks", &format!("// BLOCK:{pattern}"));
    let dumped = parse_goroutine_dump(&std::fs::read_to_string(&dump).expect("read dump"));
    let at_site = dumped_at(&dumped, &format!("leaks/main.go:{site}"));
    let state = expected_state(pattern, version);
    assert_eq!(
        at_site.len() as u64,
        leaked,
        "{pattern}: the dump shows every leaked goroutine at leaks/main.go:{site}"
    );
    for g in &at_site {
        assert_eq!(g.reason, state, "{pattern}: Go {version} dump: {g:?}");
        assert!(
            g.frames
                .iter()
                .any(|(_, loc)| loc.ends_with(&format!("leaks/main.go:{block}"))),
            "{pattern}: the dump shows goroutine {} blocked at line {block}: {g:?}",
            g.goid
        );
    }
    let confirmed = Confirmed {
        site,
        block,
        state: state.to_string(),
        goids: at_site.iter().map(|g| g.goid).collect(),
    };

    assert_eq!(
        last["totals"]["lost_events"], 0,
        "{pattern}: no event may be lost at {LEAK_RATE} leaks/s: {}",
        last["totals"]
    );
    let found = final_suspects(&docs);
    assert_eq!(
        found.len(),
        1,
        "{pattern}: exactly one suspect expected (the leak at leaks/main.go:{site}), got:\n{}",
        describe_suspects(found)
    );
    let s = &found[0];
    assert!(
        matches!(s["kind"].as_str(), Some("blocked" | "growing")),
        "{pattern}: a leak that grows under the tracer is \"blocked\" or \"growing\":\n{}",
        describe_suspects(found)
    );
    check_suspect(s, &confirmed, pattern, found);
    // Leaking was paused and every leaked goroutine had parked before the
    // dump, and the tracer's last document comes after the dump: nothing was
    // created or freed in between, so the tolerance is zero — the group is
    // exactly the dump's goroutines at that site in that state, which are
    // exactly the target's own leak counter.
    assert_eq!(
        s["count"].as_u64(),
        Some(leaked),
        "{pattern}: count vs the target's counter and dump ({leaked}):\n{}",
        describe_suspects(found)
    );
    assert!(
        leaked >= 20,
        "{pattern}: the target leaked only {leaked} in {LEAK_RUN:?}"
    );
    assert!(
        s["growth_per_min"].as_f64().is_some_and(|g| g > 0.0),
        "{pattern}: the group grew at ~{}/min while traced:\n{}",
        LEAK_RATE * 60,
        describe_suspects(found)
    );
    let oldest = s["oldest_age_s"].as_f64().unwrap_or(-1.0);
    let median = s["median_age_s"].as_f64().unwrap_or(-1.0);
    assert!(
        oldest >= 2.0 && (0.0..=oldest).contains(&median),
        "{pattern}: oldest ({oldest}) past --blocked-after 2s, median ({median}) ≤ oldest:\n{}",
        describe_suspects(found)
    );

    assert_no_probes_left(Some((&inspected, target.pid)));
    target.signal(libc::SIGTERM);
    let (status, _) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target must be unharmed: {status}");
    eprintln!("    {leaked} leaked, {:.1?}", started.elapsed());
}

/// The assertions every leak suspect passes: site, state, stack, evidence,
/// example goroutine, score, against what the target's dump confirms.
fn check_suspect(s: &Value, c: &Confirmed, pattern: &str, all: &[Value]) {
    let list = describe_suspects(all);
    let site = &s["creation_site"];
    assert!(
        site["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("leaks/main.go"))
            && site["line"].as_u64() == Some(c.site as u64),
        "{pattern}: creation site {} should be leaks/main.go:{}:\n{list}",
        location(site),
        c.site
    );
    assert_eq!(
        s["state"].as_str(),
        Some(c.state.as_str()),
        "{pattern}: state, as Go's own dump words it:\n{list}"
    );
    let frames = s["blocked_at"].as_array().unwrap_or_else(|| {
        panic!("{pattern}: no blocked_at stack:\n{list}");
    });
    assert!(
        frames.iter().any(|f| {
            f["file"]
                .as_str()
                .is_some_and(|file| file.ends_with("leaks/main.go"))
                && f["line"].as_u64() == Some(c.block as u64)
        }),
        "{pattern}: blocked_at should contain leaks/main.go:{} (the blocking statement): {}\n{list}",
        c.block,
        frames.iter().map(location).collect::<Vec<_>>().join(" ← ")
    );
    let evidence = s["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence.contains(&format!("main.go:{}", c.site)) && evidence.contains(&c.state),
        "{pattern}: evidence should name main.go:{} and {:?}: {evidence:?}",
        c.site,
        c.state
    );
    let example = s["example_goid"].as_u64();
    assert!(
        example.is_some_and(|g| c.goids.contains(&g)),
        "{pattern}: example_goid {} is not one of the dump's goroutines at the site:\n{list}",
        s["example_goid"]
    );
    assert!(
        s["start_function"]
            .as_str()
            .is_some_and(|f| f.starts_with("main.")),
        "{pattern}: start function:\n{list}"
    );
    assert!(
        s["score"].as_u64().is_some_and(|v| v <= 100),
        "{pattern}: score is an integer in 0..=100:\n{list}"
    );
}

fn leak_test(pattern: &str) {
    let env = test_env();
    for version in &env.go_versions {
        leak_for(&env, version, pattern);
    }
}

#[test]
fn timeout_leak_is_the_one_suspect() {
    leak_test("timeout");
}

#[test]
fn producer_leak_is_the_one_suspect() {
    leak_test("producer");
}

#[test]
fn waitgroup_leak_is_the_one_suspect() {
    leak_test("waitgroup");
}

#[test]
fn mutex_leak_is_the_one_suspect() {
    leak_test("mutex");
}

#[test]
fn context_leak_is_the_one_suspect() {
    leak_test("context");
}

/// 150 producers leaked before attach, none after: with the default rules
/// (--blocked-after 10s, so not yet "blocked"; no growth) the group is
/// reported within seconds as a "backlog" of exactly 150.
#[test]
fn goroutines_leaked_before_attach_are_a_backlog_suspect() {
    let env = test_env();
    for version in &env.go_versions {
        eprintln!("--- Go {version} leaks -pattern producer -prefill {PREFILL}");
        let dump = dump_path("backlog", version);
        let _ = std::fs::remove_file(&dump);
        let mut cmd = Command::new(env.go_target(version, "leaks"));
        cmd.args(["-pattern", "producer", "-rate", "0"])
            .args(["-prefill", &PREFILL.to_string(), "-dump"])
            .arg(&dump);
        let mut target = Proc::start(cmd);
        // READY comes once all PREFILL producers are parked on their send.
        let ready = fields(&target.stdout.expect("READY", Duration::from_secs(30)));
        assert_eq!(ready["leaked"], PREFILL.to_string());
        let inspected = inspect(&env, target.pid);

        let mut tracer = attach_json_with(&env, target.pid, &["--interval", "1s"]);
        std::thread::sleep(Duration::from_secs(3));
        target.signal(libc::SIGUSR1);
        let dumped_line = fields(&target.stdout.expect("DUMPED", Duration::from_secs(10)));
        assert_eq!(dumped_line["leaked"], PREFILL.to_string());
        let docs = stop_tracer_all(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");

        let site = env.site_line("leaks", "producer");
        let block = env.marked_line("leaks", "// BLOCK:producer");
        let dumped = parse_goroutine_dump(&std::fs::read_to_string(&dump).expect("read dump"));
        let at_site = dumped_at(&dumped, &format!("leaks/main.go:{site}"));
        assert_eq!(at_site.len() as u64, PREFILL, "the dump at line {site}");
        let confirmed = Confirmed {
            site,
            block,
            state: "chan send".to_string(),
            goids: at_site.iter().map(|g| g.goid).collect(),
        };
        assert!(at_site.iter().all(|g| g.reason == confirmed.state));

        let found = final_suspects(&docs);
        assert_eq!(
            found.len(),
            1,
            "exactly one suspect expected (the backlog at leaks/main.go:{site}), got:\n{}",
            describe_suspects(found)
        );
        let s = &found[0];
        assert_eq!(
            s["kind"].as_str(),
            Some("backlog"),
            "goroutines found blocked at attach, none added:\n{}",
            describe_suspects(found)
        );
        assert_eq!(
            s["count"].as_u64(),
            Some(PREFILL),
            "the backlog is every prefilled producer:\n{}",
            describe_suspects(found)
        );
        check_suspect(s, &confirmed, "backlog", found);

        assert_no_probes_left(Some((&inspected, target.pid)));
        target.signal(libc::SIGTERM);
        let (status, _) = target.wait(Duration::from_secs(10));
        assert!(status.success(), "the target must be unharmed: {status}");
    }
}

/// Runs `healthy -pattern <pattern>` under the tracer; no suspect may come
/// up. Also checks that the tracer did see what makes each pattern a good
/// trap (so an empty list means "judged healthy", not "saw nothing").
fn healthy_for(env: &TestEnv, version: &str, pattern: &str) {
    eprintln!("--- Go {version} healthy -pattern {pattern}");
    let dump = dump_path(&format!("healthy-{pattern}"), version);
    let _ = std::fs::remove_file(&dump);
    let mut cmd = Command::new(env.go_target(version, "healthy"));
    cmd.args(["-pattern", pattern, "-think", HTTP_THINK, "-dump"])
        .arg(&dump);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(10));
    let inspected = inspect(env, target.pid);

    let mut tracer = attach_json_with(env, target.pid, RULE_FLAGS);
    std::thread::sleep(HEALTHY_RUN);
    target.signal(libc::SIGUSR1);
    let counters = fields(&target.stdout.expect("DUMPED", Duration::from_secs(10)));
    let activity = |what: &str| -> u64 { counters[what].parse().unwrap() };
    let docs = stop_tracer_all(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
    let last = docs.last().unwrap();
    let dumped = parse_goroutine_dump(&std::fs::read_to_string(&dump).expect("read dump"));

    assert_eq!(
        last["totals"]["lost_events"], 0,
        "{pattern}: events were lost, so the goroutine table (and any verdict) is unreliable: {}",
        last["totals"]
    );
    let live_at = |marker: &str| {
        let line = env.site_line("healthy", marker);
        last["goroutines"]
            .as_array()
            .expect("goroutines")
            .iter()
            .filter(|g| {
                g["creation_site"]["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("healthy/main.go"))
                    && g["creation_site"]["line"].as_u64() == Some(line as u64)
            })
            .count()
    };
    // The tracer saw what makes each pattern a trap, and the target really
    // was busy (its own counters, from the DUMPED line).
    let site_seen = |marker: &str| {
        let line = env.site_line("healthy", marker);
        last["sites"].as_array().expect("sites").iter().any(|s| {
            s["site"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("healthy/main.go"))
                && s["site"]["line"].as_u64() == Some(line as u64)
                && s["spawned"].as_u64().is_some_and(|n| n > 0)
        })
    };
    if matches!(pattern, "pool" | "all") {
        // 16 idle workers on one channel, created before attach: the
        // tracer lists them and the dump confirms they wait there.
        let line = env.site_line("healthy", "pool");
        let workers = dumped_at(&dumped, &format!("healthy/main.go:{line}"));
        assert_eq!(workers.len(), 16, "pool workers in the dump");
        assert!(
            workers
                .iter()
                .filter(|g| g.reason == "chan receive")
                .count()
                >= 15,
            "the pool is idle: {workers:?}"
        );
        assert_eq!(live_at("pool"), 16, "the tracer lists the 16 pool workers");
        assert!(
            activity("jobs") >= 2,
            "a job every 3s for {HEALTHY_RUN:?}: {} done",
            activity("jobs")
        );
    }
    if matches!(pattern, "http" | "all") {
        assert_eq!(live_at("client"), 8, "the tracer lists the 8 HTTP clients");
        assert!(
            site_seen("fanout"),
            "the tracer saw the handler's fan-out goroutines: {}",
            last["sites"]
        );
        assert!(
            activity("requests") >= 1000,
            "8 clients, {HTTP_THINK} apart, for {HEALTHY_RUN:?}: {} requests",
            activity("requests")
        );
    }
    if matches!(pattern, "ticker" | "all") {
        assert!(
            site_seen("ticker"),
            "the tracer saw the ticker goroutines: {}",
            last["sites"]
        );
        assert!(
            activity("tickers") >= 50,
            "a ticker goroutine every 100ms for {HEALTHY_RUN:?}: {} finished",
            activity("tickers")
        );
    }

    let found = final_suspects(&docs);
    assert!(
        found.is_empty(),
        "{pattern}: a healthy program has no leak suspect, got {}:\n{}",
        found.len(),
        describe_suspects(found)
    );
    // Nor any earlier document: a false alarm that went away is still one.
    for (i, d) in docs.iter().enumerate() {
        assert!(
            suspects(d).is_empty(),
            "{pattern}: document {i} after the first reported:\n{}",
            describe_suspects(suspects(d))
        );
    }

    assert_no_probes_left(Some((&inspected, target.pid)));
    target.signal(libc::SIGTERM);
    let (status, _) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target must be unharmed: {status}");
}

fn healthy_test(pattern: &str) {
    let env = test_env();
    for version in &env.go_versions {
        healthy_for(&env, version, pattern);
    }
}

#[test]
fn an_idle_worker_pool_is_not_a_suspect() {
    healthy_test("pool");
}

#[test]
fn a_busy_http_service_is_not_a_suspect() {
    healthy_test("http");
}

#[test]
fn short_lived_tickers_are_not_a_suspect() {
    healthy_test("ticker");
}

#[test]
fn healthy_patterns_together_are_not_a_suspect() {
    healthy_test("all");
}

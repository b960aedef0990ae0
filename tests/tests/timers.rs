//! Timers and contexts on real Go programs (`tests/go/timers`): for every
//! pattern the tracer's counts of created, reset, stopped, fired and
//! pending timers, Sleeps, and created, cancelled (by caller, parent,
//! deadline) and live contexts equal what the program counted itself; each
//! leaking pattern is exactly one suspect at its line, the healthy ones
//! none; and a storm of goroutines, timers and contexts at full speed loses
//! nothing, or says so.
//!
//! Go's semantics are part of the facts: since Go 1.23 a channel timer
//! nobody references is collected by the GC, so a never-stopped ticker or a
//! `time.After` in a loop leaks only in async timer mode (Go ≤1.22, and
//! 1.23–1.26 when the module says `go` < 1.23, as this one does); the
//! sync mode (`GODEBUG=asynctimerchan=0`, always from 1.27) is tested too.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::*;

/// A pattern of the fixture: which marked lines create its timers and
/// contexts (and of which kind), and the suspect it must cause.
struct Pattern {
    name: &'static str,
    timers: &'static [(&'static str, &'static str)],
    contexts: &'static [(&'static str, &'static str)],
    /// (suspect kind, marker); `async_only`: a leak only in async mode.
    leak: Option<(&'static str, &'static str)>,
    async_only: bool,
}

const PATTERNS: &[Pattern] = &[
    Pattern {
        name: "ctx-timeout",
        timers: &[("ctx-timeout", "context_deadline")],
        contexts: &[("ctx-timeout", "timeout")],
        leak: Some(("context_leak", "ctx-timeout")),
        async_only: false,
    },
    Pattern {
        name: "ctx-cancel",
        timers: &[],
        contexts: &[("ctx-cancel", "cancel")],
        leak: Some(("context_leak", "ctx-cancel")),
        async_only: false,
    },
    Pattern {
        name: "ticker",
        timers: &[("ticker", "ticker")],
        contexts: &[],
        leak: Some(("ticker_leak", "ticker")),
        async_only: true,
    },
    Pattern {
        name: "afterfunc",
        timers: &[("afterfunc", "after_func")],
        contexts: &[],
        leak: Some(("timer_leak", "afterfunc")),
        async_only: false,
    },
    Pattern {
        name: "after-loop",
        timers: &[("after", "after")],
        contexts: &[],
        leak: Some(("after_in_loop", "after")),
        async_only: true,
    },
    Pattern {
        name: "ctx-defer",
        timers: &[("ctx-defer", "context_deadline")],
        contexts: &[("ctx-defer", "timeout")],
        leak: None,
        async_only: false,
    },
    Pattern {
        name: "ctx-parent",
        timers: &[],
        contexts: &[("ctx-parent-op", "cancel"), ("ctx-child", "cancel")],
        leak: None,
        async_only: false,
    },
    Pattern {
        name: "ctx-deadline",
        timers: &[("ctx-deadline", "context_deadline")],
        contexts: &[("ctx-deadline", "timeout")],
        leak: None,
        async_only: false,
    },
    Pattern {
        name: "ticker-stop",
        timers: &[("ticker-stop", "ticker")],
        contexts: &[],
        leak: None,
        async_only: false,
    },
    Pattern {
        name: "timer-reuse",
        timers: &[("reuse", "timer")],
        contexts: &[],
        leak: None,
        async_only: false,
    },
    Pattern {
        name: "afterfunc-ok",
        timers: &[("afterfunc-ok", "after_func")],
        contexts: &[],
        leak: None,
        async_only: false,
    },
    Pattern {
        name: "sleep",
        timers: &[],
        contexts: &[],
        leak: None,
        async_only: false,
    },
    Pattern {
        name: "storm",
        timers: &[
            ("storm-ctx", "context_deadline"),
            ("storm-timer", "after_func"),
        ],
        contexts: &[("storm-ctx", "timeout")],
        leak: None,
        async_only: false,
    },
];

/// The timer mode a run's channel timers are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The module's default (`go 1.21`): async up to Go 1.26.
    Default,
    /// `GODEBUG=asynctimerchan=0`: Go ≥1.23 channel timers.
    Sync,
}

fn channel_timers(version: &str, mode: Mode) -> bool {
    minor(version) >= 27 || (minor(version) >= 23 && mode == Mode::Sync)
}

/// The line of `// SITE:<marker>` exactly (markers share prefixes).
fn line_of(env: &TestEnv, marker: &str) -> u64 {
    let path = env.go_src.join("timers/main.go");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let end = format!("// SITE:{marker}");
    let lines: Vec<u64> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with(&end))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert_eq!(lines.len(), 1, "expected one line ending {end:?}");
    lines[0]
}

struct Run {
    done: std::collections::BTreeMap<String, String>,
    docs: Vec<Value>,
}

impl Run {
    fn last(&self) -> &Value {
        self.docs.last().expect("a final document")
    }

    fn done(&self, key: &str) -> u64 {
        self.done[key]
            .parse()
            .unwrap_or_else(|e| panic!("DONE {key}: {e}"))
    }
}

/// Runs one pattern under the tracer: attach, start the pattern (SIGUSR2)
/// for `(n, every)` (its `-n` and `-every`), wait for its DONE line, then
/// `settle` more, and stop the tracer.
fn run(
    env: &TestEnv,
    version: &str,
    mode: Mode,
    name: &str,
    (n, every): (u64, &str),
    settle: Duration,
    flags: &[&str],
) -> Run {
    eprintln!("--- Go {version} ({mode:?}) timers -pattern {name} -n {n} -every {every}");
    let mut cmd = Command::new(env.go_target(version, "timers"));
    cmd.args(["-pattern", name, "-n", &n.to_string(), "-every", every]);
    if mode == Mode::Sync {
        cmd.env("GODEBUG", "asynctimerchan=0");
    }
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(10));
    let mut tracer = attach_json_with(env, target.pid, flags);
    target.signal(libc::SIGUSR2);
    let done = fields(&target.stdout.expect("DONE", Duration::from_secs(120)));
    std::thread::sleep(settle);
    let docs = stop_tracer_all(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
    target.signal(libc::SIGTERM);
    let (status, stderr) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target failed: {status}\n{stderr}");
    Run { done, docs }
}

/// The groups of `section` ("timers" or "contexts") created at `line` of
/// the fixture.
fn groups_at<'a>(doc: &'a Value, section: &str, line: u64) -> Vec<&'a Value> {
    doc["timers"][section]
        .as_array()
        .unwrap_or_else(|| panic!("no timers.{section} array in {doc}"))
        .iter()
        .filter(|g| {
            g["site"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("timers/main.go"))
                && g["site"]["line"].as_u64() == Some(line)
        })
        .collect()
}

fn sum(groups: &[&Value], key: &str) -> u64 {
    groups.iter().map(|g| g[key].as_u64().unwrap_or(0)).sum()
}

fn describe(doc: &Value) -> String {
    let t = &doc["timers"];
    let mut out = format!("totals {}\n", t["totals"]);
    for section in ["timers", "contexts"] {
        for g in t[section].as_array().into_iter().flatten() {
            let mut g = g.clone();
            let site = format!("{}:{}", g["site"]["file"], g["site"]["line"]);
            g.as_object_mut().map(|o| o.remove("site"));
            out.push_str(&format!("  {section} at {site}: {g}\n"));
        }
    }
    out.push_str(&format!("probes {}\nmode {}\n", doc["probes"], doc["mode"]));
    out
}

/// Every count of the final document equals the target's own. The one
/// count the program cannot see is how often its tickers fire unread: in
/// async mode the runtime keeps firing them, with channel timers never.
fn assert_counts(env: &TestEnv, version: &str, mode: Mode, p: &Pattern, r: &Run) {
    let doc = r.last();
    let why = || format!("pattern {}: DONE {:?}\n{}", p.name, r.done, describe(doc));
    assert_eq!(doc["probes"]["ringbuf_full"], 0, "events lost\n{}", why());
    let mut timers = Vec::new();
    for &(marker, kind) in p.timers {
        let at = groups_at(doc, "timers", line_of(env, marker));
        assert!(!at.is_empty(), "no timer group at SITE:{marker}\n{}", why());
        for g in &at {
            assert_eq!(g["kind"], kind, "timers at SITE:{marker}\n{}", why());
        }
        timers.extend(at);
    }
    if p.name == "ticker" {
        let fired = sum(&timers, "fired");
        if channel_timers(version, mode) {
            assert_eq!(fired, 0, "unread channel tickers never run\n{}", why());
        } else {
            assert!(fired > 0, "unread tickers keep firing\n{}", why());
        }
    } else if p.name == "ticker-stop" && !channel_timers(version, mode) {
        // An async ticker also fires when nobody is receiving: between the
        // third receive and Stop, a tick may come that the program never
        // reads (with channel timers, a tick needs a receiver).
        let fired = sum(&timers, "fired");
        assert!(
            fired >= r.done("fired") && fired <= r.done("fired") + r.done("timers"),
            "ticks: the program read {}, at most one more per ticker may fire unread\n{}",
            r.done("fired"),
            why()
        );
    } else {
        assert_eq!(
            sum(&timers, "fired"),
            r.done("fired"),
            "timers fired\n{}",
            why()
        );
    }
    for (ours, theirs) in [
        ("created", "timers"),
        ("stopped", "stopped"),
        ("reset", "reset"),
        ("pending", "pending"),
    ] {
        assert_eq!(
            sum(&timers, ours),
            r.done(theirs),
            "timers {ours} (the target's {theirs})\n{}",
            why()
        );
    }
    let mut contexts = Vec::new();
    for &(marker, kind) in p.contexts {
        let at = groups_at(doc, "contexts", line_of(env, marker));
        assert!(
            !at.is_empty(),
            "no context group at SITE:{marker}\n{}",
            why()
        );
        for g in &at {
            assert_eq!(g["kind"], kind, "contexts at SITE:{marker}\n{}", why());
        }
        contexts.extend(at);
    }
    for key in ["cancelled", "by_caller", "by_parent", "by_deadline", "live"] {
        assert_eq!(
            sum(&contexts, key),
            r.done(key),
            "contexts {key}\n{}",
            why()
        );
    }
    assert_eq!(
        sum(&contexts, "created"),
        r.done("contexts"),
        "contexts created\n{}",
        why()
    );
    assert_eq!(
        sum(&contexts, "by_other"),
        0,
        "contexts cancelled by an unknown caller\n{}",
        why()
    );
    let sleeps: u64 = doc["timers"]["timers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["kind"] == "sleep")
        .map(|g| g["created"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        sleeps,
        r.done("sleeps") + r.done("pacer_sleeps"),
        "time.Sleep calls\n{}",
        why()
    );
}

/// Runs every pattern on `version` and compares the counts.
fn counts_on(env: &TestEnv, version: &str, mode: Mode) {
    for p in PATTERNS {
        let ops = if p.name == "storm" {
            (2000, "0s")
        } else {
            (40, "5ms")
        };
        let r = run(
            env,
            version,
            mode,
            p.name,
            ops,
            Duration::from_millis(200),
            &["--interval", "500ms", "--max-overhead", "100"],
        );
        assert_counts(env, version, mode, p, &r);
    }
}

#[test]
fn counts_equal_what_the_program_counts() {
    let env = test_env();
    for version in &env.go_versions {
        counts_on(&env, version, Mode::Default);
        if minor(version) == 26 {
            counts_on(&env, version, Mode::Sync);
        }
    }
}

/// The thresholds the suspect runs attach with: 150 timers or contexts
/// made over 3 s, judged 2.5 s later, are all older than --blocked-after.
const RULE_FLAGS: &[&str] = &[
    "--interval",
    "500ms",
    "--blocked-after",
    "2s",
    "--growth-window",
    "10s",
    "--max-overhead",
    "100",
];

fn suspects_on(env: &TestEnv, version: &str, mode: Mode) {
    for p in PATTERNS {
        let (n, every) = if p.name == "storm" {
            (2000, "0s")
        } else {
            (150, "20ms")
        };
        let r = run(
            env,
            version,
            mode,
            p.name,
            (n, every),
            Duration::from_millis(2500),
            RULE_FLAGS,
        );
        let doc = r.last();
        let found = suspects(doc);
        let leaks = p
            .leak
            .filter(|_| !(p.async_only && channel_timers(version, mode)));
        let why = || {
            format!(
                "pattern {} on Go {version} ({mode:?}):\n{}\n{}",
                p.name,
                describe_suspects(found),
                describe(doc)
            )
        };
        match leaks {
            None => assert!(found.is_empty(), "expected no suspect\n{}", why()),
            Some((kind, marker)) => {
                assert_eq!(found.len(), 1, "expected exactly one suspect\n{}", why());
                let s = &found[0];
                assert_eq!(s["kind"], kind, "{}", why());
                let site = &s["creation_site"];
                assert!(
                    site["file"]
                        .as_str()
                        .is_some_and(|f| f.ends_with("timers/main.go"))
                        && site["line"].as_u64() == Some(line_of(env, marker)),
                    "the suspect should be at SITE:{marker}\n{}",
                    why()
                );
                assert_eq!(s["count"].as_u64(), Some(n), "{}", why());
                let evidence = s["evidence"].as_str().unwrap_or_default();
                assert!(
                    evidence.contains("timers/main.go:") && evidence.contains("150"),
                    "evidence should name the line and the count: {evidence}"
                );
            }
        }
    }
}

#[test]
fn each_leaking_pattern_is_one_suspect_and_the_healthy_ones_none() {
    let env = test_env();
    let mut ran = false;
    for version in &env.go_versions {
        if !matches!(minor(version), 22 | 26) {
            continue;
        }
        ran = true;
        suspects_on(&env, version, Mode::Default);
        if minor(version) == 26 {
            suspects_on(&env, version, Mode::Sync);
        }
    }
    assert!(
        ran,
        "TRACER_GO_VERSIONS has neither Go 1.22 nor 1.26: {:?}",
        env.go_versions
    );
}

/// Timers armed before attach are read from the runtime's timer heaps:
/// AfterFunc timers are in a heap on every Go version, so the 20 armed by
/// `afterfunc` before the tracer came are all there, as armed before attach
/// (no creation site: their creation was not seen).
#[test]
fn timers_armed_before_attach_are_read_from_the_heaps() {
    let env = test_env();
    for version in &env.go_versions {
        eprintln!("--- Go {version} timers -pattern afterfunc, then attach");
        let mut cmd = Command::new(env.go_target(version, "timers"));
        cmd.args(["-pattern", "afterfunc", "-n", "20", "-every", "1ms"]);
        let mut target = Proc::start(cmd);
        target.stdout.expect("READY", Duration::from_secs(10));
        target.signal(libc::SIGUSR2);
        let done = fields(&target.stdout.expect("DONE", Duration::from_secs(30)));
        assert_eq!(done["pending"], "20");
        let mut tracer = attach_json_with(
            &env,
            target.pid,
            &["--interval", "500ms", "--max-overhead", "100"],
        );
        let docs = stop_tracer_all(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
        let doc = docs.last().expect("a final document");
        let before: Vec<&Value> = doc["timers"]["timers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["kind"] == "after_func" && g["site"].is_null())
            .collect();
        let why = || describe(doc);
        assert_eq!(
            before.len(),
            1,
            "one group of AfterFunc timers armed before attach\n{}",
            why()
        );
        assert_eq!(before[0]["before_attach"], 20, "{}", why());
        assert_eq!(before[0]["pending"], 20, "{}", why());
        assert!(
            doc["snapshot"]["timers"].as_u64().is_some_and(|n| n >= 20),
            "the snapshot should count the heaps' timers: {}",
            doc["snapshot"]
        );
        target.signal(libc::SIGTERM);
        let (status, stderr) = target.wait(Duration::from_secs(10));
        assert!(status.success(), "the target failed: {status}\n{stderr}");
    }
}

/// The default budget (1% of the target's CPU) detaches the timer and
/// context probes of a target doing nothing but timers and contexts: the
/// tracer says so, and from then on judges no timer or context (what was
/// armed or live can no longer be followed).
#[test]
fn the_budget_detaches_busy_timer_probes_and_says_so() {
    let env = test_env();
    let version = env.go_versions.last().expect("a Go version");
    eprintln!("--- Go {version} timers -pattern storm under the default budget");
    let mut cmd = Command::new(env.go_target(version, "timers"));
    cmd.args(["-pattern", "storm", "-n", "200000"]);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(10));
    let mut tracer = attach_json_with(&env, target.pid, &["--interval", "250ms"]);
    target.signal(libc::SIGUSR2);
    target.stdout.expect("DONE", Duration::from_secs(120));
    let (docs, stderr) = stop_tracer_with_stderr(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
    let last = docs.last().expect("a final document");
    let why = || format!("{}\nstderr:\n{stderr}", describe(last));
    let detached: Vec<&str> = last["mode"]["budget"]["detached"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["group"].as_str())
        .collect();
    assert!(
        detached.contains(&"timers"),
        "the timer probes are detached\n{}",
        why()
    );
    assert!(
        stderr.contains("tracer: detached timers/contexts probes:"),
        "stderr says so\n{}",
        why()
    );
    assert_eq!(last["timers"]["traced"], false, "{}", why());
    assert_eq!(last["timers"]["totals"]["pending"], 0, "{}", why());
    assert_eq!(last["timers"]["totals"]["contexts_live"], 0, "{}", why());
    assert!(suspects(last).is_empty(), "nothing judged\n{}", why());
    target.signal(libc::SIGTERM);
    let (status, err) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target failed: {status}\n{err}");
}

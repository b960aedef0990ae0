//! Goroutines that leaked before attach: the attach-time memory snapshot
//! reports every one of them with its wait reason, creation site and the
//! stack it is blocked at — for plain, stripped, PIE and cgo builds — and the
//! target's own goroutine dump agrees goroutine by goroutine, frame by frame.

use std::{collections::BTreeMap, process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::*;

const N: usize = 3;
/// (marker, wait reasons Go prints for it: Go 1.21 reports a WaitGroup wait
/// as "semacquire", later versions as "sync.WaitGroup.Wait")
const KINDS: &[(&str, &[&str])] = &[
    ("recv", &["chan receive"]),
    ("select", &["select"]),
    ("mutex", &["sync.Mutex.Lock"]),
    ("wg", &["sync.WaitGroup.Wait", "semacquire"]),
    ("sleep", &["sleep"]),
];
const BUILDS: &[&str] = &["", "-stripped", "-pie", "-cgo"];

fn file_line(loc: &Value) -> String {
    let file = loc["file"].as_str().unwrap_or("?");
    format!("{file}:{}", loc["line"])
}

fn backlog_for(env: &TestEnv, version: &str, build: &str) {
    eprintln!("--- Go {version} backlog{build}");
    let dump = std::env::temp_dir().join(format!("tracer-backlog-{version}{build}.dump"));
    let mut cmd = Command::new(env.go_target(version, &format!("backlog{build}")));
    cmd.args(["-n", &N.to_string(), "-dump"]).arg(&dump);
    let mut target = Proc::start(cmd);
    // Everything is parked before the tracer exists.
    target.stdout.expect("READY", Duration::from_secs(20));

    let mut tracer = attach_json(env, target.pid);
    target.signal(libc::SIGUSR1);
    target.stdout.expect("DUMPED", Duration::from_secs(10));
    let last = stop_tracer(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
    let dumped = parse_goroutine_dump(&std::fs::read_to_string(&dump).expect("read dump"));
    assert_eq!(last["totals"]["lost_events"], 0);

    let goroutines: BTreeMap<u64, &Value> = last["goroutines"]
        .as_array()
        .expect("goroutines")
        .iter()
        .map(|g| (g["goid"].as_u64().unwrap(), g))
        .collect();
    for &(kind, reasons) in KINDS {
        let site = env.site_line("backlog", kind);
        let block = env.marked_line("backlog", &format!("// BLOCK:{kind}"));
        let expected_site = format!("backlog/main.go:{site}");
        let from_dump: Vec<&DumpGoroutine> = dumped
            .iter()
            .filter(|g| {
                g.created_at
                    .as_deref()
                    .is_some_and(|c| c.ends_with(&expected_site))
            })
            .collect();
        assert_eq!(
            from_dump.len(),
            N,
            "{kind}: the target's own dump shows {N} goroutines at {expected_site}"
        );
        for d in from_dump {
            let g = goroutines
                .get(&d.goid)
                .unwrap_or_else(|| panic!("{kind}: goroutine {} of the dump is missing", d.goid));
            assert_eq!(g["origin"], "snapshot", "{g}");
            assert_eq!(g["state"], "waiting", "{g}");
            assert_eq!(g["wait_reason"], d.reason.as_str(), "{g}");
            assert!(
                reasons.contains(&d.reason.as_str()),
                "{kind}: the dump says {:?}",
                d.reason
            );
            assert!(
                file_line(&g["creation_site"]).ends_with(&expected_site),
                "{kind}: creation site {g}"
            );
            assert_eq!(g["parent_goid"], d.created_by_goid.unwrap(), "{g}");
            // The stack: same functions and lines as the runtime's own
            // traceback, and the top user frame is the blocking statement.
            // Go's tracebacks (and so the dump) hide unexported runtime.*
            // frames; the tracer keeps them, so compare without them.
            let ours: Vec<(String, String)> = g["blocked_at"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or("?").to_string(),
                        file_line(f),
                    )
                })
                .filter(|(f, _)| {
                    !f.strip_prefix("runtime.")
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_lowercase()))
                })
                .collect();
            assert!(
                g["blocked_at"][0]["function"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("runtime.")),
                "a parked goroutine's innermost frame is in the runtime (gopark): {g}"
            );
            let top_user = ours
                .iter()
                .find(|(f, _)| f.starts_with("main."))
                .unwrap_or_else(|| panic!("{kind}: no main.* frame in {ours:?}"));
            assert!(
                top_user.1.ends_with(&format!("backlog/main.go:{block}")),
                "{kind}: top user frame {top_user:?}, expected line {block}"
            );
            assert_eq!(
                ours.len(),
                d.frames.len(),
                "{kind} goroutine {}: ours {ours:#?}\ndump {:#?}",
                d.goid,
                d.frames
            );
            for (o, t) in ours.iter().zip(&d.frames) {
                assert_eq!(
                    &o.0, &t.0,
                    "{kind} goroutine {}: frame function; ours {ours:#?}\ndump {:#?}",
                    d.goid, d.frames
                );
                assert!(
                    o.1.ends_with(&t.1) || t.1.ends_with(&o.1),
                    "{kind} goroutine {}: frame location {o:?} vs {t:?}",
                    d.goid
                );
            }
        }
    }
    target.signal(libc::SIGTERM);
    let (status, _) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target must be unharmed: {status}");
    assert_no_probes_left(None);
}

#[test]
fn goroutines_parked_before_attach_are_reported_with_their_stacks() {
    let env = test_env();
    for version in &env.go_versions {
        for build in BUILDS {
            backlog_for(&env, version, build);
        }
    }
}

/// 100,000 parked goroutines: the snapshot completes; its duration and the
/// tracer's memory are printed (and recorded in BENCHMARKS.md).
#[test]
fn a_hundred_thousand_parked_goroutines() {
    let env = test_env();
    let version = env.go_versions.last().unwrap();
    let per_kind = 20_000;
    let mut cmd = Command::new(env.go_target(version, "backlog"));
    cmd.args(["-n", &per_kind.to_string()]);
    let mut target = Proc::start(cmd);
    let ready = fields(&target.stdout.expect("READY", Duration::from_secs(120)));
    let total: u64 = ready["total"].parse().unwrap();
    assert!(total >= 5 * per_kind as u64);

    let mut tracer_cmd = env.tracer();
    tracer_cmd
        .args([
            "attach",
            "--json",
            "--max-goroutines",
            "10",
            "--interval",
            "1s",
            "--snapshot-interval",
            "2s",
        ])
        .args(["--pid", &target.pid.to_string()])
        .env("RUST_LOG", "info");
    let mut tracer = Proc::start(tracer_cmd);
    let first: Value =
        serde_json::from_str(&tracer.stdout.expect("{", Duration::from_secs(60))).unwrap();
    let snap = &first["snapshot"];
    eprintln!(
        "snapshot of {} goroutines: {} read, {} discarded, {:.3} s",
        total,
        snap["goroutines"],
        snap["discarded"],
        snap["duration_s"].as_f64().unwrap()
    );
    assert!(
        first["totals"]["snapshot_seeded"].as_u64().unwrap() >= 5 * per_kind as u64,
        "{}",
        first["totals"]
    );
    assert_eq!(first["goroutines"].as_array().unwrap().len(), 10);
    assert!(first["goroutines_omitted"].as_u64().unwrap() >= 5 * per_kind as u64 - 10);
    // Let the stack refresh catch up, then read the tracer's memory.
    std::thread::sleep(Duration::from_secs(8));
    let status = std::fs::read_to_string(format!("/proc/{}/status", tracer.pid)).unwrap();
    let rss: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .collect();
    eprintln!("tracer memory with {total} goroutines: {}", rss.join(", "));
    std::thread::sleep(Duration::from_millis(500));
    tracer.signal(libc::SIGTERM);
    let lines = tracer.stdout.rest(Duration::from_secs(30));
    let (status, stderr) = tracer.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{stderr}");
    let rereads: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("re-read in"))
        .collect();
    eprintln!(
        "periodic re-reads of {total} goroutines:\n{}",
        rereads.join("\n")
    );
    assert!(
        !rereads.is_empty(),
        "--snapshot-interval 2s never re-read the list:\n{stderr}"
    );
    let last = json_lines(&lines).pop().expect("final document");
    assert_eq!(
        last["totals"]["reconciled_removed"], 0,
        "nothing exited: {}",
        last["totals"]
    );
    assert!(
        last["stacks_pending"].as_u64().unwrap_or(u64::MAX) < 1000,
        "stacks still pending: {}",
        last["stacks_pending"]
    );
}

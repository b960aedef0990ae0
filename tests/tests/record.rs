//! Recordings on real Go programs: a replay prints exactly what the live
//! session printed; `report --fail-on-suspects` fails on a leak and passes
//! on a healthy service; the exports open in `go tool pprof` and parse as
//! trace events; a tracer killed mid-recording leaves a file that replays
//! up to its last complete block.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::*;

/// Go versions recorded here: the oldest and newest of the run.
fn versions(env: &TestEnv) -> Vec<String> {
    let mut v = vec![env.go_versions[0].clone()];
    if env.go_versions.len() > 1 {
        v.push(env.go_versions[env.go_versions.len() - 1].clone());
    }
    v
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `leaks -pattern producer` with goroutines already leaked at attach.
fn leaking_target(env: &TestEnv, version: &str) -> Proc {
    let mut cmd = Command::new(env.go_target(version, "leaks"));
    cmd.args(["-pattern", "producer", "-rate", "20", "-prefill", "150"]);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(30));
    target
}

/// Runs the tracer to completion; returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "tracer panicked:\n{stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// The first line where two outputs differ, for a readable failure.
fn first_difference(live: &str, replayed: &str) -> String {
    for (i, (a, b)) in live.lines().zip(replayed.lines()).enumerate() {
        if a != b {
            let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            let from = at.saturating_sub(80);
            return format!(
                "line {} differs at byte {at}:\n live:   …{}\n replay: …{}",
                i + 1,
                &a[from..(at + 80).min(a.len())],
                &b[from..(at + 80).min(b.len())]
            );
        }
    }
    format!(
        "{} live lines, {} replayed",
        live.lines().count(),
        replayed.lines().count()
    )
}

#[test]
fn a_replay_prints_exactly_what_the_live_session_printed() {
    let env = test_env();
    for version in versions(&env) {
        for mode in [&[][..], &["--precise"][..]] {
            eprintln!("--- Go {version} {mode:?}");
            let target = leaking_target(&env, &version);
            let file = scratch(&format!("live-{version}.trc"));
            let (code, live, stderr) = run(env
                .tracer()
                .args([
                    "attach",
                    "--json",
                    "--interval",
                    "500ms",
                    "--duration",
                    "5s",
                ])
                .args(mode)
                .arg("--record")
                .arg(&file)
                .args(["--pid", &target.pid.to_string()]));
            assert_eq!(code, Some(0), "{stderr}");
            assert!(stderr.contains("recorded"), "{stderr}");
            let docs = json_lines(&live.lines().map(str::to_owned).collect::<Vec<_>>());
            let last = docs.last().expect("a final document");
            assert!(
                !suspects(last).is_empty(),
                "the leak must be in the live output: {}",
                describe_document(last)
            );
            let (code, replayed, stderr) = run(env.tracer().args(["replay", "--json"]).arg(&file));
            assert_eq!(code, Some(0), "{stderr}");
            assert!(
                live == replayed,
                "replay differs from live: {}",
                first_difference(&live, &replayed)
            );
            target.signal(libc::SIGKILL);
            assert_no_probes_left(None);
        }
    }
}

#[test]
fn report_fails_on_a_leak_and_passes_on_a_healthy_service() {
    let env = test_env();
    for version in versions(&env) {
        let target = leaking_target(&env, &version);
        let file = scratch(&format!("report-{version}.trc"));
        let (code, _, stderr) = run(env
            .tracer()
            .args(["record", "--duration", "4s", "-o"])
            .arg(&file)
            .args(["--pid", &target.pid.to_string()]));
        assert_eq!(code, Some(0), "{stderr}");
        target.signal(libc::SIGKILL);
        let (code, out, stderr) = run(env
            .tracer()
            .args(["report", "--json", "--fail-on-suspects"])
            .arg(&file));
        assert_eq!(
            code,
            Some(2),
            "a leak must fail the report:\n{out}\n{stderr}"
        );
        let report: Value = serde_json::from_str(&out).unwrap();
        let suspects = report["suspects"].as_array().unwrap();
        assert_eq!(suspects.len(), 1, "{}", describe_suspects(suspects));
        assert!(
            location(&suspects[0]["creation_site"]).contains("leaks/main.go"),
            "{}",
            describe_suspects(suspects)
        );
        assert_eq!(report["rules"]["backlog_min"], 100, "{out}");
        // The rules given to `report` re-judge the recording.
        let (code, out, stderr) = run(env
            .tracer()
            .args([
                "report",
                "--fail-on-suspects",
                "--ignore-site",
                "leaks/main.go",
            ])
            .arg(&file));
        assert_eq!(
            code,
            Some(0),
            "an ignored site must not fail the report:\n{out}\n{stderr}"
        );
        assert!(out.contains("no leak suspects"), "{out}");

        let mut healthy = Command::new(env.go_target(&version, "healthy"));
        healthy.args(["-pattern", "all"]);
        let mut healthy = Proc::start(healthy);
        healthy.stdout.expect("READY", Duration::from_secs(30));
        let (code, out, stderr) = run(env.tracer().args([
            "report",
            "--fail-on-suspects",
            "--duration",
            "4s",
            "--pid",
            &healthy.pid.to_string(),
        ]));
        assert_eq!(
            code,
            Some(0),
            "a healthy service must pass:\n{out}\n{stderr}"
        );
        assert!(out.contains("no leak suspects"), "{out}");
        healthy.signal(libc::SIGKILL);
        assert_no_probes_left(None);
    }
}

#[test]
fn exports_open_in_pprof_and_parse_as_trace_events() {
    let env = test_env();
    let version = versions(&env).pop().unwrap();
    let target = leaking_target(&env, &version);
    let file = scratch("export.trc");
    let (code, _, stderr) = run(env
        .tracer()
        .args(["record", "--precise", "--duration", "3s", "-o"])
        .arg(&file)
        .args(["--pid", &target.pid.to_string()]));
    assert_eq!(code, Some(0), "{stderr}");
    target.signal(libc::SIGKILL);
    let (_, out, _) = run(env.tracer().args(["report", "--json"]).arg(&file));
    let report: Value = serde_json::from_str(&out).unwrap();
    let leaked = report["suspects"][0]["count"].as_u64().unwrap();

    let (pprof, trace) = (scratch("goroutines.pb.gz"), scratch("timeline.json"));
    let (code, _, stderr) = run(env
        .tracer()
        .arg("export")
        .arg(&file)
        .arg("--pprof")
        .arg(&pprof)
        .arg("--perfetto")
        .arg(&trace));
    assert_eq!(code, Some(0), "{stderr}");

    let go = env
        .gobin
        .join("../toolchains")
        .join(format!("go{version}"))
        .join("bin/go");
    let out = Command::new(&go)
        .args(["tool", "pprof", "-top", "-show", "main\\.producer"])
        .arg(&pprof)
        .env("GOTOOLCHAIN", "local")
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", go.display()));
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{top}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `-show main.producer` keeps its frames: the cumulative count of the
    // leaking function is the leaked goroutines.
    let line = top
        .lines()
        .find(|l| l.trim_end().ends_with("main.producer"))
        .unwrap_or_else(|| panic!("main.producer not in the profile:\n{top}"));
    let cum: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(cum, leaked, "pprof and the report disagree:\n{top}");

    let trace: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let mut open = std::collections::HashMap::<u64, i64>::new();
    for e in events {
        let ph = e["ph"].as_str().unwrap();
        assert!(e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
        match ph {
            "B" => *open.entry(e["tid"].as_u64().unwrap()).or_default() += 1,
            "E" => *open.entry(e["tid"].as_u64().unwrap()).or_default() -= 1,
            "C" => assert!(e["args"]["value"].is_number(), "{e}"),
            "i" | "M" => {}
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    assert!(open.values().all(|&n| n == 0), "unbalanced slices");
    assert!(
        events.iter().filter(|e| e["ph"] == "i").count() > 0,
        "--precise parks and wakes are instants"
    );
    assert_no_probes_left(None);
}

#[test]
fn a_killed_recorder_leaves_a_file_that_replays_up_to_its_last_block() {
    let env = test_env();
    let version = versions(&env).pop().unwrap();
    let target = leaking_target(&env, &version);
    let file = scratch("killed.trc");
    let mut cmd = env.tracer();
    cmd.args(["attach", "--json", "--interval", "500ms", "--record"])
        .arg(&file)
        .args(["--pid", &target.pid.to_string()]);
    let mut tracer = Proc::start(cmd);
    let mut live = Vec::new();
    for _ in 0..6 {
        live.push(tracer.stdout.expect("{", Duration::from_secs(30)));
    }
    tracer.signal(libc::SIGKILL);
    let _ = tracer.wait(Duration::from_secs(10));
    // A SIGKILLed tracer leaves its uprobes to the kernel, which removes
    // them with the process's perf events.
    std::thread::sleep(Duration::from_millis(500));
    let (code, replayed, stderr) = run(env.tracer().args(["replay", "--json"]).arg(&file));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning"),
        "a cut recording is said so:\n{stderr}"
    );
    let replayed: Vec<&str> = replayed.lines().collect();
    // Every interval whose block reached the file replays as printed live;
    // the last line is the state at the last complete tick.
    let complete = replayed.len() - 1;
    assert!(complete >= 4, "{complete} intervals replayed of 6 printed");
    for (i, line) in replayed[..complete].iter().enumerate() {
        assert_eq!(*line, live[i], "interval {i} differs");
    }
    target.signal(libc::SIGKILL);
    assert_no_probes_left(None);
}

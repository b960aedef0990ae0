//! A target creating and finishing goroutines at a fixed rate: the tracer's
//! spawn and exit counts for the target's `go` statement equal the target's
//! own counters, with no event lost. `--precise` attaches every probe with
//! no overhead cap: the default 1% budget would rightly detach spawn/exit at
//! this rate (tests/tests/modes.rs covers that), and exact per-site totals
//! and park/wake counts are what this test is about.

use std::{process::Command, time::Duration};

use tracer_tests::*;

fn churn_for(env: &TestEnv, version: &str) {
    eprintln!("--- Go {version}");
    let mut cmd = Command::new(env.go_target(version, "churn"));
    cmd.args(["-paused", "-rate", "2000", "-batch", "50"]);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(10));

    let mut tracer = attach_json_with(env, target.pid, &["--precise", "--interval", "200ms"]);

    // Everything the target creates from now on happens under the probes.
    target.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_secs(3));
    target.signal(libc::SIGUSR1);
    let counts = fields(&target.stdout.expect("COUNTS", Duration::from_secs(10)));
    let spawned: u64 = counts["spawned"].parse().unwrap();
    let exited: u64 = counts["exited"].parse().unwrap();
    assert!(
        spawned >= 4000,
        "the target should have run ~3s at 2000/s, spawned {spawned}"
    );
    let last = stop_tracer(&mut tracer, libc::SIGTERM, "terminated (SIGTERM)");
    assert_eq!(
        last["totals"]["lost_events"], 0,
        "no event may be lost at this rate"
    );
    assert_eq!(last["totals"]["malformed_events"], 0);

    let site = last["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["site"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("churn/main.go"))
                && s["site"]["function"] == "main.main"
        })
        .unwrap_or_else(|| panic!("no churn site in {}", last["sites"]));
    assert_eq!(
        site["spawned"].as_u64(),
        Some(spawned),
        "spawns seen by the tracer vs counted by the target"
    );
    assert_eq!(
        site["exited"].as_u64(),
        Some(exited),
        "exits seen by the tracer vs counted by the target"
    );
    assert_eq!(site["live"].as_u64(), Some(0));
    // Each goroutine parks on its send or is woken by the receiver: parks and
    // wakes are traced too.
    assert!(last["totals"]["parks"].as_u64().unwrap() > 0);
    assert!(last["totals"]["wakes"].as_u64().unwrap() > 0);

    assert_no_probes_left(None);
    target.signal(libc::SIGTERM);
    let (status, _) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target must be unharmed: {status}");
}

#[test]
fn spawn_and_exit_totals_match_the_targets_own_counters() {
    let env = test_env();
    for version in &env.go_versions {
        churn_for(&env, version);
    }
}

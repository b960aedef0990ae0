//! Attach to a real Go program, watch it create goroutines that block in
//! known ways, and compare what the tracer reports with the program's own
//! goroutine dump.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tracer_tests::*;

const N: usize = 7; // blocked on <-ch
const M: usize = 5; // blocked in select
const K: usize = 4; // finish

fn goroutines_at<'a>(doc: &'a Value, file_suffix: &str, line: u32) -> Vec<&'a Value> {
    doc["goroutines"]
        .as_array()
        .expect("goroutines")
        .iter()
        .filter(|g| {
            g["creation_site"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(file_suffix))
                && g["creation_site"]["line"].as_u64() == Some(line as u64)
        })
        .collect()
}

fn site<'a>(doc: &'a Value, file_suffix: &str, line: u32) -> &'a Value {
    doc["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .find(|s| {
            s["site"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(file_suffix))
                && s["site"]["line"].as_u64() == Some(line as u64)
        })
        .unwrap_or_else(|| panic!("no site {file_suffix}:{line} in {}", doc["sites"]))
}

fn lifecycle_for(env: &TestEnv, version: &str) {
    eprintln!("--- Go {version}");
    let dump = std::env::temp_dir().join(format!("tracer-leaky-{version}.dump"));
    let mut cmd = Command::new(env.go_target(version, "leaky"));
    cmd.args([
        "-spawn-on-signal",
        "-n",
        &N.to_string(),
        "-m",
        &M.to_string(),
        "-k",
        &K.to_string(),
        "-dump",
    ])
    .arg(&dump);
    let mut target = Proc::start(cmd);
    target.stdout.expect("WAITING", Duration::from_secs(10));
    let inspected = inspect(env, target.pid);

    let mut tracer = attach_json(env, target.pid);

    target.signal(libc::SIGUSR2);
    let ready = fields(&target.stdout.expect("READY", Duration::from_secs(20)));
    let spawner: u64 = ready["spawner_goid"].parse().unwrap();
    target.signal(libc::SIGUSR1);
    target.stdout.expect("DUMPED", Duration::from_secs(10));
    let last = stop_tracer(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");

    let recv_line = env.site_line("leaky", "recv");
    let select_line = env.site_line("leaky", "select");
    let finish_line = env.site_line("leaky", "finish");
    let file = "leaky/main.go";

    let recv = goroutines_at(&last, file, recv_line);
    let select = goroutines_at(&last, file, select_line);
    assert_eq!(
        recv.len(),
        N,
        "goroutines created at {file}:{recv_line}: {recv:#?}"
    );
    assert_eq!(
        select.len(),
        M,
        "goroutines created at {file}:{select_line}: {select:#?}"
    );
    for g in &recv {
        assert_eq!(g["state"], "waiting", "{g}");
        assert_eq!(g["wait_reason"], "chan receive", "{g}");
        assert_eq!(g["parent_goid"], spawner, "{g}");
        assert_eq!(g["origin"], "traced", "{g}");
        assert_eq!(g["creation_site"]["function"], "main.main", "{g}");
        assert_eq!(g["start_function"], "main.blockRecv", "{g}");
    }
    for g in &select {
        assert_eq!(g["state"], "waiting", "{g}");
        assert_eq!(g["wait_reason"], "select", "{g}");
        assert_eq!(g["parent_goid"], spawner, "{g}");
        assert_eq!(g["start_function"], "main.blockSelect", "{g}");
    }
    assert!(
        goroutines_at(&last, file, finish_line).is_empty(),
        "finished goroutines must not be live"
    );
    let finished = site(&last, file, finish_line);
    assert_eq!(
        (
            finished["spawned"].as_u64(),
            finished["exited"].as_u64(),
            finished["live"].as_u64()
        ),
        (Some(K as u64), Some(K as u64), Some(0))
    );
    let blocked = site(&last, file, recv_line);
    assert_eq!(
        (
            blocked["spawned"].as_u64(),
            blocked["exited"].as_u64(),
            blocked["live"].as_u64()
        ),
        (Some(N as u64), Some(0), Some(N as u64))
    );
    assert_eq!(last["totals"]["lost_events"], 0);
    assert_eq!(last["go_version"], format!("go{version}"));

    // The program's own view: same goids, same wait reasons, same sites.
    let dump_text = std::fs::read_to_string(&dump).expect("read goroutine dump");
    let dumped = parse_goroutine_dump(&dump_text);
    for (tracer_set, line, reason) in [
        (&recv, recv_line, "chan receive"),
        (&select, select_line, "select"),
    ] {
        let mut from_dump: Vec<u64> = dumped
            .iter()
            .filter(|g| {
                g.created_at
                    .as_deref()
                    .is_some_and(|c| c.ends_with(&format!("{file}:{line}")))
            })
            .inspect(|g| {
                assert_eq!(g.reason, reason, "{g:?}");
                assert_eq!(g.created_by_goid, Some(spawner), "{g:?}");
            })
            .map(|g| g.goid)
            .collect();
        let mut from_tracer: Vec<u64> = tracer_set
            .iter()
            .map(|g| g["goid"].as_u64().unwrap())
            .collect();
        from_dump.sort();
        from_tracer.sort();
        assert_eq!(
            from_tracer, from_dump,
            "goids created at {file}:{line} (tracer vs pprof dump)"
        );
    }

    assert_no_probes_left(Some((&inspected, target.pid)));
    target.signal(libc::SIGTERM);
    let (status, _) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target must be unharmed: {status}");
}

#[test]
fn reports_blocked_goroutines_with_sites_reasons_and_parents() {
    let env = test_env();
    for version in &env.go_versions {
        lifecycle_for(&env, version);
    }
}

/// With `--creation-stacks`, each traced goroutine carries its creator's
/// stack at the `go` statement: `runtime.newproc`, then the function with
/// the `go` statement at the statement's line, then its callers.
#[test]
fn creation_stacks_show_the_creators_stack() {
    let env = test_env();
    let recv_line = env.site_line("leaky", "recv");
    for version in [
        env.go_versions.first().unwrap(),
        env.go_versions.last().unwrap(),
    ] {
        eprintln!("--- Go {version}");
        let mut cmd = Command::new(env.go_target(version, "leaky"));
        cmd.args(["-spawn-on-signal", "-n", "3", "-m", "1", "-k", "1"]);
        let mut target = Proc::start(cmd);
        target.stdout.expect("WAITING", Duration::from_secs(10));
        let mut tracer_cmd = env.tracer();
        tracer_cmd.args([
            "attach",
            "--json",
            "--creation-stacks",
            "--interval",
            "200ms",
            "--pid",
            &target.pid.to_string(),
        ]);
        let mut tracer = Proc::start(tracer_cmd);
        tracer.stdout.expect("{", Duration::from_secs(30));
        target.signal(libc::SIGUSR2);
        target.stdout.expect("READY", Duration::from_secs(20));
        let last = stop_tracer(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
        let recv = goroutines_at(&last, "leaky/main.go", recv_line);
        assert_eq!(recv.len(), 3);
        for g in recv {
            let stack: Vec<(&str, u64)> = g["creation_stack"]
                .as_array()
                .unwrap_or_else(|| panic!("no creation_stack: {g}"))
                .iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or("?"),
                        f["line"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            assert_eq!(stack[0].0, "runtime.newproc", "{stack:?}");
            assert_eq!(stack[1], ("main.main", recv_line as u64), "{stack:?}");
            assert_eq!(stack[2].0, "runtime.main", "{stack:?}");
        }
        assert_eq!(last["probes"]["stack_failed"], 0);
        assert_no_probes_left(None);
    }
}

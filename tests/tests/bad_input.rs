//! Bad input gets a clear message and a non-zero exit, never a panic; the
//! end of a session (signal, duration, target exit) detaches cleanly.

use std::{process::Command, time::Duration};

use tracer_tests::*;

#[test]
fn nonexistent_pid_is_a_clear_error() {
    let env = test_env();
    expect_tracer_failure(
        env.tracer().args(["attach", "--pid", "999999999"]),
        "no process with pid 999999999",
    );
    assert_no_probes_left(None);
}

#[test]
fn a_process_that_is_not_go_is_refused() {
    let env = test_env();
    let mut sleep = Proc::start({
        let mut c = Command::new("sleep");
        c.arg("60");
        c
    });
    let pid = sleep.pid.to_string();
    expect_tracer_failure(
        env.tracer().args(["attach", "--pid", &pid]),
        "is not a Go program",
    );
    expect_tracer_failure(
        env.tracer().args(["inspect", "/bin/sleep"]),
        "is not a Go program",
    );
    assert_no_probes_left(None);
    sleep.signal(libc::SIGTERM);
    sleep.wait(Duration::from_secs(5));
}

#[test]
fn an_unsupported_go_version_is_refused() {
    let env = test_env();
    // A real Go binary whose embedded version says go1.20 (same length, so
    // the file stays well-formed).
    let version = "1.22.10";
    let original = std::fs::read(env.go_target(version, "leaky")).unwrap();
    let (from, to) = (b"go1.22.10", b"go1.20.10");
    let mut patched = original.clone();
    let mut replaced = 0;
    for i in 0..patched.len() - from.len() {
        if &patched[i..i + from.len()] == from {
            patched[i..i + from.len()].copy_from_slice(to);
            replaced += 1;
        }
    }
    assert!(replaced > 0, "no version string found in the binary");
    let path = std::env::temp_dir().join("tracer-test-go1.20-leaky");
    std::fs::write(&path, patched).unwrap();
    expect_tracer_failure(
        env.tracer().arg("inspect").arg(&path),
        "go1.20.10, which is not supported",
    );
}

#[test]
fn missing_privileges_are_explained() {
    let env = test_env();
    let version = &env.go_versions[0];
    let target = Proc::start(Command::new(env.go_target(version, "churn")));
    // An unprivileged user attaching to its own... here root's process: the
    // tracer must say what is missing, not crash.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&env.tracer)
        .args(["attach", "--pid", &target.pid.to_string()])
        .output()
        .unwrap();
    assert_clean_failure(out.status, &String::from_utf8_lossy(&out.stderr), "root");
    drop(target);
    assert_no_probes_left(None);
}

#[test]
fn a_target_exiting_during_or_after_attach_never_crashes_the_tracer() {
    let env = test_env();
    let version = env.go_versions.last().unwrap();
    let mut saw_exit_after_attach = false;
    for delay_ms in [0u64, 2, 10, 30, 100, 300, 1000] {
        let mut target = Proc::start(Command::new(env.go_target(version, "churn")));
        target.stdout.expect("READY", Duration::from_secs(10));
        let mut tracer_cmd = env.tracer();
        tracer_cmd.args(["attach", "--pid", &target.pid.to_string()]);
        let mut tracer = Proc::start(tracer_cmd);
        std::thread::sleep(Duration::from_millis(delay_ms));
        target.signal(libc::SIGKILL);
        target.wait(Duration::from_secs(5));
        let _ = tracer.stdout.rest(Duration::from_secs(20));
        let (status, stderr) = tracer.wait(Duration::from_secs(10));
        assert!(
            !stderr.contains("panicked"),
            "tracer panicked (delay {delay_ms}ms):\n{stderr}"
        );
        eprintln!(
            "delay {delay_ms}ms: {status}, {}",
            stderr.lines().last().unwrap_or_default()
        );
        if status.success() {
            assert!(
                stderr.contains("target process exited"),
                "delay {delay_ms}ms, exit 0 must say why:\n{stderr}"
            );
            saw_exit_after_attach = true;
        } else {
            assert_eq!(status.code(), Some(1), "delay {delay_ms}ms:\n{stderr}");
            let pid = target.pid.to_string();
            assert!(
                stderr.contains(&pid)
                    && (stderr.contains("exited") || stderr.contains("no process")),
                "delay {delay_ms}ms:\n{stderr}"
            );
        }
        assert_no_probes_left(None);
    }
    assert!(
        saw_exit_after_attach,
        "no run reached the attached state before the target died"
    );
}

#[test]
fn duration_end_detaches_and_leaves_the_target_running() {
    let env = test_env();
    let version = env.go_versions.last().unwrap();
    let mut target = Proc::start(Command::new(env.go_target(version, "churn")));
    target.stdout.expect("READY", Duration::from_secs(10));
    let inspected = inspect(&env, target.pid);
    let mut tracer_cmd = env.tracer();
    tracer_cmd.args([
        "attach",
        "--pid",
        &target.pid.to_string(),
        "--duration",
        "2s",
    ]);
    let mut tracer = Proc::start(tracer_cmd);
    let out = tracer.stdout.rest(Duration::from_secs(30)).join("\n");
    let (status, stderr) = tracer.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{stderr}");
    assert!(stderr.contains("duration reached"), "{stderr}");
    assert!(
        out.contains("goroutines:") && out.contains("spawned"),
        "final human summary missing:\n{out}"
    );
    assert_no_probes_left(Some((&inspected, target.pid)));
    // The target is still healthy: it answers a signal with its counters.
    target.signal(libc::SIGUSR1);
    target.stdout.expect("COUNTS", Duration::from_secs(10));
}

//! The dashboard end to end: `tracer attach` in a real terminal (tmux),
//! against a target leaking goroutines on an unread channel; keys move
//! through the views and the captured screen shows the suspect's evidence,
//! the blocked-at line and the group; `q` detaches and exits 0. And against
//! a target leaking contexts with a deadline: the Contexts and Timers views
//! show them at their line, and their suspect opens the Contexts pane.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use tracer_tests::*;

const COLS: &str = "160";
const ROWS: &str = "40";

/// A tmux session running one command; killed on drop.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(name: &str, command: &str) -> Self {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", name])
            .status();
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                COLS,
                "-y",
                ROWS,
                command,
            ])
            .status()
            .expect("tmux is part of the machine image: run tmux");
        assert!(status.success(), "tmux new-session failed");
        Tmux {
            name: name.to_string(),
        }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Waits until every needle is on the screen; panics with the screen.
    fn wait_for(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if needles.iter().all(|n| screen.contains(n)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "after {timeout:?} the screen still lacks one of {needles:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

fn dashboard_for(env: &TestEnv, version: &str) {
    eprintln!("--- Go {version}");
    let mut cmd = Command::new(env.go_target(version, "leaks"));
    cmd.args(["-pattern", "producer", "-rate", "20"]);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(20));
    let inspected = inspect(env, target.pid);
    let site = env.site_line("leaks", "producer");
    let block = env.marked_line("leaks", "// BLOCK:producer");

    let exit_file = PathBuf::from(format!("/tmp/tracer-dashboard-{}.exit", target.pid));
    let _ = std::fs::remove_file(&exit_file);
    let command = format!(
        "{} attach --pid {} --blocked-after 2s --growth-window 10s 2>/tmp/tracer-dashboard-{}.stderr; echo $? > {}; sleep 60",
        env.tracer.display(),
        target.pid,
        target.pid,
        exit_file.display()
    );
    let tmux = Tmux::start(&format!("tracer-e2e-{}", target.pid), &command);

    // The first picture comes at once: the Overview.
    tmux.wait_for(
        &["1 Overview", "2 Suspects", &format!("pid {}", target.pid)],
        Duration::from_secs(30),
    );
    // The leak becomes a suspect once its goroutines wait past 2 s.
    let evidence_start =
        format!("goroutines created at leaks/main.go:{site} have been waiting on chan send");
    tmux.keys(&["2"]);
    let screen = tmux.wait_for(&[&evidence_start, "blocked"], Duration::from_secs(30));
    eprintln!("{screen}");

    // Its details: the blocking line, the creation site and the timeline.
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(
        &[
            "Blocked at",
            &format!("leaks/main.go:{block}"),
            &format!("created at  leaks/main.go:{site}"),
        ],
        Duration::from_secs(10),
    );
    eprintln!("{screen}");

    // The Goroutines view, filtered down to the leak's creation site.
    tmux.keys(&["Escape", "3", "/"]);
    tmux.keys(&["-l", &format!("main.go:{site}")]);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(
        &[&format!("leaks/main.go:{site}"), "chan send"],
        Duration::from_secs(10),
    );
    assert!(
        !screen.contains("runtime/"),
        "the filter should hide every other group:\n{screen}"
    );

    // Help, then quit: the tracer detaches and exits 0.
    tmux.keys(&["?"]);
    tmux.wait_for(&["pause"], Duration::from_secs(5));
    tmux.keys(&["?", "q"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Ok(code) = std::fs::read_to_string(&exit_file) {
            if !code.trim().is_empty() {
                break code.trim().to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the tracer did not exit after q:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = std::fs::read_to_string(format!("/tmp/tracer-dashboard-{}.stderr", target.pid))
        .unwrap_or_default();
    assert_eq!(code, "0", "tracer exit status; stderr:\n{stderr}");
    assert!(
        stderr.contains("quit from the dashboard"),
        "stderr should say why it stopped:\n{stderr}"
    );
    // The final summary is printed on the normal screen after the dashboard.
    let screen = tmux.screen();
    assert!(
        screen.contains("leak suspects") && screen.contains(&evidence_start),
        "the final summary lists the suspect:\n{screen}"
    );
    drop(tmux);
    let _ = std::fs::remove_file(&exit_file);
    let _ = std::fs::remove_file(format!("/tmp/tracer-dashboard-{}.stderr", target.pid));

    assert!(
        target.child.try_wait().expect("try_wait").is_none(),
        "the target must survive the tracer"
    );
    assert_no_probes_left(Some((&inspected, target.pid)));
    target.signal(libc::SIGTERM);
    target.wait(Duration::from_secs(10));
}

#[test]
fn dashboard_shows_the_leak_and_quits_cleanly() {
    let env = test_env();
    // One old and one new runtime: the dashboard itself is version blind.
    let versions: Vec<&String> = [env.go_versions.first(), env.go_versions.last()]
        .into_iter()
        .flatten()
        .collect();
    for version in versions {
        dashboard_for(&env, version);
        if env.go_versions.len() == 1 {
            break;
        }
    }
}

/// `timers -pattern ctx-timeout`: 150 `context.WithTimeout(10m)` never
/// cancelled, each with its deadline timer.
fn context_leak_views_for(env: &TestEnv, version: &str) {
    eprintln!("--- Go {version} timers -pattern ctx-timeout");
    let mut cmd = Command::new(env.go_target(version, "timers"));
    cmd.args(["-pattern", "ctx-timeout", "-n", "150", "-every", "10ms"]);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(20));
    let line = env.site_line("timers", "ctx-timeout");
    let site = format!("timers/main.go:{line}");
    let command = format!(
        "{} attach --pid {} --blocked-after 2s --growth-window 10s --max-overhead 100; sleep 60",
        env.tracer.display(),
        target.pid,
    );
    let tmux = Tmux::start(&format!("tracer-e2e-timers-{}", target.pid), &command);
    tmux.wait_for(
        &["1 Overview", "4 Timers", "5 Contexts"],
        Duration::from_secs(30),
    );
    target.signal(libc::SIGUSR2);
    target.stdout.expect("DONE", Duration::from_secs(30));

    tmux.keys(&["5"]);
    let screen = tmux.wait_for(&["WithTimeout", &site, "150"], Duration::from_secs(10));
    eprintln!("{screen}");
    tmux.keys(&["4"]);
    let screen = tmux.wait_for(&["ctx deadline", &site, "150"], Duration::from_secs(10));
    eprintln!("{screen}");
    // Once they are older than --blocked-after: one suspect, which opens
    // its group in Contexts.
    tmux.keys(&["2"]);
    let evidence = format!("context.WithTimeout at {site}: 150 contexts never cancelled");
    let screen = tmux.wait_for(&[&evidence], Duration::from_secs(20));
    eprintln!("{screen}");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(
        &[
            "retained 150",
            "cancel() never called",
            &format!("created at  {site}"),
        ],
        Duration::from_secs(10),
    );
    eprintln!("{screen}");
    tmux.keys(&["q"]);
    drop(tmux);
    assert!(
        target.child.try_wait().expect("try_wait").is_none(),
        "the target must survive the tracer"
    );
    target.signal(libc::SIGTERM);
    target.wait(Duration::from_secs(10));
}

#[test]
fn timers_and_contexts_views_show_a_context_leak() {
    let env = test_env();
    let version = env.go_versions.last().expect("a Go version");
    context_leak_views_for(&env, version);
}

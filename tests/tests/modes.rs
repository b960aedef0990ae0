//! The tracer's modes and its overhead budget on real Go programs:
//!
//! - the default mode (spawn/exit probes, states read from the target's
//!   memory every interval) and `--precise` (park/wake probes too) report
//!   the same leak suspect, with the count the target itself confirms;
//! - the budget detaches the spawn/exit probes of a target that spawns
//!   hundreds of thousands of goroutines a second, says why (JSON, stderr,
//!   final summary), leaves the target's code as it was, and goes on
//!   counting its spawns from the runtime's goid generator;
//! - `--precise --max-overhead` gives up park/wake first, keeps spawn/exit,
//!   and goes on reading states from memory;
//! - a quiet target keeps its probes.
//!
//! These are the goroutine probe groups' modes: every tracer here runs with
//! `--no-timers`, so each document's `mode.attached` and the probes found in
//! the target's code are those groups alone (the timer and context group
//! under the budget is in `timers.rs`).

use std::{
    collections::BTreeSet,
    fs::File,
    io::{Read, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::*;

/// The rule thresholds of the leak runs (as in `suspects.rs`).
const RULE_FLAGS: &[&str] = &[
    "--interval",
    "1s",
    "--blocked-after",
    "2s",
    "--growth-window",
    "10s",
];
/// `--interval` of [`RULE_FLAGS`], seconds.
const RULE_INTERVAL_S: f64 = 1.0;
/// How long a leak pattern runs under both tracers before the targets stop
/// leaking: at 20 leaks/s ~120 goroutines, the first ones waiting well past
/// --blocked-after, and more than half the growth window observed.
const LEAK_RUN: Duration = Duration::from_secs(6);
/// Leaks per second of the leak patterns (the target's -rate).
const LEAK_RATE: u64 = 20;

/// How long the budget waits before it tries a detached group again
/// (README: "The group is tried again after 30 s"): `retry_at_ns` minus
/// this is when the group was detached.
const FIRST_BACKOFF_NS: u64 = 30_000_000_000;
/// The budget's default cap in the default mode, percent.
const DEFAULT_MAX_OVERHEAD_PCT: f64 = 1.0;
/// Goroutine ids a P takes from `runtime.sched.goidgen` at once
/// (`_GoidCacheBatch` in the Go runtime).
const GOID_CACHE_BATCH: u64 = 16;
/// Goroutines the Go runtime may start on its own during a few seconds of
/// a target's work (GC workers, …): a generous bound.
const RUNTIME_GOROUTINES: u64 = 64;

/// The wait reason Go prints for each pattern's leaked goroutines (see
/// `suspects.rs`, checked there against the target's own dumps).
fn expected_state(pattern: &str, version: &str) -> &'static str {
    match pattern {
        "timeout" | "producer" => "chan send",
        "waitgroup" if minor(version) <= 23 => "semacquire",
        "waitgroup" => "sync.WaitGroup.Wait",
        "context" => "chan receive",
        _ => panic!("no expected state for leak pattern {pattern}"),
    }
}

/// The `mode.attached` groups of a document.
fn attached(doc: &Value) -> Vec<&str> {
    doc["mode"]["attached"]
        .as_array()
        .unwrap_or_else(|| panic!("no mode.attached array:\n{}", describe_document(doc)))
        .iter()
        .map(|g| g.as_str().unwrap_or("?"))
        .collect()
}

/// The `mode.budget.detached` entries of a document.
fn detached(doc: &Value) -> &[Value] {
    doc["mode"]["budget"]["detached"]
        .as_array()
        .unwrap_or_else(|| panic!("no mode.budget.detached array:\n{}", describe_document(doc)))
}

/// The probe programs (`goroutine_spawn`, …) whose code is patched in the
/// running target right now.
fn patched_programs(inspect: &Value, pid: u32) -> BTreeSet<String> {
    probes_in_target_code(inspect, pid)
        .iter()
        .map(|p| p["program"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Goroutine ids a target's goid generator may be ahead of or behind its
/// goroutines: each P holds up to 16 ids taken but not yet used.
fn goid_tolerance(procs: u64) -> u64 {
    GOID_CACHE_BATCH * procs
}

/// CPUs the Go runtime sees here; targets of the budget test get it as
/// GOMAXPROCS explicitly, so the goid tolerance is known.
fn procs() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

// ---- 1. same suspects in every mode ----------------------------------------

/// One leak target and the tracer attached to it in one mode.
struct LeakRun {
    mode: &'static str,
    target: Proc,
    started: Instant,
    inspected: Value,
    tracer: Proc,
}

impl LeakRun {
    fn start(env: &TestEnv, version: &str, pattern: &str, mode: &'static str) -> Self {
        let mut cmd = Command::new(env.go_target(version, "leaks"));
        cmd.args(["-pattern", pattern, "-rate", &LEAK_RATE.to_string()]);
        let started = Instant::now();
        let mut target = Proc::start(cmd);
        target.stdout.expect("READY", Duration::from_secs(10));
        let inspected = inspect(env, target.pid);
        let mut args = RULE_FLAGS.to_vec();
        args.push("--no-timers");
        if mode == "precise" {
            args.push("--precise");
        }
        let tracer = attach_json_with(env, target.pid, &args);
        LeakRun {
            mode,
            target,
            started,
            inspected,
            tracer,
        }
    }
}

/// What one mode reported for the leak, checked against the target.
struct LeakSeen {
    mode: &'static str,
    last: Value,
    leaked: u64,
    /// The target's age when its tracer had stopped: no wait can be older.
    target_age_s: f64,
}

impl LeakSeen {
    fn suspect(&self) -> &Value {
        &suspects(&self.last)[0]
    }

    /// `(function, line)` of each blocked-at frame, innermost first.
    fn frames(&self) -> Vec<(String, u64)> {
        self.suspect()["blocked_at"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|f| {
                        (
                            f["function"].as_str().unwrap_or("?").to_string(),
                            f["line"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn same_suspects_for(env: &TestEnv, version: &str, pattern: &str) {
    eprintln!("--- Go {version} leaks -pattern {pattern}: default and --precise");
    let started = Instant::now();
    // Two fresh targets, traced at the same time, one per mode.
    let mut runs = [
        LeakRun::start(env, version, pattern, "default"),
        LeakRun::start(env, version, pattern, "precise"),
    ];
    std::thread::sleep(LEAK_RUN);
    // Stop leaking, so that each target's counter and its tracer's last
    // document describe the same set of parked goroutines.
    for run in &runs {
        run.target.signal(libc::SIGUSR2);
    }
    let mut leaked = Vec::new();
    for run in &mut runs {
        let paused = fields(&run.target.stdout.expect("PAUSED", Duration::from_secs(15)));
        assert_eq!(
            paused["settled"], paused["leaked"],
            "{pattern} ({}): the target's leaked goroutines did not all park: {paused:?}",
            run.mode
        );
        leaked.push(paused["leaked"].parse::<u64>().unwrap());
    }
    let mut seen = Vec::new();
    for (run, leaked) in runs.iter_mut().zip(leaked) {
        let docs = stop_tracer_all(&mut run.tracer, libc::SIGINT, "interrupted (Ctrl-C)");
        seen.push(LeakSeen {
            mode: run.mode,
            last: docs.last().unwrap().clone(),
            leaked,
            target_age_s: run.started.elapsed().as_secs_f64(),
        });
    }

    let site = env.site_line("leaks", pattern);
    let block = env.marked_line("leaks", &format!("// BLOCK:{pattern}"));
    let state = expected_state(pattern, version);
    for s in &seen {
        let (mode, last) = (s.mode, &s.last);
        let doc = describe_document(last);
        let (states_from, groups) = match mode {
            "default" => ("memory reads", set(&["lifecycle"])),
            _ => ("events", set(&["lifecycle", "scheduling"])),
        };
        assert_eq!(last["mode"]["name"], mode, "{pattern}:\n{doc}");
        assert_eq!(
            last["mode"]["states_from"], states_from,
            "{pattern} ({mode}):\n{doc}"
        );
        assert_eq!(
            set(&attached(last)),
            groups,
            "{pattern} ({mode}): attached probe groups:\n{doc}"
        );
        assert!(
            detached(last).is_empty(),
            "{pattern} ({mode}): nothing is detached at {LEAK_RATE} leaks/s:\n{doc}"
        );
        assert_eq!(
            last["totals"]["lost_events"], 0,
            "{pattern} ({mode}): no event may be lost:\n{doc}"
        );
        let found = suspects(last);
        assert_eq!(
            found.len(),
            1,
            "{pattern} ({mode}): exactly one suspect expected (the leak at leaks/main.go:{site}):\n{doc}"
        );
        let sus = s.suspect();
        assert!(
            matches!(sus["kind"].as_str(), Some("blocked" | "growing")),
            "{pattern} ({mode}): kind:\n{doc}"
        );
        assert!(
            sus["creation_site"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("leaks/main.go"))
                && sus["creation_site"]["line"].as_u64() == Some(site as u64),
            "{pattern} ({mode}): creation site should be leaks/main.go:{site}:\n{doc}"
        );
        assert_eq!(sus["state"], state, "{pattern} ({mode}): state:\n{doc}");
        assert!(
            s.frames().iter().any(|(_, line)| *line == block as u64),
            "{pattern} ({mode}): blocked_at should contain leaks/main.go:{block}: {}\n{doc}",
            sus["blocked_at"]
        );
        // Leaking was paused and every leaked goroutine had parked before
        // the tracer stopped: the group is exactly the target's counter.
        assert_eq!(
            sus["count"].as_u64(),
            Some(s.leaked),
            "{pattern} ({mode}): count vs the target's leaked counter {}:\n{doc}",
            s.leaked
        );
        assert!(
            s.leaked >= 20,
            "{pattern} ({mode}): the target leaked only {} in {LEAK_RUN:?}",
            s.leaked
        );
        let oldest = sus["oldest_age_s"].as_f64().unwrap_or(-1.0);
        assert!(
            (2.0..=s.target_age_s).contains(&oldest),
            "{pattern} ({mode}): oldest_age_s {oldest} should be past --blocked-after 2s and at most the target's age {:.1}s:\n{doc}",
            s.target_age_s
        );
    }

    let [default, precise] = &seen[..] else {
        unreachable!()
    };
    let both = format!(
        "default:\n{}\nprecise:\n{}",
        describe_document(&default.last),
        describe_document(&precise.last)
    );
    let (d, p) = (default.suspect(), precise.suspect());
    assert_eq!(d["kind"], p["kind"], "{pattern}: same kind\n{both}");
    assert_eq!(
        (&d["creation_site"]["file"], &d["creation_site"]["line"]),
        (&p["creation_site"]["file"], &p["creation_site"]["line"]),
        "{pattern}: same creation site\n{both}"
    );
    assert_eq!(d["state"], p["state"], "{pattern}: same state\n{both}");
    assert_eq!(
        d["start_function"], p["start_function"],
        "{pattern}: same start function\n{both}"
    );
    assert_eq!(
        default.frames(),
        precise.frames(),
        "{pattern}: same blocked-at frames (function, line)\n{both}"
    );

    // Ages of the suspects. The oldest member of each group was leaked
    // before its tracer attached (the target leaks from READY on), and the
    // runtime does not record since when it waits: both modes count its
    // wait from the attach-time read of the goroutine list, so its age is
    // the document's elapsed_s in both (a lag of 0 here). What differs is
    // how a wait that starts after attach is timed: from the park event
    // with --precise, from the first read that sees it (one per --interval)
    // by default, which can be late by up to one interval and never early.
    // So, relative to each run's own elapsed_s (the two targets attached at
    // slightly different times), the default mode's oldest age may lag the
    // precise one's by at most one interval, plus 0.5 s of slack for
    // scheduling noise either way. The per-goroutine check below is the
    // sharper one.
    let lag = |s: &LeakSeen| {
        s.last["elapsed_s"].as_f64().unwrap_or(0.0)
            - s.suspect()["oldest_age_s"].as_f64().unwrap_or(0.0)
    };
    let extra_lag = lag(default) - lag(precise);
    assert!(
        (-0.5..=RULE_INTERVAL_S + 0.5).contains(&extra_lag),
        "{pattern}: the default mode's oldest age lags the precise one's by {extra_lag:.2}s (relative to elapsed_s), expected within [-0.5, {}]s\n{both}",
        RULE_INTERVAL_S + 0.5
    );

    eprintln!(
        "    leaked {} / {}, lags {:.2}s / {:.2}s, {:.1?}",
        default.leaked,
        precise.leaked,
        lag(default),
        lag(precise),
        started.elapsed()
    );
    // Each goroutine's wait. Those leaked after attach were traced from
    // their spawn (`created_at_ns`, exact in both modes) and park within
    // milliseconds of it (the timeout worker after its 1 ms). The precise
    // mode times the park from its event; the default mode from the first
    // read that saw the goroutine waiting there, one per --interval: its
    // wait may start up to one interval late (+0.5 s of slack for a tick
    // delayed by a busy machine), never early.
    let mut delays = Vec::new();
    for (s, bound) in [(default, RULE_INTERVAL_S + 0.5), (precise, 0.5)] {
        let d = park_delays(&s.last, site);
        assert!(
            d.len() as u64 * 2 >= s.leaked,
            "{pattern} ({}): most of the {} leaked goroutines were traced from their spawn, only {} listed as such:\n{}",
            s.mode,
            s.leaked,
            d.len(),
            describe_document(&s.last)
        );
        let worst = d.iter().cloned().fold(f64::NAN, f64::max);
        let least = d.iter().cloned().fold(f64::NAN, f64::min);
        assert!(
            least >= 0.0 && worst <= bound,
            "{pattern} ({}): waits start {least:.3}..{worst:.3}s after the spawn, expected within [0, {bound}]s:\n{}",
            s.mode,
            describe_document(&s.last)
        );
        delays.push((d.iter().sum::<f64>() / d.len() as f64, worst));
    }
    eprintln!(
        "    wait starts after spawn (mean, max): default {:.3?}, precise {:.3?}",
        delays[0], delays[1]
    );
    let [first, second] = &runs;
    assert_target_code_untouched(&second.inspected, second.target.pid);
    assert_no_probes_left(Some((&first.inspected, first.target.pid)));
    for run in &mut runs {
        run.target.signal(libc::SIGTERM);
        let (status, _) = run.target.wait(Duration::from_secs(10));
        assert!(status.success(), "the target must be unharmed: {status}");
    }
}

/// `parked_since_ns − created_at_ns`, seconds, of each waiting goroutine
/// created at `leaks/main.go:<site>` whose spawn was traced.
fn park_delays(last: &Value, site: u32) -> Vec<f64> {
    last["goroutines"]
        .as_array()
        .expect("goroutines")
        .iter()
        .filter(|g| {
            g["creation_site"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("leaks/main.go"))
                && g["creation_site"]["line"].as_u64() == Some(site as u64)
                && g["origin"] == "traced"
                && g["state"] == "waiting"
        })
        .map(|g| {
            let created = g["created_at_ns"]
                .as_u64()
                .unwrap_or_else(|| panic!("no created_at_ns: {g}"));
            let parked = g["parked_since_ns"]
                .as_u64()
                .unwrap_or_else(|| panic!("no parked_since_ns: {g}"));
            (parked as f64 - created as f64) / 1e9
        })
        .collect()
}

fn same_suspects_test(pattern: &str) {
    let env = test_env();
    for version in &env.go_versions {
        same_suspects_for(&env, version, pattern);
    }
}

#[test]
fn timeout_leak_is_the_same_suspect_in_default_and_precise_mode() {
    same_suspects_test("timeout");
}

#[test]
fn waitgroup_leak_is_the_same_suspect_in_default_and_precise_mode() {
    same_suspects_test("waitgroup");
}

#[test]
fn context_leak_is_the_same_suspect_in_default_and_precise_mode() {
    same_suspects_test("context");
}

// ---- 2. the budget detaches a busy target's probes ---------------------------

/// A target whose stdout is a pipe that the test fills once READY is read:
/// the target's next write (pingpong's RESULT line, printed right before it
/// exits) blocks until the test reads the pipe. So the target stays alive,
/// its work done and its count not yet told, for as long as the test needs
/// (e.g. for a tracer to read its goid generator one last time). Killed on
/// drop.
struct HeldTarget {
    child: Child,
    pid: u32,
    read: Option<File>,
    hold: Option<File>,
}

impl HeldTarget {
    /// Starts `cmd` and returns once it printed its first line (returned).
    fn start(mut cmd: Command) -> (Self, String) {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two new descriptors into the array we pass.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are fresh and owned by nothing else.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let hold = File::from(write.try_clone().expect("dup the pipe's write end"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        // The Command keeps its copy of the write end until dropped.
        drop(cmd);
        let pid = child.id();
        let mut target = HeldTarget {
            child,
            pid,
            read: Some(read),
            hold: Some(hold),
        };
        let line = target.first_line(Duration::from_secs(10));
        (target, line)
    }

    /// Reads the target's first line byte by byte, so nothing after it is
    /// taken from the pipe.
    fn first_line(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let read = self.read.as_mut().expect("not released");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            assert!(
                Instant::now() < deadline,
                "pid {}: no line within {timeout:?}",
                self.pid
            );
            match read.read(&mut byte) {
                Ok(0) => panic!("pid {} closed its stdout before a line", self.pid),
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(e) => panic!("read the target's stdout: {e}"),
            }
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Fills the (empty) pipe to its capacity: from now on the target's next
    /// write blocks.
    fn hold(&mut self) {
        let fd = self.read.as_ref().expect("not released").as_raw_fd();
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to the pointer we pass.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
        assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
        assert_eq!(queued, 0, "the target wrote more than its first line");
        // SAFETY: F_GETPIPE_SZ takes no argument and returns the capacity.
        let capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        assert!(
            capacity > 0,
            "F_GETPIPE_SZ: {}",
            std::io::Error::last_os_error()
        );
        // An empty pipe takes `capacity` bytes without blocking.
        let mut filler = vec![b'#'; capacity as usize];
        *filler.last_mut().unwrap() = b'\n';
        self.hold
            .as_mut()
            .expect("not released")
            .write_all(&filler)
            .expect("fill the target's stdout pipe");
    }

    /// Whether one of the target's threads is blocked writing to its stdout
    /// (`/proc/PID/task/*/syscall` starts with "1 0x1 ": write(1, …)).
    fn blocked_writing_stdout(&self) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return false;
        };
        tasks.filter_map(Result::ok).any(|t| {
            std::fs::read_to_string(t.path().join("syscall"))
                .is_ok_and(|s| s.starts_with(&format!("{} 0x1 ", libc::SYS_write)))
        })
    }

    /// Lets the target write again; returns its lines after the first (the
    /// filler line left out) once it exited, and its exit status.
    fn release(&mut self, timeout: Duration) -> (Vec<String>, ExitStatus) {
        drop(self.hold.take());
        let (mut lines, _) = Lines::new(self.read.take().expect("released once"));
        let out: Vec<String> = lines
            .rest(timeout)
            .into_iter()
            .filter(|l| !l.starts_with('#'))
            .collect();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "pid {} still running after {timeout:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (out, status)
    }
}

impl Drop for HeldTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// pingpong's quiet time after READY (`-start-delay`): the tracer attaches
/// and reports once while the target does nothing.
const SPAWN_DELAY: Duration = Duration::from_secs(3);
/// pingpong's spawn churn (`-duration`).
const SPAWN_WORK: Duration = Duration::from_secs(3);
/// `--interval` of the budget runs.
const BUDGET_INTERVAL: &str = "250ms";
/// The budget must act within this long of the churn starting.
const DETACH_WITHIN: Duration = Duration::from_secs(2);

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn field_u64(doc: &Value, path: &[&str]) -> u64 {
    let mut v = doc;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("no {} in:\n{}", path.join("."), describe_document(doc)))
}

fn budget_detaches_spawn_exit_for(env: &TestEnv, version: &str) {
    eprintln!("--- Go {version} pingpong -mode spawn, default mode");
    let started = Instant::now();
    let procs = procs();
    let mut cmd = Command::new(env.go_target(version, "pingpong"));
    cmd.args(["-mode", "spawn"])
        .args(["-start-delay", &format!("{}s", SPAWN_DELAY.as_secs())])
        .args(["-duration", &format!("{}s", SPAWN_WORK.as_secs())])
        .env("GOMAXPROCS", procs.to_string());
    let spawned_ns = monotonic_ns();
    let (mut target, ready) = HeldTarget::start(cmd);
    let ready_ns = monotonic_ns();
    assert!(
        ready.starts_with("READY"),
        "pingpong's first line: {ready:?}"
    );
    target.hold();
    // The churn starts SPAWN_DELAY after READY was written: after
    // `churn_after` (we started the target before that), and before
    // `churn_before` (we read READY after that), to within the sleep's
    // oversleep.
    let churn_after = spawned_ns + nanos(SPAWN_DELAY);
    let churn_before = ready_ns + nanos(SPAWN_DELAY);
    let inspected = inspect(env, target.pid);
    let binary = inspected["attach_path"].as_str().unwrap().to_string();

    let mut tracer_cmd = env.tracer();
    tracer_cmd
        .args([
            "attach",
            "--json",
            "--no-timers",
            "--interval",
            BUDGET_INTERVAL,
        ])
        .args(["--pid", &target.pid.to_string()]);
    let mut tracer = Proc::start(tracer_cmd);

    // Before the churn: spawn/exit attached (and really in the target's
    // code), nothing detached.
    let first = next_document(&mut tracer, Duration::from_secs(30));
    let patched_while_quiet = patched_programs(&inspected, target.pid);
    assert!(
        field_u64(&first, &["now_ns"]) < churn_after && monotonic_ns() < churn_after,
        "the tracer took too long to attach: the target's quiet {SPAWN_DELAY:?} are over before its first document:\n{}",
        describe_document(&first)
    );
    assert_eq!(
        first["mode"]["name"],
        "default",
        "{}",
        describe_document(&first)
    );
    assert_eq!(
        attached(&first),
        ["lifecycle"],
        "{}",
        describe_document(&first)
    );
    assert!(detached(&first).is_empty(), "{}", describe_document(&first));
    assert_eq!(
        first["mode"]["budget"]["max_overhead_pct"].as_f64(),
        Some(DEFAULT_MAX_OVERHEAD_PCT),
        "{}",
        describe_document(&first)
    );
    assert_eq!(
        patched_while_quiet,
        set(&["goroutine_spawn", "goroutine_exit"]),
        "while attached, the spawn/exit probe addresses (and only those) hold uprobes: the code comparison sees probes"
    );

    // The churn starts; the budget detaches spawn/exit.
    let mut before_churn = first;
    let detach_doc = loop {
        let doc = next_document(&mut tracer, SPAWN_DELAY + DETACH_WITHIN * 2);
        if !detached(&doc).is_empty() {
            break doc;
        }
        assert!(
            field_u64(&doc, &["now_ns"]) <= churn_before + nanos(DETACH_WITHIN),
            "nothing detached {DETACH_WITHIN:?} after the churn started:\n{}",
            describe_document(&doc)
        );
        if field_u64(&doc, &["now_ns"]) < churn_after {
            before_churn = doc;
        }
    };
    // Spawns are measured from the last document before the churn.
    assert_eq!(
        field_u64(&before_churn, &["totals", "spawned_untraced"]),
        0,
        "nothing detached yet:\n{}",
        describe_document(&before_churn)
    );
    let doc = describe_document(&detach_doc);
    let d = detached(&detach_doc);
    assert_eq!(d.len(), 1, "one group detached:\n{doc}");
    assert_eq!(d[0]["group"], "lifecycle", "{doc}");
    let reason = d[0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.starts_with("spawn/exit probes:")
            && reason.contains("hits/s")
            && reason.contains("budget"),
        "the reason says which probes, their rate and the budget: {reason:?}\n{doc}"
    );
    let detached_at = d[0]["retry_at_ns"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(FIRST_BACKOFF_NS);
    assert!(
        (churn_after..=churn_before + nanos(DETACH_WITHIN)).contains(&detached_at),
        "detached at {detached_at} (retry_at_ns − 30 s): not within {DETACH_WITHIN:?} of the churn starting ({churn_after}..{churn_before}):\n{doc}"
    );
    assert!(
        field_u64(&detach_doc, &["now_ns"]) <= churn_before + nanos(DETACH_WITHIN),
        "the document saying so came more than {DETACH_WITHIN:?} after the churn started:\n{doc}"
    );
    assert!(
        attached(&detach_doc).is_empty(),
        "no probe group left:\n{doc}"
    );
    assert_eq!(detach_doc["mode"]["states_from"], "memory reads", "{doc}");

    // While the tracer runs and the target churns: the target's code is its
    // own again at every probe address, and no uprobe is registered on its
    // binary through tracefs either.
    let churning = monotonic_ns() < churn_after + nanos(SPAWN_WORK);
    assert!(churning, "the check below must run during the churn");
    assert_target_code_untouched(&inspected, target.pid);
    let events = uprobe_events();
    assert!(
        !events.lines().any(|l| l.contains(binary.as_str())),
        "uprobes on {binary} while detached:\n{events}"
    );

    // Spawns go on being counted from the goid generator during the churn.
    let mut during = vec![detach_doc];
    while !target.blocked_writing_stdout() {
        assert!(
            monotonic_ns() < churn_before + nanos(SPAWN_WORK + Duration::from_secs(10)),
            "pingpong never got to print its RESULT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The churn is over and the target waits to print its count. The first
    // document after this point may come from a read made before it; the
    // next one reads the goid generator after it.
    let blocked_ns = monotonic_ns();
    let after_churn = loop {
        let doc = next_document(&mut tracer, Duration::from_secs(5));
        let now = field_u64(&doc, &["now_ns"]);
        during.push(doc);
        if now > blocked_ns {
            break next_document(&mut tracer, Duration::from_secs(5));
        }
    };
    let untraced: Vec<u64> = during
        .iter()
        .map(|d| field_u64(d, &["totals", "spawned_untraced"]))
        .collect();
    assert!(
        untraced.windows(2).all(|w| w[0] <= w[1]) && untraced.last() > untraced.first(),
        "totals.spawned_untraced grows during the churn: {untraced:?}\nfirst:\n{}\nlast:\n{}",
        describe_document(&during[0]),
        describe_document(during.last().unwrap())
    );
    assert_target_code_untouched(&inspected, target.pid);

    let (docs, stderr) = stop_tracer_with_stderr(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
    let last = docs.last().unwrap();
    let last_doc = describe_document(last);
    assert_eq!(
        detached(last).first().map(|d| &d["group"]),
        Some(&Value::from("lifecycle")),
        "the final document still says what is detached:\n{last_doc}"
    );
    assert_eq!(
        detached(last)[0]["reason"].as_str(),
        Some(reason.as_str()),
        "and why:\n{last_doc}"
    );
    assert!(attached(last).is_empty(), "{last_doc}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tracer: detached spawn/exit probes:"))
        .collect();
    assert!(
        said.len() == 1 && said[0].contains("hits/s") && said[0].contains("budget"),
        "stderr has one \"tracer: detached spawn/exit probes: … hits/s … budget\" line:\n{stderr}"
    );
    assert!(
        !stderr.contains("re-attached"),
        "nothing is re-attached within 30 s:\n{stderr}"
    );
    // The tracer is gone; the target, still waiting to print, has its code.
    assert_target_code_untouched(&inspected, target.pid);

    let (out, status) = target.release(Duration::from_secs(10));
    assert!(
        status.success(),
        "the target must be unharmed: {status}, output {out:?}"
    );
    let result = out
        .iter()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("no RESULT line from pingpong: {out:?}"));
    let ops: u64 = fields(result)["ops"].parse().unwrap();
    assert!(
        ops >= 100_000,
        "pingpong spawned only {ops} goroutines: {result}"
    );

    // Between `before_churn` (the target quiet, every probe attached) and
    // `after_churn` (the churn over, the goid generator read after it), the
    // target spawned its `ops` goroutines (plus maybe a few of the
    // runtime's). Those spawned before the detach were traced one by one;
    // after it, each read adds the goid generator's growth, which counts the
    // ids the Ps took from it: a P takes 16 at a time, so the generator can
    // be up to 16 per P ahead of (at the end) or behind (at the start) the
    // goroutines really created. Hence the tolerance, 16 × GOMAXPROCS (set
    // explicitly on the target).
    let tolerance = goid_tolerance(procs);
    let spawned = field_u64(&after_churn, &["totals", "spawned"])
        - field_u64(&before_churn, &["totals", "spawned"]);
    let untraced = field_u64(&after_churn, &["totals", "spawned_untraced"])
        - field_u64(&before_churn, &["totals", "spawned_untraced"]);
    let spawn_hits = field_u64(&after_churn, &["probes", "spawn_hits"])
        - field_u64(&before_churn, &["probes", "spawn_hits"]);
    let counts = format!(
        "pingpong: {result}\nbefore the churn:\n{}\nafter it:\n{}",
        describe_document(&before_churn),
        describe_document(&after_churn)
    );
    assert!(
        spawned + tolerance >= ops,
        "totals.spawned grew by {spawned}, the target spawned {ops} (tolerance {tolerance}):\n{counts}"
    );
    assert!(
        untraced + spawn_hits + tolerance >= ops,
        "totals.spawned_untraced grew by {untraced}, plus {spawn_hits} traced spawns, vs the target's {ops} (tolerance {tolerance}):\n{counts}"
    );
    // Nor many more: a spawn is counted twice at most if it was traced
    // while the probes were being detached, after the generator's last read
    // before the detach; and the runtime starts a few goroutines of its own.
    assert!(
        spawned <= ops + spawn_hits + tolerance + RUNTIME_GOROUTINES,
        "totals.spawned grew by {spawned}: more than the target's {ops} + {spawn_hits} traced + {tolerance} + {RUNTIME_GOROUTINES}:\n{counts}"
    );
    assert!(
        untraced * 2 >= ops,
        "most of the churn happened with the probes detached: spawned_untraced grew by {untraced} of {ops}:\n{counts}"
    );
    eprintln!(
        "    detached {:.0} ms after the churn started, ops {ops}, spawned +{spawned} (untraced +{untraced}, spawn hits +{spawn_hits}), {:.1?}",
        (detached_at as f64 - churn_before as f64) / 1e6,
        started.elapsed()
    );

    summary_says_detached(env, version);
    assert_no_probes_left(None);
}

/// The human final summary of a default-mode session on a spawn churn says
/// the spawn/exit probes were detached and why.
fn summary_says_detached(env: &TestEnv, version: &str) {
    let mut cmd = Command::new(env.go_target(version, "pingpong"));
    cmd.args(["-mode", "spawn", "-duration", "6s"]);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(10));
    let mut tracer_cmd = env.tracer();
    tracer_cmd
        .args([
            "attach",
            "--no-tui",
            "--interval",
            "500ms",
            "--duration",
            "2s",
            "--no-timers",
        ])
        .args(["--pid", &target.pid.to_string()]);
    let mut tracer = Proc::start(tracer_cmd);
    let out = tracer.stdout.rest(Duration::from_secs(20));
    let (status, stderr) = tracer.wait(Duration::from_secs(10));
    let text = out.join("\n");
    assert!(status.success(), "tracer failed: {status}\n{stderr}");
    let mode_line = out
        .iter()
        .find(|l| l.trim_start().starts_with("mode: "))
        .unwrap_or_else(|| panic!("no mode line in the final summary:\n{text}"));
    assert!(
        mode_line.contains("default · no probes")
            && mode_line.contains("DETACHED spawn/exit probes:")
            && mode_line.contains("hits/s")
            && mode_line.contains("budget"),
        "the final summary's mode says what was detached and why: {mode_line:?}\n{text}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("tracer: detached spawn/exit probes:")),
        "{stderr}"
    );
    target.stdout.expect("RESULT", Duration::from_secs(15));
    let (status, _) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target must be unharmed: {status}");
}

#[test]
fn the_budget_detaches_a_busy_targets_probes_and_counts_its_spawns() {
    let env = test_env();
    for version in &env.go_versions {
        budget_detaches_spawn_exit_for(&env, version);
    }
}

// ---- 3. --precise with a cap gives up park/wake first -----------------------

#[test]
fn precise_with_a_cap_detaches_park_wake_first() {
    let env = test_env();
    // One version is enough: the budget does not depend on it.
    let version = env
        .go_versions
        .iter()
        .find(|v| v.starts_with("1.26."))
        .unwrap_or_else(|| env.go_versions.last().unwrap());
    eprintln!("--- Go {version} pingpong -mode pingpong, --precise --max-overhead 1");
    let started = Instant::now();
    let mut cmd = Command::new(env.go_target(version, "pingpong"));
    cmd.args(["-mode", "pingpong", "-duration", "8s"]);
    let mut target = Proc::start(cmd);
    target.stdout.expect("READY", Duration::from_secs(10));
    let inspected = inspect(&env, target.pid);
    let mut tracer = attach_json_with(
        &env,
        target.pid,
        &[
            "--precise",
            "--max-overhead",
            "1",
            "--interval",
            "250ms",
            "--no-timers",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let detach_doc = loop {
        let doc = next_document(&mut tracer, Duration::from_secs(5));
        if !detached(&doc).is_empty() {
            break doc;
        }
        assert!(
            Instant::now() < deadline,
            "park/wake not detached within 3 s of a channel ping-pong:\n{}",
            describe_document(&doc)
        );
    };
    let mut docs = vec![detach_doc];
    for _ in 0..6 {
        docs.push(next_document(&mut tracer, Duration::from_secs(5)));
    }
    let patched = patched_programs(&inspected, target.pid);
    assert_eq!(
        patched,
        set(&["goroutine_spawn", "goroutine_exit"]),
        "park/wake are out of the target's code, spawn/exit still in:\n{}",
        describe_document(docs.last().unwrap())
    );

    let pingpong_goroutine = |doc: &Value, main: bool| -> Option<Value> {
        doc["goroutines"].as_array()?.iter().find_map(|g| {
            let is_main = g["goid"] == 1;
            let is_partner = g["creation_site"]["function"] == "main.runPingPong"
                && g["creation_site"]["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("pingpong/main.go"));
            ((main && is_main) || (!main && is_partner)).then(|| g.clone())
        })
    };
    let mut waits = BTreeSet::new();
    for doc in &docs {
        let text = describe_document(doc);
        assert_eq!(doc["mode"]["name"], "precise", "{text}");
        let groups: Vec<&str> = detached(doc)
            .iter()
            .map(|d| d["group"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            groups,
            ["scheduling"],
            "park/wake detached, spawn/exit not:\n{text}"
        );
        let reason = detached(doc)[0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("park/wake probes:")
                && reason.contains("hits/s")
                && reason.contains("budget"),
            "{reason:?}\n{text}"
        );
        assert_eq!(attached(doc), ["lifecycle"], "{text}");
        assert_eq!(doc["mode"]["states_from"], "memory reads", "{text}");
        for main in [true, false] {
            let g = pingpong_goroutine(doc, main).unwrap_or_else(|| {
                panic!(
                    "the {} goroutine of the ping-pong is not listed:\n{text}\ngoroutines: {}",
                    if main { "main" } else { "partner" },
                    doc["goroutines"]
                )
            });
            if g["state"] == "waiting" {
                waits.insert(g["wait_reason"].as_str().unwrap_or("?").to_string());
            }
        }
    }
    // States now come from reads of the target's memory: the two goroutines
    // are seen parked on their channels in some of them.
    assert!(
        waits
            .iter()
            .any(|w| w == "chan send" || w == "chan receive"),
        "the ping-pong goroutines were never seen waiting on a channel in {} reads: {waits:?}\nlast:\n{}\ngoroutines: {}",
        docs.len(),
        describe_document(docs.last().unwrap()),
        docs.last().unwrap()["goroutines"]
    );

    let (rest, stderr) = stop_tracer_with_stderr(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
    let last = rest.last().unwrap();
    assert!(
        field_u64(last, &["probes", "park_hits"]) > 0
            && field_u64(last, &["probes", "ready_hits"]) > 0,
        "park/wake were attached at first and hit:\n{}",
        describe_document(last)
    );
    let attached_line = stderr
        .lines()
        .find(|l| l.starts_with("tracer: attached to pid"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        attached_line.contains("runtime.gopark") && attached_line.contains("runtime.ready"),
        "--precise attaches park/wake at first: {attached_line}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("tracer: detached park/wake probes:")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("detached spawn/exit"),
        "spawn/exit stay attached:\n{stderr}"
    );

    assert_no_probes_left(Some((&inspected, target.pid)));
    target.stdout.expect("RESULT", Duration::from_secs(15));
    let (status, _) = target.wait(Duration::from_secs(10));
    assert!(status.success(), "the target must be unharmed: {status}");
    eprintln!("    {:.1?}", started.elapsed());
}

// ---- 4. a quiet target keeps its probes --------------------------------------

const QUIET_RUN: Duration = Duration::from_secs(5);

#[test]
fn a_quiet_target_keeps_its_probes_in_default_mode() {
    let env = test_env();
    for version in &env.go_versions {
        eprintln!("--- Go {version} leaks -pattern producer -rate {LEAK_RATE}, default mode");
        let started = Instant::now();
        let mut cmd = Command::new(env.go_target(version, "leaks"));
        cmd.args(["-pattern", "producer", "-rate", &LEAK_RATE.to_string()]);
        let mut target = Proc::start(cmd);
        target.stdout.expect("READY", Duration::from_secs(10));
        let inspected = inspect(&env, target.pid);
        let mut tracer =
            attach_json_with(&env, target.pid, &["--interval", "500ms", "--no-timers"]);
        std::thread::sleep(QUIET_RUN);
        let patched = patched_programs(&inspected, target.pid);
        let docs = stop_tracer_all(&mut tracer, libc::SIGINT, "interrupted (Ctrl-C)");
        assert!(docs.len() >= 8, "{} documents in {QUIET_RUN:?}", docs.len());
        for doc in &docs {
            let text = describe_document(doc);
            assert_eq!(doc["mode"]["name"], "default", "{text}");
            assert!(detached(doc).is_empty(), "nothing detached:\n{text}");
            assert_eq!(attached(doc), ["lifecycle"], "{text}");
            assert_eq!(doc["mode"]["states_from"], "memory reads", "{text}");
            assert_eq!(
                doc["mode"]["budget"]["max_overhead_pct"].as_f64(),
                Some(DEFAULT_MAX_OVERHEAD_PCT),
                "{text}"
            );
            let pct = doc["mode"]["budget"]["estimated_overhead_pct"]
                .as_f64()
                .unwrap_or(f64::NAN);
            assert!(pct < 1.0, "estimated overhead {pct}%:\n{text}");
        }
        // The estimate is measured, not a constant: ~40 spawns and ~20 exits
        // a second, ≈3 µs each, against at least a tenth of a core ≈ 0.2%.
        let last = docs.last().unwrap();
        assert!(
            docs.iter()
                .any(|d| d["mode"]["budget"]["estimated_overhead_pct"]
                    .as_f64()
                    .is_some_and(|p| p > 0.0)),
            "the overhead estimate never rose above 0 while the probes were hit:\n{}",
            describe_document(last)
        );
        let expected_spawns = LEAK_RATE * QUIET_RUN.as_secs();
        assert!(
            field_u64(last, &["probes", "spawn_hits"]) >= expected_spawns,
            "the spawn probe was hit (≥ {expected_spawns} in {QUIET_RUN:?}):\n{}",
            describe_document(last)
        );
        assert_eq!(
            patched,
            set(&["goroutine_spawn", "goroutine_exit"]),
            "the spawn/exit probes were in the target's code all along"
        );

        let peak = docs
            .iter()
            .filter_map(|d| d["mode"]["budget"]["estimated_overhead_pct"].as_f64())
            .fold(0.0, f64::max);
        eprintln!(
            "    {} documents, estimated overhead at most {peak}%, {} spawn hits, {:.1?}",
            docs.len(),
            last["probes"]["spawn_hits"],
            started.elapsed()
        );

        assert_no_probes_left(Some((&inspected, target.pid)));
        target.signal(libc::SIGTERM);
        let (status, _) = target.wait(Duration::from_secs(10));
        assert!(status.success(), "the target must be unharmed: {status}");
    }
}

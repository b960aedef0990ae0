//! Leak-suspect benchmarks. Prints Markdown tables for BENCHMARKS.md.
//!
//! - `first`: time from starting `tracer attach` (default rules, `--json
//!   --interval 250ms`) to the first JSON document naming the leaking `go`
//!   statement of the Go `leaks` target as a suspect, for each leak pattern,
//!   with the leak started just before attach and with N goroutines leaked
//!   before attach (`-prefill`). Any other suspect seen during a run is
//!   reported.
//! - `dashboard`: the tracer's CPU and memory while its dashboard (run in a
//!   tmux pane, a real terminal) follows the Go `backlog` target's parked
//!   goroutines, idle and while views are switched with keys; then `q` must
//!   end it with status 0 and leave the target running. Then the same target
//!   followed headless (`--json` to /dev/null) for comparison.
//!
//! Usage (normally through `cargo xtask bench`; needs root, and tmux for
//! `dashboard`):
//!   suspects first TRACER_BIN LEAKS_BIN LEAKS_MAIN_GO [REPETITIONS]
//!   suspects dashboard TRACER_BIN BACKLOG_BIN [N_PER_KIND...]

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Leak patterns of `tests/go/leaks` (its `-pattern`).
const PATTERNS: &[&str] = &["timeout", "producer", "waitgroup", "mutex", "context"];
/// Leaked goroutines per second (the target's `-rate`).
const LEAK_RATE: &str = "20";
/// Goroutines leaked before attach (`-prefill`): none (the leak starts right
/// before attach), at least and below the default `--backlog-min 100`.
const PREFILLS: &[u64] = &[0, 150, 50];
/// A run without the right suspect by then is a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a run goes on after the first right suspect, to see whether
/// another suspect follows.
const GRACE: Duration = Duration::from_secs(2);
/// Dashboard measurement: one sample per second for this long per phase.
const SAMPLE_SECS: usize = 30;
/// CPU is averaged over the last this-many seconds of a phase.
const STEADY_SECS: usize = 20;
/// Keys sent once a second during the interactive phase: Suspects,
/// Goroutines, Details, Overview.
const VIEW_KEYS: &[&str] = &["2", "3", "4", "1"];
/// Lines of the tracer's stderr shown when a run fails.
const TAIL_LINES: usize = 20;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("first") => {
            let (Some(tracer), Some(leaks), Some(src)) = (args.get(2), args.get(3), args.get(4))
            else {
                bail!("usage: suspects first TRACER_BIN LEAKS_BIN LEAKS_MAIN_GO [REPETITIONS]");
            };
            let reps: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(3);
            first_suspect_table(tracer, leaks, Path::new(src), reps)
        }
        Some("dashboard") => {
            let (Some(tracer), Some(backlog)) = (args.get(2), args.get(3)) else {
                bail!("usage: suspects dashboard TRACER_BIN BACKLOG_BIN [N_PER_KIND...]");
            };
            let ns: Vec<u64> = args[4..]
                .iter()
                .map(|s| s.parse())
                .collect::<Result<_, _>>()?;
            let ns = if ns.is_empty() { vec![20_000, 2_000] } else { ns };
            dashboard_table(tracer, backlog, &ns)
        }
        _ => bail!(
            "usage: suspects first TRACER_BIN LEAKS_BIN LEAKS_MAIN_GO [REPETITIONS]\n       suspects dashboard TRACER_BIN BACKLOG_BIN [N_PER_KIND...]"
        ),
    }
}

// ---- process plumbing ------------------------------------------------------

/// Where a line came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A line of a child's output and when it arrived; `None` when the stream
/// closed.
type Line = (Stream, Option<String>, Instant);

/// Forwards each line of `r` (and its end) to `tx`, stamped on arrival.
fn forward(r: impl Read + Send + 'static, stream: Stream, tx: mpsc::Sender<Line>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send((stream, Some(line), Instant::now())).is_err() {
                return;
            }
        }
        let _ = tx.send((stream, None, Instant::now()));
    });
}

/// Starts a Go target and waits (at most `timeout`) for its READY line.
/// Returns the child, its pid and the READY line; the rest of its stdout
/// and stderr is drained in the background.
fn start_target(bin: &str, args: &[&str], timeout: Duration) -> Result<(Child, u32, String)> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {bin}"))?;
    let (tx, rx) = mpsc::channel();
    forward(
        child.stdout.take().context("stdout")?,
        Stream::Stdout,
        tx.clone(),
    );
    forward(child.stderr.take().context("stderr")?, Stream::Stderr, tx);
    let deadline = Instant::now() + timeout;
    let mut stderr = Vec::new();
    let ready = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((Stream::Stdout, Some(l), _)) if l.starts_with("READY") => break l,
            Ok((Stream::Stderr, Some(l), _)) => stderr.push(l),
            Ok((_, Some(_), _)) => {}
            Ok((_, None, _)) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{bin} {args:?} printed no READY line within {timeout:?}; its stderr:\n{}",
                    stderr.join("\n")
                );
            }
        }
    };
    // Keep draining so the target never blocks on a full pipe.
    std::thread::spawn(move || for _ in rx {});
    let pid = child.id();
    Ok((child, pid, ready))
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child of ours that has not been reaped yet.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Waits at most `timeout` for `child` to exit; kills it after that.
/// Returns its exit code, `None` when it had to be killed or died of a signal.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Result<Option<i32>> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    Ok(None)
}

/// Stops a Go target (SIGTERM) and reaps it.
fn stop_target(mut child: Child) -> Result<()> {
    signal(child.id(), libc::SIGTERM);
    wait_or_kill(&mut child, Duration::from_secs(10))?;
    Ok(())
}

fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---- first suspect ---------------------------------------------------------

/// The line of `main.go` carrying `// SITE:<pattern>`.
fn site_line(src: &Path, pattern: &str) -> Result<u64> {
    let text = std::fs::read_to_string(src).with_context(|| format!("read {}", src.display()))?;
    let marker = format!("// SITE:{pattern}");
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with(&marker))
        .map(|(i, _)| i + 1)
        .collect();
    match lines[..] {
        [line] => Ok(line as u64),
        _ => bail!(
            "{} has {} lines marked {marker:?}, want one",
            src.display(),
            lines.len()
        ),
    }
}

/// What one run saw.
struct FirstRun {
    /// From spawning the tracer to its "tracer: attached" line.
    attached: Duration,
    /// From spawning the tracer to the first document with the right suspect.
    first: Duration,
    kind: String,
    /// Suspects at any other site: "kind file:line (state)".
    others: BTreeSet<String>,
    /// The tracer's exit code after SIGINT (`None`: killed).
    exit: Option<i32>,
}

/// Starts the target, then the tracer at once, and reads its documents until
/// the first suspect at `leaks/main.go:line` (plus [`GRACE`]).
fn first_run(
    tracer: &str,
    leaks: &str,
    pattern: &str,
    prefill: u64,
    line: u64,
) -> Result<FirstRun> {
    let prefill_arg = prefill.to_string();
    let (target, pid, _) = start_target(
        leaks,
        &[
            "-pattern",
            pattern,
            "-rate",
            LEAK_RATE,
            "-prefill",
            &prefill_arg,
        ],
        RUN_TIMEOUT,
    )?;
    let result = trace_until_suspect(tracer, pid, line);
    stop_target(target)?;
    result
}

fn trace_until_suspect(tracer: &str, pid: u32, line: u64) -> Result<FirstRun> {
    let spawned = Instant::now();
    let mut child = Command::new(tracer)
        .args([
            "attach",
            "--pid",
            &pid.to_string(),
            "--json",
            "--interval",
            "250ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the tracer")?;
    let (tx, rx) = mpsc::channel();
    forward(
        child.stdout.take().context("stdout")?,
        Stream::Stdout,
        tx.clone(),
    );
    forward(child.stderr.take().context("stderr")?, Stream::Stderr, tx);
    let seen = watch_documents(&rx, spawned, line);
    signal(child.id(), libc::SIGINT);
    let exit = wait_or_kill(&mut child, Duration::from_secs(10))?;
    let mut seen = seen?;
    seen.exit = exit;
    Ok(seen)
}

fn watch_documents(rx: &Receiver<Line>, spawned: Instant, line: u64) -> Result<FirstRun> {
    let deadline = spawned + RUN_TIMEOUT;
    let mut stderr: Vec<String> = Vec::new();
    let mut attached = None;
    let mut first: Option<(Duration, String)> = None;
    let mut others = BTreeSet::new();
    let mut documents = 0u64;
    loop {
        let until = match &first {
            Some((t, _)) => (spawned + *t + GRACE).min(deadline),
            None => deadline,
        };
        let (stream, text, at) =
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    unreachable!("the sender lives in the reader threads")
                }
            };
        let Some(text) = text else {
            if stream == Stream::Stdout {
                bail!(
                    "the tracer closed its stdout after {documents} documents; its stderr:\n{}",
                    tail(&stderr)
                );
            }
            continue;
        };
        match stream {
            Stream::Stderr => {
                if attached.is_none() && text.starts_with("tracer: attached") {
                    attached = Some(at - spawned);
                }
                stderr.push(text);
            }
            Stream::Stdout => {
                documents += 1;
                let doc: Value = serde_json::from_str(&text)
                    .with_context(|| format!("document {documents} is not JSON"))?;
                for s in doc["suspects"].as_array().into_iter().flatten() {
                    let site = &s["creation_site"];
                    let file = site["file"].as_str().unwrap_or("?");
                    let at_line = site["line"].as_u64();
                    let kind = s["kind"].as_str().unwrap_or("?").to_string();
                    if file.ends_with("leaks/main.go") && at_line == Some(line) {
                        if first.is_none() {
                            first = Some((at - spawned, kind));
                        }
                    } else {
                        others.insert(format!(
                            "{kind} {}:{} ({}, {} goroutines)",
                            file.rsplit('/')
                                .take(2)
                                .collect::<Vec<_>>()
                                .into_iter()
                                .rev()
                                .collect::<Vec<_>>()
                                .join("/"),
                            at_line.map_or("?".into(), |l| l.to_string()),
                            s["state"].as_str().unwrap_or("?"),
                            s["count"]
                        ));
                    }
                }
            }
        }
    }
    let Some(attached) = attached else {
        bail!(
            "the tracer did not attach within {RUN_TIMEOUT:?}; its stderr:\n{}",
            tail(&stderr)
        );
    };
    let Some((first, kind)) = first else {
        bail!(
            "no suspect at leaks/main.go:{line} within {RUN_TIMEOUT:?} ({documents} documents; other suspects: {others:?}); the tracer's stderr:\n{}",
            tail(&stderr)
        );
    };
    Ok(FirstRun {
        attached,
        first,
        kind,
        others,
        exit: None,
    })
}

fn first_suspect_table(tracer: &str, leaks: &str, src: &Path, reps: usize) -> Result<()> {
    println!(
        "| leak (`-pattern`, 20/s) | leaked before attach | first right suspect | after spawning `tracer attach` (median of {reps}) | after \"attached\" (median) | runs, after \"attached\" | spawn → \"attached\" (median) | other suspects |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut failures = 0;
    for pattern in PATTERNS {
        let line = site_line(src, pattern)?;
        for &prefill in PREFILLS {
            let (mut firsts, mut afters, mut attaches) = (Vec::new(), Vec::new(), Vec::new());
            let mut kinds = BTreeSet::new();
            let mut others = BTreeSet::new();
            let mut notes = Vec::new();
            for rep in 0..reps {
                match first_run(tracer, leaks, pattern, prefill, line) {
                    Ok(run) => {
                        eprintln!(
                            "suspects: {pattern} prefill={prefill} #{rep}: attached {:.2}s, {} suspect {:.2}s after spawn, others {:?}, exit {:?}",
                            secs(run.attached),
                            run.kind,
                            secs(run.first),
                            run.others,
                            run.exit
                        );
                        firsts.push(secs(run.first));
                        afters.push(secs(run.first) - secs(run.attached));
                        attaches.push(secs(run.attached));
                        kinds.insert(run.kind);
                        others.extend(run.others);
                        if run.exit != Some(0) {
                            notes.push(format!("tracer exit {:?} after SIGINT", run.exit));
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        eprintln!("suspects: {pattern} prefill={prefill} #{rep} FAILED: {e:#}");
                        notes.push(format!(
                            "run {} failed: {}",
                            rep + 1,
                            e.to_string().lines().next().unwrap_or("")
                        ));
                    }
                }
            }
            let fmt = |m: Option<f64>| m.map_or("—".into(), |x| format!("{x:.2} s"));
            let before = match prefill {
                0 => "0 (leak starts at attach)".to_string(),
                n => format!("{n} (`-prefill {n}`)"),
            };
            let mut other = if others.is_empty() {
                "none".to_string()
            } else {
                others.into_iter().collect::<Vec<_>>().join("; ")
            };
            if !notes.is_empty() {
                other = format!("{other}; {}", notes.join("; "));
            }
            println!(
                "| {pattern} | {before} | {} | {} | {} | {} | {} | {other} |",
                kinds.into_iter().collect::<Vec<_>>().join(", "),
                fmt(median(&firsts)),
                fmt(median(&afters)),
                afters
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                fmt(median(&attaches)),
            );
        }
    }
    if failures > 0 {
        bail!("{failures} run(s) failed (see above)");
    }
    Ok(())
}

// ---- dashboard -------------------------------------------------------------

/// One reading of the tracer's /proc files.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    /// utime + stime, clock ticks.
    cpu_ticks: u64,
    rss_kb: u64,
    hwm_kb: u64,
}

fn sample(pid: u32) -> Result<Sample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat (did the tracer exit?)"))?;
    // Fields after the parenthesised comm: state is field 3; utime 14, stime 15.
    let rest = &stat[stat.rfind(')').context("bad stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cpu_ticks = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .context("no such field")?
            .parse()
            .map_err(Into::into)
    };
    Ok(Sample {
        at,
        cpu_ticks,
        rss_kb: kb("VmRSS:")?,
        hwm_kb: kb("VmHWM:")?,
    })
}

/// Figures of one measured phase.
struct Phase {
    cpu_percent: f64,
    rss_kb: u64,
    hwm_kb: u64,
}

/// Samples `pid` once a second for [`SAMPLE_SECS`], calling `each` before
/// each sample (to send a key).
fn measure(pid: u32, mut each: impl FnMut(usize) -> Result<()>) -> Result<Phase> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let start = Instant::now();
    let mut samples = vec![sample(pid)?];
    for i in 1..=SAMPLE_SECS {
        std::thread::sleep(
            (start + Duration::from_secs(i as u64)).saturating_duration_since(Instant::now()),
        );
        each(i)?;
        samples.push(sample(pid)?);
    }
    let (a, b) = (samples[SAMPLE_SECS - STEADY_SECS], samples[SAMPLE_SECS]);
    let cpu = (b.cpu_ticks - a.cpu_ticks) as f64 / ticks_per_s;
    Ok(Phase {
        cpu_percent: 100.0 * cpu / secs(b.at - a.at),
        rss_kb: b.rss_kb,
        hwm_kb: samples.iter().map(|s| s.hwm_kb).max().unwrap_or(0),
    })
}

/// A tmux server of our own (its own socket), so nobody else's sessions
/// are touched.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .context("cannot run tmux (is it installed?)")?;
        if !out.status.success() {
            bail!(
                "tmux {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "bench"])
            .unwrap_or_default()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The child of `parent` whose command name is `comm`.
fn child_named(parent: u32, comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && name == comm).then_some(pid)
    })
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// What one dashboard session measured.
struct Dashboard {
    first_frame: Duration,
    idle: Phase,
    keys: Phase,
    exit: String,
    target_alive: bool,
}

/// Runs the dashboard on `pid` in a tmux pane, measures it idle then with
/// keys, and quits it with `q`.
fn dashboard(tracer: &str, pid: u32) -> Result<Dashboard> {
    let tag = std::process::id();
    let exit_file = std::env::temp_dir().join(format!("tracer-bench-dashboard-{tag}.exit"));
    let _ = std::fs::remove_file(&exit_file);
    let tmux = Tmux {
        socket: format!("tracer-bench-{tag}"),
    };
    let shell = format!(
        "'{tracer}' attach --pid {pid}; echo EXIT=$? > '{}'",
        exit_file.display()
    );
    // The kernel's command name: the file name, cut to 15 bytes.
    let comm: String = Path::new(tracer)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tracer")
        .chars()
        .take(15)
        .collect();
    let spawned = Instant::now();
    // remain-on-exit: if the tracer fails, its message stays readable.
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "bench",
        "-x",
        "120",
        "-y",
        "40",
        &shell,
        ";",
        "set-option",
        "-g",
        "remain-on-exit",
        "on",
    ])?;
    let pane: u32 = tmux
        .cmd(&["list-panes", "-t", "bench", "-F", "#{pane_pid}"])?
        .trim()
        .parse()
        .context("tmux pane pid")?;
    let fail = |what: String| -> anyhow::Error {
        anyhow::anyhow!("{what}; the pane shows:\n{}", tmux.screen())
    };
    let mut tracer_pid = None;
    let mut first_frame = None;
    while spawned.elapsed() < RUN_TIMEOUT {
        tracer_pid = tracer_pid.or_else(|| child_named(pane, &comm));
        if tracer_pid.is_some() && tmux.screen().contains("Suspects") {
            first_frame = Some(spawned.elapsed());
            break;
        }
        if exit_file.exists() {
            return Err(fail(
                "the tracer exited before showing its dashboard".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (Some(tracer_pid), Some(first_frame)) = (tracer_pid, first_frame) else {
        return Err(fail(format!("no dashboard within {RUN_TIMEOUT:?}")));
    };
    let idle = measure(tracer_pid, |_| Ok(())).map_err(|e| fail(format!("{e:#}")))?;
    let keys = measure(tracer_pid, |i| {
        tmux.cmd(&["send-keys", "-t", "bench", VIEW_KEYS[i % VIEW_KEYS.len()]])
            .map(drop)
    })
    .map_err(|e| fail(format!("{e:#}")))?;
    tmux.cmd(&["send-keys", "-t", "bench", "q"])?;
    let quit = Instant::now();
    let exit = loop {
        if let Ok(s) = std::fs::read_to_string(&exit_file) {
            break format!("{} in {:.2} s", s.trim(), secs(quit.elapsed()));
        }
        if quit.elapsed() > Duration::from_secs(10) {
            break format!("did not exit within 10 s of `q`; pane:\n{}", tmux.screen());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&exit_file);
    Ok(Dashboard {
        first_frame,
        idle,
        keys,
        exit,
        target_alive: alive(pid),
    })
}

/// What the headless session measured.
struct Headless {
    attached: Duration,
    phase: Phase,
    exit: Option<i32>,
}

fn headless(tracer: &str, pid: u32) -> Result<Headless> {
    let spawned = Instant::now();
    let mut child = Command::new(tracer)
        .args([
            "attach",
            "--pid",
            &pid.to_string(),
            "--json",
            "--interval",
            "1s",
            "--max-goroutines",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the tracer")?;
    let (tx, rx) = mpsc::channel();
    forward(child.stderr.take().context("stderr")?, Stream::Stderr, tx);
    let mut stderr = Vec::new();
    let attached = loop {
        match rx.recv_timeout(RUN_TIMEOUT.saturating_sub(spawned.elapsed())) {
            Ok((_, Some(l), at)) => {
                let done = l.starts_with("tracer: attached");
                stderr.push(l);
                if done {
                    break at - spawned;
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the tracer did not attach; its stderr:\n{}", tail(&stderr));
            }
        }
    };
    std::thread::spawn(move || for _ in rx {});
    let phase = measure(child.id(), |_| Ok(()));
    signal(child.id(), libc::SIGINT);
    let exit = wait_or_kill(&mut child, Duration::from_secs(10))?;
    Ok(Headless {
        attached,
        phase: phase?,
        exit,
    })
}

fn dashboard_table(tracer: &str, backlog: &str, ns: &[u64]) -> Result<()> {
    println!(
        "| target goroutines | tracer | ready after | CPU % of one core (last {STEADY_SECS} s of {SAMPLE_SECS}) | VmRSS at end | VmHWM (peak) | RSS per goroutine | end |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    for &n in ns {
        let n_arg = n.to_string();
        let (target, pid, ready) =
            start_target(backlog, &["-n", &n_arg], Duration::from_secs(300))?;
        let total: u64 = ready
            .split_whitespace()
            .find_map(|f| f.strip_prefix("total="))
            .context("no total= in READY")?
            .parse()?;
        let per = |kb: u64| format!("{:.0} B", kb as f64 * 1024.0 / total as f64);
        let run = (|| -> Result<()> {
            let d = dashboard(tracer, pid)?;
            eprintln!(
                "suspects: dashboard n={n}: first frame {:.2}s, idle {:.1}% keys {:.1}%, {}",
                secs(d.first_frame),
                d.idle.cpu_percent,
                d.keys.cpu_percent,
                d.exit
            );
            let end = format!(
                "`q`: {}; target {}",
                d.exit,
                if d.target_alive {
                    "still running"
                } else {
                    "GONE"
                }
            );
            for (what, p, end) in [
                ("dashboard, idle", &d.idle, "—".to_string()),
                ("dashboard, keys `2 3 4 1` once a second", &d.keys, end),
            ] {
                println!(
                    "| {total} | {what} | first frame {:.2} s | {:.1} | {} | {} | {} | {end} |",
                    secs(d.first_frame),
                    p.cpu_percent,
                    mb(p.rss_kb),
                    mb(p.hwm_kb),
                    per(p.rss_kb)
                );
            }
            if !d.target_alive {
                bail!("the target died while the dashboard ran");
            }
            let h = headless(tracer, pid)?;
            println!(
                "| {total} | headless `--json --interval 1s --max-goroutines 0 > /dev/null` | attached {:.2} s | {:.1} | {} | {} | {} | SIGINT: exit {} |",
                secs(h.attached),
                h.phase.cpu_percent,
                mb(h.phase.rss_kb),
                mb(h.phase.hwm_kb),
                per(h.phase.rss_kb),
                h.exit.map_or("killed".into(), |c| c.to_string())
            );
            Ok(())
        })();
        stop_target(target)?;
        run?;
    }
    Ok(())
}

//! Target-side overhead benchmark: what `tracer attach` costs the program it
//! follows, in its default mode and with `--precise`, next to the same
//! program untraced. Prints the Markdown tables of BENCHMARKS.md.
//!
//! Workloads (Go programs under tests/go, built per Go version):
//! - `pingpong` micro-benchmarks (the target counts its own ops/s): channel
//!   ping-pong, spawn churn, and both mixed: the worst cases, nothing but
//!   goroutine operations;
//! - `httpsvc`: an HTTP service on loopback (traced) and a closed-loop load
//!   generator with 16 keep-alive clients (another process, untraced):
//!   requests/s and client-side p99 latency.
//!
//! Every repetition runs every workload, Go version and setting once, one
//! after the other (the settings' order rotates from one repetition to the
//! next), so slow phases of a noisy machine spread over all of them; ratios
//! are taken per repetition (traced run / the untraced run next to it).
//!
//! The tracer starts after the target's warm-up (pingpong: during its start
//! delay; httpsvc: under load, after the load generator's warm-up) and the
//! measured window starts once its first JSON document is out (`--interval
//! 1s`: it is attached and has read the goroutine list), so the whole window
//! is traced. Its CPU time comes from /proc/PID/stat over the window; its
//! mode (probe groups attached, and what the overhead budget detached) from
//! its last document and its stderr lines.
//!
//! Usage: overhead TRACER_BIN GOBIN_DIR REPETITIONS SECONDS GO_VERSION...
//! (targets: GOBIN_DIR/go<VERSION>/pingpong and …/httpsvc; normally run by
//! `cargo xtask bench`). `OVERHEAD_WORKLOADS=timers,spawn` runs only those
//! workloads. Needs root.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{BufRead, BufReader, Lines, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// How the target runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Setting {
    Untraced,
    Default,
    Precise,
}

impl Setting {
    const ALL: [Setting; 3] = [Setting::Untraced, Setting::Default, Setting::Precise];

    fn label(self) -> &'static str {
        match self {
            Setting::Untraced => "untraced",
            Setting::Default => "default",
            Setting::Precise => "`--precise`",
        }
    }

    /// Extra `tracer attach` flags; `None`: no tracer.
    fn tracer_flags(self) -> Option<&'static [&'static str]> {
        match self {
            Setting::Untraced => None,
            Setting::Default => Some(&[]),
            Setting::Precise => Some(&["--precise"]),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// `pingpong -mode <mode>`.
    Micro(&'static str),
    /// `httpsvc` server + load generator.
    Http,
}

struct Workload {
    name: &'static str,
    what: &'static str,
    kind: Kind,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "pingpong",
        what: "2 goroutines bounce a value over unbuffered channels (park+wake per op)",
        kind: Kind::Micro("pingpong"),
    },
    Workload {
        name: "spawn",
        what: "goroutines that exit at once (spawn+exit per op): spawn churn",
        kind: Kind::Micro("spawn"),
    },
    Workload {
        name: "mixed",
        what: "each op spawns a goroutine that does one ping-pong round trip with the spawner and exits",
        kind: Kind::Micro("mixed"),
    },
    Workload {
        name: "timers",
        what: "context.WithTimeout + time.AfterFunc + Stop + cancel per op, no goroutine (6 timer/context probe hits per op)",
        kind: Kind::Micro("timers"),
    },
    Workload {
        name: "http",
        what: "HTTP service, 16 keep-alive clients",
        kind: Kind::Http,
    },
];

/// pingpong sleeps this long after READY (the tracer attaches meanwhile).
const START_DELAY: Duration = Duration::from_millis(2500);
/// httpsvc's load generator runs this long before it prints WARM.
const HTTP_WARMUP: &str = "2s";
/// Load-generator clients (one request in flight each).
const HTTP_CLIENTS: &str = "16";
/// How long an untraced HTTP run stays under load between WARM and the
/// window (about what attaching takes in a traced run).
const UNTRACED_SETTLE: Duration = Duration::from_secs(1);
/// The longest the tracer may take to print its first document.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// One run of one workload under one setting.
struct Sample {
    /// ops/s or requests/s over the window.
    throughput: f64,
    /// ops or requests in the window.
    units: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    /// The traced process's CPU over the window, % of one core (httpsvc).
    target_cpu_pct: Option<f64>,
    tracer: Option<TracerReport>,
}

/// What one tracer session did during the window.
struct TracerReport {
    /// % of one core.
    cpu_pct: f64,
    /// Probe hits between its first document and its last.
    window_hits: u64,
    /// `mode.name` and `mode.attached` of the last document.
    name: String,
    attached: Vec<String>,
    /// Budget changes (stderr lines), seconds from the window's start
    /// (negative: before it).
    detached_at_s: Vec<(f64, String)>,
    reattached: usize,
    /// `mode.budget.estimated_overhead_pct` of the last document.
    estimated_pct: f64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: overhead TRACER_BIN GOBIN_DIR REPETITIONS SECONDS GO_VERSION...";
    let [_, tracer, gobin, reps, seconds, versions @ ..] = &args[..] else {
        bail!("{usage}");
    };
    if versions.is_empty() {
        bail!("{usage}");
    }
    let reps: usize = reps.parse().context("REPETITIONS")?;
    let seconds: u64 = seconds.parse().context("SECONDS")?;
    let tracer = Path::new(tracer);
    let bins: Vec<(String, PathBuf)> = versions
        .iter()
        .map(|v| (v.clone(), Path::new(gobin).join(format!("go{v}"))))
        .collect();
    for (_, dir) in &bins {
        for name in ["pingpong", "httpsvc"] {
            let bin = dir.join(name);
            if !bin.is_file() {
                bail!(
                    "{} is missing: build it with `cargo xtask go-targets`",
                    bin.display()
                );
            }
        }
    }

    let selected = std::env::var("OVERHEAD_WORKLOADS").ok();
    let selected: Vec<&str> = selected.as_deref().map_or_else(
        || WORKLOADS.iter().map(|w| w.name).collect(),
        |s| s.split(',').collect(),
    );
    if let Some(unknown) = selected
        .iter()
        .find(|name| !WORKLOADS.iter().any(|w| w.name == **name))
    {
        bail!("OVERHEAD_WORKLOADS: no workload {unknown:?}");
    }
    let started = Instant::now();
    let mut results: BTreeMap<(usize, usize, Setting), Vec<Sample>> = BTreeMap::new();
    for rep in 0..reps {
        for (w, workload) in WORKLOADS.iter().enumerate() {
            if !selected.contains(&workload.name) {
                continue;
            }
            for (v, (version, dir)) in bins.iter().enumerate() {
                for i in 0..Setting::ALL.len() {
                    let setting = Setting::ALL[(i + rep) % Setting::ALL.len()];
                    eprintln!(
                        "overhead: [{:>4.0}s] rep {}/{reps} {} go{version} {}",
                        started.elapsed().as_secs_f64(),
                        rep + 1,
                        workload.name,
                        setting.label()
                    );
                    let sample = match workload.kind {
                        Kind::Micro(mode) => {
                            run_micro(&dir.join("pingpong"), mode, seconds, tracer, setting)
                        }
                        Kind::Http => run_http(&dir.join("httpsvc"), seconds, tracer, setting),
                    }
                    .with_context(|| {
                        format!("{} on go{version}, {}", workload.name, setting.label())
                    })?;
                    results.entry((w, v, setting)).or_default().push(sample);
                }
            }
        }
    }

    let results = Results {
        runs: results,
        versions,
    };
    print!("{}", results.micro_table());
    println!();
    print!("{}", results.http_table());
    println!();
    print!("{}", results.goals_table());
    println!(
        "\n{reps} repetitions × {} workloads × {} Go versions × 3 settings of {seconds} s windows: {:.0} s in all.",
        selected.len(),
        versions.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One pingpong run: the target sleeps `START_DELAY` after READY (the tracer
/// attaches meanwhile), then works for `seconds` and prints its ops/s.
fn run_micro(
    bin: &Path,
    mode: &str,
    seconds: u64,
    tracer: &Path,
    setting: Setting,
) -> Result<Sample> {
    let mut target = Reaped(
        Command::new(bin)
            .args(["-mode", mode, "-duration", &format!("{seconds}s")])
            .args(["-start-delay", &format!("{}ms", START_DELAY.as_millis())])
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?,
    );
    let mut lines = stdout_lines(&mut target.0)?;
    let pid = ready_pid(&next_line(&mut lines, "READY")?)?;
    let window_start = Instant::now() + START_DELAY;
    let session = match setting.tracer_flags() {
        Some(flags) => {
            let mut session = TracerSession::start(tracer, pid, flags)?;
            if session.first_doc_at > window_start {
                bail!(
                    "the tracer took {:.2}s to attach, longer than the target's start delay",
                    (session.first_doc_at + START_DELAY - window_start).as_secs_f64()
                );
            }
            std::thread::sleep(window_start - Instant::now());
            session.begin_window()?;
            Some(session)
        }
        None => None,
    };
    let result = next_line(&mut lines, "RESULT")?;
    let window_end = session
        .as_ref()
        .map(TracerSession::window_end)
        .transpose()?;
    let status = target.0.wait()?;
    if !status.success() {
        bail!("{} exited with {status}", bin.display());
    }
    let tracer = match (session, window_end) {
        (Some(s), Some(end)) => Some(s.finish(end, false)?),
        _ => None,
    };
    let field = |name: &str| -> Result<f64> {
        let prefix = format!("{name}=");
        let v = result
            .split_whitespace()
            .find_map(|f| f.strip_prefix(prefix.as_str()))
            .with_context(|| format!("no {name} in {result:?}"))?;
        Ok(v.parse()?)
    };
    Ok(Sample {
        throughput: field("ops_per_sec")?,
        units: field("ops")?,
        p50_us: None,
        p99_us: None,
        target_cpu_pct: None,
        tracer,
    })
}

/// One httpsvc run: the server (traced) and the load generator (untraced)
/// as two processes; the tracer attaches after the load generator's warm-up,
/// under load, and the window starts once it is attached.
fn run_http(bin: &Path, seconds: u64, tracer: &Path, setting: Setting) -> Result<Sample> {
    let mut server = Reaped(
        Command::new(bin)
            .args(["-mode", "server", "-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?,
    );
    let mut server_lines = stdout_lines(&mut server.0)?;
    let ready = next_line(&mut server_lines, "READY")?;
    let pid = ready_pid(&ready)?;
    let addr = ready
        .split_whitespace()
        .find_map(|f| f.strip_prefix("addr="))
        .context("no addr= in the READY line")?
        .to_string();
    let mut load = Reaped(
        Command::new(bin)
            .args(["-mode", "load", "-addr", &addr, "-clients", HTTP_CLIENTS])
            .args(["-warmup", HTTP_WARMUP, "-duration", &format!("{seconds}s")])
            .arg("-wait-start")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the load generator")?,
    );
    let mut load_lines = stdout_lines(&mut load.0)?;
    next_line(&mut load_lines, "WARM")?;
    let mut session = match setting.tracer_flags() {
        Some(flags) => Some(TracerSession::start(tracer, pid, flags)?),
        None => {
            std::thread::sleep(UNTRACED_SETTLE);
            None
        }
    };
    let cpu_before = cpu_ticks(pid)?;
    let window_start = Instant::now();
    if let Some(s) = &mut session {
        s.begin_window()?;
    }
    let mut go = load.0.stdin.take().context("load generator stdin")?;
    writeln!(go, "GO").context("cannot start the load generator's window")?;
    drop(go);
    let result = next_line(&mut load_lines, "REQS")?;
    let window_s = window_start.elapsed().as_secs_f64();
    let target_cpu_pct = ticks_to_s(cpu_ticks(pid)? - cpu_before) / window_s * 100.0;
    let window_end = session
        .as_ref()
        .map(TracerSession::window_end)
        .transpose()?;
    let tracer = match (session, window_end) {
        (Some(s), Some(end)) => Some(s.finish(end, true)?),
        _ => None,
    };
    terminate(&mut server.0)?;
    load.0.wait()?;
    // "REQS n RPS x P50_US a P99_US b ERRORS e"
    let fields: Vec<&str> = result.split_whitespace().collect();
    let field = |name: &str| -> Result<f64> {
        let i = fields
            .iter()
            .position(|f| *f == name)
            .with_context(|| format!("no {name} in {result:?}"))?;
        Ok(fields.get(i + 1).context("truncated result")?.parse()?)
    };
    if field("ERRORS")? > 0.0 {
        eprintln!("overhead: warning: {result}");
    }
    Ok(Sample {
        throughput: field("RPS")?,
        units: field("REQS")?,
        p50_us: Some(field("P50_US")?),
        p99_us: Some(field("P99_US")?),
        target_cpu_pct: Some(target_cpu_pct),
        tracer,
    })
}

/// A running `tracer attach --json --interval 1s`, from its first document on.
struct TracerSession {
    child: Reaped,
    docs: mpsc::Receiver<String>,
    first_doc: Value,
    first_doc_at: Instant,
    /// When the target's measured window started, and the tracer's CPU
    /// counter then.
    window_start: Option<(Instant, u64)>,
    /// stderr lines with when they came.
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
}

/// The tracer's CPU counter when the target's window ended.
struct WindowEnd {
    at: Instant,
    cpu: u64,
}

impl TracerSession {
    fn start(tracer: &Path, pid: u32, flags: &[&str]) -> Result<Self> {
        let mut child = Reaped(
            Command::new(tracer)
                .args([
                    "attach",
                    "--pid",
                    &pid.to_string(),
                    "--json",
                    "--interval",
                    "1s",
                ])
                .args(flags)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot start {}", tracer.display()))?,
        );
        // Both pipes are read while it runs: a full pipe would stall it.
        let stdout = child.0.stdout.take().context("tracer stdout")?;
        let (tx, docs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr_lines);
        let stderr = child.0.stderr.take().context("tracer stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push((Instant::now(), line));
                }
            }
        });
        let first = match docs.recv_timeout(ATTACH_TIMEOUT) {
            Ok(doc) => doc,
            Err(_) => {
                let said = stderr_lines
                    .lock()
                    .map(|l| {
                        l.iter()
                            .map(|(_, s)| s.as_str())
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default();
                bail!("the tracer printed no document within {ATTACH_TIMEOUT:?}; it said:\n{said}");
            }
        };
        Ok(TracerSession {
            first_doc: serde_json::from_str(&first).context("the tracer's first document")?,
            first_doc_at: Instant::now(),
            child,
            docs,
            window_start: None,
            stderr: stderr_lines,
        })
    }

    /// Marks the start of the target's measured window (now).
    fn begin_window(&mut self) -> Result<()> {
        self.window_start = Some((Instant::now(), cpu_ticks(self.child.0.id())?));
        Ok(())
    }

    fn window_end(&self) -> Result<WindowEnd> {
        Ok(WindowEnd {
            at: Instant::now(),
            cpu: cpu_ticks(self.child.0.id())?,
        })
    }

    /// Waits for the tracer to end (SIGTERM first with `terminate`; else it
    /// ends with its target) and reads its last document.
    fn finish(mut self, end: WindowEnd, terminate_it: bool) -> Result<TracerReport> {
        let (window_start, cpu_at_start) = self.window_start.context("no window was started")?;
        if terminate_it {
            terminate(&mut self.child.0)?;
        }
        let status = wait_at_most(&mut self.child.0, Duration::from_secs(20))?;
        if !status.success() {
            bail!("the tracer exited with {status}");
        }
        let last = self
            .docs
            .iter()
            .last()
            .context("the tracer printed no final document")?;
        let last: Value = serde_json::from_str(&last).context("the tracer's final document")?;
        let hits = |doc: &Value| -> u64 {
            [
                "spawn_hits",
                "park_hits",
                "ready_hits",
                "exit_hits",
                "creator_stack_hits",
                "timer_hits",
                "timer_fire_hits",
                "timer_fire_skipped",
                "context_hits",
            ]
            .iter()
            .filter_map(|k| doc["probes"][k].as_u64())
            .sum()
        };
        let window_s = (end.at - window_start).as_secs_f64();
        let mode = &last["mode"];
        let stderr = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        let since_start = |at: Instant| -> f64 {
            if at >= window_start {
                (at - window_start).as_secs_f64()
            } else {
                -(window_start - at).as_secs_f64()
            }
        };
        Ok(TracerReport {
            cpu_pct: ticks_to_s(end.cpu - cpu_at_start) / window_s * 100.0,
            window_hits: hits(&last).saturating_sub(hits(&self.first_doc)),
            name: mode["name"].as_str().unwrap_or("?").to_string(),
            attached: mode["attached"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str())
                        .map(group_name)
                        .collect()
                })
                .unwrap_or_default(),
            detached_at_s: stderr
                .iter()
                .filter_map(|(at, l)| {
                    let reason = l.strip_prefix("tracer: detached ")?;
                    // "tracer: detached from pid …" is the session's end.
                    (!reason.starts_with("from pid"))
                        .then(|| (since_start(*at), reason.to_string()))
                })
                .collect(),
            reattached: stderr
                .iter()
                .filter(|(_, l)| l.starts_with("tracer: re-attached "))
                .count(),
            estimated_pct: mode["budget"]["estimated_overhead_pct"]
                .as_f64()
                .unwrap_or(0.0),
        })
    }
}

/// A probe group as the tracer's messages name it ("lifecycle" in the JSON
/// is "spawn/exit").
fn group_name(json_name: &str) -> String {
    match json_name {
        "lifecycle" => "spawn/exit".into(),
        "scheduling" => "park/wake".into(),
        "creation_stacks" => "creation stacks".into(),
        other => other.into(),
    }
}

/// A child process that is killed and reaped if it is dropped while still
/// running (a failed run leaves nothing behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn stdout_lines(child: &mut Child) -> Result<Lines<BufReader<ChildStdout>>> {
    Ok(BufReader::new(child.stdout.take().context("stdout")?).lines())
}

/// The next line that starts with `prefix` (the ones before are skipped).
fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str) -> Result<String> {
    for line in lines {
        let line = line?;
        if line.starts_with(prefix) {
            return Ok(line);
        }
    }
    bail!("the target ended without printing {prefix}")
}

fn ready_pid(line: &str) -> Result<u32> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("pid="))
        .with_context(|| format!("no pid= in {line:?}"))?
        .parse()
        .context("bad pid")
}

/// SIGTERM, then wait for the exit.
fn terminate(child: &mut Child) -> Result<()> {
    if child.try_wait()?.is_none() {
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    wait_at_most(child, Duration::from_secs(20))?;
    Ok(())
}

fn wait_at_most(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            child.kill()?;
            bail!("pid {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// utime + stime of a process, in clock ticks (/proc/PID/stat).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name may contain spaces: fields count from after its ')'.
    let rest = &stat[stat.rfind(')').context("bad /proc/PID/stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn ticks_to_s(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// Median and range of some values.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// "0.98 (0.95–1.02)"
    fn ratio(&self) -> String {
        format!("**{:.3}** ({:.3}–{:.3})", self.median, self.min, self.max)
    }
}

struct Results<'a> {
    /// (workload, Go version, setting) → one sample per repetition.
    runs: BTreeMap<(usize, usize, Setting), Vec<Sample>>,
    versions: &'a [String],
}

impl Results<'_> {
    fn samples(&self, w: usize, v: usize, s: Setting) -> &[Sample] {
        self.runs.get(&(w, v, s)).map_or(&[], Vec::as_slice)
    }

    /// Per-repetition `value(traced) / value(untraced)`.
    fn ratios(
        &self,
        w: usize,
        v: usize,
        s: Setting,
        value: fn(&Sample) -> Option<f64>,
    ) -> Option<Spread> {
        let base = self.samples(w, v, Setting::Untraced);
        Spread::of(
            self.samples(w, v, s)
                .iter()
                .zip(base)
                .filter_map(|(t, u)| Some(value(t)? / value(u)?)),
        )
    }

    fn spread(
        &self,
        w: usize,
        v: usize,
        s: Setting,
        value: fn(&Sample) -> Option<f64>,
    ) -> Option<Spread> {
        Spread::of(self.samples(w, v, s).iter().filter_map(value))
    }

    /// Probe hits per op or request during the window (median).
    fn hits_per_unit(&self, w: usize, v: usize, s: Setting) -> Option<f64> {
        self.spread(w, v, s, |x| {
            Some(x.tracer.as_ref()?.window_hits as f64 / x.units)
        })
        .map(|s| s.median)
    }

    /// "1.2% (0.8–1.5)" of one core.
    fn tracer_cpu(&self, w: usize, v: usize, s: Setting) -> String {
        self.spread(w, v, s, |x| Some(x.tracer.as_ref()?.cpu_pct))
            .map_or("—".into(), |c| {
                format!("{:.1}% ({:.1}–{:.1})", c.median, c.min, c.max)
            })
    }

    /// What the tracer ran with, over the repetitions: its mode, the probe
    /// groups attached at the end, and what the budget detached when.
    fn mode(&self, w: usize, v: usize, s: Setting) -> String {
        let samples: Vec<&TracerReport> = self
            .samples(w, v, s)
            .iter()
            .filter_map(|x| x.tracer.as_ref())
            .collect();
        let Some(first) = samples.first() else {
            return "—".into();
        };
        let mut out = format!("{}: ", first.name);
        let mut attached: Vec<String> = samples.iter().map(|t| t.attached.join("+")).collect();
        attached.sort();
        attached.dedup();
        let attached: Vec<String> = attached
            .into_iter()
            .map(|a| {
                if a.is_empty() {
                    "no probes".into()
                } else {
                    format!("{a} probes")
                }
            })
            .collect();
        let _ = write!(out, "{} at the end", attached.join(" or "));
        let detaching: Vec<&&TracerReport> = samples
            .iter()
            .filter(|t| !t.detached_at_s.is_empty())
            .collect();
        if detaching.is_empty() {
            let est = Spread::of(samples.iter().map(|t| t.estimated_pct));
            if let Some(e) = est {
                let _ = write!(out, ", budget's estimate {:.2}%", e.median);
            }
            return out;
        }
        let mut groups: Vec<&str> = detaching
            .iter()
            .flat_map(|t| t.detached_at_s.iter())
            .filter_map(|(_, reason)| reason.split(" probes:").next())
            .collect();
        groups.sort();
        groups.dedup();
        let at = Spread::of(detaching.iter().map(|t| t.detached_at_s[0].0)).expect("not empty");
        let _ = write!(
            out,
            "; budget detached {} in {}/{} runs, {:+.2} s ({:+.2} to {:+.2}) from the window's start",
            groups.join(", "),
            detaching.len(),
            samples.len(),
            at.median,
            at.min,
            at.max
        );
        let reattached: usize = samples.iter().map(|t| t.reattached).sum();
        if reattached > 0 {
            let _ = write!(out, ", re-attached {reattached}×");
        }
        out
    }

    fn runs_column(&self, w: usize, v: usize, s: Setting, scale: f64, unit: &str) -> String {
        self.samples(w, v, s)
            .iter()
            .map(|x| format!("{:.0}{unit}", x.throughput / scale))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn micro_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "| workload | Go | setting | ops/s (median) | traced/untraced: median (min–max) | probe hits per op | added µs per hit | tracer CPU (% of a core) | tracer mode | runs (ops/s) |");
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
        for (w, workload) in WORKLOADS.iter().enumerate() {
            if !matches!(workload.kind, Kind::Micro(_)) {
                continue;
            }
            for (v, version) in self.versions.iter().enumerate() {
                let base = self.spread(w, v, Setting::Untraced, |x| Some(x.throughput));
                for s in Setting::ALL {
                    let Some(tp) = self.spread(w, v, s, |x| Some(x.throughput)) else {
                        continue;
                    };
                    let (ratio, hits, us) = if s == Setting::Untraced {
                        ("—".to_string(), "—".to_string(), "—".to_string())
                    } else {
                        let ratio = self
                            .ratios(w, v, s, |x| Some(x.throughput))
                            .map_or("—".into(), |r| r.ratio());
                        let h = self.hits_per_unit(w, v, s).unwrap_or(0.0);
                        // Wall time an op gained, spread over its probe hits;
                        // meaningless when (nearly) nothing was probed.
                        let us = match &base {
                            Some(b) if h >= 0.1 => {
                                format!("{:.2}", (1.0 / tp.median - 1.0 / b.median) * 1e6 / h)
                            }
                            _ => "—".into(),
                        };
                        (ratio, format!("{h:.2}"), us)
                    };
                    let what = if v == 0 && s == Setting::Untraced {
                        format!("{}: {}", workload.name, workload.what)
                    } else {
                        workload.name.to_string()
                    };
                    let _ = writeln!(
                        t,
                        "| {what} | {version} | {} | {} | {ratio} | {hits} | {us} | {} | {} | {} |",
                        s.label(),
                        thousands(tp.median),
                        self.tracer_cpu(w, v, s),
                        self.mode(w, v, s),
                        self.runs_column(w, v, s, 1e3, "k"),
                    );
                }
            }
        }
        t
    }

    fn http_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "| Go | setting | req/s (median) | req/s traced/untraced: median (min–max) | p50 µs | p99 µs | p99 traced/untraced: median (min–max) | probe hits per request | server CPU (% of a core) | tracer CPU (% of a core) | tracer mode | runs (req/s; p99 µs) |");
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (w, workload) in WORKLOADS.iter().enumerate() {
            if !matches!(workload.kind, Kind::Http) {
                continue;
            }
            for (v, version) in self.versions.iter().enumerate() {
                for s in Setting::ALL {
                    let Some(tp) = self.spread(w, v, s, |x| Some(x.throughput)) else {
                        continue;
                    };
                    let med = |f: fn(&Sample) -> Option<f64>| {
                        self.spread(w, v, s, f)
                            .map_or("—".into(), |x| format!("{:.0}", x.median))
                    };
                    let (ratio, p99_ratio, hits) = if s == Setting::Untraced {
                        ("—".into(), "—".into(), "—".into())
                    } else {
                        (
                            self.ratios(w, v, s, |x| Some(x.throughput))
                                .map_or("—".into(), |r| r.ratio()),
                            self.ratios(w, v, s, |x| x.p99_us)
                                .map_or("—".into(), |r| r.ratio()),
                            format!("{:.2}", self.hits_per_unit(w, v, s).unwrap_or(0.0)),
                        )
                    };
                    let p99s = self
                        .samples(w, v, s)
                        .iter()
                        .filter_map(|x| x.p99_us)
                        .map(|p| format!("{p:.0}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let _ = writeln!(
                        t,
                        "| {version} | {} | {} | {ratio} | {} | {} | {p99_ratio} | {hits} | {} | {} | {} | {}; {p99s} |",
                        s.label(),
                        thousands(tp.median),
                        med(|x| x.p50_us),
                        med(|x| x.p99_us),
                        self.spread(w, v, s, |x| x.target_cpu_pct)
                            .map_or("—".into(), |c| format!("{:.0}%", c.median)),
                        self.tracer_cpu(w, v, s),
                        self.mode(w, v, s),
                        self.runs_column(w, v, s, 1.0, ""),
                    );
                }
            }
        }
        t
    }

    /// The overhead goals of the default mode and `--precise`, checked on
    /// the medians of the per-repetition ratios.
    fn goals_table(&self) -> String {
        let find = |name: &str| WORKLOADS.iter().position(|w| w.name == name);
        // (goal, workload, setting, value, limit, higher is better)
        type Pick = fn(&Sample) -> Option<f64>;
        let goals: [(&str, &str, Setting, Pick, f64, bool); 4] = [
            (
                "default: HTTP req/s loss ≤ 1% (ratio ≥ 0.99)",
                "http",
                Setting::Default,
                |x| Some(x.throughput),
                0.99,
                true,
            ),
            (
                "default: HTTP p99 increase ≤ 1% (ratio ≤ 1.01)",
                "http",
                Setting::Default,
                |x| x.p99_us,
                1.01,
                false,
            ),
            (
                "default: spawn churn slowdown ≤ 1.5× (ratio ≥ 0.667)",
                "spawn",
                Setting::Default,
                |x| Some(x.throughput),
                1.0 / 1.5,
                true,
            ),
            (
                "`--precise`: ping-pong slowdown ≤ 3× (ratio ≥ 0.333)",
                "pingpong",
                Setting::Precise,
                |x| Some(x.throughput),
                1.0 / 3.0,
                true,
            ),
        ];
        let mut t = String::new();
        let _ = write!(t, "| goal |");
        for v in self.versions {
            let _ = write!(t, " Go {v}: median ratio (min–max) |");
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "|---|{}", "---|".repeat(self.versions.len()));
        for (goal, name, s, pick, limit, higher) in goals {
            let Some(w) = find(name) else { continue };
            let _ = write!(t, "| {goal} |");
            for v in 0..self.versions.len() {
                let cell = match self.ratios(w, v, s, pick) {
                    Some(r) => {
                        let met = if higher {
                            r.median >= limit
                        } else {
                            r.median <= limit
                        };
                        format!("{} {}", r.ratio(), if met { "met" } else { "**not met**" })
                    }
                    None => "—".into(),
                };
                let _ = write!(t, " {cell} |");
            }
            let _ = writeln!(t);
        }
        t
    }
}

/// `1,234,567` for a rate.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

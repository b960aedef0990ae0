//! Target-side overhead benchmark: the Go `pingpong` target measures its own
//! throughput (ops/s) for each workload, alone and with `tracer attach`
//! following it, alternating in one run, several repetitions. Prints a
//! Markdown table for BENCHMARKS.md.
//!
//! Usage: overhead TRACER_BIN PINGPONG_BIN [REPETITIONS] [SECONDS]
//! (normally through `cargo xtask bench`). Needs root.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};

/// (workload, description, extra `tracer attach` flags)
const MODES: &[(&str, &str, &[&str])] = &[
    (
        "pingpong",
        "2 goroutines bounce a value over unbuffered channels (park+wake per op)",
        &[],
    ),
    (
        "spawn",
        "spawn goroutines that exit at once (spawn+exit per op)",
        &[],
    ),
    (
        "mixed",
        "each op spawns a goroutine that does one ping-pong round trip and exits",
        &[],
    ),
    (
        "spawn",
        "spawn, traced with --creation-stacks (+1 trap and a stack walk per spawn)",
        &["--creation-stacks"],
    ),
];

/// One run: the target's own ops/s, and the probe hits the tracer counted.
struct RunResult {
    ops_per_sec: f64,
    ops: f64,
    probe_hits: Option<u64>,
}

/// Runs the target once; with a tracer attached during its start delay when
/// `tracer` is given.
fn run_once(
    pingpong: &str,
    tracer: Option<(&str, &[&str])>,
    mode: &str,
    seconds: u64,
) -> Result<RunResult> {
    let mut target = Command::new(pingpong)
        .args([
            "-mode",
            mode,
            "-duration",
            &format!("{seconds}s"),
            "-start-delay",
            "2s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the pingpong target")?;
    let mut lines = BufReader::new(target.stdout.take().context("stdout")?).lines();
    let ready = lines.next().context("target printed nothing")??;
    let pid = ready
        .strip_prefix("READY pid=")
        .context("no READY line")?
        .trim()
        .to_string();
    let mut tracer_child = None;
    if let Some((tracer, extra)) = tracer {
        let mut child = Command::new(tracer)
            .args(["attach", "--pid", &pid, "--json", "--interval", "1h"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start the tracer")?;
        let mut err = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let first = err.next().context("tracer printed nothing")??;
        if !first.contains("attached") {
            bail!("tracer did not attach: {first}");
        }
        std::thread::spawn(move || for _ in err.by_ref() {});
        // Read stdout while it runs: the final document can exceed a pipe
        // buffer, and a blocked writer would never exit.
        let mut stdout = child.stdout.take().context("stdout")?;
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            stdout.read_to_string(&mut out).map(|_| out)
        });
        tracer_child = Some((child, reader));
    }
    let result = lines
        .find_map(|l| l.ok().filter(|l| l.starts_with("RESULT")))
        .context("no RESULT line")?;
    target.wait()?;
    let mut probe_hits = None;
    if let Some((mut child, reader)) = tracer_child {
        let status = child.wait_timeout_or_kill()?;
        if !status {
            bail!("tracer did not exit cleanly after the target ended");
        }
        let out = reader
            .join()
            .map_err(|_| anyhow::anyhow!("stdout reader panicked"))??;
        let last: serde_json::Value =
            serde_json::from_str(out.lines().last().context("no final document")?)?;
        let p = &last["probes"];
        probe_hits = Some(
            [
                "spawn_hits",
                "park_hits",
                "ready_hits",
                "exit_hits",
                "creator_stack_hits",
            ]
            .iter()
            .filter_map(|k| p[k].as_u64())
            .sum(),
        );
    }
    let field = |name: &str| -> Result<f64> {
        let prefix = format!("{name}=");
        let v = result
            .split_whitespace()
            .find_map(|f| f.strip_prefix(prefix.as_str()))
            .context("bad RESULT line")?;
        Ok(v.parse()?)
    };
    Ok(RunResult {
        ops_per_sec: field("ops_per_sec")?,
        ops: field("ops")?,
        probe_hits,
    })
}

trait WaitTimeout {
    fn wait_timeout_or_kill(&mut self) -> Result<bool>;
}

impl WaitTimeout for std::process::Child {
    /// The tracer exits by itself when the target does.
    fn wait_timeout_or_kill(&mut self) -> Result<bool> {
        for _ in 0..200 {
            if let Some(status) = self.try_wait()? {
                return Ok(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()?;
        Ok(false)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(tracer), Some(pingpong)) = (args.get(1), args.get(2)) else {
        bail!("usage: overhead TRACER_BIN PINGPONG_BIN [REPETITIONS] [SECONDS]");
    };
    let reps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let seconds: u64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(3);
    println!(
        "| workload | untraced ops/s (median of {reps}) | traced ops/s (median of {reps}) | traced/untraced | probe hits per op | added µs per probe hit | runs (untraced / traced) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (mode, what, extra) in MODES {
        let (mut alone, mut traced, mut hits_per_op) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            alone.push(run_once(pingpong, None, mode, seconds)?.ops_per_sec);
            let run = run_once(pingpong, Some((tracer.as_str(), extra)), mode, seconds)?;
            traced.push(run.ops_per_sec);
            // Hits during the start delay and teardown are negligible next to
            // the timed work.
            hits_per_op.push(run.probe_hits.unwrap_or(0) as f64 / run.ops);
        }
        let runs = format!(
            "{} / {}",
            alone
                .iter()
                .map(|x| format!("{:.0}k", x / 1e3))
                .collect::<Vec<_>>()
                .join(" "),
            traced
                .iter()
                .map(|x| format!("{:.0}k", x / 1e3))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let (a, t, h) = (
            median(&mut alone),
            median(&mut traced),
            median(&mut hits_per_op),
        );
        // Wall time each op gained, spread over the probe hits of one op.
        let us_per_hit = (1.0 / t - 1.0 / a) * 1e6 / h;
        println!(
            "| {mode}: {what} | {a:.0} | {t:.0} | {:.3} | {h:.2} | {us_per_hit:.2} | {runs} |",
            t / a
        );
    }
    Ok(())
}

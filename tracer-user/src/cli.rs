//! Command-line interface definitions (clap).

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::suspects::Rules;

/// Follow every goroutine of a running Go program with eBPF uprobes: no
/// restart, no code change, nothing injected into the target.
#[derive(Debug, Parser)]
#[command(
    name = "tracer",
    version,
    propagate_version = true,
    after_help = "Examples:
  sudo tracer attach --pid 1234
  sudo tracer attach --pid 1234 --json --interval 2s --duration 1m | jq .suspects
  tracer inspect ./my-service
  sudo tracer record --pid 1234 -o session.trc --duration 10m
  tracer replay session.trc
  tracer report session.trc --fail-on-suspects
  tracer export session.trc --pprof goroutines.pb.gz --perfetto timeline.json

Targets: Go 1.21-1.27 amd64 executables with symbols and DWARF (not stripped).
Exit status: 0 after a clean detach (q, Ctrl-C, SIGTERM, --duration, target exit); 1 on any error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to a running Go process and follow its goroutines until Ctrl-C,
    /// SIGTERM, --duration, or the target exiting. Needs root.
    ///
    /// Every goroutine is followed: those created before attach are read
    /// from the target's memory, the others from their spawn on: creation
    /// site (file:line of the `go` statement), parent, state, Go's own wait
    /// reason and the stack it is blocked at. Leak suspects are judged every
    /// interval (rules and thresholds in the README). On a terminal this
    /// opens the dashboard (q quits); otherwise, or with --no-tui/--json, it
    /// prints a line or JSON document per interval. On exit every probe is
    /// removed and a final summary is printed (the last JSON document carries
    /// "ended"). The JSON fields are documented in the README.
    Attach(AttachArgs),
    /// Show what tracer finds in a Go process or executable: Go version,
    /// runtime offsets, probe addresses and placement. Needs no privileges
    /// for a binary path; reading /proc/PID/exe of another user's process
    /// needs root.
    Inspect(InspectArgs),
    /// Attach like `attach` and record the session to a file, without the
    /// dashboard: one summary line per interval. The file (format in
    /// docs/recording-format.md) carries everything `replay`, `report` and
    /// `export` need, without the binary. Needs root.
    Record(RecordArgs),
    /// Replay a recording: the dashboard over the recorded session, with
    /// play/pause, speed and seeking; or, with --json/--no-tui or without a
    /// terminal, the documents the live session printed.
    Replay(ReplayArgs),
    /// Print the leak suspects of a recording, or of a live process traced
    /// for --duration; exits 2 with --fail-on-suspects when there is one.
    Report(ReportArgs),
    /// Write a recording's goroutines as a pprof goroutine profile or its
    /// timeline as a Perfetto (Chrome JSON) trace.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The file to write (replaced if it exists).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub attach: AttachArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A file written by `tracer record` or `tracer attach --record`.
    pub file: PathBuf,
    /// Print the recorded session's JSON documents, one per interval, as
    /// `tracer attach --json` printed them.
    #[arg(long)]
    pub json: bool,
    /// Print the summary lines instead of opening the dashboard.
    #[arg(long)]
    pub no_tui: bool,
    /// No colors in the dashboard (also when the NO_COLOR variable is set).
    #[arg(long)]
    pub no_color: bool,
    /// Playback speed of the dashboard, times real time.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["file", "pid"]))]
pub struct ReportArgs {
    /// A recording to report on.
    pub file: Option<PathBuf>,
    /// Trace this live process instead (needs root), for --duration.
    #[arg(long, short, requires = "duration")]
    pub pid: Option<u32>,
    /// How long to trace the live process.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print JSON (schema in the README, "tracer report --json").
    #[arg(long)]
    pub json: bool,
    /// Exit with status 2 when a suspect scores at least --min-score.
    #[arg(long)]
    pub fail_on_suspects: bool,
    /// Least score (0-100) of a suspect that fails --fail-on-suspects.
    #[arg(long, default_value_t = 0, value_name = "SCORE")]
    pub min_score: u32,
    /// Rules to judge by: given ones override the recorded rules of FILE.
    #[command(flatten)]
    pub rules: RuleArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("format").required(true).multiple(true).args(["pprof", "perfetto"]))]
pub struct ExportArgs {
    /// A file written by `tracer record`.
    pub file: PathBuf,
    /// Write a goroutine profile (pprof protobuf, gzip) of the goroutines
    /// alive at the end, or at --at: `go tool pprof -http=: FILE`.
    #[arg(long, value_name = "OUT")]
    pub pprof: Option<PathBuf>,
    /// Write the timeline as a Chrome JSON trace (goroutine lifetimes as
    /// slices, parks and wakes as instants, counters): ui.perfetto.dev.
    #[arg(long, value_name = "OUT")]
    pub perfetto: Option<PathBuf>,
    /// For --pprof: the time since attach to take the goroutines at (e.g.
    /// 30s); default: the end of the recording.
    #[arg(long, value_parser = parse_duration)]
    pub at: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Process id of the Go program.
    #[arg(long, short)]
    pub pid: u32,
    /// Print one JSON document per interval (leak suspects, live goroutines,
    /// creation sites, totals) on stdout instead of the dashboard or the
    /// human summary.
    #[arg(long)]
    pub json: bool,
    /// How often to print (e.g. 500ms, 1s, 2m).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C or the target exits.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Also probe park and wake (the runtime's hottest paths) for exact
    /// timelines: every park, wake and who woke whom, with event-precise
    /// wait times. Costs a trap per park and per wake (see BENCHMARKS.md);
    /// the default reads states from the target's memory every interval.
    #[arg(long)]
    pub precise: bool,
    /// Cap on the probes' cost, in percent of the target's own CPU time
    /// (default 1 without --precise, no cap with it). When the target is
    /// busier than the budget allows, the hottest probe group is detached
    /// (park/wake first, then spawn/exit) and tracing goes on from memory
    /// reads; it is re-attached when the rate drops. Always shown.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub max_overhead: Option<f64>,
    /// Also record the creating goroutine's whole stack at every `go`
    /// statement (not just the creation site): one more uprobe hit per
    /// spawn plus a kernel stack walk, see BENCHMARKS.md for the cost.
    #[arg(long)]
    pub creation_stacks: bool,
    /// Do not probe timers and contexts (creation, reset, stop, fire,
    /// Sleep, cancel: one trap each; under the --max-overhead budget).
    #[arg(long)]
    pub no_timers: bool,
    /// Re-read the target's goroutine list this often (e.g. 30s) to add
    /// goroutines and remove exits that lost events hid. Each re-read
    /// costs ~1 µs per goroutine of tracer time and nothing in the target
    /// (see BENCHMARKS.md). Default: only at attach.
    #[arg(long, value_parser = parse_duration)]
    pub snapshot_interval: Option<Duration>,
    /// List at most this many goroutines per JSON document (lowest goids
    /// first); the rest are counted in "goroutines_omitted". Default: all.
    #[arg(long, value_name = "N")]
    pub max_goroutines: Option<usize>,
    /// Track at most this many goroutines at once (each costs the tracer
    /// about 300-450 bytes, see BENCHMARKS.md); beyond, new goroutines are
    /// counted in "untracked" and the dashboard and summaries say so.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    pub max_tracked: usize,
    /// Print the headless summary lines even on a terminal (the dashboard
    /// opens only when stdout is a terminal and --json is not given).
    #[arg(long)]
    pub no_tui: bool,
    /// No colors in the dashboard (also when the NO_COLOR variable is set).
    #[arg(long)]
    pub no_color: bool,
    /// Also record the session to this file (see `tracer record`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Print nothing per interval nor at the end (`report --pid`).
    #[arg(skip)]
    pub quiet: bool,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// Thresholds of the leak-suspect rules (README, "Leak suspects"). Each one
/// given overrides the defaults (live) or the recorded rules (`report FILE`).
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Leak-suspect rules")]
pub struct RuleArgs {
    /// Goroutines waiting on a channel, select or sync primitive for longer
    /// than this are "blocked" suspects [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub blocked_after: Option<Duration>,
    /// Window over which growth is measured: a creation site is "growing"
    /// when its live goroutines rose through the whole window [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    pub growth_window: Option<Duration>,
    /// Least net gain of live goroutines over the window for "growing"
    /// [default: 10].
    #[arg(long, value_name = "N")]
    pub growth_min: Option<u64>,
    /// Groups of at least this many goroutines already blocked at attach
    /// are reported at once as "backlog" [default: 100].
    #[arg(long, value_name = "N")]
    pub backlog_min: Option<u64>,
    /// Largest group of goroutines receiving from one shared channel that
    /// is still taken for an idle worker pool (not a suspect) when it does
    /// not grow [default: 1000].
    #[arg(long, value_name = "N")]
    pub pool_max: Option<u64>,
    /// Never report suspects whose creation site (file:line or function)
    /// contains this text; repeatable.
    #[arg(long, value_name = "TEXT")]
    pub ignore_site: Vec<String>,
}

impl RuleArgs {
    /// The default rules with the thresholds given on the command line.
    pub fn rules(&self) -> Rules {
        self.over(Rules::default())
    }

    /// `base` with the thresholds given on the command line; ignored sites
    /// are added to `base`'s.
    pub fn over(&self, base: Rules) -> Rules {
        let mut ignore_sites = base.ignore_sites;
        ignore_sites.extend(self.ignore_site.iter().cloned());
        Rules {
            blocked_after: self.blocked_after.unwrap_or(base.blocked_after),
            growth_window: self.growth_window.unwrap_or(base.growth_window),
            growth_min: self.growth_min.unwrap_or(base.growth_min),
            backlog_min: self.backlog_min.unwrap_or(base.backlog_min),
            pool_max: self.pool_max.unwrap_or(base.pool_max),
            ignore_sites,
            ..base
        }
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["pid", "binary"]))]
pub struct InspectArgs {
    /// Process id of a running Go program.
    #[arg(long, short)]
    pub pid: Option<u32>,
    /// Path to a Go executable.
    pub binary: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|e| format!("{e} (examples: 1, 0.5, 2%)"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err("must be more than 0 and at most 100".into());
    }
    Ok(v)
}

impl AttachArgs {
    /// `attach --pid PID` with every other setting at its default.
    pub fn defaults(pid: u32) -> Self {
        let pid = pid.to_string();
        match Cli::try_parse_from(["tracer", "attach", "--pid", pid.as_str()]) {
            Ok(Cli {
                command: Command::Attach(args),
            }) => args,
            _ => unreachable!("attach --pid N always parses"),
        }
    }
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('x')
        .parse()
        .map_err(|e| format!("{e} (examples: 0.5, 2, 10x)"))?;
    if !(0.01..=10_000.0).contains(&v) {
        return Err("must be between 0.01 and 10000".into());
    }
    Ok(v)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_and_zero_is_rejected() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn rule_flags_default_to_the_engine_defaults() {
        let Cli {
            command: Command::Attach(args),
        } = Cli::try_parse_from(["tracer", "attach", "--pid", "1"]).unwrap()
        else {
            panic!("attach expected");
        };
        assert_eq!(args.rules.rules(), Rules::default());
    }

    #[test]
    fn rule_flags_given_override_a_recordings_rules() {
        let Cli {
            command: Command::Report(args),
        } = Cli::try_parse_from([
            "tracer",
            "report",
            "s.trc",
            "--blocked-after",
            "30s",
            "--ignore-site",
            "vendor/",
        ])
        .unwrap()
        else {
            panic!("report expected");
        };
        let recorded = Rules {
            growth_min: 50,
            ignore_sites: vec!["main.go:9".into()],
            ..Rules::default()
        };
        assert_eq!(
            args.rules.over(recorded.clone()),
            Rules {
                blocked_after: Duration::from_secs(30),
                ignore_sites: vec!["main.go:9".into(), "vendor/".into()],
                ..recorded
            }
        );
    }

    #[test]
    fn overhead_budgets_are_percentages() {
        assert_eq!(parse_percent("1"), Ok(1.0));
        assert_eq!(parse_percent("0.5%"), Ok(0.5));
        assert!(parse_percent("0").is_err());
        assert!(parse_percent("150").is_err());
        assert!(parse_percent("lots").is_err());
    }

    #[test]
    fn inspect_needs_a_pid_or_a_binary() {
        assert!(Cli::try_parse_from(["tracer", "inspect"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "inspect", "--pid", "1"]).is_ok());
        assert!(Cli::try_parse_from(["tracer", "inspect", "/bin/true"]).is_ok());
    }
}

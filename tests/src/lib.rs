//! Harness for the integration tests: locating the tracer and the Go test
//! targets built by `cargo xtask test`, driving processes, and checking that
//! no probe is left behind.
//!
//! These tests attach real uprobes: they need root. They never skip: a
//! missing prerequisite is a failure that says how to provide it.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Where `cargo xtask test` put everything.
pub struct TestEnv {
    pub tracer: PathBuf,
    pub gobin: PathBuf,
    pub go_versions: Vec<String>,
    pub go_src: PathBuf,
}

fn required_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through `cargo xtask test`, which builds the tracer and the Go targets")
    })
}

pub fn test_env() -> TestEnv {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the BPF integration tests attach uprobes and need root: run `sudo -E cargo xtask test`"
    );
    let env = TestEnv {
        tracer: required_var("TRACER_BIN").into(),
        gobin: required_var("TRACER_GOBIN").into(),
        go_versions: required_var("TRACER_GO_VERSIONS")
            .split(',')
            .map(str::to_owned)
            .collect(),
        go_src: required_var("TRACER_GO_SRC").into(),
    };
    assert!(
        env.tracer.exists(),
        "{} does not exist: run `cargo xtask build`",
        env.tracer.display()
    );
    assert!(!env.go_versions.is_empty());
    env
}

/// The minor version of a Go toolchain: 23 for "1.23.9".
pub fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("bad Go version {version:?}"))
}

impl TestEnv {
    /// A Go test target binary built with Go `version`; `name` may carry a
    /// build suffix (`-stripped`, `-pie`, `-cgo`, see xtask's `GoBuild`).
    pub fn go_target(&self, version: &str, name: &str) -> PathBuf {
        let p = self.gobin.join(format!("go{version}")).join(name);
        assert!(
            p.exists(),
            "{} does not exist: run `cargo xtask go-targets`",
            p.display()
        );
        p
    }

    /// The line of `tests/go/<target>/main.go` carrying `// SITE:<marker>`.
    pub fn site_line(&self, target: &str, marker: &str) -> u32 {
        self.marked_line(target, &format!("// SITE:{marker}"))
    }

    /// The only line of `tests/go/<target>/main.go` containing `needle`.
    pub fn marked_line(&self, target: &str, needle: &str) -> u32 {
        let path = self.go_src.join(target).join("main.go");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines: Vec<u32> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .map(|(i, _)| i as u32 + 1)
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one {needle:?} in {}",
            path.display()
        );
        lines[0]
    }

    pub fn tracer(&self) -> Command {
        let mut cmd = Command::new(&self.tracer);
        cmd.env("RUST_BACKTRACE", "1");
        cmd
    }
}

/// Lines of a child's stream, read on a thread.
pub struct Lines {
    rx: Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    pub fn new(stream: impl Read + Send + 'static) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (
            Self {
                rx,
                seen: Vec::new(),
            },
            handle,
        )
    }

    /// Waits for a line starting with `prefix`; panics with everything seen.
    pub fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line starting with {prefix:?} within {timeout:?}; saw:\n{}",
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "stream closed before a line starting with {prefix:?}; saw:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Everything until the stream closes.
    pub fn rest(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    out.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => return out,
                Err(RecvTimeoutError::Timeout) => panic!("stream still open after {timeout:?}"),
            }
        }
    }
}

/// A started program whose stdout is read line by line; killed on drop.
pub struct Proc {
    pub child: Child,
    pub pid: u32,
    pub stdout: Lines,
    stderr: Option<JoinHandle<String>>,
}

impl Proc {
    pub fn start(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (stdout, _) = Lines::new(child.stdout.take().expect("piped"));
        let mut err = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let pid = child.id();
        Self {
            child,
            pid,
            stdout,
            stderr: Some(stderr),
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid);
    }

    /// Waits for exit; returns the status and the whole stderr.
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pid {} still running after {timeout:?}", self.pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `KEY=VALUE` fields of a line like `READY pid=1 n=3`.
pub fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One goroutine of a `pprof.Lookup("goroutine").WriteTo(w, 2)` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpGoroutine {
    pub goid: u64,
    /// The bracketed state without durations: "chan receive", "select", …
    pub reason: String,
    /// `file:line` under "created by …", when present.
    pub created_at: Option<String>,
    pub created_by_goid: Option<u64>,
    /// The stack, innermost first: (function, `file:line`).
    pub frames: Vec<(String, String)>,
}

/// Parses a debug=2 goroutine dump.
pub fn parse_goroutine_dump(text: &str) -> Vec<DumpGoroutine> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(header) = lines.next() else { continue };
        let Some(rest) = header.strip_prefix("goroutine ") else {
            continue;
        };
        let Some((id, state)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(goid) = id.parse() else { continue };
        // "[chan receive, 2 minutes]:" → "chan receive"
        let reason = state
            .trim_start_matches('[')
            .trim_end_matches(':')
            .trim_end_matches(']');
        let reason = reason.split(',').next().unwrap_or_default().to_string();
        let body: Vec<&str> = lines.collect();
        let mut created_at = None;
        let mut created_by_goid = None;
        let mut frames = Vec::new();
        for pair in body.chunks(2) {
            let [func, loc] = pair else { break };
            if func.starts_with("created by ") {
                break;
            }
            // "main.blockRecv(...)" / "sync.(*Mutex).Lock(0x5f2b80)" → name
            let name = match func.rfind('(') {
                Some(i) if func.ends_with(')') => &func[..i],
                _ => func,
            };
            let loc = loc.trim().split(" +").next().unwrap_or_default();
            frames.push((name.to_string(), loc.to_string()));
        }
        if let Some(i) = body.iter().position(|l| l.starts_with("created by ")) {
            created_by_goid = body[i]
                .rsplit_once(" in goroutine ")
                .and_then(|(_, g)| g.trim().parse().ok());
            created_at = body
                .get(i + 1)
                .map(|l| l.trim().split(" +").next().unwrap_or_default().to_string());
        }
        out.push(DumpGoroutine {
            goid,
            reason,
            created_at,
            created_by_goid,
            frames,
        });
    }
    out
}

/// Output of `tracer inspect --pid N --json`.
pub fn inspect(env: &TestEnv, pid: u32) -> Value {
    let out = env
        .tracer()
        .args(["inspect", "--json", "--pid", &pid.to_string()])
        .output()
        .expect("run tracer inspect");
    assert!(
        out.status.success(),
        "tracer inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

/// Asserts nothing of ours is left in the kernel or in the target:
/// no `goroutine_*` BPF program loaded, no uprobe in tracefs, and (if the
/// target still runs) its code at every probe address is the binary's own
/// (a live uprobe shows as an int3 byte in the target's text).
pub fn assert_no_probes_left(inspected: Option<(&Value, u32)>) {
    let ours: Vec<String> = aya::programs::loaded_programs()
        .filter_map(|p| p.ok())
        .filter_map(|p| p.name_as_str().map(str::to_owned))
        .filter(|n| n.starts_with("goroutine_"))
        .collect();
    assert!(
        ours.is_empty(),
        "BPF programs still loaded after the tracer exited: {ours:?}"
    );

    let events = uprobe_events();
    assert!(
        events.trim().is_empty(),
        "uprobe events left behind:\n{events}"
    );

    if let Some((inspect, pid)) = inspected {
        assert_target_code_untouched(inspect, pid);
    }
}

/// The kernel's `uprobe_events` list (tracefs, mounted if needed). Only
/// uprobes created through tracefs appear there; those created with
/// `perf_event_open` on the `uprobe` PMU (what aya does when the kernel has
/// it) do not, so an empty list alone does not prove there is no uprobe:
/// [`assert_target_code_untouched`] does, for one target.
pub fn uprobe_events() -> String {
    let tracefs = Path::new("/sys/kernel/tracing");
    if !tracefs.join("uprobe_events").exists() {
        let status = Command::new("mount")
            .args(["-t", "tracefs", "nodev"])
            .arg(tracefs)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount tracefs on {}",
            tracefs.display()
        );
    }
    std::fs::read_to_string(tracefs.join("uprobe_events")).expect("read uprobe_events")
}

/// The probe points of `inspect` (`tracer inspect --json` of the running
/// target `pid`) where the target's code differs from its binary: a live
/// uprobe shows as an int3 byte in the target's text. Each is returned as
/// its `inspect` entry (`program`, `function`, `vaddr`, …).
pub fn probes_in_target_code(inspect: &Value, pid: u32) -> Vec<Value> {
    let bias = inspect["load_bias"].as_u64().expect("load_bias");
    let binary = inspect["attach_path"].as_str().expect("attach_path");
    let file = std::fs::File::open(binary).expect("open target binary");
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open target memory");
    let probes = inspect["probes"].as_array().expect("probes");
    assert!(!probes.is_empty());
    probes
        .iter()
        .filter(|p| {
            let (vaddr, off) = (
                p["vaddr"].as_u64().unwrap(),
                p["file_offset"].as_u64().unwrap(),
            );
            let (mut on_disk, mut in_memory) = ([0u8; 8], [0u8; 8]);
            file.read_exact_at(&mut on_disk, off).expect("read binary");
            mem.read_exact_at(&mut in_memory, vaddr + bias)
                .expect("read target memory");
            in_memory != on_disk
        })
        .cloned()
        .collect()
}

/// Asserts the running target's code at every probe address of `inspect`
/// is the binary's own: no uprobe of anyone's sits in it.
pub fn assert_target_code_untouched(inspect: &Value, pid: u32) {
    let patched = probes_in_target_code(inspect, pid);
    assert!(
        patched.is_empty(),
        "target code differs from the binary at {}: probe left behind",
        patched
            .iter()
            .map(|p| format!(
                "{:#x} ({})",
                p["vaddr"].as_u64().unwrap_or_default(),
                p["function"]
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the tracer's `now_ns`,
/// `created_at_ns`, `retry_at_ns`, ….
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `tracer attach --json --interval 200ms --pid PID`, returned once its
/// first document shows the probes are attached and the loop runs.
pub fn attach_json(env: &TestEnv, pid: u32) -> Proc {
    let mut cmd = env.tracer();
    cmd.args([
        "attach",
        "--json",
        "--interval",
        "200ms",
        "--pid",
        &pid.to_string(),
    ]);
    let mut tracer = Proc::start(cmd);
    tracer.stdout.expect("{", Duration::from_secs(30));
    tracer
}

/// Lets the last events reach a JSON tracer, stops it with `sig`, checks it
/// exits 0 saying `expected_end`, and returns its final document.
pub fn stop_tracer(tracer: &mut Proc, sig: i32, expected_end: &str) -> Value {
    std::thread::sleep(Duration::from_millis(500));
    tracer.signal(sig);
    let lines = tracer.stdout.rest(Duration::from_secs(20));
    let (status, stderr) = tracer.wait(Duration::from_secs(10));
    assert!(status.success(), "tracer failed: {status}\n{stderr}");
    assert!(
        stderr.contains(expected_end),
        "stderr should say {expected_end:?}:\n{stderr}"
    );
    let last = json_lines(&lines).pop().expect("a final document");
    assert_eq!(last["ended"], expected_end);
    last
}

/// Runs the tracer with `args` and asserts it fails cleanly mentioning
/// `expected` (see [`assert_clean_failure`]).
pub fn expect_tracer_failure(cmd: &mut Command, expected: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_clean_failure(out.status, &String::from_utf8_lossy(&out.stderr), expected);
}

/// Parses JSON lines; panics on anything else.
pub fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Asserts a tracer failure is clean: non-zero exit, the expected message,
/// no panic.
pub fn assert_clean_failure(status: ExitStatus, stderr: &str, expected: &str) {
    assert!(
        !status.success(),
        "expected a failure, got {status}; stderr:\n{stderr}"
    );
    assert_eq!(
        status.code(),
        Some(1),
        "expected exit code 1; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "tracer panicked:\n{stderr}");
    assert!(
        stderr.contains(expected),
        "stderr should mention {expected:?}:\n{stderr}"
    );
}

/// `tracer attach --json --pid PID` plus `args`, returned once its first
/// document is printed (the probes are attached and the loop runs).
pub fn attach_json_with(env: &TestEnv, pid: u32, args: &[&str]) -> Proc {
    let mut cmd = env.tracer();
    cmd.args(["attach", "--json", "--pid", &pid.to_string()])
        .args(args);
    let mut tracer = Proc::start(cmd);
    tracer.stdout.expect("{", Duration::from_secs(30));
    tracer
}

/// Like [`stop_tracer`], but returns every document printed after the
/// first one (which [`attach_json_with`] consumed), the final one last.
pub fn stop_tracer_all(tracer: &mut Proc, sig: i32, expected_end: &str) -> Vec<Value> {
    stop_tracer_with_stderr(tracer, sig, expected_end).0
}

/// Like [`stop_tracer_all`], and also returns the tracer's whole stderr.
pub fn stop_tracer_with_stderr(
    tracer: &mut Proc,
    sig: i32,
    expected_end: &str,
) -> (Vec<Value>, String) {
    std::thread::sleep(Duration::from_millis(500));
    tracer.signal(sig);
    let lines = tracer.stdout.rest(Duration::from_secs(20));
    let (status, stderr) = tracer.wait(Duration::from_secs(10));
    assert!(status.success(), "tracer failed: {status}\n{stderr}");
    assert!(
        stderr.contains(expected_end),
        "stderr should say {expected_end:?}:\n{stderr}"
    );
    let docs = json_lines(&lines);
    let last = docs.last().expect("a final document");
    assert_eq!(last["ended"], expected_end);
    (docs, stderr)
}

/// The next JSON document a `tracer attach --json` prints.
pub fn next_document(tracer: &mut Proc, timeout: Duration) -> Value {
    let line = tracer.stdout.expect("{", timeout);
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// A document's `elapsed_s`, `mode`, `totals` and suspects, for assertion
/// messages.
pub fn describe_document(doc: &Value) -> String {
    let suspects = doc["suspects"]
        .as_array()
        .map(|s| describe_suspects(s))
        .unwrap_or_else(|| "  (no \"suspects\" array)".to_string());
    format!(
        "elapsed_s={}\n  mode={}\n  totals={}\n  suspects:\n{suspects}",
        doc["elapsed_s"], doc["mode"], doc["totals"]
    )
}

/// The `"suspects"` array of a `tracer attach --json` document.
pub fn suspects(doc: &Value) -> &[Value] {
    doc["suspects"].as_array().unwrap_or_else(|| {
        let keys: Vec<&String> = doc
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        panic!("the document has no \"suspects\" array; its keys: {keys:?}")
    })
}

/// `file:line` of a JSON source location (`{"file", "line", …}`), `?` for
/// what is missing.
pub fn location(loc: &Value) -> String {
    let file = loc["file"].as_str().unwrap_or("?");
    format!("{file}:{}", loc["line"])
}

/// One line per suspect (kind, score, count, state, site, evidence), for
/// assertion messages.
pub fn describe_suspects(suspects: &[Value]) -> String {
    if suspects.is_empty() {
        return "  (no suspect)".to_string();
    }
    suspects
        .iter()
        .map(|s| {
            format!(
                "  {} score={} count={} state={} site={} start={} — {}",
                s["kind"],
                s["score"],
                s["count"],
                s["state"],
                location(&s["creation_site"]),
                s["start_function"],
                s["evidence"].as_str().unwrap_or("(no evidence)")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

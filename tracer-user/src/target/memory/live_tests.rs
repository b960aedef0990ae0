//! Snapshots and stacks of a real, running Go program against the runtime's
//! own view of it, twice:
//!
//! 1. the program's `runtime.Stack(buf, true)`, which always prints at
//!    traceback level 1 (whatever GOTRACEBACK says): user goroutines only,
//!    runtime-internal frames hidden;
//! 2. at the end, the runtime's crash dump on SIGQUIT with
//!    `GOTRACEBACK=system`: every goroutine with its `gp=` address, every
//!    frame (`runtime.gopark` … `main.…` … `runtime.goexit`).
//!
//! In between, snapshots are taken while the program spawns and ends
//! goroutines as fast as it can.
//!
//! A second program checks the channels read from `g.waiting`'s sudogs
//! against the `%p` of the channels each goroutine printed before blocking
//! (an idle pool on one channel, leaks on their own, selects, a sender,
//! sync waits), before and after a Go 1.27 goroutine-leak GC cycle.
//!
//! Needs root (reading another process's memory) and the Go toolchains
//! under `target/toolchains`: without them the test prints why and passes,
//! except under `CI=true` where that is a failure.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use crate::target::{tests, OffsetsSource, SchedSource, Target, GOID_CACHE_BATCH};

/// Versions the test runs on, and how many idle goroutines each target has.
const RUNS: [(&str, usize); 2] = [("go1.26.6", 100_000), ("go1.22.10", 10_000)];

const PROGRAM: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

var (
	never   = make(chan int) // never sent to
	never2  = make(chan int) // never sent to
	unread  = make(chan int) // never received from
	mu      sync.Mutex
	started sync.WaitGroup
)

//go:noinline
func blockedReceiving() { started.Done(); <-never }

//go:noinline
func blockedSelecting() {
	started.Done()
	select {
	case <-never:
	case <-never2:
	}
}

//go:noinline
func sendDeep3() { started.Done(); unread <- 1 }

//go:noinline
func sendDeep2() { sendDeep3() }

//go:noinline
func sendDeep1() { sendDeep2() }

//go:noinline
func blockedLocking() { started.Done(); mu.Lock() }

//go:noinline
func sleeping() { started.Done(); time.Sleep(time.Hour) }

//go:noinline
func crowd() { started.Done(); <-never }

//go:noinline
func churnChild(n int) int { return n * 2 }

var (
	calm     atomic.Bool
	churning sync.WaitGroup
)

// churn spawns short-lived goroutines until calm: g structs keep changing
// state while the test reads them.
func churn() {
	defer churning.Done()
	for i := 0; !calm.Load(); i++ {
		done := make(chan int)
		go func() { done <- churnChild(i) }()
		<-done
	}
}

func dump() {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	fmt.Fprintln(w, "dump begin")
	w.Write(buf)
	fmt.Fprintln(w, "\ndump end")
	w.Flush()
}

func main() {
	crowdSize, _ := strconv.Atoi(os.Args[1])
	mu.Lock()
	started.Add(5 + crowdSize)
	go blockedReceiving()
	go blockedSelecting()
	go sendDeep1()
	go blockedLocking()
	go sleeping()
	for i := 0; i < crowdSize; i++ {
		go crowd()
	}
	started.Wait()
	time.Sleep(200 * time.Millisecond)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "dump":
			dump()
		case "churn":
			churning.Add(2)
			go churn()
			go churn()
			fmt.Println("churning")
		case "calm":
			calm.Store(true)
			churning.Wait()
			fmt.Println("calm")
		}
	}
}
"#;

/// The `main.*` functions parked in known places, one goroutine each.
const PARKED_FUNCTIONS: [&str; 5] = [
    "main.blockedReceiving",
    "main.blockedSelecting",
    "main.sendDeep3",
    "main.blockedLocking",
    "main.sleeping",
];

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Builds the program with toolchain `version` (e.g. "go1.26.6"), or `None`
/// (with a note) when the toolchain is absent outside CI.
fn build(version: &str) -> Option<PathBuf> {
    let Some(toolchain) = tests::toolchains()
        .into_iter()
        .find(|t| t.version == version)
    else {
        assert!(!in_ci(), "no {version} toolchain under target/toolchains (CI must provide it: cargo xtask installs them)");
        eprintln!("memory live test: skipped {version}: no toolchain under target/toolchains");
        return None;
    };
    Some(tests::build(&toolchain, "parked", PROGRAM, &[], "amd64"))
}

/// Lines of one output stream of the program, read by a thread.
fn line_reader(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// The running program; killed on drop.
struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

impl Running {
    fn start(program: &Path, crowd: usize) -> Running {
        let mut child = Command::new(program)
            .arg(crowd.to_string())
            // For the crash dump at the end: every goroutine, every frame.
            .env("GOTRACEBACK", "system")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = line_reader(child.stdout.take().unwrap());
        let stderr = line_reader(child.stderr.take().unwrap());
        let stdin = child.stdin.take().unwrap();
        let running = Running {
            child,
            stdin,
            stdout,
            stderr,
        };
        running.wait_for("ready");
        running
    }

    fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(ANSWER_TIMEOUT)
            .expect("the test program stopped answering")
    }

    fn wait_for(&self, expected: &str) {
        while self.next_line() != expected {}
    }

    fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// `runtime.Stack(buf, true)`: always at traceback level 1 (runtime
    /// frames and system goroutines hidden, no `gp=`), whatever GOTRACEBACK.
    fn stack_dump(&mut self) -> Vec<Dumped> {
        self.command("dump");
        self.wait_for("dump begin");
        let mut text = Vec::new();
        loop {
            let line = self.next_line();
            if line == "dump end" {
                break;
            }
            text.push(line);
        }
        parse_dump(&text)
    }

    /// The runtime's crash dump on SIGQUIT, with GOTRACEBACK=system: every
    /// goroutine (with its `gp=`) and every frame. The program exits.
    fn crash_dump(&mut self) -> Vec<Dumped> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // child's, not yet waited for.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT) };
        assert_eq!(sent, 0, "kill(SIGQUIT)");
        let mut text = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(ANSWER_TIMEOUT) {
            text.push(line);
        }
        let _ = self.child.wait();
        parse_dump(&text)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One goroutine of a dump.
#[derive(Debug, Clone)]
struct Dumped {
    goid: u64,
    /// From `gp=0x…` (crash dumps only).
    g_addr: Option<u64>,
    /// What is between the brackets, without ", N minutes" / " (scan)".
    state: String,
    /// Function names, innermost first (inlined frames included).
    functions: Vec<String>,
}

fn parse_dump(lines: &[String]) -> Vec<Dumped> {
    let mut goroutines: Vec<Dumped> = Vec::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix("goroutine ") {
            let Some((_, state)) = rest.split_once('[') else {
                continue;
            };
            let goid = rest.split(' ').next().unwrap().parse().unwrap();
            let g_addr = rest
                .split(' ')
                .find_map(|w| w.strip_prefix("gp=0x"))
                .map(|hex| u64::from_str_radix(hex, 16).unwrap());
            let state = state.split([']', ',']).next().unwrap();
            let state = state
                .trim_end_matches(" (scan)")
                .trim_end_matches(" (leaked)");
            goroutines.push(Dumped {
                goid,
                g_addr,
                state: state.to_string(),
                functions: Vec::new(),
            });
        } else if line.is_empty() {
            // Frames end at the blank line after each goroutine (register
            // dumps and the like follow the last one).
            if let Some(last) = goroutines.last_mut() {
                last.functions.push(String::new());
            }
        } else if line.starts_with('\t')
            || line.starts_with("created by ")
            || line.starts_with("...")
        {
            continue;
        } else if let (Some(current), Some(paren)) = (goroutines.last_mut(), line.rfind('(')) {
            if current.functions.last().is_none_or(|f| !f.is_empty()) {
                current.functions.push(line[..paren].to_string());
            }
        }
    }
    for g in &mut goroutines {
        if let Some(end) = g.functions.iter().position(String::is_empty) {
            g.functions.truncate(end);
        }
    }
    goroutines
}

/// Whether `runtime.Stack` shows a frame of this function (traceback level
/// 1, `showfuncinfo`): runtime internals are hidden, exported ones shown.
fn shown_by_runtime_stack(function: &str) -> bool {
    match function.strip_prefix("runtime.") {
        None => function.contains('.'),
        Some(rest) => {
            let name = rest.rsplit('.').next().unwrap_or("");
            name.starts_with(|c: char| c.is_ascii_uppercase())
        }
    }
}

/// Function names of an unwound stack, inlined frames expanded, innermost first.
fn symbolize(target: &Target, stack: &[u64]) -> Vec<String> {
    stack
        .iter()
        .enumerate()
        .flat_map(|(i, &pc)| {
            let frames = target
                .symbolizer
                .frames_shared(target.to_vaddr(symbolization_pc(i, pc)));
            if frames.is_empty() {
                vec![format!("?{pc:#x}")]
            } else {
                frames.iter().map(|f| f.function.clone()).collect()
            }
        })
        .collect()
}

/// What a dump says of a goroutine's state, from a snapshot.
fn state_of(target: &Target, g: &SnapshotGoroutine) -> String {
    if matches!(g.status, status::WAITING | status::LEAKED) && g.wait_reason != 0 {
        return target
            .wait_reasons
            .name(g.wait_reason)
            .unwrap_or("???")
            .to_string();
    }
    status::name(g.status).unwrap_or("???").to_string()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// The target, its memory and where its goroutine list is.
struct Live {
    version: &'static str,
    target: Target,
    layout: GLayout,
    allglen: u64,
    allgptr: u64,
    memory: ProcessMemory,
}

const LIMIT: usize = 1 << 20;
const MAX_FRAMES: usize = 128;

impl Live {
    fn snapshot(&self, memory: &ProcessMemory) -> (GoroutineSnapshot, Duration) {
        let (snapshot, took) =
            timed(|| read_goroutines(memory, self.allglen, self.allgptr, &self.layout, LIMIT));
        (snapshot.unwrap(), took)
    }

    /// Goroutines the runtime starts itself (they may come, go and wake up
    /// on their own, e.g. GC workers).
    fn is_runtime(&self, start_pc: u64) -> bool {
        self.target
            .symbolizer
            .function_name(self.target.to_vaddr(start_pc))
            .is_some_and(|f| f.starts_with("runtime."))
    }

    /// Compares a snapshot (and its stacks) with a dump: the same goroutines
    /// (runtime ones aside), the same state, and the same frames (those a
    /// level-1 dump shows, unless `all_frames`) for every parked one.
    /// Returns how many stacks were compared, per innermost `main.*` function.
    fn compare(
        &self,
        snapshot: &GoroutineSnapshot,
        stacks: &[Vec<u64>],
        dump: &[Dumped],
        all_frames: bool,
    ) -> HashMap<String, usize> {
        let version = self.version;
        let ours: HashMap<u64, (&SnapshotGoroutine, &Vec<u64>)> = snapshot
            .goroutines
            .iter()
            .zip(stacks)
            .map(|(g, s)| (g.goid, (g, s)))
            .collect();
        let theirs: HashMap<u64, &Dumped> = dump.iter().map(|d| (d.goid, d)).collect();
        // Goroutines in one and not the other: only runtime ones (hidden
        // from level-1 dumps, or started/exited in between); goroutine 0 is
        // the crash dump's signal handler, not in allgs.
        for (goid, (g, _)) in &ours {
            assert!(
                theirs.contains_key(goid) || self.is_runtime(g.start_pc),
                "{version}: goroutine {goid} is not in the dump: {g:?}"
            );
        }
        for goid in theirs.keys() {
            let created_by_runtime = theirs[goid]
                .functions
                .iter()
                .rev()
                .find(|f| *f != "runtime.goexit")
                .is_some_and(|f| f.starts_with("runtime."));
            assert!(
                ours.contains_key(goid) || *goid == 0 || created_by_runtime,
                "{version}: dumped goroutine {goid} is not in the snapshot: {:?}",
                theirs[goid]
            );
        }
        let mut found: HashMap<String, usize> = HashMap::new();
        let mut runtime_mismatches = Vec::new();
        for dumped in dump {
            let Some(&(g, stack)) = ours.get(&dumped.goid) else {
                continue;
            };
            if let Some(g_addr) = dumped.g_addr {
                assert_eq!(g.g_addr, g_addr, "{version}: goroutine {}", dumped.goid);
            }
            // The main goroutine runs the dump.
            if dumped.goid == 1 {
                continue;
            }
            let state = state_of(&self.target, g);
            let mut functions = symbolize(&self.target, stack);
            if !all_frames {
                functions.retain(|f| shown_by_runtime_stack(f));
            }
            if self.is_runtime(g.start_pc) {
                if state != dumped.state || (g.is_parked() && functions != dumped.functions) {
                    runtime_mismatches.push((dumped.clone(), state, functions));
                }
                continue;
            }
            assert_eq!(state, dumped.state, "{version}: goroutine {}", dumped.goid);
            if !g.is_parked() {
                assert!(stack.is_empty(), "{version}: {g:?}");
                continue;
            }
            assert_eq!(
                functions, dumped.functions,
                "{version}: stack of goroutine {} ({stack:#x?})",
                dumped.goid
            );
            if let Some(main) = functions.iter().find(|f| f.starts_with("main.")) {
                *found.entry(main.clone()).or_default() += 1;
            }
        }
        // The GC may wake one of its goroutines between dump and snapshot:
        // tolerate one, not a pattern.
        assert!(
            runtime_mismatches.len() <= 1,
            "{version}: runtime goroutines differ: {runtime_mismatches:#?}"
        );
        found
    }
}

fn check(version: &'static str, crowd: usize) {
    let Some(program) = build(version) else {
        return;
    };
    let mut running = Running::start(&program, crowd);
    let pid = running.child.id();
    let target = Target::from_pid(pid).unwrap();
    let vars = target.runtime_vars;
    let (allglen, allgptr) = (
        vars.allglen + target.load_bias,
        vars.allgptr + target.load_bias,
    );
    let live = Live {
        version,
        layout: GLayout::from_offsets(&target.offsets),
        target,
        allglen,
        allgptr,
        memory: ProcessMemory::open(pid).unwrap(),
    };
    let proc_mem = ProcessMemory::open_with(pid, ReadMethod::ProcMem).unwrap();
    let expected_main: HashMap<String, usize> = PARKED_FUNCTIONS
        .iter()
        .map(|f| (f.to_string(), 1))
        .chain([("main.crowd".to_string(), crowd)])
        .collect();

    // 1. The program is quiet: every goroutine is parked except the main
    //    one, which reads stdin. Its runtime.Stack dump vs a snapshot.
    let dump = running.stack_dump();
    assert!(
        dump.len() > crowd,
        "{version}: {} goroutines dumped",
        dump.len()
    );
    let (snapshot, vm_time) = live.snapshot(&live.memory);
    let (stacks, unwind_time) =
        timed(|| unwind_all(&live.memory, &snapshot.goroutines, MAX_FRAMES));
    let (by_proc_mem, proc_mem_time) = live.snapshot(&proc_mem);
    assert_eq!(live.memory.method(), ReadMethod::VmReadv, "{version}");
    eprintln!(
        "{version}: {} goroutines (allglen {}, {} dead, {} discarded): snapshot {vm_time:?} \
         (process_vm_readv), {proc_mem_time:?} (/proc/PID/mem); unwind_all {unwind_time:?}",
        snapshot.goroutines.len(),
        snapshot.allglen,
        snapshot.dead,
        snapshot.discarded.total(),
    );
    assert_eq!(snapshot.discarded, Discarded::default(), "{version}");
    let goids =
        |s: &GoroutineSnapshot| -> HashSet<u64> { s.goroutines.iter().map(|g| g.goid).collect() };
    assert_eq!(
        goids(&snapshot),
        goids(&by_proc_mem),
        "{version}: /proc/PID/mem"
    );
    assert_eq!(
        live.compare(&snapshot, &stacks, &dump, false),
        expected_main,
        "{version}"
    );
    // One goroutine at a time, frame by frame: the same stacks.
    let (one_by_one, took) = timed(|| {
        snapshot
            .goroutines
            .iter()
            .map(|g| unwind(&live.memory, g, MAX_FRAMES))
            .collect::<Vec<_>>()
    });
    assert_eq!(one_by_one, stacks, "{version}");
    eprintln!("{version}: unwind one goroutine at a time: {took:?}");
    // Re-reading the g addresses gives the same goroutines, in the same
    // state: nothing ran, so the same g.trackingSeq.
    let addrs: Vec<u64> = snapshot.goroutines.iter().map(|g| g.g_addr).collect();
    let reread = read_gs(&live.memory, &addrs, &live.layout);
    let same = snapshot
        .goroutines
        .iter()
        .zip(&reread)
        .filter(|(g, again)| {
            again.is_some_and(|a| {
                (a.goid, a.status, a.tracking_seq) == (g.goid, g.status, g.tracking_seq)
            })
        })
        .count();
    assert!(
        same + 8 >= snapshot.goroutines.len(),
        "{version}: {same} re-read"
    );

    // 2. While goroutines are spawned and exit as fast as they can,
    //    snapshots stay consistent: the parked goroutines are always there,
    //    and what the races tear is counted.
    running.command("churn");
    running.wait_for("churning");
    let stable: HashSet<u64> = snapshot
        .goroutines
        .iter()
        .filter(|g| g.is_parked() && !live.is_runtime(g.start_pc))
        .map(|g| g.goid)
        .collect();
    let mut discarded = 0;
    let mut slowest = Duration::ZERO;
    // (Each round reads and unwinds every goroutine: fewer on big targets.)
    let rounds = if crowd > 50_000 { 3 } else { 20 };
    for _ in 0..rounds {
        let (snapshot, took) = live.snapshot(&live.memory);
        slowest = slowest.max(took);
        assert!(
            goids(&snapshot).is_superset(&stable),
            "{version}: a parked goroutine went missing"
        );
        let stacks = unwind_all(&live.memory, &snapshot.goroutines, MAX_FRAMES);
        assert!(stacks.iter().all(|s| s.len() <= MAX_FRAMES));
        discarded += snapshot.discarded.total();
    }
    running.command("calm");
    running.wait_for("calm");
    eprintln!("{version}: {rounds} snapshots while churning, slowest {slowest:?}, {discarded} g discarded in total");

    // 3. Quiet again: a snapshot, then the runtime's crash dump, which shows
    //    every frame (runtime.gopark … main.… … runtime.goexit) and g address.
    let (snapshot, _) = live.snapshot(&live.memory);
    let stacks = unwind_all(&live.memory, &snapshot.goroutines, MAX_FRAMES);
    let dump = running.crash_dump();
    assert!(
        dump.len() > crowd,
        "{version}: {} goroutines in the crash dump",
        dump.len()
    );
    assert_eq!(
        live.compare(&snapshot, &stacks, &dump, true),
        expected_main,
        "{version}"
    );
    let deep = dump
        .iter()
        .find(|d| d.functions.iter().any(|f| f == "main.sendDeep3"))
        .unwrap();
    assert_eq!(deep.functions[0], "runtime.gopark", "{version}");
    assert_eq!(
        deep.functions[deep.functions.len() - 4..],
        [
            "main.sendDeep3",
            "main.sendDeep2",
            "main.sendDeep1",
            "runtime.goexit"
        ],
        "{version}"
    );
    eprintln!("{version}: snapshot and stacks match runtime.Stack and the crash dump");
}

#[test]
fn live_goroutines_and_stacks_match_the_runtimes_dump() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!in_ci(), "the memory live test must run as root in CI");
        eprintln!("memory live test: skipped, needs root to read another process's memory");
        return;
    }
    for (version, crowd) in RUNS {
        check(version, crowd);
    }
}

// ---------------------------------------------------------------------------
// The channels parked goroutines wait on (g.waiting → sudogs)

/// Versions the channel test runs on: the oldest, the last with a plain
/// `sudog.c`, and the two with `maybeTraceableChan` (1.27 with the
/// goroutineleak profile on by default).
const CHANNEL_RUNS: [&str; 4] = ["go1.21.13", "go1.25.5", "go1.26.6", "go1.27.3"];

/// An idle pool (4 goroutines receiving on one shared channel), 4 leaks
/// (each receiving on its own channel), 2 selects over (shared, own), a
/// sender blocked on its own channel, a select that sends and receives on
/// the same channel, and waits on no channel: a nil channel, a mutex, a
/// `sync.Cond`, a sleep. Each goroutine prints its goid and the `%p` (the
/// `*hchan`) of the channels it blocks on.
const CHANNEL_PROGRAM: &str = r#"package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	jobs    = make(chan int) // the pool's channel: stays reachable
	out     sync.Mutex
	started sync.WaitGroup
	mu      sync.Mutex
	cond    = sync.NewCond(&sync.Mutex{})
)

func goid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _ := strconv.ParseUint(strings.Fields(string(buf))[1], 10, 64)
	return id
}

// announce prints "g <goid> <kind> <channels>" before the goroutine blocks.
func announce(kind string, channels ...chan int) {
	out.Lock()
	fmt.Printf("g %d %s", goid(), kind)
	for _, c := range channels {
		fmt.Printf(" %p", c)
	}
	fmt.Println()
	out.Unlock()
	started.Done()
}

//go:noinline
func poolWorker() {
	announce("pool", jobs)
	for range jobs {
	}
}

//go:noinline
func leaked(own chan int) { announce("leak", own); <-own }

//go:noinline
func selecting(own chan int) {
	announce("select", jobs, own)
	select {
	case <-jobs:
	case <-own:
	}
}

//go:noinline
func sending(own chan int) { announce("send", own); own <- 1 }

//go:noinline
func sendOrReceive(own chan int) {
	announce("select-same", own)
	select {
	case own <- 1:
	case <-own:
	}
}

//go:noinline
func nilChannel() { var c chan int; announce("nil"); <-c }

//go:noinline
func locked() { announce("mutex"); mu.Lock() }

//go:noinline
func condWait() {
	announce("cond")
	cond.L.Lock()
	cond.Wait()
}

//go:noinline
func sleeping() { announce("sleep"); time.Sleep(time.Hour) }

func main() {
	mu.Lock()
	started.Add(4 + 4 + 2 + 1 + 1 + 4)
	for i := 0; i < 4; i++ {
		go poolWorker()
	}
	for i := 0; i < 4; i++ {
		go leaked(make(chan int))
	}
	for i := 0; i < 2; i++ {
		go selecting(make(chan int))
	}
	go sending(make(chan int))
	go sendOrReceive(make(chan int))
	go nilChannel()
	go locked()
	go condWait()
	go sleeping()
	started.Wait()
	time.Sleep(200 * time.Millisecond)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "leakprofile":
			// Go 1.26 (with GOEXPERIMENT) / 1.27: a GC cycle that hides the
			// sudogs' channel pointers from the GC while it looks for
			// leaked goroutines, and marks them _Gleaked.
			p := pprof.Lookup("goroutineleak")
			if p != nil {
				p.WriteTo(io.Discard, 1)
			}
			fmt.Println("leakprofile", p != nil)
		}
	}
}
"#;

/// One announced goroutine: what it is and the channels it printed.
#[derive(Debug)]
struct Announced {
    kind: String,
    channels: Vec<u64>,
}

fn check_channels(version: &'static str) {
    let Some(toolchain) = tests::toolchains()
        .into_iter()
        .find(|t| t.version == version)
    else {
        assert!(!in_ci(), "no {version} toolchain under target/toolchains");
        eprintln!("channel live test: skipped {version}: no toolchain under target/toolchains");
        return;
    };
    let program = tests::build(&toolchain, "channels", CHANNEL_PROGRAM, &[], "amd64");
    let mut child = Command::new(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = line_reader(child.stdout.take().unwrap());
    let stdin = child.stdin.take().unwrap();
    let mut running = Running {
        child,
        stdin,
        stdout,
        stderr: mpsc::channel().1,
    };
    let mut announced: HashMap<u64, Announced> = HashMap::new();
    loop {
        let line = running.next_line();
        if line == "ready" {
            break;
        }
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("g"), "{version}: {line}");
        let goid = words.next().unwrap().parse().unwrap();
        let kind = words.next().unwrap().to_string();
        let mut channels: Vec<u64> = words
            .map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).unwrap())
            .collect();
        channels.sort_unstable();
        channels.dedup();
        announced.insert(goid, Announced { kind, channels });
    }
    assert_eq!(announced.len(), 16, "{version}");
    let pid = running.child.id();
    let target = Target::from_pid(pid).unwrap();
    let layout = GLayout::from_offsets(&target.offsets);
    let sudogs = SudogLayout::from_offsets(&target.offsets);
    let memory = ProcessMemory::open(pid).unwrap();
    let vars = target.runtime_vars;
    let snapshot = || {
        read_goroutines(
            &memory,
            vars.allglen + target.load_bias,
            vars.allgptr + target.load_bias,
            &layout,
            LIMIT,
        )
        .unwrap()
    };
    let is_channel_wait = |g: &SnapshotGoroutine| {
        let name = target.wait_reasons.name(g.wait_reason).unwrap_or("");
        name.starts_with("chan ") || name.starts_with("select")
    };

    // Every announced goroutine's g.waiting list gives the channels it
    // printed; the others' (sync waits, sleep, nil channel) give none that
    // a channel wait reason would vouch for.
    let check = |when: &str| -> Vec<(String, u32)> {
        let snapshot = snapshot();
        let ours: Vec<SnapshotGoroutine> = snapshot
            .goroutines
            .iter()
            .filter(|g| announced.contains_key(&g.goid))
            .copied()
            .collect();
        assert_eq!(ours.len(), announced.len(), "{version} {when}");
        let read = read_wait_channels(&memory, &ours, &sudogs);
        assert_eq!(
            read.discarded,
            ChainDiscarded::default(),
            "{version} {when}"
        );
        assert_eq!(read.bad_channels, 0, "{version} {when}");
        let mut pool = Vec::new();
        let mut leaks = HashSet::new();
        for (g, channels) in ours.iter().zip(&read.channels) {
            let expected = &announced[&g.goid];
            let state = state_of(&target, g);
            let channels = channels.as_ref().unwrap_or_else(|| {
                panic!(
                    "{version} {when}: goroutine {} ({expected:?}) unreadable",
                    g.goid
                )
            });
            match expected.kind.as_str() {
                "nil" | "mutex" | "cond" | "sleep" => {
                    assert!(!is_channel_wait(g) || channels.is_empty(), "{version}");
                    assert!(
                        channels.is_empty(),
                        "{version} {when}: {} ({state}) has channels {channels:#x?}",
                        expected.kind
                    );
                }
                kind => {
                    assert!(is_channel_wait(g), "{version} {when}: {kind} is {state}");
                    assert_eq!(
                        channels, &expected.channels,
                        "{version} {when}: {kind} goroutine {} ({state})",
                        g.goid
                    );
                    if kind == "pool" {
                        pool.push(channels.clone());
                    } else if kind == "leak" {
                        leaks.insert(channels.clone());
                    }
                }
            }
        }
        // The distinction the leak-suspect engine needs: the pool's four
        // share one channel, the four leaks have one each.
        assert_eq!(pool.len(), 4, "{version}");
        assert!(pool.windows(2).all(|w| w[0] == w[1] && w[0].len() == 1));
        assert_eq!(leaks.len(), 4, "{version}");
        ours.iter()
            .map(|g| (announced[&g.goid].kind.clone(), g.status))
            .collect()
    };
    let statuses = check("parked");
    assert!(statuses.iter().all(|s| s.1 == status::WAITING), "{version}");

    // After a goroutine-leak GC cycle (1.26 with the experiment, 1.27 by
    // default), the leaked goroutines keep their sudogs; sudog.c's pointer
    // word was hidden from the GC and restored, its address word kept.
    running.command("leakprofile");
    let line = running.next_line();
    let statuses = check("after the goroutineleak profile");
    let mut leaked: Vec<&str> = statuses
        .iter()
        .filter(|s| s.1 == status::LEAKED)
        .map(|s| s.0.as_str())
        .collect();
    leaked.sort_unstable();
    eprintln!("{version}: channels of 16 goroutines match; {line}, leaked: {leaked:?}");
    if line == "leakprofile true" {
        // Blocked on objects only they can reach: the own channels, the
        // nil channel. The pool, the selects (on the global jobs channel),
        // the mutex and cond waiters (globals) and the sleeper are not.
        assert_eq!(
            leaked,
            ["leak", "leak", "leak", "leak", "nil", "select-same", "send"],
            "{version}"
        );
    } else {
        assert!(leaked.is_empty(), "{version}");
    }
}

#[test]
fn live_wait_channels_match_the_programs_own_channels() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!in_ci(), "the channel live test must run as root in CI");
        eprintln!("channel live test: skipped, needs root to read another process's memory");
        return;
    }
    for version in CHANNEL_RUNS {
        check_channels(version);
    }
}

// ---------------------------------------------------------------------------
// g.trackingSeq and runtime.sched.goidgen

/// A goroutine (the sleeper) parked on a channel receive, woken on demand;
/// goroutines spawned on demand, which print their goids and stay parked.
/// Every goroutine gets its goid from its own `runtime.Stack` header.
const SEQ_PROGRAM: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

var (
	wake  = make(chan int)
	awake = make(chan int)
	hold  = make(chan int) // never sent to: spawned goroutines stay
)

func goid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _ := strconv.ParseUint(strings.Fields(string(buf))[1], 10, 64)
	return id
}

//go:noinline
func sleeper(ids chan<- uint64) {
	ids <- goid()
	for range wake {
		awake <- 1
	}
}

//go:noinline
func spawned(ids chan<- uint64) {
	ids <- goid()
	<-hold
}

func main() {
	ids := make(chan uint64)
	go sleeper(ids)
	fmt.Println("sleeper", <-ids)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		words := strings.Fields(in.Text())
		switch words[0] {
		case "wake":
			// The sleeper receives, answers and parks again on wake.
			wake <- 1
			<-awake
			fmt.Println("woken")
		case "gc":
			// Scans every stack: parked goroutines get the _Gscan bit,
			// not a status transition through casgstatus.
			runtime.GC()
			fmt.Println("collected")
		case "spawn":
			n, _ := strconv.Atoi(words[1])
			var highest uint64
			for i := 0; i < n; i++ {
				go spawned(ids)
				if id := <-ids; id > highest {
					highest = id
				}
			}
			fmt.Println("spawned", highest)
		}
	}
}
"#;

/// How long a woken goroutine may take to park again.
const REPARK_TIMEOUT: Duration = Duration::from_secs(10);

/// The number after `word` on the program's next line starting with it.
fn answer(running: &Running, word: &str) -> u64 {
    loop {
        let line = running.next_line();
        if let Some(value) = line.strip_prefix(word).and_then(|r| r.strip_prefix(' ')) {
            return value.parse().unwrap();
        }
    }
}

fn check_tracking_seq_and_goidgen(toolchain: &tests::Toolchain, stripped: bool) {
    let flags: &[&str] = if stripped {
        &["-buildmode=pie", "-ldflags=-s -w"]
    } else {
        &[]
    };
    let name = if stripped { "seq-sw-pie" } else { "seq" };
    let program = tests::build(toolchain, name, SEQ_PROGRAM, flags, "amd64");
    let label = format!("{} {name}", toolchain.version);
    let mut child = Command::new(&program)
        // One P: goids are handed out from one cache, so goidgen stays
        // within a batch (16) of the highest goid, and the sleeper's
        // wake-up is one run between two parks.
        .env("GOMAXPROCS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = line_reader(child.stdout.take().unwrap());
    let stdin = child.stdin.take().unwrap();
    let mut running = Running {
        child,
        stdin,
        stdout,
        stderr: mpsc::channel().1,
    };
    let sleeper_goid = answer(&running, "sleeper");
    let pid = running.child.id();
    let target = Target::from_pid(pid).unwrap();
    let (expected_offsets, expected_sched) = if stripped {
        (OffsetsSource::Table, SchedSource::Disassembly)
    } else {
        (OffsetsSource::Dwarf, SchedSource::Symtab)
    };
    assert_eq!(target.offsets_source, expected_offsets, "{label}");
    assert_eq!(target.runtime_vars.sched_source, expected_sched, "{label}");
    if stripped {
        assert_ne!(target.load_bias, 0, "{label}");
    }
    let memory = ProcessMemory::open(pid).unwrap();
    let layout = GLayout::from_offsets(&target.offsets);
    let vars = target.runtime_vars;
    let snapshot = || {
        read_goroutines(
            &memory,
            vars.allglen + target.load_bias,
            vars.allgptr + target.load_bias,
            &layout,
            LIMIT,
        )
        .unwrap()
    };
    let sched = vars.sched.unwrap() + target.load_bias;
    let goidgen = || read_goidgen(&memory, sched, target.offsets.schedt_goidgen).unwrap();

    // 1. g.trackingSeq: unchanged while the sleeper stays parked (even
    //    through a GC that scans its stack), changed by every wake-up.
    let sleeper_g = |deadline: Instant| -> SnapshotGoroutine {
        let g = snapshot()
            .goroutines
            .into_iter()
            .find(|g| g.goid == sleeper_goid)
            .unwrap_or_else(|| panic!("{label}: sleeper {sleeper_goid} not in allgs"));
        // Poll until it is parked on its channel again.
        let mut g = g;
        while !(g.status == status::WAITING
            && target.wait_reasons.name(g.wait_reason) == Some("chan receive"))
        {
            assert!(Instant::now() < deadline, "{label}: sleeper stays {g:?}");
            std::thread::sleep(Duration::from_millis(1));
            g = read_gs(&memory, &[g.g_addr], &layout)[0]
                .filter(|again| again.goid == sleeper_goid)
                .unwrap_or(g);
        }
        g
    };
    let mut parked = sleeper_g(Instant::now() + REPARK_TIMEOUT);
    let mut deltas = Vec::new();
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(20));
        running.command("gc");
        running.wait_for("collected");
        let still = read_gs(&memory, &[parked.g_addr], &layout)[0].unwrap();
        assert_eq!(
            (still.goid, still.status, still.tracking_seq),
            (sleeper_goid, status::WAITING, parked.tracking_seq),
            "{label} round {round}: parked all along"
        );
        running.command("wake");
        running.wait_for("woken");
        let again = sleeper_g(Instant::now() + REPARK_TIMEOUT);
        assert_eq!(again.g_addr, parked.g_addr, "{label}");
        let delta = again.tracking_seq.wrapping_sub(parked.tracking_seq);
        // One park per wake-up (a preemption may add one).
        assert!(
            (1..=3).contains(&delta),
            "{label} round {round}: trackingSeq {} -> {}",
            parked.tracking_seq,
            again.tracking_seq
        );
        deltas.push(delta);
        parked = again;
    }

    // 2. sched.goidgen: at least every goid handed out, at most a batch
    //    ahead. It moves in whole batches (Ps reserve 16 ids at a time), so
    //    after K creations it has grown by K to within a batch: the ids
    //    already reserved are used first, the last batch is not used up.
    let batch = GOID_CACHE_BATCH;
    let before = goidgen();
    let highest_live = snapshot().goroutines.iter().map(|g| g.goid).max().unwrap();
    assert!(
        before >= highest_live && before >= sleeper_goid,
        "{label}: goidgen {before} < goid {highest_live}"
    );
    assert_eq!(before % batch, 0, "{label}: goidgen {before}");
    let mut last = before;
    let mut created = 0;
    for spawn in [1000, 37, 1, 16] {
        running.command(&format!("spawn {spawn}"));
        let highest = answer(&running, "spawned");
        let now = goidgen();
        created += spawn;
        assert!(now >= highest, "{label}: goidgen {now} < goid {highest}");
        // One P: what is left of its cache (< 16), plus perhaps a batch
        // taken by a runtime goroutine started meanwhile (a GC worker).
        assert!(
            now - highest < 2 * batch,
            "{label}: goidgen {now}, highest goid {highest}"
        );
        let grown = now - last;
        assert!(
            grown % batch == 0 && grown + batch > spawn && grown < spawn + 2 * batch,
            "{label}: goidgen {last} -> {now} after {spawn} goroutines"
        );
        last = now;
    }
    assert!(
        last - before + batch > created,
        "{label}: goidgen {before} -> {last} after {created} goroutines"
    );
    eprintln!(
        "{label}: sched @ {sched:#x} ({}), trackingSeq +{deltas:?} over 5 wake-ups, \
         goidgen {before} -> {last}",
        vars.sched_source
    );
}

#[test]
fn live_tracking_seq_and_goidgen_follow_the_program() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !in_ci(),
            "the trackingSeq/goidgen live test must run as root in CI"
        );
        eprintln!(
            "trackingSeq/goidgen live test: skipped, needs root to read another process's memory"
        );
        return;
    }
    let toolchains = tests::toolchains();
    if toolchains.is_empty() {
        assert!(
            !in_ci(),
            "no Go toolchain under target/toolchains (CI must provide them)"
        );
        eprintln!(
            "trackingSeq/goidgen live test: skipped, no Go toolchain under target/toolchains"
        );
        return;
    }
    for toolchain in &toolchains {
        for stripped in [false, true] {
            check_tracking_seq_and_goidgen(toolchain, stripped);
        }
    }
}

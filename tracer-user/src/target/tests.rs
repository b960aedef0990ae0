//! Tests against real Go executables, built with every Go toolchain found
//! under `target/toolchains/go*/bin/go` (or the one in `$TRACER_GO`). Each
//! fact is checked against an oracle outside this module: Go's own
//! `debug/dwarf`, the toolchain's `runtime2.go`, and the running program's
//! goroutine dump and `runtime.CallersFrames`.
//!
//! Without any toolchain the tests print why and pass, except under `CI=true`
//! where that is a failure.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use super::elf::ElfImage;
use super::memory::{Memory, ProcessMemory};
use super::*;

/// `.gopclntab` on stripped builds vs DWARF, per toolchain and build mode.
mod pclntab;
/// The offsets table vs DWARF; `runtime.allglen`/`allgptr` per build mode.
mod runtime_layout;

// ---------------------------------------------------------------------------
// Toolchains and builds

#[derive(Debug, Clone)]
pub(crate) struct Toolchain {
    go: PathBuf,
    /// `go1.26.6`
    pub(crate) version: String,
}

fn workspace_target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

pub(crate) fn toolchains() -> Vec<Toolchain> {
    static FOUND: OnceLock<Vec<Toolchain>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let mut gos: Vec<PathBuf> = Vec::new();
            if let Some(go) = std::env::var_os("TRACER_GO") {
                gos.push(PathBuf::from(go));
            } else if let Ok(dirs) = std::fs::read_dir(workspace_target_dir().join("toolchains")) {
                gos.extend(
                    dirs.flatten()
                        .map(|d| d.path().join("bin").join("go"))
                        .filter(|p| p.exists()),
                );
            }
            let mut found: Vec<Toolchain> = gos
                .into_iter()
                .filter_map(|go| {
                    let out = go_command(&go).args(["env", "GOVERSION"]).output().ok()?;
                    let version = String::from_utf8(out.stdout).ok()?.trim().to_string();
                    out.status.success().then_some(Toolchain { go, version })
                })
                .collect();
            found.sort_by_key(|t| {
                GoVersion::parse(&t.version)
                    .map(|v| (v.minor, v.patch))
                    .unwrap_or_default()
            });
            found
        })
        .clone()
}

/// The toolchains, or `None` (test passes with a note) when there are none.
fn toolchains_or_skip(test: &str) -> Option<Vec<Toolchain>> {
    let found = toolchains();
    if found.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: no Go toolchain under target/toolchains and TRACER_GO unset (CI must provide one)"
        );
        eprintln!("{test}: skipped, no Go toolchain (install one under target/toolchains or set TRACER_GO)");
        return None;
    }
    Some(found)
}

fn newest_or_skip(test: &str) -> Option<Toolchain> {
    toolchains_or_skip(test)?.pop()
}

fn go_command(go: &Path) -> Command {
    let cache = workspace_target_dir().join("gocache");
    let mut command = Command::new(go);
    command
        .env("GOFLAGS", "-mod=mod")
        .env("GOPATH", cache.join("path"))
        .env("GOCACHE", cache.join("build"))
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "on");
    command
}

/// Builds `source` as `package main` with `toolchain`; `flags` go to `go build`.
/// Builds are cached for the test process and serialized.
pub(crate) fn build(
    toolchain: &Toolchain,
    name: &str,
    source: &str,
    flags: &[&str],
    goarch: &str,
) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let key = format!(
        "{}-{name}-{goarch}-{}",
        toolchain.version,
        flags.join("_").replace(['/', '=', ' '], "_")
    );
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(&key) {
        return path.clone();
    }
    let dir = workspace_target_dir().join("go-test-builds").join(&key);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.go"), source).unwrap();
    std::fs::write(dir.join("go.mod"), "module tracertest\n\ngo 1.21\n").unwrap();
    let output = dir.join(name);
    let result = go_command(&toolchain.go)
        .current_dir(&dir)
        .env("GOARCH", goarch)
        .env("CGO_ENABLED", "0")
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&output)
        .arg(".")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    built.as_mut().unwrap().insert(key, output.clone());
    output
}

fn build_program(toolchain: &Toolchain, pie: bool) -> PathBuf {
    let flags: &[&str] = if pie { &["-buildmode=pie"] } else { &[] };
    build(
        toolchain,
        if pie { "prog-pie" } else { "prog" },
        PROGRAM,
        flags,
        "amd64",
    )
}

/// The traced program: three goroutines blocked in `chan receive`, one on a
/// mutex; prints `CallersFrames` of a pc inside inlined functions and its own
/// goroutine dump, then blocks in a `read(0)` syscall until stdin closes.
const PROGRAM: &str = r#"package main

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Globals, so that the go statements take no arguments: the goroutines then
// start at main.worker/main.locker themselves, not at a compiler wrapper.
var (
	ch = make(chan int)
	wg sync.WaitGroup
	mu sync.Mutex
)

func worker() {
	defer wg.Done()
	<-ch
}

func locker() {
	mu.Lock()
}

// The callers of capture: leaf and middle are inlined into main.main.
//
//go:noinline
func capture() []uintptr {
	pcs := make([]uintptr, 16)
	n := runtime.Callers(2, pcs)
	return pcs[:n]
}

func leaf() []uintptr {
	return capture()
}

func middle() []uintptr {
	return leaf()
}

func settled(dump string) bool {
	if strings.Count(dump, " [chan receive]:") < 3 {
		return false
	}
	for _, block := range strings.Split(dump, "\n\n") {
		if strings.Contains(block, "main.locker(") {
			header := strings.SplitN(block, "\n", 2)[0]
			return !strings.Contains(header, "[runnable") && !strings.Contains(header, "[running")
		}
	}
	return false
}

func main() {
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go worker()
	}
	mu.Lock()
	go locker()
	// runtime.Callers gives one pc per frame, inlined frames included: the
	// first is the real return address from capture, the next ones are
	// synthetic pcs of the inlining callers (middle, main.main).
	pcs := middle()
	for _, pc := range pcs {
		f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
		fmt.Printf("pc\t%#x\t%s\n", pc, f.Function)
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Printf("frame\t%s\t%s\t%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if dump := string(buf[:n]); settled(dump) {
			fmt.Printf("dump\n%s\nend dump\n", dump)
			break
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Println("ready")
	var b [1]byte
	syscall.Read(0, b[:])
}
"#;

/// Prints the members of the struct types named after the binary or, by
/// default, of `runtime.g`, `runtime.m`, `runtime.gobuf`,
/// `runtime.stack`, `runtime.sudog`, `runtime.schedt` (and, from Go 1.26, the
/// `runtime.maybeTraceableChan`/`maybeTraceablePtr` of `sudog.c`) as Go's
/// `debug/dwarf` sees them: `type.field offset size` (and
/// `type.(size) size size` for the struct itself).
const DWARF_ORACLE: &str = r#"package main

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"os"
)

func main() {
	f, err := elf.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	d, err := f.DWARF()
	if err != nil {
		panic(err)
	}
	want := map[string]bool{"runtime.g": true, "runtime.m": true, "runtime.gobuf": true, "runtime.stack": true,
		"runtime.sudog": true, "runtime.maybeTraceableChan": true, "runtime.maybeTraceablePtr": true,
		"runtime.schedt": true}
	if len(os.Args) > 2 {
		want = map[string]bool{}
		for _, name := range os.Args[2:] {
			want[name] = true
		}
	}
	r := d.Reader()
	for len(want) > 0 {
		e, err := r.Next()
		if err != nil {
			panic(err)
		}
		if e == nil {
			break
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if e.Tag != dwarf.TagStructType || !want[name] {
			continue
		}
		delete(want, name)
		t, err := d.Type(e.Offset)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s.(size) %d %d\n", name, t.Size(), t.Size())
		for _, field := range t.(*dwarf.StructType).Field {
			fmt.Printf("%s.%s %d %d\n", name, field.Name, field.ByteOffset, field.Type.Size())
		}
	}
}
"#;

/// `type.field offset size` lines of the DWARF oracle, by `type.field`.
fn oracle_fields(out: &[u8]) -> HashMap<String, (u64, u64)> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| {
            let mut p = l.split(' ');
            let name = p.next().unwrap().to_string();
            (
                name,
                (
                    p.next().unwrap().parse().unwrap(),
                    p.next().unwrap().parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// A program with every kind of timer and cancelable context, so that all
/// the timer and context functions and types are linked in.
const TIMER_PROGRAM: &str = r#"package main

import (
	"context"
	"fmt"
	"time"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	child, stop := context.WithCancel(ctx)
	t := time.NewTimer(time.Hour)
	t.Reset(time.Millisecond)
	<-t.C
	tk := time.NewTicker(time.Millisecond)
	<-tk.C
	tk.Reset(2 * time.Millisecond)
	tk.Stop()
	f := time.AfterFunc(time.Hour, func() {})
	f.Stop()
	select {
	case <-time.After(time.Millisecond):
	case <-child.Done():
	}
	time.Sleep(time.Millisecond)
	stop()
	cancel()
	fmt.Println(ctx.Err(), child.Err())
}
"#;

// ---------------------------------------------------------------------------
// Static inspection (from_path)

#[test]
fn timer_offsets_and_probes_match_go_debug_dwarf_on_every_toolchain() {
    let Some(toolchains) = toolchains_or_skip("timer offsets") else {
        return;
    };
    for toolchain in toolchains {
        let v = toolchain.version.clone();
        let program = build(&toolchain, "timers", TIMER_PROGRAM, &[], "amd64");
        let target = Target::from_path(&program).unwrap();
        let minor = target.go_version.minor;
        let t = target
            .timer_offsets
            .unwrap_or_else(|| panic!("{v}: no timer offsets"));
        let oracle = build(&toolchain, "dwarf-oracle", DWARF_ORACLE, &[], "amd64");
        let types = [
            "runtime.timer",
            "runtime.p",
            "runtime.g",
            "runtime.timers",
            "runtime.timerWhen",
            "runtime.timeTimer",
            "context.cancelCtx",
        ];
        let out = Command::new(oracle)
            .arg(&program)
            .args(types)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fields = oracle_fields(&out.stdout);
        let off = |f: &str| {
            fields
                .get(f)
                .unwrap_or_else(|| panic!("{v}: the oracle has no {f}"))
                .0
        };
        assert_eq!(t.when, off("runtime.timer.when"), "{v}");
        assert_eq!(t.period, off("runtime.timer.period"), "{v}");
        assert_eq!(t.f, off("runtime.timer.f"), "{v}");
        assert_eq!(t.arg_data, off("runtime.timer.arg") + 8, "{v}");
        assert_eq!(t.ctx_err, off("context.cancelCtx.err"), "{v}");
        if minor <= 22 {
            assert_eq!(t.timer_in_arg, 0, "{v}");
            assert_eq!(t.status, off("runtime.timer.status"), "{v}");
            assert_eq!(t.nextwhen, off("runtime.timer.nextwhen"), "{v}");
            assert_eq!(t.p_timer_heap, off("runtime.p.timers"), "{v}");
            assert_eq!(t.heap_entry, 8, "{v}");
        } else {
            assert_eq!(t.timer_in_arg, off("runtime.timeTimer.timer"), "{v}");
            assert_eq!(t.is_chan, off("runtime.timer.isChan"), "{v}");
            assert_eq!(t.state, off("runtime.timer.state"), "{v}");
            assert_eq!(t.g_timer, off("runtime.g.timer"), "{v}");
            assert_eq!(t.g_sleep_when, off("runtime.g.sleepWhen"), "{v}");
            assert_eq!(
                t.p_timer_heap,
                off("runtime.p.timers") + off("runtime.timers.heap"),
                "{v}"
            );
            assert_eq!(t.heap_entry, off("runtime.timerWhen.(size)"), "{v}");
        }
        assert!(target.runtime_vars.allp.is_some(), "{v}: no runtime.allp");
        let plan = &target.timer_probes;
        assert!(plan.missing.is_empty(), "{v}: missing {:?}", plan.missing);
        for (what, points) in [
            ("create", &plan.create),
            ("reset", &plan.reset),
            ("stop", &plan.stop),
            ("fire", &plan.fire),
            ("sleep", &plan.sleep),
            ("context create", &plan.context_create),
            ("context cancel", &plan.context_cancel),
        ] {
            assert!(!points.is_empty(), "{v}: no {what} probe");
        }
        assert_eq!(plan.reset_when.is_empty(), minor > 22, "{v}");
        assert!(plan.send_time != 0 && plan.go_func != 0 && plan.goroutine_ready != 0);
        eprintln!("{v}: {t:?}");
    }
}

#[test]
fn offsets_match_go_debug_dwarf_on_every_toolchain() {
    let Some(toolchains) = toolchains_or_skip("offsets") else {
        return;
    };
    for toolchain in toolchains {
        let program = build_program(&toolchain, false);
        let target = Target::from_path(&program).unwrap();
        assert_eq!(target.go_version.raw, toolchain.version);
        assert!(target.go_version.is_supported());
        assert!(!target.pie);
        assert_eq!(target.load_bias, 0);

        let oracle = build(&toolchain, "dwarf-oracle", DWARF_ORACLE, &[], "amd64");
        let out = Command::new(oracle).arg(&program).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fields = oracle_fields(&out.stdout);
        let off = |f: &str| {
            fields
                .get(f)
                .unwrap_or_else(|| panic!("oracle has no {f}"))
                .0
        };
        let o = &target.offsets;
        assert_eq!(o.g_goid, off("runtime.g.goid"));
        assert_eq!(o.g_parent_goid, off("runtime.g.parentGoid"));
        assert_eq!(o.g_gopc, off("runtime.g.gopc"));
        assert_eq!(o.g_startpc, off("runtime.g.startpc"));
        assert_eq!(o.g_atomicstatus, off("runtime.g.atomicstatus"));
        assert_eq!(o.g_waitreason, off("runtime.g.waitreason"));
        assert_eq!(o.g_waitreason_size, fields["runtime.g.waitreason"].1);
        assert_eq!(o.g_waitreason_size, 1);
        assert_eq!(o.g_m, off("runtime.g.m"));
        assert_eq!(o.g_sched, off("runtime.g.sched"));
        assert_eq!(o.gobuf_sp, off("runtime.gobuf.sp"));
        assert_eq!(o.gobuf_pc, off("runtime.gobuf.pc"));
        assert_eq!(o.gobuf_bp, off("runtime.gobuf.bp"));
        assert_eq!(o.m_curg, off("runtime.m.curg"));
        assert_eq!(o.g_waitsince, off("runtime.g.waitsince"));
        let stack = off("runtime.g.stack");
        assert_eq!(o.g_stack_lo, stack + off("runtime.stack.lo"));
        assert_eq!(o.g_stack_hi, stack + off("runtime.stack.hi"));
        assert_eq!(o.g_size, off("runtime.g.(size)"));
        assert_eq!(o.g_waiting, off("runtime.g.waiting"));
        assert_eq!(fields["runtime.g.waiting"].1, 8);
        assert_eq!(o.sudog_waitlink, off("runtime.sudog.waitlink"));
        assert_eq!(o.g_tracking_seq, off("runtime.g.trackingSeq"));
        assert_eq!(fields["runtime.g.trackingSeq"].1, 1);
        assert_eq!(o.schedt_goidgen, off("runtime.schedt.goidgen"));
        assert_eq!(fields["runtime.schedt.goidgen"].1, 8);
        // sudog.c: a *hchan up to Go 1.25, then a maybeTraceableChan whose
        // address word is maybeTraceablePtr.vu.
        let minor = target.go_version.minor;
        let (c, c_size) = fields["runtime.sudog.c"];
        if minor <= 25 {
            assert_eq!((o.sudog_c, c_size), (c, 8), "{}", toolchain.version);
        } else {
            assert_eq!(c_size, 16, "{}", toolchain.version);
            assert_eq!(
                o.sudog_c,
                c + off("runtime.maybeTraceableChan.maybeTraceablePtr")
                    + off("runtime.maybeTraceablePtr.vu"),
                "{}",
                toolchain.version
            );
        }
        eprintln!("{}: {}", toolchain.version, o);
    }
}

#[test]
fn probe_plan_points_at_the_right_instructions() {
    let Some(toolchains) = toolchains_or_skip("probe plan") else {
        return;
    };
    for toolchain in toolchains {
        for pie in [false, true] {
            let program = build_program(&toolchain, pie);
            let target = Target::from_path(&program).unwrap();
            let file = std::fs::read(&program).unwrap();
            let byte_at = |p: &ProbePoint| file[p.file_offset as usize];
            let plan = &target.probes;
            assert!(!plan.spawn.is_empty());
            for ret in &plan.spawn {
                assert_eq!(
                    (ret.function.as_str(), ret.placement),
                    (NEWPROC1, Placement::Ret)
                );
                assert_eq!(byte_at(ret), 0xc3, "{ret}");
            }
            for (point, function) in [
                (&plan.park, GOPARK),
                (&plan.ready, READY),
                (&plan.exit, GOEXIT1),
            ] {
                assert_eq!(point.function, function);
                // All three are split-stack functions in every supported release.
                assert_eq!(point.placement, Placement::AfterPrologue, "{point}");
                assert_eq!(byte_at(point), 0x55, "{point}: not a push rbp");
                let entry = target.symbolizer.function_name(point.vaddr);
                assert_eq!(entry.as_deref(), Some(function));
            }
            eprintln!(
                "{}{}: newproc1 RETs {}, gopark +{:#x} {}, ready +{:#x} {}, goexit1 +{:#x} {}",
                toolchain.version,
                if pie { " (pie)" } else { "" },
                plan.spawn.len(),
                plan.park.vaddr - symbol_address(&file, GOPARK),
                plan.park.placement,
                plan.ready.vaddr - symbol_address(&file, READY),
                plan.ready.placement,
                plan.exit.vaddr - symbol_address(&file, GOEXIT1),
                plan.exit.placement,
            );
        }
    }
}

fn symbol_address(file: &[u8], name: &str) -> u64 {
    ElfImage::parse(file)
        .ok()
        .unwrap()
        .symbol(name)
        .unwrap()
        .address
}

/// Code → string table from the toolchain's own `runtime2.go`.
fn wait_reasons_from_source(toolchain: &Toolchain) -> Vec<String> {
    let out = go_command(&toolchain.go)
        .args(["env", "GOROOT"])
        .output()
        .unwrap();
    let goroot = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let source = std::fs::read_to_string(goroot.join("src/runtime/runtime2.go")).unwrap();
    let mut lines = source.lines();
    let mut order = Vec::new();
    lines
        .by_ref()
        .find(|l| l.contains("waitReasonZero") && l.contains("= iota"))
        .unwrap();
    order.push("waitReasonZero".to_string());
    for line in lines.by_ref() {
        let line = line.trim();
        if line == ")" {
            break;
        }
        if let Some(ident) = line
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with("waitReason"))
        {
            order.push(ident.to_string());
        }
    }
    lines
        .by_ref()
        .find(|l| l.starts_with("var waitReasonStrings"))
        .unwrap();
    let mut strings = HashMap::new();
    for line in lines {
        if line.trim() == "}" {
            break;
        }
        if let Some((ident, rest)) = line.trim().split_once(':') {
            let value = rest.trim().trim_end_matches(',').trim_matches('"');
            strings.insert(ident.trim().to_string(), value.to_string());
        }
    }
    let mut table: Vec<String> = order
        .iter()
        .map(|i| strings.get(i).cloned().unwrap_or_default())
        .collect();
    let last = order.iter().rposition(|i| strings.contains_key(i)).unwrap();
    table.truncate(last + 1);
    table
}

#[test]
fn wait_reasons_match_each_versions_runtime_source() {
    let Some(toolchains) = toolchains_or_skip("wait reasons") else {
        return;
    };
    let mut chan_receive = Vec::new();
    for toolchain in toolchains {
        let expected = wait_reasons_from_source(&toolchain);
        for pie in [false, true] {
            let target = Target::from_path(&build_program(&toolchain, pie)).unwrap();
            let actual: Vec<String> = target
                .wait_reasons
                .iter()
                .map(|(_, n)| n.to_string())
                .collect();
            assert_eq!(actual, expected, "{}", toolchain.version);
        }
        // In a PIE each string pointer also has an R_X86_64_RELATIVE relocation
        // (used when the file holds 0 there); its addend is the same address.
        let pie = std::fs::read(build_program(&toolchain, true)).unwrap();
        let elf = ElfImage::parse(&pie).ok().unwrap();
        let table = elf.symbol(wait_reasons::SYMBOL).unwrap();
        let words = wait_reasons::string_headers(elf.bytes_at(table.address, table.size).unwrap());
        for (i, (ptr, len)) in words
            .into_iter()
            .enumerate()
            .filter(|(_, (_, len))| *len > 0)
        {
            let slot = table.address + 16 * i as u64;
            assert_eq!(
                elf.relative_relocation_at(slot),
                Some(ptr),
                "{} slot {i} len {len}",
                toolchain.version
            );
        }
        let target = Target::from_path(&build_program(&toolchain, false)).unwrap();
        let code = target.wait_reasons.code_of("chan receive").unwrap();
        chan_receive.push(format!("{}={code}", toolchain.version));
        let minor = target.go_version.minor;
        // GUIDE §4: the 1.26 reordering moved "chan receive".
        assert_eq!(
            code,
            if minor >= 26 { 19 } else { 14 },
            "{}",
            toolchain.version
        );
    }
    eprintln!("code of \"chan receive\": {}", chan_receive.join(" "));
}

#[test]
fn symbolizer_resolves_functions_and_lines() {
    let Some(toolchain) = newest_or_skip("symbolizer") else {
        return;
    };
    let program = build_program(&toolchain, false);
    let target = Target::from_path(&program).unwrap();
    let file = std::fs::read(&program).unwrap();
    let worker = symbol_address(&file, "main.worker");
    assert_eq!(
        target.symbolizer.function_name(worker).as_deref(),
        Some("main.worker")
    );
    assert_eq!(
        target.symbolizer.function_name(worker + 3).as_deref(),
        Some("main.worker")
    );
    assert_eq!(target.symbolizer.function_name(0), None);
    let frames = target.symbolizer.frames(worker);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].function, "main.worker");
    assert!(frames[0].file.as_deref().unwrap().ends_with("/main.go"));
    assert_eq!(frames[0].line, Some(line_of(PROGRAM, "func worker(")));
    // Cached result is the same.
    assert_eq!(target.symbolizer.frames(worker), frames);
    assert!(target.symbolizer.frames(1).is_empty());
}

fn line_of(source: &str, needle: &str) -> u32 {
    source.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1
}

// ---------------------------------------------------------------------------
// Live processes (from_pid)

/// A started test program; killed on drop.
struct Running {
    child: Child,
    stdout: Vec<String>,
}

impl Running {
    fn start(path: &Path) -> Running {
        // A program written by this process may be "busy" for a moment:
        // another test thread forking meanwhile holds its write descriptor
        // until its child execs.
        let mut attempts = 0;
        let mut child = loop {
            match Command::new(path)
                .env("GOTRACEBACK", "system")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                spawned => break spawned.unwrap(),
            }
        };
        let stdout = child.stdout.take().unwrap();
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let done = line == "ready";
                if send.send(line).is_err() || done {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            let line = receive
                .recv_timeout(Duration::from_secs(60))
                .expect("test program did not get ready");
            if line == "ready" {
                break;
            }
            lines.push(line);
        }
        Running {
            child,
            stdout: lines,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"x");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One goroutine of the program's own dump.
#[derive(Debug)]
struct DumpedGoroutine {
    goid: u64,
    reason: String,
    /// The goroutine's own function (bottom of the dump, above "created by").
    last_function: String,
    /// (function, parent goid, file, line, pc offset from the creator's entry)
    created_by: Option<(String, u64, String, u32, u64)>,
}

fn parse_dump(lines: &[String]) -> Vec<DumpedGoroutine> {
    let start = lines.iter().position(|l| l == "dump").unwrap() + 1;
    let end = lines.iter().position(|l| l == "end dump").unwrap();
    let text = lines[start..end].join("\n");
    let mut goroutines = Vec::new();
    for block in text.split("\n\n") {
        let mut block_lines = block.lines();
        let header = block_lines.next().unwrap();
        let Some(rest) = header.strip_prefix("goroutine ") else {
            continue;
        };
        let goid = rest.split(' ').next().unwrap().parse().unwrap();
        let reason = header
            .split_once('[')
            .unwrap()
            .1
            .split([']', ','])
            .next()
            .unwrap()
            .to_string();
        let lines: Vec<&str> = block_lines.collect();
        let functions: Vec<&str> = lines
            .iter()
            .filter(|l| !l.starts_with('\t') && !l.starts_with("created by"))
            .map(|l| l.split('(').next().unwrap())
            .collect();
        let created_by = lines
            .iter()
            .position(|l| l.starts_with("created by "))
            .map(|i| {
                let words: Vec<&str> = lines[i].split(' ').collect();
                let location = lines[i + 1].trim();
                let (file_line, offset) = location.split_once(" +0x").unwrap();
                let (file, line) = file_line.rsplit_once(':').unwrap();
                (
                    words[2].to_string(),
                    words.get(5).map(|g| g.parse().unwrap()).unwrap_or(0),
                    file.to_string(),
                    line.parse().unwrap(),
                    u64::from_str_radix(offset.split(' ').next().unwrap(), 16).unwrap(),
                )
            });
        goroutines.push(DumpedGoroutine {
            goid,
            reason,
            last_function: functions.last().unwrap().to_string(),
            created_by,
        });
    }
    goroutines
}

/// `runtime.g` fields read from the live process.
#[derive(Debug)]
struct LiveG {
    address: u64,
    goid: u64,
    parent_goid: u64,
    status: u32,
    waitreason: u8,
    gopc: u64,
    startpc: u64,
    m: u64,
    sched_pc: u64,
    sched_sp: u64,
    sched_bp: u64,
}

fn read_u64(memory: &ProcessMemory, address: u64) -> u64 {
    memory.read_u64(address).unwrap()
}

fn read_all_gs(target: &Target, memory: &ProcessMemory, allgs: u64) -> Vec<LiveG> {
    let o = &target.offsets;
    let slice = allgs + target.load_bias;
    let (array, len) = (read_u64(memory, slice), read_u64(memory, slice + 8));
    assert!(len > 0 && len < 10_000);
    (0..len)
        .map(|i| {
            let g = read_u64(memory, array + 8 * i);
            LiveG {
                address: g,
                goid: read_u64(memory, g + o.g_goid),
                parent_goid: read_u64(memory, g + o.g_parent_goid),
                status: memory.read_u32(g + o.g_atomicstatus).unwrap(),
                waitreason: memory.read_u8(g + o.g_waitreason).unwrap(),
                gopc: read_u64(memory, g + o.g_gopc),
                startpc: read_u64(memory, g + o.g_startpc),
                m: read_u64(memory, g + o.g_m),
                sched_pc: read_u64(memory, g + o.g_sched + o.gobuf_pc),
                sched_sp: read_u64(memory, g + o.g_sched + o.gobuf_sp),
                sched_bp: read_u64(memory, g + o.g_sched + o.gobuf_bp),
            }
        })
        .collect()
}

const G_WAITING: u32 = 4;
const G_SYSCALL: u32 = 3;
const G_SCAN: u32 = 0x1000;

/// Attaches to the running program and checks every fact against the
/// program's own goroutine dump and CallersFrames output.
fn check_live_process(toolchain: &Toolchain, pie: bool) {
    let program = build_program(toolchain, pie);
    let running = Running::start(&program);
    let pid = running.pid();
    let target = Target::from_pid(pid).unwrap();
    let label = format!("{}{}", toolchain.version, if pie { " pie" } else { "" });

    assert_eq!(target.pid, Some(pid));
    assert_eq!(
        target.attach_path,
        PathBuf::from(format!("/proc/{pid}/exe"))
    );
    assert_eq!(
        target.display_path,
        std::fs::canonicalize(&program)
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(target.pie, pie);
    if pie {
        assert_ne!(target.load_bias, 0, "{label}");
        assert_eq!(target.load_bias % 4096, 0, "{label}");
    } else {
        assert_eq!(target.load_bias, 0, "{label}");
    }
    // The probe addresses, relocated, hold the same bytes in memory as in the file.
    let memory = ProcessMemory::open(pid).unwrap();
    let file = std::fs::read(&program).unwrap();
    for point in target.probes.spawn.iter().chain([
        &target.probes.park,
        &target.probes.ready,
        &target.probes.exit,
    ]) {
        let mut live = vec![0u8; 4];
        memory
            .read(point.vaddr + target.load_bias, &mut live)
            .unwrap();
        let offset = point.file_offset as usize;
        assert_eq!(live, &file[offset..offset + 4], "{label}: {point}");
    }
    // Same wait reasons as from the file.
    assert_eq!(
        target.wait_reasons,
        Target::from_path(&program).unwrap().wait_reasons
    );
    // And as read from memory only.
    let elf = ElfImage::parse(&file).ok().unwrap();
    let table = elf.symbol(wait_reasons::SYMBOL).unwrap();
    assert_eq!(
        wait_reasons::from_memory(&memory, table, target.load_bias).unwrap(),
        target.wait_reasons
    );

    // Goroutines: runtime.allgs read with our offsets vs the runtime's dump.
    let dump = parse_dump(&running.stdout);
    let gs = read_all_gs(
        &target,
        &memory,
        elf.symbol("runtime.allgs").unwrap().address,
    );
    let main_main = elf.symbol("main.main").unwrap().address;
    let mut checked = 0;
    for dumped in dump
        .iter()
        .filter(|d| d.created_by.as_ref().is_some_and(|c| c.0 == "main.main"))
    {
        let g = gs
            .iter()
            .find(|g| g.goid == dumped.goid)
            .unwrap_or_else(|| panic!("{label}: no g {}", dumped.goid));
        let (creator, parent, file_name, line, offset) = dumped.created_by.clone().unwrap();
        assert_eq!(g.status & !G_SCAN, G_WAITING, "{label}: {dumped:?}");
        assert_eq!(
            target.wait_reasons.name(g.waitreason),
            Some(dumped.reason.as_str()),
            "{label}: {dumped:?}"
        );
        assert_eq!(g.parent_goid, parent, "{label}");
        assert_eq!(target.to_vaddr(g.gopc), main_main + offset, "{label}");
        let site = target
            .symbolizer
            .creation_site(target.to_vaddr(g.gopc))
            .unwrap();
        assert_eq!(
            (site.file.as_deref(), site.line),
            (Some(file_name.as_str()), Some(line)),
            "{label}"
        );
        assert_eq!(site.function, creator);
        let statement = PROGRAM.lines().nth(line as usize - 1).unwrap();
        assert!(
            statement.trim_start().starts_with("go "),
            "{label}: {statement}"
        );
        let start = target.symbolizer.function_name(target.to_vaddr(g.startpc));
        assert_eq!(
            start.as_deref(),
            Some(dumped.last_function.as_str()),
            "{label}"
        );
        // gopark switches away with mcall, which saves gopark's own pc/sp/bp.
        let parked_in = target.symbolizer.function_name(target.to_vaddr(g.sched_pc));
        assert_eq!(parked_in.as_deref(), Some(GOPARK), "{label}");
        assert!(g.sched_sp != 0 && g.sched_bp > g.sched_sp, "{label}: {g:?}");
        // The frame-pointer chain from sched.bp reaches the goroutine's function.
        let walked = walk_frame_pointers(&target, &memory, g.sched_bp);
        assert!(
            walked.contains(&dumped.last_function),
            "{label}: {walked:?} vs {dumped:?}"
        );
        assert_eq!(g.m, 0, "{label}: a parked goroutine has no m");
        checked += 1;
    }
    assert_eq!(checked, 4, "{label}: 3 workers + 1 locker");
    // The main goroutine blocks in read(0) right after printing "ready": in a
    // syscall it keeps its m, whose curg is the goroutine itself.
    let allgs = elf.symbol("runtime.allgs").unwrap().address;
    let mut main_g = None;
    for _ in 0..200 {
        let gs = read_all_gs(&target, &memory, allgs);
        main_g = gs
            .into_iter()
            .find(|g| g.goid == 1 && g.status & !G_SCAN == G_SYSCALL);
        if main_g.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let main_g = main_g.unwrap_or_else(|| panic!("{label}: goroutine 1 never entered read(0)"));
    assert_ne!(main_g.m, 0, "{label}");
    let curg = read_u64(&memory, main_g.m + target.offsets.m_curg);
    assert_eq!(curg, main_g.address, "{label}");

    // Inlined frames: the return address from capture() is inside leaf()
    // inlined in middle() inlined in main.main.
    let (pc, frames) = callers_frames(&running.stdout);
    let ours = target.symbolizer.frames(target.to_vaddr(pc) - 1);
    assert!(
        frames.len() >= 3,
        "{label}: expected inlining, runtime says {frames:?}"
    );
    assert_eq!(ours, frames, "{label}");
    eprintln!(
        "{label}: live process checks passed (bias {:#x}), frames at {pc:#x}: {ours:?}",
        target.load_bias
    );
}

/// Functions of the return addresses found by following saved frame pointers.
fn walk_frame_pointers(target: &Target, memory: &ProcessMemory, mut bp: u64) -> Vec<String> {
    let mut functions = Vec::new();
    for _ in 0..32 {
        let (Ok(saved_bp), Ok(ret)) = (memory.read_u64(bp), memory.read_u64(bp + 8)) else {
            break;
        };
        match target.symbolizer.function_name(target.to_vaddr(ret) - 1) {
            Some(name) => functions.push(name),
            None => break,
        }
        let next = saved_bp;
        if next <= bp {
            break;
        }
        bp = next;
    }
    functions
}

/// The return address from the non-inlined `capture` (in main.main's code)
/// and the frames the runtime expands for it, up to main.main.
fn callers_frames(lines: &[String]) -> (u64, Vec<Frame>) {
    let mut pc = None;
    let mut frames = Vec::new();
    for line in lines {
        match line.split('\t').collect::<Vec<_>>().as_slice() {
            ["pc", value, _] if pc.is_none() => {
                pc = Some(u64::from_str_radix(value.trim_start_matches("0x"), 16).unwrap());
            }
            ["frame", function, file, line]
                if !frames.iter().any(|f: &Frame| f.function == "main.main") =>
            {
                frames.push(Frame {
                    function: function.to_string(),
                    file: Some(file.to_string()),
                    line: Some(line.parse().unwrap()),
                })
            }
            _ => {}
        }
    }
    (pc.unwrap(), frames)
}

#[test]
fn live_process_matches_the_runtimes_own_view() {
    let Some(toolchains) = toolchains_or_skip("live process") else {
        return;
    };
    for toolchain in &toolchains {
        check_live_process(toolchain, false);
    }
    for toolchain in &toolchains {
        check_live_process(toolchain, true);
    }
}

#[test]
fn deleted_executable_is_still_inspectable() {
    let Some(toolchain) = newest_or_skip("deleted executable") else {
        return;
    };
    let program = build_program(&toolchain, false);
    let dir = workspace_target_dir()
        .join("go-test-builds")
        .join(format!("deleted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("prog-copy");
    std::fs::copy(&program, &copy).unwrap();
    let running = Running::start(&copy);
    std::fs::remove_file(&copy).unwrap();
    let target = Target::from_pid(running.pid()).unwrap();
    assert!(
        target.display_path.ends_with("prog-copy (deleted)"),
        "{}",
        target.display_path
    );
    assert_eq!(target.go_version.raw, toolchain.version);
    assert!(!target.probes.spawn.is_empty());
    drop(running);
    let _ = std::fs::remove_dir(&dir);
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn missing_process_and_file() {
    let err = Target::from_pid(u32::MAX - 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no process with pid {}", u32::MAX - 1)
    );
    let err = Target::from_path(Path::new("/nonexistent/tracer-test")).unwrap_err();
    assert!(matches!(err, TargetError::Io { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/tracer-test: "),
        "{err}"
    );
}

#[test]
fn non_go_programs_are_refused() {
    let sleep = Path::new("/bin/sleep");
    let err = Target::from_path(sleep).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/bin/sleep is not a Go program: no .go.buildinfo section"
    );
    let mut child = Command::new(sleep).arg("30").spawn().unwrap();
    let err = Target::from_pid(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let err = err.unwrap_err();
    let exe = std::fs::canonicalize(sleep).unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "pid {} ({}) is not a Go program: no .go.buildinfo section",
            child.id(),
            exe.display()
        )
    );
    let script = workspace_target_dir()
        .join("go-test-builds")
        .join("script.sh");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let err = Target::from_path(&script).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is not a Go program: it is not an ELF executable"),
        "{err}"
    );
}

#[test]
fn other_architectures_are_refused() {
    let Some(toolchain) = newest_or_skip("arch") else {
        return;
    };
    let arm = build(&toolchain, "prog-arm64", PROGRAM, &[], "arm64");
    let err = Target::from_path(&arm).unwrap_err();
    assert!(
        matches!(&err, TargetError::UnsupportedArch { arch, .. } if arch == "arm64"),
        "{err}"
    );
    assert!(err.to_string().contains("only x86-64 (amd64)"), "{err}");
}

/// Rewrites the version string inside `.go.buildinfo` (same length).
fn with_patched_version(program: &Path, from: &str, to: &str) -> PathBuf {
    assert_eq!(from.len(), to.len());
    let mut data = std::fs::read(program).unwrap();
    let magic = data
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .unwrap();
    let at = magic
        + data[magic..]
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap();
    data[at..at + to.len()].copy_from_slice(to.as_bytes());
    let out = program.with_file_name(format!("patched-{to}"));
    std::fs::write(&out, data).unwrap();
    out
}

#[test]
fn unsupported_and_unreleased_versions_are_refused() {
    let Some(toolchains) = toolchains_or_skip("versions") else {
        return;
    };
    let Some(toolchain) = toolchains
        .iter()
        .find(|t| t.version.len() == "go1.22.10".len())
    else {
        eprintln!("versions: no toolchain with a 9-character version, skipped");
        return;
    };
    let program = build_program(toolchain, false);
    let old = with_patched_version(&program, &toolchain.version, "go1.20.10");
    let err = Target::from_path(&old).unwrap_err();
    assert!(
        matches!(&err, TargetError::UnsupportedGoVersion { version, .. } if version == "go1.20.10"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("supported versions are Go 1.21 to 1.27"),
        "{err}"
    );
    let rc = with_patched_version(&program, &toolchain.version, "go1.27rc1");
    let err = Target::from_path(&rc).unwrap_err();
    assert!(
        err.to_string()
            .contains("go1.27rc1, which is not supported (pre-release"),
        "{err}"
    );
}

//! The pprof profile read back by a decoder written from profile.proto and by
//! the real `go tool pprof`; the trace parsed as JSON and checked against the
//! rules of the trace-event format.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::perfetto::TraceWriter;
use super::pprof::{goroutine_profile, ProfileSample};
use crate::report::SourceLocation;

fn frame(pc: u64, function: &str, file: &str, line: u32) -> SourceLocation {
    SourceLocation {
        pc: format!("{pc:#x}"),
        function: function.into(),
        file: Some(file.into()),
        line: Some(line),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn gopark() -> SourceLocation {
    frame(
        0x43e2ce,
        "runtime.gopark",
        "/usr/lib/go/src/runtime/proc.go",
        435,
    )
}

/// Three goroutines in `main.worker` (in two samples to merge, labels in
/// either order), two in `main.server`, one running `main.busy`.
fn example_samples() -> Vec<ProfileSample> {
    let worker = vec![
        gopark(),
        frame(
            0x40a1b2,
            "runtime.chanrecv1",
            "/usr/lib/go/src/runtime/chan.go",
            489,
        ),
        frame(0x4a1b2c, "main.worker", "/src/app/main.go", 42),
        frame(0x4a1e00, "main.main.func1", "/src/app/main.go", 17),
    ];
    let server = vec![
        gopark(),
        frame(
            0x44f0aa,
            "runtime.selectgo",
            "/usr/lib/go/src/runtime/select.go",
            351,
        ),
        frame(0x4a2000, "main.(*Server).serve", "/src/app/server.go", 88),
    ];
    let busy = vec![frame(0x4a3000, "main.busy", "/src/app/main.go", 60)];
    vec![
        ProfileSample {
            frames: worker.clone(),
            count: 2,
            labels: labels(&[
                ("state", "chan receive"),
                ("created_by", "main.main at /src/app/main.go:17"),
            ]),
        },
        ProfileSample {
            frames: server,
            count: 2,
            labels: labels(&[("state", "select")]),
        },
        ProfileSample {
            frames: worker,
            count: 1,
            labels: labels(&[
                ("created_by", "main.main at /src/app/main.go:17"),
                ("state", "chan receive"),
            ]),
        },
        ProfileSample {
            frames: busy,
            count: 1,
            labels: labels(&[("state", "running")]),
        },
    ]
}

// ---------------------------------------------------------------------------
// A protobuf decoder for the fields profile.proto gives them

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = buf[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
    }
    panic!("varint longer than 10 bytes");
}

fn fields(buf: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos);
        let field = match tag & 7 {
            0 => Field::Varint(read_varint(buf, &mut pos)),
            2 => {
                let len = read_varint(buf, &mut pos) as usize;
                pos += len;
                Field::Bytes(&buf[pos - len..pos])
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((tag >> 3, field));
    }
    out
}

fn varint(field: &Field) -> u64 {
    match field {
        Field::Varint(v) => *v,
        Field::Bytes(_) => panic!("expected a varint"),
    }
}

fn bytes<'a>(field: &Field<'a>) -> &'a [u8] {
    match field {
        Field::Bytes(b) => b,
        Field::Varint(_) => panic!("expected bytes"),
    }
}

/// A repeated scalar, packed or not.
fn push_repeated(out: &mut Vec<u64>, field: &Field) {
    match field {
        Field::Varint(v) => out.push(*v),
        Field::Bytes(b) => {
            let mut pos = 0;
            while pos < b.len() {
                out.push(read_varint(b, &mut pos));
            }
        }
    }
}

#[derive(Debug, Default)]
struct Mapping {
    id: u64,
    start: u64,
    limit: u64,
    has_functions: bool,
    has_filenames: bool,
    has_line_numbers: bool,
}

#[derive(Debug, Default)]
struct Location {
    mapping_id: u64,
    address: u64,
    /// (function id, line)
    lines: Vec<(u64, i64)>,
}

#[derive(Debug, Default)]
struct Function {
    name: usize,
    system_name: usize,
    file: usize,
}

#[derive(Debug, Default)]
struct Sample {
    location_ids: Vec<u64>,
    values: Vec<u64>,
    /// (key, str) string indices
    labels: Vec<(usize, usize)>,
}

#[derive(Debug, Default)]
struct Profile {
    sample_types: Vec<(usize, usize)>,
    samples: Vec<Sample>,
    mappings: Vec<Mapping>,
    locations: HashMap<u64, Location>,
    functions: HashMap<u64, Function>,
    strings: Vec<String>,
    time_nanos: i64,
    duration_nanos: i64,
    period_type: Option<(usize, usize)>,
    period: i64,
}

/// A resolved sample: frames as (function, file, line, address).
#[derive(Debug, PartialEq, Eq)]
struct Stack {
    frames: Vec<(String, String, i64, u64)>,
    count: u64,
    labels: Vec<(String, String)>,
}

fn value_type(buf: &[u8]) -> (usize, usize) {
    let mut vt = (0, 0);
    for (n, f) in fields(buf) {
        match n {
            1 => vt.0 = varint(&f) as usize,
            2 => vt.1 = varint(&f) as usize,
            _ => {}
        }
    }
    vt
}

fn decode(gz: &[u8]) -> Profile {
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "not gzip");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap();
    let mut p = Profile::default();
    for (n, f) in fields(&raw) {
        match n {
            1 => p.sample_types.push(value_type(bytes(&f))),
            2 => {
                let mut s = Sample::default();
                for (n, f) in fields(bytes(&f)) {
                    match n {
                        1 => push_repeated(&mut s.location_ids, &f),
                        2 => push_repeated(&mut s.values, &f),
                        3 => {
                            let mut label = (0, 0);
                            for (n, f) in fields(bytes(&f)) {
                                match n {
                                    1 => label.0 = varint(&f) as usize,
                                    2 => label.1 = varint(&f) as usize,
                                    other => panic!("label field {other}"),
                                }
                            }
                            s.labels.push(label);
                        }
                        other => panic!("sample field {other}"),
                    }
                }
                p.samples.push(s);
            }
            3 => {
                let mut m = Mapping::default();
                for (n, f) in fields(bytes(&f)) {
                    match n {
                        1 => m.id = varint(&f),
                        2 => m.start = varint(&f),
                        3 => m.limit = varint(&f),
                        7 => m.has_functions = varint(&f) != 0,
                        8 => m.has_filenames = varint(&f) != 0,
                        9 => m.has_line_numbers = varint(&f) != 0,
                        other => panic!("mapping field {other}"),
                    }
                }
                p.mappings.push(m);
            }
            4 => {
                let mut id = 0;
                let mut l = Location::default();
                for (n, f) in fields(bytes(&f)) {
                    match n {
                        1 => id = varint(&f),
                        2 => l.mapping_id = varint(&f),
                        3 => l.address = varint(&f),
                        4 => {
                            let mut line = (0, 0);
                            for (n, f) in fields(bytes(&f)) {
                                match n {
                                    1 => line.0 = varint(&f),
                                    2 => line.1 = varint(&f) as i64,
                                    other => panic!("line field {other}"),
                                }
                            }
                            l.lines.push(line);
                        }
                        other => panic!("location field {other}"),
                    }
                }
                assert_ne!(id, 0, "location ids are nonzero");
                assert!(
                    p.locations.insert(id, l).is_none(),
                    "location id {id} twice"
                );
            }
            5 => {
                let mut id = 0;
                let mut func = Function::default();
                for (n, f) in fields(bytes(&f)) {
                    match n {
                        1 => id = varint(&f),
                        2 => func.name = varint(&f) as usize,
                        3 => func.system_name = varint(&f) as usize,
                        4 => func.file = varint(&f) as usize,
                        other => panic!("function field {other}"),
                    }
                }
                assert_ne!(id, 0, "function ids are nonzero");
                assert!(
                    p.functions.insert(id, func).is_none(),
                    "function id {id} twice"
                );
            }
            6 => p
                .strings
                .push(String::from_utf8(bytes(&f).to_vec()).unwrap()),
            9 => p.time_nanos = varint(&f) as i64,
            10 => p.duration_nanos = varint(&f) as i64,
            11 => p.period_type = Some(value_type(bytes(&f))),
            12 => p.period = varint(&f) as i64,
            other => panic!("profile field {other}"),
        }
    }
    p
}

impl Profile {
    fn string(&self, i: usize) -> &str {
        &self.strings[i]
    }

    fn stacks(&self) -> Vec<Stack> {
        self.samples
            .iter()
            .map(|s| {
                assert_eq!(s.values.len(), self.sample_types.len());
                Stack {
                    frames: s
                        .location_ids
                        .iter()
                        .map(|id| {
                            let l = &self.locations[id];
                            assert_eq!(l.lines.len(), 1, "one line per location");
                            let (function_id, line) = l.lines[0];
                            let f = &self.functions[&function_id];
                            (
                                self.string(f.name).to_string(),
                                self.string(f.file).to_string(),
                                line,
                                l.address,
                            )
                        })
                        .collect(),
                    count: s.values[0],
                    labels: s
                        .labels
                        .iter()
                        .map(|&(k, v)| (self.string(k).to_string(), self.string(v).to_string()))
                        .collect(),
                }
            })
            .collect()
    }
}

fn expected_stack(frames: &[SourceLocation], count: u64, labels: &[(&str, &str)]) -> Stack {
    Stack {
        frames: frames
            .iter()
            .map(|f| {
                (
                    f.function.clone(),
                    f.file.clone().unwrap_or_default(),
                    f.line.map_or(0, i64::from),
                    u64::from_str_radix(f.pc.trim_start_matches("0x"), 16).unwrap(),
                )
            })
            .collect(),
        count,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

// ---------------------------------------------------------------------------
// pprof

#[test]
fn profile_has_the_shape_of_go_goroutine_profiles() {
    let p = decode(&goroutine_profile(
        &example_samples(),
        1_700_000_000_123_456_789,
        5_000_000_000,
    ));
    assert_eq!(p.strings[0], "", "string_table[0] must be empty");
    let named = |(t, u): (usize, usize)| format!("{}/{}", p.string(t), p.string(u));
    let sample_types: Vec<String> = p.sample_types.iter().map(|&vt| named(vt)).collect();
    assert_eq!(sample_types, ["goroutine/count"]);
    assert_eq!(p.period_type.map(named).as_deref(), Some("goroutine/count"));
    assert_eq!(p.period, 1);
    assert_eq!(p.time_nanos, 1_700_000_000_123_456_789);
    assert_eq!(p.duration_nanos, 5_000_000_000);

    // One mapping, saying everything is symbolized, covering every address.
    assert_eq!(p.mappings.len(), 1);
    let m = &p.mappings[0];
    assert!(m.id != 0 && m.has_functions && m.has_filenames && m.has_line_numbers);
    for l in p.locations.values() {
        assert_eq!(l.mapping_id, m.id);
        assert!(
            (m.start..m.limit).contains(&l.address),
            "{:#x} outside the mapping",
            l.address
        );
    }
    for f in p.functions.values() {
        assert_eq!(f.system_name, f.name);
    }

    let samples = example_samples();
    let state_chan = [
        ("created_by", "main.main at /src/app/main.go:17"),
        ("state", "chan receive"),
    ];
    assert_eq!(
        p.stacks(),
        [
            expected_stack(&samples[0].frames, 3, &state_chan),
            expected_stack(&samples[1].frames, 2, &[("state", "select")]),
            expected_stack(&samples[3].frames, 1, &[("state", "running")]),
        ]
    );
    // 7 distinct frames (gopark shared), 7 functions, each once.
    assert_eq!(p.locations.len(), 7);
    assert_eq!(p.functions.len(), 7);
    let mut strings = p.strings.clone();
    strings.sort();
    strings.dedup();
    assert_eq!(strings.len(), p.strings.len(), "strings are interned once");
}

#[test]
fn samples_merge_only_with_the_same_frames_and_labels() {
    let stack = vec![
        gopark(),
        frame(0x4a1b2c, "main.worker", "/src/app/main.go", 42),
    ];
    let other_line = vec![
        gopark(),
        frame(0x4a1b40, "main.worker", "/src/app/main.go", 43),
    ];
    let sample = |frames: &Vec<SourceLocation>, count, l: &[(&str, &str)]| ProfileSample {
        frames: frames.clone(),
        count,
        labels: labels(l),
    };
    let p = decode(&goroutine_profile(
        &[
            sample(&stack, 1, &[("state", "sleep")]),
            sample(&stack, 1, &[("state", "select")]),
            sample(&other_line, 1, &[("state", "sleep")]),
            sample(&stack, 4, &[("state", "sleep")]),
            sample(&stack, 1, &[]),
        ],
        0,
        0,
    ));
    let counts: Vec<u64> = p.stacks().iter().map(|s| s.count).collect();
    assert_eq!(counts, [5, 1, 1, 1]);
    // main.worker at two lines: two locations, one function.
    assert_eq!(p.locations.len(), 3);
    assert_eq!(p.functions.len(), 2);
}

#[test]
fn profile_bytes_depend_only_on_the_input() {
    // Enough distinct names that hash order would show.
    let samples: Vec<ProfileSample> = (0..200u64)
        .map(|i| ProfileSample {
            frames: vec![
                frame(
                    0x400000 + i * 16,
                    &format!("main.f{i}"),
                    &format!("/src/f{}.go", i % 7),
                    i as u32,
                ),
                gopark(),
            ],
            count: i % 3 + 1,
            labels: labels(&[
                ("state", ["sleep", "select", "chan send"][i as usize % 3]),
                ("k", "v"),
            ]),
        })
        .collect();
    let first = goroutine_profile(&samples, 1, 2);
    for _ in 0..5 {
        assert_eq!(goroutine_profile(&samples, 1, 2), first);
    }
}

#[test]
fn odd_input_gives_a_valid_profile() {
    let unknown = SourceLocation {
        pc: "not hex".into(),
        function: String::new(),
        file: None,
        line: None,
    };
    let samples = [
        ProfileSample {
            frames: vec![unknown.clone()],
            count: u64::MAX,
            labels: labels(&[("", "")]),
        },
        ProfileSample {
            frames: vec![unknown],
            count: u64::MAX,
            labels: labels(&[("", "")]),
        },
        ProfileSample {
            frames: Vec::new(),
            count: 0,
            labels: Vec::new(),
        },
    ];
    let p = decode(&goroutine_profile(&samples, -5, -1));
    assert_eq!((p.time_nanos, p.duration_nanos), (-5, -1));
    let stacks = p.stacks();
    assert_eq!(stacks.len(), 2);
    assert_eq!(stacks[0].count, i64::MAX as u64, "counts saturate");
    assert_eq!(stacks[0].frames, [(String::new(), String::new(), 0, 0)]);
    assert!(stacks[1].frames.is_empty());
    let m = &p.mappings[0];
    assert!(m.has_functions && !m.has_filenames && !m.has_line_numbers);

    let empty = decode(&goroutine_profile(&[], 0, 0));
    assert!(empty.samples.is_empty() && empty.locations.is_empty());
    assert_eq!(empty.strings[0], "");
}

/// The Go toolchain for `go tool pprof`: `$TRACER_GO`, else go1.26.6 under
/// `target/toolchains`. Without one the test passes with a note, except with
/// `CI` set.
fn go_or_skip(test: &str) -> Option<PathBuf> {
    let go = std::env::var_os("TRACER_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/toolchains/go1.26.6/bin/go")
        });
    if go.exists() {
        return Some(go);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: no Go toolchain at {} (set TRACER_GO; CI must provide one)",
        go.display()
    );
    eprintln!(
        "{test}: skipped, no Go toolchain at {} (set TRACER_GO)",
        go.display()
    );
    None
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tracer-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `go tool pprof ARGS FILE`, its stdout and stderr, failing with both.
fn pprof(go: &Path, home: &Path, args: &[&str], file: &Path) -> String {
    // The same build cache as the other tests: `go tool pprof` is built on
    // first use.
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/gocache");
    let output = Command::new(go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", home)
        .env("PPROF_TMPDIR", home)
        .env("GOCACHE", cache.join("build"))
        .env("GOPATH", cache.join("path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", go.display()));
    let text = format!(
        "$ go tool pprof {} {}\n{}{}",
        args.join(" "),
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "go tool pprof failed:\n{text}");
    text
}

/// `(flat, cum)` of `function` in `-top` output.
fn top_counts(top: &str, function: &str) -> Option<(u64, u64)> {
    top.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() == 6 && cols[5] == function)
            .then(|| Some((cols[0].parse().ok()?, cols[3].parse().ok()?)))
            .flatten()
    })
}

#[test]
fn go_tool_pprof_reads_the_profile() {
    let test = "go_tool_pprof_reads_the_profile";
    let Some(go) = go_or_skip(test) else { return };
    let dir = TempDir::new(test);
    let file = dir.0.join("goroutine.pb.gz");
    std::fs::write(
        &file,
        goroutine_profile(&example_samples(), 1_700_000_000_000_000_000, 0),
    )
    .unwrap();

    let top = pprof(&go, &dir.0, &["-top", "-sample_index=goroutine"], &file);
    println!("{top}");
    assert!(top.contains("Type: goroutine"), "{top}");
    assert!(top.contains("of 6 total"), "{top}");
    // What pprof prints when it tries to symbolize a mapping without a file.
    for symbolizing in ["Main binary filename not available", "symboliz"] {
        assert!(
            !top.contains(symbolizing),
            "pprof tried to symbolize:\n{top}"
        );
    }
    for (function, flat, cum) in [
        ("runtime.gopark", 5, 5),
        ("main.busy", 1, 1),
        ("main.worker", 0, 3),
        ("main.main.func1", 0, 3),
        ("main.(*Server).serve", 0, 2),
    ] {
        assert_eq!(
            top_counts(&top, function),
            Some((flat, cum)),
            "{function}:\n{top}"
        );
    }

    // Labels and file:line reach pprof too.
    let traces = pprof(&go, &dir.0, &["-traces"], &file);
    println!("{traces}");
    for needle in [
        "     state:  chan receive\ncreated_by:  main.main at /src/app/main.go:17\n         3   runtime.gopark\n",
        "     state:  select\n         2   runtime.gopark\n",
    ] {
        assert!(traces.contains(needle), "{needle} missing:\n{traces}");
    }
    let lines = pprof(&go, &dir.0, &["-top", "-lines"], &file);
    println!("{lines}");
    assert!(lines.contains("main.worker /src/app/main.go:42"), "{lines}");
}

// ---------------------------------------------------------------------------
// Perfetto / trace-event JSON

/// A trace written by `events` on a fresh writer (origin 1 ms), finished at
/// `end_ns`: its text and its events.
fn write_trace(
    end_ns: u64,
    events: impl FnOnce(&mut TraceWriter<Vec<u8>>) -> io::Result<()>,
) -> (String, Vec<Value>) {
    let mut writer = TraceWriter::new(Vec::new(), "app (pid 1234)", 1_000_000).unwrap();
    events(&mut writer).unwrap();
    let text = String::from_utf8(writer.finish(end_ns).unwrap()).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(doc["displayTimeUnit"], "ns");
    let events = doc["traceEvents"].as_array().expect("traceEvents").clone();
    check_events(&events);
    (text, events)
}

/// The rules of the format, for every trace of these tests.
fn check_events(events: &[Value]) {
    let mut open: HashMap<u64, u32> = HashMap::new();
    let mut last_ts: HashMap<u64, f64> = HashMap::new();
    let mut named_threads: Vec<u64> = Vec::new();
    for e in events {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
        assert_eq!(e["pid"], 1, "{e}");
        let tid = e["tid"].as_u64().unwrap_or_else(|| panic!("no tid: {e}"));
        let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("no ts: {e}"));
        assert!(ts >= 0.0, "{e}");
        // `E` ends the innermost open slice and needs no name.
        if ph != "E" {
            assert!(e["name"].is_string(), "no name: {e}");
        }
        match ph {
            "M" => {
                let name = e["name"].as_str().unwrap();
                assert!(name == "process_name" || name == "thread_name", "{e}");
                assert!(e["args"]["name"].is_string(), "{e}");
                if name == "thread_name" {
                    named_threads.push(tid);
                }
            }
            "B" | "E" => {
                assert!(
                    ph == "E" || named_threads.contains(&tid),
                    "unnamed track: {e}"
                );
                let previous = last_ts.insert(tid, ts).unwrap_or(0.0);
                assert!(ts >= previous, "time goes back on tid {tid}: {e}");
                let depth = open.entry(tid).or_default();
                if ph == "B" {
                    *depth += 1;
                } else {
                    assert!(*depth > 0, "E without B: {e}");
                    *depth -= 1;
                }
            }
            "i" => assert_eq!(e["s"], "t", "{e}"),
            "C" => {
                let args = e["args"].as_object().unwrap_or_else(|| panic!("{e}"));
                assert!(
                    !args.is_empty() && args.values().all(Value::is_number),
                    "{e}"
                );
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
        if let Some(args) = e.get("args") {
            assert!(args.is_object(), "{e}");
        }
    }
    assert!(open.values().all(|&d| d == 0), "unbalanced: {open:?}");
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "process_name" && e["ph"] == "M"),
        "no process name"
    );
}

fn of_phase<'a>(events: &'a [Value], ph: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["ph"] == ph).collect()
}

#[test]
fn trace_has_tracks_slices_instants_and_counters() {
    let (_, events) = write_trace(9_000_000, |w| {
        w.goroutine_start(1, 1_000_000, "g1 main.main", &[])?;
        w.counter(1_000_000, "goroutines", 1.0)?;
        w.goroutine_start(
            42,
            1_500_250,
            "g42 main.worker",
            &[("created_by", "main.main at /src/app/main.go:17")],
        )?;
        w.instant(42, 2_000_000, "park", &[("reason", "chan receive")])?;
        w.counter(2_000_000, "goroutines", 2.0)?;
        w.goroutine_end(42, 3_000_001)?;
        // Never started in the trace: nothing to end.
        w.goroutine_end(7, 3_500_000)?;
        w.counter(3_000_001, "goroutines", 1.0)
    });

    assert_eq!(events[0]["name"], "process_name");
    assert_eq!(events[0]["args"]["name"], "app (pid 1234)");
    let names: Vec<(u64, &str)> = of_phase(&events, "M")
        .into_iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [(1, "g1 main.main"), (42, "g42 main.worker")]);

    let begins = of_phase(&events, "B");
    assert_eq!(begins.len(), 2);
    assert_eq!(begins[1]["name"], "g42 main.worker");
    assert_eq!(begins[1]["ts"], 500.25);
    assert_eq!(
        begins[1]["args"]["created_by"],
        "main.main at /src/app/main.go:17"
    );
    assert!(begins[0].get("args").is_none());

    let ends: Vec<(u64, f64)> = of_phase(&events, "E")
        .into_iter()
        .map(|e| (e["tid"].as_u64().unwrap(), e["ts"].as_f64().unwrap()))
        .collect();
    // g42 ends when told; g1 is still running and ends at finish.
    assert_eq!(ends, [(42, 2000.001), (1, 8000.0)]);

    let instants = of_phase(&events, "i");
    assert_eq!(instants.len(), 1);
    assert_eq!(
        (instants[0]["tid"].as_u64(), instants[0]["ts"].as_f64()),
        (Some(42), Some(1000.0))
    );
    assert_eq!(instants[0]["args"]["reason"], "chan receive");

    let counters: Vec<f64> = of_phase(&events, "C")
        .into_iter()
        .map(|e| {
            assert_eq!(e["name"], "goroutines");
            e["args"]["value"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(counters, [1.0, 2.0, 1.0]);
}

#[test]
fn timestamps_are_exact_microseconds_from_the_origin() {
    let (text, _) = write_trace(1_000_000, |w| {
        w.instant(1, 1_000_000, "at origin", &[])?;
        w.instant(1, 1_000_001, "1 ns later", &[])?;
        w.instant(1, 1_000 + 1_000_000 + 123_456_789_012, "much later", &[])?;
        w.instant(1, 5, "before the origin", &[])
    });
    assert!(
        text.contains("\"name\":\"at origin\",\"pid\":1,\"tid\":1,\"ts\":0.000"),
        "{text}"
    );
    assert!(text.contains("\"ts\":0.001"), "{text}");
    assert!(text.contains("\"ts\":123456790.012"), "{text}");
    assert!(
        text.contains("\"name\":\"before the origin\",\"pid\":1,\"tid\":1,\"ts\":0.000"),
        "{text}"
    );
}

#[test]
fn finish_closes_open_slices_in_goroutine_order() {
    let (_, events) = write_trace(5_000_000, |w| {
        for goid in [9, 3, 5, 4] {
            w.goroutine_start(goid, 2_000_000, &format!("g{goid}"), &[])?;
        }
        w.goroutine_end(4, 3_000_000)?;
        // Starts after the end of the trace: its end is not before its begin.
        w.goroutine_start(8, 6_000_000, "g8", &[])
    });
    let ends: Vec<(u64, f64)> = of_phase(&events, "E")
        .into_iter()
        .map(|e| (e["tid"].as_u64().unwrap(), e["ts"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        ends,
        [
            (4, 2000.0),
            (3, 4000.0),
            (5, 4000.0),
            (8, 5000.0),
            (9, 4000.0)
        ]
    );
}

#[test]
fn a_goroutine_id_seen_again_ends_its_open_slice_first() {
    let (_, events) = write_trace(5_000_000, |w| {
        w.goroutine_start(7, 2_000_000, "g7 main.a", &[])?;
        w.goroutine_start(7, 3_000_000, "g7 main.b", &[])?;
        // An end before the begin is moved to the begin.
        w.goroutine_end(7, 2_500_000)
    });
    let track: Vec<(&str, f64)> = events
        .iter()
        .filter(|e| e["tid"] == 7 && e["ph"] != "M")
        .map(|e| (e["ph"].as_str().unwrap(), e["ts"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        track,
        [("B", 1000.0), ("E", 2000.0), ("B", 2000.0), ("E", 2000.0)]
    );
}

#[test]
fn strings_are_escaped_for_json_and_perfetto() {
    let name = "g1 main.(*T[go.shape.string]).f \"quoted\" \\ tab\t nl\n del\u{7f} nul\u{0} ü 🦀";
    let (text, events) = write_trace(2_000_000, |w| {
        w.goroutine_start(1, 1_000_000, name, &[(name, name)])?;
        w.counter(1_000_000, name, 0.5)
    });
    let b = of_phase(&events, "B")[0];
    assert_eq!(b["name"], name);
    assert_eq!(b["args"][name], name);
    assert_eq!(of_phase(&events, "C")[0]["name"], name);
    // Perfetto's tokenizer refuses raw control characters in strings.
    assert!(
        !text.bytes().any(|b| b.is_ascii_control() && b != b'\n'),
        "{text:?}"
    );
}

#[test]
fn a_non_finite_counter_is_refused_and_the_trace_stays_valid() {
    let (_, events) = write_trace(2_000_000, |w| {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = w.counter(1_000_000, "goroutines", value).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("goroutines"), "{err}");
        }
        w.counter(1_000_000, "goroutines", 3.0)
    });
    assert_eq!(of_phase(&events, "C").len(), 1);
}

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Counts bytes, keeps none.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn memory_follows_the_live_goroutines_not_the_events() {
    let mut w = TraceWriter::new(Sink(0), "app", 0).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<u64> = Vec::new();
    let mut next_goid = 1;
    for step in 0..200_000u64 {
        let ts = step * 100;
        if live.len() < 50 && rng.below(2) == 0 {
            w.goroutine_start(next_goid, ts, &format!("g{next_goid} main.worker"), &[])
                .unwrap();
            live.push(next_goid);
            next_goid += 1;
        } else if !live.is_empty() && rng.below(3) == 0 {
            let goid = live.swap_remove(rng.below(live.len() as u64) as usize);
            w.goroutine_end(goid, ts).unwrap();
        } else {
            w.instant(rng.below(next_goid), ts, "park", &[("reason", "sleep")])
                .unwrap();
        }
        assert_eq!(w.open_slices(), live.len());
    }
    assert!(next_goid > 10_000, "the test should create many goroutines");
    let sink = w.finish(200_000 * 100).unwrap();
    assert!(sink.0 > 10 << 20);
}

#[test]
fn random_sessions_give_valid_traces() {
    for seed in 1..20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let (_, events) = write_trace(3_000_000, |w| {
            let mut ts = 900_000;
            for _ in 0..500 {
                ts += rng.below(1_000);
                let goid = rng.below(20);
                match rng.below(4) {
                    0 => w.goroutine_start(goid, ts, &format!("g{goid}"), &[("k", "v")])?,
                    1 => w.goroutine_end(goid, ts)?,
                    2 => w.instant(goid, ts, "wake", &[])?,
                    _ => w.counter(ts, "goroutines", rng.below(100) as f64)?,
                }
            }
            Ok(())
        });
        assert!(!of_phase(&events, "B").is_empty());
    }
}

/// Accepts `limit` bytes, then fails.
struct FailingWriter {
    limit: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.limit == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.limit);
        self.limit -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failed_write_stops_the_writer() {
    let mut w = TraceWriter::new(FailingWriter { limit: 120 }, "app", 0).unwrap();
    let err = w.goroutine_start(1, 10, "g1 main.main", &[]).unwrap_err();
    assert_eq!(err.to_string(), "disk full");
    let err = w.instant(1, 20, "park", &[]).unwrap_err();
    assert!(err.to_string().contains("earlier write"), "{err}");
    assert!(w.finish(30).is_err());
    assert!(TraceWriter::new(FailingWriter { limit: 0 }, "app", 0).is_err());
}

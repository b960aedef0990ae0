//! Model ingest rate: how many decoded probe events per second one core can
//! apply to the goroutine table, also while recording them to a file, and
//! how fast a recording replays. The stream mimics a busy service: spawns,
//! park/ready pairs and exits over a working set of live goroutines.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tracer::{
    model::{decode_event, Event, EventBody, GoroutineTable},
    record::{
        format::{Header, SymbolDelta, Tick, SESSION_FORMAT, SESSION_VERSION},
        Recorder,
    },
    session::{
        replay::{Playback, RecordedSymbols},
        Model,
    },
    suspects::Rules,
};
use tracer_ebpf::{EventHeader, EventKind, GoroutineEvent, GOROUTINE_EVENT_SIZE};

const EVENTS: usize = 1_000_000;
/// Live goroutines the stream keeps around (they park and wake repeatedly).
const WORKING_SET: u64 = 10_000;

/// spawn, then 3 park/ready pairs, then exit, interleaved over the working set.
fn stream() -> Vec<GoroutineEvent> {
    let mut out = Vec::with_capacity(EVENTS);
    let mut ts = 1_000u64;
    let mut next_goid = 100u64;
    let mut live: std::collections::VecDeque<(u64, u8)> = Default::default();
    while out.len() < EVENTS {
        ts += 50;
        let mut push = |kind: EventKind, goid: u64, other: u64, code: u32| {
            out.push(GoroutineEvent {
                header: EventHeader {
                    kind: kind as u32,
                    tid: 1,
                    ts_ns: ts,
                },
                goid,
                other_goid: other,
                pc: 0x4a0000 + (goid % 16) * 0x40,
                start_pc: 0x4b0000,
                g_addr: 0xc000000000 + goid * 0x200,
                arg: 0xc000100000,
                code,
                flags: 0,
            })
        };
        if (live.len() as u64) < WORKING_SET {
            push(EventKind::Spawn, next_goid, 1, 1);
            live.push_back((next_goid, 0));
            next_goid += 1;
            continue;
        }
        let Some((goid, step)) = live.pop_front() else {
            break;
        };
        match step {
            0 | 2 | 4 => push(EventKind::Park, goid, 0, 14),
            1 | 3 | 5 => push(EventKind::Ready, goid, 1, 0),
            _ => {
                push(EventKind::Exit, goid, 0, 0);
                continue;
            }
        }
        live.push_back((goid, step + 1));
    }
    out
}

fn as_bytes(ev: &GoroutineEvent) -> &[u8] {
    // SAFETY: GoroutineEvent is repr(C) plain integers without padding.
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const GoroutineEvent).cast::<u8>(),
            GOROUTINE_EVENT_SIZE,
        )
    }
}

fn ingest(c: &mut Criterion) {
    let raw = stream();
    let decoded: Vec<Event> = raw
        .iter()
        .map(|e| decode_event(as_bytes(e)).expect("valid"))
        .collect();
    assert!(decoded
        .iter()
        .any(|e| matches!(e.body, EventBody::Exit { .. })));

    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(raw.len() as u64));
    group.sample_size(10);
    group.bench_function("decode+apply 1M events", |b| {
        b.iter_batched(
            GoroutineTable::new,
            |mut table| {
                for ev in &raw {
                    match decode_event(as_bytes(ev)) {
                        Ok(e) => table.apply(&e),
                        Err(_) => table.record_malformed(),
                    }
                }
                table
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("apply 1M decoded events", |b| {
        b.iter_batched(
            GoroutineTable::new,
            |mut table| {
                for e in &decoded {
                    table.apply(e);
                }
                table
            },
            BatchSize::LargeInput,
        )
    });
    // A tick (block written out) every 10,000 events: 100 intervals' worth
    // of a target doing 10,000 goroutine operations per second.
    let file = std::env::temp_dir().join(format!("tracer-bench-{}.trc", std::process::id()));
    let record = |raw: &[GoroutineEvent]| {
        let recorder = Recorder::create(&file, &header()).expect("a scratch file");
        let mut model = Model::new(GoroutineTable::new(), Some(recorder));
        for (i, ev) in raw.iter().enumerate() {
            model.event(as_bytes(ev));
            if i % 10_000 == 9_999 {
                let tick = Tick {
                    now_ns: ev.header.ts_ns,
                    ..Tick::default()
                };
                let recorder = model.recorder.as_mut().expect("recording");
                recorder.tick(&SymbolDelta::default(), &tick);
            }
        }
        let recorder = model.recorder.take().expect("recording");
        recorder.finish().expect("recorded");
    };
    group.bench_function("decode+apply+record 1M events", |b| b.iter(|| record(&raw)));
    record(&raw);
    let size = std::fs::metadata(&file).expect("recorded").len();
    println!(
        "recording of 1M events: {size} bytes, {:.2} bytes/event",
        size as f64 / raw.len() as f64
    );
    group.bench_function("replay 1M recorded events", |b| {
        b.iter(|| {
            let symbols = RecordedSymbols::default();
            let mut playback = Playback::open(&file).expect("a recording");
            let mut ticks = 0;
            while playback.next_tick(&symbols).is_some() {
                ticks += 1;
            }
            assert_eq!(ticks, 100);
        })
    });
    group.finish();
    let _ = std::fs::remove_file(&file);
}

fn header() -> Header {
    Header {
        format: SESSION_FORMAT.into(),
        session_version: SESSION_VERSION,
        tracer_version: "bench".into(),
        pid: 1,
        binary: "/bench".into(),
        build_id: None,
        go_version: "go1.26.6".into(),
        target_started_unix_ns: None,
        attached_at_ns: 0,
        attached_at_unix_ns: 0,
        interval_ns: 1_000_000_000,
        rules: Rules::default(),
        max_goroutines: None,
        max_tracked: 2_000_000,
        command: vec!["bench".into()],
    }
}

criterion_group!(benches, ingest);
criterion_main!(benches);

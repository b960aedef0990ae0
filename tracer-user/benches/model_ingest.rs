//! Model ingest rate: how many decoded probe events per second one core can
//! apply to the goroutine table. The stream mimics a busy service: spawns,
//! park/ready pairs and exits over a working set of live goroutines.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tracer::model::{decode_event, Event, EventBody, GoroutineTable};
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
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);

//! Tracer memory per tracked goroutine: builds the goroutine table the way
//! an attach to a target with N parked goroutines does (snapshot seed, then
//! stacks and channels), and an analysis of it, under a counting allocator.
//!
//! Usage: cargo run --release -p tracer-user --example model_footprint [N...]
//! (normally through `cargo xtask bench`).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use tracer::{
    model::{GoroutineTable, SnapshotGoroutine, TimerTable},
    report::{SourceLocation, Symbols},
    suspects::{Rules, SuspectEngine},
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Names;

impl Symbols for Names {
    fn creation_site(&self, pc: u64) -> SourceLocation {
        SourceLocation {
            pc: format!("{pc:#x}"),
            function: "main.spawner".into(),
            file: Some("/src/svc/main.go".into()),
            line: Some((pc % 1000) as u32),
        }
    }
    fn stack(&self, pcs: &[u64]) -> Vec<SourceLocation> {
        pcs.iter().map(|&pc| self.creation_site(pc)).collect()
    }
    fn function(&self, _: u64) -> Option<String> {
        Some("main.worker".into())
    }
    fn wait_reason(&self, code: u8) -> String {
        [
            "",
            "chan receive",
            "chan send",
            "select",
            "sync.Mutex.Lock",
            "IO wait",
        ]
        .get(usize::from(code))
        .unwrap_or(&"?")
        .to_string()
    }
}

/// Five kinds, as in tests/go/backlog: (wait reason code, own channel per
/// goroutine, shared channel).
const KINDS: [(u8, bool, bool); 5] = [
    (1, true, false),
    (2, true, false),
    (3, false, true),
    (4, false, false),
    (5, false, false),
];

fn measure(n: u64) {
    let before = LIVE.load(Ordering::Relaxed);
    let mut table = GoroutineTable::new();
    table.seed((0..n).map(|i| SnapshotGoroutine {
        goid: i + 100,
        parent_goid: Some(1),
        gopc: Some(0x4a_0000 + (i % 5) * 0x40),
        start_pc: Some(0x4b_0000 + (i % 5) * 0x40),
        g_addr: 0xc000_0000 + i * 0x200,
        status: 4,
        wait_reason: KINDS[(i % 5) as usize].0,
        waiting_since_ns: None,
        tracking_seq: Some(0),
        seen_at_ns: 1,
    }));
    for i in 0..n {
        let (_, own, shared) = KINDS[(i % 5) as usize];
        // A 9-frame stack, the same for every goroutine of a kind.
        let stack: Arc<[u64]> = (0..9).map(|f| 0x40_0000 + (i % 5) * 0x100 + f).collect();
        let channels: Option<Arc<[u64]>> = match (own, shared) {
            (true, _) => Some(Arc::from(&[0xc100_0000 + i * 0x60][..])),
            (_, true) => Some(Arc::from(&[0xc0ff_0000][..])),
            _ => Some(Arc::from(&[][..])),
        };
        table.set_blocked_at(i + 100, None, stack, channels);
    }
    let table_bytes = LIVE.load(Ordering::Relaxed) - before;
    let mut engine = SuspectEngine::new(Rules::default());
    let engine_before = LIVE.load(Ordering::Relaxed);
    let analysis = engine.update(&table, &TimerTable::new(), 2_000_000_000, &Names);
    let analysis_bytes = LIVE.load(Ordering::Relaxed) - engine_before;
    println!(
        "| {} | {:.1} MB | {} | {:.1} MB | {} |",
        tracer::suspects::thousands(n),
        table_bytes as f64 / 1e6,
        table_bytes as u64 / n,
        analysis_bytes as f64 / 1e6,
        analysis_bytes as u64 / n,
    );
    drop(analysis);
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    println!("| goroutines | goroutine table | bytes per goroutine | analysis (per update) | bytes per goroutine |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        measure(n);
    }
}

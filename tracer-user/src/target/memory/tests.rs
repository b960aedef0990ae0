//! Snapshots and unwinding on synthetic images: well-formed, corrupted,
//! truncated and randomly damaged.

use std::cell::Cell;
use std::collections::HashSet;

use super::*;
use crate::target::RuntimeOffsets;

// ---------------------------------------------------------------------------
// Synthetic images

/// A `runtime.g` layout like Go 1.26's (the values only need to be consistent).
const LAYOUT: GLayout = GLayout {
    stack_lo: 0,
    stack_hi: 8,
    sched_sp: 56,
    sched_pc: 64,
    sched_bp: 96,
    atomicstatus: 144,
    goid: 152,
    waitsince: 168,
    waitreason: 176,
    tracking_seq: 191,
    waiting: 192,
    parent_goid: 264,
    gopc: 280,
    startpc: 296,
    g_size: 440,
};

const ALLGLEN: u64 = 0x5a_0000;
const ALLGPTR: u64 = 0x5a_0008;
const ARRAY: u64 = 0xc0_0001_0000;
const G_BASE: u64 = 0xc0_0010_0000;
const G_STRIDE: u64 = 0x200;
const STACK_BASE: u64 = 0xc0_1000_0000;
const STACK_SIZE: u64 = 0x2000;

const PC_GOPARK: u64 = 0x43_1234;
const RET_IN_CHANRECV: u64 = 0x40_5678;
const RET_IN_WORKER: u64 = 0x48_9abc;
const GOEXIT_PLUS_1: u64 = 0x47_0001;

/// `runtime.sudog`s and `runtime.hchan`s (Go 1.26-like sudog: `c.vu` at
/// 96, `waitlink` at 72, 104 bytes in a 112-byte size class).
const SUDOG: SudogLayout = SudogLayout {
    c: 96,
    waitlink: 72,
};
const SUDOG_BASE: u64 = 0xc0_0800_0000;
const SUDOG_STRIDE: u64 = 112;
const CHAN_A: u64 = 0xc0_0900_0060;
const CHAN_B: u64 = 0xc0_0900_0120;
const CHAN_C: u64 = 0xc0_0900_01e0;

fn g_addr(i: usize) -> u64 {
    G_BASE + i as u64 * G_STRIDE
}

/// The (first) sudog of slot `i`'s `g.waiting` list; more sudogs of a chain
/// follow at `sudog_addr(i) + k * SUDOG_STRIDE` in the tests that need them.
fn sudog_addr(i: usize) -> u64 {
    SUDOG_BASE + i as u64 * 32 * SUDOG_STRIDE
}

fn stack_of(i: usize) -> (u64, u64) {
    let lo = STACK_BASE + i as u64 * STACK_SIZE;
    (lo, lo + STACK_SIZE)
}

/// What to write into one `runtime.g`.
#[derive(Debug, Clone, Copy)]
struct GSpec {
    goid: u64,
    status: u32,
    wait_reason: u8,
    sched: (u64, u64, u64),
    stack: (u64, u64),
    /// `g.waiting`
    waiting: u64,
    /// `g.trackingSeq`
    tracking_seq: u8,
}

/// A waiting goroutine (slot `i`) parked in gopark ← chanrecv ← worker ←
/// goexit: three frame records on its stack.
fn parked(i: usize, goid: u64) -> GSpec {
    let (lo, hi) = stack_of(i);
    GSpec {
        goid,
        status: status::WAITING,
        wait_reason: 7,
        sched: (PC_GOPARK, hi - 0x220, hi - 0x200),
        stack: (lo, hi),
        waiting: sudog_addr(i),
        tracking_seq: 0xf0 ^ goid as u8,
    }
}

fn running(i: usize, goid: u64) -> GSpec {
    let (lo, hi) = stack_of(i);
    GSpec {
        goid,
        status: status::RUNNING,
        wait_reason: 0,
        // Stale: a running goroutine's saved context is whatever it was.
        sched: (0x1111, 0x2222, 0x3333),
        stack: (lo, hi),
        waiting: 0,
        tracking_seq: 0xf0 ^ goid as u8,
    }
}

/// A runnable goroutine that never ran: sched.pc is its function's entry, no bp.
fn fresh(i: usize, goid: u64) -> GSpec {
    let (lo, hi) = stack_of(i);
    GSpec {
        goid,
        status: status::RUNNABLE,
        wait_reason: 0,
        sched: (0x48_9a00, hi - 8, 0),
        stack: (lo, hi),
        waiting: 0,
        tracking_seq: 0xf0 ^ goid as u8,
    }
}

/// A free g: its stack is gone.
fn dead() -> GSpec {
    GSpec {
        goid: 99,
        status: status::DEAD,
        wait_reason: 0,
        sched: (0, 0, 0),
        stack: (0, 0),
        waiting: 0,
        tracking_seq: 0,
    }
}

impl GSpec {
    fn write(&self, i: usize, image: &mut ImageMemory) {
        let g = g_addr(i);
        // Each g fills its slot, as in the heap's size class: no holes.
        let mut bytes = vec![0u8; G_STRIDE as usize];
        let mut put = |offset: u64, value: &[u8]| {
            let offset = offset as usize;
            bytes[offset..offset + value.len()].copy_from_slice(value);
        };
        put(LAYOUT.goid, &self.goid.to_le_bytes());
        put(LAYOUT.parent_goid, &1u64.to_le_bytes());
        put(LAYOUT.gopc, &(0x48_0000 + self.goid).to_le_bytes());
        put(LAYOUT.startpc, &0x48_9a00u64.to_le_bytes());
        put(LAYOUT.atomicstatus, &self.status.to_le_bytes());
        put(LAYOUT.waitreason, &[self.wait_reason]);
        put(
            LAYOUT.waitsince,
            &(1_000_000 * self.goid as i64).to_le_bytes(),
        );
        put(LAYOUT.sched_pc, &self.sched.0.to_le_bytes());
        put(LAYOUT.sched_sp, &self.sched.1.to_le_bytes());
        put(LAYOUT.sched_bp, &self.sched.2.to_le_bytes());
        put(LAYOUT.stack_lo, &self.stack.0.to_le_bytes());
        put(LAYOUT.stack_hi, &self.stack.1.to_le_bytes());
        put(LAYOUT.waiting, &self.waiting.to_le_bytes());
        put(LAYOUT.tracking_seq, &[self.tracking_seq]);
        image.map(g, bytes);
    }
}

/// Maps the stack of slot `i` with the frame records of [`parked`].
fn map_parked_stack(i: usize, image: &mut ImageMemory) {
    let (lo, hi) = stack_of(i);
    image.map_zeroed(lo, STACK_SIZE as usize);
    let record = |image: &mut ImageMemory, at: u64, caller_bp: u64, ret: u64| {
        assert!(image.write_u64(at, caller_bp) && image.write_u64(at + 8, ret));
    };
    record(image, hi - 0x200, hi - 0x100, RET_IN_CHANRECV);
    record(image, hi - 0x100, hi - 0x40, RET_IN_WORKER);
    // The goroutine's function: called by gogo with bp 0, "returns" to goexit.
    record(image, hi - 0x40, 0, GOEXIT_PLUS_1);
}

/// An image whose `allgs` holds `pointers` (slot index → g address, or a raw
/// pointer), with `gs` written at their slots.
fn image_with(gs: &[(usize, GSpec)], pointers: &[u64]) -> ImageMemory {
    let mut image = ImageMemory::new();
    image.map_zeroed(ALLGLEN, 16);
    image.write_u64(ALLGLEN, pointers.len() as u64);
    image.write_u64(ALLGPTR, ARRAY);
    let array: Vec<u8> = pointers.iter().flat_map(|p| p.to_le_bytes()).collect();
    image.map(ARRAY, array);
    for &(i, spec) in gs {
        spec.write(i, &mut image);
        if spec.sched.0 == PC_GOPARK {
            map_parked_stack(i, &mut image);
        }
    }
    image
}

/// Goroutines at slots 0..n, `allgs` pointing at each in order.
fn image_of(gs: &[GSpec]) -> ImageMemory {
    let slots: Vec<(usize, GSpec)> = gs.iter().copied().enumerate().collect();
    let pointers: Vec<u64> = (0..gs.len()).map(g_addr).collect();
    image_with(&slots, &pointers)
}

fn snapshot(image: &dyn Memory) -> Result<GoroutineSnapshot, SnapshotError> {
    read_goroutines(image, ALLGLEN, ALLGPTR, &LAYOUT, 1_000_000)
}

fn goids(snapshot: &GoroutineSnapshot) -> Vec<u64> {
    snapshot.goroutines.iter().map(|g| g.goid).collect()
}

fn well_formed() -> ImageMemory {
    image_of(&[running(0, 1), parked(1, 7), fresh(2, 9), dead()])
}

// ---------------------------------------------------------------------------
// Well-formed images

#[test]
fn reads_every_field_of_every_live_goroutine() {
    let image = well_formed();
    let snapshot = snapshot(&image).unwrap();
    assert_eq!(snapshot.allglen, 4);
    assert_eq!(snapshot.dead, 1);
    assert_eq!(snapshot.discarded, Discarded::default());
    assert_eq!(goids(&snapshot), [1, 7, 9]);
    let (lo, hi) = stack_of(1);
    assert_eq!(
        snapshot.goroutines[1],
        SnapshotGoroutine {
            g_addr: g_addr(1),
            goid: 7,
            parent_goid: 1,
            status: status::WAITING,
            wait_reason: 7,
            gopc: 0x48_0007,
            start_pc: 0x48_9a00,
            waitsince: 7_000_000,
            sched_pc: PC_GOPARK,
            sched_sp: hi - 0x220,
            sched_bp: hi - 0x200,
            stack_lo: lo,
            stack_hi: hi,
            waiting: sudog_addr(1),
            tracking_seq: 0xf7,
        }
    );
    assert_eq!(snapshot.goroutines[0].status, status::RUNNING);
    assert_eq!(snapshot.goroutines[2].status, status::RUNNABLE);
}

#[test]
fn unwinds_a_parked_goroutine_through_its_frame_records() {
    let image = well_formed();
    let snapshot = snapshot(&image).unwrap();
    let g = &snapshot.goroutines[1];
    let expected = [PC_GOPARK, RET_IN_CHANRECV, RET_IN_WORKER, GOEXIT_PLUS_1];
    assert_eq!(unwind(&image, g, 64), expected);
    for max in 0..=4 {
        assert_eq!(unwind(&image, g, max), expected[..max]);
    }
    // Running: stale context, not unwound. Never ran: its entry only.
    assert_eq!(
        unwind(&image, &snapshot.goroutines[0], 64),
        Vec::<u64>::new()
    );
    assert_eq!(unwind(&image, &snapshot.goroutines[2], 64), [0x48_9a00]);
    assert_eq!(
        unwind_all(&image, &snapshot.goroutines, 64),
        [vec![], expected.to_vec(), vec![0x48_9a00]]
    );
    assert_eq!(symbolization_pc(0, PC_GOPARK), PC_GOPARK);
    assert_eq!(symbolization_pc(1, RET_IN_CHANRECV), RET_IN_CHANRECV - 1);
}

#[test]
fn scan_bit_is_masked_and_other_parked_states_are_unwound() {
    let mut gs = vec![parked(0, 3), parked(1, 4), parked(2, 5), parked(3, 6)];
    gs[0].status = status::SCAN | status::WAITING;
    gs[1].status = status::PREEMPTED;
    gs[2].status = status::LEAKED;
    gs[3].status = status::SCAN | status::RUNNABLE;
    let image = image_of(&gs);
    let snapshot = snapshot(&image).unwrap();
    let statuses: Vec<u32> = snapshot.goroutines.iter().map(|g| g.status).collect();
    assert_eq!(
        statuses,
        [
            status::WAITING,
            status::PREEMPTED,
            status::LEAKED,
            status::RUNNABLE
        ]
    );
    for stack in unwind_all(&image, &snapshot.goroutines, 64) {
        assert_eq!(stack.len(), 4);
    }
}

#[test]
fn status_names_and_parked_states() {
    assert_eq!(status::name(status::WAITING), Some("waiting"));
    assert_eq!(
        status::name(status::DEAD_EXTRA),
        Some("waiting for cgo callback")
    );
    assert_eq!(status::name(5), None);
    assert_eq!(status::name(status::SCAN | status::WAITING), None);
    let parked: Vec<u32> = (0..16).filter(|&s| status::is_parked(s)).collect();
    assert_eq!(parked, [1, 4, 9, 10]);
}

#[test]
fn layout_from_runtime_offsets() {
    let offsets = RuntimeOffsets {
        g_goid: 152,
        g_sched: 56,
        gobuf_sp: 0,
        gobuf_pc: 8,
        gobuf_bp: 40,
        g_stack_lo: 0,
        g_stack_hi: 8,
        g_tracking_seq: 191,
        g_size: 440,
        ..Default::default()
    };
    let layout = GLayout::from_offsets(&offsets);
    assert_eq!(layout.tracking_seq, 191);
    assert_eq!(
        (layout.sched_sp, layout.sched_pc, layout.sched_bp),
        (56, 64, 96)
    );
    assert_eq!((layout.goid, layout.stack_hi, layout.g_size), (152, 8, 440));
}

/// Counts calls, to check that reads are batched.
struct Counting<'a> {
    inner: &'a dyn Memory,
    reads: Cell<usize>,
    batches: Cell<usize>,
}

impl Memory for Counting<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read(addr, buf)
    }

    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Result<(), MemoryError> {
        self.batches.set(self.batches.get() + 1);
        self.inner.read_many(ops)
    }
}

#[test]
fn thousands_of_goroutines_take_a_few_batched_reads() {
    let gs: Vec<GSpec> = (0..3000).map(|i| parked(i, 100 + i as u64)).collect();
    let image = image_of(&gs);
    let counting = Counting {
        inner: &image,
        reads: Cell::new(0),
        batches: Cell::new(0),
    };
    let snapshot = snapshot(&counting).unwrap();
    assert_eq!(snapshot.goroutines.len(), 3000);
    // allglen, allgptr, the pointer array; then the g's, adjacent in
    // memory, read as 6 pieces of ≤ 256 KiB in one batch.
    assert_eq!((counting.reads.get(), counting.batches.get()), (3, 1));
    let stacks = unwind_all(&counting, &snapshot.goroutines, 64);
    assert!(stacks.iter().all(|s| s.len() == 4));
    // The used parts of the stacks (8 KiB apart) were read in 3 batches of
    // ≤ 1024, and walked in place: no per-frame read.
    assert_eq!((counting.reads.get(), counting.batches.get()), (3, 4));
}

// ---------------------------------------------------------------------------
// Corrupted and truncated images

#[test]
fn invalid_statuses_are_discarded_and_counted() {
    let mut gs = vec![parked(0, 7)];
    for (i, bad) in [5u32, 7, 12, 0x2004, 0x1006 | 0x100, u32::MAX]
        .into_iter()
        .enumerate()
    {
        let mut g = running(i + 1, 20 + i as u64);
        g.status = bad;
        gs.push(g);
    }
    let mut dead_with_scan = dead();
    dead_with_scan.status = status::SCAN | status::DEAD_EXTRA;
    gs.push(dead_with_scan);
    let snapshot = snapshot(&image_of(&gs)).unwrap();
    assert_eq!(goids(&snapshot), [7]);
    assert_eq!(snapshot.discarded.bad_status, 6);
    assert_eq!(snapshot.dead, 1);
    assert_eq!(snapshot.discarded.total(), 6);
}

#[test]
fn zero_and_duplicate_goids_are_discarded_and_counted() {
    let gs = [
        parked(0, 7),
        running(1, 0),
        running(2, 7),
        running(3, 8),
        parked(4, 8),
    ];
    let snapshot = snapshot(&image_of(&gs)).unwrap();
    assert_eq!(goids(&snapshot), [7, 8]);
    assert_eq!(
        snapshot.goroutines[1].g_addr,
        g_addr(3),
        "the first one is kept"
    );
    assert_eq!(snapshot.discarded.zero_goid, 1);
    assert_eq!(snapshot.discarded.duplicate_goid, 2);
}

#[test]
fn null_unmapped_and_truncated_g_pointers_are_discarded_and_counted() {
    let gs = [(0, parked(0, 7)), (1, running(1, 8))];
    let truncated = G_BASE + 0x10_0000;
    let pointers = [
        0,
        g_addr(0),
        0xdead_0000,
        u64::MAX - 8,
        g_addr(1),
        truncated,
        0,
    ];
    let mut image = image_with(&gs, &pointers);
    // A g whose region ends before the fields do.
    image.map_zeroed(truncated, 160);
    let snapshot = snapshot(&image).unwrap();
    assert_eq!(goids(&snapshot), [7, 8]);
    assert_eq!(snapshot.discarded.null_pointer, 2);
    assert_eq!(snapshot.discarded.unreadable, 3);
}

#[test]
fn bad_stack_bounds_and_sp_outside_the_stack_are_discarded_and_counted() {
    let mut gs = vec![parked(0, 7)];
    let mut inverted = running(1, 8);
    inverted.stack = (inverted.stack.1, inverted.stack.0);
    let mut empty = running(2, 9);
    empty.stack.1 = empty.stack.0;
    let mut zero = running(3, 10);
    zero.stack.0 = 0;
    let mut sp_below = parked(4, 11);
    sp_below.sched.1 = sp_below.stack.0 - 8;
    let mut sp_above = parked(5, 12);
    sp_above.sched.1 = sp_above.stack.1 + 8;
    // A running goroutine's saved sp is stale: not checked.
    let mut stale = running(6, 13);
    stale.sched.1 = 8;
    gs.extend([inverted, empty, zero, sp_below, sp_above, stale]);
    let snapshot = snapshot(&image_of(&gs)).unwrap();
    assert_eq!(goids(&snapshot), [7, 13]);
    assert_eq!(snapshot.discarded.bad_stack_bounds, 3);
    assert_eq!(snapshot.discarded.sp_outside_stack, 2);
}

#[test]
fn unreadable_or_absurd_globals_are_errors_or_bounded() {
    let good = well_formed();

    let mut image = good.clone();
    image.write_u64(ALLGPTR, 0xdead_0000);
    let error = snapshot(&image).unwrap_err();
    assert!(
        matches!(
            error,
            SnapshotError::Read {
                what: "the runtime.allgptr array",
                addr: 0xdead_0000,
                ..
            }
        ),
        "{error}"
    );

    image.write_u64(ALLGPTR, 0);
    assert!(matches!(
        snapshot(&image),
        Err(SnapshotError::NullAllgptr { allglen: 4 })
    ));

    image.write_u64(ALLGLEN, 0);
    let empty = snapshot(&image).unwrap();
    assert_eq!((empty.goroutines.len(), empty.discarded.total()), (0, 0));

    let error = read_goroutines(&good, 0x1000, ALLGPTR, &LAYOUT, 10).unwrap_err();
    assert!(matches!(
        error,
        SnapshotError::Read {
            what: "runtime.allglen",
            ..
        }
    ));
    assert!(error
        .to_string()
        .starts_with("cannot read runtime.allglen at 0x1000: "));
    let error = read_goroutines(&good, ALLGLEN, 0x1000, &LAYOUT, 10).unwrap_err();
    assert!(matches!(
        error,
        SnapshotError::Read {
            what: "runtime.allgptr",
            ..
        }
    ));

    // A huge allglen: the array is shorter than the limit → error; within
    // the limit, the rest is counted and never read.
    let mut image = good.clone();
    image.write_u64(ALLGLEN, u64::MAX);
    assert!(matches!(
        read_goroutines(&image, ALLGLEN, ALLGPTR, &LAYOUT, 1 << 20),
        Err(SnapshotError::Read { .. })
    ));
    let capped = read_goroutines(&image, ALLGLEN, ALLGPTR, &LAYOUT, 4).unwrap();
    assert_eq!(goids(&capped), [1, 7, 9]);
    assert_eq!(capped.discarded.over_limit, u64::MAX - 4);
    let none = read_goroutines(&good, ALLGLEN, ALLGPTR, &LAYOUT, 0).unwrap();
    assert_eq!((none.goroutines.len(), none.discarded.over_limit), (0, 4));
}

#[test]
fn inconsistent_layouts_are_refused() {
    let image = well_formed();
    for layout in [
        GLayout {
            startpc: 440,
            ..LAYOUT
        },
        // One byte, ending past sizeof(g).
        GLayout {
            tracking_seq: 440,
            ..LAYOUT
        },
        GLayout {
            goid: u64::MAX - 2,
            g_size: 0,
            ..LAYOUT
        },
        GLayout {
            goid: 100_000,
            g_size: 0,
            ..LAYOUT
        },
    ] {
        let error = read_goroutines(&image, ALLGLEN, ALLGPTR, &layout, 10).unwrap_err();
        assert!(matches!(error, SnapshotError::BadLayout { .. }), "{error}");
    }
    // sizeof(g) unknown: not checked.
    let layout = GLayout {
        g_size: 0,
        ..LAYOUT
    };
    assert_eq!(
        goids(&read_goroutines(&image, ALLGLEN, ALLGPTR, &layout, 10).unwrap()),
        [1, 7, 9]
    );
}

fn parked_context() -> (ImageMemory, StackContext) {
    let (lo, hi) = stack_of(0);
    let mut image = ImageMemory::new();
    image.map_zeroed(lo, STACK_SIZE as usize);
    let context = StackContext {
        pc: PC_GOPARK,
        sp: hi - 0x220,
        bp: hi - 0x200,
        stack_lo: lo,
        stack_hi: hi,
    };
    (image, context)
}

fn both_unwinders(image: &ImageMemory, context: &StackContext, max: usize) -> Vec<u64> {
    let single = unwind_context(image, context, max);
    let g = SnapshotGoroutine {
        g_addr: G_BASE,
        goid: 1,
        parent_goid: 0,
        status: status::WAITING,
        wait_reason: 0,
        gopc: 0,
        start_pc: 0,
        waitsince: 0,
        sched_pc: context.pc,
        sched_sp: context.sp,
        sched_bp: context.bp,
        stack_lo: context.stack_lo,
        stack_hi: context.stack_hi,
        waiting: 0,
        tracking_seq: 0,
    };
    assert_eq!(unwind(image, &g, max), single);
    assert_eq!(unwind_all(image, &[g], max), std::slice::from_ref(&single));
    single
}

#[test]
fn looping_decreasing_and_escaping_frame_pointers_stop_the_walk() {
    let (image, context) = parked_context();
    let bp = context.bp;
    // (name, initial bp, frame records (at, caller bp, return address), frames)
    type Case = (&'static str, u64, Vec<(u64, u64, u64)>, usize);
    let cases: [Case; 8] = [
        ("self loop", bp, vec![(bp, bp, 0x401)], 2),
        (
            "two-frame loop",
            bp,
            vec![(bp, bp + 0x40, 0x401), (bp + 0x40, bp, 0x402)],
            3,
        ),
        (
            "decreasing",
            bp,
            vec![(bp, bp - 0x100, 0x401), (bp - 0x100, bp, 0x402)],
            2,
        ),
        (
            "overlapping records",
            bp,
            // The caller's record would start inside this one.
            vec![(bp, bp + 8, 0x401)],
            2,
        ),
        (
            "bp below sp",
            context.sp - 0x10,
            vec![(context.sp - 0x10, 0, 0x401)],
            1,
        ),
        ("bp above the stack", context.stack_hi + 0x100, vec![], 1),
        ("record straddles stack.hi", context.stack_hi - 8, vec![], 1),
        (
            "zero return address",
            bp,
            vec![(bp, bp + 0x40, 0), (bp + 0x40, 0, 0x402)],
            1,
        ),
    ];
    for (name, start_bp, records, expected_len) in cases {
        let mut image = image.clone();
        for (at, caller_bp, ret) in records {
            image.write_u64(at, caller_bp);
            image.write_u64(at + 8, ret);
        }
        let context = StackContext {
            bp: start_bp,
            ..context
        };
        let frames = both_unwinders(&image, &context, 1000);
        assert_eq!(frames.len(), expected_len, "{name}: {frames:x?}");
        assert_eq!(frames[0], PC_GOPARK, "{name}");
    }
    // pc 0: nothing to report at all.
    let nothing = StackContext { pc: 0, ..context };
    assert!(both_unwinders(&image, &nothing, 10).is_empty());
}

#[test]
fn truncated_stacks_stop_the_walk_or_fall_back_to_single_reads() {
    let image = well_formed();
    let snapshot = snapshot(&image).unwrap();
    let g = snapshot.goroutines[1];
    let (lo, hi) = stack_of(1);
    // Stack mapped only up to the middle record: two frames, then a failed read.
    let mut short = image.clone();
    let stack = short.unmap(lo).unwrap();
    short.map(lo, stack[..(STACK_SIZE - 0x80) as usize].to_vec());
    assert_eq!(
        unwind(&short, &g, 64),
        [PC_GOPARK, RET_IN_CHANRECV, RET_IN_WORKER]
    );
    assert_eq!(unwind_all(&short, &[g], 64), [unwind(&short, &g, 64)]);
    // A hole between the records: the prefetch of [sp, hi) fails, the
    // record-by-record reads still find every frame.
    let mut holed = image.clone();
    let stack = holed.unmap(lo).unwrap();
    let cut = (hi - 0x180 - lo) as usize;
    holed.map(lo, stack[..cut].to_vec());
    holed.map(hi - 0x100, stack[(STACK_SIZE - 0x100) as usize..].to_vec());
    let full = [PC_GOPARK, RET_IN_CHANRECV, RET_IN_WORKER, GOEXIT_PLUS_1];
    assert_eq!(unwind(&holed, &g, 64), full);
    assert_eq!(unwind_all(&holed, &[g], 64), [full.to_vec()]);
    // No stack at all: frame 0 only.
    let mut gone = image.clone();
    gone.unmap(lo);
    assert_eq!(unwind_all(&gone, &[g], 64), [vec![PC_GOPARK]]);
}

#[test]
fn deep_stacks_beyond_the_prefetch_are_walked_to_the_end() {
    // 2000 frames of 32 bytes: 64 KiB of stack, more than is prefetched.
    let frames = 2000u64;
    let lo = STACK_BASE;
    let hi = lo + frames * 32 + 0x100;
    let mut image = ImageMemory::new();
    image.map_zeroed(lo, (hi - lo) as usize);
    let first = lo + 0x40;
    for k in 0..frames {
        let at = first + 32 * k;
        let caller = if k + 1 == frames { 0 } else { at + 32 };
        image.write_u64(at, caller);
        image.write_u64(at + 8, 0x40_0000 + k);
    }
    let context = StackContext {
        pc: PC_GOPARK,
        sp: lo + 0x20,
        bp: first,
        stack_lo: lo,
        stack_hi: hi,
    };
    assert_eq!(
        both_unwinders(&image, &context, 5000).len(),
        frames as usize + 1
    );
    assert_eq!(both_unwinders(&image, &context, 100).len(), 100);
}

// ---------------------------------------------------------------------------
// Random damage

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn random_damage_never_panics_and_stays_bounded() {
    const LIMIT: usize = 6;
    const MAX_FRAMES: usize = 32;
    let gs: Vec<GSpec> = (0..5)
        .map(|i| parked(i, 10 + i as u64))
        .chain([running(5, 1)])
        .collect();
    let good = image_of(&gs);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut errors, mut discarded, mut frames_seen) = (0, 0, 0);
    for round in 0..3000 {
        let mut image = good.clone();
        let flips = 1 + rng.below(24);
        // Damage the globals and the array more often than their size says.
        let regions: Vec<(u64, usize)> = image.regions_mut().map(|(a, d)| (a, d.len())).collect();
        for _ in 0..flips {
            let (addr, len) = regions[rng.below(regions.len() as u64) as usize];
            let at = addr + rng.below(len as u64);
            let mut byte = [0u8];
            image.read(at, &mut byte).unwrap();
            let value = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                _ => byte[0] ^ (1 << rng.below(8)),
            };
            image.write(at, &[value]);
        }
        if round % 7 == 0 {
            // Truncate or drop a region now and then.
            let (addr, len) = regions[rng.below(regions.len() as u64) as usize];
            let mut bytes = image.unmap(addr).unwrap();
            if rng.below(2) == 0 {
                bytes.truncate(rng.below(len as u64) as usize);
                image.map(addr, bytes);
            }
        }
        let snapshot = match read_goroutines(&image, ALLGLEN, ALLGPTR, &LAYOUT, LIMIT) {
            Ok(s) => s,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        // Every entry is accounted for exactly once.
        assert_eq!(
            snapshot.goroutines.len() as u64 + snapshot.dead + snapshot.discarded.total(),
            snapshot.allglen,
            "round {round}: {snapshot:?}"
        );
        assert!(snapshot.goroutines.len() <= LIMIT);
        discarded += snapshot.discarded.total() - snapshot.discarded.over_limit;
        let mut seen = HashSet::new();
        for g in &snapshot.goroutines {
            assert!(g.goid != 0 && seen.insert(g.goid), "round {round}: {g:?}");
            assert!(g.stack_lo != 0 && g.stack_lo < g.stack_hi);
            assert!(status::name(g.status).is_some() && g.status != status::DEAD);
        }
        let stacks = unwind_all(&image, &snapshot.goroutines, MAX_FRAMES);
        assert_eq!(stacks.len(), snapshot.goroutines.len());
        for (g, stack) in snapshot.goroutines.iter().zip(&stacks) {
            assert!(stack.len() <= MAX_FRAMES);
            assert_eq!(stack, &unwind(&image, g, MAX_FRAMES), "round {round}");
            frames_seen += stack.len();
        }
    }
    // The damage did reach every outcome.
    assert!(
        errors > 50 && discarded > 500 && frames_seen > 10_000,
        "{errors} {discarded} {frames_seen}"
    );
}

#[test]
fn re_reading_g_addresses_validates_each_one() {
    let image = well_formed();
    let addrs = [g_addr(1), g_addr(0), 0, 0xdead_0000, g_addr(3), g_addr(1)];
    let goids: Vec<Option<u64>> = read_gs(&image, &addrs, &LAYOUT)
        .iter()
        .map(|g| g.map(|g| g.goid))
        .collect();
    // Dead, null and unmapped: None; the same g twice is not a duplicate here.
    assert_eq!(goids, [Some(7), Some(1), None, None, None, Some(7)]);
    // g.trackingSeq is re-read too: the goroutine ran (and parked again)
    // since the snapshot, the runtime incremented it (wrapping).
    let before = snapshot(&image).unwrap().goroutines[1];
    assert_eq!((before.goid, before.tracking_seq), (7, 0xf7));
    let mut image = image;
    assert!(image.write(g_addr(1) + LAYOUT.tracking_seq, &[0xf8]));
    let again = read_gs(&image, &[g_addr(1)], &LAYOUT)[0].unwrap();
    assert_eq!(
        again,
        SnapshotGoroutine {
            tracking_seq: 0xf8,
            ..before
        }
    );
    assert!(image.write(g_addr(1) + LAYOUT.tracking_seq, &[0x00]));
    assert_eq!(
        read_gs(&image, &[g_addr(1)], &LAYOUT)[0]
            .unwrap()
            .tracking_seq,
        0
    );
    let bad = GLayout {
        goid: 100_000,
        ..LAYOUT
    };
    assert_eq!(read_gs(&image, &addrs, &bad), vec![None; addrs.len()]);
}

#[test]
fn goidgen_is_read_at_sched_plus_its_offset() {
    const SCHED: u64 = 0x57_dba0;
    let mut image = ImageMemory::new();
    image.map_zeroed(SCHED, 0x100);
    assert!(image.write_u64(SCHED, 1_234_567));
    assert!(image.write_u64(SCHED + 8, 42));
    assert_eq!(read_goidgen(&image, SCHED, 0).unwrap(), 1_234_567);
    assert_eq!(read_goidgen(&image, SCHED, 8).unwrap(), 42);
    let error = read_goidgen(&image, SCHED, 0x100).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot read runtime.sched.goidgen at {:#x}: 8 bytes at {:#x} are not mapped in the target",
            SCHED + 0x100,
            SCHED + 0x100
        )
    );
    assert!(matches!(
        read_goidgen(&image, u64::MAX - 4, 8),
        Err(SnapshotError::BadLayout { .. })
    ));
}

// ---------------------------------------------------------------------------
// g.waiting → sudog chains → channels

/// Maps a sudog at `addr` with channel word `channel` and `waitlink` `link`.
fn map_sudog(image: &mut ImageMemory, addr: u64, channel: u64, link: u64) {
    image.map_zeroed(addr, SUDOG_STRIDE as usize);
    assert!(image.write_u64(addr + SUDOG.c, channel));
    assert!(image.write_u64(addr + SUDOG.waitlink, link));
}

/// Maps a chain of sudogs for slot `i`, one per channel, linked in order
/// from `sudog_addr(i)` (what `g.waiting` of [`parked`] points at).
fn map_chain(image: &mut ImageMemory, i: usize, channels: &[u64]) {
    for (k, &channel) in channels.iter().enumerate() {
        let at = sudog_addr(i) + k as u64 * SUDOG_STRIDE;
        let link = if k + 1 == channels.len() {
            0
        } else {
            at + SUDOG_STRIDE
        };
        map_sudog(image, at, channel, link);
    }
}

fn wait_channels_of(image: &dyn Memory, gs: &[SnapshotGoroutine]) -> WaitChannels {
    read_wait_channels(image, gs, &SUDOG)
}

#[test]
fn a_channel_receive_waits_on_its_sudogs_channel() {
    let mut image = image_of(&[running(0, 1), parked(1, 7), fresh(2, 9), parked(3, 11)]);
    map_chain(&mut image, 1, &[CHAN_A]);
    map_chain(&mut image, 3, &[CHAN_A]);
    let snapshot = snapshot(&image).unwrap();
    assert_eq!(snapshot.goroutines[1].waiting, sudog_addr(1));
    let read = wait_channels_of(&image, &snapshot.goroutines);
    assert_eq!(
        read.channels,
        [
            Some(vec![]),
            Some(vec![CHAN_A]),
            Some(vec![]),
            Some(vec![CHAN_A])
        ],
        "g.waiting nil: no channel; both receivers wait on the same one"
    );
    assert_eq!(
        (read.discarded, read.bad_channels),
        (ChainDiscarded::default(), 0)
    );
    assert_eq!(
        SudogLayout::from_offsets(&RuntimeOffsets {
            sudog_c: 96,
            sudog_waitlink: 72,
            ..Default::default()
        }),
        SUDOG
    );
}

#[test]
fn a_select_chain_of_three_gives_its_channels_sorted_and_deduplicated() {
    let mut image = image_of(&[parked(0, 7), parked(1, 8)]);
    map_chain(&mut image, 0, &[CHAN_C, CHAN_A, CHAN_B]);
    // `select { case <-b: case b <- 1: case <-a: }`: b twice.
    map_chain(&mut image, 1, &[CHAN_B, CHAN_A, CHAN_B]);
    let snapshot = snapshot(&image).unwrap();
    let read = wait_channels_of(&image, &snapshot.goroutines);
    assert_eq!(
        read.channels,
        [
            Some(vec![CHAN_A, CHAN_B, CHAN_C]),
            Some(vec![CHAN_A, CHAN_B])
        ]
    );
    assert_eq!(read.discarded.total(), 0);
}

#[test]
fn chains_are_read_in_one_batch_per_depth() {
    // 3000 goroutines in selects of 3 cases: the sudogs of each depth
    // adjacent (as a size class's objects are), the depths 1 MiB apart.
    const N: usize = 3000;
    let at = |depth: u64, i: usize| SUDOG_BASE + depth * 0x10_0000 + i as u64 * SUDOG_STRIDE;
    let own = |i: usize| CHAN_A + 0x100 * i as u64;
    let mut gs: Vec<GSpec> = (0..N).map(|i| parked(i, 100 + i as u64)).collect();
    for (i, g) in gs.iter_mut().enumerate() {
        g.waiting = at(0, i);
    }
    let mut image = image_of(&gs);
    for i in 0..N {
        map_sudog(&mut image, at(0, i), CHAN_C, at(1, i));
        map_sudog(&mut image, at(1, i), own(i), at(2, i));
        map_sudog(&mut image, at(2, i), CHAN_B, 0);
    }
    let snapshot = snapshot(&image).unwrap();
    let counting = Counting {
        inner: &image,
        reads: Cell::new(0),
        batches: Cell::new(0),
    };
    let read = wait_channels_of(&counting, &snapshot.goroutines);
    for (i, channels) in read.channels.iter().enumerate() {
        let mut expected = [own(i), CHAN_B, CHAN_C];
        expected.sort_unstable();
        assert_eq!(channels.as_deref(), Some(&expected[..]), "goroutine {i}");
    }
    // Each depth's 3000 sudogs (328 KiB) as two merged reads in one
    // read_many: one batch per depth, no single reads.
    assert_eq!((counting.reads.get(), counting.batches.get()), (0, 3));
}

#[test]
fn a_cycle_drops_the_chain() {
    let mut image = image_of(&[parked(0, 7), parked(1, 8), parked(2, 9)]);
    // 0: s0 → s1 → s0. 1: s0 → s0. 2: a clean neighbour.
    let s0 = sudog_addr(0);
    map_sudog(&mut image, s0, CHAN_A, s0 + SUDOG_STRIDE);
    map_sudog(&mut image, s0 + SUDOG_STRIDE, CHAN_B, s0);
    let s1 = sudog_addr(1);
    map_sudog(&mut image, s1, CHAN_A, s1);
    map_chain(&mut image, 2, &[CHAN_C]);
    let snapshot = snapshot(&image).unwrap();
    let read = wait_channels_of(&image, &snapshot.goroutines);
    assert_eq!(read.channels, [None, None, Some(vec![CHAN_C])]);
    assert_eq!(
        read.discarded,
        ChainDiscarded {
            cycle: 2,
            ..Default::default()
        }
    );
}

#[test]
fn bad_pointers_drop_the_chain_and_are_counted() {
    let mut gs: Vec<GSpec> = (0..9).map(|i| parked(i, 10 + i as u64)).collect();
    // 0: g.waiting misaligned. 1: g.waiting unmapped. 2: g.waiting at the
    // very end of the address space.
    gs[0].waiting = sudog_addr(0) + 4;
    gs[1].waiting = 0xdead_0000;
    gs[2].waiting = u64::MAX - 7;
    let mut image = image_of(&gs);
    // 3: the second sudog unmapped. 4: a misaligned waitlink.
    map_sudog(
        &mut image,
        sudog_addr(3),
        CHAN_A,
        sudog_addr(3) + SUDOG_STRIDE,
    );
    map_sudog(&mut image, sudog_addr(4), CHAN_A, sudog_addr(4) + 0x71);
    // 5: a sudog whose channel word is 0 (not a channel wait, or waking up)
    // and one misaligned (a torn read): skipped, the rest kept; only the
    // misaligned one is counted.
    map_chain(&mut image, 5, &[0, CHAN_B, CHAN_A + 3]);
    // 6: a select of 17 cases, more than are followed: unknown, not cut.
    let many: Vec<u64> = (0..17).map(|k| CHAN_A + 0x40 * k).collect();
    map_chain(&mut image, 6, &many);
    // 7: exactly as many as are followed.
    map_chain(&mut image, 7, &many[..MAX_WAIT_SUDOGS]);
    // 8: truncated sudog: its waitlink word is not mapped.
    image.map_zeroed(sudog_addr(8), (SUDOG.waitlink + 4) as usize);
    let snapshot = snapshot(&image).unwrap();
    assert_eq!(snapshot.goroutines.len(), 9);
    let read = wait_channels_of(&image, &snapshot.goroutines);
    let expected: [Option<Vec<u64>>; 9] = [
        None,
        None,
        None,
        None,
        None,
        Some(vec![CHAN_B]),
        None,
        Some(many[..MAX_WAIT_SUDOGS].to_vec()),
        None,
    ];
    assert_eq!(read.channels, expected);
    assert_eq!(
        read.discarded,
        ChainDiscarded {
            misaligned: 2,
            unreadable: 4,
            cycle: 0,
            too_long: 1,
            bad_layout: 0,
        }
    );
    assert_eq!(read.bad_channels, 1);
    // An inconsistent layout (overlapping words) reads nothing.
    let overlapping = SudogLayout {
        c: 72,
        waitlink: 76,
    };
    let read = read_wait_channels(&image, &snapshot.goroutines, &overlapping);
    assert_eq!(read.channels, vec![None; 9]);
    assert_eq!(read.discarded.bad_layout, 9);
    assert!(read_wait_channels(&image, &[], &SUDOG).channels.is_empty());
}

//! A lock-free snapshot of the target's goroutines (`runtime.allgs`).

use std::collections::HashSet;

use super::coalesce::read_coalesced;
use super::{le_u32, le_u64, Memory, MemoryError};
use crate::target::RuntimeOffsets;

/// `runtime.g.atomicstatus` values (Go 1.21–1.27, `runtime2.go`).
pub mod status {
    pub const IDLE: u32 = 0;
    pub const RUNNABLE: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const SYSCALL: u32 = 3;
    pub const WAITING: u32 = 4;
    /// A free `g` (exited, or not yet initialized): not a goroutine.
    pub const DEAD: u32 = 6;
    /// The goroutine's stack is being moved.
    pub const COPYSTACK: u32 = 8;
    /// Stopped by a `suspendG` preemption.
    pub const PREEMPTED: u32 = 9;
    /// Go 1.26+: proven leaked by the GC (`goroutineleak` profile).
    pub const LEAKED: u32 = 10;
    /// Go 1.26+: a dead `g` attached to an extra M for cgo callbacks.
    pub const DEAD_EXTRA: u32 = 11;
    /// Set on top of a status while the GC scans the stack: masked off.
    pub const SCAN: u32 = 0x1000;

    /// The runtime's name of a (masked) status, as in its goroutine dumps
    /// (`gStatusStrings`); `None` for values the runtime never uses.
    pub fn name(status: u32) -> Option<&'static str> {
        Some(match status {
            IDLE => "idle",
            RUNNABLE => "runnable",
            RUNNING => "running",
            SYSCALL => "syscall",
            WAITING => "waiting",
            DEAD => "dead",
            COPYSTACK => "copystack",
            PREEMPTED => "preempted",
            LEAKED => "leaked",
            DEAD_EXTRA => "waiting for cgo callback",
            _ => return None,
        })
    }

    /// Not running and not in a system call: `g.sched` holds where the
    /// goroutine resumes, and its stack can be unwound from there.
    pub fn is_parked(status: u32) -> bool {
        matches!(status, RUNNABLE | WAITING | PREEMPTED | LEAKED)
    }
}

/// Byte offsets in `runtime.g` of the fields a snapshot reads. `sched_*` are
/// `offsetof(g, sched) + offsetof(gobuf, …)`; `stack_*` likewise with
/// `runtime.stack`. `g_size` is `sizeof(g)` (0: unknown, not checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GLayout {
    pub goid: u64,
    pub parent_goid: u64,
    pub gopc: u64,
    pub startpc: u64,
    pub atomicstatus: u64,
    pub waitreason: u64,
    pub waitsince: u64,
    pub sched_sp: u64,
    pub sched_pc: u64,
    pub sched_bp: u64,
    pub stack_lo: u64,
    pub stack_hi: u64,
    /// `g.waiting` (see [`super::read_wait_channels`]).
    pub waiting: u64,
    /// `g.trackingSeq` (one byte).
    pub tracking_seq: u64,
    pub g_size: u64,
}

/// Longest span of `g` a snapshot reads per goroutine (`sizeof(g)` is about
/// 400–450 bytes in Go 1.21–1.27).
const MAX_SPAN: u64 = 4096;

impl GLayout {
    /// The layout from the target's DWARF offsets.
    pub fn from_offsets(o: &RuntimeOffsets) -> Self {
        GLayout {
            goid: o.g_goid,
            parent_goid: o.g_parent_goid,
            gopc: o.g_gopc,
            startpc: o.g_startpc,
            atomicstatus: o.g_atomicstatus,
            waitreason: o.g_waitreason,
            waitsince: o.g_waitsince,
            sched_sp: o.g_sched + o.gobuf_sp,
            sched_pc: o.g_sched + o.gobuf_pc,
            sched_bp: o.g_sched + o.gobuf_bp,
            stack_lo: o.g_stack_lo,
            stack_hi: o.g_stack_hi,
            waiting: o.g_waiting,
            tracking_seq: o.g_tracking_seq,
            g_size: o.g_size,
        }
    }

    /// (offset, size) of every field read.
    fn fields(&self) -> [(u64, u64); 14] {
        [
            (self.goid, 8),
            (self.parent_goid, 8),
            (self.gopc, 8),
            (self.startpc, 8),
            (self.atomicstatus, 4),
            (self.waitreason, 1),
            (self.waitsince, 8),
            (self.sched_sp, 8),
            (self.sched_pc, 8),
            (self.sched_bp, 8),
            (self.stack_lo, 8),
            (self.stack_hi, 8),
            (self.waiting, 8),
            (self.tracking_seq, 1),
        ]
    }

    /// The byte range of `g` that holds every field: `(start, len)`.
    fn span(&self) -> Result<(u64, usize), SnapshotError> {
        let fields = self.fields();
        let start = fields.iter().map(|f| f.0).min().unwrap_or(0);
        let end = fields
            .iter()
            .map(|&(offset, size)| offset.checked_add(size))
            .try_fold(0u64, |end, e| e.map(|e| end.max(e)));
        let bad = |reason: String| SnapshotError::BadLayout { reason };
        let end = end.ok_or_else(|| bad("a field offset overflows".into()))?;
        if self.g_size != 0 && end > self.g_size {
            return Err(bad(format!(
                "a field ends at byte {end}, past sizeof(g) = {}",
                self.g_size
            )));
        }
        if end - start > MAX_SPAN {
            return Err(bad(format!(
                "the fields span {} bytes of g (at most {MAX_SPAN} expected)",
                end - start
            )));
        }
        Ok((start, (end - start) as usize))
    }
}

/// One goroutine as read from its `runtime.g`. Addresses are runtime
/// addresses of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotGoroutine {
    /// Address of the `runtime.g`.
    pub g_addr: u64,
    pub goid: u64,
    /// 0 for goroutines the runtime started itself before any other.
    pub parent_goid: u64,
    /// [`status`] value, `_Gscan` bit masked off.
    pub status: u32,
    /// `g.waitreason` (a per-version code: see `WaitReasons`); meaningful
    /// when `status` is [`status::WAITING`] or [`status::LEAKED`].
    pub wait_reason: u8,
    /// Return address of the `go` statement's call to `runtime.newproc`.
    pub gopc: u64,
    /// Entry of the goroutine's function.
    pub start_pc: u64,
    /// Runtime `nanotime()` (`CLOCK_MONOTONIC` ns) when the goroutine
    /// blocked, or 0 for unknown: the runtime only sets it lazily, during GC.
    pub waitsince: i64,
    pub sched_pc: u64,
    pub sched_sp: u64,
    pub sched_bp: u64,
    /// Stack bounds `[stack_lo, stack_hi)`.
    pub stack_lo: u64,
    pub stack_hi: u64,
    /// `g.waiting`, unchecked: the first `runtime.sudog` of a goroutine
    /// blocked in a channel operation or `select` (0 or unrelated for other
    /// waits). See [`super::read_wait_channels`].
    pub waiting: u64,
    /// `g.trackingSeq`: starts at a random value and wraps; `casgstatus`
    /// adds one on every transition out of `_Grunning`/`_Gsyscall` (other
    /// than between those two). A goroutine read as waiting twice with the
    /// same value did not run in between, unless it ran a multiple of 256
    /// times; a different value means it woke (and parked again).
    pub tracking_seq: u8,
}

impl SnapshotGoroutine {
    /// See [`status::is_parked`].
    pub fn is_parked(&self) -> bool {
        status::is_parked(self.status)
    }
}

/// How many `g` entries a snapshot dropped, per reason. Torn reads of a
/// running target land here; so do corrupted images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Discarded {
    /// Entries of the `allgs` array that were null.
    pub null_pointer: u64,
    /// `g` pointers whose memory could not be read.
    pub unreadable: u64,
    /// A status the runtime never uses.
    pub bad_status: u64,
    /// `goid` 0 on a live goroutine.
    pub zero_goid: u64,
    /// A `goid` already seen in this snapshot (the first one is kept).
    pub duplicate_goid: u64,
    /// `stack.lo` is 0 or not below `stack.hi`.
    pub bad_stack_bounds: u64,
    /// A parked goroutine whose saved `sp` is outside its stack.
    pub sp_outside_stack: u64,
    /// Entries past the caller's limit (never read).
    pub over_limit: u64,
}

impl Discarded {
    pub fn total(&self) -> u64 {
        self.null_pointer
            + self.unreadable
            + self.bad_status
            + self.zero_goid
            + self.duplicate_goid
            + self.bad_stack_bounds
            + self.sp_outside_stack
            + self.over_limit
    }
}

/// The goroutines of a target at (about) one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoroutineSnapshot {
    /// Valid goroutines, in `allgs` order.
    pub goroutines: Vec<SnapshotGoroutine>,
    /// `runtime.allglen` as read (dead `g`s included).
    pub allglen: u64,
    /// Dead (free) `g`s skipped: not goroutines, not an error.
    pub dead: u64,
    pub discarded: Discarded,
}

/// Why no snapshot could be taken at all.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {what} at {addr:#x}: {source}")]
    Read {
        what: &'static str,
        addr: u64,
        source: MemoryError,
    },
    #[error("runtime.allgptr is null while runtime.allglen is {allglen}")]
    NullAllgptr { allglen: u64 },
    #[error("runtime.allglen is {allglen}: too many goroutines to read (pass a lower limit)")]
    TooMany { allglen: u64 },
    #[error("invalid runtime.g layout: {reason}")]
    BadLayout { reason: String },
}

/// Reads the target's goroutines without stopping it, as the runtime's own
/// lock-free readers do (`atomicAllG`): `runtime.allglen` first, then
/// `runtime.allgptr`, an array of at least `allglen` `*g` (it only grows, and
/// old arrays are never freed). Then the pointer array in one read, and the
/// `g`s sorted by address, neighbours merged into large reads (a few hundred
/// system calls for 100,000 goroutines).
///
/// `allglen_addr` and `allgptr_addr` are the runtime addresses of those two
/// variables. At most `limit` entries are read (the rest are counted in
/// [`Discarded::over_limit`]). Invalid entries are counted and skipped; only
/// an unreadable `allglen`/`allgptr`/pointer array, a lost process or a bad
/// layout is an error.
pub fn read_goroutines(
    mem: &dyn Memory,
    allglen_addr: u64,
    allgptr_addr: u64,
    layout: &GLayout,
    limit: usize,
) -> Result<GoroutineSnapshot, SnapshotError> {
    let (span_start, span_len) = layout.span()?;
    let read_error = |what, addr| move |source| SnapshotError::Read { what, addr, source };
    let allglen = mem
        .read_u64(allglen_addr)
        .map_err(read_error("runtime.allglen", allglen_addr))?;
    let allgptr = mem
        .read_u64(allgptr_addr)
        .map_err(read_error("runtime.allgptr", allgptr_addr))?;
    let mut snapshot = GoroutineSnapshot {
        allglen,
        ..Default::default()
    };
    let count = allglen.min(limit as u64);
    snapshot.discarded.over_limit = allglen - count;
    if count == 0 {
        return Ok(snapshot);
    }
    if allgptr == 0 {
        return Err(SnapshotError::NullAllgptr { allglen });
    }
    // `count` ≤ `limit`, a usize: the array fits in memory if the caller's
    // limit does.
    let count = count as usize;
    let mut array = Vec::new();
    count
        .checked_mul(8)
        .and_then(|len| array.try_reserve_exact(len).ok())
        .ok_or(SnapshotError::TooMany { allglen })?;
    array.resize(count * 8, 0);
    mem.read(allgptr, &mut array)
        .map_err(read_error("the runtime.allgptr array", allgptr))?;
    let pointers: Vec<u64> = array.chunks_exact(8).map(|c| le_u64(c, 0)).collect();
    drop(array);

    let entries = read_entries(mem, &pointers, layout, span_start, span_len)
        .map_err(read_error("runtime.g structures", pointers[0]))?;
    drop(pointers);
    let mut seen_goids = HashSet::with_capacity(count.min(1 << 20));
    for entry in entries {
        let g = match entry {
            Entry::Null => {
                snapshot.discarded.null_pointer += 1;
                continue;
            }
            Entry::Unreadable => {
                snapshot.discarded.unreadable += 1;
                continue;
            }
            Entry::G(g) => g,
        };
        match validate(&g) {
            Ok(()) if seen_goids.insert(g.goid) => snapshot.goroutines.push(g),
            Ok(()) => snapshot.discarded.duplicate_goid += 1,
            Err(Verdict::Dead) => snapshot.dead += 1,
            Err(Verdict::Discard(reason)) => *reason.of(&mut snapshot.discarded) += 1,
        }
    }
    Ok(snapshot)
}

/// Re-reads the `g`s at `addrs` (runtime addresses, e.g. from an earlier
/// snapshot), batched like [`read_goroutines`]: one result per address, in
/// order. `None` for a null, unreadable, dead or invalid `g` (validated as
/// in a snapshot, except for goid uniqueness), and for every address when
/// the layout is inconsistent or the process is gone. A `g` is reused after
/// its goroutine exits: compare the goid.
pub fn read_gs(
    mem: &dyn Memory,
    addrs: &[u64],
    layout: &GLayout,
) -> Vec<Option<SnapshotGoroutine>> {
    let Ok((span_start, span_len)) = layout.span() else {
        return vec![None; addrs.len()];
    };
    match read_entries(mem, addrs, layout, span_start, span_len) {
        Ok(entries) => entries
            .into_iter()
            .map(|entry| match entry {
                Entry::G(g) if validate(&g).is_ok() => Some(g),
                _ => None,
            })
            .collect(),
        Err(_) => vec![None; addrs.len()],
    }
}

/// One entry of the `allgs` array.
enum Entry {
    Null,
    Unreadable,
    G(SnapshotGoroutine),
}

/// Gaps between `g`s read along (`sizeof(g)` is ~440 bytes, in a 448-byte
/// size class: neighbours are ~150 bytes apart when only the fields' span is
/// read).
const G_MAX_GAP: u64 = 1024;

/// Reads and decodes the `g`s at `pointers`, in order. Errors are fatal ones.
fn read_entries(
    mem: &dyn Memory,
    pointers: &[u64],
    layout: &GLayout,
    span_start: u64,
    span_len: usize,
) -> Result<Vec<Entry>, MemoryError> {
    let records: Vec<(u64, usize)> = pointers
        .iter()
        .map(|&g| match g.checked_add(span_start) {
            Some(at) if g != 0 => (at, span_len),
            _ => (0, 0),
        })
        .collect();
    let mut entries: Vec<Entry> = pointers
        .iter()
        .map(|&g| {
            if g == 0 {
                Entry::Null
            } else {
                Entry::Unreadable
            }
        })
        .collect();
    read_coalesced(mem, &records, G_MAX_GAP, &mut |i, bytes| {
        entries[i] = Entry::G(decode(layout, span_start, pointers[i], bytes));
    })?;
    Ok(entries)
}

fn decode(layout: &GLayout, span_start: u64, g_addr: u64, bytes: &[u8]) -> SnapshotGoroutine {
    let field = |offset: u64| (offset - span_start) as usize;
    SnapshotGoroutine {
        g_addr,
        goid: le_u64(bytes, field(layout.goid)),
        parent_goid: le_u64(bytes, field(layout.parent_goid)),
        status: le_u32(bytes, field(layout.atomicstatus)) & !status::SCAN,
        wait_reason: bytes.get(field(layout.waitreason)).copied().unwrap_or(0),
        gopc: le_u64(bytes, field(layout.gopc)),
        start_pc: le_u64(bytes, field(layout.startpc)),
        waitsince: le_u64(bytes, field(layout.waitsince)) as i64,
        sched_pc: le_u64(bytes, field(layout.sched_pc)),
        sched_sp: le_u64(bytes, field(layout.sched_sp)),
        sched_bp: le_u64(bytes, field(layout.sched_bp)),
        stack_lo: le_u64(bytes, field(layout.stack_lo)),
        stack_hi: le_u64(bytes, field(layout.stack_hi)),
        waiting: le_u64(bytes, field(layout.waiting)),
        tracking_seq: bytes.get(field(layout.tracking_seq)).copied().unwrap_or(0),
    }
}

enum Verdict {
    Dead,
    Discard(Reason),
}

#[derive(Clone, Copy)]
enum Reason {
    BadStatus,
    ZeroGoid,
    BadStackBounds,
    SpOutsideStack,
}

impl Reason {
    fn of(self, d: &mut Discarded) -> &mut u64 {
        match self {
            Reason::BadStatus => &mut d.bad_status,
            Reason::ZeroGoid => &mut d.zero_goid,
            Reason::BadStackBounds => &mut d.bad_stack_bounds,
            Reason::SpOutsideStack => &mut d.sp_outside_stack,
        }
    }
}

/// `Ok` if `g` looks like a live goroutine (goid uniqueness aside).
fn validate(g: &SnapshotGoroutine) -> Result<(), Verdict> {
    use status::*;
    // `g.status` has the scan bit masked off: any other high bit makes it invalid.
    match g.status {
        DEAD | DEAD_EXTRA => return Err(Verdict::Dead),
        IDLE | RUNNABLE | RUNNING | SYSCALL | WAITING | COPYSTACK | PREEMPTED | LEAKED => {}
        _ => return Err(Verdict::Discard(Reason::BadStatus)),
    }
    if g.goid == 0 {
        return Err(Verdict::Discard(Reason::ZeroGoid));
    }
    if g.stack_lo == 0 || g.stack_lo >= g.stack_hi {
        return Err(Verdict::Discard(Reason::BadStackBounds));
    }
    if g.is_parked() && !(g.stack_lo..=g.stack_hi).contains(&g.sched_sp) {
        return Err(Verdict::Discard(Reason::SpOutsideStack));
    }
    Ok(())
}

//! Frame-pointer unwinding of parked goroutines, out of process.
//!
//! Go on amd64 keeps frame pointers: every Go frame (except frameless leaf
//! functions, which cannot be parked in) saves the caller's `RBP` at `[RBP]`
//! and has the return address at `[RBP+8]`. A parked goroutine's `g.sched`
//! holds the pc it resumes at, its `sp`, and the `bp` of that frame (saved by
//! `mcall`/`gosave`), so its stack can be walked without stopping it.

use super::coalesce::read_coalesced;
use super::{le_u64, Memory, SnapshotGoroutine};

/// Where to start unwinding: a saved context and the stack it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackContext {
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// Stack bounds `[stack_lo, stack_hi)`.
    pub stack_lo: u64,
    pub stack_hi: u64,
}

impl StackContext {
    /// The saved context of a parked goroutine (`g.sched`, see
    /// [`status::is_parked`](super::status::is_parked)); `None` when the
    /// goroutine is running, in a system call or moving its stack: `g.sched`
    /// is then stale.
    pub fn of(g: &SnapshotGoroutine) -> Option<StackContext> {
        g.is_parked().then_some(StackContext {
            pc: g.sched_pc,
            sp: g.sched_sp,
            bp: g.sched_bp,
            stack_lo: g.stack_lo,
            stack_hi: g.stack_hi,
        })
    }
}

/// The pc to symbolize for frame `index` of an unwound stack (a runtime
/// address: convert it with `Target::to_vaddr`).
///
/// Frame 0 is `sched.pc`, symbolized as is. For a goroutine that has run,
/// it is the return address of the `mcall` that parked it (in
/// `runtime.gopark`, or in the scheduler's yield/preempt paths): the
/// function is right, the line may be the next statement's (gopark's
/// closing brace). Go's own tracebacks use `pc − 1` there, which gives the
/// `mcall` line; a goroutine that never ran is the exception (`sched.pc` is
/// its function's entry, `sched.bp` 0; the stack is that one frame).
///
/// The other frames are return addresses: the call is at `pc − 1`, which
/// gives the right (inlined) functions and lines. One more exception: the
/// frame above `runtime.asyncPreempt` is the interrupted instruction itself,
/// not a return address (Go symbolizes it as is).
pub fn symbolization_pc(index: usize, pc: u64) -> u64 {
    if index == 0 {
        pc
    } else {
        pc.saturating_sub(1)
    }
}

/// Unwinds a parked goroutine from its saved `g.sched`: frame 0 is
/// `sched.pc`, then one return address per frame record, outermost last
/// (`runtime.goexit`). Empty for goroutines that are not parked (running,
/// in a system call, copying their stack: their saved context is stale
/// while they run; a running goroutine's stack can only be read by stopping
/// it). See [`unwind_context`] for when the walk stops and
/// [`symbolization_pc`] for symbolizing.
///
/// One read per frame: to unwind many goroutines use [`unwind_all`].
pub fn unwind(mem: &dyn Memory, g: &SnapshotGoroutine, max_frames: usize) -> Vec<u64> {
    match StackContext::of(g) {
        Some(context) => unwind_context(mem, &context, max_frames),
        None => Vec::new(),
    }
}

/// Unwinds from `context`: `[pc, [bp+8], [[bp]+8], …]`, at most `max_frames`
/// pcs. Stops when `bp` is 0, when a frame record `[bp, bp+16)` is not
/// within `[sp, stack_hi)` or overlaps the previous one (the chain must
/// strictly increase), when a return address is 0, or when a read fails.
/// The target keeps running: a goroutine that resumes meanwhile yields a
/// shorter (or stale) stack, never a loop.
pub fn unwind_context(mem: &dyn Memory, context: &StackContext, max_frames: usize) -> Vec<u64> {
    walk(context, max_frames, |bp| read_record(mem, bp))
}

/// Bytes of each stack read up front by [`unwind_all`], from the saved `sp`
/// up (a parked goroutine usually uses a few hundred).
const PREFETCH: u64 = 16 * 1024;

/// Gaps between stacks read along. Parked goroutines use a few hundred
/// bytes at the top of their stacks (2 KiB at least, often adjacent): with
/// 100,000 parked goroutines, reading the unused rest of small neighbouring
/// stacks along measured ~25% faster than one read per stack (copying, not
/// the number of reads, then dominates).
const STACK_MAX_GAP: u64 = 2048;

/// [`unwind`] for many goroutines, in order: reads the used part of each
/// stack (`[sched.sp, stack_hi)`, up to 16 KiB; frames beyond are read one
/// by one) with few system calls, then walks it in place.
pub fn unwind_all(
    mem: &dyn Memory,
    goroutines: &[SnapshotGoroutine],
    max_frames: usize,
) -> Vec<Vec<u64>> {
    let contexts: Vec<Option<StackContext>> = goroutines
        .iter()
        .map(|g| StackContext::of(g).filter(|c| c.sp <= c.stack_hi && max_frames > 1))
        .collect();
    let records: Vec<(u64, usize)> = contexts
        .iter()
        .map(|c| {
            c.map_or((0, 0), |c| {
                (c.sp, (c.stack_hi - c.sp).min(PREFETCH) as usize)
            })
        })
        .collect();
    let mut stacks: Vec<Option<Vec<u64>>> = vec![None; goroutines.len()];
    // A lost process leaves the stacks unread: the fallback below reads
    // record by record, and fails the same way.
    let _ = read_coalesced(mem, &records, STACK_MAX_GAP, &mut |i, prefetched| {
        let Some(context) = &contexts[i] else {
            return;
        };
        stacks[i] = Some(walk(context, max_frames, |bp| {
            let offset = bp.checked_sub(context.sp)?;
            match offset.checked_add(16) {
                Some(end) if end <= prefetched.len() as u64 => {
                    let offset = offset as usize;
                    Some((le_u64(prefetched, offset), le_u64(prefetched, offset + 8)))
                }
                _ => read_record(mem, bp),
            }
        }));
    });
    stacks
        .into_iter()
        .zip(goroutines)
        .map(|(stack, g)| stack.unwrap_or_else(|| unwind(mem, g, max_frames)))
        .collect()
}

fn read_record(mem: &dyn Memory, bp: u64) -> Option<(u64, u64)> {
    let mut record = [0u8; 16];
    mem.read(bp, &mut record)
        .ok()
        .map(|()| (le_u64(&record, 0), le_u64(&record, 8)))
}

/// The frame-pointer walk; `read_record(bp)` returns `([bp], [bp+8])`.
fn walk(
    context: &StackContext,
    max_frames: usize,
    mut read_record: impl FnMut(u64) -> Option<(u64, u64)>,
) -> Vec<u64> {
    let mut frames = Vec::new();
    if max_frames == 0 || context.pc == 0 {
        return frames;
    }
    frames.push(context.pc);
    let mut bp = context.bp;
    // Lowest address the next frame record may start at.
    let mut floor = context.sp.max(context.stack_lo);
    while frames.len() < max_frames {
        if bp == 0 || bp < floor {
            break;
        }
        let Some(record_end) = bp.checked_add(16) else {
            break;
        };
        if record_end > context.stack_hi {
            break;
        }
        let Some((caller_bp, return_address)) = read_record(bp) else {
            break;
        };
        if return_address == 0 {
            break;
        }
        frames.push(return_address);
        floor = record_end;
        bp = caller_bp;
    }
    frames
}

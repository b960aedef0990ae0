//! The channels a parked goroutine waits on, from its `g.waiting` list.
//!
//! A goroutine blocked in `chansend`/`chanrecv` has `g.waiting` = its one
//! `runtime.sudog`, whose `c` is the channel (`*hchan`); one blocked in
//! `selectgo` has one sudog per case with a non-nil channel, linked through
//! `sudog.waitlink` (in lock order). Other waits leave `g.waiting` nil
//! (sleeps, I/O, and everything up to Go 1.25), or point it at a sudog whose
//! `c` is nil: from Go 1.26, `sync` semaphores and `sync.Cond` do (for the
//! GC's leak detection), and a semaphore sudog's `waitlink` then links the
//! *other* goroutines waiting on the same address. Only the caller, knowing
//! the wait reason, can tell whether a list is a channel wait; it should
//! only follow the lists of goroutines in channel operations and `select`.
//!
//! Chains are followed for all goroutines at once, one batched round of
//! reads per chain depth (most chains are one sudog long).

use super::coalesce::read_coalesced;
use super::{le_u64, Memory, SnapshotGoroutine};
use crate::target::RuntimeOffsets;

/// Sudogs followed per goroutine at most. A longer chain (a `select` of more
/// cases) is reported as unknown, not cut short.
pub const MAX_WAIT_SUDOGS: usize = 16;

/// Byte offsets in `runtime.sudog` of the two words a chain walk reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SudogLayout {
    /// The channel address (`sudog.c`, or `sudog.c.vu` from Go 1.26).
    pub c: u64,
    /// `sudog.waitlink`.
    pub waitlink: u64,
}

/// Longest span of a sudog read (`sizeof(sudog)` is 88–96 bytes).
const MAX_SUDOG_SPAN: u64 = 512;

impl SudogLayout {
    /// The layout from the target's DWARF offsets.
    pub fn from_offsets(o: &RuntimeOffsets) -> Self {
        SudogLayout {
            c: o.sudog_c,
            waitlink: o.sudog_waitlink,
        }
    }

    /// `(start, len)` of the bytes holding both words; `None` if the layout
    /// is inconsistent.
    fn span(&self) -> Option<(u64, usize)> {
        let start = self.c.min(self.waitlink);
        let end = self.c.max(self.waitlink).checked_add(8)?;
        let overlap = self.c.abs_diff(self.waitlink) < 8;
        (!overlap && end - start <= MAX_SUDOG_SPAN).then_some((start, (end - start) as usize))
    }
}

/// What chain walks dropped, per reason. Each goroutine whose chain was
/// dropped counts once; a dropped chain's goroutine gets `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ChainDiscarded {
    /// `g.waiting` or a `sudog.waitlink` not 8-byte aligned.
    pub misaligned: u64,
    /// A sudog whose memory could not be read.
    pub unreadable: u64,
    /// A `waitlink` back to a sudog already in the chain.
    pub cycle: u64,
    /// More than [`MAX_WAIT_SUDOGS`] sudogs.
    pub too_long: u64,
    /// The sudog layout is inconsistent: nothing was read.
    pub bad_layout: u64,
}

impl ChainDiscarded {
    pub fn total(&self) -> u64 {
        self.misaligned + self.unreadable + self.cycle + self.too_long + self.bad_layout
    }
}

/// The result of [`read_wait_channels`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitChannels {
    /// Per goroutine, in order: the channel addresses (runtime addresses of
    /// `runtime.hchan`s) of its `g.waiting` list, sorted and deduplicated;
    /// empty when `g.waiting` is nil; `None` when the list could not be
    /// read completely (see [`ChainDiscarded`]).
    pub channels: Vec<Option<Vec<u64>>>,
    /// Sudogs of a chain whose channel word was misaligned (skipped, the
    /// rest of the chain kept): a torn read. A nil channel word is skipped
    /// silently (a sudog of another kind of wait, or of a goroutine waking
    /// up: `selectgo` clears the words before `g.waiting`).
    pub bad_channels: u64,
    pub discarded: ChainDiscarded,
}

/// Gaps between sudogs read along (they come from one size class, often
/// from the same per-P cache).
const SUDOG_MAX_GAP: u64 = 1024;

/// A chain being walked.
enum Walk {
    /// The next sudog to read; the sudogs read so far (for cycles).
    At {
        next: u64,
        seen: Vec<u64>,
    },
    Done,
    Dropped,
}

/// Follows `g.waiting` → `sudog.waitlink` → … for each goroutine (whatever
/// its status and wait reason: the caller picks the goroutines, see the
/// module documentation) and collects the non-nil `sudog.c`. Pointers must
/// be 8-byte aligned; a misaligned or unreadable link, a cycle, or a chain
/// longer than [`MAX_WAIT_SUDOGS`] drops the goroutine's chain (counted).
///
/// The reads are batched: one [`Memory::read_many`] round (merged reads of
/// neighbouring sudogs) per chain depth, for all goroutines together.
pub fn read_wait_channels(
    mem: &dyn Memory,
    goroutines: &[SnapshotGoroutine],
    layout: &SudogLayout,
) -> WaitChannels {
    let mut result = WaitChannels {
        channels: vec![Some(Vec::new()); goroutines.len()],
        ..Default::default()
    };
    let Some((span_start, span_len)) = layout.span() else {
        result.discarded.bad_layout = goroutines.len() as u64;
        result.channels = vec![None; goroutines.len()];
        return result;
    };
    let mut walks: Vec<Walk> = goroutines
        .iter()
        .map(|g| match g.waiting {
            0 => Walk::Done,
            next if next % 8 != 0 => {
                result.discarded.misaligned += 1;
                Walk::Dropped
            }
            next => Walk::At {
                next,
                seen: Vec::new(),
            },
        })
        .collect();
    for depth in 0..=MAX_WAIT_SUDOGS {
        let active: Vec<usize> = (0..walks.len())
            .filter(|&i| matches!(walks[i], Walk::At { .. }))
            .collect();
        if active.is_empty() {
            break;
        }
        if depth == MAX_WAIT_SUDOGS {
            for &i in &active {
                walks[i] = Walk::Dropped;
            }
            result.discarded.too_long += active.len() as u64;
            break;
        }
        let records: Vec<(u64, usize)> = active
            .iter()
            .map(|&i| match &walks[i] {
                // A sudog too close to the end of the address space cannot
                // be read: (0, 0) is skipped, and counted unreadable below.
                Walk::At { next, .. } => next
                    .checked_add(span_start)
                    .map_or((0, 0), |at| (at, span_len)),
                _ => (0, 0),
            })
            .collect();
        // (channel, waitlink) per active walk, if read.
        let mut words: Vec<Option<(u64, u64)>> = vec![None; active.len()];
        let field = |offset: u64| (offset - span_start) as usize;
        // A lost process leaves everything unread: dropped as unreadable.
        let _ = read_coalesced(mem, &records, SUDOG_MAX_GAP, &mut |k, bytes| {
            words[k] = Some((
                le_u64(bytes, field(layout.c)),
                le_u64(bytes, field(layout.waitlink)),
            ));
        });
        for (&i, read) in active.iter().zip(words) {
            let Walk::At { next, seen } = &mut walks[i] else {
                continue;
            };
            let Some((channel, link)) = read else {
                result.discarded.unreadable += 1;
                walks[i] = Walk::Dropped;
                continue;
            };
            if channel % 8 != 0 {
                result.bad_channels += 1;
            } else if channel != 0 {
                if let Some(channels) = &mut result.channels[i] {
                    channels.push(channel);
                }
            }
            seen.push(*next);
            if link == 0 {
                walks[i] = Walk::Done;
            } else if link % 8 != 0 {
                result.discarded.misaligned += 1;
                walks[i] = Walk::Dropped;
            } else if seen.contains(&link) {
                result.discarded.cycle += 1;
                walks[i] = Walk::Dropped;
            } else {
                *next = link;
            }
        }
    }
    for (channels, walk) in result.channels.iter_mut().zip(&walks) {
        match walk {
            Walk::Done => {
                if let Some(channels) = channels {
                    channels.sort_unstable();
                    channels.dedup();
                }
            }
            // Every walk ends done or dropped (depth is bounded above).
            Walk::Dropped | Walk::At { .. } => *channels = None,
        }
    }
    result
}

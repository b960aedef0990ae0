//! The timers armed in the target's per-P timer heaps, read once at attach
//! so that timers armed before the tracer came are known at once rather
//! than at their next fire, reset or stop.
//!
//! `runtime.allp` is a `[]*p`; each P's heap is the slice `p.timers` (Go
//! ≤1.22, of `*timer`) or `p.timers.heap` (Go ≥1.23, of `timerWhen{timer,
//! when}`). An entry is pending when its status says so (Go ≤1.22: waiting
//! or modified, the latter with its `nextwhen`) or, since Go 1.23, when it
//! is not a zombie and its `when` is set. Only timers of package `time`
//! (channel sends, `AfterFunc`, `Sleep`) are kept, by their function; the
//! runtime's own (network deadlines, the scavenger) are counted and left.
//!
//! What the heaps do not hold: since Go 1.23 a channel timer (`NewTimer`,
//! `After`, `NewTicker`) is in a heap only while a goroutine waits on its
//! channel.

use super::{Memory, MemoryError};

/// Where the heaps are and what a timer looks like (runtime addresses and
/// byte offsets; see `target::timers::TimerOffsets`).
#[derive(Clone, Copy, Debug)]
pub struct TimerHeapLayout {
    /// `runtime.allp`.
    pub allp: u64,
    pub p_timer_heap: u64,
    pub heap_entry: u64,
    pub when: u64,
    pub period: u64,
    pub f: u64,
    pub arg_data: u64,
    /// Go ≤1.22 (0 since).
    pub status: u64,
    pub nextwhen: u64,
    /// Go ≥1.23 (0 before).
    pub is_chan: u64,
    pub state: u64,
    /// The functions of `time`'s timers: `time.sendTime`, `time.goFunc`,
    /// `runtime.goroutineReady`.
    pub send_time: u64,
    pub go_func: u64,
    pub goroutine_ready: u64,
}

/// A pending timer found in a heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotTimer {
    pub timer: u64,
    pub when: i64,
    pub period: i64,
    /// Code of `timer.f`.
    pub func: u64,
    /// `time.goFunc`: the callback's code and first captured word.
    pub callback: Option<(u64, u64)>,
    pub is_chan: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimerHeaps {
    pub timers: Vec<SnapshotTimer>,
    /// Ps read, heap entries seen.
    pub ps: u64,
    pub entries: u64,
    /// Entries of the runtime's own timers, and entries not pending.
    pub not_time: u64,
    pub not_pending: u64,
    /// Entries whose timer could not be read (freed or torn under us).
    pub discarded: u64,
}

/// More Ps than any machine has: a larger length is a torn read.
const MAX_PS: u64 = 1 << 16;
/// Entries read per snapshot, over all heaps.
const MAX_ENTRIES: u64 = 1 << 22;

/// Go ≤1.22 statuses of a pending timer: waiting, modified earlier,
/// modified later.
const WAITING: u32 = 1;
const MODIFIED_EARLIER: u32 = 7;
const MODIFIED_LATER: u32 = 8;
/// Go ≥1.23 `timer.state` bit: stopped, still in a heap.
const ZOMBIE: u8 = 4;

/// Reads every P's timer heap. Only an unreadable `allp` is an error; a
/// timer that cannot be read is counted and skipped.
pub fn read_timer_heaps(
    memory: &dyn Memory,
    layout: &TimerHeapLayout,
) -> Result<TimerHeaps, MemoryError> {
    let mut out = TimerHeaps::default();
    let ps_ptr = memory.read_u64(layout.allp)?;
    let ps_len = memory.read_u64(layout.allp + 8)?.min(MAX_PS);
    let mut ps = vec![0u8; ps_len as usize * 8];
    memory.read(ps_ptr, &mut ps)?;
    for p in ps.chunks_exact(8).map(word) {
        if p == 0 {
            continue;
        }
        out.ps += 1;
        let (Ok(heap), Ok(len)) = (
            memory.read_u64(p + layout.p_timer_heap),
            memory.read_u64(p + layout.p_timer_heap + 8),
        ) else {
            continue;
        };
        let len = len.min(MAX_ENTRIES - out.entries.min(MAX_ENTRIES));
        let mut entries = vec![0u8; (len * layout.heap_entry) as usize];
        if len == 0 || memory.read(heap, &mut entries).is_err() {
            continue;
        }
        for entry in entries.chunks_exact(layout.heap_entry as usize) {
            out.entries += 1;
            match read_timer(memory, layout, word(entry)) {
                Ok(Some(t)) => out.timers.push(t),
                Ok(None) => {}
                Err(Skip::NotTime) => out.not_time += 1,
                Err(Skip::NotPending) => out.not_pending += 1,
                Err(Skip::Unreadable) => out.discarded += 1,
            }
        }
    }
    Ok(out)
}

enum Skip {
    NotTime,
    NotPending,
    Unreadable,
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

fn read_timer(
    memory: &dyn Memory,
    l: &TimerHeapLayout,
    t: u64,
) -> Result<Option<SnapshotTimer>, Skip> {
    if t == 0 {
        return Ok(None);
    }
    let u = |r: Result<u64, MemoryError>| r.map_err(|_| Skip::Unreadable);
    let mut when = u(memory.read_u64(t + l.when))? as i64;
    if l.status != 0 {
        let status = memory
            .read_u32(t + l.status)
            .map_err(|_| Skip::Unreadable)?;
        match status {
            WAITING => {}
            MODIFIED_EARLIER | MODIFIED_LATER => {
                when = u(memory.read_u64(t + l.nextwhen))? as i64;
            }
            _ => return Err(Skip::NotPending),
        }
    } else {
        let state = memory.read_u8(t + l.state).map_err(|_| Skip::Unreadable)?;
        if state & ZOMBIE != 0 || when <= 0 {
            return Err(Skip::NotPending);
        }
    }
    let f = u(memory.read_u64(t + l.f))?;
    let func = u(memory.read_u64(f))?;
    if func == 0 || ![l.send_time, l.go_func, l.goroutine_ready].contains(&func) {
        return Err(Skip::NotTime);
    }
    let callback = if func == l.go_func {
        let arg = u(memory.read_u64(t + l.arg_data))?;
        Some((u(memory.read_u64(arg))?, u(memory.read_u64(arg + 8))?))
    } else {
        None
    };
    let is_chan = l.is_chan != 0
        && memory
            .read_u8(t + l.is_chan)
            .map_err(|_| Skip::Unreadable)?
            != 0;
    Ok(Some(SnapshotTimer {
        timer: t,
        when,
        period: u(memory.read_u64(t + l.period))? as i64,
        func,
        callback,
        is_chan,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::memory::ImageMemory;

    const ALLP: u64 = 0x1000;
    const PS: u64 = 0x2000;
    const P0: u64 = 0x3000;
    const HEAP: u64 = 0x5000;
    const SEND_TIME: u64 = 0x40_0000;
    const GO_FUNC: u64 = 0x40_1000;
    const READY: u64 = 0x40_2000;
    const NETPOLL: u64 = 0x40_3000;

    /// Go 1.26's layout.
    fn layout() -> TimerHeapLayout {
        TimerHeapLayout {
            allp: ALLP,
            p_timer_heap: 0x100,
            heap_entry: 16,
            when: 24,
            period: 32,
            f: 40,
            arg_data: 56,
            status: 0,
            nextwhen: 0,
            is_chan: 10,
            state: 9,
            send_time: SEND_TIME,
            go_func: GO_FUNC,
            goroutine_ready: READY,
        }
    }

    /// A timer at `t` with function `func` (its funcval at `t + 0x80`).
    fn timer(m: &mut ImageMemory, t: u64, when: i64, period: i64, func: u64, state: u8) {
        m.map_zeroed(t, 0x100);
        m.write_u64(t + 24, when as u64);
        m.write_u64(t + 32, period as u64);
        m.write_u64(t + 40, t + 0x80);
        m.write_u64(t + 0x80, func);
        m.write(t + 9, &[state]);
    }

    #[test]
    fn pending_timers_of_time_are_read_from_every_heap() {
        let mut m = ImageMemory::new();
        m.map_zeroed(ALLP, 24)
            .map_zeroed(PS, 16)
            .map_zeroed(P0, 0x200);
        m.write_u64(ALLP, PS);
        m.write_u64(ALLP + 8, 2);
        // The second P is nil (not started).
        m.write_u64(PS, P0);
        m.map_zeroed(HEAP, 16 * 5);
        m.write_u64(P0 + 0x100, HEAP);
        m.write_u64(P0 + 0x108, 5);
        let ts = [0x10_000, 0x11_000, 0x12_000, 0x13_000, 0x14_000];
        for (i, &t) in ts.iter().enumerate() {
            m.write_u64(HEAP + 16 * i as u64, t);
        }
        timer(&mut m, ts[0], 1_000, 500, SEND_TIME, 1);
        timer(&mut m, ts[1], 2_000, 0, GO_FUNC, 1);
        // AfterFunc's callback {code, first word}.
        m.write_u64(ts[1] + 56, ts[1] + 0xc0);
        m.write_u64(ts[1] + 0xc0, 0x41_0000);
        m.write_u64(ts[1] + 0xc8, 0xc000);
        timer(&mut m, ts[2], 3_000, 0, NETPOLL, 1);
        timer(&mut m, ts[3], 4_000, 0, SEND_TIME, 1 | ZOMBIE);
        // ts[4] is not mapped: freed under us.
        let heaps = read_timer_heaps(&m, &layout()).unwrap();
        assert_eq!(
            heaps.timers,
            vec![
                SnapshotTimer {
                    timer: ts[0],
                    when: 1_000,
                    period: 500,
                    func: SEND_TIME,
                    callback: None,
                    is_chan: false,
                },
                SnapshotTimer {
                    timer: ts[1],
                    when: 2_000,
                    period: 0,
                    func: GO_FUNC,
                    callback: Some((0x41_0000, 0xc000)),
                    is_chan: false,
                },
            ]
        );
        assert_eq!(
            (
                heaps.ps,
                heaps.entries,
                heaps.not_time,
                heaps.not_pending,
                heaps.discarded
            ),
            (1, 5, 1, 1, 1)
        );
    }

    #[test]
    fn go_1_22_statuses_say_what_is_pending_and_modified_timers_use_nextwhen() {
        let mut l = layout();
        l.heap_entry = 8;
        l.when = 8;
        l.period = 16;
        l.f = 24;
        l.arg_data = 40;
        l.status = 64;
        l.nextwhen = 56;
        l.is_chan = 0;
        l.state = 0;
        let mut m = ImageMemory::new();
        m.map_zeroed(ALLP, 24)
            .map_zeroed(PS, 8)
            .map_zeroed(P0, 0x200);
        m.write_u64(ALLP, PS);
        m.write_u64(ALLP + 8, 1);
        m.write_u64(PS, P0);
        m.map_zeroed(HEAP, 8 * 3);
        m.write_u64(P0 + 0x100, HEAP);
        m.write_u64(P0 + 0x108, 3);
        for (i, (status, nextwhen)) in [(WAITING, 0), (MODIFIED_LATER, 9_000), (3, 0)]
            .into_iter()
            .enumerate()
        {
            let t = 0x10_000 + 0x1000 * i as u64;
            m.write_u64(HEAP + 8 * i as u64, t);
            m.map_zeroed(t, 0x100);
            m.write_u64(t + 8, 1_000);
            m.write_u64(t + 24, t + 0x80);
            m.write_u64(t + 0x80, SEND_TIME);
            m.write_u64(t + 56, nextwhen);
            m.write_u32(t + 64, status);
        }
        let heaps = read_timer_heaps(&m, &l).unwrap();
        let whens: Vec<i64> = heaps.timers.iter().map(|t| t.when).collect();
        assert_eq!(whens, vec![1_000, 9_000]);
        assert_eq!(heaps.not_pending, 1);
    }

    #[test]
    fn an_unreadable_allp_is_an_error_and_a_torn_length_is_bounded() {
        let m = ImageMemory::new();
        assert!(read_timer_heaps(&m, &layout()).is_err());
        let mut m = ImageMemory::new();
        m.map_zeroed(ALLP, 24);
        m.write_u64(ALLP, PS);
        m.write_u64(ALLP + 8, u64::MAX);
        // allp's array is not mapped at the bounded length either.
        assert!(read_timer_heaps(&m, &layout()).is_err());
    }
}

//! The bridge between the target's memory and the model: the attach-time
//! snapshot of `runtime.allgs` that seeds the goroutine table, and where
//! waiting goroutines are blocked: their stacks, unwound out of process,
//! and the channels their `g.waiting` sudogs point at.
//!
//! Reads race with the running target; the memory module validates and
//! counts what it discards, and the model ignores a stack that no longer
//! belongs to the goroutine's current wait.

use std::{sync::Arc, time::Instant};

use super::model::Model;
use crate::{
    model::{GoroutineState, Reconciled, SnapshotGoroutine},
    record::format::BlockedAt,
    report::SnapshotSummary,
    target::{
        memory::{self, GLayout, ProcessMemory, SudogLayout},
        Target,
    },
};

/// At most this many goroutines are read from the target.
pub const SNAPSHOT_LIMIT: usize = 10_000_000;
/// Frames kept per blocked-at stack.
pub const MAX_FRAMES: usize = 64;
/// Stacks of newly parked goroutines unwound per refresh (bounds the work
/// per output interval on targets with huge numbers of goroutines).
pub const STACKS_PER_REFRESH: usize = 20_000;

pub struct TargetMemory {
    memory: ProcessMemory,
    layout: GLayout,
    sudog_layout: SudogLayout,
    /// Per `g.waitreason` code: a channel operation or `select`, whose
    /// `g.waiting` list holds the channels.
    channel_waits: [bool; 256],
    allglen: u64,
    allgptr: u64,
    /// `runtime.sched` (runtime address) and `goidgen`'s offset in it.
    sched: Option<(u64, u64)>,
    /// Where the timer heaps are (`None`: no timer layout for this Go
    /// version, or no `runtime.allp` symbol).
    timer_heaps: Option<memory::TimerHeapLayout>,
}

/// The timer heaps' layout at run time, if the target has the pieces.
fn timer_heap_layout(target: &Target) -> Option<memory::TimerHeapLayout> {
    let t = target.timer_offsets?;
    let allp = target.runtime_vars.allp?;
    let plan = &target.timer_probes;
    let runtime = |vaddr: u64| (vaddr != 0).then_some(vaddr + target.load_bias);
    Some(memory::TimerHeapLayout {
        allp: allp + target.load_bias,
        p_timer_heap: t.p_timer_heap,
        heap_entry: t.heap_entry,
        when: t.when,
        period: t.period,
        f: t.f,
        arg_data: t.arg_data,
        status: t.status,
        nextwhen: t.nextwhen,
        is_chan: t.is_chan,
        state: t.state,
        send_time: runtime(plan.send_time)?,
        go_func: runtime(plan.go_func).unwrap_or(0),
        goroutine_ready: runtime(plan.goroutine_ready).unwrap_or(0),
    })
}

impl TargetMemory {
    pub fn open(target: &Target, pid: u32) -> Result<Self, memory::MemoryError> {
        Ok(Self {
            memory: ProcessMemory::open(pid)?,
            layout: GLayout::from_offsets(&target.offsets),
            sudog_layout: SudogLayout::from_offsets(&target.offsets),
            channel_waits: channel_waits(target),
            allglen: target.runtime_vars.allglen + target.load_bias,
            allgptr: target.runtime_vars.allgptr + target.load_bias,
            sched: target
                .runtime_vars
                .sched
                .map(|sched| (sched + target.load_bias, target.offsets.schedt_goidgen)),
            timer_heaps: timer_heap_layout(target),
        })
    }

    /// Reads the timers pending in the runtime's timer heaps into the
    /// model; `None` when this target's heaps cannot be found.
    pub fn seed_timers(
        &self,
        model: &mut Model,
        now_ns: u64,
    ) -> Option<Result<memory::TimerHeaps, memory::MemoryError>> {
        let layout = self.timer_heaps.as_ref()?;
        Some(
            memory::read_timer_heaps(&self.memory, layout).inspect(|heaps| {
                model.seed_timers(heaps.timers.clone(), now_ns);
            }),
        )
    }

    /// Goroutines the target has created so far (`runtime.sched.goidgen`:
    /// ids are handed to each P 16 at a time, so this runs up to 16 per P
    /// ahead of the goroutines actually created). `None` if unknown.
    pub fn goids_allocated(&self) -> Option<u64> {
        let (sched, offset) = self.sched?;
        memory::read_goidgen(&self.memory, sched, offset).ok()
    }

    /// Reads the target's goroutine list.
    fn read_list(&self) -> Result<memory::GoroutineSnapshot, memory::SnapshotError> {
        memory::read_goroutines(
            &self.memory,
            self.allglen,
            self.allgptr,
            &self.layout,
            SNAPSHOT_LIMIT,
        )
    }

    /// Reads every goroutine of the target and seeds the model with them,
    /// with the stacks (and channels) of those that are parked.
    pub fn seed(
        &self,
        model: &mut Model,
        now_ns: u64,
    ) -> Result<SnapshotSummary, memory::SnapshotError> {
        let started = Instant::now();
        let snapshot = self.read_list()?;
        let stacks = memory::unwind_all(&self.memory, &snapshot.goroutines, MAX_FRAMES);
        let channels = self.wait_channels(&snapshot.goroutines);
        model.seed(
            snapshot
                .goroutines
                .iter()
                .map(|g| to_model(g, now_ns))
                .collect(),
            now_ns,
        );
        for ((g, pcs), channels) in snapshot.goroutines.iter().zip(stacks).zip(channels) {
            if pcs.is_empty() {
                continue;
            }
            let parked_since_ns = model.table.get(g.goid).and_then(|m| m.parked_since_ns);
            model.blocked_at(BlockedAt {
                goid: g.goid,
                parked_since_ns,
                pcs: Arc::from(pcs),
                channels,
            });
        }
        Ok(SnapshotSummary {
            goroutines: snapshot.goroutines.len() as u64,
            discarded: snapshot.discarded.total(),
            duration_s: started.elapsed().as_secs_f64(),
            timers: None,
        })
    }

    /// Re-reads the goroutine list and reconciles the model with it (see
    /// [`crate::model::GoroutineTable::reconcile`]); every event up to
    /// `started_ns` must have been applied. Stacks of goroutines it adds
    /// come with the next [`TargetMemory::refresh_stacks`].
    pub fn reconcile(
        &self,
        model: &mut Model,
        started_ns: u64,
        states: bool,
    ) -> Result<Reconciled, memory::SnapshotError> {
        let snapshot = self.read_list()?;
        Ok(model.reconcile(
            snapshot
                .goroutines
                .iter()
                .map(|g| to_model(g, started_ns))
                .collect(),
            started_ns,
            states,
        ))
    }

    /// Unwinds the stacks (and reads the channels) of waiting goroutines
    /// that have none yet (parked since the last refresh), at most
    /// [`STACKS_PER_REFRESH`]. Each `g` is re-read first: only a goroutine
    /// still parked, with the same goid, is unwound. Returns how many stacks
    /// were recorded.
    pub fn refresh_stacks(&self, model: &mut Model) -> usize {
        let pending: Vec<(u64, u64, Option<u64>)> = model
            .table
            .iter()
            .filter(|g| g.state == GoroutineState::Waiting && g.blocked_stack.is_none())
            .take(STACKS_PER_REFRESH)
            .map(|g| (g.goid, g.g_addr, g.parked_since_ns))
            .collect();
        if pending.is_empty() {
            return 0;
        }
        let addrs: Vec<u64> = pending.iter().map(|p| p.1).collect();
        let read = memory::read_gs(&self.memory, &addrs, &self.layout);
        let parked: Vec<(usize, memory::SnapshotGoroutine)> = read
            .into_iter()
            .enumerate()
            .filter_map(|(i, g)| {
                g.filter(|g| g.goid == pending[i].0 && g.is_parked())
                    .map(|g| (i, g))
            })
            .collect();
        let goroutines: Vec<memory::SnapshotGoroutine> = parked.iter().map(|(_, g)| *g).collect();
        let stacks = memory::unwind_all(&self.memory, &goroutines, MAX_FRAMES);
        let channels = self.wait_channels(&goroutines);
        // An empty stack (nothing unwindable) is recorded too, so that the
        // goroutine is not retried on every refresh.
        for (((i, _), pcs), channels) in parked.iter().zip(stacks).zip(channels) {
            let (goid, _, parked_since_ns) = pending[*i];
            model.blocked_at(BlockedAt {
                goid,
                parked_since_ns,
                pcs: Arc::from(pcs),
                channels,
            });
        }
        parked.len()
    }

    /// The channels each goroutine waits on, in order: read from its
    /// `g.waiting` list when its wait reason is a channel operation or
    /// `select` (`None`: unreadable), none otherwise (the list of a `sync`
    /// wait holds no channel, and from Go 1.26 links other goroutines).
    fn wait_channels(&self, goroutines: &[memory::SnapshotGoroutine]) -> Vec<Option<Arc<[u64]>>> {
        let on_channels: Vec<usize> = (0..goroutines.len())
            .filter(|&i| self.channel_waits[usize::from(goroutines[i].wait_reason)])
            .collect();
        let selected: Vec<memory::SnapshotGoroutine> =
            on_channels.iter().map(|&i| goroutines[i]).collect();
        let read = memory::read_wait_channels(&self.memory, &selected, &self.sudog_layout);
        if read.discarded.total() + read.bad_channels > 0 {
            log::debug!(
                "g.waiting lists of {} goroutines: {:?} dropped, {} channel words skipped",
                selected.len(),
                read.discarded,
                read.bad_channels
            );
        }
        let none: Arc<[u64]> = Arc::from(Vec::new());
        let mut channels = vec![Some(none); goroutines.len()];
        for (i, read) in on_channels.into_iter().zip(read.channels) {
            channels[i] = read.map(Arc::from);
        }
        channels
    }
}

/// The `g.waitreason` codes of channel operations and `select` (Go's
/// "chan send", "chan receive", "select" and their variants), per code.
fn channel_waits(target: &Target) -> [bool; 256] {
    let mut codes = [false; 256];
    for (code, name) in target.wait_reasons.iter() {
        codes[usize::from(code)] = name.starts_with("chan ") || name.starts_with("select");
    }
    codes
}

fn to_model(g: &memory::SnapshotGoroutine, seen_at_ns: u64) -> SnapshotGoroutine {
    SnapshotGoroutine {
        goid: g.goid,
        parent_goid: (g.parent_goid != 0).then_some(g.parent_goid),
        gopc: (g.gopc != 0).then_some(g.gopc),
        start_pc: (g.start_pc != 0).then_some(g.start_pc),
        g_addr: g.g_addr,
        status: g.status,
        wait_reason: g.wait_reason,
        waiting_since_ns: u64::try_from(g.waitsince).ok().filter(|&t| t > 0),
        tracking_seq: Some(g.tracking_seq),
        seen_at_ns,
    }
}

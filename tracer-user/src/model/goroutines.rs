//! The goroutine table: every goroutine the probes have shown, its state and
//! where it came from, plus running totals.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::event::{Event, EventBody, Spawn};
use super::timeline::{TimelineEntry, Timelines};

/// What the tracer knows a goroutine is doing.
///
/// `Running` is only set when the goroutine is seen acting (it spawned or woke
/// another goroutine); the scheduler's run transition (`execute`) is too hot
/// to probe, so a goroutine that was made runnable and has not acted since is
/// reported `Runnable` even while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoroutineState {
    Runnable,
    Running,
    /// In a system call (only known from a memory snapshot).
    Syscall,
    Waiting,
}

/// How the tracer learned about a goroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Its creation was traced: creation site, parent and start time known.
    Traced,
    /// It existed before attach and was first seen parking, waking or exiting:
    /// creation site, parent and start time unknown.
    PreAttach,
    /// Read from the target's memory at attach (`runtime.allgs`): creation
    /// site and parent known, start time unknown.
    Snapshot,
    /// Found by a later read of the goroutine list: created after attach
    /// while the spawn probes were off (or its spawn event was lost).
    /// Creation site and parent known, start time within one read period.
    Read,
}

/// The Go runtime's `g.atomicstatus` values (stable across Go 1.21–1.27).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoStatus {
    Idle,
    Runnable,
    Running,
    Syscall,
    Waiting,
    Dead,
    CopyStack,
    Preempted,
    /// `_Gleaked` (Go 1.26+ with the goroutineleak profile).
    Leaked,
    Other(u32),
}

impl GoStatus {
    /// Decodes a status, ignoring the `_Gscan` bit (0x1000).
    pub fn from_raw(raw: u32) -> Self {
        match raw & !0x1000 {
            0 => Self::Idle,
            1 => Self::Runnable,
            2 => Self::Running,
            3 => Self::Syscall,
            4 => Self::Waiting,
            6 => Self::Dead,
            8 => Self::CopyStack,
            9 => Self::Preempted,
            10 => Self::Leaked,
            other => Self::Other(other),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goroutine {
    pub goid: u64,
    /// `None` when created before attach (or by the runtime with no parent).
    pub parent_goid: Option<u64>,
    /// Creation PC (`g.gopc`), known for traced goroutines.
    pub gopc: Option<u64>,
    pub start_pc: Option<u64>,
    /// Address of the `runtime.g` (reused by the runtime for later goroutines).
    pub g_addr: u64,
    pub state: GoroutineState,
    /// Version-specific `waitReason` code while waiting.
    pub wait_reason: Option<u8>,
    /// Address passed as `gopark`'s lock (the channel for chan operations).
    pub wait_object: Option<u64>,
    pub created_at_ns: Option<u64>,
    /// First seen (equals `created_at_ns` for traced goroutines).
    pub first_seen_ns: u64,
    pub parked_since_ns: Option<u64>,
    pub wake_count: u64,
    pub last_waker: Option<u64>,
    pub origin: Origin,
    /// Where it is blocked: runtime PCs, innermost first (frame 0 is the
    /// saved PC, the others are return addresses). Set while waiting.
    pub blocked_stack: Option<Arc<[u64]>>,
    /// The channels it is blocked on (chan ops and select): runtime
    /// addresses of `runtime.hchan`s, sorted, read from memory with its
    /// stack (`g.waiting`'s sudogs). `None` until read, when not waiting, or
    /// when the list could not be read; empty when `g.waiting` was nil.
    /// Meaningful for channel and select wait reasons only.
    pub wait_channels: Option<Arc<[u64]>>,
    /// `g.trackingSeq` at the last read of the goroutine list: the runtime
    /// bumps it whenever the goroutine stops running, so an unchanged value
    /// across two reads of a waiting goroutine means one continuous wait.
    pub tracking_seq: Option<u8>,
    /// Its creator's stack at the `go` statement (an id in the probes' stack
    /// map), with `--creation-stacks`.
    pub creation_stack: Option<u32>,
}

/// Spawn/exit counts of one creation site (one `go` statement).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SiteStats {
    /// Spawns traced since attach.
    pub spawned: u64,
    /// Goroutines found by the attach-time snapshot.
    pub at_attach: u64,
    pub exited: u64,
    pub live: u64,
}

/// A goroutine as read from the target's memory, in the model's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotGoroutine {
    pub goid: u64,
    pub parent_goid: Option<u64>,
    pub gopc: Option<u64>,
    pub start_pc: Option<u64>,
    pub g_addr: u64,
    /// Raw `g.atomicstatus`.
    pub status: u32,
    pub wait_reason: u8,
    /// `g.waitsince` when the runtime recorded it (CLOCK_MONOTONIC ns).
    pub waiting_since_ns: Option<u64>,
    /// `g.trackingSeq`, when the layout is known.
    pub tracking_seq: Option<u8>,
    /// When the snapshot read it.
    pub seen_at_ns: u64,
}

/// What a read of the goroutine list changed in the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Goroutines it found that the table did not have.
    pub added: u64,
    /// Goroutines the table had that it did not find (counted as exited).
    pub removed: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Goroutines currently in the table.
    pub live: u64,
    /// Spawns traced since attach.
    pub spawned: u64,
    /// Exits traced since attach (of traced and pre-attach goroutines).
    pub exited: u64,
    /// Of `spawned`, those created while the spawn/exit probes were
    /// detached by the overhead budget: counted from the target's goid
    /// generator (exact to 16 per P).
    pub spawned_untraced: u64,
    /// Of `exited`, those of `spawned_untraced` that no read of the
    /// goroutine list found alive.
    pub exited_untraced: u64,
    /// Goroutines found in the target's memory at attach.
    pub snapshot_seeded: u64,
    /// Goroutines not kept because the table was at its cap
    /// (`--max-tracked`): those the last read of the goroutine list could
    /// not keep, plus the spawns and first sightings refused since.
    pub untracked: u64,
    /// Goroutines first seen by a park, wake or exit (they predate attach and
    /// the snapshot missed them, or there was none).
    pub pre_attach_seen: u64,
    /// Of `exited`, those whose creation was not traced.
    pub pre_attach_exited: u64,
    pub parks: u64,
    pub wakes: u64,
    /// Events the kernel could not deliver (ring buffer full), as reported by
    /// the probes' counters.
    pub lost_events: u64,
    /// Records that could not be decoded or applied.
    pub malformed_events: u64,
    /// Entry events repeated by a probe firing twice for one call.
    pub duplicate_events: u64,
    /// Goroutines a periodic re-read of the target found that the events had
    /// not shown (`--snapshot-interval`): a sign of lost events.
    pub reconciled_added: u64,
    /// Goroutines the events still showed live that a periodic re-read found
    /// gone: their exit was missed. Counted in `exited` too.
    pub reconciled_removed: u64,
}

/// How many exited goids are remembered to recognise a repeated exit event.
const RECENT_EXITS: usize = 4096;

#[derive(Debug, Default)]
pub struct GoroutineTable {
    goroutines: HashMap<u64, Goroutine>,
    sites: HashMap<u64, SiteStats>,
    totals: Totals,
    recent_exits: HashSet<u64>,
    recent_exit_order: VecDeque<u64>,
    /// Creator stack seen on a thread, waiting for that thread's spawn event.
    pending_creator_stack: HashMap<u32, u32>,
    /// Latest event timestamp seen.
    last_ts_ns: u64,
    /// Event timelines of the few goroutines being watched.
    timelines: Timelines,
    /// One shared copy of each blocked-at stack and channel set: thousands
    /// of goroutines blocked at one place cost one allocation.
    interned: Interner,
    /// Most goroutines tracked at once (`None`: no cap).
    cap: Option<usize>,
    /// Highest goid a spawn event reported.
    max_spawned_goid: Option<u64>,
}

/// Deduplicates `Arc<[u64]>`s. Entries nobody else holds are dropped when
/// the set has doubled since the last sweep.
#[derive(Debug, Default)]
struct Interner {
    set: HashSet<Arc<[u64]>>,
    sweep_at: usize,
}

impl Interner {
    fn intern(&mut self, v: Arc<[u64]>) -> Arc<[u64]> {
        if let Some(existing) = self.set.get(&v) {
            return Arc::clone(existing);
        }
        if self.set.len() >= self.sweep_at {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.sweep_at = (self.set.len() * 2).max(1024);
        }
        self.set.insert(Arc::clone(&v));
        v
    }
}

impl GoroutineTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table that tracks at most `cap` goroutines at once: beyond that,
    /// new goroutines are counted in `untracked` and not kept.
    pub fn with_cap(cap: usize) -> Self {
        GoroutineTable {
            cap: Some(cap),
            ..Self::default()
        }
    }

    /// True when the cap is reached: a new goroutine is not tracked.
    fn full(&mut self) -> bool {
        let full = self.cap.is_some_and(|cap| self.goroutines.len() >= cap);
        if full {
            self.totals.untracked += 1;
        }
        full
    }

    /// Highest goid a spawn event reported (`None`: no spawn traced yet):
    /// where counting spawns from the target's goid generator resumes when
    /// the spawn probes come out.
    pub fn max_spawned_goid(&self) -> Option<u64> {
        self.max_spawned_goid
    }

    pub fn get(&self, goid: u64) -> Option<&Goroutine> {
        self.goroutines.get(&goid)
    }

    /// Live goroutines in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Goroutine> {
        self.goroutines.values()
    }

    /// Per creation PC (`gopc`) counts for traced goroutines.
    pub fn sites(&self) -> impl Iterator<Item = (u64, &SiteStats)> {
        self.sites.iter().map(|(pc, s)| (*pc, s))
    }

    pub fn totals(&self) -> Totals {
        Totals {
            live: self.goroutines.len() as u64,
            ..self.totals
        }
    }

    /// Timestamp of the newest event applied.
    pub fn last_event_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// Keeps the event timelines of exactly these goroutines (at most
    /// [`super::MAX_WATCHED`]); a newly watched one starts with what the
    /// table knows of it (creation, current wait).
    pub fn watch(&mut self, goids: &[u64]) {
        let goroutines = &self.goroutines;
        self.timelines.watch(goids, |goid| {
            let Some(g) = goroutines.get(&goid) else {
                return Vec::new();
            };
            let mut seed = vec![match (g.created_at_ns, g.gopc) {
                (Some(ts), Some(gopc)) => (
                    ts,
                    TimelineEntry::Created {
                        parent: g.parent_goid,
                        gopc,
                    },
                ),
                _ => (g.first_seen_ns, TimelineEntry::FirstSeen),
            }];
            if let (GoroutineState::Waiting, Some(reason)) = (g.state, g.wait_reason) {
                let since = g.parked_since_ns.unwrap_or(g.first_seen_ns);
                seed.push((since, TimelineEntry::Parked { reason }));
            }
            seed
        });
    }

    /// The timeline of a watched goroutine, oldest first.
    pub fn timeline(&self, goid: u64) -> Option<impl Iterator<Item = (u64, TimelineEntry)> + '_> {
        self.timelines.get(goid).map(|t| t.iter().copied())
    }

    /// Records events lost before reaching userspace. `total` is the probes'
    /// cumulative count, so calling this repeatedly is safe.
    pub fn set_lost_events(&mut self, total: u64) {
        self.totals.lost_events = self.totals.lost_events.max(total);
    }

    /// Counts a record that could not be decoded.
    pub fn record_malformed(&mut self) {
        self.totals.malformed_events += 1;
    }

    /// Seeds the table with the goroutines read from the target's memory at
    /// attach. Goroutines already known (from events applied earlier) keep
    /// their state, but one first seen through a park or wake gets its
    /// identity (creation site, parent, start function) from the read; dead
    /// ones are skipped.
    pub fn seed(&mut self, goroutines: impl IntoIterator<Item = SnapshotGoroutine>) {
        self.insert_read(goroutines, Origin::Snapshot);
    }

    /// Inserts goroutines read from memory that the table does not know;
    /// returns how many.
    fn insert_read(
        &mut self,
        goroutines: impl IntoIterator<Item = SnapshotGoroutine>,
        origin: Origin,
    ) -> u64 {
        let mut added = 0;
        // A fresh count: what this read could not keep.
        self.totals.untracked = 0;
        for sg in goroutines {
            if let Some(g) = self.goroutines.get_mut(&sg.goid) {
                if g.origin == Origin::PreAttach && g.gopc.is_none() {
                    complete_identity(g, &sg, &mut self.sites);
                }
                continue;
            }
            if sg.goid == 0 || self.full() {
                continue;
            }
            let (state, wait_reason) = match GoStatus::from_raw(sg.status) {
                GoStatus::Waiting | GoStatus::Leaked => {
                    (GoroutineState::Waiting, Some(sg.wait_reason))
                }
                GoStatus::Running => (GoroutineState::Running, None),
                GoStatus::Syscall => (GoroutineState::Syscall, None),
                GoStatus::Runnable | GoStatus::Preempted | GoStatus::CopyStack => {
                    (GoroutineState::Runnable, None)
                }
                GoStatus::Idle | GoStatus::Dead | GoStatus::Other(_) => continue,
            };
            added += 1;
            if origin == Origin::Snapshot {
                self.totals.snapshot_seeded += 1;
            } else {
                self.totals.reconciled_added += 1;
            }
            if let Some(pc) = sg.gopc {
                let site = self.sites.entry(pc).or_default();
                if origin == Origin::Snapshot {
                    site.at_attach += 1;
                }
                site.live += 1;
            }
            self.goroutines.insert(
                sg.goid,
                Goroutine {
                    goid: sg.goid,
                    parent_goid: sg.parent_goid,
                    gopc: sg.gopc,
                    start_pc: sg.start_pc,
                    g_addr: sg.g_addr,
                    state,
                    wait_reason,
                    wait_object: None,
                    created_at_ns: None,
                    first_seen_ns: sg.seen_at_ns,
                    parked_since_ns: if state == GoroutineState::Waiting {
                        sg.waiting_since_ns
                    } else {
                        None
                    },
                    wake_count: 0,
                    last_waker: None,
                    origin,
                    blocked_stack: None,
                    wait_channels: None,
                    tracking_seq: sg.tracking_seq,
                    creation_stack: None,
                },
            );
        }
        added
    }

    /// Reconciles the table with a later read of the target's goroutine list
    /// that started at `started_ns` (after every event up to then was
    /// applied): goroutines the events missed are added, and those known
    /// since before `started_ns` but absent from the list are removed as
    /// exited.
    ///
    /// With `states` (the park and wake probes are off), the read also sets
    /// the state of every goroutine present in both: a goroutine still in
    /// the same wait (same reason, same `g.trackingSeq`) keeps its
    /// `parked_since_ns`; one that entered a new wait is taken as parked at
    /// `started_ns` (at most one read period late). Without `states`, the
    /// events own the state (the read races with them).
    pub fn reconcile(
        &mut self,
        goroutines: Vec<SnapshotGoroutine>,
        started_ns: u64,
        states: bool,
    ) -> Reconciled {
        let present: HashSet<u64> = goroutines.iter().map(|g| g.goid).collect();
        if states {
            for sg in &goroutines {
                if let Some(g) = self.goroutines.get_mut(&sg.goid) {
                    observe(g, sg, started_ns);
                }
            }
        }
        let added = self.insert_read(goroutines, Origin::Read);
        let gone: Vec<u64> = self
            .goroutines
            .values()
            .filter(|g| g.first_seen_ns < started_ns && !present.contains(&g.goid))
            .map(|g| g.goid)
            .collect();
        let removed = gone.len() as u64;
        for goid in gone {
            self.exit(goid);
            self.totals.reconciled_removed += 1;
        }
        Reconciled { added, removed }
    }

    /// Accounts for `spawned` goroutines created while the spawn and exit
    /// probes were detached (from the target's goid generator), of which
    /// `found` were found alive by a read of the goroutine list: the others
    /// came and went between two reads.
    pub fn count_untraced_spawns(&mut self, spawned: u64, found: u64) {
        let short_lived = spawned.saturating_sub(found);
        self.totals.spawned += spawned;
        self.totals.spawned_untraced += spawned;
        self.totals.exited += short_lived;
        self.totals.exited_untraced += short_lived;
    }

    /// Records where a waiting goroutine is blocked: its stack and the
    /// channels it waits on (`None`: unknown). Ignored unless it is still
    /// the same wait: waiting, and parked since `parked_since_ns`.
    pub fn set_blocked_at(
        &mut self,
        goid: u64,
        parked_since_ns: Option<u64>,
        pcs: Arc<[u64]>,
        channels: Option<Arc<[u64]>>,
    ) {
        let Some(g) = self.goroutines.get(&goid) else {
            return;
        };
        if g.state != GoroutineState::Waiting || g.parked_since_ns != parked_since_ns {
            return;
        }
        let pcs = self.interned.intern(pcs);
        let channels = channels.map(|c| self.interned.intern(c));
        if let Some(g) = self.goroutines.get_mut(&goid) {
            g.blocked_stack = Some(pcs);
            g.wait_channels = channels;
        }
    }

    /// Applies one event. This is the only place a goroutine's state changes.
    pub fn apply(&mut self, ev: &Event) {
        if matches!(ev.body, EventBody::Timer(_) | EventBody::Context(_)) {
            // Timers and contexts are the TimerTable's (model/timers.rs).
            return;
        }
        self.last_ts_ns = self.last_ts_ns.max(ev.ts_ns);
        if !self.timelines.is_empty() {
            self.timelines.record(ev);
        }
        if ev.body.goid() == 0 {
            // goid 0 is g0 (a system goroutine); the probes never report it
            // for a real goroutine, so this is a torn read.
            self.totals.malformed_events += 1;
            return;
        }
        match ev.body {
            EventBody::Spawn(spawn) => {
                // Only with --creation-stacks is anything ever pending.
                let creation_stack = if self.pending_creator_stack.is_empty() {
                    None
                } else {
                    self.pending_creator_stack.remove(&ev.tid)
                };
                self.spawn(ev.ts_ns, &spawn, creation_stack);
            }
            EventBody::CreatorStack { stack_id, .. } => match stack_id {
                // newproc runs newproc1 on the same thread before returning:
                // the next spawn on this thread is the child.
                Some(id) => {
                    self.pending_creator_stack.insert(ev.tid, id);
                }
                None => {
                    self.pending_creator_stack.remove(&ev.tid);
                }
            },
            EventBody::Park {
                goid,
                reason,
                lock,
                g_addr,
            } => {
                self.totals.parks += 1;
                let Some(g) = self.get_or_pre_attach(goid, g_addr, ev.ts_ns) else {
                    return;
                };
                if g.state == GoroutineState::Waiting
                    && g.wait_reason == Some(reason)
                    && g.wait_object == Some(lock)
                {
                    // A split-stack entry probe fired again on the morestack
                    // path: same park, keep the first timestamp.
                    self.totals.parks -= 1;
                    self.totals.duplicate_events += 1;
                    return;
                }
                g.state = GoroutineState::Waiting;
                g.wait_reason = Some(reason);
                g.wait_object = Some(lock);
                g.parked_since_ns = Some(ev.ts_ns);
                g.blocked_stack = None;
                g.wait_channels = None;
            }
            EventBody::Ready {
                goid,
                waker,
                g_addr,
            } => {
                self.totals.wakes += 1;
                let Some(g) = self.get_or_pre_attach(goid, g_addr, ev.ts_ns) else {
                    return;
                };
                g.state = GoroutineState::Runnable;
                g.wait_reason = None;
                g.wait_object = None;
                g.parked_since_ns = None;
                g.blocked_stack = None;
                g.wait_channels = None;
                g.wake_count += 1;
                g.last_waker = waker;
                if let Some(w) = waker {
                    self.mark_running(w);
                }
            }
            EventBody::Exit { goid, .. } => self.exit(goid),
            EventBody::Timer(_) | EventBody::Context(_) => {}
        }
    }

    fn spawn(&mut self, ts_ns: u64, spawn: &Spawn, creation_stack: Option<u32>) {
        let goid = spawn.goid;
        // One lookup for the common case (a new goid); a known one is either
        // a repeated event or an entry made before the spawn was applied.
        let previous = self.goroutines.remove(&goid);
        if let Some(existing) = previous {
            if existing.origin == Origin::Traced {
                self.goroutines.insert(goid, existing);
                self.totals.duplicate_events += 1;
                return;
            }
            self.forget_early_entry(&existing);
            return self.insert_spawned(ts_ns, spawn, creation_stack, Some(existing));
        }
        self.insert_spawned(ts_ns, spawn, creation_stack, None);
    }

    /// Undoes the counts of an entry made for a goroutine before its spawn
    /// event was applied (a snapshot entry is already counted live at its site).
    fn forget_early_entry(&mut self, early: &Goroutine) {
        if early.origin == Origin::Traced {
            return; // a duplicate, handled by the caller
        }
        // Entries that existed at attach count at their site's `at_attach`
        // (a pre-attach one once a read gave it a site: `complete_identity`).
        let at_attach = matches!(early.origin, Origin::Snapshot | Origin::PreAttach);
        if let Some(s) = early.gopc.and_then(|pc| self.sites.get_mut(&pc)) {
            if at_attach {
                s.at_attach = s.at_attach.saturating_sub(1);
            }
            s.live = s.live.saturating_sub(1);
        }
        match early.origin {
            Origin::Snapshot => self.totals.snapshot_seeded -= 1,
            Origin::Read => self.totals.reconciled_added -= 1,
            Origin::PreAttach => self.totals.pre_attach_seen -= 1,
            Origin::Traced => {}
        }
    }

    fn insert_spawned(
        &mut self,
        ts_ns: u64,
        spawn: &Spawn,
        creation_stack: Option<u32>,
        previous: Option<Goroutine>,
    ) {
        let &Spawn {
            goid,
            parent_goid,
            gopc,
            start_pc,
            g_addr,
            status,
            wait_reason,
        } = spawn;
        self.totals.spawned += 1;
        self.max_spawned_goid = self.max_spawned_goid.max(Some(goid));
        if previous.is_none() && self.full() {
            return;
        }
        let site = self.sites.entry(gopc).or_default();
        site.spawned += 1;
        site.live += 1;
        let waiting = GoStatus::from_raw(status) == GoStatus::Waiting;
        // A goroutine can be seen before its spawn event when events were
        // reordered across CPUs, or when the snapshot read it after it was
        // created and before its spawn event was applied: keep the newer
        // state, fill in its creation.
        let mut g = Goroutine {
            goid,
            parent_goid: (parent_goid != 0).then_some(parent_goid),
            gopc: Some(gopc),
            start_pc: Some(start_pc),
            g_addr,
            state: if waiting {
                GoroutineState::Waiting
            } else {
                GoroutineState::Runnable
            },
            wait_reason: waiting.then_some(wait_reason),
            wait_object: None,
            created_at_ns: Some(ts_ns),
            first_seen_ns: ts_ns,
            parked_since_ns: waiting.then_some(ts_ns),
            wake_count: 0,
            last_waker: None,
            origin: Origin::Traced,
            blocked_stack: None,
            wait_channels: None,
            tracking_seq: None,
            creation_stack,
        };
        if let Some(prev) = previous {
            g.blocked_stack = prev.blocked_stack;
            g.wait_channels = prev.wait_channels;
            g.tracking_seq = prev.tracking_seq;
            g.state = prev.state;
            g.wait_reason = prev.wait_reason;
            g.wait_object = prev.wait_object;
            // The read found it waiting without saying since when (the
            // runtime rarely records it): it parked after this spawn and
            // before that read, so the read's time is the closest bound,
            // as for any wait first seen by a read.
            g.parked_since_ns = match (prev.state, prev.parked_since_ns) {
                (GoroutineState::Waiting, None) => Some(prev.first_seen_ns),
                (_, since) => since,
            };
            g.wake_count = prev.wake_count;
            g.last_waker = prev.last_waker;
        }
        self.goroutines.insert(goid, g);
        if parent_goid != 0 {
            self.mark_running(parent_goid);
        }
    }

    fn exit(&mut self, goid: u64) {
        match self.goroutines.remove(&goid) {
            Some(g) => {
                self.totals.exited += 1;
                if matches!(g.origin, Origin::Snapshot | Origin::PreAttach) {
                    self.totals.pre_attach_exited += 1;
                }
                if let Some(site) = g.gopc.and_then(|pc| self.sites.get_mut(&pc)) {
                    site.exited += 1;
                    site.live = site.live.saturating_sub(1);
                }
            }
            None if self.recent_exits.contains(&goid) => {
                self.totals.duplicate_events += 1;
                return;
            }
            None => {
                // Created before attach and never seen since: still an exit.
                self.totals.exited += 1;
                self.totals.pre_attach_exited += 1;
            }
        }
        self.remember_exit(goid);
    }

    fn remember_exit(&mut self, goid: u64) {
        if self.recent_exits.insert(goid) {
            self.recent_exit_order.push_back(goid);
            if self.recent_exit_order.len() > RECENT_EXITS {
                if let Some(old) = self.recent_exit_order.pop_front() {
                    self.recent_exits.remove(&old);
                }
            }
        }
    }

    fn mark_running(&mut self, goid: u64) {
        if let Some(g) = self.goroutines.get_mut(&goid) {
            g.state = GoroutineState::Running;
            g.wait_reason = None;
            g.wait_object = None;
            g.parked_since_ns = None;
            g.blocked_stack = None;
            g.wait_channels = None;
        }
    }

    /// The goroutine, or a new pre-attach entry for it (`None` at the cap).
    fn get_or_pre_attach(&mut self, goid: u64, g_addr: u64, ts_ns: u64) -> Option<&mut Goroutine> {
        if !self.goroutines.contains_key(&goid) && self.full() {
            return None;
        }
        let totals = &mut self.totals;
        Some(self.goroutines.entry(goid).or_insert_with(|| {
            totals.pre_attach_seen += 1;
            Goroutine {
                goid,
                parent_goid: None,
                gopc: None,
                start_pc: None,
                g_addr,
                state: GoroutineState::Running,
                wait_reason: None,
                wait_object: None,
                created_at_ns: None,
                first_seen_ns: ts_ns,
                parked_since_ns: None,
                wake_count: 0,
                last_waker: None,
                origin: Origin::PreAttach,
                blocked_stack: None,
                wait_channels: None,
                tracking_seq: None,
                creation_stack: None,
            }
        }))
    }
}

/// Gives a goroutine first seen through an event (its spawn came before
/// attach) the identity a read of its `g` found: it then counts at its
/// creation site like the goroutines the snapshot seeded.
fn complete_identity(
    g: &mut Goroutine,
    sg: &SnapshotGoroutine,
    sites: &mut HashMap<u64, SiteStats>,
) {
    g.gopc = sg.gopc;
    g.parent_goid = sg.parent_goid;
    g.start_pc = sg.start_pc;
    if let Some(pc) = sg.gopc {
        let site = sites.entry(pc).or_default();
        site.at_attach += 1;
        site.live += 1;
    }
}

/// Sets a goroutine's state from a read of its `g` at `at_ns` (see
/// [`GoroutineTable::reconcile`]).
fn observe(g: &mut Goroutine, sg: &SnapshotGoroutine, at_ns: u64) {
    let (state, wait_reason) = match GoStatus::from_raw(sg.status) {
        GoStatus::Waiting | GoStatus::Leaked => (GoroutineState::Waiting, Some(sg.wait_reason)),
        GoStatus::Running => (GoroutineState::Running, None),
        GoStatus::Syscall => (GoroutineState::Syscall, None),
        GoStatus::Runnable | GoStatus::Preempted | GoStatus::CopyStack => {
            (GoroutineState::Runnable, None)
        }
        GoStatus::Idle | GoStatus::Dead | GoStatus::Other(_) => return,
    };
    let same_wait = g.state == GoroutineState::Waiting
        && state == GoroutineState::Waiting
        && g.wait_reason == wait_reason
        && (sg.tracking_seq.is_none()
            || g.tracking_seq.is_none()
            || g.tracking_seq == sg.tracking_seq);
    if !same_wait {
        if g.state == GoroutineState::Waiting {
            g.wake_count += 1;
        }
        g.state = state;
        g.wait_reason = wait_reason;
        g.wait_object = None;
        g.parked_since_ns = (state == GoroutineState::Waiting).then_some(at_ns);
        g.blocked_stack = None;
        g.wait_channels = None;
    }
    g.tracking_seq = sg.tracking_seq.or(g.tracking_seq);
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 0x00c0_0000_1000;

    fn ev(ts_ns: u64, body: EventBody) -> Event {
        Event {
            ts_ns,
            tid: 1,
            body,
        }
    }
    fn spawn(ts: u64, goid: u64, parent: u64, gopc: u64) -> Event {
        ev(
            ts,
            EventBody::Spawn(Spawn {
                goid,
                parent_goid: parent,
                gopc,
                start_pc: 0x5000,
                g_addr: G,
                status: 1,
                wait_reason: 0,
            }),
        )
    }
    fn park(ts: u64, goid: u64, reason: u8) -> Event {
        ev(
            ts,
            EventBody::Park {
                goid,
                reason,
                lock: 0xc0000a0000,
                g_addr: G,
            },
        )
    }
    fn ready(ts: u64, goid: u64, waker: Option<u64>) -> Event {
        ev(
            ts,
            EventBody::Ready {
                goid,
                waker,
                g_addr: G,
            },
        )
    }
    fn exit(ts: u64, goid: u64) -> Event {
        ev(ts, EventBody::Exit { goid, g_addr: G })
    }

    fn table(events: &[Event]) -> GoroutineTable {
        let mut t = GoroutineTable::new();
        for e in events {
            t.apply(e);
        }
        t
    }

    #[test]
    fn spawn_creates_a_runnable_traced_goroutine_and_marks_the_parent_running() {
        let t = table(&[park(5, 1, 7), spawn(10, 2, 1, 0x4000)]);
        let g = t.get(2).unwrap();
        assert_eq!(g.state, GoroutineState::Runnable);
        assert_eq!(g.origin, Origin::Traced);
        assert_eq!(g.parent_goid, Some(1));
        assert_eq!(g.gopc, Some(0x4000));
        assert_eq!(g.created_at_ns, Some(10));
        assert_eq!(t.get(1).unwrap().state, GoroutineState::Running);
        assert_eq!(t.totals().spawned, 1);
        let sites: Vec<_> = t.sites().collect();
        assert_eq!(
            sites,
            vec![(
                0x4000,
                &SiteStats {
                    spawned: 1,
                    at_attach: 0,
                    exited: 0,
                    live: 1
                }
            )]
        );
    }

    #[test]
    fn park_then_ready_then_exit_is_the_full_lifecycle() {
        let mut t = table(&[spawn(10, 2, 1, 0x4000), park(20, 2, 7)]);
        let g = t.get(2).unwrap();
        assert_eq!(
            (g.state, g.wait_reason, g.parked_since_ns),
            (GoroutineState::Waiting, Some(7), Some(20))
        );
        assert_eq!(g.wait_object, Some(0xc0000a0000));

        t.apply(&ready(30, 2, Some(1)));
        let g = t.get(2).unwrap();
        assert_eq!(
            (g.state, g.wait_reason, g.parked_since_ns),
            (GoroutineState::Runnable, None, None)
        );
        assert_eq!((g.wake_count, g.last_waker), (1, Some(1)));

        t.apply(&exit(40, 2));
        assert!(t.get(2).is_none());
        let totals = t.totals();
        assert_eq!(
            (
                totals.live,
                totals.spawned,
                totals.exited,
                totals.parks,
                totals.wakes
            ),
            (0, 1, 1, 1, 1)
        );
        assert_eq!(
            t.sites().next().unwrap().1,
            &SiteStats {
                spawned: 1,
                at_attach: 0,
                exited: 1,
                live: 0
            }
        );
    }

    #[test]
    fn a_waker_is_marked_running() {
        let t = table(&[
            spawn(1, 2, 1, 0x4000),
            spawn(2, 3, 1, 0x4000),
            park(3, 2, 7),
            park(4, 3, 7),
            ready(5, 3, None),
            ready(6, 2, Some(3)),
        ]);
        assert_eq!(t.get(3).unwrap().state, GoroutineState::Running);
        assert_eq!(t.get(2).unwrap().state, GoroutineState::Runnable);
    }

    #[test]
    fn goroutines_created_before_attach_are_kept_not_dropped() {
        let t = table(&[park(10, 7, 3), ready(20, 8, Some(7)), exit(30, 9)]);
        let parked = t.get(7).unwrap();
        assert_eq!(parked.origin, Origin::PreAttach);
        assert_eq!(
            (parked.gopc, parked.created_at_ns, parked.first_seen_ns),
            (None, None, 10)
        );
        assert_eq!(
            parked.state,
            GoroutineState::Running,
            "it woke goroutine 8 after parking"
        );
        let woken = t.get(8).unwrap();
        assert_eq!(
            (woken.origin, woken.state, woken.wake_count),
            (Origin::PreAttach, GoroutineState::Runnable, 1)
        );
        let totals = t.totals();
        assert_eq!(totals.live, 2);
        assert_eq!(totals.pre_attach_seen, 2);
        assert_eq!(
            (totals.exited, totals.pre_attach_exited),
            (1, 1),
            "exit of an unseen goroutine is counted"
        );
    }

    #[test]
    fn the_snapshot_gives_a_goroutine_seen_parking_first_its_creation_site() {
        // With park probes on, a goroutine created before attach can park
        // before the snapshot is applied: the snapshot still knows its site.
        let mut t = table(&[park(10, 7, 3)]);
        t.seed([seeded(7, 4, 3, 0x4000)]);
        let g = t.get(7).unwrap();
        assert_eq!(
            (g.origin, g.gopc, g.parent_goid, g.state),
            (
                Origin::PreAttach,
                Some(0x4000),
                Some(1),
                GoroutineState::Waiting
            )
        );
        let site = *t.sites().find(|(pc, _)| *pc == 0x4000).unwrap().1;
        assert_eq!((site.at_attach, site.live), (1, 1));
        // A later spawn event for it (reordered across CPUs) counts it once.
        t.apply(&spawn(20, 7, 1, 0x4000));
        let site = *t.sites().find(|(pc, _)| *pc == 0x4000).unwrap().1;
        assert_eq!((site.at_attach, site.spawned, site.live), (0, 1, 1));
    }

    #[test]
    fn exit_of_a_pre_attach_goroutine_seen_earlier_counts_once() {
        let t = table(&[park(10, 7, 3), exit(20, 7)]);
        let totals = t.totals();
        assert_eq!(
            (
                totals.live,
                totals.exited,
                totals.pre_attach_exited,
                totals.spawned
            ),
            (0, 1, 1, 0)
        );
        assert_eq!(t.sites().count(), 0);
    }

    #[test]
    fn repeated_entry_events_are_idempotent() {
        let t = table(&[
            spawn(1, 2, 1, 0x4000),
            spawn(1, 2, 1, 0x4000),
            park(2, 2, 7),
            park(3, 2, 7),
            exit(4, 5),
            exit(4, 5),
        ]);
        let g = t.get(2).unwrap();
        assert_eq!(
            g.parked_since_ns,
            Some(2),
            "second park of the same wait keeps the first timestamp"
        );
        let totals = t.totals();
        assert_eq!((totals.spawned, totals.parks, totals.exited), (1, 1, 1));
        assert_eq!(totals.duplicate_events, 3);
    }

    #[test]
    fn spawned_parked_goroutines_start_waiting() {
        let t = table(&[ev(
            1,
            EventBody::Spawn(Spawn {
                goid: 4,
                parent_goid: 1,
                gopc: 0x10,
                start_pc: 0x20,
                g_addr: G,
                status: 4,
                wait_reason: 9,
            }),
        )]);
        let g = t.get(4).unwrap();
        assert_eq!(
            (g.state, g.wait_reason, g.parked_since_ns),
            (GoroutineState::Waiting, Some(9), Some(1))
        );
    }

    #[test]
    fn spawn_after_an_out_of_order_park_merges() {
        let t = table(&[park(11, 2, 7), spawn(10, 2, 1, 0x4000)]);
        let g = t.get(2).unwrap();
        assert_eq!(
            (g.origin, g.state, g.wait_reason),
            (Origin::Traced, GoroutineState::Waiting, Some(7))
        );
        assert_eq!(t.totals().pre_attach_seen, 0);
        assert_eq!(t.totals().live, 1);
    }

    #[test]
    fn goid_zero_is_counted_as_malformed() {
        let t = table(&[park(1, 0, 3)]);
        assert_eq!(t.totals().malformed_events, 1);
        assert_eq!(t.totals().live, 0);
    }

    #[test]
    fn lost_events_are_cumulative_from_the_probes() {
        let mut t = GoroutineTable::new();
        t.set_lost_events(5);
        t.set_lost_events(3);
        assert_eq!(t.totals().lost_events, 5);
    }

    #[test]
    fn the_highest_spawned_goid_survives_reordered_events() {
        let mut t = GoroutineTable::new();
        assert_eq!(t.max_spawned_goid(), None);
        t.seed([seeded(40, 4, 19, 0xa)]);
        assert_eq!(t.max_spawned_goid(), None, "a read is not a spawn");
        for e in [spawn(1, 7, 1, 0xa), spawn(2, 5, 1, 0xa), exit(3, 7)] {
            t.apply(&e);
        }
        assert_eq!(t.max_spawned_goid(), Some(7));
    }

    #[test]
    fn per_site_counts_follow_spawns_and_exits() {
        let t = table(&[
            spawn(1, 2, 1, 0xa),
            spawn(2, 3, 1, 0xa),
            spawn(3, 4, 1, 0xb),
            exit(4, 2),
            exit(5, 4),
        ]);
        let mut sites: Vec<_> = t.sites().map(|(pc, s)| (pc, *s)).collect();
        sites.sort_by_key(|(pc, _)| *pc);
        assert_eq!(
            sites,
            vec![
                (
                    0xa,
                    SiteStats {
                        spawned: 2,
                        at_attach: 0,
                        exited: 1,
                        live: 1
                    }
                ),
                (
                    0xb,
                    SiteStats {
                        spawned: 1,
                        at_attach: 0,
                        exited: 1,
                        live: 0
                    }
                )
            ]
        );
    }

    fn seeded(goid: u64, status: u32, reason: u8, gopc: u64) -> SnapshotGoroutine {
        SnapshotGoroutine {
            goid,
            parent_goid: Some(1),
            gopc: Some(gopc),
            start_pc: Some(0x5000),
            g_addr: G,
            status,
            wait_reason: reason,
            waiting_since_ns: None,
            tracking_seq: None,
            seen_at_ns: 50,
        }
    }

    /// A read of goroutine `goid` at `at`: `status`/`reason`, `g.trackingSeq`.
    fn read(goid: u64, status: u32, reason: u8, seq: u8, at: u64) -> SnapshotGoroutine {
        SnapshotGoroutine {
            tracking_seq: Some(seq),
            seen_at_ns: at,
            ..seeded(goid, status, reason, 0xa)
        }
    }

    #[test]
    fn reads_set_states_when_the_scheduling_probes_are_off() {
        let mut t = GoroutineTable::new();
        t.seed([read(3, 4, 19, 7, 50), read(4, 2, 0, 1, 50)]);
        let parked_at_attach = t.get(3).unwrap().parked_since_ns;
        // Same wait, same trackingSeq: one continuous wait.
        t.reconcile(
            vec![read(3, 4, 19, 7, 100), read(4, 2, 0, 1, 100)],
            100,
            true,
        );
        let g = t.get(3).unwrap();
        assert_eq!(
            (g.state, g.parked_since_ns, g.wake_count),
            (GoroutineState::Waiting, parked_at_attach, 0)
        );
        // Same wait reason but trackingSeq moved: it woke and parked again.
        t.set_blocked_at(3, parked_at_attach, Arc::from(&[1u64][..]), None);
        t.reconcile(
            vec![read(3, 4, 19, 9, 200), read(4, 4, 14, 2, 200)],
            200,
            true,
        );
        let g = t.get(3).unwrap();
        assert_eq!((g.parked_since_ns, g.wake_count), (Some(200), 1));
        assert!(
            g.blocked_stack.is_none(),
            "a new wait needs its stack read again"
        );
        let g = t.get(4).unwrap();
        assert_eq!(
            (g.state, g.wait_reason, g.parked_since_ns),
            (GoroutineState::Waiting, Some(14), Some(200))
        );
        // Running again, then gone.
        t.reconcile(vec![read(4, 1, 0, 3, 300)], 300, true);
        assert!(t.get(3).is_none());
        let g = t.get(4).unwrap();
        assert_eq!(
            (g.state, g.parked_since_ns, g.wake_count),
            (GoroutineState::Runnable, None, 1)
        );
        assert_eq!(t.totals().reconciled_removed, 1);
    }

    #[test]
    fn without_states_reads_leave_the_state_to_the_events() {
        let mut t = table(&[spawn(10, 5, 1, 0xa), park(20, 5, 14)]);
        t.reconcile(vec![read(5, 1, 0, 3, 100)], 100, false);
        let g = t.get(5).unwrap();
        assert_eq!(
            (g.state, g.parked_since_ns),
            (GoroutineState::Waiting, Some(20))
        );
    }

    #[test]
    fn the_snapshot_seeds_every_live_goroutine_with_its_site() {
        let mut t = GoroutineTable::new();
        t.seed([
            seeded(5, 4, 19, 0xa),
            seeded(6, 0x1004, 18, 0xa), // _Gscan|_Gwaiting
            seeded(7, 1, 0, 0xb),
            seeded(8, 3, 0, 0xb),
            seeded(9, 6, 0, 0xb), // dead: a free g, skipped
            seeded(10, 2, 0, 0xb),
        ]);
        let g = t.get(5).unwrap();
        assert_eq!(
            (g.origin, g.state, g.wait_reason),
            (Origin::Snapshot, GoroutineState::Waiting, Some(19))
        );
        assert_eq!(
            (g.parent_goid, g.gopc, g.created_at_ns, g.parked_since_ns),
            (Some(1), Some(0xa), None, None)
        );
        assert_eq!(t.get(6).unwrap().wait_reason, Some(18));
        assert_eq!(t.get(7).unwrap().state, GoroutineState::Runnable);
        assert_eq!(t.get(8).unwrap().state, GoroutineState::Syscall);
        assert_eq!(t.get(10).unwrap().state, GoroutineState::Running);
        assert!(t.get(9).is_none());
        let totals = t.totals();
        assert_eq!(
            (totals.live, totals.snapshot_seeded, totals.spawned),
            (5, 5, 0)
        );
        let mut sites: Vec<_> = t.sites().map(|(pc, s)| (pc, *s)).collect();
        sites.sort_by_key(|(pc, _)| *pc);
        assert_eq!(
            sites[0].1,
            SiteStats {
                spawned: 0,
                at_attach: 2,
                exited: 0,
                live: 2
            }
        );
        assert_eq!(
            sites[1].1,
            SiteStats {
                spawned: 0,
                at_attach: 3,
                exited: 0,
                live: 3
            }
        );
    }

    #[test]
    fn seeded_goroutines_follow_live_events() {
        let mut t = GoroutineTable::new();
        t.seed([seeded(5, 4, 19, 0xa), seeded(6, 4, 19, 0xa)]);
        t.apply(&ready(60, 5, Some(6)));
        assert_eq!(t.get(5).unwrap().state, GoroutineState::Runnable);
        assert_eq!(t.get(6).unwrap().state, GoroutineState::Running);
        t.apply(&exit(70, 5));
        let totals = t.totals();
        assert_eq!(
            (
                totals.live,
                totals.exited,
                totals.pre_attach_exited,
                totals.pre_attach_seen
            ),
            (1, 1, 1, 0)
        );
        assert_eq!(
            t.sites().next().unwrap().1,
            &SiteStats {
                spawned: 0,
                at_attach: 2,
                exited: 1,
                live: 1
            }
        );
    }

    #[test]
    fn a_spawn_event_applied_after_the_snapshot_upgrades_the_entry() {
        let mut t = GoroutineTable::new();
        t.seed([seeded(5, 4, 19, 0xa)]);
        t.apply(&spawn(40, 5, 1, 0xa));
        let g = t.get(5).unwrap();
        assert_eq!((g.origin, g.created_at_ns), (Origin::Traced, Some(40)));
        assert_eq!(
            g.state,
            GoroutineState::Waiting,
            "the snapshot's state is newer than the spawn"
        );
        assert_eq!(
            g.parked_since_ns,
            Some(50),
            "it parked between its spawn (40) and the read that saw it waiting (50)"
        );
        let totals = t.totals();
        assert_eq!(
            (totals.live, totals.spawned, totals.snapshot_seeded),
            (1, 1, 0)
        );
        assert_eq!(
            t.sites().next().unwrap().1,
            &SiteStats {
                spawned: 1,
                at_attach: 0,
                exited: 0,
                live: 1
            }
        );
    }

    #[test]
    fn blocked_stacks_and_channels_belong_to_one_wait() {
        let mut t = table(&[spawn(1, 2, 1, 0xa), park(2, 2, 7)]);
        let pcs: Arc<[u64]> = Arc::from(vec![0x10, 0x20]);
        let channels: Arc<[u64]> = Arc::from(vec![0xc000_1000, 0xc000_2000]);
        t.set_blocked_at(2, Some(99), pcs.clone(), Some(channels.clone()));
        let g = t.get(2).unwrap();
        assert!(
            g.blocked_stack.is_none() && g.wait_channels.is_none(),
            "stale: another wait"
        );
        t.set_blocked_at(2, Some(2), pcs.clone(), Some(channels.clone()));
        let g = t.get(2).unwrap();
        assert_eq!(g.blocked_stack.as_deref(), Some(&[0x10, 0x20][..]));
        assert_eq!(
            g.wait_channels.as_deref(),
            Some(&[0xc000_1000, 0xc000_2000][..])
        );
        // Unknown channels (an unreadable sudog list) replace known ones.
        t.set_blocked_at(2, Some(2), pcs.clone(), None);
        assert!(t.get(2).unwrap().wait_channels.is_none());
        t.set_blocked_at(2, Some(2), pcs.clone(), Some(channels.clone()));
        t.apply(&ready(3, 2, None));
        let g = t.get(2).unwrap();
        assert!(g.blocked_stack.is_none() && g.wait_channels.is_none());
        t.set_blocked_at(2, None, pcs.clone(), Some(channels.clone()));
        let g = t.get(2).unwrap();
        assert!(
            g.blocked_stack.is_none() && g.wait_channels.is_none(),
            "not waiting"
        );
        // A new park starts without the previous wait's channels.
        t.apply(&park(4, 2, 7));
        t.set_blocked_at(2, Some(4), pcs.clone(), Some(channels));
        assert!(t.get(2).unwrap().wait_channels.is_some());
        t.apply(&park(5, 2, 9));
        let g = t.get(2).unwrap();
        assert!(g.blocked_stack.is_none() && g.wait_channels.is_none());
    }

    #[test]
    fn beyond_the_cap_goroutines_are_counted_not_kept() {
        let mut t = GoroutineTable::with_cap(2);
        t.apply(&spawn(1, 10, 1, 0xa));
        t.apply(&spawn(2, 11, 1, 0xa));
        t.apply(&spawn(3, 12, 1, 0xa));
        t.apply(&park(4, 13, 7));
        t.seed([seeded(14, 4, 19, 0xb)]);
        let totals = t.totals();
        assert_eq!((totals.live, totals.spawned, totals.untracked), (2, 3, 1));
        assert!(t.get(12).is_none() && t.get(13).is_none() && t.get(14).is_none());
        // Room again after an exit.
        t.apply(&exit(5, 10));
        t.apply(&spawn(6, 15, 1, 0xa));
        assert!(t.get(15).is_some());
    }

    #[test]
    fn identical_stacks_and_channel_sets_are_stored_once() {
        let mut t = table(&[park(1, 2, 7), park(2, 3, 7)]);
        t.set_blocked_at(
            2,
            Some(1),
            Arc::from(&[1u64, 2][..]),
            Some(Arc::from(&[9u64][..])),
        );
        t.set_blocked_at(
            3,
            Some(2),
            Arc::from(&[1u64, 2][..]),
            Some(Arc::from(&[9u64][..])),
        );
        let (a, b) = (t.get(2).unwrap(), t.get(3).unwrap());
        assert!(Arc::ptr_eq(
            a.blocked_stack.as_ref().unwrap(),
            b.blocked_stack.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            a.wait_channels.as_ref().unwrap(),
            b.wait_channels.as_ref().unwrap()
        ));
    }

    #[test]
    fn a_periodic_reread_adds_missed_goroutines_and_removes_vanished_ones() {
        let mut t = table(&[
            spawn(10, 2, 1, 0xa),
            spawn(20, 3, 1, 0xa),
            spawn(60, 4, 1, 0xa),
        ]);
        // The re-read started at 50: goroutine 2 is gone (its exit event was
        // lost), 3 is still there, 9 was never seen, 4 was created after
        // the read started and is kept although absent.
        t.reconcile(
            vec![seeded(3, 4, 19, 0xa), seeded(9, 4, 19, 0xb)],
            50,
            false,
        );
        assert!(t.get(2).is_none());
        assert_eq!(t.get(3).unwrap().origin, Origin::Traced);
        assert_eq!(t.get(9).unwrap().origin, Origin::Read);
        assert!(t.get(4).is_some());
        let totals = t.totals();
        assert_eq!(
            (
                totals.reconciled_added,
                totals.reconciled_removed,
                totals.exited,
                totals.live
            ),
            (1, 1, 1, 3)
        );
        // A late exit event for the removed goroutine is a duplicate.
        t.apply(&exit(70, 2));
        assert_eq!(t.totals().exited, 1);
    }

    #[test]
    fn a_creator_stack_goes_to_the_next_spawn_on_its_thread() {
        let mut t = GoroutineTable::new();
        let on = |tid: u32, ts: u64, body: EventBody| Event {
            ts_ns: ts,
            tid,
            body,
        };
        t.apply(&on(
            7,
            1,
            EventBody::CreatorStack {
                goid: 1,
                stack_id: Some(42),
            },
        ));
        t.apply(&on(
            8,
            2,
            EventBody::CreatorStack {
                goid: 3,
                stack_id: None,
            },
        ));
        let child = |tid: u32, goid: u64| on(tid, 3, spawn(3, goid, 1, 0xa).body);
        t.apply(&child(8, 11));
        t.apply(&child(7, 10));
        t.apply(&child(7, 12));
        assert_eq!(t.get(10).unwrap().creation_stack, Some(42));
        assert_eq!(
            t.get(11).unwrap().creation_stack,
            None,
            "its stack could not be recorded"
        );
        assert_eq!(
            t.get(12).unwrap().creation_stack,
            None,
            "one stack per spawn"
        );
    }
}

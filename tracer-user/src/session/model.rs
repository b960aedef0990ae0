//! The one door into the goroutine and timer tables for a session's inputs:
//! events, reads of the goroutine list and of the timer heaps, blocked-at
//! stacks and counts. Live, each
//! input is also handed to the recorder, in the order the table gets it;
//! a replay feeds the recorded inputs through the same door, so replay and
//! live run the same model code on the same inputs.

use crate::{
    model::{
        decode_event, Event, EventBody, GoroutineTable, Reconciled, SnapshotGoroutine,
        SnapshotTimer, TimerTable,
    },
    record::{format::BlockedAt, Recorder},
};

pub struct Model {
    pub table: GoroutineTable,
    pub timers: TimerTable,
    pub recorder: Option<Recorder>,
    /// With `Some`, every decoded event is also kept here, for whoever
    /// follows them one by one (`tracer export --perfetto`) to take.
    pub tap: Option<Vec<Event>>,
}

impl Model {
    pub fn new(table: GoroutineTable, recorder: Option<Recorder>) -> Self {
        Model {
            table,
            timers: TimerTable::new(),
            recorder,
            tap: None,
        }
    }

    /// One ring-buffer record.
    pub fn event(&mut self, item: &[u8]) {
        if let Some(recorder) = &mut self.recorder {
            recorder.event(item);
        }
        match decode_event(item) {
            Ok(event) => {
                match &event.body {
                    EventBody::Timer(t) => self.timers.apply_timer(event.ts_ns, t),
                    EventBody::Context(c) => self.timers.apply_context(event.ts_ns, c),
                    _ => self.table.apply(&event),
                }
                if let Some(tap) = &mut self.tap {
                    tap.push(event);
                }
            }
            Err(err) => {
                log::debug!("dropping malformed event: {err}");
                self.table.record_malformed();
            }
        }
    }

    /// The attach-time read of the goroutine list.
    pub fn seed(&mut self, list: Vec<SnapshotGoroutine>, now_ns: u64) {
        if let Some(recorder) = &mut self.recorder {
            recorder.seed(&list, now_ns);
        }
        self.table.seed(list);
    }

    /// The attach-time read of the timer heaps.
    pub fn seed_timers(&mut self, timers: Vec<SnapshotTimer>, now_ns: u64) {
        if let Some(recorder) = &mut self.recorder {
            recorder.timer_seed(&timers, now_ns);
        }
        self.timers.seed(&timers, now_ns);
    }

    /// The timer and context probes were attached or detached (see
    /// [`TimerTable::set_traced`]).
    pub fn timers_traced(&mut self, traced: bool) {
        if let Some(recorder) = &mut self.recorder {
            recorder.timers_traced(traced);
        }
        self.timers.set_traced(traced);
    }

    /// A later read of the goroutine list (see [`GoroutineTable::reconcile`]).
    pub fn reconcile(
        &mut self,
        list: Vec<SnapshotGoroutine>,
        started_ns: u64,
        states: bool,
    ) -> Reconciled {
        if let Some(recorder) = &mut self.recorder {
            recorder.reconcile(&list, started_ns, states);
        }
        self.table.reconcile(list, started_ns, states)
    }

    pub fn blocked_at(&mut self, blocked: BlockedAt) {
        if let Some(recorder) = &mut self.recorder {
            recorder.blocked_at(&blocked);
        }
        let BlockedAt {
            goid,
            parked_since_ns,
            pcs,
            channels,
        } = blocked;
        self.table
            .set_blocked_at(goid, parked_since_ns, pcs, channels);
    }

    /// See [`GoroutineTable::count_untraced_spawns`].
    pub fn untraced_spawns(&mut self, spawned: u64, found: u64) {
        if let Some(recorder) = &mut self.recorder {
            recorder.untraced_spawns(spawned, found);
        }
        self.table.count_untraced_spawns(spawned, found);
    }

    /// The probes' cumulative count of events lost in the kernel.
    pub fn lost_events(&mut self, total: u64) {
        if let Some(recorder) = &mut self.recorder {
            recorder.lost_events(total);
        }
        self.table.set_lost_events(total);
    }
}

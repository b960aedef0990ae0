//! The event model: pure state machines over goroutine events
//! ([`GoroutineTable`]) and timer and context events ([`TimerTable`]).
//!
//! No I/O and no clock of its own: time comes from the events' kernel
//! timestamps, and callers pass "now" when they ask for ages. Live tracing,
//! (later) replay of a recording and the unit tests all feed the same
//! [`GoroutineTable`]; only the source of the events differs.
//!
//! Where a goroutine's state changes: [`GoroutineTable::apply`].

mod event;
mod goroutines;
mod timeline;
mod timers;

pub use event::{
    decode_event, ContextEvent, ContextOp, DecodeError, Event, EventBody, Frames, Spawn,
    TimerEvent, TimerOp,
};
pub use goroutines::{
    GoStatus, Goroutine, GoroutineState, GoroutineTable, Origin, Reconciled, SiteStats,
    SnapshotGoroutine, Totals,
};
pub use timeline::{TimelineEntry, MAX_WATCHED};
pub use timers::{
    ContextEntry, ContextSite, SnapshotTimer, TimerEntry, TimerSite, TimerSiteKey, TimerTable,
    TimerTotals,
};

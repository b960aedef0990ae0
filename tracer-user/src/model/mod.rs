//! The event model: a pure state machine over goroutine events.
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

pub use event::{decode_event, DecodeError, Event, EventBody, Spawn};
pub use goroutines::{
    GoStatus, Goroutine, GoroutineState, GoroutineTable, Origin, Reconciled, SiteStats,
    SnapshotGoroutine, Totals,
};
pub use timeline::{TimelineEntry, MAX_WATCHED};

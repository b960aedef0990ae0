//! Event timelines of a few watched goroutines (the examples the dashboard
//! shows in its details), bounded: keeping one for every goroutine would
//! cost memory per event.

use std::collections::{HashMap, VecDeque};

use super::event::{Event, EventBody};

/// At most this many goroutines are watched at once.
pub const MAX_WATCHED: usize = 64;
/// Entries kept per watched goroutine (the oldest are dropped).
pub const MAX_ENTRIES: usize = 32;

/// What happened to a watched goroutine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimelineEntry {
    /// Its spawn was traced: parent and creation pc.
    Created {
        parent: Option<u64>,
        gopc: u64,
    },
    /// It was already there (attach-time snapshot, or first seen acting).
    FirstSeen,
    Parked {
        reason: u8,
    },
    Woken {
        waker: Option<u64>,
    },
    /// It started another goroutine.
    Spawned {
        child: u64,
    },
    Exited,
}

#[derive(Debug, Default)]
pub struct Timelines {
    watched: HashMap<u64, VecDeque<(u64, TimelineEntry)>>,
}

impl Timelines {
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Watches exactly `goids` (at most [`MAX_WATCHED`] of them): timelines
    /// of goroutines still watched are kept, new ones start with `seed`.
    pub fn watch(&mut self, goids: &[u64], mut seed: impl FnMut(u64) -> Vec<(u64, TimelineEntry)>) {
        let goids = &goids[..goids.len().min(MAX_WATCHED)];
        self.watched.retain(|goid, _| goids.contains(goid));
        for &goid in goids {
            self.watched
                .entry(goid)
                .or_insert_with(|| seed(goid).into_iter().collect());
        }
    }

    pub fn get(&self, goid: u64) -> Option<&VecDeque<(u64, TimelineEntry)>> {
        self.watched.get(&goid)
    }

    /// Records `ev` for the watched goroutines it concerns.
    pub fn record(&mut self, ev: &Event) {
        let (goid, entry) = match ev.body {
            EventBody::Park { goid, reason, .. } => (goid, TimelineEntry::Parked { reason }),
            EventBody::Ready { goid, waker, .. } => (goid, TimelineEntry::Woken { waker }),
            EventBody::Exit { goid, .. } => (goid, TimelineEntry::Exited),
            EventBody::Spawn(spawn) => {
                self.push(
                    spawn.parent_goid,
                    ev.ts_ns,
                    TimelineEntry::Spawned { child: spawn.goid },
                );
                (
                    spawn.goid,
                    TimelineEntry::Created {
                        parent: (spawn.parent_goid != 0).then_some(spawn.parent_goid),
                        gopc: spawn.gopc,
                    },
                )
            }
            EventBody::CreatorStack { .. } | EventBody::Timer(_) | EventBody::Context(_) => return,
        };
        self.push(goid, ev.ts_ns, entry);
    }

    fn push(&mut self, goid: u64, ts_ns: u64, entry: TimelineEntry) {
        if let Some(entries) = self.watched.get_mut(&goid) {
            if entries.len() == MAX_ENTRIES {
                entries.pop_front();
            }
            entries.push_back((ts_ns, entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Spawn;

    fn ev(ts_ns: u64, body: EventBody) -> Event {
        Event {
            ts_ns,
            tid: 1,
            body,
        }
    }

    #[test]
    fn only_watched_goroutines_are_recorded_and_timelines_are_bounded() {
        let mut t = Timelines::default();
        t.watch(&[7], |_| vec![(5, TimelineEntry::FirstSeen)]);
        let spawn = |goid, parent| {
            EventBody::Spawn(Spawn {
                goid,
                parent_goid: parent,
                gopc: 0x10,
                start_pc: 0x20,
                g_addr: 0,
                status: 1,
                wait_reason: 0,
            })
        };
        t.record(&ev(10, spawn(8, 7)));
        t.record(&ev(11, spawn(9, 1)));
        t.record(&ev(
            12,
            EventBody::Park {
                goid: 7,
                reason: 3,
                lock: 0,
                g_addr: 0,
            },
        ));
        t.record(&ev(
            13,
            EventBody::Ready {
                goid: 7,
                waker: Some(8),
                g_addr: 0,
            },
        ));
        t.record(&ev(14, EventBody::Exit { goid: 9, g_addr: 0 }));
        let entries: Vec<_> = t.get(7).unwrap().iter().copied().collect();
        assert_eq!(
            entries,
            vec![
                (5, TimelineEntry::FirstSeen),
                (10, TimelineEntry::Spawned { child: 8 }),
                (12, TimelineEntry::Parked { reason: 3 }),
                (13, TimelineEntry::Woken { waker: Some(8) }),
            ]
        );
        assert!(t.get(9).is_none());
        for i in 0..100 {
            t.record(&ev(
                100 + i,
                EventBody::Park {
                    goid: 7,
                    reason: 3,
                    lock: 0,
                    g_addr: 0,
                },
            ));
        }
        assert_eq!(t.get(7).unwrap().len(), MAX_ENTRIES);
        assert_eq!(t.get(7).unwrap().back().unwrap().0, 199);

        // Re-watching keeps what is still watched and drops the rest.
        t.watch(&[7, 9], |_| vec![]);
        assert_eq!(t.get(7).unwrap().len(), MAX_ENTRIES);
        t.watch(&[9], |_| vec![]);
        assert!(t.get(7).is_none());
        let many: Vec<u64> = (0..1000).collect();
        t.watch(&many, |_| vec![]);
        assert_eq!(t.watched.len(), MAX_WATCHED);
    }
}

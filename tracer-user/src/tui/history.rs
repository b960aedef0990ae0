//! The Overview's own history of the live count, of the spawn and exit
//! rates (derived from successive [`Totals`]), and of the pending timers and
//! live contexts.

use std::collections::VecDeque;

use crate::model::Totals;
use crate::suspects::timers::TimerTotals;

/// How far back the Overview charts go.
pub const SPAN_NS: u64 = 10 * 60 * 1_000_000_000;
/// Frames closer than this to the last sample (extra frames the session
/// sends after a key) update the picture but not the history, so the rates
/// stay per tick.
const MIN_STEP_NS: u64 = 500_000_000;
/// A bound on the samples whatever the tick.
const MAX_SAMPLES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub ns: u64,
    pub live: u64,
    pub spawned: u64,
    pub exited: u64,
    /// Since the previous sample; 0 for the first.
    pub spawn_per_s: f64,
    pub exit_per_s: f64,
    /// Pending timers (Sleep excluded).
    pub timers: u64,
    /// Contexts created and not cancelled yet.
    pub contexts: u64,
}

#[derive(Clone, Debug, Default)]
pub struct LiveHistory {
    samples: VecDeque<Sample>,
}

impl LiveHistory {
    pub fn record(&mut self, now_ns: u64, totals: &Totals, timers: &TimerTotals) {
        let (spawn_per_s, exit_per_s) = match self.samples.back() {
            Some(last) if now_ns < last.ns.saturating_add(MIN_STEP_NS) => return,
            Some(last) => {
                let dt = (now_ns - last.ns) as f64 / 1e9;
                (
                    totals.spawned.saturating_sub(last.spawned) as f64 / dt,
                    totals.exited.saturating_sub(last.exited) as f64 / dt,
                )
            }
            None => (0.0, 0.0),
        };
        self.samples.push_back(Sample {
            ns: now_ns,
            live: totals.live,
            spawned: totals.spawned,
            exited: totals.exited,
            spawn_per_s,
            exit_per_s,
            timers: timers.pending,
            contexts: timers.contexts_live,
        });
        let keep_from = now_ns.saturating_sub(SPAN_NS);
        while self.samples.len() > MAX_SAMPLES
            || self.samples.front().is_some_and(|s| s.ns < keep_from)
        {
            self.samples.pop_front();
        }
    }

    /// Samples up to `until_ns` (the picture's time while paused), oldest
    /// first.
    pub fn until(&self, until_ns: u64) -> impl DoubleEndedIterator<Item = &Sample> + Clone {
        self.samples.iter().filter(move |s| s.ns <= until_ns)
    }

    /// The rates of the last sample up to `until_ns`.
    pub fn rates(&self, until_ns: u64) -> (f64, f64) {
        self.until(until_ns)
            .next_back()
            .map_or((0.0, 0.0), |s| (s.spawn_per_s, s.exit_per_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn totals(live: u64, spawned: u64, exited: u64) -> Totals {
        Totals {
            live,
            spawned,
            exited,
            ..Totals::default()
        }
    }

    fn timers(pending: u64, contexts_live: u64) -> TimerTotals {
        TimerTotals {
            pending,
            contexts_live,
            ..TimerTotals::default()
        }
    }

    #[test]
    fn rates_come_from_successive_totals_and_extra_frames_are_not_samples() {
        let mut h = LiveHistory::default();
        let none = TimerTotals::default();
        h.record(10 * S, &totals(100, 0, 0), &none);
        h.record(12 * S, &totals(120, 40, 20), &none);
        h.record(12 * S + S / 10, &totals(121, 41, 20), &none);
        assert_eq!(h.until(u64::MAX).count(), 2);
        assert_eq!(h.rates(u64::MAX), (20.0, 10.0));
        assert_eq!(h.rates(11 * S), (0.0, 0.0));
    }

    #[test]
    fn keeps_ten_minutes() {
        let mut h = LiveHistory::default();
        for t in 0..1000 {
            h.record(t * S, &totals(t, t, 0), &TimerTotals::default());
        }
        let first = h.until(u64::MAX).next().map(|s| s.ns);
        assert_eq!(first, Some(999 * S - SPAN_NS));
    }

    #[test]
    fn pending_timers_and_live_contexts_are_kept_per_sample() {
        let mut h = LiveHistory::default();
        h.record(10 * S, &totals(1, 0, 0), &timers(40, 7));
        h.record(11 * S, &totals(1, 0, 0), &timers(45, 9));
        let series: Vec<(u64, u64)> = h.until(u64::MAX).map(|s| (s.timers, s.contexts)).collect();
        assert_eq!(series, vec![(40, 7), (45, 9)]);
    }
}

//! The overhead budget (`--max-overhead`): every probe hit is a trap in the
//! target, so the cost of tracing is the probes' hit rate times the cost of
//! a trap. Each tick this compares that estimate with the target's own CPU
//! time, detaches the costliest probe group when the total is over budget,
//! and tries it again later (backing off when it is still too hot). Nothing
//! is silent: every change has a reason that the UI and the JSON show.
//!
//! Pure: the session passes the probe counters, the target's CPU time and
//! the clock; this returns the changes to make.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::probes::{ProbeCounters, ProbeGroup};

/// Target-side cost of one hit, in ns, as measured on the reference machine
/// (BENCHMARKS.md, "Target-side overhead"): ≈2.3 µs for an emulated uprobe
/// (park, ready, exit), ≈3.7 µs for a single-stepped `RET` (spawn), more
/// with a kernel stack walk.
pub fn cost_per_hit_ns(group: ProbeGroup) -> f64 {
    match group {
        // One spawn RET and one exit per goroutine.
        ProbeGroup::Lifecycle => 3_000.0,
        ProbeGroup::Scheduling => 2_300.0,
        ProbeGroup::CreationStacks => 4_000.0,
        // Measured 3.7 µs (Go 1.22) to 5.5 µs (Go 1.26, a RET probe on
        // time.newTimer) per hit with the 8-frame walk (BENCHMARKS.md, "Timer
        // and context probes").
        ProbeGroup::Timers => 4_500.0,
    }
}

/// Costs are compared with the target's CPU time, but at least a tenth of a
/// core: below that the target mostly waits, its requests' latency is
/// dominated by the waiting, and a few µs per trap stay under 1% of any
/// request that takes 300 µs or more. So a budget of 1% always allows about
/// 1 ms of traps per second (≈300 spawns and exits).
const MIN_CPU_NS_PER_S: f64 = 100_000_000.0;
/// First wait before a detached group is tried again; doubled each time it
/// has to be detached again, up to [`MAX_BACKOFF_NS`].
const FIRST_BACKOFF_NS: u64 = 30_000_000_000;
const MAX_BACKOFF_NS: u64 = 600_000_000_000;

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Detach { group: ProbeGroup, reason: String },
    Reattach { group: ProbeGroup, reason: String },
}

impl Change {
    pub fn group(&self) -> ProbeGroup {
        match self {
            Change::Detach { group, .. } | Change::Reattach { group, .. } => *group,
        }
    }

    /// True for a re-attach.
    pub fn attaches(&self) -> bool {
        matches!(self, Change::Reattach { .. })
    }
}

/// What the budget says now, for the UI and the JSON documents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// The cap, percent of the target's CPU time; `None`: no cap.
    pub max_overhead_pct: Option<f64>,
    /// Estimated cost of the attached probes over the last tick, percent.
    pub estimated_overhead_pct: f64,
    /// Probe groups detached by the budget, with why.
    pub detached: Vec<DetachedGroup>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetachedGroup {
    pub group: ProbeGroup,
    pub reason: String,
    /// When it is tried again (CLOCK_MONOTONIC ns).
    pub retry_at_ns: u64,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    now_ns: u64,
    counters: ProbeCounters,
    cpu_ns: u64,
    spawns: Option<u64>,
}

#[derive(Clone, Debug)]
struct Detached {
    reason: String,
    retry_at_ns: u64,
    backoff_ns: u64,
}

pub struct Budget {
    max_fraction: Option<f64>,
    last: Option<Sample>,
    estimated: f64,
    detached: HashMap<ProbeGroup, Detached>,
    /// Backoff to use the next time a group is detached.
    backoff: HashMap<ProbeGroup, u64>,
}

impl Budget {
    /// `max_pct`: the cap in percent of the target's CPU time, or none.
    pub fn new(max_pct: Option<f64>) -> Self {
        Budget {
            max_fraction: max_pct.map(|p| p / 100.0),
            last: None,
            estimated: 0.0,
            detached: HashMap::new(),
            backoff: HashMap::new(),
        }
    }

    pub fn status(&self) -> BudgetStatus {
        let mut detached: Vec<DetachedGroup> = self
            .detached
            .iter()
            .map(|(&group, d)| DetachedGroup {
                group,
                reason: d.reason.clone(),
                retry_at_ns: d.retry_at_ns,
            })
            .collect();
        detached.sort_by_key(|d| d.retry_at_ns);
        BudgetStatus {
            max_overhead_pct: self.max_fraction.map(|f| f * 100.0),
            estimated_overhead_pct: (self.estimated * 1e4).round() / 100.0,
            detached,
        }
    }

    /// One observation: cumulative probe counters, the target's cumulative
    /// CPU time, its cumulative spawn count when known (goid generator),
    /// and the groups attached now. Returns what to detach or re-attach.
    pub fn tick(
        &mut self,
        now_ns: u64,
        counters: ProbeCounters,
        cpu_ns: u64,
        spawns: Option<u64>,
        attached: &[ProbeGroup],
    ) -> Vec<Change> {
        let sample = Sample {
            now_ns,
            counters,
            cpu_ns,
            spawns,
        };
        let Some(last) = self.last.replace(sample) else {
            return Vec::new();
        };
        let dt_s = now_ns.saturating_sub(last.now_ns) as f64 / 1e9;
        if dt_s <= 0.0 {
            return Vec::new();
        }
        let cpu = (cpu_ns.saturating_sub(last.cpu_ns) as f64).max(MIN_CPU_NS_PER_S * dt_s);
        let mut costs: Vec<(ProbeGroup, f64, f64)> = attached
            .iter()
            .map(|&g| {
                let hits = g.hits(&counters).saturating_sub(g.hits(&last.counters)) as f64;
                (g, hits / dt_s, hits * cost_per_hit_ns(g) / cpu)
            })
            .collect();
        self.estimated = costs.iter().map(|c| c.2).sum();
        let Some(max) = self.max_fraction else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        // Costliest first, until the rest fits.
        costs.sort_by(|a, b| b.2.total_cmp(&a.2));
        let mut total = self.estimated;
        for (group, rate, fraction) in costs {
            if total <= max {
                break;
            }
            total -= fraction;
            let backoff = *self.backoff.get(&group).unwrap_or(&FIRST_BACKOFF_NS);
            self.backoff
                .insert(group, (backoff * 2).min(MAX_BACKOFF_NS));
            let reason = format!(
                "{} probes: {} hits/s ≈ {:.1}% of the target's CPU, over the {}% budget",
                group.describe(),
                thousands_f(rate),
                fraction * 100.0,
                max * 100.0
            );
            self.detached.insert(
                group,
                Detached {
                    reason: reason.clone(),
                    retry_at_ns: now_ns + backoff,
                    backoff_ns: backoff,
                },
            );
            changes.push(Change::Detach { group, reason });
        }
        self.estimated = total.max(0.0);

        let due: Vec<ProbeGroup> = self
            .detached
            .iter()
            .filter(|(g, d)| now_ns >= d.retry_at_ns && !attached.contains(g))
            .map(|(g, _)| *g)
            .collect();
        for group in due {
            // Spawn/exit can be estimated from the goid generator; the others
            // are tried for one tick and measured.
            let estimate = match (group, spawns, last.spawns) {
                (ProbeGroup::Lifecycle, Some(now), Some(before)) => {
                    Some(2.0 * now.saturating_sub(before) as f64 * cost_per_hit_ns(group) / cpu)
                }
                _ => None,
            };
            match estimate {
                Some(fraction) if fraction > max / 2.0 => {
                    if let Some(d) = self.detached.get_mut(&group) {
                        d.retry_at_ns = now_ns + d.backoff_ns;
                    }
                }
                _ => {
                    self.detached.remove(&group);
                    let reason = match estimate {
                        Some(fraction) => format!(
                            "{} probes: the target now spawns little (≈{:.2}% of its CPU)",
                            group.describe(),
                            fraction * 100.0
                        ),
                        None => format!("{} probes: trying again", group.describe()),
                    };
                    changes.push(Change::Reattach { group, reason });
                }
            }
        }
        changes
    }
}

/// `12,345` for a rate.
fn thousands_f(v: f64) -> String {
    crate::suspects::thousands(v.round().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn counters(lifecycle: u64, scheduling: u64) -> ProbeCounters {
        ProbeCounters {
            spawn_hits: lifecycle / 2,
            exit_hits: lifecycle - lifecycle / 2,
            park_hits: scheduling / 2,
            ready_hits: scheduling - scheduling / 2,
            ..ProbeCounters::default()
        }
    }

    const BOTH: &[ProbeGroup] = &[ProbeGroup::Lifecycle, ProbeGroup::Scheduling];

    #[test]
    fn a_quiet_target_keeps_every_probe() {
        let mut b = Budget::new(Some(1.0));
        assert!(b.tick(S, counters(0, 0), 0, None, BOTH).is_empty());
        // 100 spawns+exits and 200 parks+wakes a second on a target using
        // half a core: ≈0.15%.
        let changes = b.tick(2 * S, counters(100, 200), S / 2, None, BOTH);
        assert!(changes.is_empty(), "{changes:?}");
        let pct = b.status().estimated_overhead_pct;
        assert!((pct - 0.15).abs() < 0.01, "{pct}");
    }

    #[test]
    fn the_costliest_group_goes_first_and_only_as_much_as_needed() {
        let mut b = Budget::new(Some(1.0));
        b.tick(S, counters(0, 0), 0, None, BOTH);
        // One core busy: park/wake 20k/s ≈ 4.6%, spawn/exit 2k/s ≈ 0.6%.
        let changes = b.tick(2 * S, counters(2_000, 20_000), S, None, BOTH);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let Change::Detach { group, reason } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(*group, ProbeGroup::Scheduling);
        assert_eq!(
            reason,
            "park/wake probes: 20,000 hits/s ≈ 4.6% of the target's CPU, over the 1% budget"
        );
        let status = b.status();
        assert_eq!(status.detached.len(), 1);
        assert!((status.estimated_overhead_pct - 0.6).abs() < 0.01);
    }

    #[test]
    fn a_mostly_idle_target_is_judged_against_a_tenth_of_a_core() {
        let mut b = Budget::new(Some(1.0));
        b.tick(S, counters(0, 0), 0, None, BOTH);
        // 200 spawns+exits in a second on a target that used 5 ms of CPU:
        // 0.6 ms of traps, 0.6% of the floor (12% of its own CPU time).
        assert!(b
            .tick(2 * S, counters(200, 0), 5_000_000, None, BOTH)
            .is_empty());
        assert!((b.status().estimated_overhead_pct - 0.6).abs() < 0.01);
        // 1,000 a second is too many even so.
        let changes = b.tick(3 * S, counters(1_200, 0), 10_000_000, None, BOTH);
        assert!(matches!(
            changes[..],
            [Change::Detach {
                group: ProbeGroup::Lifecycle,
                ..
            }]
        ));
    }

    #[test]
    fn spawn_exit_come_back_when_the_goid_generator_says_it_is_quiet() {
        let mut b = Budget::new(Some(1.0));
        let lifecycle = &[ProbeGroup::Lifecycle];
        b.tick(S, counters(0, 0), 0, Some(0), lifecycle);
        let changes = b.tick(2 * S, counters(200_000, 0), S, Some(100_000), lifecycle);
        assert!(matches!(
            changes[..],
            [Change::Detach {
                group: ProbeGroup::Lifecycle,
                ..
            }]
        ));
        // Still busy when it is due: stays detached, retried later.
        let at = 2 * S + FIRST_BACKOFF_NS;
        b.tick(at - S, counters(200_000, 0), 2 * S, Some(200_000), &[]);
        assert!(b
            .tick(at, counters(200_000, 0), 3 * S, Some(300_000), &[])
            .is_empty());
        assert_eq!(b.status().detached.len(), 1);
        // Quiet at the next retry: re-attached.
        let at = at + FIRST_BACKOFF_NS;
        b.tick(at - S, counters(200_000, 0), 4 * S, Some(300_010), &[]);
        let changes = b.tick(at, counters(200_000, 0), 5 * S, Some(300_020), &[]);
        assert!(
            matches!(
                changes[..],
                [Change::Reattach {
                    group: ProbeGroup::Lifecycle,
                    ..
                }]
            ),
            "{changes:?}"
        );
        assert!(b.status().detached.is_empty());
    }

    #[test]
    fn a_group_without_an_estimate_is_tried_again_with_a_growing_backoff() {
        let mut b = Budget::new(Some(1.0));
        let sched = &[ProbeGroup::Scheduling];
        b.tick(S, counters(0, 0), 0, None, sched);
        b.tick(2 * S, counters(0, 100_000), S, None, sched);
        let first_retry = b.status().detached[0].retry_at_ns;
        assert_eq!(first_retry, 2 * S + FIRST_BACKOFF_NS);
        let changes = b.tick(first_retry, counters(0, 100_000), 2 * S, None, &[]);
        assert!(matches!(changes[..], [Change::Reattach { .. }]));
        // Still hot: detached again, for twice as long.
        let t = first_retry + S;
        let changes = b.tick(t, counters(0, 200_000), 3 * S, None, sched);
        assert!(matches!(changes[..], [Change::Detach { .. }]));
        assert_eq!(b.status().detached[0].retry_at_ns, t + 2 * FIRST_BACKOFF_NS);
    }

    #[test]
    fn without_a_cap_nothing_is_detached_but_the_cost_is_estimated() {
        let mut b = Budget::new(None);
        b.tick(S, counters(0, 0), 0, None, BOTH);
        assert!(b
            .tick(2 * S, counters(0, 1_000_000), S, None, BOTH)
            .is_empty());
        assert!(b.status().estimated_overhead_pct > 100.0);
        assert_eq!(b.status().max_overhead_pct, None);
    }
}

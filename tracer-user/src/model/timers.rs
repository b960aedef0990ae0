//! Timers and contexts: the state machine over their events, beside the
//! goroutine table and on the same terms (pure, no clock: callers pass
//! "now").
//!
//! A timer is known by its `*runtime.timer`, a context by its `*cancelCtx`.
//! Their creation sites are kept as raw call chains ([`Frames`]) and named
//! later by whoever reads the table (`suspects::timers`), through the same
//! [`crate::report::Symbols`] as goroutine sites, so a replay names and
//! groups them exactly as the live session did.
//!
//! What the runtime does not tell:
//! - Since Go 1.23 a channel timer nobody receives from never runs: it just
//!   expires at `when`. [`TimerEntry::expired`] says so from "now".
//! - The GC frees unreferenced timers and contexts silently. A creation at
//!   the address of one still armed (or live) means it was collected:
//!   counted as `collected`, not as stopped or cancelled.

use std::collections::HashMap;

use super::event::{ContextEvent, ContextOp, Frames, TimerEvent, TimerOp};
pub use crate::target::memory::SnapshotTimer;

/// Ended timers remembered for a later `Reset` (Timer.Reset after Stop or
/// after it fired re-arms the same timer); forgotten past this many.
const ENDED_LIMIT: usize = 65_536;

/// What makes timers one site: the call chain that created them and what
/// they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TimerSiteKey {
    /// Empty for timers armed before the tracer attached (first seen
    /// firing) and for `Sleep`.
    pub frames: Frames,
    /// Code of `timer.f` (`time.sendTime`, `time.goFunc`, …); 0 for Sleep.
    pub func: u64,
    /// With `time.goFunc`: the `AfterFunc` callback's code.
    pub callback: u64,
    pub ticker: bool,
    pub sleep: bool,
}

/// Counts of one timer site since attach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimerSite {
    pub key: TimerSiteKey,
    pub created: u64,
    pub reset: u64,
    /// Stops of a pending timer (`Stop` returned true).
    pub stopped: u64,
    pub fired: u64,
    /// Stopped after their deadline had passed without running (a Go ≥1.23
    /// channel timer nobody received from): they had expired.
    pub expired_stopped: u64,
    /// Armed timers whose memory was reused by a new one: the GC freed them.
    pub collected: u64,
    /// First seen when already armed (the tracer attached later).
    pub before_attach: u64,
    /// Timers of this site armed now (including channel timers past their
    /// deadline: see [`TimerEntry::expired`]).
    pub armed: u64,
    /// The latest creation's delay (`when` − creation time).
    pub last_delay_ns: i64,
    pub period_ns: i64,
}

/// One armed timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerEntry {
    pub site: u32,
    /// Creation (or first sighting) on the events' clock.
    pub since_ns: u64,
    /// When it runs next (CLOCK_MONOTONIC, as the events).
    pub when: i64,
    pub period: i64,
    /// A Go ≥1.23 channel timer: never run when nobody receives, and
    /// collected by the GC when unreferenced.
    pub is_chan: bool,
    /// The goroutine that created it (0: unknown).
    pub owner: u64,
    pub fires: u64,
    pub last_fire_ns: u64,
}

impl TimerEntry {
    /// A timer of `site` armed to run at `when`, seen first at `since_ns`.
    fn armed(site: u32, since_ns: u64, when: i64, period: i64, is_chan: bool, owner: u64) -> Self {
        TimerEntry {
            site,
            since_ns,
            when,
            period,
            is_chan,
            owner,
            fires: 0,
            last_fire_ns: 0,
        }
    }

    /// A one-shot channel timer whose deadline passed without it running:
    /// nobody was receiving, so it never will (Go ≥1.23 runs channel timers
    /// only for a receiver). Not pending any more.
    pub fn expired(&self, now_ns: u64) -> bool {
        self.is_chan && self.period == 0 && self.when > 0 && (self.when as u64) <= now_ns
    }
}

/// Counts of one context creation site since attach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextSite {
    /// The calls into `context` from user code; empty for contexts created
    /// before attach.
    pub frames: Frames,
    pub created: u64,
    /// First cancellations, by who called `cancel`: (innermost return
    /// address, the next) → count. Named by the reader of the table.
    pub cancellers: HashMap<(u64, u64), u64>,
    pub cancelled: u64,
    pub collected: u64,
    /// Created here and not cancelled yet.
    pub live: u64,
    /// The latest deadline's distance from creation (contexts with a
    /// deadline: their timer's delay).
    pub deadline_ns: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextEntry {
    pub site: u32,
    pub created_ns: u64,
    pub goid: u64,
    /// Its parent keeps it in `children` until it is cancelled (`None`:
    /// unknown).
    pub registered: Option<bool>,
    /// It has a deadline timer, which keeps it until the deadline.
    pub deadline: bool,
}

impl ContextEntry {
    /// Something outside the program's own references keeps it alive until
    /// it is cancelled: never cancelled, it is leaked, not collected. A
    /// context nothing keeps is collected by the GC once unreferenced,
    /// cancelled or not.
    pub fn retained(&self) -> bool {
        self.registered == Some(true) || self.deadline
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimerTotals {
    pub timer_events: u64,
    pub context_events: u64,
    /// `Stop` of a timer not armed (already stopped or fired), and of one
    /// armed before attach.
    pub idle_stops: u64,
    pub unknown_stops: u64,
    /// Cancels of an already-cancelled context.
    pub repeat_cancels: u64,
    pub sleeps: u64,
}

#[derive(Default)]
pub struct TimerTable {
    timers: HashMap<u64, TimerEntry>,
    /// Ended timers: their site and whether they are channel timers.
    ended: HashMap<u64, (u32, bool)>,
    sites: Vec<TimerSite>,
    site_index: HashMap<TimerSiteKey, u32>,
    contexts: HashMap<u64, ContextEntry>,
    ctx_sites: Vec<ContextSite>,
    ctx_index: HashMap<Frames, u32>,
    totals: TimerTotals,
    /// The timer and context probes are attached: what the table holds is
    /// being followed.
    traced: bool,
}

impl TimerTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn totals(&self) -> &TimerTotals {
        &self.totals
    }

    pub fn is_traced(&self) -> bool {
        self.traced
    }

    /// The timer and context probes were attached (`true`) or detached.
    /// Detached, nothing armed or live can be followed any more (its stop,
    /// fire or cancel would go unseen): it is forgotten, and the sites keep
    /// their counts so far.
    pub fn set_traced(&mut self, traced: bool) {
        self.traced = traced;
        if traced {
            return;
        }
        self.timers.clear();
        self.ended.clear();
        self.contexts.clear();
        for s in &mut self.sites {
            s.armed = 0;
        }
        for s in &mut self.ctx_sites {
            s.live = 0;
        }
    }

    pub fn sites(&self) -> &[TimerSite] {
        &self.sites
    }

    pub fn context_sites(&self) -> &[ContextSite] {
        &self.ctx_sites
    }

    /// Armed timers, by address.
    pub fn armed(&self) -> impl Iterator<Item = (u64, &TimerEntry)> {
        self.timers.iter().map(|(&a, e)| (a, e))
    }

    /// Live (not cancelled) contexts, by address.
    pub fn live_contexts(&self) -> impl Iterator<Item = (u64, &ContextEntry)> {
        self.contexts.iter().map(|(&a, e)| (a, e))
    }

    fn site(&mut self, key: TimerSiteKey) -> u32 {
        if let Some(&i) = self.site_index.get(&key) {
            return i;
        }
        let i = self.sites.len() as u32;
        self.sites.push(TimerSite {
            key,
            ..TimerSite::default()
        });
        self.site_index.insert(key, i);
        i
    }

    fn context_site(&mut self, frames: Frames) -> u32 {
        if let Some(&i) = self.ctx_index.get(&frames) {
            return i;
        }
        let i = self.ctx_sites.len() as u32;
        self.ctx_sites.push(ContextSite {
            frames,
            ..ContextSite::default()
        });
        self.ctx_index.insert(frames, i);
        i
    }

    /// Ends an armed timer; remembered for a later `Reset`.
    fn end(&mut self, addr: u64) -> Option<TimerEntry> {
        let entry = self.timers.remove(&addr)?;
        self.sites[entry.site as usize].armed -= 1;
        if self.ended.len() >= ENDED_LIMIT {
            self.ended.clear();
        }
        self.ended.insert(addr, (entry.site, entry.is_chan));
        Some(entry)
    }

    fn arm(&mut self, addr: u64, entry: TimerEntry) {
        self.sites[entry.site as usize].armed += 1;
        self.ended.remove(&addr);
        if let Some(old) = self.timers.insert(addr, entry) {
            self.sites[old.site as usize].armed -= 1;
        }
    }

    /// The timers the attach-time read found pending in the runtime's
    /// heaps; those already known from an event are left as they are.
    pub fn seed(&mut self, timers: &[SnapshotTimer], now_ns: u64) {
        for t in timers {
            if self.timers.contains_key(&t.timer) || self.ended.contains_key(&t.timer) {
                continue;
            }
            let site = self.site(TimerSiteKey {
                func: t.func,
                callback: t.callback.map_or(0, |c| c.0),
                ticker: t.period > 0,
                ..TimerSiteKey::default()
            });
            self.sites[site as usize].before_attach += 1;
            self.arm(
                t.timer,
                TimerEntry::armed(site, now_ns, t.when, t.period, t.is_chan, 0),
            );
        }
    }

    pub fn apply_timer(&mut self, ts_ns: u64, ev: &TimerEvent) {
        self.totals.timer_events += 1;
        let addr = ev.timer;
        match ev.op {
            TimerOp::Create {
                when,
                period,
                func,
                callback,
                is_chan,
            } => {
                if let Some(old) = self.timers.get(&addr) {
                    // Still armed, yet its memory holds a new timer.
                    let site = old.site as usize;
                    self.end(addr);
                    self.sites[site].collected += 1;
                }
                let site = self.site(TimerSiteKey {
                    frames: ev.frames,
                    func,
                    callback: callback.map_or(0, |c| c.0),
                    ticker: period > 0,
                    sleep: false,
                });
                let s = &mut self.sites[site as usize];
                s.created += 1;
                s.last_delay_ns = when.saturating_sub(ts_ns as i64);
                s.period_ns = period;
                if let Some((_, word)) = callback {
                    // A context deadline: the callback's first word is the
                    // *timerCtx.
                    if let Some(ctx) = self.contexts.get_mut(&word) {
                        ctx.deadline = true;
                        self.ctx_sites[ctx.site as usize].deadline_ns =
                            Some(when.saturating_sub(ctx.created_ns as i64));
                    }
                }
                if when > 0 {
                    self.arm(
                        addr,
                        TimerEntry::armed(site, ts_ns, when, period, is_chan, ev.goid),
                    );
                } else {
                    // Created already run (AfterFunc(0) on another P).
                    self.ended.insert(addr, (site, is_chan));
                }
            }
            TimerOp::Reset { when, period } => {
                if let Some(entry) = self.timers.get_mut(&addr) {
                    entry.when = when;
                    entry.period = period;
                    self.sites[entry.site as usize].reset += 1;
                    return;
                }
                let (site, is_chan) = match self.ended.get(&addr) {
                    Some(&ended) => ended,
                    None => {
                        let site = self.site(TimerSiteKey {
                            ticker: period > 0,
                            ..TimerSiteKey::default()
                        });
                        self.sites[site as usize].before_attach += 1;
                        (site, false)
                    }
                };
                self.sites[site as usize].reset += 1;
                self.arm(
                    addr,
                    TimerEntry::armed(site, ts_ns, when, period, is_chan, ev.goid),
                );
            }
            TimerOp::Stop { was_pending } => match self.timers.get(&addr) {
                Some(entry) => {
                    let site = entry.site as usize;
                    let expired = entry.expired(ts_ns);
                    self.end(addr);
                    if was_pending && !expired {
                        self.sites[site].stopped += 1;
                    } else {
                        self.sites[site].expired_stopped += 1;
                    }
                }
                None if self.ended.contains_key(&addr) => self.totals.idle_stops += 1,
                None => self.totals.unknown_stops += 1,
            },
            TimerOp::Fire {
                when,
                period,
                func,
                callback,
            } => {
                if !self.timers.contains_key(&addr) {
                    if self.ended.contains_key(&addr) {
                        // Stopped while its run was already under way.
                        self.totals.idle_stops += 1;
                        return;
                    }
                    let site = self.site(TimerSiteKey {
                        func,
                        callback: callback.map_or(0, |c| c.0),
                        ticker: period > 0,
                        ..TimerSiteKey::default()
                    });
                    self.sites[site as usize].before_attach += 1;
                    self.arm(addr, TimerEntry::armed(site, ts_ns, when, period, false, 0));
                }
                let Some(entry) = self.timers.get_mut(&addr) else {
                    return;
                };
                entry.fires += 1;
                entry.last_fire_ns = ts_ns;
                let (site, one_shot) = (entry.site as usize, entry.period <= 0);
                if !one_shot {
                    entry.when = when.saturating_add(entry.period);
                }
                self.sites[site].fired += 1;
                if one_shot {
                    self.end(addr);
                }
            }
            TimerOp::Sleep { when } => {
                self.totals.sleeps += 1;
                let site = self.site(TimerSiteKey {
                    sleep: true,
                    ..TimerSiteKey::default()
                });
                self.sites[site as usize].created += 1;
                self.arm(
                    addr,
                    TimerEntry::armed(site, ts_ns, when, 0, false, ev.goid),
                );
            }
        }
    }

    pub fn apply_context(&mut self, ts_ns: u64, ev: &ContextEvent) {
        self.totals.context_events += 1;
        match ev.op {
            ContextOp::Create { registered } => {
                if let Some(old) = self.contexts.remove(&ev.context) {
                    let s = &mut self.ctx_sites[old.site as usize];
                    s.live -= 1;
                    s.collected += 1;
                }
                let site = self.context_site(ev.frames);
                let s = &mut self.ctx_sites[site as usize];
                s.created += 1;
                s.live += 1;
                self.contexts.insert(
                    ev.context,
                    ContextEntry {
                        site,
                        created_ns: ts_ns,
                        goid: ev.goid,
                        registered,
                        deadline: false,
                    },
                );
            }
            ContextOp::Cancel { first, .. } => {
                if !first {
                    self.totals.repeat_cancels += 1;
                    return;
                }
                let site = match self.contexts.remove(&ev.context) {
                    Some(entry) => {
                        self.ctx_sites[entry.site as usize].live -= 1;
                        entry.site
                    }
                    None => self.context_site(Frames::default()),
                };
                let pcs = ev.frames.pcs();
                let who = (
                    pcs.first().copied().unwrap_or(0),
                    pcs.get(1).copied().unwrap_or(0),
                );
                let s = &mut self.ctx_sites[site as usize];
                s.cancelled += 1;
                *s.cancellers.entry(who).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND_TIME: u64 = 0x1000;
    const GO_FUNC: u64 = 0x2000;
    const USER: u64 = 0x9000;

    fn timer(addr: u64, op: TimerOp) -> TimerEvent {
        TimerEvent {
            timer: addr,
            op,
            goid: 7,
            frames: Frames::new(&[USER]),
        }
    }

    fn create(when: i64, period: i64, is_chan: bool) -> TimerOp {
        TimerOp::Create {
            when,
            period,
            func: SEND_TIME,
            callback: None,
            is_chan,
        }
    }

    const CREATE: ContextOp = ContextOp::Create {
        registered: Some(true),
    };

    fn context(addr: u64, op: ContextOp, frames: &[u64]) -> ContextEvent {
        ContextEvent {
            context: addr,
            op,
            goid: 7,
            frames: Frames::new(frames),
        }
    }

    #[test]
    fn a_timer_is_armed_until_it_is_stopped_or_fires() {
        let mut t = TimerTable::new();
        t.apply_timer(100, &timer(0xa, create(1_000, 0, false)));
        t.apply_timer(100, &timer(0xb, create(1_000, 0, false)));
        t.apply_timer(200, &timer(0xa, TimerOp::Stop { was_pending: true }));
        let fire = TimerOp::Fire {
            when: 1_000,
            period: 0,
            func: SEND_TIME,
            callback: None,
        };
        t.apply_timer(1_000, &timer(0xb, fire));
        let s = &t.sites()[0];
        assert_eq!(
            (s.created, s.stopped, s.fired, s.armed),
            (2, 1, 1, 0),
            "{s:?}"
        );
        // Stopping again does nothing but count.
        t.apply_timer(1_100, &timer(0xa, TimerOp::Stop { was_pending: false }));
        assert_eq!(t.totals().idle_stops, 1);
    }

    #[test]
    fn a_reset_after_stop_rearms_the_same_timer_of_the_same_site() {
        let mut t = TimerTable::new();
        t.apply_timer(100, &timer(0xa, create(1_000, 0, true)));
        t.apply_timer(200, &timer(0xa, TimerOp::Stop { was_pending: true }));
        let reset = TimerOp::Reset {
            when: 2_000,
            period: 0,
        };
        t.apply_timer(300, &timer(0xa, reset));
        assert_eq!(t.sites().len(), 1);
        let s = &t.sites()[0];
        assert_eq!((s.created, s.stopped, s.reset, s.armed), (1, 1, 1, 1));
    }

    #[test]
    fn a_ticker_stays_armed_while_it_fires() {
        let mut t = TimerTable::new();
        t.apply_timer(0, &timer(0xa, create(10, 10, false)));
        for i in 1..=3 {
            let fire = TimerOp::Fire {
                when: i * 10,
                period: 10,
                func: SEND_TIME,
                callback: None,
            };
            t.apply_timer(i as u64 * 10, &timer(0xa, fire));
        }
        let s = &t.sites()[0];
        assert!(s.key.ticker);
        assert_eq!((s.fired, s.armed), (3, 1));
        assert_eq!(t.armed().next().unwrap().1.fires, 3);
    }

    #[test]
    fn an_unread_channel_timer_expires_at_its_deadline() {
        let mut t = TimerTable::new();
        t.apply_timer(0, &timer(0xa, create(1_000, 0, true)));
        let (_, e) = t.armed().next().unwrap();
        assert!(!e.expired(999));
        assert!(e.expired(1_000));
        // Stopped later: it had expired, Stop is not a save.
        t.apply_timer(2_000, &timer(0xa, TimerOp::Stop { was_pending: true }));
        let s = &t.sites()[0];
        assert_eq!((s.stopped, s.expired_stopped, s.armed), (0, 1, 0));
    }

    #[test]
    fn a_new_timer_at_an_armed_timers_address_means_the_gc_collected_it() {
        let mut t = TimerTable::new();
        t.apply_timer(0, &timer(0xa, create(1_000_000, 10, true)));
        t.apply_timer(10, &timer(0xa, create(1_000_000, 10, true)));
        let s = &t.sites()[0];
        assert_eq!((s.created, s.collected, s.armed), (2, 1, 1));
    }

    #[test]
    fn timers_first_seen_firing_were_armed_before_attach() {
        let mut t = TimerTable::new();
        let fire = TimerOp::Fire {
            when: 10,
            period: 5,
            func: SEND_TIME,
            callback: None,
        };
        t.apply_timer(10, &timer(0xa, fire));
        let s = &t.sites()[0];
        assert!(s.key.frames.pcs().is_empty() && s.key.ticker);
        assert_eq!((s.before_attach, s.fired, s.armed, s.created), (1, 1, 1, 0));
    }

    #[test]
    fn timers_read_from_the_heaps_at_attach_are_armed_before_attach() {
        let mut t = TimerTable::new();
        t.apply_timer(5, &timer(0xa, create(1_000, 0, false)));
        let heap = [
            SnapshotTimer {
                timer: 0xa,
                when: 1_000,
                period: 0,
                func: SEND_TIME,
                callback: None,
                is_chan: false,
            },
            SnapshotTimer {
                timer: 0xb,
                when: 2_000,
                period: 0,
                func: GO_FUNC,
                callback: Some((0x700, 0)),
                is_chan: false,
            },
        ];
        t.seed(&heap, 10);
        assert_eq!(t.sites().len(), 2, "0xa was known: {:?}", t.sites());
        let s = &t.sites()[1];
        assert_eq!((s.before_attach, s.armed, s.key.callback), (1, 1, 0x700));
        // It then fires like any other.
        let fire = TimerOp::Fire {
            when: 2_000,
            period: 0,
            func: GO_FUNC,
            callback: Some((0x700, 0)),
        };
        t.apply_timer(2_000, &timer(0xb, fire));
        assert_eq!((t.sites()[1].fired, t.sites()[1].armed), (1, 0));
    }

    #[test]
    fn detached_probes_forget_what_can_no_longer_be_followed() {
        let mut t = TimerTable::new();
        t.set_traced(true);
        t.apply_timer(0, &timer(0xa, create(1_000, 0, false)));
        t.apply_context(0, &context(0xc1, CREATE, &[0x500, USER]));
        t.set_traced(false);
        assert!(!t.is_traced());
        assert_eq!(t.armed().count() + t.live_contexts().count(), 0);
        assert_eq!((t.sites()[0].created, t.sites()[0].armed), (1, 0));
        assert_eq!(
            (t.context_sites()[0].created, t.context_sites()[0].live),
            (1, 0)
        );
    }

    #[test]
    fn contexts_are_live_until_their_first_cancel() {
        let mut t = TimerTable::new();
        let creator = [0x500, USER];
        t.apply_context(0, &context(0xc1, CREATE, &creator));
        t.apply_context(0, &context(0xc2, CREATE, &creator));
        let first = ContextOp::Cancel {
            remove: true,
            first: true,
        };
        let again = ContextOp::Cancel {
            remove: true,
            first: false,
        };
        t.apply_context(5, &context(0xc1, first, &[0x600, USER]));
        t.apply_context(6, &context(0xc1, again, &[0x600, USER]));
        let s = &t.context_sites()[0];
        assert_eq!((s.created, s.cancelled, s.live), (2, 1, 1));
        assert_eq!(s.cancellers[&(0x600, USER)], 1);
        assert_eq!(t.totals().repeat_cancels, 1);
        assert_eq!(t.live_contexts().count(), 1);
    }

    #[test]
    fn a_deadline_timer_gives_its_context_site_the_deadline() {
        let mut t = TimerTable::new();
        t.apply_context(1_000, &context(0xc1, CREATE, &[0x500, USER]));
        let op = TimerOp::Create {
            when: 31_000,
            period: 0,
            func: GO_FUNC,
            callback: Some((0x700, 0xc1)),
            is_chan: false,
        };
        t.apply_timer(1_001, &timer(0xa, op));
        assert_eq!(t.context_sites()[0].deadline_ns, Some(30_000));
        assert!(t.live_contexts().next().unwrap().1.deadline);
        assert_eq!(t.sites()[0].key.callback, 0x700);
    }

    #[test]
    fn sleeps_reuse_one_timer_per_goroutine() {
        let mut t = TimerTable::new();
        for i in 0..3 {
            t.apply_timer(
                i * 10,
                &timer(
                    0xa,
                    TimerOp::Sleep {
                        when: i as i64 * 10 + 5,
                    },
                ),
            );
            let fire = TimerOp::Fire {
                when: i as i64 * 10 + 5,
                period: 0,
                func: 0x3000,
                callback: None,
            };
            t.apply_timer(i * 10 + 5, &timer(0xa, fire));
        }
        let s = &t.sites()[0];
        assert!(s.key.sleep);
        assert_eq!((s.created, s.fired, s.armed), (3, 3, 0));
        assert_eq!(t.totals().sleeps, 3);
    }
}

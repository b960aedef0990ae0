//! The leak-suspect engine: groups the live goroutines of the model and
//! judges each group with a few explicit rules (documented in the README,
//! section "Leak suspects").
//!
//! Pure: it reads a [`GoroutineTable`], a "now" on the events' clock and a
//! [`Symbols`] for names; live tracing, replay and the unit tests drive it
//! the same way. It keeps, per group and per creation site, a short history
//! of counts to measure growth.
//!
//! - A **group** is the goroutines with the same creation site, the same
//!   state (wait reason) and the same blocked-at stack.
//! - **blocked**: a group waiting on a channel, `select` or `sync` primitive
//!   for longer than [`Rules::blocked_after`].
//! - **backlog**: a group of at least [`Rules::backlog_min`] goroutines that
//!   were already waiting that way when the tracer attached and have not
//!   woken since.
//! - **growing**: a creation site whose live count rose through a whole
//!   [`Rules::growth_window`], whatever its goroutines do.
//!
//! Never suspects: the runtime's own goroutines, idle pools (every member
//! receives from one shared channel and the group does not grow), and groups
//! of at most [`Rules::handful`] goroutines that do not grow.

mod classify;
#[cfg(test)]
mod tests;
pub mod timers;

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use serde::Serialize;

pub use classify::{is_runtime_owned, WaitClass};

use crate::model::{Goroutine, GoroutineState, GoroutineTable, Origin, TimerTable};
use crate::report::{SourceLocation, Symbols};

/// The thresholds of the rules; `tracer attach` exposes each as a flag.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rules {
    /// A group waiting on a channel, `select` or `sync` primitive longer than
    /// this is "blocked" (`--blocked-after`).
    pub blocked_after: Duration,
    /// Growth is measured over this window (`--growth-window`).
    pub growth_window: Duration,
    /// A site must have gained at least this many live goroutines over the
    /// window to be "growing" (`--growth-min`).
    pub growth_min: u64,
    /// Groups found at attach with at least this many goroutines are
    /// reported at once as "backlog" (`--backlog-min`).
    pub backlog_min: u64,
    /// Groups of at most this many goroutines that do not grow are long-lived
    /// singletons, not suspects.
    pub handful: u64,
    /// Largest group still taken for an idle worker pool when its members
    /// share a channel (`--pool-max`): thousands of goroutines parked on one
    /// channel are a leak (a channel nobody closes), not a pool.
    pub pool_max: u64,
    /// Creation sites to ignore: a suspect whose site's `file:line` or
    /// function contains one of these is dropped (`--ignore-site`).
    pub ignore_sites: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            blocked_after: Duration::from_secs(10),
            growth_window: Duration::from_secs(60),
            growth_min: 10,
            backlog_min: 100,
            handful: 3,
            pool_max: 1000,
            ignore_sites: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspectKind {
    /// Waiting on a channel, `select` or `sync` primitive for too long.
    Blocked,
    /// A large group already blocked when the tracer attached.
    Backlog,
    /// A creation site whose live goroutines keep increasing.
    Growing,
    /// Contexts of one site never cancelled (suspects/timers.rs).
    ContextLeak,
    /// `AfterFunc`/`NewTimer` timers of one site piling up, never stopped.
    TimerLeak,
    /// `time.After` in a loop: a new armed timer per iteration.
    AfterInLoop,
    /// Tickers never stopped, outliving the goroutine that created them.
    TickerLeak,
}

impl SuspectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SuspectKind::Blocked => "blocked",
            SuspectKind::Backlog => "backlog",
            SuspectKind::Growing => "growing",
            SuspectKind::ContextLeak => "context_leak",
            SuspectKind::TimerLeak => "timer_leak",
            SuspectKind::AfterInLoop => "after_in_loop",
            SuspectKind::TickerLeak => "ticker_leak",
        }
    }
}

/// One suspected leak, as printed in the `suspects` list of the JSON
/// documents and shown in the TUI.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suspect {
    pub kind: SuspectKind,
    /// 0–100; how the parts add up is in the README.
    pub score: u32,
    /// The `go` statement (unknown for goroutines first seen after attach
    /// without a creation record).
    pub creation_site: Option<SourceLocation>,
    pub start_function: Option<String>,
    /// Go's wait-reason text, or "running"/"runnable"/"syscall".
    pub state: String,
    /// Where the group is blocked, innermost frame first.
    pub blocked_at: Vec<SourceLocation>,
    pub count: u64,
    pub oldest_age_s: f64,
    pub median_age_s: f64,
    /// True when some ages are only lower bounds (goroutines that were
    /// already waiting at attach: the runtime does not record since when).
    pub ages_are_lower_bounds: bool,
    /// Net change of the group's count per minute over the growth window
    /// (of the site's live count for "growing").
    pub growth_per_min: f64,
    pub example_goid: u64,
    /// One sentence for a Go developer.
    pub evidence: String,
    /// The group it is about (see [`Group::id`]).
    pub group: u64,
}

/// Live goroutines sharing a creation site, state and blocked-at stack.
#[derive(Clone, Debug)]
pub struct Group {
    /// Stable across updates while the group exists.
    pub id: u64,
    pub site_pc: Option<u64>,
    pub site: Option<SourceLocation>,
    pub start_function: Option<String>,
    pub state: String,
    pub class: WaitClass,
    pub blocked_at: Arc<[SourceLocation]>,
    pub count: u64,
    pub oldest_age_ns: u64,
    pub median_age_ns: u64,
    pub ages_are_lower_bounds: bool,
    pub growth_per_min: f64,
    /// The oldest member.
    pub example_goid: u64,
    /// Every member, lowest goid first.
    pub goids: Vec<u64>,
    pub runtime_owned: bool,
}

/// The engine's view at one instant.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    pub now_ns: u64,
    /// Largest first.
    pub groups: Vec<Group>,
    /// Highest score first.
    pub suspects: Vec<Suspect>,
    /// Timers and contexts, grouped by kind and site.
    pub timers: timers::TimerAnalysis,
}

/// Samples kept per group and per site (at one per update, 10 minutes at the
/// default 1 s interval).
const HISTORY: usize = 600;
/// Symbolized stacks kept; the cache is cleared past this.
const STACK_CACHE_LIMIT: usize = 50_000;

/// Count samples `(ns, count)`, oldest first.
#[derive(Clone, Debug, Default)]
pub struct History {
    samples: VecDeque<(u64, u64)>,
}

impl History {
    fn push(&mut self, now_ns: u64, count: u64) {
        if self.samples.len() == HISTORY {
            self.samples.pop_front();
        }
        self.samples.push_back((now_ns, count));
    }

    pub fn samples(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.samples.iter().copied()
    }

    fn last_ns(&self) -> u64 {
        self.samples.back().map_or(0, |s| s.0)
    }

    /// Samples within `window` of `now_ns`.
    fn window(&self, now_ns: u64, window: Duration) -> Vec<(u64, u64)> {
        let from = now_ns.saturating_sub(window.as_nanos() as u64);
        self.samples
            .iter()
            .copied()
            .filter(|s| s.0 >= from)
            .collect()
    }

    /// Least-squares slope of the count over the window, per minute.
    fn growth_per_min(&self, now_ns: u64, window: Duration) -> f64 {
        slope_per_min(&self.window(now_ns, window))
    }
}

fn slope_per_min(samples: &[(u64, u64)]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let t0 = samples[0].0;
    let n = samples.len() as f64;
    let xs = samples.iter().map(|s| (s.0 - t0) as f64 / 60e9);
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, s) in xs.zip(samples) {
        sxy += (x - mean_x) * (s.1 as f64 - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Growth that lasts: over at least half the window, the site gained
/// `min` goroutines and its mean count rose from each third of the window to
/// the next. Returns the net gain.
fn sustained_growth(samples: &[(u64, u64)], window: Duration, min: u64) -> Option<u64> {
    let (first, last) = (samples.first()?, samples.last()?);
    if samples.len() < 6 || last.0 - first.0 < window.as_nanos() as u64 / 2 {
        return None;
    }
    let gain = last.1.checked_sub(first.1)?;
    if gain < min.max(1) {
        return None;
    }
    let span = (last.0 - first.0) as f64;
    let mut sums = [(0.0f64, 0u32); 3];
    for s in samples {
        let third = (((s.0 - first.0) as f64 / span) * 3.0).min(2.0) as usize;
        sums[third].0 += s.1 as f64;
        sums[third].1 += 1;
    }
    let means: Vec<f64> = sums
        .iter()
        .filter(|s| s.1 > 0)
        .map(|s| s.0 / f64::from(s.1))
        .collect();
    (means.len() == 3 && means[0] < means[1] && means[1] < means[2]).then_some(gain)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    site_pc: Option<u64>,
    /// Distinguishes goroutines of unknown site by their function.
    start_pc: Option<u64>,
    state: StateKey,
    stack: Option<Arc<[u64]>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StateKey {
    Waiting(Option<u8>),
    Runnable,
    Running,
    Syscall,
}

impl GroupKey {
    fn of(g: &Goroutine) -> Self {
        let state = match g.state {
            GoroutineState::Waiting => StateKey::Waiting(g.wait_reason),
            GoroutineState::Runnable => StateKey::Runnable,
            GoroutineState::Running => StateKey::Running,
            GoroutineState::Syscall => StateKey::Syscall,
        };
        GroupKey {
            site_pc: g.gopc,
            start_pc: if g.gopc.is_some() { None } else { g.start_pc },
            state,
            stack: match g.state {
                GoroutineState::Waiting => g.blocked_stack.clone(),
                _ => None,
            },
        }
    }

    fn id(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// What one update collects per group before judging it.
struct Members<'a> {
    goroutines: Vec<&'a Goroutine>,
}

pub struct SuspectEngine {
    rules: Rules,
    groups: HashMap<u64, History>,
    sites: HashMap<u64, History>,
    /// Symbolized stacks by raw pcs.
    stacks: HashMap<Arc<[u64]>, Arc<[SourceLocation]>>,
    sites_symbolized: HashMap<u64, (SourceLocation, Option<String>)>,
    /// Timer and context groups' counts (pending, live).
    timer_groups: HashMap<u64, History>,
    namer: timers::Namer,
}

impl SuspectEngine {
    pub fn new(rules: Rules) -> Self {
        SuspectEngine {
            rules,
            groups: HashMap::new(),
            sites: HashMap::new(),
            stacks: HashMap::new(),
            sites_symbolized: HashMap::new(),
            timer_groups: HashMap::new(),
            namer: timers::Namer::default(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The count samples of a group (for "count over time"): goroutines,
    /// or a timer group's pending or a context group's live count.
    pub fn history(&self, group: u64) -> Option<&History> {
        self.groups
            .get(&group)
            .or_else(|| self.timer_groups.get(&group))
    }

    /// Groups the live goroutines, timers and contexts, records their
    /// counts at `now_ns` and judges them. Call it once per output interval.
    pub fn update(
        &mut self,
        table: &GoroutineTable,
        timer_table: &TimerTable,
        now_ns: u64,
        symbols: &dyn Symbols,
    ) -> Analysis {
        let mut members: HashMap<GroupKey, Members> = HashMap::new();
        for g in table.iter() {
            members
                .entry(GroupKey::of(g))
                .or_insert_with(|| Members {
                    goroutines: Vec::new(),
                })
                .goroutines
                .push(g);
        }
        merge_unread_stacks(&mut members);

        for (pc, stats) in table.sites() {
            self.sites.entry(pc).or_default().push(now_ns, stats.live);
        }
        let mut groups = Vec::with_capacity(members.len());
        for (key, m) in members {
            let id = key.id();
            let history = self.groups.entry(id).or_default();
            history.push(now_ns, m.goroutines.len() as u64);
            let growth = history.growth_per_min(now_ns, self.rules.growth_window);
            groups.push((self.describe(&key, id, &m, now_ns, growth, symbols), m));
        }
        self.forget_old(now_ns);

        let mut suspects = Vec::new();
        let mut suspect_sites = std::collections::HashSet::new();
        for (group, m) in &groups {
            if let Some(s) = self.judge_group(group, m, now_ns) {
                suspect_sites.extend(group.site_pc);
                suspects.push(s);
            }
        }
        suspects.extend(self.growing_sites(&groups, &suspect_sites, now_ns));
        let timers = timers::analyze(
            timer_table,
            table,
            now_ns,
            symbols,
            &mut self.namer,
            &mut self.timer_groups,
            &self.rules,
        );
        for s in timers::judge(&timers, &self.timer_groups, now_ns, &self.rules) {
            // Goroutines blocked on a context or timer their own creator
            // made are one leak: the goroutine suspect tells both.
            let same_code = suspects.iter_mut().find(|g| {
                g.creation_site
                    .as_ref()
                    .zip(s.creation_site.as_ref())
                    .is_some_and(|(a, b)| a.function == b.function)
            });
            match same_code {
                Some(g) => {
                    g.evidence.push_str("; ");
                    g.evidence.push_str(&s.evidence);
                }
                None => suspects.push(s),
            }
        }
        suspects.retain(|s| !self.ignored(s.creation_site.as_ref()));
        suspects.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then(b.count.cmp(&a.count))
                .then(a.group.cmp(&b.group))
        });

        let mut groups: Vec<Group> = groups.into_iter().map(|(g, _)| g).collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
        Analysis {
            now_ns,
            groups,
            suspects,
            timers,
        }
    }

    fn describe(
        &mut self,
        key: &GroupKey,
        id: u64,
        m: &Members,
        now_ns: u64,
        growth_per_min: f64,
        symbols: &dyn Symbols,
    ) -> Group {
        let first = m.goroutines[0];
        let (site, creator) = match key.site_pc {
            Some(pc) => {
                let (loc, creator) = self
                    .sites_symbolized
                    .entry(pc)
                    .or_insert_with(|| {
                        let loc = symbols.creation_site(pc);
                        let creator = (loc.function != "?").then(|| loc.function.clone());
                        (loc, creator)
                    })
                    .clone();
                (Some(loc), creator)
            }
            None => (None, None),
        };
        let start_function = first.start_pc.and_then(|pc| symbols.function(pc));
        let state = crate::report::state_label(first, symbols);
        let class = match first.state {
            GoroutineState::Waiting => WaitClass::of_wait_reason(&state),
            _ => WaitClass::NotWaiting,
        };
        let blocked_at = match &key.stack {
            Some(pcs) => {
                if self.stacks.len() >= STACK_CACHE_LIMIT {
                    self.stacks.clear();
                }
                Arc::clone(
                    self.stacks
                        .entry(Arc::clone(pcs))
                        .or_insert_with(|| symbols.stack(pcs).into()),
                )
            }
            None => Arc::from(Vec::new()),
        };
        let mut ages: Vec<(u64, u64)> = m
            .goroutines
            .iter()
            .map(|g| (age_ns(g, now_ns), g.goid))
            .collect();
        let lower_bounds = m.goroutines.iter().any(|g| age_is_lower_bound(g));
        let (oldest, median) = oldest_and_median(&mut ages);
        let mut goids: Vec<u64> = m.goroutines.iter().map(|g| g.goid).collect();
        goids.sort_unstable();
        Group {
            id,
            site_pc: key.site_pc,
            runtime_owned: is_runtime_owned(start_function.as_deref(), creator.as_deref()),
            site,
            start_function,
            state,
            class,
            blocked_at,
            count: goids.len() as u64,
            oldest_age_ns: oldest.0,
            median_age_ns: median,
            ages_are_lower_bounds: lower_bounds,
            growth_per_min,
            example_goid: oldest.1,
            goids,
        }
    }

    /// The "blocked" and "backlog" rules for one group.
    fn judge_group(&self, group: &Group, m: &Members, now_ns: u64) -> Option<Suspect> {
        if group.runtime_owned || !group.class.can_block_forever() {
            return None;
        }
        let growing = self.group_grows(group.id, now_ns);
        if !growing && group.count <= self.rules.pool_max && is_idle_pool(group, m) {
            return None;
        }
        let backlog = m
            .goroutines
            .iter()
            .filter(|g| g.origin == Origin::Snapshot && g.wake_count == 0)
            .count() as u64;
        let blocked_after = self.rules.blocked_after.as_nanos() as u64;
        let stuck = m
            .goroutines
            .iter()
            .filter(|g| age_ns(g, now_ns) >= blocked_after)
            .count() as u64;
        // More than a handful stuck, or a growing group with any stuck: one
        // slow call in a busy group, or a few long-lived singletons, is not
        // a leak.
        let kind = if backlog >= self.rules.backlog_min {
            SuspectKind::Backlog
        } else if stuck > self.rules.handful || (growing && stuck > 0) {
            SuspectKind::Blocked
        } else {
            return None;
        };
        Some(self.suspect(kind, group, group.count, group.growth_per_min))
    }

    /// A group grows when its count rose by `growth_min` over the window.
    fn group_grows(&self, id: u64, now_ns: u64) -> bool {
        self.groups.get(&id).is_some_and(|h| {
            let w = h.window(now_ns, self.rules.growth_window);
            match (w.first(), w.last()) {
                (Some(a), Some(b)) => b.1 >= a.1 + self.rules.growth_min.max(1),
                _ => false,
            }
        })
    }

    /// The "growing" rule: sites with sustained growth that no group
    /// suspect already covers.
    fn growing_sites(
        &self,
        groups: &[(Group, Members)],
        covered: &std::collections::HashSet<u64>,
        now_ns: u64,
    ) -> Vec<Suspect> {
        let mut out = Vec::new();
        for (&pc, history) in &self.sites {
            if covered.contains(&pc) || history.last_ns() != now_ns {
                continue;
            }
            let window = history.window(now_ns, self.rules.growth_window);
            let Some(gain) =
                sustained_growth(&window, self.rules.growth_window, self.rules.growth_min)
            else {
                continue;
            };
            // The site's largest group stands for it.
            let Some((group, _)) = groups
                .iter()
                .filter(|(g, _)| g.site_pc == Some(pc))
                .max_by_key(|(g, _)| (g.count, std::cmp::Reverse(g.id)))
            else {
                continue;
            };
            if group.runtime_owned {
                continue;
            }
            let live = window.last().map_or(0, |s| s.1);
            let mut s = self.suspect(SuspectKind::Growing, group, live, slope_per_min(&window));
            s.evidence = format!(
                "live goroutines created at {} grew by {} to {} in the last {} ({:+.0}/min), {} of them {}",
                group.site.as_ref().map_or("an unknown site".into(), site_label),
                thousands(gain),
                thousands(live),
                human_duration(self.rules.growth_window.as_nanos() as u64),
                s.growth_per_min,
                thousands(group.count),
                state_phrase(&group.state),
            );
            out.push(s);
        }
        out
    }

    fn suspect(&self, kind: SuspectKind, group: &Group, count: u64, growth: f64) -> Suspect {
        let growth = round1(growth);
        let evidence = evidence(kind, group, count, growth);
        Suspect {
            kind,
            score: score(kind, count, group.oldest_age_ns, growth, &self.rules),
            creation_site: group.site.clone(),
            start_function: group.start_function.clone(),
            state: group.state.clone(),
            blocked_at: group.blocked_at.to_vec(),
            count,
            oldest_age_s: seconds(group.oldest_age_ns),
            median_age_s: seconds(group.median_age_ns),
            ages_are_lower_bounds: group.ages_are_lower_bounds,
            growth_per_min: growth,
            example_goid: group.example_goid,
            evidence,
            group: group.id,
        }
    }

    fn ignored(&self, site: Option<&SourceLocation>) -> bool {
        let Some(site) = site else { return false };
        let label = site
            .file
            .as_ref()
            .zip(site.line)
            .map(|(f, l)| format!("{f}:{l}"));
        self.rules.ignore_sites.iter().any(|pattern| {
            site.function.contains(pattern.as_str())
                || label
                    .as_deref()
                    .is_some_and(|l| l.contains(pattern.as_str()))
        })
    }

    /// Drops histories not updated within the growth window.
    fn forget_old(&mut self, now_ns: u64) {
        let keep_from = now_ns.saturating_sub(self.rules.growth_window.as_nanos() as u64);
        self.groups.retain(|_, h| h.last_ns() >= keep_from);
        self.sites.retain(|_, h| h.last_ns() >= keep_from);
        self.timer_groups.retain(|_, h| h.last_ns() >= keep_from);
    }
}

/// Goroutines whose stack is not read yet (parked since the last refresh)
/// join the largest group with the same site and state: they are almost
/// always blocked at the same place, and groups should not split and merge
/// from one update to the next.
fn merge_unread_stacks(members: &mut HashMap<GroupKey, Members>) {
    let unread: Vec<GroupKey> = members
        .keys()
        .filter(|k| k.stack.is_none() && matches!(k.state, StateKey::Waiting(_)))
        .cloned()
        .collect();
    for key in unread {
        let target = members
            .iter()
            .filter(|(k, _)| {
                k.stack.is_some()
                    && k.site_pc == key.site_pc
                    && k.start_pc == key.start_pc
                    && k.state == key.state
            })
            .max_by_key(|(k, m)| (m.goroutines.len(), std::cmp::Reverse(k.id())))
            .map(|(k, _)| k.clone());
        if let Some(target) = target {
            if let Some(m) = members.remove(&key) {
                if let Some(t) = members.get_mut(&target) {
                    t.goroutines.extend(m.goroutines);
                }
            }
        }
    }
}

/// Every member receives (chan receive or select) and all of them have one
/// channel in common: workers of a pool waiting for jobs. Needs the channels
/// read from the target's memory for every member.
fn is_idle_pool(group: &Group, m: &Members) -> bool {
    if !group.class.is_receive_like(&group.state) || m.goroutines.len() < 2 {
        return false;
    }
    let mut common: Option<Vec<u64>> = None;
    for g in &m.goroutines {
        let Some(channels) = g.wait_channels.as_deref() else {
            return false;
        };
        common = Some(match common {
            None => channels.to_vec(),
            Some(c) => c.into_iter().filter(|ch| channels.contains(ch)).collect(),
        });
        if common.as_ref().is_some_and(Vec::is_empty) {
            return false;
        }
    }
    common.is_some_and(|c| !c.is_empty())
}

/// Time in the current wait (waiting) or since creation (others).
pub fn age_ns(g: &Goroutine, now_ns: u64) -> u64 {
    let since = match g.state {
        GoroutineState::Waiting => g.parked_since_ns.unwrap_or(g.first_seen_ns),
        _ => g.created_at_ns.unwrap_or(g.first_seen_ns),
    };
    now_ns.saturating_sub(since)
}

/// The start of [`age_ns`] is only a lower bound (before attach, unrecorded).
pub fn age_is_lower_bound(g: &Goroutine) -> bool {
    match g.state {
        GoroutineState::Waiting => g.parked_since_ns.is_none(),
        _ => g.created_at_ns.is_none(),
    }
}

/// Score, 0–100: size (up to 40: 10 per factor of ten goroutines), age (up
/// to 30: reaches it at six times `blocked_after`) and growth (up to 30:
/// reaches it at 60 per minute).
fn score(kind: SuspectKind, count: u64, oldest_ns: u64, growth: f64, rules: &Rules) -> u32 {
    let size = (10.0 * (count.max(1) as f64).log10()).min(40.0);
    let age = match kind {
        SuspectKind::Growing => 0.0,
        _ => {
            let full = 6.0 * rules.blocked_after.as_secs_f64();
            30.0 * (oldest_ns as f64 / 1e9 / full).min(1.0)
        }
    };
    let growth = 30.0 * (growth.max(0.0) / 60.0).min(1.0);
    (size + age + growth).round().clamp(0.0, 100.0) as u32
}

fn evidence(kind: SuspectKind, group: &Group, count: u64, growth: f64) -> String {
    let site = group
        .site
        .as_ref()
        .map_or_else(|| "an unknown site".to_string(), site_label);
    let (goroutines, have) = if count == 1 {
        ("goroutine", "has")
    } else {
        ("goroutines", "have")
    };
    let age = human_duration(group.oldest_age_ns);
    let bound = if group.ages_are_lower_bounds {
        "at least "
    } else {
        "up to "
    };
    let mut line = match kind {
        SuspectKind::Backlog => format!(
            "{} {goroutines} created at {site} were already waiting on {} when the tracer attached (for {bound}{age})",
            thousands(count),
            group.state
        ),
        _ => format!(
            "{} {goroutines} created at {site} {have} been waiting on {} for {bound}{age}",
            thousands(count),
            group.state
        ),
    };
    if growth >= 1.0 {
        line.push_str(&format!("; {growth:+.0}/min"));
    }
    line
}

fn state_phrase(state: &str) -> String {
    match state {
        "running" | "runnable" => state.to_string(),
        "syscall" => "in a system call".into(),
        other => format!("waiting on {other}"),
    }
}

/// `dir/file.go:line`, the way Go developers name a line.
pub fn site_label(site: &SourceLocation) -> String {
    match (&site.file, site.line) {
        (Some(file), Some(line)) => {
            let mut parts = file.rsplit('/');
            let base = parts.next().unwrap_or(file);
            match parts.next() {
                Some(dir) if !dir.is_empty() => format!("{dir}/{base}:{line}"),
                _ => format!("{base}:{line}"),
            }
        }
        _ => site.function.clone(),
    }
}

/// `1,204`
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `950ms`, `42s`, `6m12s`, `3h05m`, `2d04h`.
pub fn human_duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{}ms", ns / 1_000_000),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Members as `(age_ns, goid)` → the oldest one (the lowest goid among
/// equals) and the median age; `((0, 0), 0)` for none.
fn oldest_and_median(ages: &mut [(u64, u64)]) -> ((u64, u64), u64) {
    let Some(oldest) = ages
        .iter()
        .copied()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
    else {
        return ((0, 0), 0);
    };
    let mid = ages.len() / 2;
    let median = ages.select_nth_unstable(mid).1 .0;
    (oldest, median)
}

/// A growth rate as shown: one decimal.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn seconds(ns: u64) -> f64 {
    (ns as f64 / 1e9 * 1000.0).round() / 1000.0
}

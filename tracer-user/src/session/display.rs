//! Where a session's picture goes: lines on stdout (human or JSON documents)
//! or the dashboard, and the data the dashboard asks for beyond the
//! analysis (the focused group's members, history and example timeline; a
//! timer or context group's history).

use std::{io::Write, sync::Arc};

use crate::{
    model::{GoroutineTable, TimelineEntry, Totals, MAX_WATCHED},
    report::{human_line, SnapshotContext, Symbols},
    suspects::{age_is_lower_bound, age_ns, site_label, Analysis, SuspectEngine},
    tui::{self, App, FocusDetail, InputReader, MemberRow, Terminal, Timeline},
};

/// Members of a group listed in the dashboard when it is expanded.
const MEMBERS_SHOWN: usize = 1000;

pub enum Display {
    Lines {
        json: bool,
        previous: Option<Totals>,
    },
    Dashboard(Box<Dashboard>),
    /// Nothing shown (`report --pid` records, then reports).
    Quiet,
}

/// Fields drop in order: the input thread stops before the terminal is
/// given back.
pub struct Dashboard {
    pub app: App,
    pub input: InputReader,
    terminal: Terminal,
    /// The latest analysis, reused when the focus changes between ticks.
    analysis: Arc<Analysis>,
    focus: Option<u64>,
    /// The log level before the dashboard took the terminal.
    log_level: log::LevelFilter,
}

impl Dashboard {
    /// Takes over the terminal. Log messages would scribble over the
    /// picture, so logging is off until [`Dashboard::close`].
    pub fn open(info: tui::TargetInfo, no_color: bool) -> std::io::Result<Self> {
        let terminal = Terminal::start()?;
        let input = InputReader::start()?;
        let log_level = log::max_level();
        log::set_max_level(log::LevelFilter::Off);
        Ok(Dashboard {
            app: App::new(info, tui::Style::from_env(no_color)),
            input,
            terminal,
            analysis: Arc::default(),
            focus: None,
            log_level,
        })
    }

    /// Gives the terminal back, in its original state.
    pub fn close(self) -> std::io::Result<()> {
        log::set_max_level(self.log_level);
        let Dashboard {
            input,
            mut terminal,
            ..
        } = self;
        drop(input);
        terminal.restore()
    }

    pub fn draw(&mut self) -> std::io::Result<()> {
        self.terminal.draw(&mut self.app)
    }

    /// Feeds the app a frame built from the current model. With `analysis`,
    /// a new tick; without, the last analysis again (the focus changed).
    pub fn update(
        &mut self,
        analysis: Option<Arc<Analysis>>,
        table: &GoroutineTable,
        engine: &SuspectEngine,
        ctx: &SnapshotContext<'_>,
    ) {
        if let Some(analysis) = analysis {
            self.analysis = analysis;
        }
        self.focus = self.app.focus();
        let focus = self.focus.and_then(|id| {
            focus_detail(id, &self.analysis, table, engine, ctx.symbols, ctx.now_ns)
        });
        self.app.update(tui::Frame {
            now_ns: ctx.now_ns,
            elapsed_ns: ctx.now_ns.saturating_sub(ctx.attached_at_ns),
            totals: table.totals(),
            probes: ctx.probes,
            process: ctx.process,
            analysis: Arc::clone(&self.analysis),
            focus,
        });
    }

    /// True when the app now wants details of another group than the last
    /// frame carried.
    pub fn focus_changed(&self) -> bool {
        self.app.focus() != self.focus
    }

    /// Goroutines whose timelines the dashboard may show.
    pub fn examples(&self) -> Vec<u64> {
        let focused = self
            .app
            .focus()
            .and_then(|id| self.analysis.groups.iter().find(|g| g.id == id))
            .map(|g| g.example_goid);
        focused
            .into_iter()
            .chain(self.analysis.suspects.iter().map(|s| s.example_goid))
            .take(MAX_WATCHED)
            .collect()
    }
}

impl Display {
    /// Shows one tick: prints a document/line, or updates and redraws the
    /// dashboard. Returns `false` when stdout is closed.
    pub fn tick(
        &mut self,
        analysis: Analysis,
        table: &mut GoroutineTable,
        engine: &SuspectEngine,
        ctx: &SnapshotContext<'_>,
    ) -> std::io::Result<bool> {
        match self {
            Display::Lines { json, previous } => {
                let snapshot = ctx.snapshot(table, &analysis);
                let mut out = std::io::stdout().lock();
                let written = if *json {
                    serde_json::to_writer(&mut out, &snapshot)
                        .map_err(std::io::Error::from)
                        .and_then(|()| writeln!(out))
                } else {
                    writeln!(out, "{}", human_line(&snapshot, previous.as_ref()))
                };
                *previous = Some(snapshot.totals);
                Ok(written.and_then(|()| out.flush()).is_ok())
            }
            Display::Quiet => Ok(true),
            Display::Dashboard(dashboard) => {
                dashboard.update(Some(Arc::new(analysis)), table, engine, ctx);
                table.watch(&dashboard.examples());
                dashboard.draw()?;
                Ok(true)
            }
        }
    }
}

fn focus_detail(
    id: u64,
    analysis: &Analysis,
    table: &GoroutineTable,
    engine: &SuspectEngine,
    symbols: &dyn Symbols,
    now_ns: u64,
) -> Option<FocusDetail> {
    let history = || {
        engine
            .history(id)
            .map(|h| h.samples().collect())
            .unwrap_or_default()
    };
    // A timer or context group: its pending or retained count over time.
    let timers = &analysis.timers;
    let count = (timers.timers.iter().find(|t| t.id == id)).map(|t| t.pending);
    let count = count.or_else(|| {
        let context = timers.contexts.iter().find(|c| c.id == id);
        context.map(|c| c.retained)
    });
    if let Some(count) = count {
        return Some(FocusDetail {
            group: id,
            history: history(),
            members: Vec::new(),
            members_total: count,
            example: None,
        });
    }
    let group = analysis.groups.iter().find(|g| g.id == id)?;
    let members = group
        .goids
        .iter()
        .filter_map(|&goid| table.get(goid))
        .take(MEMBERS_SHOWN)
        .map(|g| MemberRow {
            goid: g.goid,
            state: group.state.clone(),
            age_ns: age_ns(g, now_ns),
            age_is_lower_bound: age_is_lower_bound(g),
            wake_count: g.wake_count,
            parent_goid: g.parent_goid,
            origin: g.origin,
        })
        .collect();
    let example = table.timeline(group.example_goid).map(|entries| Timeline {
        goid: group.example_goid,
        entries: entries
            .map(|(ts, entry)| (ts, describe(entry, symbols)))
            .collect(),
    });
    Some(FocusDetail {
        group: id,
        history: history(),
        members,
        members_total: group.count,
        example,
    })
}

fn describe(entry: TimelineEntry, symbols: &dyn Symbols) -> String {
    match entry {
        TimelineEntry::Created { parent, gopc } => {
            let site = site_label(&symbols.creation_site(gopc));
            match parent {
                Some(p) => format!("created by goroutine {p} at {site}"),
                None => format!("created at {site}"),
            }
        }
        TimelineEntry::FirstSeen => "found, created before the tracer attached".into(),
        TimelineEntry::Parked { reason } => format!("parked: {}", symbols.wait_reason(reason)),
        TimelineEntry::Woken { waker: Some(w) } => format!("woken by goroutine {w}"),
        TimelineEntry::Woken { waker: None } => "woken by the runtime".into(),
        TimelineEntry::Spawned { child } => format!("started goroutine {child}"),
        TimelineEntry::Exited => "exited".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{unknown, SourceLocation};
    use crate::suspects::Rules;
    use crate::tui::fixtures::{self, DEADLINES, LOOKUP, TICKS};

    struct NoSymbols;

    impl Symbols for NoSymbols {
        fn creation_site(&self, pc: u64) -> SourceLocation {
            unknown(pc)
        }
        fn stack(&self, _: &[u64]) -> Vec<SourceLocation> {
            Vec::new()
        }
        fn function(&self, _: u64) -> Option<String> {
            None
        }
        fn wait_reason(&self, code: u8) -> String {
            code.to_string()
        }
    }

    #[test]
    fn a_timer_or_context_group_in_focus_gets_its_count_and_no_members() {
        let analysis = Analysis {
            timers: fixtures::timer_analysis(TICKS),
            ..Analysis::default()
        };
        let table = GoroutineTable::new();
        let engine = SuspectEngine::new(Rules::default());
        let focus = |id| focus_detail(id, &analysis, &table, &engine, &NoSymbols, 0);
        let timer = focus(DEADLINES).expect("a timer group");
        assert_eq!((timer.group, timer.members_total), (DEADLINES, 9_876));
        assert!(timer.members.is_empty() && timer.example.is_none());
        let context = focus(LOOKUP).expect("a context group");
        assert_eq!(context.members_total, 9_876, "its retained contexts");
        assert_eq!(focus(0x5eed), None);
    }
}

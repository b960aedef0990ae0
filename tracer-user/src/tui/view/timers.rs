//! Timers: every timer group (kind × creation site), sortable and
//! filterable; the selected group's pane shows all its counters and its
//! pending count over time.

use ratatui::{
    layout::Rect,
    text::{Line, Span},
    widgets::{Cell, Row, Table},
};

use super::details::{history_lines, suspect_lines};
use super::{
    column_widths, fact_items, fact_lines, fact_spans, fit_columns, list_header, number_cell,
    placeholder, render_table_and_pane, timers_block, ColumnLayout, UNTRACED,
};
use crate::suspects::timers::{TimerGroup, TimerKind};
use crate::suspects::{human_duration, site_label, thousands, Suspect};
use crate::tui::app::{App, TimerColumn};
use crate::tui::text::{age_of, clip_site, growth, secs_to_ns, timer_site};
use crate::tui::theme::Theme;
use crate::tui::FocusDetail;

const fn column(
    column: TimerColumn,
    header: &'static str,
    width: u16,
    drop: u8,
) -> ColumnLayout<TimerColumn> {
    ColumnLayout {
        column,
        header,
        width,
        drop,
    }
}

/// At 80 columns reset and expired give way (the pane shows them).
const COLUMNS: [ColumnLayout<TimerColumn>; 10] = [
    column(TimerColumn::Kind, "kind", 12, 0),
    column(TimerColumn::Site, "site", 0, 0),
    column(TimerColumn::Pending, "pending", 8, 0),
    column(TimerColumn::Created, "created", 8, 7),
    column(TimerColumn::Fired, "fired", 8, 6),
    column(TimerColumn::Stopped, "stopped", 8, 5),
    column(TimerColumn::Reset, "reset", 6, 9),
    column(TimerColumn::Expired, "expired", 8, 8),
    column(TimerColumn::Oldest, "oldest", 7, 4),
    column(TimerColumn::Growth, "/min", 5, 3),
];

/// `dir/file.go:line` mostly fits.
const SITE_MIN: u16 = 15;

pub fn render(app: &mut App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let Some(analysis) = app.analysis() else {
        placeholder(t, f, area, "Waiting for the first update…");
        return;
    };
    let total = analysis.timers.timers.len();
    let traced = analysis.timers.traced;
    if total == 0 {
        let text = if traced {
            "No timers so far. A timer shows up here, grouped by kind and creation site, \
             when the target arms one: time.NewTimer, After, AfterFunc, NewTicker, Sleep, \
             or a context's deadline."
        } else {
            UNTRACED
        };
        placeholder(t, f, area, text);
        return;
    }
    let (columns, site_width) = fit_columns(&COLUMNS, area.width.saturating_sub(2), SITE_MIN);
    let groups = app.timer_rows();
    let rows: Vec<Row<'static>> = groups
        .iter()
        .map(|g| Row::new(columns.iter().map(|c| cell(c.column, g, site_width))))
        .collect();
    let width = (area.width as usize).saturating_sub(2).max(1);
    let pane = app
        .timers
        .expanded
        .and_then(|id| groups.iter().find(|g| g.id == id))
        .map(|g| {
            let lines = facts(t, g, app.suspect_of(g.id), app.focus_detail(g.id), width);
            (title(g), lines)
        });
    let n = rows.len();
    let table = Table::new(rows, column_widths(&columns))
        .header(list_header(t, &columns, &app.timers))
        .column_spacing(1)
        .row_highlight_style(t.selected())
        .block(timers_block(t, "Timers", (n, total), &app.timers, traced));
    app.page = render_table_and_pane(t, f, area, (table, n), &mut app.timers.rows.table, pane);
}

fn cell(column: TimerColumn, g: &TimerGroup, site_width: usize) -> Cell<'static> {
    match column {
        TimerColumn::Kind => Cell::from(g.kind.label()),
        TimerColumn::Site => Cell::from(clip_site(&timer_site(g), site_width)),
        TimerColumn::Pending => number_cell(thousands(g.pending)),
        TimerColumn::Created => number_cell(thousands(g.created)),
        TimerColumn::Fired => number_cell(thousands(g.fired)),
        TimerColumn::Stopped => number_cell(thousands(g.stopped)),
        TimerColumn::Reset => number_cell(thousands(g.reset)),
        TimerColumn::Expired => number_cell(thousands(g.expired)),
        TimerColumn::Oldest => number_cell(age_of(g.pending, g.oldest_pending_s)),
        TimerColumn::Growth => number_cell(growth(g.growth_per_min)),
    }
}

/// ` ctx deadline · api/handler.go:61 `
pub(super) fn title(g: &TimerGroup) -> String {
    format!(" {} · {} ", g.kind.label(), timer_site(g))
}

fn duration(secs: f64) -> String {
    human_duration(secs_to_ns(secs))
}

/// Everything known of a timer group, for its pane and Details: where,
/// how many and since when, every counter, what the Go runtime does with
/// such timers, the pending count over time, and its suspect.
pub(super) fn facts(
    t: Theme,
    g: &TimerGroup,
    suspect: Option<&Suspect>,
    focus: Option<&FocusDetail>,
    width: usize,
) -> Vec<Line<'static>> {
    let created_at = match (&g.site, g.kind) {
        (Some(site), _) => format!("{} in {}", site_label(site), site.function),
        (None, TimerKind::Sleep) => "time.Sleep, in any goroutine".into(),
        (None, _) => "unknown: armed before the tracer attached".into(),
    };
    let mut lines = fact_lines(t, "created at", &created_at, width);
    let mut pending = vec![
        vec![Span::styled(thousands(g.pending), t.title())],
        vec![
            Span::styled("oldest ", t.label()),
            Span::raw(age_of(g.pending, g.oldest_pending_s)),
        ],
        vec![
            Span::styled("growth ", t.label()),
            Span::raw(format!("{}/min", growth(g.growth_per_min))),
        ],
        vec![
            Span::styled("delay ", t.label()),
            Span::raw(duration(g.delay_s)),
        ],
    ];
    if g.period_s > 0.0 {
        pending.push(vec![
            Span::styled("period ", t.label()),
            Span::raw(duration(g.period_s)),
        ]);
    }
    lines.extend(fact_spans(t, "pending", pending, width));
    let counts = [
        ("created", g.created),
        ("fired", g.fired),
        ("stopped", g.stopped),
        ("reset", g.reset),
        ("expired", g.expired),
        ("collected by the GC", g.collected),
        ("armed before attach", g.before_attach),
    ]
    .map(|(what, n)| format!("{what} {}", thousands(n)));
    lines.extend(fact_items(t, "counts", &counts, width));
    if g.kind == TimerKind::Ticker && g.orphaned > 0 {
        let orphaned = format!(
            "{} still armed, their creating goroutine exited",
            thousands(g.orphaned)
        );
        lines.extend(fact_lines(t, "orphaned", &orphaned, width));
    }
    if g.channel_timers {
        lines.extend(fact_lines(
            t,
            "chan timers",
            "Go ≥1.23: collected by the GC when unreferenced: not a leak",
            width,
        ));
    }
    if g.kind == TimerKind::ContextDeadline {
        lines.extend(fact_lines(
            t,
            "note",
            "one per live context with a deadline: see Contexts (5)",
            width,
        ));
    }
    match focus {
        Some(detail) => history_lines(t, "Pending", &detail.history, width, &mut lines),
        None => {
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                "The pending count over time arrives with the next update…",
                t.dim(),
            ));
        }
    }
    if let Some(s) = suspect {
        lines.push(Line::raw(""));
        suspect_lines(t, s, width, &mut lines);
    }
    lines
}

//! Contexts: every group of cancelable contexts (kind × creation site),
//! sortable and filterable; the selected group's pane shows who cancelled
//! them and how many are retained (kept by a cancelable parent or a
//! deadline timer: the ones that can leak) over time.

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
use crate::suspects::timers::ContextGroup;
use crate::suspects::{human_duration, site_label, thousands, Suspect};
use crate::tui::app::{App, ContextColumn};
use crate::tui::text::{age_of, clip_site, context_site, growth, secs_to_ns};
use crate::tui::theme::Theme;
use crate::tui::FocusDetail;

const fn column(
    column: ContextColumn,
    header: &'static str,
    width: u16,
    drop: u8,
) -> ColumnLayout<ContextColumn> {
    ColumnLayout {
        column,
        header,
        width,
        drop,
    }
}

/// At 80 columns the breakdown of cancellations, the created count and the
/// deadline give way (the pane shows them).
const COLUMNS: [ColumnLayout<ContextColumn>; 12] = [
    column(ContextColumn::Kind, "kind", 12, 0),
    column(ContextColumn::Site, "site", 0, 0),
    column(ContextColumn::Live, "live", 7, 0),
    column(ContextColumn::Retained, "retained", 9, 0),
    column(ContextColumn::Created, "created", 8, 7),
    column(ContextColumn::Cancelled, "cancelled", 10, 5),
    column(ContextColumn::ByCaller, "by caller", 10, 8),
    column(ContextColumn::ByParent, "by parent", 10, 10),
    column(ContextColumn::ByDeadline, "by deadline", 12, 9),
    column(ContextColumn::Oldest, "oldest", 7, 3),
    column(ContextColumn::Deadline, "deadline", 9, 6),
    column(ContextColumn::Growth, "/min", 5, 2),
];

/// `dir/file.go:line` mostly fits.
const SITE_MIN: u16 = 15;

pub fn render(app: &mut App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let Some(analysis) = app.analysis() else {
        placeholder(t, f, area, "Waiting for the first update…");
        return;
    };
    let total = analysis.timers.contexts.len();
    let traced = analysis.timers.traced;
    if total == 0 {
        let text = if traced {
            "No contexts so far. Cancelable contexts show up here, grouped by kind and \
             creation site, when the target creates one: context.WithCancel, WithTimeout, \
             WithDeadline, AfterFunc."
        } else {
            UNTRACED
        };
        placeholder(t, f, area, text);
        return;
    }
    let (columns, site_width) = fit_columns(&COLUMNS, area.width.saturating_sub(2), SITE_MIN);
    let groups = app.context_rows();
    let rows: Vec<Row<'static>> = groups
        .iter()
        .map(|c| Row::new(columns.iter().map(|col| cell(col.column, c, site_width))))
        .collect();
    let width = (area.width as usize).saturating_sub(2).max(1);
    let pane = app
        .contexts
        .expanded
        .and_then(|id| groups.iter().find(|c| c.id == id))
        .map(|c| {
            let lines = facts(t, c, app.suspect_of(c.id), app.focus_detail(c.id), width);
            (title(c), lines)
        });
    let n = rows.len();
    let table = Table::new(rows, column_widths(&columns))
        .header(list_header(t, &columns, &app.contexts))
        .column_spacing(1)
        .row_highlight_style(t.selected())
        .block(timers_block(
            t,
            "Contexts",
            (n, total),
            &app.contexts,
            traced,
        ));
    app.page = render_table_and_pane(t, f, area, (table, n), &mut app.contexts.rows.table, pane);
}

fn cell(column: ContextColumn, c: &ContextGroup, site_width: usize) -> Cell<'static> {
    match column {
        ContextColumn::Kind => Cell::from(c.kind.label()),
        ContextColumn::Site => Cell::from(clip_site(&context_site(c), site_width)),
        ContextColumn::Live => number_cell(thousands(c.live)),
        ContextColumn::Retained => number_cell(thousands(c.retained)),
        ContextColumn::Created => number_cell(thousands(c.created)),
        ContextColumn::Cancelled => number_cell(thousands(c.cancelled)),
        ContextColumn::ByCaller => number_cell(thousands(c.by_caller)),
        ContextColumn::ByParent => number_cell(thousands(c.by_parent)),
        ContextColumn::ByDeadline => number_cell(thousands(c.by_deadline)),
        ContextColumn::Oldest => number_cell(age_of(c.retained, c.oldest_live_s)),
        ContextColumn::Deadline => number_cell(c.deadline_s.map_or_else(|| "-".into(), duration)),
        ContextColumn::Growth => number_cell(growth(c.growth_per_min)),
    }
}

/// ` WithTimeout · api/handler.go:61 `
pub(super) fn title(c: &ContextGroup) -> String {
    format!(" {} · {} ", c.kind.label(), context_site(c))
}

fn duration(secs: f64) -> String {
    human_duration(secs_to_ns(secs))
}

/// Everything known of a context group, for its pane and Details: where,
/// how many are live and retained and since when, who cancelled the
/// others, the retained count over time, and its suspect.
pub(super) fn facts(
    t: Theme,
    c: &ContextGroup,
    suspect: Option<&Suspect>,
    focus: Option<&FocusDetail>,
    width: usize,
) -> Vec<Line<'static>> {
    let created_at = match &c.site {
        Some(site) => format!("{} in {}", site_label(site), site.function),
        None => "unknown: created before the tracer attached".into(),
    };
    let mut lines = fact_lines(t, "created at", &created_at, width);
    let mut live = vec![
        vec![Span::raw(thousands(c.live))],
        vec![
            Span::styled("retained ", t.label()),
            Span::styled(thousands(c.retained), t.title()),
        ],
        vec![
            Span::styled("oldest ", t.label()),
            Span::raw(age_of(c.retained, c.oldest_live_s)),
        ],
        vec![
            Span::styled("growth ", t.label()),
            Span::raw(format!("{}/min", growth(c.growth_per_min))),
        ],
    ];
    if let Some(d) = c.deadline_s {
        live.push(vec![
            Span::styled("deadline ", t.label()),
            Span::raw(duration(d)),
        ]);
    }
    lines.extend(fact_spans(t, "live", live, width));
    let counts = [
        ("created", c.created),
        ("cancelled", c.cancelled),
        ("collected by the GC", c.collected),
    ]
    .map(|(what, n)| format!("{what} {}", thousands(n)));
    lines.extend(fact_items(t, "counts", &counts, width));
    let cancels = [
        ("by caller", c.by_caller),
        ("by parent", c.by_parent),
        ("by deadline", c.by_deadline),
        ("other", c.by_other),
    ]
    .map(|(who, n)| format!("{who} {}", thousands(n)));
    lines.extend(fact_items(t, "cancelled", &cancels, width));
    if c.created > 0 && c.retained > 0 && c.by_caller == 0 {
        let until = match c.deadline_s {
            Some(d) => format!("the {} deadline", duration(d)),
            None => "its parent is cancelled".into(),
        };
        let note = format!("cancel() never called: each stays until {until}");
        lines.extend(fact_lines(t, "note", &note, width));
    }
    let free = c.live.saturating_sub(c.retained);
    if free > 0 {
        let note = format!(
            "{} live but not retained (children of Background or WithoutCancel, no deadline): \
             collected by the GC when unreferenced, not a leak",
            thousands(free)
        );
        lines.extend(fact_lines(t, "note", &note, width));
    }
    match focus {
        Some(detail) => history_lines(t, "Retained", &detail.history, width, &mut lines),
        None => {
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                "The retained count over time arrives with the next update…",
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

//! Goroutines: every group (creation site × state × blocked-at stack),
//! sortable and filterable, one group expandable into its goroutines.

use ratatui::{
    layout::Rect,
    text::Line,
    widgets::{Cell, Row, Table},
};

use super::{
    column_widths, fit_columns, list_block, list_header, number_cell, placeholder, ColumnLayout,
};
use crate::model::Origin;
use crate::suspects::thousands;
use crate::tui::app::{App, GoroutineColumn, GoroutineRow};
use crate::tui::text::{age, clip, clip_left, group_site, growth};

const fn column(
    column: GoroutineColumn,
    header: &'static str,
    width: u16,
) -> ColumnLayout<GoroutineColumn> {
    ColumnLayout {
        column,
        header,
        width,
        drop: 0,
    }
}

const COLUMNS: [ColumnLayout<GoroutineColumn>; 6] = [
    column(GoroutineColumn::Site, "site", 21),
    column(GoroutineColumn::State, "state", 16),
    column(GoroutineColumn::Count, "count", 7),
    column(GoroutineColumn::Oldest, "oldest", 7),
    column(GoroutineColumn::Growth, "/min", 5),
    column(GoroutineColumn::Function, "function", 0),
];

pub fn render(app: &mut App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let Some(analysis) = app.analysis() else {
        placeholder(t, f, area, "Waiting for the first update…");
        return;
    };
    let total = analysis.groups.len();
    let (columns, function_width) = fit_columns(&COLUMNS, area.width.saturating_sub(2), 1);
    let function_width = function_width.max(1);
    let header = list_header(t, &columns, &app.goroutines);
    let rows_data = app.goroutine_rows();
    let shown_groups = rows_data
        .iter()
        .filter(|r| matches!(r, GoroutineRow::Group(_)))
        .count();
    let rows: Vec<Row> = rows_data
        .iter()
        .map(|row| match row {
            GoroutineRow::Group(g) => {
                let marker = if app.goroutines.expanded == Some(g.id) {
                    "▾ "
                } else {
                    "▸ "
                };
                let cells = vec![
                    Cell::from(format!("{marker}{}", clip(&group_site(g), 19))),
                    Cell::from(g.state.clone()),
                    number_cell(thousands(g.count)),
                    number_cell(age(g.oldest_age_ns, g.ages_are_lower_bounds)),
                    number_cell(growth(g.growth_per_min)),
                    Cell::from(clip_left(
                        g.start_function.as_deref().unwrap_or("?"),
                        function_width,
                    )),
                ];
                let row = Row::new(cells);
                if g.runtime_owned {
                    row.style(t.dim())
                } else {
                    row
                }
            }
            GoroutineRow::Member { row: m, last } => {
                let branch = if *last { "└" } else { "├" };
                let mut about = match m.parent_goid {
                    Some(parent) => vec![format!("by g{parent}")],
                    None => Vec::new(),
                };
                about.push(match m.wake_count {
                    1 => "1 wake".to_string(),
                    n => format!("{} wakes", thousands(n)),
                });
                match m.origin {
                    Origin::Traced => {}
                    Origin::Snapshot => about.push("at attach".into()),
                    Origin::PreAttach => about.push("pre-attach".into()),
                    Origin::Read => about.push("found by a read".into()),
                }
                let about = about.join(" · ");
                Row::new(vec![
                    Cell::from(format!("  {branch} goroutine {}", m.goid)),
                    Cell::from(m.state.clone()),
                    Cell::from(""),
                    number_cell(age(m.age_ns, m.age_is_lower_bound)),
                    Cell::from(""),
                    Cell::from(clip(&about, function_width)),
                ])
            }
            GoroutineRow::Note(hidden) => {
                let text = match hidden {
                    Some(n) => format!("  └ … {} more", thousands(*n)),
                    None => "  └ reading the goroutines…".to_string(),
                };
                Row::new(vec![Cell::from(Line::styled(text, t.dim()))])
            }
        })
        .collect();
    let block = list_block(t, "Groups", shown_groups, total, &app.goroutines);
    let table = Table::new(rows, column_widths(&columns))
        .header(header)
        .column_spacing(1)
        .row_highlight_style(t.selected())
        .block(block);
    app.page = (area.height as usize).saturating_sub(3);
    f.render_stateful_widget(table, area, &mut app.goroutines.rows.table);
}

//! Goroutines: every group (creation site × state × blocked-at stack),
//! sortable and filterable, one group expandable into its goroutines.

use ratatui::{
    layout::{Constraint, Rect},
    text::{Line, Span},
    widgets::{Cell, Row, Table},
};

use super::{panel, placeholder};
use crate::model::Origin;
use crate::suspects::thousands;
use crate::tui::app::{App, GoroutineRow, SortColumn};
use crate::tui::text::{age, clip, clip_left, group_site, growth};

const COLUMNS: [(&str, SortColumn, u16); 6] = [
    ("site", SortColumn::Site, 21),
    ("state", SortColumn::State, 16),
    ("count", SortColumn::Count, 7),
    ("oldest", SortColumn::Oldest, 7),
    ("/min", SortColumn::Growth, 5),
    ("function", SortColumn::Function, 0),
];

pub fn render(app: &mut App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let Some(analysis) = app.analysis() else {
        placeholder(t, f, area, "Waiting for the first update…");
        return;
    };
    let total = analysis.groups.len();
    let fixed: u16 = COLUMNS.iter().map(|c| c.2).sum::<u16>() + COLUMNS.len() as u16 - 1;
    let function_width = (area.width.saturating_sub(2 + fixed) as usize).max(1);
    let arrow = if app.reverse { "▲" } else { "▼" };
    let header = Row::new(COLUMNS.iter().map(|(name, column, _)| {
        let right = matches!(
            column,
            SortColumn::Count | SortColumn::Oldest | SortColumn::Growth
        );
        let label = if *column == app.sort {
            format!("{name}{arrow}")
        } else {
            name.to_string()
        };
        let line = Line::from(label);
        Cell::from(if right { line.right_aligned() } else { line })
    }))
    .style(t.header());
    let rows_data = app.goroutine_rows();
    let shown_groups = rows_data
        .iter()
        .filter(|r| matches!(r, GoroutineRow::Group(_)))
        .count();
    let rows: Vec<Row> = rows_data
        .iter()
        .map(|row| match row {
            GoroutineRow::Group(g) => {
                let marker = if app.expanded == Some(g.id) {
                    "▾ "
                } else {
                    "▸ "
                };
                let cells = vec![
                    Cell::from(format!("{marker}{}", clip(&group_site(g), 19))),
                    Cell::from(g.state.clone()),
                    Cell::from(Line::from(thousands(g.count)).right_aligned()),
                    Cell::from(
                        Line::from(age(g.oldest_age_ns, g.ages_are_lower_bounds)).right_aligned(),
                    ),
                    Cell::from(Line::from(growth(g.growth_per_min)).right_aligned()),
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
                    Cell::from(Line::from(age(m.age_ns, m.age_is_lower_bound)).right_aligned()),
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
    let widths = COLUMNS.map(|(_, _, w)| {
        if w == 0 {
            Constraint::Fill(1)
        } else {
            Constraint::Length(w)
        }
    });
    let mut title = format!(" Groups ({shown_groups}");
    if shown_groups != total {
        title.push_str(&format!(" of {total}"));
    }
    title.push_str(&format!("), by {} ", app.sort.name()));
    let mut block = panel(t, title);
    if !app.filter.is_empty() {
        block = block.title(Line::from(vec![
            Span::styled(" filter: ", t.key()),
            Span::raw(format!("{} ", app.filter)),
        ]));
    }
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(t.selected())
        .block(block);
    app.page = (area.height as usize).saturating_sub(3);
    f.render_stateful_widget(table, area, &mut app.rows.table);
}

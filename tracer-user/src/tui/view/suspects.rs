//! Suspects: the ranked list, two lines a suspect (the figures, then the
//! evidence), and the selected suspect's whole evidence below.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span, Text},
    widgets::{Cell, Paragraph, Row, Table, Wrap},
};

use super::{panel, placeholder};
use crate::suspects::{thousands, Suspect, SuspectKind};
use crate::tui::app::App;
use crate::tui::text::{age, cell, cell_right, clip, growth, optional_site, secs_to_ns};
use crate::tui::theme::kind_name;

/// `score  kind     count  growth/min  oldest   site`
fn columns(score: &str, kind: &str, count: &str, growth: &str, oldest: &str, site: &str) -> String {
    format!(
        "{}  {}  {}  {}  {}  {}",
        cell_right(score, 5),
        cell(kind, 7),
        cell_right(count, 7),
        cell_right(growth, 10),
        cell_right(oldest, 8),
        site
    )
}

pub fn render(app: &mut App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let Some(analysis) = app.analysis() else {
        placeholder(t, f, area, "Waiting for the first update…");
        return;
    };
    if analysis.suspects.is_empty() {
        placeholder(
            t,
            f,
            area,
            "No leak suspects so far. A group shows up here when it waits on a channel, \
             select or lock for too long, when a large group was already blocked at attach, \
             when a creation site keeps growing, or when the timers or contexts of one site \
             pile up.",
        );
        return;
    }
    let box_height = if area.height >= 14 { 7 } else { 0 };
    let [list, selected] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(box_height)]).areas(area);
    let inner_width = (list.width as usize).saturating_sub(2);
    let header = Row::new([Cell::from(columns(
        "score",
        "kind",
        "count",
        "growth/min",
        "oldest",
        "creation site",
    ))])
    .style(t.header());
    let rows: Vec<Row> = analysis
        .suspects
        .iter()
        .map(|s| {
            let rest = columns(
                "",
                "",
                &thousands(s.count),
                &growth(s.growth_per_min),
                &age(secs_to_ns(s.oldest_age_s), s.ages_are_lower_bounds),
                &optional_site(s.creation_site.as_ref()),
            );
            let text = Text::from(vec![
                Line::from(vec![
                    Span::raw(format!("{}  ", cell_right(&s.score.to_string(), 5))),
                    Span::styled(cell(kind_name(s.kind), 7), t.kind(s.kind)),
                    // `rest` starts with the empty score and kind columns.
                    Span::raw(rest.chars().skip(14).collect::<String>()),
                ]),
                Line::styled(
                    format!(
                        "       {}",
                        clip(&s.evidence, inner_width.saturating_sub(7))
                    ),
                    t.dim(),
                ),
            ]);
            Row::new([Cell::from(text)]).height(2)
        })
        .collect();
    let table = Table::new(rows, [Constraint::Fill(1)])
        .header(header)
        .row_highlight_style(t.selected())
        .block(panel(
            t,
            format!(
                " Leak suspects ({}), highest score first ",
                analysis.suspects.len()
            ),
        ));
    let selected_suspect = app.selected_suspect().cloned();
    app.page = (list.height as usize).saturating_sub(3);
    f.render_stateful_widget(table, list, &mut app.suspects.table);
    if let Some(s) = selected_suspect {
        render_selected(app, &s, f, selected);
    }
}

fn render_selected(app: &App, s: &Suspect, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let mut facts = vec![
        Span::styled("state ", t.label()),
        Span::raw(s.state.clone()),
    ];
    if let Some(function) = &s.start_function {
        facts.push(Span::styled(" · function ", t.label()));
        facts.push(Span::raw(function.clone()));
    }
    facts.push(Span::styled(" · example goroutine ", t.label()));
    facts.push(Span::raw(s.example_goid.to_string()));
    let lines = vec![Line::raw(s.evidence.clone()), Line::from(facts)];
    let title = format!(
        " {} · score {} · {} ",
        kind_name(s.kind),
        s.score,
        optional_site(s.creation_site.as_ref())
    );
    let hint = match s.kind {
        SuspectKind::ContextLeak => " Enter: in Contexts ",
        SuspectKind::TimerLeak | SuspectKind::AfterInLoop | SuspectKind::TickerLeak => {
            " Enter: in Timers "
        }
        SuspectKind::Blocked | SuspectKind::Backlog | SuspectKind::Growing => " Enter: details ",
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(t, title).title_bottom(Line::styled(hint, t.dim()).right_aligned())),
        area,
    );
}

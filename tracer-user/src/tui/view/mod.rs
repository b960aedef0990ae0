//! Drawing: the header, tabs and footer around the current view, and the
//! help screen over it. Rendering reads the [`App`] and only writes table
//! scroll offsets and the page size back.

mod contexts;
mod details;
mod goroutines;
mod overview;
mod suspects;
mod timers;

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState},
};

use super::app::{App, Column, ListState, View};
use super::text::{clip, wrap};
use super::theme::Theme;
use crate::suspects::{human_duration, thousands};

pub fn render(app: &mut App, f: &mut ratatui::Frame) {
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    render_header(app, f, header);
    render_tabs(app, f, tabs);
    match app.view {
        View::Overview => overview::render(app, f, body),
        View::Suspects => suspects::render(app, f, body),
        View::Goroutines => goroutines::render(app, f, body),
        View::Timers => timers::render(app, f, body),
        View::Contexts => contexts::render(app, f, body),
        View::Details => details::render(app, f, body),
    }
    render_footer(app, f, footer);
    if app.help {
        render_help(app.theme, f, f.area());
    }
}

/// `tracer — pid N (binary) go1.26.6 — mode — attached 1m23s`, with a
/// PAUSED badge at the right. The mode goes first when space runs out.
fn render_header(app: &App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let width = area.width as usize;
    let info = &app.info;
    let attached = app
        .newest
        .as_ref()
        .or(app.shown.as_ref())
        .map(|frame| format!(" — attached {}", human_duration(frame.elapsed_ns)));
    let badge = app
        .paused()
        .then(|| format!(" PAUSED {} ago ", human_duration(app.frozen_for_ns())));
    let target = format!(" — pid {} ({}) {}", info.pid, info.binary, info.go_version);
    let attached = attached.unwrap_or_else(|| " — attaching…".into());
    let badge_len = badge.as_ref().map_or(0, |b| b.chars().count());
    if badge_len > 0 && width < badge_len + 6 {
        let badge = badge.unwrap_or_default();
        f.render_widget(
            Paragraph::new(Span::styled(badge.trim().to_string(), t.badge())),
            area,
        );
        return;
    }
    // What the text after "tracer" may use; the attach time is kept, the
    // target is cut, the mode only comes when there is room for it.
    let avail = width.saturating_sub(6 + badge_len + usize::from(badge_len > 0));
    let attached_len = attached.chars().count();
    let room = avail.saturating_sub(target.chars().count() + attached_len + 3);
    let mode = if room >= 12 {
        format!(" — {}", clip(&info.mode, room))
    } else {
        String::new()
    };
    let left = if avail >= attached_len + 12 {
        format!(
            "{}{attached}",
            clip(&format!("{target}{mode}"), avail - attached_len)
        )
    } else {
        clip(&format!("{target}{attached}"), avail)
    };
    let pad = width.saturating_sub(6 + left.chars().count() + badge_len);
    let mut spans = vec![
        Span::styled("tracer", t.title()),
        Span::styled(left, t.text()),
    ];
    if let Some(badge) = badge {
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(badge, t.badge()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_tabs(app: &App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let counts = app.analysis().map(|a| {
        (
            a.suspects.len(),
            a.groups.len(),
            a.timers.timers.len(),
            a.timers.contexts.len(),
        )
    });
    let suspects = counts.map(|c| c.0);
    // The most that fits: every count (groups named), every count, the
    // suspects' count only; then without the gaps between tabs.
    let labels = |detail: u8| -> Vec<String> {
        View::ALL
            .iter()
            .enumerate()
            .map(|(i, view)| {
                let count = counts.and_then(|(suspects, groups, timers, contexts)| {
                    let n = match view {
                        View::Suspects => return Some(format!(" ({suspects})")),
                        View::Goroutines if detail == 0 => {
                            return Some(format!(" ({} groups)", thousands(groups as u64)))
                        }
                        View::Goroutines => groups,
                        View::Timers => timers,
                        View::Contexts => contexts,
                        View::Overview | View::Details => return None,
                    };
                    (detail <= 1).then(|| format!(" ({})", thousands(n as u64)))
                });
                format!(" {} {}{} ", i + 1, view.title(), count.unwrap_or_default())
            })
            .collect()
    };
    let width = area.width as usize;
    let length = |labels: &[String], gap: usize| {
        labels.iter().map(|l| l.chars().count()).sum::<usize>() + gap * (labels.len() - 1)
    };
    let (labels, gap) = [(0, 1), (1, 1), (2, 1), (2, 0)]
        .into_iter()
        .map(|(detail, gap)| (labels(detail), gap))
        .find(|(labels, gap)| length(labels, *gap) <= width)
        .unwrap_or_else(|| (labels(2), 0));
    let mut spans = Vec::new();
    for (view, label) in View::ALL.iter().zip(labels) {
        let style = if *view == app.view {
            t.badge()
        } else if *view == View::Suspects && suspects.is_some_and(|n| n > 0) {
            t.warn()
        } else {
            t.label()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" ".repeat(gap)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `(key, what)` pairs of the footer.
fn footer_keys(app: &App) -> Vec<(&'static str, &'static str)> {
    let mut keys = match app.view {
        View::Overview => vec![("1-6/Tab", "views")],
        View::Suspects => vec![("↑↓", "move"), ("Enter", "details"), ("Tab", "next view")],
        View::Goroutines | View::Timers | View::Contexts => vec![
            ("→", "expand"),
            ("←", "fold"),
            ("d", "details"),
            ("/", "filter"),
            ("s/S", "sort"),
        ],
        View::Details => vec![("Esc", "back"), ("↑↓", "scroll"), ("Tab", "next view")],
    };
    keys.extend([
        ("p", if app.paused() { "resume" } else { "pause" }),
        ("?", "help"),
        ("q", "quit"),
    ]);
    keys
}

fn render_footer(app: &App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let line = if app.filter_editing {
        Line::from(vec![
            Span::styled(" filter: ", t.key()),
            Span::raw(format!("{}█", app.filter())),
            Span::styled("  Enter", t.key()),
            Span::raw(" apply "),
            Span::styled(" Esc", t.key()),
            Span::raw(" clear"),
        ])
    } else {
        let mut spans = Vec::new();
        for (key, what) in footer_keys(app) {
            spans.push(Span::styled(format!(" {key}"), t.key()));
            spans.push(Span::raw(format!(" {what} ")));
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(line), area);
}

const HELP: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("1 2 3", "Overview, Suspects, Goroutines"),
            ("4 5 6", "Timers, Contexts, Details"),
            ("Tab, Shift-Tab", "next, previous view"),
            ("p", "pause the picture / resume (tracing goes on)"),
            ("?", "this help (Esc closes it)"),
            ("q, Ctrl-C", "quit: remove the probes and exit"),
        ],
    ),
    (
        "Lists",
        &[
            ("↑ ↓, k j", "move the selection"),
            ("PgUp PgDn, Home End", "move by a page, to the top, the end"),
            ("Enter", "Suspects: the suspect's group, in its view"),
        ],
    ),
    (
        "Goroutines, Timers, Contexts",
        &[
            ("→, Enter / ←", "show the group's goroutines or pane / fold"),
            ("Enter (expanded), d", "details of the group"),
            ("/", "filter by site, kind, function or state"),
            ("Esc", "clear the filter, then fold (back to Suspects)"),
            ("s / S", "next sort column / reverse the order"),
        ],
    ),
    (
        "Details",
        &[("↑ ↓, PgUp PgDn", "scroll"), ("Esc", "back to the list")],
    ),
];

fn render_help(t: Theme, f: &mut ratatui::Frame, area: Rect) {
    let mut lines = Vec::new();
    for (section, keys) in HELP {
        lines.push(Line::styled(*section, t.title()));
        for (key, what) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {key:<20}"), t.key()),
                Span::raw(*what),
            ]));
        }
    }
    let height = (lines.len() as u16 + 2).min(area.height);
    let width = 72.min(area.width);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Span::styled(" Keys ", t.title()))
                .title_bottom(Line::styled(" ? or Esc closes ", t.dim()).right_aligned()),
        ),
        popup,
    );
}

/// A bordered panel with a styled title.
fn panel(t: Theme, title: String) -> Block<'static> {
    Block::bordered().title(Span::styled(title, t.title()))
}

/// How a list view draws one of its columns.
pub(super) struct ColumnLayout<C> {
    pub column: C,
    pub header: &'static str,
    /// 0: the column takes the room the others leave.
    pub width: u16,
    /// At narrow widths columns give way, the highest first; 0: never.
    pub drop: u8,
}

/// The columns that fit a table `inner` columns wide while the filling
/// column keeps at least `fill_min`, and the filling column's width.
pub(super) fn fit_columns<C>(
    columns: &[ColumnLayout<C>],
    inner: u16,
    fill_min: u16,
) -> (Vec<&ColumnLayout<C>>, usize) {
    let mut shown: Vec<&ColumnLayout<C>> = columns.iter().collect();
    loop {
        let gaps = (shown.len() as u16).saturating_sub(1);
        let fixed = shown.iter().map(|c| c.width).sum::<u16>() + gaps;
        let fill = inner.saturating_sub(fixed);
        let first_to_go = shown
            .iter()
            .enumerate()
            .filter(|(_, c)| c.drop > 0)
            .max_by_key(|(_, c)| c.drop)
            .map(|(i, _)| i);
        match first_to_go {
            Some(i) if fill < fill_min => {
                shown.remove(i);
            }
            _ => return (shown, fill as usize),
        }
    }
}

/// The constraints of the shown columns.
pub(super) fn column_widths<C>(columns: &[&ColumnLayout<C>]) -> Vec<Constraint> {
    columns
        .iter()
        .map(|c| match c.width {
            0 => Constraint::Fill(1),
            w => Constraint::Length(w),
        })
        .collect()
}

/// The header of a list: numbers right-aligned, the sort column marked
/// ▼ (▲ reversed).
pub(super) fn list_header<K, C: Column>(
    t: Theme,
    columns: &[&ColumnLayout<C>],
    list: &ListState<K, C>,
) -> Row<'static> {
    let arrow = if list.reverse { "▲" } else { "▼" };
    Row::new(columns.iter().map(|c| {
        let label = if c.column == list.sort {
            format!("{}{arrow}", c.header)
        } else {
            c.header.to_string()
        };
        let line = Line::from(label);
        Cell::from(if c.column.numeric() {
            line.right_aligned()
        } else {
            line
        })
    }))
    .style(t.header())
}

/// A number cell, right-aligned.
pub(super) fn number_cell(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).right_aligned())
}

/// `Groups (2 of 7), by count`, with the filter in a second title.
pub(super) fn list_block<K, C: Column>(
    t: Theme,
    noun: &str,
    shown: usize,
    total: usize,
    list: &ListState<K, C>,
) -> Block<'static> {
    let mut title = format!(" {noun} ({shown}");
    if shown != total {
        title.push_str(&format!(" of {total}"));
    }
    title.push_str(&format!("), by {} ", list.sort.name()));
    let mut block = panel(t, title);
    if !list.filter.is_empty() {
        block = block.title(Line::from(vec![
            Span::styled(" filter: ", t.key()),
            Span::raw(format!("{} ", list.filter)),
        ]));
    }
    block
}

/// What the Timers and Contexts views say while the timer and context
/// probes are not attached.
const UNTRACED: &str = "not traced now: the timer and context probes are not attached";

/// The Timers or Contexts table's block, marked while the probes are off.
pub(super) fn timers_block<K, C: Column>(
    t: Theme,
    noun: &str,
    (shown, total): (usize, usize),
    list: &ListState<K, C>,
    traced: bool,
) -> Block<'static> {
    let block = list_block(t, noun, shown, total, list);
    if traced {
        block
    } else {
        block.title_bottom(Line::styled(format!(" {UNTRACED} "), t.warn()).right_aligned())
    }
}

/// The width of the labels in front of facts.
const FACT_WIDTH: usize = 12;

/// A label padded to the facts' column.
pub(super) fn fact(label: &str) -> String {
    format!("{label:<FACT_WIDTH$}")
}

/// `label       text`, the text wrapped under itself to `width`.
pub(super) fn fact_lines(t: Theme, label: &str, text: &str, width: usize) -> Vec<Line<'static>> {
    wrap(text, width.saturating_sub(FACT_WIDTH))
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                Line::from(vec![Span::styled(fact(label), t.label()), Span::raw(l)])
            } else {
                Line::raw(format!("{}{l}", " ".repeat(FACT_WIDTH)))
            }
        })
        .collect()
}

/// A list's table with, under it, the pane of the group it expanded: the
/// pane takes what its lines need and leaves the table its rows (or half
/// the height, when the list is long). Returns the table's page size.
pub(super) fn render_table_and_pane(
    t: Theme,
    f: &mut ratatui::Frame,
    area: Rect,
    (table, rows): (Table<'static>, usize),
    state: &mut TableState,
    pane: Option<(String, Vec<Line<'static>>)>,
) -> usize {
    let pane_height = match &pane {
        Some((_, lines)) if area.height >= 8 => {
            let table_needs = rows as u16 + 3;
            let room = area.height.saturating_sub(table_needs).max(area.height / 2);
            (lines.len() as u16 + 2).min(room)
        }
        _ => 0,
    };
    let [list, below] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(pane_height)]).areas(area);
    f.render_stateful_widget(table, list, state);
    if let (Some((title, lines)), true) = (pane, pane_height > 0) {
        let hint = if lines.len() + 2 > pane_height as usize {
            " … Enter: all details "
        } else {
            " Enter: details "
        };
        f.render_widget(
            Paragraph::new(lines)
                .block(panel(t, title).title_bottom(Line::styled(hint, t.dim()).right_aligned())),
            below,
        );
    }
    (list.height as usize).saturating_sub(3)
}

/// `label       a · b · c`, wrapped between items, never inside one.
pub(super) fn fact_items(
    t: Theme,
    label: &str,
    items: &[String],
    width: usize,
) -> Vec<Line<'static>> {
    let items = items.iter().map(|i| vec![Span::raw(i.clone())]).collect();
    fact_spans(t, label, items, width)
}

/// [`fact_items`] with styled items.
pub(super) fn fact_spans(
    t: Theme,
    label: &str,
    items: Vec<Vec<Span<'static>>>,
    width: usize,
) -> Vec<Line<'static>> {
    let room = width.saturating_sub(FACT_WIDTH).max(1);
    let length = |spans: &[Span]| spans.iter().map(|s| s.width()).sum::<usize>();
    let mut lines: Vec<Vec<Span<'static>>> = Vec::new();
    for item in items {
        match lines.last_mut() {
            Some(line) if length(line) + 3 + length(&item) <= room => {
                line.push(Span::styled(" · ", t.label()));
                line.extend(item);
            }
            _ => lines.push(item),
        }
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, spans)| {
            let label = if i == 0 { fact(label) } else { fact("") };
            let mut line = vec![Span::styled(label, t.label())];
            line.extend(spans);
            Line::from(line)
        })
        .collect()
}

/// A dimmed line in the middle of an empty view.
fn placeholder(t: Theme, f: &mut ratatui::Frame, area: Rect, text: &str) {
    f.render_widget(
        Paragraph::new(Line::styled(text.to_string(), t.dim()))
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(Block::bordered()),
        area,
    );
}

//! Drawing: the header, tabs and footer around the current view, and the
//! help screen over it. Rendering reads the [`App`] and only writes table
//! scroll offsets and the page size back.

mod details;
mod goroutines;
mod overview;
mod suspects;

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph},
};

use super::app::{App, View};
use super::text::clip;
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
    let (suspects, groups) = app.analysis().map_or((None, None), |a| {
        (Some(a.suspects.len()), Some(a.groups.len()))
    });
    let mut spans = Vec::new();
    for (i, view) in View::ALL.iter().enumerate() {
        let count = match view {
            View::Suspects => suspects.map(|n| format!(" ({n})")),
            View::Goroutines => groups.map(|n| format!(" ({} groups)", thousands(n as u64))),
            _ => None,
        };
        let label = format!(" {} {}{} ", i + 1, view.title(), count.unwrap_or_default());
        let style = if *view == app.view {
            t.badge()
        } else if *view == View::Suspects && suspects.is_some_and(|n| n > 0) {
            t.warn()
        } else {
            t.label()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `(key, what)` pairs of the footer.
fn footer_keys(app: &App) -> Vec<(&'static str, &'static str)> {
    let mut keys = match app.view {
        View::Overview => vec![("1-4/Tab", "views")],
        View::Suspects => vec![("↑↓", "move"), ("Enter", "details"), ("Tab", "next view")],
        View::Goroutines => vec![
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
            Span::raw(format!("{}█", app.filter)),
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
            ("1 2 3 4", "Overview, Suspects, Goroutines, Details"),
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
            ("Enter", "Suspects: details of the selected suspect"),
        ],
    ),
    (
        "Goroutines",
        &[
            ("→, Enter / ←", "list the group's goroutines / fold them"),
            ("Enter (expanded), d", "details of the group"),
            ("/", "filter by site, function, state (Enter keeps)"),
            ("Esc", "clear the filter, then fold the group"),
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

/// A dimmed line in the middle of an empty view.
fn placeholder(t: Theme, f: &mut ratatui::Frame, area: Rect, text: &str) {
    f.render_widget(
        Paragraph::new(Line::styled(text.to_string(), t.dim()))
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(Block::bordered()),
        area,
    );
}

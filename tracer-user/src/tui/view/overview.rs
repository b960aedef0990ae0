//! Overview: the live count and its history, spawn and exit rates, pending
//! timers and live contexts with theirs, the target process, the tracer's
//! own health, and the top suspects.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Paragraph, Wrap},
};

use super::{panel, placeholder};
use crate::suspects::{human_duration, thousands};
use crate::tui::app::App;
use crate::tui::text::{bytes, fit, rate, sparkline, Scale};
use crate::tui::theme::{kind_name, Theme};
use crate::tui::Frame;

pub fn render(app: &App, f: &mut ratatui::Frame, area: Rect) {
    let Some(frame) = &app.shown else {
        placeholder(app.theme, f, area, "Waiting for the first update…");
        return;
    };
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [counts, chart] =
        Layout::horizontal([Constraint::Length(40), Constraint::Fill(1)]).areas(top);
    let [timers, tracer] =
        Layout::horizontal([Constraint::Length(40), Constraint::Fill(1)]).areas(middle);
    render_counts(app, frame, f, counts);
    render_chart(app, frame, f, chart);
    render_timers(app, frame, f, timers);
    render_tracer(app, frame, f, tracer);
    render_top_suspects(app, frame, f, bottom);
}

fn render_counts(app: &App, frame: &Frame, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let totals = &frame.totals;
    let samples: Vec<_> = app.history.until(frame.now_ns).collect();
    let (spawn_now, exit_now) = app.history.rates(frame.now_ns);
    // Rates in tenths per second, drawn on one scale.
    let tenths = |r: f64| (r * 10.0).round() as u64;
    let spawns: Vec<u64> = samples.iter().map(|s| tenths(s.spawn_per_s)).collect();
    let exits: Vec<u64> = samples.iter().map(|s| tenths(s.exit_per_s)).collect();
    let spark_width = (area.width as usize).saturating_sub(2 + 19);
    let (spawns, exits) = (fit(&spawns, spark_width), fit(&exits, spark_width));
    let top = spawns.iter().chain(&exits).copied().max().unwrap_or(0);
    let spark = |values: &[u64]| {
        sparkline(values, spark_width, 1, Scale::Zero(top))
            .0
            .concat()
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("live       ", t.label()),
            Span::styled(thousands(totals.live), t.title()),
        ]),
        Line::from(vec![
            Span::styled("spawn/s    ", t.label()),
            Span::raw(format!("{:<8}", rate(spawn_now))),
            Span::styled(spark(&spawns), t.chart()),
        ]),
        Line::from(vec![
            Span::styled("exit/s     ", t.label()),
            Span::raw(format!("{:<8}", rate(exit_now))),
            Span::styled(spark(&exits), t.chart()),
        ]),
        Line::from(vec![
            Span::styled("spawned    ", t.label()),
            Span::raw(thousands(totals.spawned)),
            Span::styled(" · exited ", t.label()),
            Span::raw(thousands(totals.exited)),
        ]),
        Line::from(vec![
            Span::styled("at attach  ", t.label()),
            Span::raw(format!(
                "{} read from memory",
                thousands(totals.snapshot_seeded)
            )),
        ]),
    ];
    f.render_widget(
        Paragraph::new(lines).block(panel(t, " Goroutines ".into())),
        area,
    );
}

fn render_chart(app: &App, frame: &Frame, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let samples: Vec<_> = app.history.until(frame.now_ns).collect();
    let span = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.ns > a.ns => format!(", last {}", human_duration(b.ns - a.ns)),
        _ => String::new(),
    };
    let width = (area.width as usize).saturating_sub(2);
    let height = (area.height as usize).saturating_sub(3);
    let live: Vec<u64> = samples.iter().map(|s| s.live).collect();
    let (rows, (min, max)) = sparkline(&fit(&live, width), width, height, Scale::MinMax);
    let mut lines: Vec<Line> = rows
        .into_iter()
        .map(|r| Line::styled(r, t.chart()))
        .collect();
    lines.push(Line::styled(
        format!(
            "now {} · min {} · max {}",
            thousands(frame.totals.live),
            thousands(min),
            thousands(max)
        ),
        t.dim(),
    ));
    f.render_widget(
        Paragraph::new(lines).block(panel(t, format!(" Live goroutines{span} "))),
        area,
    );
}

/// Pending timers and live contexts, each with its history on the same
/// time scale as the live goroutines' chart.
fn render_timers(app: &App, frame: &Frame, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let totals = &frame.analysis.timers.totals;
    let samples: Vec<_> = app.history.until(frame.now_ns).collect();
    let width = (area.width as usize).saturating_sub(2);
    let title = " Pending timers, live contexts ";
    if !frame.analysis.timers.traced {
        let text = "Not traced now: the timer and context probes are not attached.";
        f.render_widget(
            Paragraph::new(Line::styled(text, t.dim()))
                .wrap(Wrap { trim: true })
                .block(panel(t, title.into())),
            area,
        );
        return;
    }
    let mut lines = Vec::new();
    for (what, now, series) in [
        (
            "timers",
            totals.pending,
            samples.iter().map(|s| s.timers).collect::<Vec<_>>(),
        ),
        (
            "contexts",
            totals.contexts_live,
            samples.iter().map(|s| s.contexts).collect(),
        ),
    ] {
        let (rows, (min, max)) = sparkline(&fit(&series, width), width, 1, Scale::MinMax);
        lines.push(Line::from(vec![
            Span::styled(format!("{what} "), t.label()),
            Span::styled(thousands(now), t.title()),
            Span::styled(
                format!("  min {} · max {}", thousands(min), thousands(max)),
                t.dim(),
            ),
        ]));
        lines.extend(rows.into_iter().map(|r| Line::styled(r, t.chart())));
    }
    f.render_widget(Paragraph::new(lines).block(panel(t, title.into())), area);
}

/// The target's memory and threads, and the tracer's health and mode (the
/// header names the target and the time since attach).
fn render_tracer(app: &App, frame: &Frame, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let totals = &frame.totals;
    let unknown = || "?".to_string();
    let flagged = |n: u64| {
        if n > 0 {
            t.warn()
        } else {
            t.text()
        }
    };
    let mut process = vec![
        Span::styled("RSS ", t.label()),
        Span::raw(frame.process.rss_bytes.map_or_else(unknown, bytes)),
        Span::styled(" · threads ", t.label()),
        Span::raw(frame.process.threads.map_or_else(unknown, thousands)),
    ];
    let hits = [
        Span::styled(" · probe hits ", t.label()),
        Span::raw(thousands(frame.probes.total_hits())),
    ];
    let room = (area.width as usize).saturating_sub(2);
    let used: usize = process.iter().chain(&hits).map(|s| s.width()).sum();
    if used <= room {
        process.extend(hits);
    }
    let lines = vec![
        Line::from(process),
        Line::from(vec![
            Span::styled("lost events ", t.label()),
            Span::styled(thousands(totals.lost_events), flagged(totals.lost_events)),
            Span::styled(" · malformed ", t.label()),
            Span::styled(
                thousands(totals.malformed_events),
                flagged(totals.malformed_events),
            ),
        ]),
        Line::raw(app.info.mode.clone()),
    ];
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(t, " Target & tracer ".into())),
        area,
    );
}

fn render_top_suspects(app: &App, frame: &Frame, f: &mut ratatui::Frame, area: Rect) {
    let t: Theme = app.theme;
    let suspects = &frame.analysis.suspects;
    let title = match suspects.len() {
        0 => " Leak suspects ".to_string(),
        n if n <= 3 => format!(" Leak suspects ({n}) "),
        n => format!(" Top 3 of {n} leak suspects "),
    };
    let lines: Vec<Line> = if suspects.is_empty() {
        vec![Line::styled(
            "None so far: no group is stuck on a channel, select or lock, no creation site keeps growing, and no timers or contexts pile up.",
            t.dim(),
        )]
    } else {
        suspects
            .iter()
            .take(3)
            .map(|s| {
                Line::from(vec![
                    Span::styled(
                        format!("{:>3} {:<8}", s.score, kind_name(s.kind)),
                        t.kind(s.kind),
                    ),
                    Span::raw(s.evidence.clone()),
                ])
            })
            .collect()
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(t, title)),
        area,
    );
}

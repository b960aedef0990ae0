//! Details of one group: where its goroutines come from, where they are
//! blocked, how their count moved, and the life of one of them.

use ratatui::{
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{contexts, fact, panel, timers};
use crate::suspects::{human_duration, thousands, Group, Suspect};
use crate::tui::app::App;
use crate::tui::text::{
    age, fit, frame, group_site, growth, optional_site, secs_to_ns, sparkline, wrap, Scale,
};
use crate::tui::theme::{kind_name, Theme};
use crate::tui::FocusDetail;

pub fn render(app: &mut App, f: &mut ratatui::Frame, area: Rect) {
    let t = app.theme;
    let width = (area.width as usize).saturating_sub(2).max(1);
    let (title, lines) = content(app, width);
    let visible = (area.height as usize).saturating_sub(2);
    let max_scroll = u16::try_from(lines.len().saturating_sub(visible)).unwrap_or(u16::MAX);
    app.details_scroll = app.details_scroll.min(max_scroll);
    app.page = visible;
    let more = if max_scroll > app.details_scroll {
        " ↓ more "
    } else {
        ""
    };
    f.render_widget(
        Paragraph::new(lines)
            .scroll((app.details_scroll, 0))
            .block(panel(t, title).title_bottom(Line::styled(more, t.dim()).right_aligned())),
        area,
    );
}

fn content(app: &App, width: usize) -> (String, Vec<Line<'static>>) {
    let t = app.theme;
    let Some(id) = app.details else {
        return (
            " Details ".into(),
            vec![Line::styled(
                "Nothing selected: pick a suspect (2) or a group (3–5) and press Enter.",
                t.dim(),
            )],
        );
    };
    let analysis = app.analysis();
    let group = analysis.and_then(|a| a.groups.iter().find(|g| g.id == id));
    let suspect = app.suspect_of(id);
    let focus = app.focus_detail(id);
    let now_ns = app.shown.as_ref().map_or(0, |f| f.now_ns);
    if let Some(g) = analysis.and_then(|a| a.timers.timers.iter().find(|g| g.id == id)) {
        return (timers::title(g), timers::facts(t, g, suspect, focus, width));
    }
    if let Some(c) = analysis.and_then(|a| a.timers.contexts.iter().find(|c| c.id == id)) {
        return (
            contexts::title(c),
            contexts::facts(t, c, suspect, focus, width),
        );
    }
    let mut lines = Vec::new();
    let title = match (group, suspect) {
        (Some(g), _) => format!(" {} · {} ", group_site(g), g.state),
        (None, Some(s)) => format!(
            " {} · {} ",
            optional_site(s.creation_site.as_ref()),
            s.state
        ),
        (None, None) => " Details ".into(),
    };
    match (group, suspect) {
        (Some(g), _) => describe_group(t, g, &mut lines),
        (None, Some(s)) => describe_suspect(t, s, &mut lines),
        (None, None) => lines.push(Line::styled(
            "This group is gone: its goroutines exited or changed state.",
            t.dim(),
        )),
    }
    if let Some(s) = suspect {
        suspect_lines(t, s, width, &mut lines);
    }
    let stack = group
        .map(|g| g.blocked_at.to_vec())
        .or_else(|| suspect.map(|s| s.blocked_at.clone()))
        .unwrap_or_default();
    if !stack.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled("Blocked at", t.title()));
        for loc in &stack {
            lines.push(Line::raw(format!("  {}", frame(loc))));
        }
    }
    match focus {
        Some(detail) => describe_focus(t, detail, now_ns, width, &mut lines),
        None if group.is_some() => {
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                "Count history and an example goroutine arrive with the next update…",
                t.dim(),
            ));
        }
        None => {}
    }
    (title, lines)
}

/// `suspect  kind · score`, then the evidence.
pub(super) fn suspect_lines(t: Theme, s: &Suspect, width: usize, lines: &mut Vec<Line<'static>>) {
    lines.push(Line::from(vec![
        Span::styled(fact("suspect"), t.label()),
        Span::styled(
            format!("{} · score {}", kind_name(s.kind), s.score),
            t.kind(s.kind),
        ),
    ]));
    let indent = fact("").len();
    for l in wrap(&s.evidence, width.saturating_sub(indent)) {
        lines.push(Line::raw(format!("{}{l}", " ".repeat(indent))));
    }
}

/// A blank line, `What over the last 1m00s  min · max`, and the count's
/// history as a two-row sparkline.
pub(super) fn history_lines(
    t: Theme,
    what: &str,
    history: &[(u64, u64)],
    width: usize,
    lines: &mut Vec<Line<'static>>,
) {
    let counts: Vec<u64> = history.iter().map(|s| s.1).collect();
    if counts.is_empty() {
        return;
    }
    let span = match (history.first(), history.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            format!(" over the last {}", human_duration(b.0 - a.0))
        }
        _ => String::new(),
    };
    let spark_width = width.saturating_sub(2).min(120);
    let (rows, (min, max)) = sparkline(&fit(&counts, spark_width), spark_width, 2, Scale::MinMax);
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled(format!("{what}{span}"), t.title()),
        Span::styled(
            format!("  min {} · max {}", thousands(min), thousands(max)),
            t.dim(),
        ),
    ]));
    lines.extend(
        rows.into_iter()
            .map(|r| Line::styled(format!("  {r}"), t.chart())),
    );
}

fn describe_group(t: Theme, g: &Group, lines: &mut Vec<Line<'static>>) {
    let created = match &g.site {
        Some(site) => {
            let mut s = group_site(g);
            if site.function != "?" {
                s.push_str(&format!(" in {}", site.function));
            }
            s
        }
        None => "unknown (the goroutine predates attach)".into(),
    };
    lines.push(Line::from(vec![
        Span::styled(fact("created at"), t.label()),
        Span::raw(created),
    ]));
    lines.push(Line::from(vec![
        Span::styled(fact("function"), t.label()),
        Span::raw(g.start_function.clone().unwrap_or_else(|| "?".into())),
    ]));
    let mut state = g.state.clone();
    if g.runtime_owned {
        state.push_str(" (Go runtime's own goroutines)");
    }
    lines.push(Line::from(vec![
        Span::styled(fact("state"), t.label()),
        Span::raw(state),
    ]));
    lines.push(Line::from(vec![
        Span::styled(fact("count"), t.label()),
        Span::styled(thousands(g.count), t.title()),
        Span::styled(" · oldest ", t.label()),
        Span::raw(age(g.oldest_age_ns, g.ages_are_lower_bounds)),
        Span::styled(" · median ", t.label()),
        Span::raw(age(g.median_age_ns, g.ages_are_lower_bounds)),
        Span::styled(" · growth ", t.label()),
        Span::raw(format!("{}/min", growth(g.growth_per_min))),
    ]));
}

/// For a suspect whose group is gone from the picture.
fn describe_suspect(t: Theme, s: &Suspect, lines: &mut Vec<Line<'static>>) {
    let mut created = optional_site(s.creation_site.as_ref());
    if let Some(site) = &s.creation_site {
        created.push_str(&format!(" in {}", site.function));
    }
    lines.push(Line::from(vec![
        Span::styled(fact("created at"), t.label()),
        Span::raw(created),
    ]));
    lines.push(Line::from(vec![
        Span::styled(fact("function"), t.label()),
        Span::raw(s.start_function.clone().unwrap_or_else(|| "?".into())),
    ]));
    lines.push(Line::from(vec![
        Span::styled(fact("state"), t.label()),
        Span::raw(s.state.clone()),
    ]));
    lines.push(Line::from(vec![
        Span::styled(fact("count"), t.label()),
        Span::styled(thousands(s.count), t.title()),
        Span::styled(" · oldest ", t.label()),
        Span::raw(age(secs_to_ns(s.oldest_age_s), s.ages_are_lower_bounds)),
        Span::styled(" · median ", t.label()),
        Span::raw(age(secs_to_ns(s.median_age_s), s.ages_are_lower_bounds)),
        Span::styled(" · growth ", t.label()),
        Span::raw(format!("{}/min", growth(s.growth_per_min))),
    ]));
}

fn describe_focus(
    t: Theme,
    detail: &FocusDetail,
    now_ns: u64,
    width: usize,
    lines: &mut Vec<Line<'static>>,
) {
    history_lines(t, "Count", &detail.history, width, lines);
    if let Some(example) = &detail.example {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!(
                "Goroutine {}, one of {}",
                example.goid,
                thousands(detail.members_total)
            ),
            t.title(),
        ));
        for (ns, what) in &example.entries {
            let when = format!("{:>9} ago  ", human_duration(now_ns.saturating_sub(*ns)));
            let indent = when.chars().count() + 2;
            for (i, l) in wrap(what, width.saturating_sub(indent))
                .into_iter()
                .enumerate()
            {
                let prefix = if i == 0 {
                    when.clone()
                } else {
                    " ".repeat(indent - 2)
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("  {prefix}"), t.label()),
                    Span::raw(l),
                ]));
            }
        }
    }
}

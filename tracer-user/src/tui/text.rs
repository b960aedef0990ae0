//! Number and text formatting for the views, and a text sparkline.

use crate::report::SourceLocation;
use crate::suspects::timers::{ContextGroup, TimerGroup, TimerKind};
use crate::suspects::{human_duration, site_label, thousands, Group};

/// `6m12s`, `≥6m12s` when only a lower bound is known.
pub fn age(ns: u64, lower_bound: bool) -> String {
    if lower_bound {
        format!("≥{}", human_duration(ns))
    } else {
        human_duration(ns)
    }
}

/// Seconds (as the suspects carry them) to nanoseconds.
pub fn secs_to_ns(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

/// `+20/min` style growth: `+20`, `+2.5`, `-3`, `0`.
pub fn growth(per_min: f64) -> String {
    if per_min.abs() < 0.05 {
        "0".into()
    } else if per_min.abs() < 10.0 {
        format!("{per_min:+.1}")
    } else {
        format!("{per_min:+.0}")
    }
}

/// Events per second: `0`, `4.5`, `120`, `12,340`.
pub fn rate(per_s: f64) -> String {
    if per_s < 0.05 {
        "0".into()
    } else if per_s < 100.0 {
        format!("{per_s:.1}")
    } else {
        thousands(per_s.round() as u64)
    }
}

/// `812 KiB`, `123.4 MiB`, `2.1 GiB`.
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let n = n as f64;
    if n < KIB * KIB {
        format!("{:.0} KiB", n / KIB)
    } else if n < KIB * KIB * KIB {
        format!("{:.1} MiB", n / KIB / KIB)
    } else {
        format!("{:.1} GiB", n / KIB / KIB / KIB)
    }
}

/// The group's `go` statement as `dir/file.go:line`, else its function.
pub fn group_site(group: &Group) -> String {
    match (&group.site, &group.start_function) {
        (Some(site), _) => site_label(site),
        (None, Some(f)) => format!("? ({f})"),
        (None, None) => "unknown site".into(),
    }
}

/// A timer group's site as `dir/file.go:line`; `-` for Sleep (any
/// goroutine's), `(before attach)` for timers armed before the tracer came.
pub fn timer_site(g: &TimerGroup) -> String {
    match (&g.site, g.kind) {
        (Some(site), _) => site_label(site),
        (None, TimerKind::Sleep) => "-".into(),
        (None, _) => "(before attach)".into(),
    }
}

/// A context group's site as `dir/file.go:line`, `(before attach)` for
/// contexts created before the tracer came.
pub fn context_site(g: &ContextGroup) -> String {
    g.site
        .as_ref()
        .map_or_else(|| "(before attach)".into(), site_label)
}

/// An age in seconds, `-` when there is nothing to be old (`count` 0).
pub fn age_of(count: u64, secs: f64) -> String {
    if count == 0 {
        "-".into()
    } else {
        human_duration(secs_to_ns(secs))
    }
}

pub fn optional_site(site: Option<&SourceLocation>) -> String {
    site.map_or_else(|| "unknown site".into(), site_label)
}

/// `function  dir/file.go:line` for a stack frame.
pub fn frame(loc: &SourceLocation) -> String {
    match (&loc.file, loc.line) {
        (Some(_), Some(_)) => format!("{}  {}", loc.function, site_label(loc)),
        _ => format!("{}  ({})", loc.function, loc.pc),
    }
}

/// Cuts `s` to `width` characters, marking the cut with `…` at the end.
pub fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Cuts `s` to `width` characters keeping its end (the informative part of a
/// Go function name), marking the cut with `…` at the start.
pub fn clip_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::from("…");
    out.extend(s.chars().skip(n - (width - 1)));
    out
}

/// A `dir/file.go:line` site in `width` characters: whole, else
/// `…/file.go:line`, else cut at the start.
pub fn clip_site(site: &str, width: usize) -> String {
    if site.chars().count() <= width {
        return site.to_string();
    }
    match site.rsplit_once('/') {
        Some((_, file)) if file.chars().count() + 2 <= width => format!("…/{file}"),
        _ => clip_left(site, width),
    }
}

/// Pads or clips `s` to exactly `width` characters.
pub fn cell(s: &str, width: usize) -> String {
    format!("{:<width$}", clip(s, width))
}

/// Right-aligns `s` in `width` characters (clipped if longer).
pub fn cell_right(s: &str, width: usize) -> String {
    format!("{:>width$}", clip(s, width))
}

const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// How a sparkline maps values to bar heights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// From the smallest value shown (a thin bar) to the largest (full), so
    /// small changes of a large count stay visible.
    MinMax,
    /// From 0 to the largest value shown, or to the given top if larger
    /// (to draw several rates on one scale).
    Zero(u64),
}

/// A sparkline `height` rows high and `width` columns wide, top row first,
/// newest value at the right. Returns the rows and the `(min, max)` of the
/// values shown.
pub fn sparkline(
    values: &[u64],
    width: usize,
    height: usize,
    scale: Scale,
) -> (Vec<String>, (u64, u64)) {
    let shown = &values[values.len().saturating_sub(width)..];
    let min = shown.iter().copied().min().unwrap_or(0);
    let max = shown.iter().copied().max().unwrap_or(0);
    if height == 0 {
        return (Vec::new(), (min, max));
    }
    let eighths = (height * 8) as u64;
    let level = |v: u64| -> u64 {
        match scale {
            Scale::MinMax if max == min => {
                // Flat: a thin line for zero, half height otherwise.
                if max == 0 {
                    u64::from(height > 0)
                } else {
                    eighths / 2
                }
            }
            Scale::MinMax => 1 + (v - min) * (eighths - 1) / (max - min),
            Scale::Zero(top) => {
                let top = top.max(max);
                if top == 0 {
                    0
                } else {
                    (v * eighths).div_ceil(top)
                }
            }
        }
    };
    let levels: Vec<u64> = shown.iter().map(|&v| level(v)).collect();
    let pad = width - shown.len();
    let rows = (0..height)
        .map(|r| {
            let below = ((height - 1 - r) * 8) as u64;
            let mut row = " ".repeat(pad);
            row.extend(
                levels
                    .iter()
                    .map(|&l| BARS[l.saturating_sub(below).min(8) as usize]),
            );
            row
        })
        .collect();
    (rows, (min, max))
}

/// Fits `values` into `width` columns: each column is the largest of a run
/// of consecutive values (the newest run is the last column).
pub fn fit(values: &[u64], width: usize) -> Vec<u64> {
    if width == 0 || values.len() <= width {
        return values.to_vec();
    }
    let run = values.len().div_ceil(width);
    let mut out: Vec<u64> = values
        .rchunks(run)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect();
    out.reverse();
    out
}

/// Greedy word wrap to `width` columns (words longer than a line are cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let sep = usize::from(used > 0);
            if used + sep + word.len() <= width {
                if sep == 1 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            let rest = word.split_off(width);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_the_summary() {
        assert_eq!(age(372 * 1_000_000_000, true), "≥6m12s");
        assert_eq!(growth(20.04), "+20");
        assert_eq!(growth(2.5), "+2.5");
        assert_eq!(growth(-0.01), "0");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(4.46), "4.5");
        assert_eq!(rate(12_340.2), "12,340");
        assert_eq!(bytes(129_394_278), "123.4 MiB");
        assert_eq!(bytes(800 * 1024), "800 KiB");
    }

    #[test]
    fn clipping_marks_the_cut() {
        assert_eq!(clip("main.worker", 6), "main.…");
        assert_eq!(clip_left("main.(*Server).handle.func1", 10), "…dle.func1");
        assert_eq!(clip("abc", 0), "");
        assert_eq!(cell("ab", 4), "ab  ");
        assert_eq!(cell_right("ab", 4), "  ab");
        assert_eq!(clip_site("stream/feed.go:88", 17), "stream/feed.go:88");
        assert_eq!(clip_site("stream/feed.go:88", 15), "…/feed.go:88");
        assert_eq!(clip_site("stream/feed.go:88", 8), "…d.go:88");
    }

    #[test]
    fn sparkline_scales_between_min_and_max_newest_right() {
        let (rows, range) = sparkline(&[100, 100, 104, 108], 6, 1, Scale::MinMax);
        assert_eq!(range, (100, 108));
        assert_eq!(rows, vec!["  ▁▁▄█".to_string()]);
        let (rows, _) = sparkline(&[0, 8, 16], 3, 2, Scale::Zero(0));
        assert_eq!(rows, vec!["  █", " ██"]);
        let (rows, _) = sparkline(&[0, 8, 16], 3, 1, Scale::Zero(32));
        assert_eq!(rows, vec![" ▂▄"]);
        let (rows, _) = sparkline(&[5, 5], 2, 2, Scale::MinMax);
        assert_eq!(rows, vec!["  ", "██"]);
        let (rows, _) = sparkline(&[], 3, 1, Scale::Zero(0));
        assert_eq!(rows, vec!["   "]);
        let (rows, _) = sparkline(&[1, 2, 3], 0, 0, Scale::MinMax);
        assert!(rows.is_empty());
    }

    #[test]
    fn long_histories_are_fitted_by_runs_newest_last() {
        assert_eq!(fit(&[1, 2, 3], 5), vec![1, 2, 3]);
        assert_eq!(fit(&[1, 5, 2, 3, 9], 2), vec![5, 9]);
        assert_eq!(fit(&[1, 5, 2, 3, 9], 3), vec![1, 5, 9]);
    }

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("abcdefg h", 3), vec!["abc", "def", "g h"]);
        assert_eq!(wrap("", 4), vec![""]);
    }
}

//! What the user sees (render snapshots at fixed sizes, reviewed by eye) and
//! what each key does.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::{backend::TestBackend, style::Color, Terminal};

use super::fixtures::{
    self, CACHE, COLORS, CONN, DEADLINES, EARLY_CTX, EARLY_TICKER, EXPIRY, FEED_TICKER, FLUSH,
    HTTP, JOBS, LEAK, LOOKUP, MAIN, NOW, POLL_AFTER, POOL, RPC_TIMER, S, SLEEP,
};
use super::{Action, App, Column, ContextColumn, GoroutineColumn, Style, TimerColumn, View};
use crate::suspects::{Group, SuspectKind};

const NO_COLOR: Style = Style { colors: false };

fn draw(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|f| app.render(f)).expect("draw");
    terminal
}

fn press(app: &mut App, code: KeyCode) -> Action {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn keys(app: &mut App, codes: &[KeyCode]) {
    for code in codes {
        press(app, *code);
    }
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// Delivers the next tick the way the session does: with the details of the
/// group the app asks for.
fn tick(app: &mut App, i: u64) {
    let focus = app.focus();
    app.update(fixtures::frame(i, focus));
}

fn selected_group(app: &App) -> Option<u64> {
    match app.goroutines.rows.key() {
        Some(super::app::RowId::Group(id)) => Some(id),
        _ => None,
    }
}

fn group_order(app: &App) -> Vec<u64> {
    app.goroutine_rows()
        .iter()
        .filter_map(|r| match r {
            super::app::GoroutineRow::Group(g) => Some(g.id),
            _ => None,
        })
        .collect()
}

fn timer_order(app: &App) -> Vec<u64> {
    app.timer_rows().iter().map(|g| g.id).collect()
}

fn context_order(app: &App) -> Vec<u64> {
    app.context_rows().iter().map(|c| c.id).collect()
}

/// The screen's text, one line per row.
fn screen(terminal: &Terminal<TestBackend>) -> String {
    let buffer = terminal.backend().buffer();
    let (width, height) = (buffer.area.width, buffer.area.height);
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The app with another analysis at the last tick.
fn with_analysis(app: &mut App, change: impl FnOnce(&mut crate::suspects::Analysis)) {
    let focus = app.focus();
    let mut frame = fixtures::frame(fixtures::TICKS, focus);
    let mut analysis = (*frame.analysis).clone();
    change(&mut analysis);
    frame.analysis = std::sync::Arc::new(analysis);
    app.update(frame);
}

// ---- render snapshots -------------------------------------------------

#[test]
fn overview_80x24() {
    let mut app = fixtures::app(COLORS);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn suspects_80x24() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('2'));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn goroutines_80x24() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('3'));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn runtime_owned_groups_are_dimmed() {
    let mut app = fixtures::app(Style { colors: false });
    press(&mut app, KeyCode::Char('3'));
    let terminal = draw(&mut app, 80, 24);
    let buffer = terminal.backend().buffer();
    let row_of = |needle: &str| {
        (0..24u16).find(|&y| {
            let line: String = (0..80)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            line.contains(needle)
        })
    };
    let dim = |y: u16| {
        buffer[(5, y)]
            .modifier
            .contains(ratatui::style::Modifier::DIM)
    };
    let runtime = row_of("runtime/mgc.go").expect("GC workers listed");
    let pool = row_of("pool/pool.go").expect("pool listed");
    assert!(dim(runtime));
    assert!(!dim(pool));
}

#[test]
fn goroutines_filtered_and_expanded_80x24() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "main.");
    press(&mut app, KeyCode::Enter);
    assert_eq!(selected_group(&app), Some(LEAK));
    press(&mut app, KeyCode::Right);
    assert_eq!(app.focus(), Some(LEAK));
    tick(&mut app, fixtures::TICKS);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn filter_being_typed_shows_in_the_footer() {
    let mut app = fixtures::app(COLORS);
    keys(&mut app, &[KeyCode::Char('3'), KeyCode::Char('/')]);
    type_text(&mut app, "mutex");
    let terminal = draw(&mut app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn details_80x24() {
    let mut app = fixtures::app(COLORS);
    keys(&mut app, &[KeyCode::Char('2'), KeyCode::Enter]);
    assert_eq!(app.view(), View::Details);
    assert_eq!(app.focus(), Some(LEAK));
    tick(&mut app, fixtures::TICKS);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn details_before_the_data_arrives_and_of_a_runtime_group() {
    let mut app = fixtures::app(COLORS);
    keys(
        &mut app,
        &[KeyCode::Char('3'), KeyCode::End, KeyCode::Up, KeyCode::Up],
    );
    assert_eq!(selected_group(&app), Some(fixtures::GC));
    press(&mut app, KeyCode::Char('d'));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn timers_80x24() {
    let mut app = fixtures::app(NO_COLOR);
    press(&mut app, KeyCode::Char('4'));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn timers_132x30() {
    let mut app = fixtures::app(NO_COLOR);
    press(&mut app, KeyCode::Char('4'));
    insta::assert_snapshot!(draw(&mut app, 132, 30).backend());
}

#[test]
fn contexts_80x24() {
    let mut app = fixtures::app(NO_COLOR);
    press(&mut app, KeyCode::Char('5'));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn contexts_132x30() {
    let mut app = fixtures::app(NO_COLOR);
    press(&mut app, KeyCode::Char('5'));
    insta::assert_snapshot!(draw(&mut app, 132, 30).backend());
}

#[test]
fn timer_pane_80x24() {
    let mut app = fixtures::app(NO_COLOR);
    keys(&mut app, &[KeyCode::Char('4'), KeyCode::Enter]);
    assert_eq!(app.focus(), Some(DEADLINES));
    tick(&mut app, fixtures::TICKS);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn ticker_pane_before_its_history_arrives_80x24() {
    let mut app = fixtures::app(NO_COLOR);
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "feed");
    keys(&mut app, &[KeyCode::Enter, KeyCode::Right]);
    assert_eq!(app.focus(), Some(FEED_TICKER));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn context_suspect_opens_the_contexts_pane_80x24() {
    let mut app = fixtures::app(NO_COLOR);
    keys(
        &mut app,
        &[
            KeyCode::Char('2'),
            KeyCode::End,
            KeyCode::Up,
            KeyCode::Enter,
        ],
    );
    assert_eq!(app.view(), View::Contexts);
    assert_eq!(app.focus(), Some(LOOKUP));
    tick(&mut app, fixtures::TICKS);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn timer_details_80x24() {
    let mut app = fixtures::app(NO_COLOR);
    keys(
        &mut app,
        &[KeyCode::Char('4'), KeyCode::Down, KeyCode::Char('d')],
    );
    assert_eq!(app.view(), View::Details);
    assert_eq!(app.focus(), Some(EXPIRY));
    tick(&mut app, fixtures::TICKS);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn timers_filtered_and_sorted_80x24() {
    let mut app = fixtures::app(NO_COLOR);
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "ticker");
    press(&mut app, KeyCode::Enter);
    // pending → … → oldest
    for _ in 0..6 {
        press(&mut app, KeyCode::Char('s'));
    }
    assert_eq!(app.timers.sort, TimerColumn::Oldest);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn help_80x24() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn paused_header_says_how_old_the_picture_is() {
    let mut app = App::new(fixtures::info(), COLORS);
    for i in 0..=40 {
        tick(&mut app, i);
    }
    press(&mut app, KeyCode::Char('p'));
    for i in 41..=52 {
        tick(&mut app, i);
    }
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn before_the_first_update() {
    let mut app = App::new(fixtures::info(), COLORS);
    insta::assert_snapshot!(draw(&mut app, 80, 24).backend());
}

#[test]
fn tiny_terminal_20x5() {
    let mut app = fixtures::app(COLORS);
    insta::assert_snapshot!(draw(&mut app, 20, 5).backend());
}

#[test]
fn no_size_panics_in_any_view() {
    let mut app = fixtures::app(COLORS);
    keys(&mut app, &[KeyCode::Char('3'), KeyCode::Right]);
    tick(&mut app, fixtures::TICKS);
    // Open panes, with and without their history.
    keys(&mut app, &[KeyCode::Char('4'), KeyCode::Right]);
    tick(&mut app, fixtures::TICKS);
    keys(&mut app, &[KeyCode::Char('5'), KeyCode::Right]);
    press(&mut app, KeyCode::Char('p'));
    for view in ['1', '2', '3', '4', '5', '6', '?'] {
        press(&mut app, KeyCode::Char(view));
        for width in [
            1, 2, 3, 4, 6, 10, 17, 20, 30, 39, 40, 41, 50, 60, 79, 80, 81, 120,
        ] {
            for height in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15, 16, 20, 24, 30] {
                draw(&mut app, width, height);
            }
        }
        if view == '?' {
            press(&mut app, KeyCode::Esc);
        }
    }
    let mut empty = App::new(fixtures::info(), COLORS);
    for view in ['1', '2', '3', '4', '5', '6'] {
        press(&mut empty, KeyCode::Char(view));
        for (width, height) in [(1, 1), (2, 3), (20, 5), (80, 24)] {
            draw(&mut empty, width, height);
        }
    }
}

#[test]
fn resize_sequence_relays_out_the_suspects_view() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Down);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test backend");
    let mut screens = Vec::new();
    for (w, h) in [(80, 24), (50, 12), (120, 30), (80, 24)] {
        terminal.backend_mut().resize(w, h);
        assert_eq!(app.handle_resize(), Action::Redraw);
        terminal.draw(|f| app.render(f)).expect("draw");
        screens.push(terminal.backend().to_string());
    }
    assert_eq!(screens[0], screens[3], "back at 80x24, the same picture");
    insta::assert_snapshot!("resize_50x12", screens[1]);
    insta::assert_snapshot!("resize_120x30", screens[2]);
}

#[test]
fn no_color_leaves_every_cell_uncolored_but_marks_the_selection() {
    let mut app = fixtures::app(Style { colors: false });
    let no_colors = |t: &Terminal<TestBackend>| {
        t.backend().buffer().content.iter().all(|c| {
            c.fg == Color::Reset && c.bg == Color::Reset && c.underline_color == Color::Reset
        })
    };
    for view in ['1', '2', '3', '4', '5', '6'] {
        press(&mut app, KeyCode::Char(view));
        let terminal = draw(&mut app, 80, 24);
        assert!(no_colors(&terminal), "view {view} has colors");
        let marked = terminal
            .backend()
            .buffer()
            .content
            .iter()
            .any(|c| c.modifier.contains(ratatui::style::Modifier::REVERSED));
        assert!(marked, "view {view}: the current tab is shown reversed");
    }
    press(&mut app, KeyCode::Char('?'));
    assert!(no_colors(&draw(&mut app, 80, 24)));
    let mut colored = fixtures::app(COLORS);
    let terminal = draw(&mut colored, 80, 24);
    assert!(!no_colors(&terminal), "colors are on by default");
}

#[test]
fn lost_events_are_highlighted() {
    let mut app = App::new(fixtures::info(), COLORS);
    let mut frame = fixtures::frame(0, None);
    frame.totals.lost_events = 1_234;
    app.update(frame);
    let terminal = draw(&mut app, 80, 24);
    let buffer = terminal.backend().buffer();
    let line: String = (0..80)
        .map(|x| buffer[(x, 11)].symbol().to_string())
        .collect();
    let at = line
        .find("1,234")
        .expect("lost count on the Tracer panel's second line");
    let x = line[..at].chars().count() as u16;
    assert_eq!(buffer[(x, 11)].fg, Color::Red, "{line}");
}

#[test]
fn untraced_timers_and_contexts_say_so() {
    let mut app = fixtures::app(NO_COLOR);
    with_analysis(&mut app, |a| {
        a.timers.traced = false;
        for g in &mut a.timers.timers {
            g.pending = 0;
        }
    });
    let text = screen(&draw(&mut app, 80, 24));
    assert!(
        text.contains("│Not traced now: the timer and context"),
        "{text}"
    );
    assert!(!text.contains("timers 0"), "{text}");
    press(&mut app, KeyCode::Char('4'));
    let text = screen(&draw(&mut app, 100, 24));
    assert!(
        text.contains("not traced now: the timer and context probes are not attached"),
        "{text}"
    );
    with_analysis(&mut app, |a| {
        a.timers = Default::default();
    });
    let text = screen(&draw(&mut app, 80, 24));
    assert!(text.contains("not traced now"), "{text}");
    press(&mut app, KeyCode::Char('5'));
    let text = screen(&draw(&mut app, 80, 24));
    assert!(text.contains("not traced now"), "{text}");
}

#[test]
fn no_timers_or_contexts_yet() {
    let mut app = fixtures::app(NO_COLOR);
    with_analysis(&mut app, |a| {
        a.timers = Default::default();
        a.timers.traced = true;
    });
    press(&mut app, KeyCode::Char('4'));
    let text = screen(&draw(&mut app, 80, 24));
    assert!(text.contains("No timers so far"), "{text}");
    assert_eq!(press(&mut app, KeyCode::Enter), Action::None);
    assert_eq!(press(&mut app, KeyCode::Char('d')), Action::None);
    press(&mut app, KeyCode::Char('5'));
    let text = screen(&draw(&mut app, 80, 24));
    assert!(text.contains("No contexts so far"), "{text}");
}

// ---- keys ----------------------------------------------------------------

#[test]
fn quit_with_q_or_ctrl_c_and_ignore_key_releases() {
    let mut app = fixtures::app(COLORS);
    assert_eq!(press(&mut app, KeyCode::Char('q')), Action::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.handle_key(ctrl_c), Action::Quit);
    let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert_eq!(app.handle_key(release), Action::None);
    // While typing a filter, q is a letter; Ctrl-C still quits.
    keys(&mut app, &[KeyCode::Char('3'), KeyCode::Char('/')]);
    assert_eq!(press(&mut app, KeyCode::Char('q')), Action::Redraw);
    assert_eq!(app.goroutines.filter, "q");
    assert_eq!(app.handle_key(ctrl_c), Action::Quit);
}

#[test]
fn views_switch_with_numbers_tab_and_back_tab() {
    let mut app = fixtures::app(COLORS);
    assert_eq!(app.view(), View::Overview);
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.view(), View::Goroutines);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view(), View::Timers);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view(), View::Contexts);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view(), View::Details);
    assert_eq!(
        app.focus(),
        Some(fixtures::LOOKUP),
        "Details of the group selected in Contexts"
    );
    press(&mut app, KeyCode::Esc);
    assert_eq!(
        app.view(),
        View::Contexts,
        "Esc goes back where Details came from"
    );
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('6'));
    assert_eq!(
        app.focus(),
        Some(LEAK),
        "Details of the selected goroutine group"
    );
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view(), View::Overview);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.view(), View::Details);
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.view(), View::Timers);
    press(&mut app, KeyCode::Char('5'));
    assert_eq!(app.view(), View::Contexts);
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.view(), View::Suspects);
    assert_eq!(press(&mut app, KeyCode::F(5)), Action::None);
    assert_eq!(press(&mut app, KeyCode::Char('7')), Action::None);
    assert_eq!(app.view(), View::Suspects);
}

#[test]
fn help_toggles_and_swallows_other_keys() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    assert_eq!(press(&mut app, KeyCode::Char('3')), Action::None);
    assert_eq!(app.view(), View::Overview);
    press(&mut app, KeyCode::Char('?'));
    assert!(!app.help);
    press(&mut app, KeyCode::Char('?'));
    press(&mut app, KeyCode::Esc);
    assert!(!app.help);
}

#[test]
fn suspects_navigation_moves_clamps_and_opens_details() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(app.selected_suspect().map(|s| s.group), Some(LEAK));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected_suspect().map(|s| s.group), Some(CACHE));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected_suspect().map(|s| s.group), Some(HTTP));
    keys(&mut app, &[KeyCode::PageDown, KeyCode::PageDown]);
    assert_eq!(
        app.selected_suspect().map(|s| s.group),
        Some(fixtures::EXPIRY)
    );
    press(&mut app, KeyCode::Home);
    assert_eq!(app.selected_suspect().map(|s| s.group), Some(LEAK));
    keys(&mut app, &[KeyCode::Up, KeyCode::Char('G')]);
    assert_eq!(
        app.selected_suspect().map(|s| s.group),
        Some(fixtures::EXPIRY)
    );
    keys(&mut app, &[KeyCode::Up, KeyCode::Up]);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view(), View::Details);
    assert_eq!(app.focus(), Some(HTTP));
}

#[test]
fn goroutines_navigation_expand_collapse_and_details() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(
        group_order(&app),
        vec![LEAK, CACHE, HTTP, POOL, fixtures::GC, MAIN, FLUSH]
    );
    assert_eq!(selected_group(&app), Some(LEAK));
    assert_eq!(app.focus(), None);
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.focus(),
        Some(LEAK),
        "expanded: the session must send its members"
    );
    tick(&mut app, fixtures::TICKS);
    // 5 members and "1,199 more" under the group.
    assert_eq!(app.goroutine_rows().len(), 7 + 6);
    keys(&mut app, &[KeyCode::Down, KeyCode::Down]);
    assert_eq!(
        app.goroutines.rows.key(),
        Some(super::app::RowId::Member(4712))
    );
    press(&mut app, KeyCode::Left);
    assert_eq!(
        selected_group(&app),
        Some(LEAK),
        "collapsing selects the group"
    );
    assert_eq!(app.goroutine_rows().len(), 7);
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.view(),
        View::Details,
        "Enter on an expanded group opens Details"
    );
    assert_eq!(app.focus(), Some(LEAK));
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('d'));
    assert_eq!(app.view(), View::Details);
    assert_eq!(app.focus(), Some(LEAK), "d on a member: its group");
}

#[test]
fn sort_cycles_through_columns_and_reverses() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.goroutines.sort, GoroutineColumn::Count);
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(app.goroutines.sort, GoroutineColumn::Oldest);
    assert_eq!(group_order(&app)[..3], [POOL, CACHE, LEAK]);
    press(&mut app, KeyCode::Char('S'));
    assert_eq!(
        group_order(&app)[..2],
        [fixtures::GC, MAIN],
        "youngest first, ties by count"
    );
    press(&mut app, KeyCode::Char('S'));
    keys(&mut app, &[KeyCode::Char('s'), KeyCode::Char('s')]);
    assert_eq!(app.goroutines.sort, GoroutineColumn::Function);
    let first = |app: &App| {
        app.goroutine_rows().first().map(|r| match r {
            super::app::GoroutineRow::Group(g) => g.start_function.clone(),
            _ => None,
        })
    };
    assert_eq!(first(&app), Some(Some("main.(*Cache).fetch".into())));
    let names: Vec<&str> = (0..6)
        .map(|_| {
            press(&mut app, KeyCode::Char('s'));
            app.goroutines.sort.name()
        })
        .collect();
    assert_eq!(
        names,
        ["site", "state", "count", "oldest", "growth", "function"]
    );
    assert_eq!(
        selected_group(&app),
        Some(LEAK),
        "the selection follows its group through sorts"
    );
}

#[test]
fn filter_typing_backspace_enter_and_escape() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "chan");
    assert_eq!(
        group_order(&app),
        vec![LEAK, POOL],
        "matches states while typing"
    );
    press(&mut app, KeyCode::Backspace);
    assert_eq!(app.goroutines.filter, "cha");
    press(&mut app, KeyCode::Enter);
    assert!(!app.filter_editing);
    assert_eq!(
        press(&mut app, KeyCode::Char('q')),
        Action::Quit,
        "keys work again after Enter"
    );
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(app.goroutines.filter, "cha", "/ edits the applied filter");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "CACHE/");
    assert_eq!(
        group_order(&app),
        vec![CACHE],
        "case-insensitive, matches file paths"
    );
    press(&mut app, KeyCode::Esc);
    assert!(app.goroutines.filter.is_empty());
    assert_eq!(group_order(&app).len(), 7);
    // Esc outside typing clears an applied filter too.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "logflusher");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        group_order(&app),
        vec![FLUSH],
        "matches the goroutine's function"
    );
    assert_eq!(selected_group(&app), Some(FLUSH));
    press(&mut app, KeyCode::Esc);
    assert_eq!(group_order(&app).len(), 7);
    assert_eq!(selected_group(&app), Some(FLUSH));
}

#[test]
fn selection_sticks_to_its_group_when_groups_reorder() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('3'));
    keys(&mut app, &[KeyCode::Down, KeyCode::Down]);
    assert_eq!(selected_group(&app), Some(HTTP));
    assert_eq!(app.goroutines.rows.table.selected(), Some(2));
    // The next tick: the HTTP group grew past the others and is first now.
    let mut frame = fixtures::frame(fixtures::TICKS, None);
    let mut analysis = (*frame.analysis).clone();
    for g in &mut analysis.groups {
        if g.id == HTTP {
            g.count = 5_000;
        }
    }
    analysis
        .groups
        .sort_by_key(|g: &Group| std::cmp::Reverse(g.count));
    analysis.suspects.reverse();
    frame.analysis = std::sync::Arc::new(analysis);
    app.update(frame);
    assert_eq!(group_order(&app)[0], HTTP);
    assert_eq!(selected_group(&app), Some(HTTP));
    assert_eq!(app.goroutines.rows.table.selected(), Some(0));
    press(&mut app, KeyCode::Char('2'));
    assert_eq!(
        app.selected_suspect().map(|s| s.group),
        Some(LEAK),
        "the first suspect, now last, stays selected"
    );
    assert_eq!(app.suspects.table.selected(), Some(4));
    press(&mut app, KeyCode::Up);
    assert_eq!(app.selected_suspect().map(|s| s.group), Some(CACHE));
}

#[test]
fn selection_keeps_its_place_when_its_group_goes_away() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('3'));
    keys(&mut app, &[KeyCode::Down, KeyCode::Down]);
    assert_eq!(selected_group(&app), Some(HTTP));
    let mut frame = fixtures::frame(fixtures::TICKS, None);
    let mut analysis = (*frame.analysis).clone();
    analysis.groups.retain(|g| g.id != HTTP);
    frame.analysis = std::sync::Arc::new(analysis);
    app.update(frame);
    assert_eq!(
        selected_group(&app),
        Some(POOL),
        "the row that took its place"
    );
}

#[test]
fn pause_freezes_the_picture_and_resume_shows_the_newest() {
    let mut app = App::new(fixtures::info(), COLORS);
    tick(&mut app, 10);
    assert_eq!(press(&mut app, KeyCode::Char('p')), Action::Redraw);
    assert!(app.paused());
    tick(&mut app, 11);
    tick(&mut app, 12);
    assert_eq!(app.shown.as_ref().map(|f| f.now_ns), Some(NOW - 50 * S));
    assert_eq!(app.frozen_for_ns(), 2 * S);
    press(&mut app, KeyCode::Char('p'));
    assert!(!app.paused());
    assert_eq!(app.shown.as_ref().map(|f| f.now_ns), Some(NOW - 48 * S));
    assert!(app.newest.is_none());
    // The history kept recording while paused.
    assert_eq!(app.history.until(u64::MAX).count(), 3);
}

#[test]
fn details_scroll_and_go_back() {
    let mut app = fixtures::app(COLORS);
    keys(&mut app, &[KeyCode::Char('2'), KeyCode::Enter]);
    tick(&mut app, fixtures::TICKS);
    draw(&mut app, 80, 12);
    keys(
        &mut app,
        &[KeyCode::PageDown, KeyCode::PageDown, KeyCode::PageDown],
    );
    draw(&mut app, 80, 12);
    let max = app.details_scroll;
    assert!(max > 0);
    press(&mut app, KeyCode::Down);
    draw(&mut app, 80, 12);
    assert_eq!(app.details_scroll, max, "scrolling stops at the end");
    press(&mut app, KeyCode::Home);
    assert_eq!(app.details_scroll, 0);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), View::Suspects);
    assert_eq!(app.focus(), None);
}

#[test]
fn timers_sort_on_every_column_and_reverse() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.timers.sort, TimerColumn::Pending);
    assert_eq!(
        timer_order(&app),
        vec![
            DEADLINES,
            EXPIRY,
            POLL_AFTER,
            FEED_TICKER,
            RPC_TIMER,
            SLEEP,
            EARLY_TICKER
        ]
    );
    let mut firsts = Vec::new();
    for _ in 0..TimerColumn::ALL.len() {
        press(&mut app, KeyCode::Char('s'));
        firsts.push((app.timers.sort.name(), timer_order(&app)[0]));
    }
    assert_eq!(
        firsts,
        vec![
            ("created", DEADLINES),
            ("fired", DEADLINES),
            ("stopped", RPC_TIMER),
            ("reset", RPC_TIMER),
            ("expired", POLL_AFTER),
            ("oldest", FEED_TICKER),
            ("growth", DEADLINES),
            ("kind", POLL_AFTER),
            ("site", EARLY_TICKER),
            ("pending", DEADLINES),
        ],
        "numbers largest first, text A to Z (\"(before attach)\" < \"-\" < paths)"
    );
    press(&mut app, KeyCode::Char('S'));
    assert_eq!(
        timer_order(&app)[..2],
        [EARLY_TICKER, SLEEP],
        "reversed: fewest pending first, ties by id"
    );
    assert_eq!(
        app.timers.rows.key(),
        Some(DEADLINES),
        "the selection follows its group through sorts"
    );
}

#[test]
fn contexts_sort_on_every_column_and_reverse() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('5'));
    assert_eq!(app.contexts.sort, ContextColumn::Retained);
    assert_eq!(context_order(&app), vec![LOOKUP, JOBS, CONN, EARLY_CTX]);
    let mut firsts = Vec::new();
    for _ in 0..ContextColumn::ALL.len() {
        press(&mut app, KeyCode::Char('s'));
        firsts.push((app.contexts.sort.name(), context_order(&app)[0]));
    }
    assert_eq!(
        firsts,
        vec![
            ("created", LOOKUP),
            ("cancelled", LOOKUP),
            ("caller cancels", CONN),
            ("parent cancels", EARLY_CTX),
            ("deadline cancels", LOOKUP),
            ("oldest", JOBS),
            ("deadline", JOBS),
            ("growth", LOOKUP),
            ("kind", EARLY_CTX),
            ("site", EARLY_CTX),
            ("live", LOOKUP),
            ("retained", LOOKUP),
        ]
    );
    press(&mut app, KeyCode::Char('S'));
    assert_eq!(
        context_order(&app),
        vec![CONN, EARLY_CTX, JOBS, LOOKUP],
        "reversed: fewest retained first, ties by id"
    );
}

#[test]
fn timers_and_contexts_filter_on_kind_and_site() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "TICKER");
    assert_eq!(
        timer_order(&app),
        vec![FEED_TICKER, EARLY_TICKER],
        "kind, case-insensitive"
    );
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "cache/ttl");
    assert_eq!(timer_order(&app), vec![EXPIRY], "site");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "poller");
    assert_eq!(timer_order(&app), vec![POLL_AFTER], "the site's function");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "before attach");
    press(&mut app, KeyCode::Enter);
    assert_eq!(timer_order(&app), vec![EARLY_TICKER]);
    assert_eq!(app.timers.rows.key(), Some(EARLY_TICKER));
    // Each list keeps its own filter.
    press(&mut app, KeyCode::Char('5'));
    assert_eq!(context_order(&app).len(), 4);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "withtimeout");
    press(&mut app, KeyCode::Enter);
    assert_eq!(context_order(&app), vec![LOOKUP]);
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(group_order(&app).len(), 7);
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.timers.filter, "before attach");
    press(&mut app, KeyCode::Esc);
    assert_eq!(timer_order(&app).len(), 7, "Esc clears the filter");
    assert_eq!(app.timers.rows.key(), Some(EARLY_TICKER));
}

#[test]
fn timer_pane_follows_the_selection_folds_and_opens_details() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('4'));
    assert_eq!(app.focus(), None);
    press(&mut app, KeyCode::Right);
    assert_eq!(app.focus(), Some(DEADLINES));
    press(&mut app, KeyCode::Down);
    assert_eq!(
        app.focus(),
        Some(EXPIRY),
        "the open pane shows the selection"
    );
    press(&mut app, KeyCode::Left);
    assert_eq!(app.focus(), None);
    assert_eq!(app.timers.rows.key(), Some(EXPIRY));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.focus(), Some(EXPIRY));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view(), View::Details, "Enter with the pane open");
    assert_eq!(app.focus(), Some(EXPIRY));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), View::Timers);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), View::Timers, "Esc folds, staying here");
    assert_eq!(app.focus(), None);
    assert_eq!(press(&mut app, KeyCode::Esc), Action::None);
    // The group goes away: the pane moves to the row that took its place.
    keys(&mut app, &[KeyCode::Home, KeyCode::Enter]);
    with_analysis(&mut app, |a| a.timers.timers.retain(|g| g.id != DEADLINES));
    assert_eq!(app.focus(), Some(EXPIRY));
    with_analysis(&mut app, |a| a.timers.timers.clear());
    assert_eq!(app.focus(), None, "nothing left to show");
}

#[test]
fn suspects_open_their_timer_or_context_group_and_esc_comes_back() {
    let mut app = fixtures::app(COLORS);
    press(&mut app, KeyCode::Char('2'));
    // A filter hiding the group does not hide it from its suspect.
    keys(&mut app, &[KeyCode::Char('4'), KeyCode::Char('/')]);
    type_text(&mut app, "ticker");
    keys(
        &mut app,
        &[KeyCode::Enter, KeyCode::Char('2'), KeyCode::End],
    );
    assert_eq!(
        app.selected_suspect().map(|s| s.kind),
        Some(SuspectKind::TimerLeak)
    );
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view(), View::Timers);
    assert_eq!(app.focus(), Some(EXPIRY));
    assert!(app.timers.filter.is_empty());
    assert_eq!(app.timers.rows.key(), Some(EXPIRY));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), View::Suspects, "Esc goes back to the suspect");
    assert_eq!(app.focus(), None);
    keys(&mut app, &[KeyCode::Up, KeyCode::Enter]);
    assert_eq!(app.view(), View::Contexts);
    assert_eq!(app.focus(), Some(LOOKUP));
    // Details and back keep the way back to Suspects.
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.view(), View::Details);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), View::Contexts);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view(), View::Suspects);
    // ← folds without leaving.
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Left);
    assert_eq!(app.view(), View::Contexts);
    assert_eq!(app.focus(), None);
    // Goroutine suspects still open Details.
    keys(
        &mut app,
        &[KeyCode::Char('2'), KeyCode::Home, KeyCode::Enter],
    );
    assert_eq!(app.view(), View::Details);
    assert_eq!(app.focus(), Some(LEAK));
}

#[test]
fn ticker_and_after_suspects_open_the_timers_view() {
    let mut app = fixtures::app(COLORS);
    let ticker_and_after = |a: &mut crate::suspects::Analysis| {
        let s = a.suspects.last_mut().expect("a timer suspect");
        s.kind = SuspectKind::TickerLeak;
        s.group = FEED_TICKER;
        let s = &mut a.suspects[3];
        s.kind = SuspectKind::AfterInLoop;
        s.group = POLL_AFTER;
    };
    with_analysis(&mut app, ticker_and_after);
    keys(
        &mut app,
        &[KeyCode::Char('2'), KeyCode::End, KeyCode::Enter],
    );
    assert_eq!((app.view(), app.focus()), (View::Timers, Some(FEED_TICKER)));
    keys(&mut app, &[KeyCode::Esc, KeyCode::Up, KeyCode::Enter]);
    assert_eq!((app.view(), app.focus()), (View::Timers, Some(POLL_AFTER)));
    // A suspect whose group is gone from the lists: Details says what is
    // known.
    with_analysis(&mut app, |a| {
        ticker_and_after(a);
        a.timers.timers.retain(|g| g.id != POLL_AFTER);
    });
    keys(&mut app, &[KeyCode::Char('2'), KeyCode::Enter]);
    assert_eq!((app.view(), app.focus()), (View::Details, Some(POLL_AFTER)));
}

//! The live dashboard of `tracer attach`: an htop-like terminal UI over the
//! model and the leak-suspect engine.
//!
//! - [`App`] is the whole UI state: the latest [`Frame`] of data, the
//!   selected view, selections, sort, filter, pause. It has no clock and does
//!   no I/O: the session feeds it a [`Frame`] per tick ([`App::update`]) and
//!   the keys it reads ([`App::handle_key`]), then asks it to draw
//!   ([`App::render`]). Render tests drive it with ratatui's `TestBackend`.
//! - `view/`: one render function per view, plus the header, tabs, footer
//!   and help screen around them.
//! - [`terminal`]: the real terminal (raw mode, alternate screen, restored
//!   on drop and on panic) and the thread that reads keys for the tokio
//!   session.
//!
//! The session's loop, per event:
//! - tick: build a [`Frame`] (with [`App::focus`]'s group details: a
//!   goroutine, timer or context group), call
//!   [`App::update`], then draw;
//! - key: [`App::handle_key`] → [`Action::Redraw`] draw, [`Action::Quit`]
//!   stop; resize: [`App::handle_resize`], then draw.

mod app;
mod history;
pub mod terminal;
mod text;
mod theme;
mod view;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

use std::{ffi::OsStr, sync::Arc};

pub use app::{App, Column, ContextColumn, GoroutineColumn, TimerColumn, View};
pub use terminal::{Input, InputReader, Terminal};

use crate::model::{Origin, Totals};
use crate::probes::ProbeCounters;
use crate::suspects::Analysis;
use crate::target::ProcessUsage;

/// What the header and the Overview say about the target and the tracing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetInfo {
    pub pid: u32,
    /// The executable's file name.
    pub binary: String,
    /// As the Go toolchain prints it, e.g. `go1.26.6`.
    pub go_version: String,
    /// e.g. `precise: spawn, park, ready, exit probes`.
    pub mode: String,
}

/// Whether the UI uses colors. Without them it still marks the selection,
/// warnings and runtime-owned goroutines with bold, reverse and dim text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub colors: bool,
}

impl Style {
    /// Colors unless `--no-color` was given or `NO_COLOR` is set and not
    /// empty (<https://no-color.org>).
    pub fn from_env(no_color_flag: bool) -> Self {
        Self::from_settings(no_color_flag, std::env::var_os("NO_COLOR").as_deref())
    }

    fn from_settings(no_color_flag: bool, no_color_env: Option<&OsStr>) -> Self {
        Style {
            colors: !no_color_flag && no_color_env.is_none_or(OsStr::is_empty),
        }
    }
}

/// What the UI should do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed on screen.
    None,
    /// The picture changed: draw again.
    Redraw,
    /// The user asked to stop tracing.
    Quit,
}

/// The data of one tick.
#[derive(Clone, Debug)]
pub struct Frame {
    /// CLOCK_MONOTONIC, the events' clock.
    pub now_ns: u64,
    /// Since attach.
    pub elapsed_ns: u64,
    pub totals: Totals,
    pub probes: ProbeCounters,
    pub process: ProcessUsage,
    pub analysis: Arc<Analysis>,
    /// Details of the group [`App::focus`] returned when this frame was built.
    pub focus: Option<FocusDetail>,
}

/// What the Details view and an expanded group need beyond [`Analysis`].
/// For a timer or context group only the history: no members, no example.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FocusDetail {
    /// The group's id (see [`crate::suspects::Group::id`],
    /// [`crate::suspects::timers::TimerGroup::id`],
    /// [`crate::suspects::timers::ContextGroup::id`]).
    pub group: u64,
    /// The group's count over time `(ns, count)`, oldest first: goroutines,
    /// pending timers or retained contexts.
    pub history: Vec<(u64, u64)>,
    /// Some of its members (the session caps the list).
    pub members: Vec<MemberRow>,
    /// How many members the group has in all (pending timers, retained
    /// contexts).
    pub members_total: u64,
    /// The life of one member, usually the oldest.
    pub example: Option<Timeline>,
}

/// One goroutine of an expanded group.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRow {
    pub goid: u64,
    /// Wait reason, or `running`/`runnable`/`syscall`.
    pub state: String,
    /// Time in the current state (waiting) or since creation.
    pub age_ns: u64,
    /// The goroutine predates attach and the runtime did not say since when.
    pub age_is_lower_bound: bool,
    pub wake_count: u64,
    pub parent_goid: Option<u64>,
    pub origin: Origin,
}

/// What the tracer saw of one goroutine, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub goid: u64,
    /// `(ns, what)`: "created by goroutine 1 at api/handler.go:42",
    /// "parked: chan send", "woken by goroutine 7", "exited".
    pub entries: Vec<(u64, String)>,
}

#[cfg(test)]
mod style_tests {
    use super::*;

    #[test]
    fn no_color_flag_or_non_empty_env_turns_colors_off() {
        assert!(Style::from_settings(false, None).colors);
        assert!(Style::from_settings(false, Some(OsStr::new(""))).colors);
        assert!(!Style::from_settings(false, Some(OsStr::new("1"))).colors);
        assert!(!Style::from_settings(true, None).colors);
    }
}

//! The few looks the views use, with and without colors. Without colors the
//! same meaning is carried by bold, reverse and dim text only.

use ratatui::style::{Color, Modifier, Style as Paint};

use super::Style;
use crate::suspects::SuspectKind;

#[derive(Clone, Copy, Debug)]
pub struct Theme {
    colors: bool,
}

impl Theme {
    pub fn new(style: Style) -> Self {
        Theme {
            colors: style.colors,
        }
    }

    fn color(self, fg: Color) -> Paint {
        if self.colors {
            Paint::new().fg(fg)
        } else {
            Paint::new()
        }
    }

    /// Plain text.
    pub fn text(self) -> Paint {
        Paint::new()
    }

    /// Titles, labels of key facts, the header's program name.
    pub fn title(self) -> Paint {
        self.color(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Labels in front of values.
    pub fn label(self) -> Paint {
        self.color(Color::Gray)
    }

    /// Secondary text: evidence under a row, hints.
    pub fn dim(self) -> Paint {
        self.color(Color::DarkGray).add_modifier(Modifier::DIM)
    }

    /// Something wrong with the tracing itself (lost events).
    pub fn warn(self) -> Paint {
        self.color(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// The selected row.
    pub fn selected(self) -> Paint {
        if self.colors {
            Paint::new()
                .bg(Color::Blue)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD)
        } else {
            Paint::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// The current tab, the PAUSED badge.
    pub fn badge(self) -> Paint {
        if self.colors {
            Paint::new()
                .bg(Color::Yellow)
                .fg(Color::Black)
                .add_modifier(Modifier::BOLD)
        } else {
            Paint::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// The key names in the footer and the help screen.
    pub fn key(self) -> Paint {
        self.color(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Table headers.
    pub fn header(self) -> Paint {
        self.color(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Chart bars.
    pub fn chart(self) -> Paint {
        self.color(Color::Green)
    }

    pub fn kind(self, kind: SuspectKind) -> Paint {
        let color = match kind {
            SuspectKind::Blocked => Color::Red,
            SuspectKind::Backlog => Color::Magenta,
            SuspectKind::Growing => Color::Yellow,
            SuspectKind::ContextLeak | SuspectKind::TimerLeak => Color::LightRed,
            SuspectKind::AfterInLoop | SuspectKind::TickerLeak => Color::LightMagenta,
        };
        self.color(color).add_modifier(Modifier::BOLD)
    }
}

pub fn kind_name(kind: SuspectKind) -> &'static str {
    match kind {
        SuspectKind::Blocked => "blocked",
        SuspectKind::Backlog => "backlog",
        SuspectKind::Growing => "growing",
        SuspectKind::ContextLeak => "context",
        SuspectKind::TimerLeak => "timer",
        SuspectKind::AfterInLoop => "After",
        SuspectKind::TickerLeak => "ticker",
    }
}

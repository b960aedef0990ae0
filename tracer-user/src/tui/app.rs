//! The UI state and what each key does to it. No I/O, no clock: time comes
//! from the frames.

use std::cmp::Ordering;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::widgets::TableState;

use super::history::LiveHistory;
use super::text::group_site;
use super::theme::Theme;
use super::{Action, FocusDetail, Frame, MemberRow, Style, TargetInfo};
use crate::suspects::{site_label, Analysis, Group, Suspect};

/// The views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Suspects,
    Goroutines,
    Details,
}

impl View {
    pub const ALL: [View; 4] = [
        View::Overview,
        View::Suspects,
        View::Goroutines,
        View::Details,
    ];

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Suspects => "Suspects",
            View::Goroutines => "Goroutines",
            View::Details => "Details",
        }
    }
}

/// The columns the Goroutines view sorts by (`s` cycles in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortColumn {
    Site,
    State,
    Count,
    Oldest,
    Growth,
    Function,
}

impl SortColumn {
    pub fn next(self) -> Self {
        match self {
            SortColumn::Site => SortColumn::State,
            SortColumn::State => SortColumn::Count,
            SortColumn::Count => SortColumn::Oldest,
            SortColumn::Oldest => SortColumn::Growth,
            SortColumn::Growth => SortColumn::Function,
            SortColumn::Function => SortColumn::Site,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortColumn::Site => "site",
            SortColumn::State => "state",
            SortColumn::Count => "count",
            SortColumn::Oldest => "oldest",
            SortColumn::Growth => "growth",
            SortColumn::Function => "function",
        }
    }

    /// Numbers sort largest first, text alphabetically.
    fn descending(self) -> bool {
        matches!(
            self,
            SortColumn::Count | SortColumn::Oldest | SortColumn::Growth
        )
    }

    fn compare(self, a: &Group, b: &Group) -> Ordering {
        let text = |g: &Group| -> String {
            match self {
                SortColumn::Site => group_site(g),
                SortColumn::State => g.state.clone(),
                _ => g.start_function.clone().unwrap_or_default(),
            }
        };
        match self {
            SortColumn::Count => a.count.cmp(&b.count),
            SortColumn::Oldest => a.oldest_age_ns.cmp(&b.oldest_age_ns),
            SortColumn::Growth => a.growth_per_min.total_cmp(&b.growth_per_min),
            _ => text(a).cmp(&text(b)),
        }
    }
}

/// What a row of the Goroutines view is: selection follows this identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowId {
    Group(u64),
    /// A goroutine of the expanded group.
    Member(u64),
    /// The line under the members ("… 194 more", "reading …").
    Note,
}

/// A row of the Goroutines view.
pub enum GoroutineRow<'a> {
    Group(&'a Group),
    /// A member of the expanded group; `last` draws the tree's end.
    Member {
        row: &'a MemberRow,
        last: bool,
    },
    /// Members not listed, or `None` while the session has not sent them.
    Note(Option<u64>),
}

impl GoroutineRow<'_> {
    fn id(&self) -> RowId {
        match self {
            GoroutineRow::Group(g) => RowId::Group(g.id),
            GoroutineRow::Member { row, .. } => RowId::Member(row.goid),
            GoroutineRow::Note(_) => RowId::Note,
        }
    }
}

/// A list selection that follows its item when the list re-sorts, and stays
/// at the same position when its item goes away.
#[derive(Debug)]
pub struct Selection<K> {
    key: Option<K>,
    pub table: TableState,
}

impl<K> Default for Selection<K> {
    fn default() -> Self {
        Selection {
            key: None,
            table: TableState::default(),
        }
    }
}

impl<K: Copy + PartialEq> Selection<K> {
    pub fn key(&self) -> Option<K> {
        self.key
    }

    fn set_key(&mut self, key: K) {
        self.key = Some(key);
    }

    fn sync(&mut self, keys: &[K]) {
        if keys.is_empty() {
            self.table.select(None);
            return;
        }
        let index = self
            .key
            .and_then(|k| keys.iter().position(|x| *x == k))
            .unwrap_or_else(|| self.table.selected().unwrap_or(0).min(keys.len() - 1));
        self.table.select(Some(index));
        self.key = Some(keys[index]);
    }

    fn move_to(&mut self, keys: &[K], index: usize) {
        if let Some(last) = keys.len().checked_sub(1) {
            let index = index.min(last);
            self.table.select(Some(index));
            self.key = Some(keys[index]);
        }
    }

    fn move_by(&mut self, keys: &[K], delta: isize) {
        self.sync(keys);
        let current = self.table.selected().unwrap_or(0);
        self.move_to(keys, current.saturating_add_signed(delta));
    }
}

/// The whole state of the dashboard.
pub struct App {
    pub(super) info: TargetInfo,
    pub(super) theme: Theme,
    pub(super) view: View,
    /// Where `Esc` in Details goes back to.
    back_to: View,
    pub(super) help: bool,
    paused: bool,
    /// The picture on screen.
    pub(super) shown: Option<Frame>,
    /// While paused: the newest frame, kept aside.
    pub(super) newest: Option<Frame>,
    pub(super) history: LiveHistory,
    pub(super) suspects: Selection<u64>,
    pub(super) rows: Selection<RowId>,
    pub(super) sort: SortColumn,
    pub(super) reverse: bool,
    pub(super) filter: String,
    pub(super) filter_editing: bool,
    pub(super) expanded: Option<u64>,
    pub(super) details: Option<u64>,
    pub(super) details_scroll: u16,
    /// Rows of the list drawn last, for PgUp/PgDn.
    pub(super) page: usize,
}

impl App {
    pub fn new(info: TargetInfo, style: Style) -> Self {
        App {
            info,
            theme: Theme::new(style),
            view: View::Overview,
            back_to: View::Suspects,
            help: false,
            paused: false,
            shown: None,
            newest: None,
            history: LiveHistory::default(),
            suspects: Selection::default(),
            rows: Selection::default(),
            sort: SortColumn::Count,
            reverse: false,
            filter: String::new(),
            filter_editing: false,
            expanded: None,
            details: None,
            details_scroll: 0,
            page: 10,
        }
    }

    /// The tracing mode shown in the header and the Overview; it changes
    /// when the overhead budget detaches or re-attaches probes.
    pub fn set_mode(&mut self, mode: String) {
        self.info.mode = mode;
    }

    /// True while the user types a filter: every key is text.
    pub fn is_typing(&self) -> bool {
        self.filter_editing
    }

    /// Forgets the Overview's history (a replay seeking backwards).
    pub fn clear_history(&mut self) {
        self.history = LiveHistory::default();
    }

    /// Takes the data of a tick. While paused it is kept aside (the
    /// Overview's history still records it).
    pub fn update(&mut self, frame: Frame) {
        self.history.record(frame.now_ns, &frame.totals);
        if self.paused {
            self.newest = Some(frame);
        } else {
            self.shown = Some(frame);
            self.sync();
        }
    }

    /// The group whose [`FocusDetail`] the next frame must carry: the one
    /// shown in Details, else the group expanded in the Goroutines view.
    pub fn focus(&self) -> Option<u64> {
        match self.view {
            View::Details => self.details,
            _ => self.expanded,
        }
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn view(&self) -> View {
        self.view
    }

    /// The terminal changed size: the next draw lays everything out again.
    pub fn handle_resize(&mut self) -> Action {
        Action::Redraw
    }

    /// Draws the whole screen. Never panics, whatever the size.
    pub fn render(&mut self, frame: &mut ratatui::Frame) {
        super::view::render(self, frame);
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return match key.code {
                KeyCode::Char('c') => Action::Quit,
                _ => Action::None,
            };
        }
        if self.filter_editing {
            return self.filter_key(key.code);
        }
        if self.help {
            return match key.code {
                KeyCode::Char('?') | KeyCode::Esc => {
                    self.help = false;
                    Action::Redraw
                }
                KeyCode::Char('q') => Action::Quit,
                _ => Action::None,
            };
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('p') => self.toggle_pause(),
            KeyCode::Char(c @ '1'..='4') => {
                let index = c as usize - '1' as usize;
                self.switch_to(View::ALL[index]);
            }
            KeyCode::Tab => self.switch_to(View::ALL[(self.view.index() + 1) % 4]),
            KeyCode::BackTab => self.switch_to(View::ALL[(self.view.index() + 3) % 4]),
            code => {
                return match self.view {
                    View::Overview => Action::None,
                    View::Suspects => self.suspects_key(code),
                    View::Goroutines => self.goroutines_key(code),
                    View::Details => self.details_key(code),
                }
            }
        }
        Action::Redraw
    }

    fn toggle_pause(&mut self) {
        if self.paused {
            self.paused = false;
            if let Some(frame) = self.newest.take() {
                self.shown = Some(frame);
            }
            self.sync();
        } else {
            self.paused = true;
        }
    }

    fn switch_to(&mut self, view: View) {
        if view == self.view {
            return;
        }
        if view == View::Details {
            let target = match self.view {
                View::Goroutines => self.selected_row_group(),
                _ => self.selected_suspect().map(|s| s.group),
            };
            self.open_details(target.or(self.details));
        } else {
            self.view = view;
        }
    }

    fn open_details(&mut self, group: Option<u64>) {
        if self.view != View::Details {
            self.back_to = self.view;
        }
        if group != self.details {
            self.details_scroll = 0;
        }
        self.details = group;
        self.view = View::Details;
    }

    fn suspects_key(&mut self, code: KeyCode) -> Action {
        let keys = self.suspect_keys();
        let page = (self.page / 2).max(1) as isize;
        match code {
            KeyCode::Enter => {
                let Some(group) = self.selected_suspect().map(|s| s.group) else {
                    return Action::None;
                };
                self.open_details(Some(group));
            }
            code => {
                if !move_selection(&mut self.suspects, &keys, code, page) {
                    return Action::None;
                }
            }
        }
        Action::Redraw
    }

    fn goroutines_key(&mut self, code: KeyCode) -> Action {
        let keys = self.row_ids();
        let selected = self.rows.key();
        match code {
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => match selected {
                Some(RowId::Group(id)) if self.expanded != Some(id) => self.expanded = Some(id),
                Some(RowId::Group(_)) if code == KeyCode::Enter => self.open_details(self.expanded),
                Some(RowId::Member(_) | RowId::Note) if code == KeyCode::Enter => {
                    self.open_details(self.expanded)
                }
                _ => return Action::None,
            },
            KeyCode::Left | KeyCode::Char('h') => {
                let Some(id) = self.expanded.take() else {
                    return Action::None;
                };
                self.rows.set_key(RowId::Group(id));
            }
            KeyCode::Char('d') => {
                let Some(group) = self.selected_row_group() else {
                    return Action::None;
                };
                self.open_details(Some(group));
                return Action::Redraw;
            }
            KeyCode::Char('/') => self.filter_editing = true,
            KeyCode::Esc if !self.filter.is_empty() => self.filter.clear(),
            KeyCode::Esc if self.expanded.is_some() => {
                if let Some(id) = self.expanded.take() {
                    self.rows.set_key(RowId::Group(id));
                }
            }
            KeyCode::Char('s') => self.sort = self.sort.next(),
            KeyCode::Char('S') => self.reverse = !self.reverse,
            code => {
                let page = self.page.max(1) as isize;
                if !move_selection(&mut self.rows, &keys, code, page) {
                    return Action::None;
                }
                return Action::Redraw;
            }
        }
        self.sync();
        Action::Redraw
    }

    fn filter_key(&mut self, code: KeyCode) -> Action {
        match code {
            KeyCode::Char(c) => self.filter.push(c),
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Enter => self.filter_editing = false,
            KeyCode::Esc => {
                self.filter.clear();
                self.filter_editing = false;
            }
            _ => return Action::None,
        }
        self.sync();
        Action::Redraw
    }

    fn details_key(&mut self, code: KeyCode) -> Action {
        let page = self.page.max(1) as u16;
        let scroll = &mut self.details_scroll;
        match code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => self.view = self.back_to,
            KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
            KeyCode::PageUp => *scroll = scroll.saturating_sub(page),
            KeyCode::PageDown => *scroll = scroll.saturating_add(page),
            KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
            _ => return Action::None,
        }
        Action::Redraw
    }

    /// Re-anchors the selections on the current picture.
    fn sync(&mut self) {
        let keys = self.suspect_keys();
        self.suspects.sync(&keys);
        if let (Some(id), Some(analysis)) = (self.expanded, self.analysis()) {
            if !analysis.groups.iter().any(|g| g.id == id) {
                self.expanded = None;
                self.rows.set_key(RowId::Group(id));
            }
        }
        let keys = self.row_ids();
        self.rows.sync(&keys);
    }

    pub(super) fn analysis(&self) -> Option<&Analysis> {
        self.shown.as_ref().map(|f| &*f.analysis)
    }

    fn suspect_keys(&self) -> Vec<u64> {
        self.analysis()
            .map(|a| a.suspects.iter().map(|s| s.group).collect())
            .unwrap_or_default()
    }

    fn row_ids(&self) -> Vec<RowId> {
        self.goroutine_rows().iter().map(GoroutineRow::id).collect()
    }

    pub(super) fn selected_suspect(&self) -> Option<&Suspect> {
        let group = self.suspects.key()?;
        self.analysis()?.suspects.iter().find(|s| s.group == group)
    }

    /// The group of the selected row of the Goroutines view (a member's
    /// group for a member).
    fn selected_row_group(&self) -> Option<u64> {
        match self.rows.key()? {
            RowId::Group(id) => Some(id),
            RowId::Member(_) | RowId::Note => self.expanded,
        }
    }

    /// The group's details, from the picture or (paused, after the
    /// selection moved) from the frame kept aside.
    pub(super) fn focus_detail(&self, group: u64) -> Option<&FocusDetail> {
        [&self.shown, &self.newest]
            .into_iter()
            .flatten()
            .filter_map(|f| f.focus.as_ref())
            .find(|d| d.group == group)
    }

    /// The Goroutines view's rows: groups filtered and sorted, the expanded
    /// one followed by its members.
    pub(super) fn goroutine_rows(&self) -> Vec<GoroutineRow<'_>> {
        let Some(analysis) = self.analysis() else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        let mut groups: Vec<&Group> = analysis
            .groups
            .iter()
            .filter(|g| needle.is_empty() || matches_filter(g, &needle))
            .collect();
        groups.sort_by(|a, b| {
            let mut order = self.sort.compare(a, b);
            if self.sort.descending() != self.reverse {
                order = order.reverse();
            }
            order.then(b.count.cmp(&a.count)).then(a.id.cmp(&b.id))
        });
        let mut rows = Vec::with_capacity(groups.len());
        for g in groups {
            rows.push(GoroutineRow::Group(g));
            if self.expanded != Some(g.id) {
                continue;
            }
            match self.focus_detail(g.id) {
                Some(detail) => {
                    let hidden = detail
                        .members_total
                        .saturating_sub(detail.members.len() as u64);
                    let n = detail.members.len();
                    rows.extend(detail.members.iter().enumerate().map(|(i, row)| {
                        GoroutineRow::Member {
                            row,
                            last: i + 1 == n && hidden == 0,
                        }
                    }));
                    if hidden > 0 {
                        rows.push(GoroutineRow::Note(Some(hidden)));
                    }
                }
                None => rows.push(GoroutineRow::Note(None)),
            }
        }
        rows
    }

    /// How long before the newest data the frozen picture is (paused).
    pub(super) fn frozen_for_ns(&self) -> u64 {
        match (&self.shown, &self.newest) {
            (Some(shown), Some(newest)) => newest.now_ns.saturating_sub(shown.now_ns),
            _ => 0,
        }
    }
}

/// Up/Down/PgUp/PgDn/Home/End (and vi keys) on a list; false for other keys.
fn move_selection<K: Copy + PartialEq>(
    selection: &mut Selection<K>,
    keys: &[K],
    code: KeyCode,
    page: isize,
) -> bool {
    match code {
        KeyCode::Up | KeyCode::Char('k') => selection.move_by(keys, -1),
        KeyCode::Down | KeyCode::Char('j') => selection.move_by(keys, 1),
        KeyCode::PageUp => selection.move_by(keys, -page),
        KeyCode::PageDown => selection.move_by(keys, page),
        KeyCode::Home | KeyCode::Char('g') => selection.move_to(keys, 0),
        KeyCode::End | KeyCode::Char('G') => selection.move_to(keys, usize::MAX),
        _ => return false,
    }
    true
}

/// Case-insensitive match of the filter against a group's site, functions
/// and state.
fn matches_filter(g: &Group, needle: &str) -> bool {
    let mut haystacks = vec![g.state.as_str()];
    let label;
    if let Some(site) = &g.site {
        label = site_label(site);
        haystacks.push(&label);
        haystacks.push(&site.function);
        haystacks.extend(site.file.as_deref());
    }
    haystacks.extend(g.start_function.as_deref());
    haystacks.iter().any(|h| h.to_lowercase().contains(needle))
}

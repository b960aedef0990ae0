//! The UI state and what each key does to it. No I/O, no clock: time comes
//! from the frames.

use std::{cmp::Ordering, sync::Arc};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::widgets::TableState;

use super::history::LiveHistory;
use super::text::{context_site, group_site, timer_site};
use super::theme::Theme;
use super::{Action, FocusDetail, Frame, MemberRow, Style, TargetInfo};
use crate::suspects::timers::{ContextGroup, TimerGroup};
use crate::suspects::{site_label, Analysis, Group, Suspect, SuspectKind};

/// The views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Suspects,
    Goroutines,
    Timers,
    Contexts,
    Details,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Overview,
        View::Suspects,
        View::Goroutines,
        View::Timers,
        View::Contexts,
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
            View::Timers => "Timers",
            View::Contexts => "Contexts",
            View::Details => "Details",
        }
    }
}

/// A group a list view lists: goroutines, timers or contexts of one site.
pub trait Listed {
    /// Stable across updates while the group exists.
    fn id(&self) -> u64;
    /// What the list counts (goroutines, pending timers, live contexts):
    /// ties of the sort column go to the larger count.
    fn count(&self) -> u64;
    /// Whether one of its texts contains `needle` (lowercase).
    fn matches(&self, needle: &str) -> bool;
}

/// A column a list view sorts by (`s` cycles through [`Column::ALL`]).
pub trait Column: Copy + PartialEq + 'static {
    type Item: Listed;
    /// In the order `s` cycles through them.
    const ALL: &'static [Self];

    /// As the list's title names the order ("by count").
    fn name(self) -> &'static str;

    /// Numbers sort largest first, text alphabetically.
    fn numeric(self) -> bool;

    fn compare(self, a: &Self::Item, b: &Self::Item) -> Ordering;

    fn next(self) -> Self {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// The columns of the Goroutines view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoroutineColumn {
    Site,
    State,
    Count,
    Oldest,
    Growth,
    Function,
}

impl Column for GoroutineColumn {
    type Item = Group;
    const ALL: &'static [Self] = &[
        GoroutineColumn::Site,
        GoroutineColumn::State,
        GoroutineColumn::Count,
        GoroutineColumn::Oldest,
        GoroutineColumn::Growth,
        GoroutineColumn::Function,
    ];

    fn name(self) -> &'static str {
        match self {
            GoroutineColumn::Site => "site",
            GoroutineColumn::State => "state",
            GoroutineColumn::Count => "count",
            GoroutineColumn::Oldest => "oldest",
            GoroutineColumn::Growth => "growth",
            GoroutineColumn::Function => "function",
        }
    }

    fn numeric(self) -> bool {
        matches!(
            self,
            GoroutineColumn::Count | GoroutineColumn::Oldest | GoroutineColumn::Growth
        )
    }

    fn compare(self, a: &Group, b: &Group) -> Ordering {
        let text = |g: &Group| -> String {
            match self {
                GoroutineColumn::Site => group_site(g),
                GoroutineColumn::State => g.state.clone(),
                _ => g.start_function.clone().unwrap_or_default(),
            }
        };
        match self {
            GoroutineColumn::Count => a.count.cmp(&b.count),
            GoroutineColumn::Oldest => a.oldest_age_ns.cmp(&b.oldest_age_ns),
            GoroutineColumn::Growth => a.growth_per_min.total_cmp(&b.growth_per_min),
            _ => text(a).cmp(&text(b)),
        }
    }
}

/// The columns of the Timers view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerColumn {
    Kind,
    Site,
    Pending,
    Created,
    Fired,
    Stopped,
    Reset,
    Expired,
    Oldest,
    Growth,
}

impl Column for TimerColumn {
    type Item = TimerGroup;
    const ALL: &'static [Self] = &[
        TimerColumn::Kind,
        TimerColumn::Site,
        TimerColumn::Pending,
        TimerColumn::Created,
        TimerColumn::Fired,
        TimerColumn::Stopped,
        TimerColumn::Reset,
        TimerColumn::Expired,
        TimerColumn::Oldest,
        TimerColumn::Growth,
    ];

    fn name(self) -> &'static str {
        match self {
            TimerColumn::Kind => "kind",
            TimerColumn::Site => "site",
            TimerColumn::Pending => "pending",
            TimerColumn::Created => "created",
            TimerColumn::Fired => "fired",
            TimerColumn::Stopped => "stopped",
            TimerColumn::Reset => "reset",
            TimerColumn::Expired => "expired",
            TimerColumn::Oldest => "oldest",
            TimerColumn::Growth => "growth",
        }
    }

    fn numeric(self) -> bool {
        !matches!(self, TimerColumn::Kind | TimerColumn::Site)
    }

    fn compare(self, a: &TimerGroup, b: &TimerGroup) -> Ordering {
        let n = |g: &TimerGroup| match self {
            TimerColumn::Created => g.created,
            TimerColumn::Fired => g.fired,
            TimerColumn::Stopped => g.stopped,
            TimerColumn::Reset => g.reset,
            TimerColumn::Expired => g.expired,
            _ => g.pending,
        };
        match self {
            TimerColumn::Kind => lowercase(a.kind.label()).cmp(&lowercase(b.kind.label())),
            TimerColumn::Site => timer_site(a).cmp(&timer_site(b)),
            TimerColumn::Oldest => a.oldest_pending_s.total_cmp(&b.oldest_pending_s),
            TimerColumn::Growth => a.growth_per_min.total_cmp(&b.growth_per_min),
            _ => n(a).cmp(&n(b)),
        }
    }
}

/// The columns of the Contexts view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextColumn {
    Kind,
    Site,
    Live,
    Retained,
    Created,
    Cancelled,
    ByCaller,
    ByParent,
    ByDeadline,
    Oldest,
    Deadline,
    Growth,
}

impl Column for ContextColumn {
    type Item = ContextGroup;
    const ALL: &'static [Self] = &[
        ContextColumn::Kind,
        ContextColumn::Site,
        ContextColumn::Live,
        ContextColumn::Retained,
        ContextColumn::Created,
        ContextColumn::Cancelled,
        ContextColumn::ByCaller,
        ContextColumn::ByParent,
        ContextColumn::ByDeadline,
        ContextColumn::Oldest,
        ContextColumn::Deadline,
        ContextColumn::Growth,
    ];

    fn name(self) -> &'static str {
        match self {
            ContextColumn::Kind => "kind",
            ContextColumn::Site => "site",
            ContextColumn::Live => "live",
            ContextColumn::Retained => "retained",
            ContextColumn::Created => "created",
            ContextColumn::Cancelled => "cancelled",
            ContextColumn::ByCaller => "caller cancels",
            ContextColumn::ByParent => "parent cancels",
            ContextColumn::ByDeadline => "deadline cancels",
            ContextColumn::Oldest => "oldest",
            ContextColumn::Deadline => "deadline",
            ContextColumn::Growth => "growth",
        }
    }

    fn numeric(self) -> bool {
        !matches!(self, ContextColumn::Kind | ContextColumn::Site)
    }

    fn compare(self, a: &ContextGroup, b: &ContextGroup) -> Ordering {
        let n = |c: &ContextGroup| match self {
            ContextColumn::Live => c.live,
            ContextColumn::Created => c.created,
            ContextColumn::Cancelled => c.cancelled,
            ContextColumn::ByCaller => c.by_caller,
            ContextColumn::ByParent => c.by_parent,
            ContextColumn::ByDeadline => c.by_deadline,
            _ => c.retained,
        };
        // No deadline sorts below any deadline.
        let deadline = |c: &ContextGroup| c.deadline_s.unwrap_or(-1.0);
        match self {
            ContextColumn::Kind => lowercase(a.kind.label()).cmp(&lowercase(b.kind.label())),
            ContextColumn::Site => context_site(a).cmp(&context_site(b)),
            ContextColumn::Oldest => a.oldest_live_s.total_cmp(&b.oldest_live_s),
            ContextColumn::Deadline => deadline(a).total_cmp(&deadline(b)),
            ContextColumn::Growth => a.growth_per_min.total_cmp(&b.growth_per_min),
            _ => n(a).cmp(&n(b)),
        }
    }
}

impl Listed for Group {
    fn id(&self) -> u64 {
        self.id
    }

    fn count(&self) -> u64 {
        self.count
    }

    /// Its site, functions and state.
    fn matches(&self, needle: &str) -> bool {
        let mut haystacks = vec![self.state.as_str()];
        let label;
        if let Some(site) = &self.site {
            label = site_label(site);
            haystacks.push(&label);
            haystacks.push(&site.function);
            haystacks.extend(site.file.as_deref());
        }
        haystacks.extend(self.start_function.as_deref());
        contains(&haystacks, needle)
    }
}

impl Listed for TimerGroup {
    fn id(&self) -> u64 {
        self.id
    }

    fn count(&self) -> u64 {
        self.pending
    }

    /// Its kind and site.
    fn matches(&self, needle: &str) -> bool {
        let site = timer_site(self);
        let mut haystacks = vec![self.kind.label(), site.as_str()];
        if let Some(s) = &self.site {
            haystacks.push(&s.function);
            haystacks.extend(s.file.as_deref());
        }
        contains(&haystacks, needle)
    }
}

impl Listed for ContextGroup {
    fn id(&self) -> u64 {
        self.id
    }

    /// The ones that can leak: kept by a cancelable parent or a deadline.
    fn count(&self) -> u64 {
        self.retained
    }

    /// Its kind and site.
    fn matches(&self, needle: &str) -> bool {
        let site = context_site(self);
        let mut haystacks = vec![self.kind.label(), site.as_str()];
        if let Some(s) = &self.site {
            haystacks.push(&s.function);
            haystacks.extend(s.file.as_deref());
        }
        contains(&haystacks, needle)
    }
}

/// Kinds sort A to Z whatever their case ("ctx deadline" between
/// "AfterFunc" and "NewTimer").
fn lowercase(s: &str) -> String {
    s.to_lowercase()
}

fn contains(haystacks: &[&str], needle: &str) -> bool {
    haystacks.iter().any(|h| h.to_lowercase().contains(needle))
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

/// What a key did to a list view, for [`App`] to finish.
enum ListIntent {
    /// Not a key of this list.
    Ignored,
    /// The selection moved.
    Moved,
    /// The filter, sort or expansion changed: re-anchor the selections.
    Changed,
    /// Start typing the filter.
    TypeFilter,
    /// Open the group in Details.
    Details(u64),
    /// Back to the Suspects view the pane was opened from.
    Back,
}

/// The state of a list view (Goroutines, Timers, Contexts): selection,
/// sort, filter, and the expanded group.
#[derive(Debug)]
pub struct ListState<K, C> {
    pub rows: Selection<K>,
    pub sort: C,
    pub reverse: bool,
    /// As typed; matched case-insensitively.
    pub filter: String,
    /// Goroutines: the group listed with its members. Timers, Contexts: the
    /// selected group while its pane is open.
    pub expanded: Option<u64>,
    /// The pane was opened from the Suspects view: Esc goes back there.
    from_suspect: bool,
}

impl<K, C: Column> ListState<K, C> {
    fn new(sort: C) -> Self {
        ListState {
            rows: Selection::default(),
            sort,
            reverse: false,
            filter: String::new(),
            expanded: None,
            from_suspect: false,
        }
    }

    /// The items that pass the filter, in the list's order: by the sort
    /// column, then the larger count, then the id.
    pub fn arrange<'a>(&self, items: &'a [C::Item]) -> Vec<&'a C::Item> {
        let needle = self.filter.to_lowercase();
        let mut shown: Vec<&C::Item> = items
            .iter()
            .filter(|item| needle.is_empty() || item.matches(&needle))
            .collect();
        shown.sort_by(|a, b| {
            let mut order = self.sort.compare(a, b);
            if self.sort.numeric() != self.reverse {
                order = order.reverse();
            }
            order
                .then(b.count().cmp(&a.count()))
                .then(a.id().cmp(&b.id()))
        });
        shown
    }
}

impl<K: Copy + PartialEq, C: Column> ListState<K, C> {
    /// The keys every list shares: `/`, `Esc` clearing the filter, `s`/`S`,
    /// and moving the selection.
    fn shared_key(&mut self, keys: &[K], code: KeyCode, page: isize) -> ListIntent {
        match code {
            KeyCode::Char('/') => ListIntent::TypeFilter,
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                ListIntent::Changed
            }
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                ListIntent::Changed
            }
            KeyCode::Char('S') => {
                self.reverse = !self.reverse;
                ListIntent::Changed
            }
            code if move_selection(&mut self.rows, keys, code, page) => ListIntent::Moved,
            _ => ListIntent::Ignored,
        }
    }
}

impl<C: Column> ListState<RowId, C> {
    /// Goroutines: `→`/`Enter` lists the group's goroutines under it, `Enter`
    /// on an expanded group or `d` opens Details, `←`/`Esc` folds.
    fn goroutine_key(&mut self, keys: &[RowId], code: KeyCode, page: isize) -> ListIntent {
        let expand = matches!(code, KeyCode::Enter | KeyCode::Right | KeyCode::Char('l'));
        match (code, self.rows.key()) {
            (_, Some(RowId::Group(id))) if expand && self.expanded != Some(id) => {
                self.expanded = Some(id);
                ListIntent::Changed
            }
            (KeyCode::Enter, Some(_)) => self
                .expanded
                .map_or(ListIntent::Ignored, ListIntent::Details),
            _ if expand => ListIntent::Ignored,
            (KeyCode::Left | KeyCode::Char('h'), _) => self.fold(),
            (KeyCode::Esc, _) if self.filter.is_empty() && self.expanded.is_some() => self.fold(),
            (KeyCode::Char('d'), Some(RowId::Group(id))) => ListIntent::Details(id),
            (KeyCode::Char('d'), Some(_)) => self
                .expanded
                .map_or(ListIntent::Ignored, ListIntent::Details),
            (KeyCode::Char('d'), None) => ListIntent::Ignored,
            _ => self.shared_key(keys, code, page),
        }
    }

    /// Folds the expanded group, selecting it.
    fn fold(&mut self) -> ListIntent {
        let Some(id) = self.expanded.take() else {
            return ListIntent::Ignored;
        };
        self.rows.set_key(RowId::Group(id));
        ListIntent::Changed
    }
}

impl<C: Column> ListState<u64, C> {
    /// Timers, Contexts: `→`/`Enter` opens the selected group's pane,
    /// `Enter` with the pane open or `d` opens Details, `←`/`Esc` closes the
    /// pane (`Esc` back to Suspects when it was opened from there).
    fn pane_key(&mut self, keys: &[u64], code: KeyCode, page: isize) -> ListIntent {
        let selected = self.rows.table.selected().and(self.rows.key());
        match code {
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => match (selected, self.expanded)
            {
                (Some(id), None) => {
                    self.expanded = Some(id);
                    ListIntent::Changed
                }
                (Some(id), Some(_)) if code == KeyCode::Enter => ListIntent::Details(id),
                _ => ListIntent::Ignored,
            },
            KeyCode::Left | KeyCode::Char('h') => {
                self.from_suspect = false;
                match self.expanded.take() {
                    Some(_) => ListIntent::Changed,
                    None => ListIntent::Ignored,
                }
            }
            KeyCode::Esc if self.filter.is_empty() && self.expanded.is_some() => {
                self.expanded = None;
                if std::mem::take(&mut self.from_suspect) {
                    ListIntent::Back
                } else {
                    ListIntent::Changed
                }
            }
            KeyCode::Char('d') => selected.map_or(ListIntent::Ignored, ListIntent::Details),
            code => self.shared_key(keys, code, page),
        }
    }

    /// An open pane shows the selected group (none when the list is empty).
    fn follow(&mut self) {
        if self.expanded.is_some() {
            self.expanded = self.rows.table.selected().and(self.rows.key());
        }
    }

    fn sync(&mut self, keys: &[u64]) {
        self.rows.sync(keys);
        self.follow();
    }

    /// Selects `id` with its pane open, clearing a filter that hides it;
    /// false when `items` has no such group.
    fn reveal(&mut self, items: &[C::Item], id: u64) -> bool {
        if !items.iter().any(|g| g.id() == id) {
            return false;
        }
        if !self.arrange(items).iter().any(|g| g.id() == id) {
            self.filter.clear();
        }
        let keys: Vec<u64> = self.arrange(items).iter().map(|g| g.id()).collect();
        self.rows.set_key(id);
        self.rows.sync(&keys);
        self.expanded = Some(id);
        self.from_suspect = true;
        true
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
    pub(super) goroutines: ListState<RowId, GoroutineColumn>,
    pub(super) timers: ListState<u64, TimerColumn>,
    pub(super) contexts: ListState<u64, ContextColumn>,
    /// The current list's filter is being typed.
    pub(super) filter_editing: bool,
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
            goroutines: ListState::new(GoroutineColumn::Count),
            timers: ListState::new(TimerColumn::Pending),
            contexts: ListState::new(ContextColumn::Retained),
            filter_editing: false,
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
        self.history
            .record(frame.now_ns, &frame.totals, &frame.analysis.timers.totals);
        if self.paused {
            self.newest = Some(frame);
        } else {
            self.shown = Some(frame);
            self.sync();
        }
    }

    /// The group whose [`FocusDetail`] the next frame must carry: the one
    /// shown in Details, the timer or context group whose pane is open,
    /// else the group expanded in the Goroutines view.
    pub fn focus(&self) -> Option<u64> {
        match self.view {
            View::Details => self.details,
            View::Timers => self.timers.expanded,
            View::Contexts => self.contexts.expanded,
            _ => self.goroutines.expanded,
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
        let views = View::ALL.len();
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('p') => self.toggle_pause(),
            KeyCode::Char(c @ '1'..='9') if (c as usize - '1' as usize) < views => {
                let index = c as usize - '1' as usize;
                self.switch_to(View::ALL[index]);
            }
            KeyCode::Tab => self.switch_to(View::ALL[(self.view.index() + 1) % views]),
            KeyCode::BackTab => self.switch_to(View::ALL[(self.view.index() + views - 1) % views]),
            code => return self.view_key(code),
        }
        Action::Redraw
    }

    fn view_key(&mut self, code: KeyCode) -> Action {
        let page = self.page.max(1) as isize;
        let intent = match self.view {
            View::Overview => return Action::None,
            View::Suspects => return self.suspects_key(code),
            View::Details => return self.details_key(code),
            View::Goroutines => {
                let keys = self.row_ids();
                self.goroutines.goroutine_key(&keys, code, page)
            }
            View::Timers => {
                let keys = ids(&self.timer_rows());
                self.timers.pane_key(&keys, code, page)
            }
            View::Contexts => {
                let keys = ids(&self.context_rows());
                self.contexts.pane_key(&keys, code, page)
            }
        };
        match intent {
            ListIntent::Ignored => return Action::None,
            ListIntent::Moved => {
                self.timers.follow();
                self.contexts.follow();
            }
            ListIntent::Changed => self.sync(),
            ListIntent::TypeFilter => self.filter_editing = true,
            ListIntent::Details(group) => self.open_details(Some(group)),
            ListIntent::Back => {
                self.view = View::Suspects;
                self.sync();
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
        self.timers.from_suspect = false;
        self.contexts.from_suspect = false;
        if view == View::Details {
            let target = match self.view {
                View::Goroutines => self.selected_row_group(),
                View::Timers => self
                    .timers
                    .rows
                    .table
                    .selected()
                    .and(self.timers.rows.key()),
                View::Contexts => self
                    .contexts
                    .rows
                    .table
                    .selected()
                    .and(self.contexts.rows.key()),
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
                let Some((group, kind)) = self.selected_suspect().map(|s| (s.group, s.kind)) else {
                    return Action::None;
                };
                self.open_suspect(group, kind);
            }
            code => {
                if !move_selection(&mut self.suspects, &keys, code, page) {
                    return Action::None;
                }
            }
        }
        Action::Redraw
    }

    /// Where a suspect's details are: a timer or context suspect's group in
    /// the Timers or Contexts view with its pane open, a goroutine group
    /// (or a group gone from the lists) in Details.
    fn open_suspect(&mut self, group: u64, kind: SuspectKind) {
        let analysis = self.shown.as_ref().map(|f| Arc::clone(&f.analysis));
        let Some(analysis) = analysis else {
            return;
        };
        let list = match kind {
            SuspectKind::ContextLeak => self
                .contexts
                .reveal(&analysis.timers.contexts, group)
                .then_some(View::Contexts),
            SuspectKind::TimerLeak | SuspectKind::AfterInLoop | SuspectKind::TickerLeak => self
                .timers
                .reveal(&analysis.timers.timers, group)
                .then_some(View::Timers),
            SuspectKind::Blocked | SuspectKind::Backlog | SuspectKind::Growing => None,
        };
        match list {
            Some(view) => self.view = view,
            None => self.open_details(Some(group)),
        }
    }

    fn filter_key(&mut self, code: KeyCode) -> Action {
        let Some(filter) = self.filter_mut() else {
            self.filter_editing = false;
            return Action::Redraw;
        };
        match code {
            KeyCode::Char(c) => filter.push(c),
            KeyCode::Backspace => {
                filter.pop();
            }
            KeyCode::Enter => self.filter_editing = false,
            KeyCode::Esc => {
                filter.clear();
                self.filter_editing = false;
            }
            _ => return Action::None,
        }
        self.sync();
        Action::Redraw
    }

    /// The filter of the current list view.
    fn filter_mut(&mut self) -> Option<&mut String> {
        match self.view {
            View::Goroutines => Some(&mut self.goroutines.filter),
            View::Timers => Some(&mut self.timers.filter),
            View::Contexts => Some(&mut self.contexts.filter),
            View::Overview | View::Suspects | View::Details => None,
        }
    }

    /// The filter of the current list view ("" elsewhere).
    pub(super) fn filter(&self) -> &str {
        match self.view {
            View::Goroutines => &self.goroutines.filter,
            View::Timers => &self.timers.filter,
            View::Contexts => &self.contexts.filter,
            View::Overview | View::Suspects | View::Details => "",
        }
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
        if let (Some(id), Some(analysis)) = (self.goroutines.expanded, self.analysis()) {
            if !analysis.groups.iter().any(|g| g.id == id) {
                self.goroutines.expanded = None;
                self.goroutines.rows.set_key(RowId::Group(id));
            }
        }
        let keys = self.row_ids();
        self.goroutines.rows.sync(&keys);
        let keys = ids(&self.timer_rows());
        self.timers.sync(&keys);
        let keys = ids(&self.context_rows());
        self.contexts.sync(&keys);
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

    /// The suspect about a group, if any.
    pub(super) fn suspect_of(&self, group: u64) -> Option<&Suspect> {
        self.analysis()?.suspects.iter().find(|s| s.group == group)
    }

    /// The group of the selected row of the Goroutines view (a member's
    /// group for a member).
    fn selected_row_group(&self) -> Option<u64> {
        match self.goroutines.rows.key()? {
            RowId::Group(id) => Some(id),
            RowId::Member(_) | RowId::Note => self.goroutines.expanded,
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
        let groups = self.goroutines.arrange(&analysis.groups);
        let mut rows = Vec::with_capacity(groups.len());
        for g in groups {
            rows.push(GoroutineRow::Group(g));
            if self.goroutines.expanded != Some(g.id) {
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

    /// The Timers view's rows: timer groups filtered and sorted.
    pub(super) fn timer_rows(&self) -> Vec<&TimerGroup> {
        self.analysis()
            .map(|a| self.timers.arrange(&a.timers.timers))
            .unwrap_or_default()
    }

    /// The Contexts view's rows: context groups filtered and sorted.
    pub(super) fn context_rows(&self) -> Vec<&ContextGroup> {
        self.analysis()
            .map(|a| self.contexts.arrange(&a.timers.contexts))
            .unwrap_or_default()
    }

    /// How long before the newest data the frozen picture is (paused).
    pub(super) fn frozen_for_ns(&self) -> u64 {
        match (&self.shown, &self.newest) {
            (Some(shown), Some(newest)) => newest.now_ns.saturating_sub(shown.now_ns),
            _ => 0,
        }
    }
}

fn ids<T: Listed>(rows: &[&T]) -> Vec<u64> {
    rows.iter().map(|g| g.id()).collect()
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

//! Names of pcs, kept for the recording and read back from it.
//!
//! Live, [`SymbolCache`] sits between the session and the target's
//! symbolizer: it answers repeated lookups from memory and, when recording,
//! collects every new answer for the next `SYMBOLS` record. On replay,
//! [`SymbolStore`] answers from what the recording carried, so a file is
//! read without the binary. Both give the answers the target gave, so
//! documents made from a replay are those made live.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    sync::Arc,
};

use crate::{
    model::GoroutineTable,
    report::{unknown, SourceLocation, Symbols},
};

use super::format::SymbolDelta;

/// Every answer known: the store of a replay, the cache of a live session.
#[derive(Default)]
pub struct SymbolStore {
    wait_reasons: HashMap<u8, String>,
    creation_sites: HashMap<u64, SourceLocation>,
    functions: HashMap<u64, Option<String>>,
    stacks: HashMap<Arc<[u64]>, Vec<SourceLocation>>,
}

impl SymbolStore {
    pub fn extend(&mut self, delta: SymbolDelta) {
        self.wait_reasons.extend(delta.wait_reasons);
        self.creation_sites.extend(delta.creation_sites);
        self.functions.extend(delta.functions);
        self.stacks
            .extend(delta.stacks.into_iter().map(|(pcs, s)| (Arc::from(pcs), s)));
    }
}

/// A pc the recording has no name for is shown by address, as live shows
/// a pc the binary has no name for.
impl Symbols for SymbolStore {
    fn creation_site(&self, runtime_pc: u64) -> SourceLocation {
        self.creation_sites
            .get(&runtime_pc)
            .cloned()
            .unwrap_or_else(|| unknown(runtime_pc))
    }

    fn stack(&self, pcs: &[u64]) -> Vec<SourceLocation> {
        self.stacks
            .get(pcs)
            .cloned()
            .unwrap_or_else(|| pcs.iter().map(|&pc| unknown(pc)).collect())
    }

    fn function(&self, runtime_pc: u64) -> Option<String> {
        self.functions.get(&runtime_pc).cloned().flatten()
    }

    fn wait_reason(&self, code: u8) -> String {
        self.wait_reasons
            .get(&code)
            .cloned()
            .unwrap_or_else(|| format!("wait reason {code}"))
    }
}

/// The live session's symbolizer: the target's answers, each computed once.
pub struct SymbolCache<'a> {
    inner: &'a dyn Symbols,
    state: RefCell<CacheState>,
}

#[derive(Default)]
struct CacheState {
    known: SymbolStore,
    /// Answers not yet handed to the recording (`None`: not recording).
    delta: Option<SymbolDelta>,
    /// Stacks already covered, by address: each `Arc` is held here, so an
    /// address is never reused for another stack.
    covered_stacks: HashMap<usize, Arc<[u64]>>,
    covered_pcs: HashSet<u64>,
}

impl<'a> SymbolCache<'a> {
    /// With `recording`, every new answer is also kept for
    /// [`SymbolCache::take_delta`], and all wait-reason texts are in the
    /// first one.
    pub fn new(inner: &'a dyn Symbols, recording: bool) -> Self {
        let cache = SymbolCache {
            inner,
            state: RefCell::new(CacheState {
                delta: recording.then(SymbolDelta::default),
                ..CacheState::default()
            }),
        };
        if recording {
            for code in 0..=u8::MAX {
                cache.wait_reason(code);
            }
        }
        cache
    }

    /// Looks up, ahead of need, everything the table refers to: creation
    /// sites (of live goroutines and of every site with counts), start
    /// functions and blocked-at stacks. A replay can then show any of them
    /// at any tick, in views the live session never drew.
    pub fn cover(&self, table: &GoroutineTable) {
        for (pc, _) in table.sites() {
            self.cover_site(pc);
        }
        for g in table.iter() {
            if let Some(pc) = g.gopc {
                self.cover_site(pc);
            }
            if let Some(pc) = g.start_pc {
                if self.state.borrow_mut().covered_pcs.insert(pc | 1 << 63) {
                    self.function(pc);
                }
            }
            if let Some(stack) = &g.blocked_stack {
                self.cover_stack(stack);
            }
        }
    }

    /// Looks up a stack ahead of need (e.g. a creator stack).
    pub fn cover_stack(&self, stack: &Arc<[u64]>) {
        let address = Arc::as_ptr(stack) as *const u64 as usize;
        let new = self
            .state
            .borrow_mut()
            .covered_stacks
            .insert(address, Arc::clone(stack))
            .is_none();
        if new {
            self.stack(stack);
        }
    }

    fn cover_site(&self, pc: u64) {
        if self.state.borrow_mut().covered_pcs.insert(pc) {
            self.creation_site(pc);
        }
    }

    /// The answers found since the last call.
    pub fn take_delta(&self) -> SymbolDelta {
        let mut state = self.state.borrow_mut();
        state.delta.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

impl Symbols for SymbolCache<'_> {
    fn creation_site(&self, runtime_pc: u64) -> SourceLocation {
        if let Some(site) = self.state.borrow().known.creation_sites.get(&runtime_pc) {
            return site.clone();
        }
        let site = self.inner.creation_site(runtime_pc);
        let mut state = self.state.borrow_mut();
        if let Some(delta) = &mut state.delta {
            delta.creation_sites.push((runtime_pc, site.clone()));
        }
        state.known.creation_sites.insert(runtime_pc, site.clone());
        site
    }

    fn stack(&self, pcs: &[u64]) -> Vec<SourceLocation> {
        if let Some(stack) = self.state.borrow().known.stacks.get(pcs) {
            return stack.clone();
        }
        let stack = self.inner.stack(pcs);
        let mut state = self.state.borrow_mut();
        if let Some(delta) = &mut state.delta {
            delta.stacks.push((pcs.to_vec(), stack.clone()));
        }
        state.known.stacks.insert(Arc::from(pcs), stack.clone());
        stack
    }

    fn function(&self, runtime_pc: u64) -> Option<String> {
        if let Some(function) = self.state.borrow().known.functions.get(&runtime_pc) {
            return function.clone();
        }
        let function = self.inner.function(runtime_pc);
        let mut state = self.state.borrow_mut();
        if let Some(delta) = &mut state.delta {
            delta.functions.push((runtime_pc, function.clone()));
        }
        state.known.functions.insert(runtime_pc, function.clone());
        function
    }

    fn wait_reason(&self, code: u8) -> String {
        if let Some(text) = self.state.borrow().known.wait_reasons.get(&code) {
            return text.clone();
        }
        let text = self.inner.wait_reason(code);
        let mut state = self.state.borrow_mut();
        if let Some(delta) = &mut state.delta {
            delta.wait_reasons.push((code, text.clone()));
        }
        state.known.wait_reasons.insert(code, text.clone());
        text
    }
}

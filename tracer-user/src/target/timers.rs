//! Where the timer and context probes sit, and the runtime layouts they
//! read, per Go version (see `tracer-ebpf/src/main.rs` for why these
//! functions).
//!
//! The linker drops what a program never calls: a program that uses no
//! context has no `context.(*cancelCtx).propagateCancel`. Each probe is
//! planned only when its function is there, and [`TimerPlan::missing`] says
//! which are not.

use super::{elf::ElfImage, entry_probe, ret_probes, ProbePoint, TargetError};

/// Offsets the timer and context probes read (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TimerOffsets {
    /// The `runtime.timer` inside what the create/reset/stop functions get:
    /// 0 up to Go 1.22 (a `*runtime.timer`), 16 since (a `*runtime.timeTimer`).
    pub timer_in_arg: u64,
    pub when: u64,
    pub period: u64,
    pub f: u64,
    /// The data word of `timer.arg` (an `any`).
    pub arg_data: u64,
    /// Go ≤1.22 `timer.status` and `timer.nextwhen`; 0 since.
    pub status: u64,
    pub nextwhen: u64,
    /// Go ≥1.23 `timer.isChan`, `g.timer` and `g.sleepWhen`; 0 before.
    pub is_chan: u64,
    pub g_timer: u64,
    pub g_sleep_when: u64,
    /// `context.cancelCtx.err` (every version).
    pub ctx_err: u64,
    /// The timer heap of a `runtime.p`: the slice `p.timers` (Go ≤1.22, of
    /// `*timer`) or `p.timers.heap` (Go ≥1.23, of `timerWhen{timer, when}`),
    /// and the size of its elements.
    pub p_timer_heap: u64,
    pub heap_entry: u64,
    /// Go ≥1.23 `timer.state` (bit 4: a zombie, stopped but still in the
    /// heap); 0 before.
    pub state: u64,
}

/// The layouts of Go 1.21–1.27 (amd64), checked against each version's
/// DWARF by `timer_offsets_match_dwarf` in the target tests.
pub fn offsets(minor: u32) -> Option<TimerOffsets> {
    let old = TimerOffsets {
        timer_in_arg: 0,
        when: 8,
        period: 16,
        f: 24,
        arg_data: 40,
        status: 64,
        nextwhen: 56,
        is_chan: 0,
        g_timer: 0,
        g_sleep_when: 0,
        ctx_err: 48,
        p_timer_heap: 8840,
        heap_entry: 8,
        state: 0,
    };
    let new = TimerOffsets {
        timer_in_arg: 16,
        when: 16,
        period: 24,
        f: 32,
        arg_data: 48,
        status: 0,
        nextwhen: 0,
        is_chan: 10,
        g_timer: 360,
        g_sleep_when: 368,
        ctx_err: 48,
        p_timer_heap: 8840 + 8,
        heap_entry: 16,
        state: 9,
    };
    Some(match minor {
        21 => old,
        22 => TimerOffsets {
            p_timer_heap: 8872,
            ..old
        },
        23 | 24 => new,
        // Go 1.25 added timer.rand before `when` and moved g.timer.
        25 => TimerOffsets {
            when: 24,
            period: 32,
            f: 40,
            arg_data: 56,
            g_timer: 352,
            g_sleep_when: 360,
            p_timer_heap: 9392 + 8,
            ..new
        },
        26 | 27 => TimerOffsets {
            when: 24,
            period: 32,
            f: 40,
            arg_data: 56,
            p_timer_heap: 13672 + 8,
            ..new
        },
        _ => return None,
    })
}

/// The timer and context probes of one binary; empty lists for functions
/// it does not have.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimerPlan {
    /// Go ≤1.22 `time.startTimer` (after its prologue); Go ≥1.23 every
    /// `RET` of `time.newTimer` (RAX = the armed `timeTimer`).
    pub create: Vec<ProbePoint>,
    /// Go ≥1.23 `time.resetTimer(t, when, period)`; Go ≤1.22
    /// `time.modTimer(t, when, period, …)` (Ticker.Reset).
    pub reset: Vec<ProbePoint>,
    /// Go ≤1.22 `time.resetTimer(t, when)` (Timer.Reset).
    pub reset_when: Vec<ProbePoint>,
    pub stop: Vec<ProbePoint>,
    /// Go ≤1.22 `runtime.runOneTimer`; Go ≥1.23 `runtime.(*timer).unlockAndRun`.
    pub fire: Vec<ProbePoint>,
    pub sleep: Vec<ProbePoint>,
    pub context_create: Vec<ProbePoint>,
    pub context_cancel: Vec<ProbePoint>,
    /// Link-time entries of the timer functions reported when they fire
    /// (0 when absent).
    pub send_time: u64,
    pub go_func: u64,
    pub goroutine_ready: u64,
    /// Link-time addresses of the `context.Context` itabs of `*cancelCtx`,
    /// `*timerCtx`, `*afterFuncCtx` and `*valueCtx` (`.symtab` only; 0
    /// when absent: then whether a parent keeps its child is unknown).
    pub itab_cancel_ctx: u64,
    pub itab_timer_ctx: u64,
    pub itab_after_func_ctx: u64,
    pub itab_value_ctx: u64,
    /// Functions not in the binary: what they would have reported is not
    /// traced (the program does not use it).
    pub missing: Vec<&'static str>,
}

impl TimerPlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.stop.is_empty()
            && self.fire.is_empty()
            && self.sleep.is_empty()
            && self.context_create.is_empty()
            && self.context_cancel.is_empty()
    }
}

pub const START_TIMER: &str = "time.startTimer";
pub const NEW_TIMER: &str = "time.newTimer";
pub const RESET_TIMER: &str = "time.resetTimer";
pub const MOD_TIMER: &str = "time.modTimer";
pub const STOP_TIMER: &str = "time.stopTimer";
pub const RUN_ONE_TIMER: &str = "runtime.runOneTimer";
pub const UNLOCK_AND_RUN: &str = "runtime.(*timer).unlockAndRun";
pub const RESET_FOR_SLEEP: &str = "runtime.resetForSleep";
pub const PROPAGATE_CANCEL: &str = "context.(*cancelCtx).propagateCancel";
pub const CANCEL: &str = "context.(*cancelCtx).cancel";
pub const SEND_TIME: &str = "time.sendTime";
pub const GO_FUNC: &str = "time.goFunc";
pub const GOROUTINE_READY: &str = "runtime.goroutineReady";

/// Plans the timer and context probes of a Go 1.`minor` binary.
pub(crate) fn plan(elf: &ElfImage<'_>, what: &str, minor: u32) -> Result<TimerPlan, TargetError> {
    let mut plan = TimerPlan::default();
    let mut missing = Vec::new();
    let mut entry = |name: &'static str| -> Result<Vec<ProbePoint>, TargetError> {
        if elf.symbol(name).is_none() {
            missing.push(name);
            return Ok(Vec::new());
        }
        Ok(vec![entry_probe(elf, what, name)?])
    };
    if minor <= 22 {
        plan.create = entry(START_TIMER)?;
        plan.reset = entry(MOD_TIMER)?;
        plan.reset_when = entry(RESET_TIMER)?;
        plan.fire = entry(RUN_ONE_TIMER)?;
    } else {
        plan.reset = entry(RESET_TIMER)?;
        plan.fire = entry(UNLOCK_AND_RUN)?;
    }
    plan.stop = entry(STOP_TIMER)?;
    plan.sleep = entry(RESET_FOR_SLEEP)?;
    plan.context_create = entry(PROPAGATE_CANCEL)?;
    plan.context_cancel = entry(CANCEL)?;
    if minor > 22 {
        if elf.symbol(NEW_TIMER).is_some() {
            plan.create = ret_probes(elf, what, NEW_TIMER)?;
        } else {
            missing.push(NEW_TIMER);
        }
    }
    let entry_of = |name: &str| elf.symbol(name).map_or(0, |s| s.address);
    plan.send_time = entry_of(SEND_TIME);
    plan.go_func = entry_of(GO_FUNC);
    plan.goroutine_ready = entry_of(GOROUTINE_READY);
    if elf.has_symtab() {
        plan.itab_cancel_ctx = entry_of("go:itab.*context.cancelCtx,context.Context");
        plan.itab_timer_ctx = entry_of("go:itab.*context.timerCtx,context.Context");
        plan.itab_after_func_ctx = entry_of("go:itab.*context.afterFuncCtx,context.Context");
        plan.itab_value_ctx = entry_of("go:itab.*context.valueCtx,context.Context");
    }
    plan.missing = missing;
    Ok(plan)
}

//! The event ABI shared by the kernel probes (`src/main.rs`, built for
//! `bpfel-unknown-none`) and the userspace daemon (`tracer-user`).
//!
//! Everything here is `#[repr(C)]`, fixed-size and free of pointers that either
//! side would dereference: the probes copy a few registers and `runtime.g`
//! fields into a [`GoroutineEvent`]; all interpretation happens in userspace.
//! Discriminants and counter indices are explicit and never reused, so a
//! recording written by an older build still decodes.
#![no_std]

/// What a [`GoroutineEvent`] reports. Values are part of the ABI: never reuse one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A goroutine was created (`runtime.newproc1` returned it).
    Spawn = 1,
    /// A goroutine parked itself (`runtime.gopark`).
    Park = 2,
    /// A parked goroutine was made runnable (`runtime.ready`).
    Ready = 3,
    /// A goroutine finished (`runtime.goexit1`).
    Exit = 4,
    /// A goroutine is about to create another (`runtime.newproc`): its user
    /// stack, as an id into the `STACKS` map. Only with `--creation-stacks`;
    /// the spawn event that follows on the same thread is the new goroutine.
    CreatorStack = 5,
    /// A timer was created and armed (`time.NewTimer`, `After`, `AfterFunc`,
    /// `NewTicker`, a context's deadline). An [`ObjectEvent`].
    TimerCreate = 6,
    /// A timer was re-armed (`Timer.Reset`, `Ticker.Reset`).
    TimerReset = 7,
    /// A timer was stopped (`Timer.Stop`, `Ticker.Stop`, a context's cancel).
    TimerStop = 8,
    /// A timer's function ran (its channel got the time, or the `AfterFunc`
    /// or context deadline callback started).
    TimerFire = 9,
    /// A goroutine went to sleep (`time.Sleep`).
    Sleep = 10,
    /// A cancelable context was created (`WithCancel`, `WithTimeout`, …).
    ContextCreate = 11,
    /// A context's cancel ran (its `CancelFunc`, its parent's cancel, or its
    /// deadline).
    ContextCancel = 12,
}

impl EventKind {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Spawn),
            2 => Some(Self::Park),
            3 => Some(Self::Ready),
            4 => Some(Self::Exit),
            5 => Some(Self::CreatorStack),
            6 => Some(Self::TimerCreate),
            7 => Some(Self::TimerReset),
            8 => Some(Self::TimerStop),
            9 => Some(Self::TimerFire),
            10 => Some(Self::Sleep),
            11 => Some(Self::ContextCreate),
            12 => Some(Self::ContextCancel),
            _ => None,
        }
    }
}

/// First field of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] discriminant.
    pub kind: u32,
    /// Kernel thread id (the Go runtime's M) that hit the probe.
    pub tid: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

/// One goroutine state change, as seen by a probe.
///
/// Field meaning per kind:
///
/// | field        | Spawn                   | Park                  | Ready                   | Exit |
/// |--------------|-------------------------|-----------------------|-------------------------|------|
/// | `goid`       | new goroutine           | parking goroutine     | goroutine made runnable | exiting goroutine |
/// | `other_goid` | parent (`g.parentGoid`) | 0                     | waker (`g0.m.curg`), 0 if none | 0 |
/// | `pc`         | `g.gopc` (the `go` statement) | 0               | 0                       | 0 |
/// | `start_pc`   | `g.startpc`             | 0                     | 0                       | 0 |
/// | `g_addr`     | address of the `runtime.g` | same               | same                    | same |
/// | `arg`        | `g.waitreason` (if spawned parked) | `lock` argument (`&hchan.lock` for channels) | 0 | 0 |
/// | `code`       | `g.atomicstatus`        | `waitReason` code     | 0                       | 0 |
///
/// `CreatorStack`: `goid` = the creating goroutine, `arg` = its stack id in
/// the `STACKS` map (unless [`FLAG_NO_STACK`]), `g_addr` = its `runtime.g`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoroutineEvent {
    pub header: EventHeader,
    pub goid: u64,
    pub other_goid: u64,
    pub pc: u64,
    pub start_pc: u64,
    pub g_addr: u64,
    pub arg: u64,
    pub code: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
}

/// A field the probe could not read from target memory; the value is 0.
pub const FLAG_READ_FAILED: u32 = 1 << 0;
/// `bpf_get_stackid` failed (stack map full or unwinding failed).
pub const FLAG_NO_STACK: u32 = 1 << 1;

pub const GOROUTINE_EVENT_SIZE: usize = 72;
const _: () = assert!(core::mem::size_of::<GoroutineEvent>() == GOROUTINE_EVENT_SIZE);
const _: () = assert!(core::mem::align_of::<GoroutineEvent>() == 8);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 16);

/// Return addresses an [`ObjectEvent`] carries: enough to get from
/// `time.newTimer` through `context.WithTimeout` to the user's call.
pub const OBJECT_FRAMES: usize = 8;

/// An event on a timer or a context, as seen by a probe.
///
/// | field   | TimerCreate | TimerReset | TimerStop | TimerFire | Sleep | ContextCreate | ContextCancel |
/// |---------|-------------|------------|-----------|-----------|-------|---------------|---------------|
/// | `object`| `*runtime.timer` | same  | same      | same      | same  | `*cancelCtx`  | same          |
/// | `a`     | `when`      | `when`     | 0         | `when`    | `when`| child `canceler` itab | `err` itab |
/// | `b`     | `period`    | `period`   | 0         | `period`  | 0     | parent itab   | `err` data    |
/// | `c`     | `f` code pc | 0          | 0         | `f` code pc | 0   | parent data   | 0             |
/// | `d`     | `arg` data pointer | 0   | 0         | same      | 0     | 0             | 0             |
/// | `e`, `f`| with `f` = `time.goFunc`: the `AfterFunc` callback's code pc and its first captured word (a context deadline's `*timerCtx`) | 0 | 0 | same | 0 | 0 | 0 |
/// | `code`  | `isChan` (Go ≥1.23) | 0  | 1 if it was pending | 0   | 0     | [`CONTEXT_REGISTERED`] or [`CONTEXT_PARENT_UNKNOWN`] | [`CANCEL_REMOVE`] \| [`CANCEL_FIRST`] |
///
/// `goid` is the goroutine whose code hit the probe (0 on the system
/// stack, where `frames` is empty); `frames` are return addresses,
/// innermost first, 0-terminated: the call chain up to the user's code.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectEvent {
    pub header: EventHeader,
    pub object: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
    pub e: u64,
    pub f: u64,
    pub goid: u64,
    pub frames: [u64; OBJECT_FRAMES],
    pub code: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
}

pub const OBJECT_EVENT_SIZE: usize = 152;
const _: () = assert!(core::mem::size_of::<ObjectEvent>() == OBJECT_EVENT_SIZE);

/// `ContextCancel` code bit: `removeFromParent` was set.
pub const CANCEL_REMOVE: u32 = 1 << 0;
/// `ContextCancel` code bit: the context was not cancelled yet (`c.err` was
/// empty): this call cancels it, later ones do nothing.
pub const CANCEL_FIRST: u32 = 1 << 1;

/// `ContextCreate` code: the parent (through up to
/// [`CONTEXT_VALUE_DEPTH`] `WithValue` wrappers) is a `cancelCtx`,
/// `timerCtx` or `afterFuncCtx`, which keeps the new context in its
/// `children` until it is cancelled.
pub const CONTEXT_REGISTERED: u32 = 1 << 0;
/// `ContextCreate` code: the parent's type cannot be told (the binary has
/// no `.symtab` with the context itabs).
pub const CONTEXT_PARENT_UNKNOWN: u32 = 1 << 1;
/// `valueCtx` wrappers followed to find a context's cancelable parent.
pub const CONTEXT_VALUE_DEPTH: usize = 4;

/// Offsets into Go runtime structures and the target's pid, set by userspace
/// at load time (global `PROBE_CONFIG`), read from the binary's DWARF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Only events from this process (thread-group id) are reported.
    pub target_tgid: u32,
    pub _pad: u32,
    pub g_goid: u64,
    pub g_parent_goid: u64,
    pub g_gopc: u64,
    pub g_startpc: u64,
    pub g_atomicstatus: u64,
    pub g_waitreason: u64,
    pub g_m: u64,
    pub m_curg: u64,
    /// Timers: the `runtime.timer` inside what the create/stop/reset probes
    /// get (0 before Go 1.23: they get the timer; 16 since: a `timeTimer`).
    pub timer_in_arg: u64,
    pub timer_when: u64,
    pub timer_period: u64,
    pub timer_f: u64,
    /// The data word of `timer.arg`.
    pub timer_arg_data: u64,
    /// Go ≤1.22: `timer.status`; 0 since (pending is `when > 0`).
    pub timer_status: u64,
    /// Go ≥1.23: `timer.isChan` (a byte); 0 before.
    pub timer_is_chan: u64,
    /// Go ≥1.23: `g.timer` and `g.sleepWhen` (Sleep); 0 before, where
    /// `resetForSleep` gets the timer and `when` is `timer.nextwhen`.
    pub g_timer: u64,
    pub g_sleep_when: u64,
    pub timer_nextwhen: u64,
    /// Code pcs of the timer functions worth reporting when they fire
    /// (`time.sendTime`, `time.goFunc`, `runtime.goroutineReady`): network
    /// deadlines and the scavenger also run timers and are skipped.
    pub fn_send_time: u64,
    pub fn_go_func: u64,
    pub fn_goroutine_ready: u64,
    /// `cancelCtx.err`: its first word is 0 until the context is cancelled.
    pub ctx_err: u64,
    /// The `context.Context` itabs of `*cancelCtx`, `*timerCtx`,
    /// `*afterFuncCtx` (the parents that keep their children) and
    /// `*valueCtx` (a wrapper, followed): 0 when absent.
    pub itab_cancel_ctx: u64,
    pub itab_timer_ctx: u64,
    pub itab_after_func_ctx: u64,
    pub itab_value_ctx: u64,
}

const _: () = assert!(core::mem::size_of::<ProbeConfig>() == 216);

#[cfg(feature = "user")]
// SAFETY: ProbeConfig is repr(C), all fields are plain integers and there is
// no implicit padding (`_pad` makes it explicit), so any bit pattern is valid.
unsafe impl aya::Pod for ProbeConfig {}

/// Name of the load-time global holding the [`ProbeConfig`].
pub const PROBE_CONFIG_GLOBAL: &str = "PROBE_CONFIG";
/// Name of the ring buffer map carrying [`GoroutineEvent`]s.
pub const EVENTS_MAP: &str = "EVENTS";
/// Name of the per-CPU `u64` counter array, indexed by `counter::*`.
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Name of the stack trace map of `CreatorStack` events.
pub const STACKS_MAP: &str = "STACKS";
/// Distinct creator stacks kept (each entry is 127 frames, ~1 KiB of kernel
/// memory). Identical stacks share an entry; when the map is full new
/// stacks are dropped and counted (`counter::STACK_FAILED`).
pub const STACKS_MAP_ENTRIES: u32 = 4096;
/// Ring buffer size in bytes (a power of two, multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 1 << 23;
/// The probes submit without waking the reader (which drains the ring on a
/// short timer) until this much data is pending; then they force a wake-up.
/// A wake-up per event would cost the target an irq_work and a cross-CPU
/// wake-up on every trap.
pub const EVENTS_WAKEUP_BYTES: u64 = EVENTS_RING_BYTES as u64 / 4;

/// Indices into the `COUNTERS` per-CPU array. Part of the ABI: never reuse one.
pub mod counter {
    pub const SPAWN_HITS: u32 = 0;
    pub const PARK_HITS: u32 = 1;
    pub const READY_HITS: u32 = 2;
    pub const EXIT_HITS: u32 = 3;
    /// Events dropped because the ring buffer was full.
    pub const RINGBUF_FULL: u32 = 4;
    /// Events submitted with [`super::FLAG_READ_FAILED`].
    pub const READ_FAILED: u32 = 5;
    pub const CREATOR_STACK_HITS: u32 = 6;
    /// Creator stacks that could not be recorded ([`super::FLAG_NO_STACK`]).
    pub const STACK_FAILED: u32 = 7;
    /// Timer probes (create, reset, stop, sleep) and fires of timers that
    /// are reported (the others are counted in `TIMER_FIRE_SKIPPED`).
    pub const TIMER_HITS: u32 = 8;
    pub const TIMER_FIRE_HITS: u32 = 9;
    pub const TIMER_FIRE_SKIPPED: u32 = 10;
    pub const CONTEXT_HITS: u32 = 11;
    pub const COUNT: u32 = 12;
}

/// Program names in the object file, one per probe.
pub mod program {
    pub const SPAWN: &str = "goroutine_spawn";
    pub const PARK: &str = "goroutine_park";
    pub const READY: &str = "goroutine_ready";
    pub const EXIT: &str = "goroutine_exit";
    pub const CREATOR_STACK: &str = "creator_stack";
    pub const TIMER_CREATE: &str = "timer_create";
    pub const TIMER_RESET: &str = "timer_reset";
    /// Go ≤1.22 `time.resetTimer(t, when)`: the period is the timer's own.
    pub const TIMER_RESET_WHEN: &str = "timer_reset_when";
    pub const TIMER_STOP: &str = "timer_stop";
    pub const TIMER_FIRE: &str = "timer_fire";
    pub const SLEEP: &str = "timer_sleep";
    pub const CONTEXT_CREATE: &str = "context_create";
    pub const CONTEXT_CANCEL: &str = "context_cancel";
}

//! Uprobe programs on the Go runtime. Built for `bpfel-unknown-none` only.
//!
//! Kept small and boring on purpose: each program copies a few registers and
//! `runtime.g` fields into a [`GoroutineEvent`] and submits it. Offsets and the
//! target pid come from the load-time global `PROBE_CONFIG`; userspace decides
//! where each program is attached and interprets everything.
//!
//! Which runtime functions, and why (Go 1.21–1.27, amd64 register ABI):
//!
//! * **spawn** — the `RET` instructions of `runtime.newproc1`: RAX holds the new
//!   `*g` with `goid`, `parentGoid`, `gopc` and `startpc` all set. Its entry
//!   does not know the new goid yet, and a kernel return probe would replace
//!   the return address on Go's movable stacks, so userspace disassembles the
//!   function and attaches this plain uprobe to each `RET`. One trap per spawn.
//! * **park** — `runtime.gopark` after its stack-check prologue: it runs on the
//!   parking goroutine's own stack (R14 = that `g`), the wait reason is in CL
//!   and the `lock` argument in RBX. One trap per park.
//! * **ready** — `runtime.ready(gp, …)`: RAX = the goroutine made runnable; it
//!   runs on the system stack, so the waker is `R14(g0).m.curg`. One trap per
//!   wake. (`goready` is inlined everywhere; netpoll wakeups bypass `ready`
//!   and show up as the next park or exit of that goroutine.)
//! * **exit** — `runtime.goexit1`, on the exiting goroutine's stack (R14).
//!
//! * **creator stack** (opt-in, `--creation-stacks`) — `runtime.newproc`
//!   after its prologue, on the creating goroutine's own stack:
//!   `bpf_get_stackid(BPF_F_USER_STACK)` walks its frame pointers. A second
//!   trap per spawn plus the walk, hence not in the default set.
//!
//! Timers and contexts (one trap per user-visible event; the runtime's timer
//! core is not probed: network deadlines arm and disarm timers several
//! times per request through it):
//!
//! * **timer create** — Go ≤1.22 `time.startTimer(t)` (every field set);
//!   Go ≥1.23 the `RET` of `time.newTimer` (RAX = the `timeTimer`, armed).
//! * **reset** — `time.resetTimer` (and Go ≤1.22 `time.modTimer`, Ticker.Reset).
//! * **stop** — `time.stopTimer`: whether it was pending is read at entry.
//! * **fire** — Go ≤1.22 `runtime.runOneTimer`, Go ≥1.23
//!   `runtime.(*timer).unlockAndRun`; only timers of `time` (channel sends,
//!   `AfterFunc`, `Sleep`) are reported, by their function: network
//!   deadlines and the scavenger are counted and dropped.
//! * **sleep** — `runtime.resetForSleep`.
//! * **context create** — `context.(*cancelCtx).propagateCancel`, which every
//!   cancelable context passes through; **cancel** — `(*cancelCtx).cancel`,
//!   whose caller (in `frames`) tells who cancelled.
//!
//! `runtime.casgstatus` would see all of these in one probe but also every
//! schedule and every syscall entry/exit: several times the traps for the same
//! information. `execute` (the running transition) is the hottest scheduler
//! function and is deliberately not probed.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
mod probes {
    use aya_ebpf::{
        bindings::{BPF_F_USER_STACK, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
        helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
        macros::{map, uprobe},
        maps::{PerCpuArray, RingBuf, StackTrace},
        programs::{tracing::StackIdContext, ProbeContext},
    };
    use aya_log_ebpf::warn;
    use tracer_ebpf::{
        counter, EventHeader, EventKind, GoroutineEvent, ObjectEvent, ProbeConfig, CANCEL_FIRST,
        CANCEL_REMOVE, CONTEXT_PARENT_UNKNOWN, CONTEXT_REGISTERED, CONTEXT_VALUE_DEPTH,
        EVENTS_RING_BYTES, EVENTS_WAKEUP_BYTES, FLAG_NO_STACK, FLAG_READ_FAILED, OBJECT_FRAMES,
        STACKS_MAP_ENTRIES,
    };

    #[unsafe(no_mangle)]
    static PROBE_CONFIG: ProbeConfig = ProbeConfig {
        target_tgid: 0,
        _pad: 0,
        g_goid: 0,
        g_parent_goid: 0,
        g_gopc: 0,
        g_startpc: 0,
        g_atomicstatus: 0,
        g_waitreason: 0,
        g_m: 0,
        m_curg: 0,
        timer_in_arg: 0,
        timer_when: 0,
        timer_period: 0,
        timer_f: 0,
        timer_arg_data: 0,
        timer_status: 0,
        timer_is_chan: 0,
        g_timer: 0,
        g_sleep_when: 0,
        timer_nextwhen: 0,
        fn_send_time: 0,
        fn_go_func: 0,
        fn_goroutine_ready: 0,
        ctx_err: 0,
        itab_cancel_ctx: 0,
        itab_timer_ctx: 0,
        itab_after_func_ctx: 0,
        itab_value_ctx: 0,
    };

    #[map]
    static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

    #[map]
    static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

    #[map]
    static STACKS: StackTrace = StackTrace::with_max_entries(STACKS_MAP_ENTRIES, 0);

    #[inline(always)]
    fn config() -> ProbeConfig {
        // SAFETY: PROBE_CONFIG is a plain global rewritten by the loader before
        // the program is loaded; a volatile read keeps the compiler from
        // folding the zero initialiser into the code.
        unsafe { core::ptr::read_volatile(&PROBE_CONFIG) }
    }

    /// Returns the previous value of the counter.
    #[inline(always)]
    fn bump(index: u32) -> u64 {
        match COUNTERS.get_ptr_mut(index) {
            // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
            Some(p) => unsafe {
                let old = *p;
                *p = old + 1;
                old
            },
            None => 0,
        }
    }

    /// Reads a `T` at `base + offset` in target memory; on failure returns the
    /// default and sets [`FLAG_READ_FAILED`] in `flags`.
    #[inline(always)]
    fn read<T: Default>(base: u64, offset: u64, flags: &mut u32) -> T {
        if base == 0 {
            *flags |= FLAG_READ_FAILED;
            return T::default();
        }
        // SAFETY: bpf_probe_read_user copies from user memory and fails
        // cleanly on a bad address; the pointer is never dereferenced here.
        match unsafe { bpf_probe_read_user((base + offset) as *const T) } {
            Ok(v) => v,
            Err(_) => {
                *flags |= FLAG_READ_FAILED;
                T::default()
            }
        }
    }

    /// Returns the thread id if the current task belongs to the target.
    #[inline(always)]
    fn target_tid(cfg: &ProbeConfig) -> Option<u32> {
        let pid_tgid = bpf_get_current_pid_tgid();
        if (pid_tgid >> 32) as u32 != cfg.target_tgid {
            return None;
        }
        Some(pid_tgid as u32)
    }

    #[inline(always)]
    fn submit(ctx: &ProbeContext, event: GoroutineEvent) {
        if event.flags & FLAG_READ_FAILED != 0 && bump(counter::READ_FAILED) == 0 {
            warn!(
                ctx,
                "first unreadable runtime.g field (kind {}, g {:x})",
                event.header.kind,
                event.g_addr
            );
        }
        output(&event);
    }

    #[inline(always)]
    fn submit_object(ctx: &ProbeContext, event: ObjectEvent) {
        if event.flags & FLAG_READ_FAILED != 0 && bump(counter::READ_FAILED) == 0 {
            warn!(
                ctx,
                "first unreadable timer or context field (kind {}, object {:x})",
                event.header.kind,
                event.object
            );
        }
        output(&event);
    }

    #[inline(always)]
    fn output<T: 'static>(event: &T) {
        let wakeup = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= EVENTS_WAKEUP_BYTES {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        if EVENTS.output::<T>(event, wakeup as u64).is_err() {
            bump(counter::RINGBUF_FULL);
        }
    }

    /// Return addresses from a probe at a function's first instruction
    /// after its stack check, or at a `RET`: `[RSP]`, then along the frame
    /// pointers from RBP (still the caller's there).
    #[inline(always)]
    fn frames(r: &aya_ebpf::bindings::pt_regs) -> [u64; OBJECT_FRAMES] {
        let mut out = [0u64; OBJECT_FRAMES];
        let mut ignored = 0;
        out[0] = read(r.rsp, 0, &mut ignored);
        let mut fp = r.rbp;
        let mut i = 1;
        while i < OBJECT_FRAMES {
            if fp == 0 {
                break;
            }
            out[i] = read(fp, 8, &mut ignored);
            fp = read(fp, 0, &mut ignored);
            i += 1;
        }
        out
    }

    /// An event on the timer at `t`, with its `when`, `period` and function.
    #[inline(always)]
    fn timer_event(cfg: &ProbeConfig, kind: EventKind, tid: u32, t: u64) -> ObjectEvent {
        let mut flags = 0;
        let f: u64 = read(t, cfg.timer_f, &mut flags);
        let fpc: u64 = read(f, 0, &mut flags);
        let arg: u64 = read(t, cfg.timer_arg_data, &mut flags);
        // time.goFunc's arg is the AfterFunc callback (a funcval): its code
        // and first captured word (a context deadline's *timerCtx).
        let (e, f_word) = if fpc != 0 && fpc == cfg.fn_go_func {
            (read(arg, 0, &mut flags), read(arg, 8, &mut flags))
        } else {
            (0, 0)
        };
        ObjectEvent {
            header: header(kind, tid),
            object: t,
            a: read(t, cfg.timer_when, &mut flags),
            b: read(t, cfg.timer_period, &mut flags),
            c: fpc,
            d: arg,
            e,
            f: f_word,
            flags,
            ..ObjectEvent::default()
        }
    }

    /// An event on `object` from a probe at the entry of a Go function
    /// called by user code: the calling goroutine's id (R14 holds its `g`)
    /// and the callers' return addresses.
    #[inline(always)]
    fn call_event(
        cfg: &ProbeConfig,
        r: &aya_ebpf::bindings::pt_regs,
        kind: EventKind,
        tid: u32,
        object: u64,
    ) -> ObjectEvent {
        let mut flags = 0;
        ObjectEvent {
            header: header(kind, tid),
            object,
            goid: read(r.r14, cfg.g_goid, &mut flags),
            frames: frames(r),
            flags,
            ..ObjectEvent::default()
        }
    }

    #[inline(always)]
    fn header(kind: EventKind, tid: u32) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            tid,
            // SAFETY: helper without preconditions.
            ts_ns: unsafe { bpf_ktime_get_ns() },
        }
    }

    #[inline(always)]
    fn regs(ctx: &ProbeContext) -> &aya_ebpf::bindings::pt_regs {
        // SAFETY: the kernel passes a valid pt_regs to every uprobe program.
        unsafe { &*ctx.regs }
    }

    #[uprobe]
    pub fn goroutine_spawn(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::SPAWN_HITS);
        let newg = regs(&ctx).rax;
        let mut flags = 0;
        let event = GoroutineEvent {
            header: header(EventKind::Spawn, tid),
            goid: read(newg, cfg.g_goid, &mut flags),
            other_goid: read(newg, cfg.g_parent_goid, &mut flags),
            pc: read(newg, cfg.g_gopc, &mut flags),
            start_pc: read(newg, cfg.g_startpc, &mut flags),
            g_addr: newg,
            arg: read::<u8>(newg, cfg.g_waitreason, &mut flags) as u64,
            code: read(newg, cfg.g_atomicstatus, &mut flags),
            flags,
        };
        submit(&ctx, event);
        0
    }

    #[uprobe]
    pub fn goroutine_park(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::PARK_HITS);
        let r = regs(&ctx);
        let g = r.r14;
        let mut flags = 0;
        let event = GoroutineEvent {
            header: header(EventKind::Park, tid),
            goid: read(g, cfg.g_goid, &mut flags),
            g_addr: g,
            arg: r.rbx,
            code: (r.rcx & 0xff) as u32,
            flags,
            ..GoroutineEvent::default()
        };
        submit(&ctx, event);
        0
    }

    #[uprobe]
    pub fn goroutine_ready(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::READY_HITS);
        let r = regs(&ctx);
        let gp = r.rax;
        let mut flags = 0;
        // R14 is g0 on the system stack (or the user g itself); either way
        // g.m.curg is the goroutine whose code made `gp` runnable.
        let m: u64 = read(r.r14, cfg.g_m, &mut flags);
        let curg: u64 = if m == 0 {
            0
        } else {
            read(m, cfg.m_curg, &mut flags)
        };
        let waker = if curg == 0 {
            0
        } else {
            read(curg, cfg.g_goid, &mut flags)
        };
        let event = GoroutineEvent {
            header: header(EventKind::Ready, tid),
            goid: read(gp, cfg.g_goid, &mut flags),
            other_goid: waker,
            g_addr: gp,
            flags,
            ..GoroutineEvent::default()
        };
        submit(&ctx, event);
        0
    }

    #[uprobe]
    pub fn goroutine_exit(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::EXIT_HITS);
        let g = regs(&ctx).r14;
        let mut flags = 0;
        let event = GoroutineEvent {
            header: header(EventKind::Exit, tid),
            goid: read(g, cfg.g_goid, &mut flags),
            g_addr: g,
            flags,
            ..GoroutineEvent::default()
        };
        submit(&ctx, event);
        0
    }

    #[uprobe]
    pub fn creator_stack(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::CREATOR_STACK_HITS);
        let g = regs(&ctx).r14;
        let mut flags = 0;
        // Identical stacks get the same id; no BPF_F_REUSE_STACKID, so an id
        // already handed out never changes meaning.
        let stack_id = match ctx.get_stackid(&STACKS, BPF_F_USER_STACK as u64) {
            Ok(id) => id as u64,
            Err(_) => {
                bump(counter::STACK_FAILED);
                flags |= FLAG_NO_STACK;
                0
            }
        };
        let event = GoroutineEvent {
            header: header(EventKind::CreatorStack, tid),
            goid: read(g, cfg.g_goid, &mut flags),
            g_addr: g,
            arg: stack_id,
            flags,
            ..GoroutineEvent::default()
        };
        submit(&ctx, event);
        0
    }

    #[uprobe]
    pub fn timer_create(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::TIMER_HITS);
        let r = regs(&ctx);
        let t = r.rax + cfg.timer_in_arg;
        let mut event = timer_event(&cfg, EventKind::TimerCreate, tid, t);
        if cfg.timer_is_chan != 0 {
            event.code = read::<u8>(t, cfg.timer_is_chan, &mut event.flags) as u32;
        }
        event.goid = read(r.r14, cfg.g_goid, &mut event.flags);
        event.frames = frames(r);
        submit_object(&ctx, event);
        0
    }

    /// Go ≥1.23 `time.resetTimer(t, when, period)`, Go ≤1.22
    /// `time.modTimer(t, when, period, …)`.
    #[uprobe]
    pub fn timer_reset(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::TIMER_HITS);
        let r = regs(&ctx);
        let t = r.rax + cfg.timer_in_arg;
        let mut event = call_event(&cfg, r, EventKind::TimerReset, tid, t);
        event.a = r.rbx;
        event.b = r.rcx;
        submit_object(&ctx, event);
        0
    }

    /// Go ≤1.22 `time.resetTimer(t, when)`: the period stays the timer's.
    #[uprobe]
    pub fn timer_reset_when(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::TIMER_HITS);
        let r = regs(&ctx);
        let t = r.rax + cfg.timer_in_arg;
        let mut event = call_event(&cfg, r, EventKind::TimerReset, tid, t);
        event.a = r.rbx;
        event.b = read(t, cfg.timer_period, &mut event.flags);
        submit_object(&ctx, event);
        0
    }

    #[uprobe]
    pub fn timer_stop(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::TIMER_HITS);
        let r = regs(&ctx);
        let t = r.rax + cfg.timer_in_arg;
        let mut event = call_event(&cfg, r, EventKind::TimerStop, tid, t);
        // Pending: Go ≤1.22 status waiting or modified (1, 7, 8); since
        // Go 1.23 `when > 0`.
        let pending = if cfg.timer_status != 0 {
            let status: u32 = read(t, cfg.timer_status, &mut event.flags);
            status == 1 || status == 7 || status == 8
        } else {
            read::<i64>(t, cfg.timer_when, &mut event.flags) > 0
        };
        event.code = pending as u32;
        submit_object(&ctx, event);
        0
    }

    /// Go ≤1.22 `runtime.runOneTimer(pp, t, now)`, Go ≥1.23
    /// `runtime.(*timer).unlockAndRun(t, now)`; on the system stack.
    #[uprobe]
    pub fn timer_fire(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        let r = regs(&ctx);
        // Both registers are loaded before choosing: a choice between two
        // context offsets compiles to ctx pointer arithmetic, which the
        // verifier rejects.
        // SAFETY: plain loads of fields of the probe context.
        let (rax, rbx) = unsafe {
            (
                core::ptr::read_volatile(&r.rax),
                core::ptr::read_volatile(&r.rbx),
            )
        };
        let t = if cfg.timer_in_arg != 0 { rax } else { rbx };
        let mut flags = 0;
        let f: u64 = read(t, cfg.timer_f, &mut flags);
        let fpc: u64 = read(f, 0, &mut flags);
        if fpc == 0
            || (fpc != cfg.fn_send_time && fpc != cfg.fn_go_func && fpc != cfg.fn_goroutine_ready)
        {
            bump(counter::TIMER_FIRE_SKIPPED);
            return 0;
        }
        bump(counter::TIMER_FIRE_HITS);
        let event = timer_event(&cfg, EventKind::TimerFire, tid, t);
        submit_object(&ctx, event);
        0
    }

    /// `runtime.resetForSleep(gp, …)`, on the system stack: Go ≤1.22 gets
    /// the timer (RBX) with `when` in `nextwhen`; since Go 1.23 the timer is
    /// `gp.timer` and `when` is `gp.sleepWhen`.
    #[uprobe]
    pub fn timer_sleep(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::TIMER_HITS);
        let r = regs(&ctx);
        let gp = r.rax;
        let mut flags = 0;
        let (t, when) = if cfg.g_timer != 0 {
            (
                read(gp, cfg.g_timer, &mut flags),
                read(gp, cfg.g_sleep_when, &mut flags),
            )
        } else {
            (r.rbx, read(r.rbx, cfg.timer_nextwhen, &mut flags))
        };
        let event = ObjectEvent {
            header: header(EventKind::Sleep, tid),
            object: t,
            a: when,
            goid: read(gp, cfg.g_goid, &mut flags),
            flags,
            ..ObjectEvent::default()
        };
        submit_object(&ctx, event);
        0
    }

    /// `context.(*cancelCtx).propagateCancel(c, parent Context, child
    /// canceler)`: RAX = c, RBX/RCX = parent, RDI = the child's itab.
    #[uprobe]
    pub fn context_create(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::CONTEXT_HITS);
        let r = regs(&ctx);
        let mut event = call_event(&cfg, r, EventKind::ContextCreate, tid, r.rax);
        event.a = r.rdi;
        event.b = r.rbx;
        event.c = r.rcx;
        event.code = parent_keeps_child(&cfg, r.rbx, r.rcx);
        submit_object(&ctx, event);
        0
    }

    /// Whether a parent context (itab, data) keeps a new child until it is
    /// cancelled: a `cancelCtx`, `timerCtx` or `afterFuncCtx`, possibly
    /// under `WithValue` wrappers (`valueCtx{Context, key, val}`).
    #[inline(always)]
    fn parent_keeps_child(cfg: &ProbeConfig, mut itab: u64, mut data: u64) -> u32 {
        if cfg.itab_cancel_ctx == 0 {
            return CONTEXT_PARENT_UNKNOWN;
        }
        let mut ignored = 0;
        for _ in 0..CONTEXT_VALUE_DEPTH {
            if itab == 0 || itab != cfg.itab_value_ctx {
                break;
            }
            itab = read(data, 0, &mut ignored);
            data = read(data, 8, &mut ignored);
        }
        if itab != 0
            && (itab == cfg.itab_cancel_ctx
                || itab == cfg.itab_timer_ctx
                || itab == cfg.itab_after_func_ctx)
        {
            CONTEXT_REGISTERED
        } else {
            0
        }
    }

    /// `context.(*cancelCtx).cancel(c, removeFromParent, err, cause)`:
    /// RAX = c, BL = removeFromParent, RCX/RDI = err. Its callers (frames)
    /// say who cancelled: the CancelFunc, the parent, or the deadline.
    #[uprobe]
    pub fn context_cancel(ctx: ProbeContext) -> u32 {
        let cfg = config();
        let Some(tid) = target_tid(&cfg) else {
            return 0;
        };
        bump(counter::CONTEXT_HITS);
        let r = regs(&ctx);
        let mut event = call_event(&cfg, r, EventKind::ContextCancel, tid, r.rax);
        event.a = r.rcx;
        event.b = r.rdi;
        if r.rbx & 0xff != 0 {
            event.code |= CANCEL_REMOVE;
        }
        if read::<u64>(r.rax, cfg.ctx_err, &mut event.flags) == 0 {
            event.code |= CANCEL_FIRST;
        }
        submit_object(&ctx, event);
        0
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        // SAFETY: the verifier rejects any program that could reach a panic;
        // this handler only satisfies no_std linking.
        unsafe { core::hint::unreachable_unchecked() }
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

/// Host builds of this crate only provide the ABI library; the probes exist
/// for the BPF target alone.
#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!(
        "tracer-probes is an eBPF object: build it for bpfel-unknown-none (cargo xtask build)"
    );
    std::process::exit(2);
}

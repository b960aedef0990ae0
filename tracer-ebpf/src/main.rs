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
        counter, EventHeader, EventKind, GoroutineEvent, ProbeConfig, EVENTS_RING_BYTES,
        EVENTS_WAKEUP_BYTES, FLAG_NO_STACK, FLAG_READ_FAILED, STACKS_MAP_ENTRIES,
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
        let wakeup = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= EVENTS_WAKEUP_BYTES {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        if EVENTS
            .output::<GoroutineEvent>(&event, wakeup as u64)
            .is_err()
        {
            bump(counter::RINGBUF_FULL);
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

//! Kernel side, userspace half: loads the embedded eBPF object, hands it the
//! target's runtime offsets, attaches the uprobes to the target process only,
//! and exposes the event ring buffer and the probes' counters.
//!
//! Detaching is dropping: [`ProbeSession::detach`] (or drop) closes every link
//! and program fd, and the kernel removes the uprobes. The same happens if the
//! tracer is killed, so no probe can outlive the tracer process.

mod budget;

use std::num::NonZeroU32;

use aya::{
    maps::{MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::{
        uprobe::{UProbeLinkId, UProbeScope},
        ProgramError, UProbe,
    },
    Ebpf, EbpfLoader,
};
use serde::{Deserialize, Serialize};
use tracer_ebpf::{
    counter, program, ProbeConfig, COUNTERS_MAP, EVENTS_MAP, PROBE_CONFIG_GLOBAL, STACKS_MAP,
    STACKS_MAP_ENTRIES,
};

use crate::target::{Placement, ProbePoint, Target};

pub use budget::{cost_per_hit_ns, Budget, BudgetStatus, Change, DetachedGroup};

/// The probes object built by `build.rs` (empty when built with AYA_BUILD_SKIP).
static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-probes"));

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "this tracer binary was built without its eBPF probes (AYA_BUILD_SKIP); \
         build it with `cargo xtask build`"
    )]
    ProbesNotBuilt,
    #[error(
        "missing privileges to load eBPF programs: run as root (sudo), or grant \
         CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE"
    )]
    MissingPrivileges,
    #[error("process {pid} exited while the probes were being attached")]
    TargetExited { pid: u32 },
    #[error("loading the eBPF probes into the kernel failed")]
    Load(#[source] aya::EbpfError),
    #[error("eBPF program {name} is missing from the probes object")]
    MissingProgram { name: &'static str },
    #[error("eBPF map {name} is missing from the probes object")]
    MissingMap { name: &'static str },
    #[error("eBPF program {name} could not be loaded (verifier)")]
    Verify {
        name: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("attaching {name} to {function} at file offset {offset:#x} failed")]
    Attach {
        name: &'static str,
        function: String,
        offset: u64,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("eBPF map {name} has an unexpected type")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// Where one program was attached, for `inspect` and the attach banner.
#[derive(Clone, Debug, Serialize)]
pub struct AttachedProbe {
    pub program: &'static str,
    pub function: String,
    pub vaddr: u64,
    pub file_offset: u64,
    pub placement: Placement,
}

/// Cumulative counters kept by the probes (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounters {
    pub spawn_hits: u64,
    pub park_hits: u64,
    pub ready_hits: u64,
    pub exit_hits: u64,
    /// Events dropped in the kernel because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Events submitted with a field the probe could not read.
    pub read_failed: u64,
    /// With `--creation-stacks`: hits of `runtime.newproc`, and stacks that
    /// could not be recorded.
    pub creator_stack_hits: u64,
    pub stack_failed: u64,
    /// Timer create/reset/stop and Sleep probe hits; fires reported, and
    /// fires of runtime-internal timers (network deadlines, the scavenger)
    /// that were dropped; context create and cancel hits.
    #[serde(default)]
    pub timer_hits: u64,
    #[serde(default)]
    pub timer_fire_hits: u64,
    #[serde(default)]
    pub timer_fire_skipped: u64,
    #[serde(default)]
    pub context_hits: u64,
}

impl ProbeCounters {
    pub fn total_hits(&self) -> u64 {
        self.spawn_hits
            + self.park_hits
            + self.ready_hits
            + self.exit_hits
            + self.creator_stack_hits
            + self.timer_hits
            + self.timer_fire_hits
            + self.timer_fire_skipped
            + self.context_hits
    }
}

/// Probes that are attached and detached together: a goroutine's lifecycle
/// needs both its spawn and its exit, its scheduling both park and wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeGroup {
    /// `newproc1` RETs and `goexit1`: spawn and exit.
    Lifecycle,
    /// `gopark` and `ready`: park and wake, the hottest runtime paths.
    Scheduling,
    /// `newproc`: the creator's stack at every `go` statement.
    CreationStacks,
    /// Timer create/reset/stop/fire, `Sleep`, context create and cancel.
    Timers,
}

impl ProbeGroup {
    pub const ALL: [ProbeGroup; 4] = [
        ProbeGroup::Lifecycle,
        ProbeGroup::Scheduling,
        ProbeGroup::CreationStacks,
        ProbeGroup::Timers,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            ProbeGroup::Lifecycle => "spawn/exit",
            ProbeGroup::Scheduling => "park/wake",
            ProbeGroup::CreationStacks => "creation stacks",
            ProbeGroup::Timers => "timers/contexts",
        }
    }

    /// Probe hits of this group in `c`.
    pub fn hits(self, c: &ProbeCounters) -> u64 {
        match self {
            ProbeGroup::Lifecycle => c.spawn_hits + c.exit_hits,
            ProbeGroup::Scheduling => c.park_hits + c.ready_hits,
            ProbeGroup::CreationStacks => c.creator_stack_hits,
            ProbeGroup::Timers => {
                c.timer_hits + c.timer_fire_hits + c.timer_fire_skipped + c.context_hits
            }
        }
    }

    fn programs(self) -> &'static [&'static str] {
        match self {
            // Attached exit before spawn (and detached in the reverse
            // order): a goroutine spawned in between whose exit went unseen
            // would otherwise stay live forever.
            ProbeGroup::Lifecycle => &[program::EXIT, program::SPAWN],
            // Wake before park, for the same reason.
            ProbeGroup::Scheduling => &[program::READY, program::PARK],
            ProbeGroup::CreationStacks => &[program::CREATOR_STACK],
            // Ends of lives before their starts, as above.
            ProbeGroup::Timers => &[
                program::CONTEXT_CANCEL,
                program::TIMER_FIRE,
                program::TIMER_STOP,
                program::TIMER_RESET,
                program::TIMER_RESET_WHEN,
                program::SLEEP,
                program::TIMER_CREATE,
                program::CONTEXT_CREATE,
            ],
        }
    }

    fn points(
        self,
        plan: &crate::target::ProbePlan,
        timers: &crate::target::timers::TimerPlan,
        program: &str,
    ) -> Vec<ProbePoint> {
        match program {
            program::SPAWN => plan.spawn.clone(),
            program::EXIT => vec![plan.exit.clone()],
            program::PARK => vec![plan.park.clone()],
            program::READY => vec![plan.ready.clone()],
            program::CREATOR_STACK => vec![plan.newproc.clone()],
            program::TIMER_CREATE => timers.create.clone(),
            program::TIMER_RESET => timers.reset.clone(),
            program::TIMER_RESET_WHEN => timers.reset_when.clone(),
            program::TIMER_STOP => timers.stop.clone(),
            program::TIMER_FIRE => timers.fire.clone(),
            program::SLEEP => timers.sleep.clone(),
            program::CONTEXT_CREATE => timers.context_create.clone(),
            program::CONTEXT_CANCEL => timers.context_cancel.clone(),
            _ => Vec::new(),
        }
    }
}

/// Which probe groups to attach at first.
#[derive(Clone, Copy, Debug)]
pub struct ProbeOptions {
    pub lifecycle: bool,
    /// Park and wake probes (`--precise`).
    pub scheduling: bool,
    /// Record the creating goroutine's stack at every `go` statement: one
    /// more trap per spawn plus a kernel stack walk (see BENCHMARKS.md).
    pub creation_stacks: bool,
    /// Timer and context probes.
    pub timers: bool,
}

impl ProbeOptions {
    fn wants(&self, group: ProbeGroup) -> bool {
        match group {
            ProbeGroup::Lifecycle => self.lifecycle,
            ProbeGroup::Scheduling => self.scheduling,
            ProbeGroup::CreationStacks => self.creation_stacks,
            ProbeGroup::Timers => self.timers,
        }
    }
}

/// Loaded probes for one target process; groups attach and detach while
/// the session runs.
pub struct ProbeSession {
    ebpf: Option<Ebpf>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    counters: PerCpuArray<MapData, u64>,
    stacks: StackTraceMap<MapData>,
    target_path: std::path::PathBuf,
    plan: crate::target::ProbePlan,
    timer_plan: crate::target::timers::TimerPlan,
    pid: NonZeroU32,
    attached: Vec<(ProbeGroup, UProbeLinkId, AttachedProbe)>,
}

/// The probe configuration for a target: its pid and `runtime.g` offsets.
pub fn probe_config(target: &Target, pid: u32) -> ProbeConfig {
    let o = &target.offsets;
    ProbeConfig {
        target_tgid: pid,
        _pad: 0,
        g_goid: o.g_goid,
        g_parent_goid: o.g_parent_goid,
        g_gopc: o.g_gopc,
        g_startpc: o.g_startpc,
        g_atomicstatus: o.g_atomicstatus,
        g_waitreason: o.g_waitreason,
        g_m: o.g_m,
        m_curg: o.m_curg,
        ..timer_config(target)
    }
}

/// The timer and context part of the [`ProbeConfig`] (all zero when the Go
/// version has no timer layout: those probes are then not attached).
fn timer_config(target: &Target) -> ProbeConfig {
    let Some(t) = target.timer_offsets else {
        return ProbeConfig::default();
    };
    let plan = &target.timer_probes;
    // Function entries at run time (PIE).
    let runtime = |vaddr: u64| {
        if vaddr == 0 {
            0
        } else {
            vaddr + target.load_bias
        }
    };
    ProbeConfig {
        timer_in_arg: t.timer_in_arg,
        timer_when: t.when,
        timer_period: t.period,
        timer_f: t.f,
        timer_arg_data: t.arg_data,
        timer_status: t.status,
        timer_is_chan: t.is_chan,
        g_timer: t.g_timer,
        g_sleep_when: t.g_sleep_when,
        timer_nextwhen: t.nextwhen,
        fn_send_time: runtime(plan.send_time),
        fn_go_func: runtime(plan.go_func),
        fn_goroutine_ready: runtime(plan.goroutine_ready),
        ctx_err: t.ctx_err,
        itab_cancel_ctx: runtime(plan.itab_cancel_ctx),
        itab_timer_ctx: runtime(plan.itab_timer_ctx),
        itab_after_func_ctx: runtime(plan.itab_after_func_ctx),
        itab_value_ctx: runtime(plan.itab_value_ctx),
        ..ProbeConfig::default()
    }
}

/// Detaches probes in the reverse of the order they were attached in: the
/// starts of lives (spawn, park, timer and context creation) come out before
/// their ends, so that nothing created while the group comes out has its
/// end go unseen and stays live or armed forever in the model.
fn detach_in_reverse(ebpf: &mut Ebpf, probes: Vec<(ProbeGroup, UProbeLinkId, AttachedProbe)>) {
    for (_, link, probe) in probes.into_iter().rev() {
        if let Ok(prog) = uprobe(ebpf, probe.program) {
            // An error here means the link is already gone.
            let _ = prog.detach(link);
        }
    }
}

/// The uprobe program `name` of the probes object.
fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut UProbe, ProbeError> {
    ebpf.program_mut(name)
        .ok_or(ProbeError::MissingProgram { name })?
        .try_into()
        .map_err(|source| ProbeError::Verify {
            name,
            source: Box::new(source),
        })
}

/// True when the effective capabilities allow loading uprobe programs.
pub fn has_privileges() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let Some(cap_eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return false;
    };
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

impl ProbeSession {
    /// Loads the probes and attaches them to `pid`'s executable, scoped to
    /// that process. Returns the session and its event ring buffer.
    pub fn attach(
        target: &Target,
        pid: u32,
        options: ProbeOptions,
    ) -> Result<(Self, RingBuf<MapData>), ProbeError> {
        if PROBES_OBJECT.is_empty() {
            return Err(ProbeError::ProbesNotBuilt);
        }
        if !has_privileges() {
            return Err(ProbeError::MissingPrivileges);
        }
        let pid_nz = NonZeroU32::new(pid).ok_or(ProbeError::TargetExited { pid })?;
        let config = probe_config(target, pid);
        let mut ebpf = EbpfLoader::new()
            .override_global(PROBE_CONFIG_GLOBAL, &config, true)
            // The stack map preallocates ~1 KiB per entry: keep it tiny
            // unless creation stacks are wanted.
            .map_max_entries(
                STACKS_MAP,
                if options.creation_stacks {
                    STACKS_MAP_ENTRIES
                } else {
                    1
                },
            )
            .load(PROBES_OBJECT)
            .map_err(|e| match &e {
                aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                    if io_error.raw_os_error() == Some(libc::EPERM) =>
                {
                    ProbeError::MissingPrivileges
                }
                _ => ProbeError::Load(e),
            })?;
        // The probes only log on their first unreadable field; forward that
        // to the `log` crate. The logger must live as long as the programs,
        // which reference its map.
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();

        for group in ProbeGroup::ALL {
            for &name in group.programs() {
                let prog = uprobe(&mut ebpf, name)?;
                prog.load().map_err(|source| ProbeError::Verify {
                    name,
                    source: Box::new(source),
                })?;
            }
        }
        let events = ebpf
            .take_map(EVENTS_MAP)
            .ok_or(ProbeError::MissingMap { name: EVENTS_MAP })?;
        let events = RingBuf::try_from(events).map_err(|source| ProbeError::Map {
            name: EVENTS_MAP,
            source,
        })?;
        let counters = ebpf
            .take_map(COUNTERS_MAP)
            .ok_or(ProbeError::MissingMap { name: COUNTERS_MAP })?;
        let counters = PerCpuArray::try_from(counters).map_err(|source| ProbeError::Map {
            name: COUNTERS_MAP,
            source,
        })?;
        let stacks = ebpf
            .take_map(STACKS_MAP)
            .ok_or(ProbeError::MissingMap { name: STACKS_MAP })?;
        let stacks = StackTraceMap::try_from(stacks).map_err(|source| ProbeError::Map {
            name: STACKS_MAP,
            source,
        })?;
        let mut session = Self {
            ebpf: Some(ebpf),
            logger,
            counters,
            stacks,
            target_path: target.attach_path.clone(),
            plan: target.probes.clone(),
            timer_plan: target.timer_probes.clone(),
            pid: pid_nz,
            attached: Vec::new(),
        };
        for group in ProbeGroup::ALL {
            if options.wants(group) {
                session.set_attached(group, true)?;
            }
        }
        Ok((session, events))
    }

    /// Where the probes currently sit.
    pub fn attached(&self) -> Vec<&AttachedProbe> {
        self.attached.iter().map(|(_, _, p)| p).collect()
    }

    pub fn is_attached(&self, group: ProbeGroup) -> bool {
        self.attached.iter().any(|(g, _, _)| *g == group)
    }

    /// Attaches or detaches a probe group. Detaching restores the target's
    /// instructions at once (the kernel removes the breakpoints).
    pub fn set_attached(&mut self, group: ProbeGroup, on: bool) -> Result<(), ProbeError> {
        if self.is_attached(group) == on {
            return Ok(());
        }
        let pid = self.pid.get();
        let ebpf = self.ebpf.as_mut().ok_or(ProbeError::TargetExited { pid })?;
        if !on {
            let (leaving, staying) = std::mem::take(&mut self.attached)
                .into_iter()
                .partition(|(g, _, _)| *g == group);
            self.attached = staying;
            detach_in_reverse(ebpf, leaving);
            return Ok(());
        }
        for &name in group.programs() {
            let prog = uprobe(ebpf, name)?;
            for point in group.points(&self.plan, &self.timer_plan, name) {
                let link = prog
                    .attach(
                        point.file_offset,
                        &self.target_path,
                        UProbeScope::OneProcess(self.pid),
                    )
                    .map_err(|source| {
                        if !crate::target::process_is_alive(pid) {
                            return ProbeError::TargetExited { pid };
                        }
                        ProbeError::Attach {
                            name,
                            function: point.function.clone(),
                            offset: point.file_offset,
                            source: Box::new(source),
                        }
                    })?;
                self.attached.push((
                    group,
                    link,
                    AttachedProbe {
                        program: name,
                        function: point.function.clone(),
                        vaddr: point.vaddr,
                        file_offset: point.file_offset,
                        placement: point.placement,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Reads the probes' cumulative counters, summed over CPUs.
    pub fn counters(&self) -> ProbeCounters {
        let read = |index: u32| -> u64 {
            self.counters
                .get(&index, 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .unwrap_or(0)
        };
        ProbeCounters {
            spawn_hits: read(counter::SPAWN_HITS),
            park_hits: read(counter::PARK_HITS),
            ready_hits: read(counter::READY_HITS),
            exit_hits: read(counter::EXIT_HITS),
            ringbuf_full: read(counter::RINGBUF_FULL),
            read_failed: read(counter::READ_FAILED),
            creator_stack_hits: read(counter::CREATOR_STACK_HITS),
            stack_failed: read(counter::STACK_FAILED),
            timer_hits: read(counter::TIMER_HITS),
            timer_fire_hits: read(counter::TIMER_FIRE_HITS),
            timer_fire_skipped: read(counter::TIMER_FIRE_SKIPPED),
            context_hits: read(counter::CONTEXT_HITS),
        }
    }

    /// The user stack recorded under `id` by a `CreatorStack` event: runtime
    /// PCs, innermost first (frame 0 is the probed instruction in
    /// `runtime.newproc`, the others are return addresses).
    pub fn stack(&self, id: u32) -> Option<Vec<u64>> {
        let trace = self.stacks.get(&id, 0).ok()?;
        Some(trace.frames().iter().map(|f| f.ip).collect())
    }

    /// Forwards pending probe log records to the `log` crate.
    pub fn flush_logs(&mut self) {
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
    }

    /// Removes every uprobe from the target. The ring buffer and counters stay
    /// readable so what was already captured can still be drained.
    pub fn detach(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        if let Some(ebpf) = self.ebpf.as_mut() {
            detach_in_reverse(ebpf, attached);
        }
        self.ebpf = None;
        self.logger = None;
    }
}

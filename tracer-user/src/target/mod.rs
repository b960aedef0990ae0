//! Target inspection: everything the probe loader and the symbolizer need to
//! know about a Go executable (and, for a pid, its running process), without
//! touching BPF.
//!
//! - `buildinfo` — the Go version from `.go.buildinfo` ([`GoVersion`]);
//! - `elf` — symbols, sections, vaddr → file offset;
//! - `pclntab` — Go's own function and line table (`.gopclntab`): function
//!   addresses, file/line and inlined frames of stripped binaries;
//! - `dwarf` — runtime struct offsets ([`RuntimeOffsets`]) and the pc → source
//!   [`Symbolizer`];
//! - `offsets_table` — generated offsets and wait reasons per Go minor
//!   version, for binaries without DWARF ([`OffsetsSource::Table`]);
//! - `runtime_vars` — where the goroutine list and the scheduler
//!   (`runtime.sched`) are ([`RuntimeVars`]);
//! - `disasm` — where in a function a uprobe goes ([`Placement`]);
//! - `wait_reasons` — `g.waitreason` code → the runtime's string ([`WaitReasons`]);
//! - `process` — `/proc/PID/{exe,maps,mem}`.
//!
//! Entry points: [`Target::from_pid`] and [`Target::from_path`].

pub mod buildinfo;
pub mod disasm;
mod dwarf;
mod elf;
pub mod memory;
mod offsets_table;
mod pclntab;
mod process;
mod runtime_vars;
pub mod timers;
mod wait_reasons;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use buildinfo::GoVersion;
pub use disasm::Placement;
pub use dwarf::{Frame, RuntimeOffsets, Symbolizer};
pub use process::{
    process_cpu_ns, process_is_alive, process_start_unix_ns, process_usage, ProcessUsage,
};
pub use runtime_vars::{RuntimeVars, SchedSource, GOID_CACHE_BATCH};
pub use wait_reasons::WaitReasons;

use buildinfo::SUPPORTED_RANGE;
use dwarf::DwarfProblem;
use elf::{ElfImage, ElfProblem};

/// Why a target cannot be inspected. Messages say what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with pid {pid}")]
    NoSuchProcess { pid: u32 },
    #[error("not allowed to inspect pid {pid}: run as root (sudo) or as the process owner")]
    PermissionDenied { pid: u32 },
    #[error("process {pid} exited while it was being inspected")]
    ProcessExited { pid: u32 },
    #[error("{what} is not a Go program: {reason}")]
    NotGo { what: String, reason: String },
    #[error(
        "{what} was built with {version}, which is not supported{}: supported versions are {SUPPORTED_RANGE}",
        reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    UnsupportedGoVersion {
        what: String,
        version: String,
        reason: Option<String>,
    },
    #[error("{what} is a {arch} program: only x86-64 (amd64) Go programs are supported")]
    UnsupportedArch { what: String, arch: String },
    #[error(
        "{what}: the Go runtime function {name} is in neither .symtab nor .gopclntab: \
         this is not a Go runtime tracer knows (Go 1.21-1.27, unmodified)"
    )]
    MissingSymbol { what: String, name: String },
    #[error(
        "{what}: its DWARF debug info is incomplete ({detail}); rebuild it with the Go \
         toolchain's defaults, or strip it fully (-ldflags=\"-s -w\") to use the built-in offsets"
    )]
    MissingDwarf { what: String, detail: String },
    #[error(
        "{what}: the DWARF type {type_name} has no member {field}; this Go runtime layout is not supported"
    )]
    MissingField {
        what: String,
        type_name: String,
        field: String,
    },
    #[error("{what}: cannot read DWARF debug info: {reason}")]
    BadDwarf { what: String, reason: String },
    #[error("{what}: cannot decode the machine code of {function} at {vaddr:#x}")]
    Disassembly {
        what: String,
        function: String,
        vaddr: u64,
    },
    #[error(
        "{what} has no DWARF debug info and tracer has no built-in runtime offsets for Go 1.{minor}: \
         rebuild the program without -ldflags=-w, or add the toolchain and run `cargo xtask gen-offsets`"
    )]
    NoOffsetsForVersion { what: String, minor: u32 },
    #[error("{what}: cannot locate runtime.allglen/runtime.allgptr in {function}: {reason}")]
    RuntimeVars {
        what: String,
        function: String,
        reason: String,
    },
    #[error("{what}: cannot locate runtime.sched in {function}: {reason}")]
    Sched {
        what: String,
        function: String,
        reason: String,
    },
    #[error("{what}: cannot read runtime.waitReasonStrings: {reason}")]
    WaitReasons { what: String, reason: String },
    #[error("{what}: cannot locate the executable's mapping in /proc/{pid}/maps")]
    NoExecutableMapping { what: String, pid: u32 },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {} as an ELF executable: {source}", path.display())]
    Elf {
        path: PathBuf,
        source: object::Error,
    },
}

/// Where a uprobe goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbePoint {
    /// Symbol name, e.g. `runtime.gopark`.
    pub function: String,
    /// Link-time virtual address of the probed instruction.
    pub vaddr: u64,
    /// File offset of that instruction (what the uprobe API takes).
    pub file_offset: u64,
    pub placement: Placement,
}

impl fmt::Display for ProbePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} @ {:#x} (file offset {:#x}, {})",
            self.function, self.vaddr, self.file_offset, self.placement
        )
    }
}

/// The probes the tracer attaches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbePlan {
    /// Every `RET` of `runtime.newproc1` (RAX = the new `*g`).
    pub spawn: Vec<ProbePoint>,
    /// Link-time address of `runtime.newproc1` itself (the RETs' offsets
    /// are relative to it).
    pub newproc1_entry: u64,
    /// `runtime.gopark(unlockf, lock, reason, traceReason, traceskip)`.
    pub park: ProbePoint,
    /// `runtime.ready(gp, traceskip, next)`.
    pub ready: ProbePoint,
    /// `runtime.goexit1()`, on the exiting goroutine.
    pub exit: ProbePoint,
    /// `runtime.newproc(fn)`, on the creating goroutine's stack (only
    /// attached with `--creation-stacks`).
    pub newproc: ProbePoint,
}

pub const NEWPROC1: &str = "runtime.newproc1";
pub const NEWPROC: &str = "runtime.newproc";
pub const GOPARK: &str = "runtime.gopark";
pub const READY: &str = "runtime.ready";
pub const GOEXIT1: &str = "runtime.goexit1";

/// Where [`Target::offsets`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetsSource {
    /// The binary's own DWARF.
    Dwarf,
    /// The built-in table for the binary's Go minor version (no DWARF).
    Table,
}

/// Where [`Target::wait_reasons`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReasonsSource {
    /// The binary's own `runtime.waitReasonStrings` (file or process memory).
    Binary,
    /// The built-in table for the binary's Go minor version (no `.symtab`).
    Table,
}

impl fmt::Display for OffsetsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OffsetsSource::Dwarf => "DWARF",
            OffsetsSource::Table => "built-in table",
        })
    }
}

impl fmt::Display for WaitReasonsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitReasonsSource::Binary => "runtime.waitReasonStrings",
            WaitReasonsSource::Table => "built-in table",
        })
    }
}

/// A Go program to trace: its identity, runtime layout, probe plan, wait
/// reasons and symbolizer.
#[derive(Debug)]
pub struct Target {
    pub pid: Option<u32>,
    /// Path to open/attach: `/proc/PID/exe` for a pid (works even when the
    /// binary was deleted or replaced after start), else the given path.
    pub attach_path: PathBuf,
    /// What to show the user: `readlink /proc/PID/exe` (may end in
    /// `" (deleted)"`) or the given path.
    pub display_path: String,
    pub go_version: GoVersion,
    pub offsets: RuntimeOffsets,
    pub offsets_source: OffsetsSource,
    pub probes: ProbePlan,
    /// The timer and context probes, and the layouts they read (`None`:
    /// no table for this Go version).
    pub timer_probes: timers::TimerPlan,
    pub timer_offsets: Option<timers::TimerOffsets>,
    pub wait_reasons: WaitReasons,
    pub wait_reasons_source: WaitReasonsSource,
    /// Link-time addresses of `runtime.allglen` / `runtime.allgptr` and,
    /// when found, `runtime.sched`.
    pub runtime_vars: RuntimeVars,
    pub symbolizer: Symbolizer,
    /// Runtime address − ELF virtual address. 0 for a non-PIE executable and
    /// for [`Target::from_path`] (nothing is loaded).
    pub load_bias: u64,
    pub pie: bool,
    /// Format of the `.gopclntab`, e.g. `go1.20+ (0xfffffff1)`, or why it
    /// could not be read.
    pub pclntab_version: String,
    /// The binary has no `.symtab` or no DWARF (`-ldflags="-s -w"`, `strip`):
    /// function addresses and source positions then come from `.gopclntab`.
    pub stripped: bool,
    /// The Go build ID, when the executable has one.
    pub build_id: Option<String>,
}

impl Target {
    /// Inspects a running process (through `/proc/PID/exe`, `maps` and `mem`).
    pub fn from_pid(pid: u32) -> Result<Self, TargetError> {
        // Inspection reads several /proc files: a target that exits meanwhile
        // fails one of them in its own way. Say what really happened.
        Self::inspect_pid(pid).map_err(|e| match e {
            TargetError::NoSuchProcess { .. } => e,
            _ if !process_is_alive(pid) => TargetError::ProcessExited { pid },
            _ => e,
        })
    }

    fn inspect_pid(pid: u32) -> Result<Self, TargetError> {
        let display_path = process::exe_link(pid)?;
        let what = format!("pid {pid} ({display_path})");
        let attach_path = process::exe_path(pid);
        let (data, dev_ino) = process::read_exe(pid)?;
        let elf = parse_elf(&data, &attach_path, &what)?;
        let maps = process::read_maps(pid)?;
        let text_delta = elf.text_segment_delta().ok_or_else(|| TargetError::NotGo {
            what: what.clone(),
            reason: "it has no executable segment".into(),
        })?;
        let mapping =
            process::executable_mapping(&maps, dev_ino, &display_path).ok_or_else(|| {
                TargetError::NoExecutableMapping {
                    what: what.clone(),
                    pid,
                }
            })?;
        let load_bias = process::load_bias(mapping, text_delta);
        let target = inspect(&elf, &what, Some(pid), load_bias)?;
        Ok(Target {
            pid: Some(pid),
            attach_path,
            display_path,
            load_bias,
            ..target
        })
    }

    /// Inspects an executable file (load bias 0; see [`Target::pie`]).
    pub fn from_path(path: &Path) -> Result<Self, TargetError> {
        let display_path = path.display().to_string();
        let data = process::read_file(path)?;
        let elf = parse_elf(&data, path, &display_path)?;
        let target = inspect(&elf, &display_path, None, 0)?;
        Ok(Target {
            attach_path: path.to_path_buf(),
            display_path,
            ..target
        })
    }

    /// Converts a runtime pc of the target into the ELF virtual address the
    /// [`Symbolizer`] expects.
    pub fn to_vaddr(&self, runtime_pc: u64) -> u64 {
        runtime_pc.wrapping_sub(self.load_bias)
    }
}

fn parse_elf<'data>(
    data: &'data [u8],
    path: &Path,
    what: &str,
) -> Result<ElfImage<'data>, TargetError> {
    let not_go = |reason: &str| TargetError::NotGo {
        what: what.to_string(),
        reason: reason.to_string(),
    };
    let elf = match ElfImage::parse(data) {
        Ok(elf) => elf,
        Err(ElfProblem::NotElf) => return Err(not_go("it is not an ELF executable")),
        Err(ElfProblem::NotExecutable) => return Err(not_go("it is not an executable (ELF type)")),
        Err(ElfProblem::Parse(source)) => {
            return Err(TargetError::Elf {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let Some(buildinfo) = elf.section_data(".go.buildinfo") else {
        return Err(not_go("no .go.buildinfo section"));
    };
    if let Some(arch) = elf.unsupported_architecture() {
        return Err(TargetError::UnsupportedArch {
            what: what.to_string(),
            arch: arch.to_string(),
        });
    }
    // Checked here so that a wrong version is reported before anything else.
    go_version(buildinfo, what)?;
    Ok(elf)
}

fn go_version(buildinfo: &[u8], what: &str) -> Result<GoVersion, TargetError> {
    let raw = buildinfo::version_string(buildinfo).map_err(|e| match e {
        buildinfo::BuildInfoError::PointerFormat => TargetError::UnsupportedGoVersion {
            what: what.to_string(),
            version: "Go 1.17 or older".into(),
            reason: None,
        },
        other => TargetError::NotGo {
            what: what.to_string(),
            reason: other.to_string(),
        },
    })?;
    let version = GoVersion::parse(&raw).map_err(|e| TargetError::UnsupportedGoVersion {
        what: what.to_string(),
        version: e.version,
        reason: Some(e.reason.to_string()),
    })?;
    if !version.is_supported() {
        return Err(TargetError::UnsupportedGoVersion {
            what: what.to_string(),
            version: raw,
            reason: None,
        });
    }
    Ok(version)
}

/// Everything but the pid/path fields, which the callers fill in.
fn inspect(
    elf: &ElfImage<'_>,
    what: &str,
    pid: Option<u32>,
    load_bias: u64,
) -> Result<Target, TargetError> {
    let go_version = go_version(elf.section_data(".go.buildinfo").unwrap_or_default(), what)?;
    let probes = plan_probes(elf, what)?;
    let timer_offsets = timers::offsets(go_version.minor);
    let timer_probes = match timer_offsets.map(|_| timers::plan(elf, what, go_version.minor)) {
        Some(Ok(plan)) => plan,
        Some(Err(e)) => {
            log::warn!("{e}: timers and contexts will not be traced");
            timers::TimerPlan::default()
        }
        None => timers::TimerPlan::default(),
    };
    let (wait_reasons, wait_reasons_source) =
        read_wait_reasons(elf, what, pid, load_bias, &go_version)?;
    let dwarf = match dwarf::load(elf) {
        Ok(dwarf) => Some(dwarf),
        Err(DwarfProblem::Missing) => None,
        Err(problem) => return Err(dwarf_error(problem, what)),
    };
    let (offsets, offsets_source) = match &dwarf {
        Some(dwarf) => (
            dwarf::runtime_offsets(dwarf).map_err(|p| dwarf_error(p, what))?,
            OffsetsSource::Dwarf,
        ),
        None => {
            let entry = offsets_table::entry(go_version.minor).ok_or_else(|| {
                TargetError::NoOffsetsForVersion {
                    what: what.to_string(),
                    minor: go_version.minor,
                }
            })?;
            log::info!(
                "{what} has no DWARF: using the built-in runtime offsets of {}",
                entry.generated_from
            );
            (entry.offsets, OffsetsSource::Table)
        }
    };
    let runtime_vars = find_runtime_vars(elf, what, &offsets)?;
    let symbolizer =
        Symbolizer::new(dwarf, elf.function_table()).map_err(|p| dwarf_error(p, what))?;
    let (symbolizer, pclntab_version) = match elf.pclntab() {
        Ok(table) => (symbolizer.with_pclntab(Arc::clone(table)), table.version()),
        Err(problem) => (symbolizer, format!("unreadable: {problem}")),
    };
    Ok(Target {
        pid: None,
        attach_path: PathBuf::new(),
        display_path: String::new(),
        go_version,
        offsets,
        offsets_source,
        probes,
        timer_probes,
        timer_offsets,
        wait_reasons,
        wait_reasons_source,
        runtime_vars,
        symbolizer,
        load_bias,
        pie: elf.pie,
        pclntab_version,
        stripped: !elf.has_symtab() || !dwarf::present(elf),
        build_id: elf.go_build_id(),
    })
}

fn dwarf_error(problem: DwarfProblem, what: &str) -> TargetError {
    let what = what.to_string();
    match problem {
        DwarfProblem::Missing => TargetError::MissingDwarf {
            what,
            detail: "no .debug_info section".into(),
        },
        DwarfProblem::MissingType(type_name) => TargetError::MissingDwarf {
            what,
            detail: format!("no type {type_name} in .debug_info"),
        },
        DwarfProblem::MissingField { type_name, field } => TargetError::MissingField {
            what,
            type_name: type_name.into(),
            field: field.into(),
        },
        DwarfProblem::Decompress { section, reason } => TargetError::BadDwarf {
            what,
            reason: format!("{section}: {reason}"),
        },
        DwarfProblem::Parse(e) => TargetError::BadDwarf {
            what,
            reason: e.to_string(),
        },
    }
}

fn function_code<'data>(
    elf: &ElfImage<'data>,
    what: &str,
    name: &str,
) -> Result<(u64, &'data [u8]), TargetError> {
    let missing = || TargetError::MissingSymbol {
        what: what.to_string(),
        name: if elf.has_symtab() {
            name.to_string()
        } else {
            format!("{name} (there is no .symtab)")
        },
    };
    let symbol = elf.symbol(name).ok_or_else(missing)?;
    let code = elf
        .bytes_at(symbol.address, symbol.size)
        .ok_or_else(missing)?;
    Ok((symbol.address, code))
}

fn probe_point(
    elf: &ElfImage<'_>,
    what: &str,
    function: &str,
    vaddr: u64,
    placement: Placement,
) -> Result<ProbePoint, TargetError> {
    let file_offset = elf
        .file_offset(vaddr)
        .ok_or_else(|| TargetError::MissingSymbol {
            what: what.to_string(),
            name: format!("{function} (address {vaddr:#x} is not in the file)"),
        })?;
    Ok(ProbePoint {
        function: function.to_string(),
        vaddr,
        file_offset,
        placement,
    })
}

fn entry_probe(elf: &ElfImage<'_>, what: &str, function: &str) -> Result<ProbePoint, TargetError> {
    let (start, code) = function_code(elf, what, function)?;
    let (vaddr, placement) = disasm::prologue_probe(code, start);
    probe_point(elf, what, function, vaddr, placement)
}

fn plan_probes(elf: &ElfImage<'_>, what: &str) -> Result<ProbePlan, TargetError> {
    let newproc1_entry = function_code(elf, what, NEWPROC1)?.0;
    Ok(ProbePlan {
        spawn: ret_probes(elf, what, NEWPROC1)?,
        newproc1_entry,
        park: entry_probe(elf, what, GOPARK)?,
        ready: entry_probe(elf, what, READY)?,
        exit: entry_probe(elf, what, GOEXIT1)?,
        newproc: entry_probe(elf, what, NEWPROC)?,
    })
}

/// Probes on every `RET` of `function` (plain uprobes that see its return
/// values).
fn ret_probes(
    elf: &ElfImage<'_>,
    what: &str,
    function: &str,
) -> Result<Vec<ProbePoint>, TargetError> {
    let (start, code) = function_code(elf, what, function)?;
    let rets = disasm::ret_addresses(code, start).map_err(|e| TargetError::Disassembly {
        what: what.to_string(),
        function: function.to_string(),
        vaddr: e.vaddr,
    })?;
    if rets.is_empty() {
        return Err(TargetError::Disassembly {
            what: what.to_string(),
            function: function.to_string(),
            vaddr: start,
        });
    }
    rets.into_iter()
        .map(|vaddr| probe_point(elf, what, function, vaddr, Placement::Ret))
        .collect()
}

/// `runtime.allglen`/`runtime.allgptr` from `.symtab`, else from the code
/// of `runtime.forEachGRace`; `runtime.sched` from `.symtab`, else from the
/// code of `runtime.newproc1`, else absent (not an error: only counting
/// goroutine creations without probes needs it).
fn find_runtime_vars(
    elf: &ElfImage<'_>,
    what: &str,
    offsets: &RuntimeOffsets,
) -> Result<RuntimeVars, TargetError> {
    let allgs = match runtime_vars::allgs_from_symtab(elf) {
        Some(allgs) => allgs,
        None => allgs_from_code(elf, what)?,
    };
    let (sched, sched_source) = match runtime_vars::sched_from_symtab(elf) {
        Some(sched) => (Some(sched), SchedSource::Symtab),
        None => match sched_from_code(elf, what, offsets) {
            Ok(sched) => (Some(sched), SchedSource::Disassembly),
            Err(e) => {
                log::info!("{e}: goroutine creations cannot be counted without probes");
                (None, SchedSource::Absent)
            }
        },
    };
    Ok(RuntimeVars {
        allglen: allgs.allglen,
        allgptr: allgs.allgptr,
        sched,
        sched_source,
        allp: runtime_vars::allp_from_symtab(elf),
    })
}

/// The disassembly path for `runtime.allglen`/`runtime.allgptr` (also used
/// by the tests on unstripped binaries, to compare with `.symtab`).
fn allgs_from_code(elf: &ElfImage<'_>, what: &str) -> Result<runtime_vars::AllGs, TargetError> {
    let function = runtime_vars::FOR_EACH_G_RACE;
    let (start, code) = function_code(elf, what, function)?;
    runtime_vars::allgs_from_for_each_g_race(code, start).map_err(|reason| {
        TargetError::RuntimeVars {
            what: what.to_string(),
            function: function.to_string(),
            reason,
        }
    })
}

/// The disassembly path for `runtime.sched`: `&sched.goidgen` from the code
/// of `runtime.newproc1`, minus `offsetof(schedt, goidgen)` (also used by
/// the tests on unstripped binaries, to compare with `.symtab`).
fn sched_from_code(
    elf: &ElfImage<'_>,
    what: &str,
    offsets: &RuntimeOffsets,
) -> Result<u64, TargetError> {
    let function = NEWPROC1;
    let error = |reason: String| TargetError::Sched {
        what: what.to_string(),
        function: function.to_string(),
        reason,
    };
    let (start, code) = function_code(elf, what, function)?;
    let goidgen = runtime_vars::goidgen_from_newproc1(code, start).map_err(error)?;
    goidgen.checked_sub(offsets.schedt_goidgen).ok_or_else(|| {
        error(format!(
            "sched.goidgen at {goidgen:#x} is below its offset {}",
            offsets.schedt_goidgen
        ))
    })
}

/// The binary's own `runtime.waitReasonStrings` when `.symtab` has it: from
/// the file when possible (no process needed; the strings never change at
/// run time), else from the process's memory. Without the symbol, the
/// built-in table for the Go minor version.
fn read_wait_reasons(
    elf: &ElfImage<'_>,
    what: &str,
    pid: Option<u32>,
    load_bias: u64,
    go_version: &GoVersion,
) -> Result<(WaitReasons, WaitReasonsSource), TargetError> {
    let Some(table) = elf.symbol(wait_reasons::SYMBOL) else {
        let entry = offsets_table::entry(go_version.minor).ok_or_else(|| {
            TargetError::NoOffsetsForVersion {
                what: what.to_string(),
                minor: go_version.minor,
            }
        })?;
        let names = entry.wait_reasons.iter().map(|n| n.to_string()).collect();
        let reasons = WaitReasons::from_names(names).map_err(|e| TargetError::WaitReasons {
            what: what.to_string(),
            reason: format!("built-in table for Go 1.{}: {e}", go_version.minor),
        })?;
        return Ok((reasons, WaitReasonsSource::Table));
    };
    let binary = |reasons| (reasons, WaitReasonsSource::Binary);
    let file_problem = match wait_reasons::from_file(elf, table) {
        Ok(reasons) => return Ok(binary(reasons)),
        Err(problem) => problem,
    };
    let error = |reason: String| TargetError::WaitReasons {
        what: what.to_string(),
        reason,
    };
    let Some(pid) = pid else {
        return Err(error(format!(
            "{file_problem} (inspect the running process by pid instead)"
        )));
    };
    let memory = memory::ProcessMemory::open(pid).map_err(|e| match e {
        memory::MemoryError::ProcessGone { pid } => TargetError::ProcessExited { pid },
        memory::MemoryError::PermissionDenied { pid } => TargetError::PermissionDenied { pid },
        other => error(format!("{file_problem}; from memory: {other}")),
    })?;
    wait_reasons::from_memory(&memory, table, load_bias)
        .map(binary)
        .map_err(|memory_problem| error(format!("{file_problem}; from memory: {memory_problem}")))
}

#[cfg(test)]
mod tests;

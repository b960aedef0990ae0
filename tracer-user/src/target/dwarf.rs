//! DWARF: the runtime struct offsets the probes read, and pc → source
//! symbolization (with inlined frames) through `addr2line`, or through
//! `.gopclntab` when the binary has no DWARF.
//!
//! Go compresses its DWARF sections (`SHF_COMPRESSED` zlib; `.zdebug_*` in old
//! toolchains): they are decompressed once, here, by `object`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use gimli::{AttributeValue, Reader as _, SectionId};
use object::read::ObjectSection;
use object::Object;

use super::elf::{ElfImage, FunctionTable};
use super::pclntab::Pclntab;

/// DWARF reader owning its (decompressed) section bytes, so the symbolizer
/// can outlive the mapped file.
pub(crate) type Reader = gimli::EndianArcSlice<gimli::LittleEndian>;

/// Why DWARF could not be loaded or used.
#[derive(Debug)]
pub(crate) enum DwarfProblem {
    /// No `.debug_info` at all.
    Missing,
    /// A section could not be decompressed.
    Decompress { section: String, reason: String },
    /// Malformed DWARF.
    Parse(gimli::Error),
    /// A needed runtime type is absent.
    MissingType(&'static str),
    /// A needed member of a runtime type is absent.
    MissingField {
        type_name: &'static str,
        field: &'static str,
    },
}

impl From<gimli::Error> for DwarfProblem {
    fn from(e: gimli::Error) -> Self {
        DwarfProblem::Parse(e)
    }
}

/// Sections `addr2line` and the type walk use; the others (locations, frames)
/// are never decompressed.
const NEEDED: [SectionId; 10] = [
    SectionId::DebugAbbrev,
    SectionId::DebugAddr,
    SectionId::DebugAranges,
    SectionId::DebugInfo,
    SectionId::DebugLine,
    SectionId::DebugLineStr,
    SectionId::DebugRanges,
    SectionId::DebugRngLists,
    SectionId::DebugStr,
    SectionId::DebugStrOffsets,
];

/// Whether the executable has DWARF (a `.debug_info` section).
pub(crate) fn present(elf: &ElfImage<'_>) -> bool {
    find_section(elf, SectionId::DebugInfo.name()).is_some()
}

/// Loads (and decompresses) the DWARF of the executable.
pub(crate) fn load(elf: &ElfImage<'_>) -> Result<gimli::Dwarf<Reader>, DwarfProblem> {
    if find_section(elf, SectionId::DebugInfo.name()).is_none() {
        return Err(DwarfProblem::Missing);
    }
    gimli::Dwarf::load(|id| -> Result<Reader, DwarfProblem> {
        let bytes: Arc<[u8]> = if NEEDED.contains(&id) {
            section_bytes(elf, id.name())?
        } else {
            Arc::from(&[][..])
        };
        Ok(gimli::EndianArcSlice::new(bytes, gimli::LittleEndian))
    })
}

fn find_section<'data, 'file>(
    elf: &'file ElfImage<'data>,
    name: &str,
) -> Option<object::read::Section<'data, 'file>> {
    elf.file.section_by_name(name).or_else(|| {
        let zname = format!(".zdebug_{}", name.strip_prefix(".debug_")?);
        elf.file.section_by_name(&zname)
    })
}

fn section_bytes(elf: &ElfImage<'_>, name: &str) -> Result<Arc<[u8]>, DwarfProblem> {
    let Some(section) = find_section(elf, name) else {
        return Ok(Arc::from(&[][..]));
    };
    let problem = |reason: String| DwarfProblem::Decompress {
        section: name.to_string(),
        reason,
    };
    let data = section
        .uncompressed_data()
        .map_err(|e| problem(e.to_string()))?;
    Ok(Arc::from(data.as_ref()))
}

/// Byte offsets of the runtime fields the probes read, from DWARF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RuntimeOffsets {
    /// `runtime.g.goid`
    pub g_goid: u64,
    /// `runtime.g.parentGoid`
    pub g_parent_goid: u64,
    /// `runtime.g.gopc` (return address of the `go` statement's call)
    pub g_gopc: u64,
    /// `runtime.g.startpc` (the goroutine's function)
    pub g_startpc: u64,
    /// `runtime.g.atomicstatus` (a plain `uint32` or an `atomic.Uint32` struct: same layout)
    pub g_atomicstatus: u64,
    /// `runtime.g.waitreason`
    pub g_waitreason: u64,
    /// Size in bytes of `g.waitreason`'s type (`runtime.waitReason`, 1 on all supported versions).
    pub g_waitreason_size: u64,
    /// `runtime.g.m`
    pub g_m: u64,
    /// `runtime.g.sched` (a `runtime.gobuf`)
    pub g_sched: u64,
    /// `runtime.gobuf.sp`
    pub gobuf_sp: u64,
    /// `runtime.gobuf.pc`
    pub gobuf_pc: u64,
    /// `runtime.gobuf.bp`
    pub gobuf_bp: u64,
    /// `runtime.m.curg`
    pub m_curg: u64,
    /// `runtime.g.waitsince` (an `int64` nanotime; set lazily by the GC, not at park time)
    pub g_waitsince: u64,
    /// `runtime.g.stack.lo` (`g.stack` offset + `runtime.stack.lo`)
    pub g_stack_lo: u64,
    /// `runtime.g.stack.hi` (`g.stack` offset + `runtime.stack.hi`)
    pub g_stack_hi: u64,
    /// `runtime.g.waiting` (a `*sudog`: the sudogs of a goroutine blocked in
    /// a channel operation or a `select`, linked through `sudog.waitlink`)
    pub g_waiting: u64,
    /// The channel address in `runtime.sudog`: `sudog.c` (a `*hchan`) up to
    /// Go 1.25; from Go 1.26, where `c` is a `runtime.maybeTraceableChan`,
    /// its address word `c.maybeTraceablePtr.vu` (the `vp` word is cleared
    /// while the GC hunts for leaked goroutines).
    pub sudog_c: u64,
    /// `runtime.sudog.waitlink` (the next sudog of `g.waiting`'s list)
    pub sudog_waitlink: u64,
    /// `runtime.g.trackingSeq` (a `uint8`): incremented by `casgstatus` on
    /// every transition out of `_Grunning`/`_Gsyscall` (to anything but
    /// those two), so a goroutine seen waiting twice with the same value did
    /// not run in between (modulo 256 transitions).
    pub g_tracking_seq: u64,
    /// `runtime.schedt.goidgen` (an `atomic.Uint64`, whose 8 bytes are its
    /// `value`): the last goroutine id handed out to a P's id cache, in
    /// batches of `_GoidCacheBatch` (16); every goid ever assigned is ≤ it.
    pub schedt_goidgen: u64,
    /// Size in bytes of `runtime.g`.
    pub g_size: u64,
}

impl fmt::Display for RuntimeOffsets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "g.goid={} g.parentGoid={} g.gopc={} g.startpc={} g.atomicstatus={} \
             g.waitreason={}({}B) g.m={} g.sched={} gobuf.sp={} gobuf.pc={} gobuf.bp={} m.curg={} \
             g.waitsince={} g.stack.lo={} g.stack.hi={} g.waiting={} sudog.c={} \
             sudog.waitlink={} g.trackingSeq={} schedt.goidgen={} sizeof(g)={}",
            self.g_goid,
            self.g_parent_goid,
            self.g_gopc,
            self.g_startpc,
            self.g_atomicstatus,
            self.g_waitreason,
            self.g_waitreason_size,
            self.g_m,
            self.g_sched,
            self.gobuf_sp,
            self.gobuf_pc,
            self.gobuf_bp,
            self.m_curg,
            self.g_waitsince,
            self.g_stack_lo,
            self.g_stack_hi,
            self.g_waiting,
            self.sudog_c,
            self.sudog_waitlink,
            self.g_tracking_seq,
            self.schedt_goidgen,
            self.g_size
        )
    }
}

/// A struct member: offset, and the byte size and name of its type (if known).
#[derive(Debug, Clone)]
struct Member {
    offset: u64,
    type_size: Option<u64>,
    type_name: Option<String>,
}

const G: &str = "runtime.g";
const M: &str = "runtime.m";
const GOBUF: &str = "runtime.gobuf";
const STACK: &str = "runtime.stack";
const SUDOG: &str = "runtime.sudog";
const SCHEDT: &str = "runtime.schedt";
/// Type of `sudog.c` from Go 1.26: `struct { maybeTraceablePtr }`.
const MAYBE_TRACEABLE_CHAN: &str = "runtime.maybeTraceableChan";
/// `struct { vp unsafe.Pointer; vu uintptr }`: `vu` is the address.
const MAYBE_TRACEABLE_PTR: &str = "runtime.maybeTraceablePtr";

/// Reads [`RuntimeOffsets`] from the `runtime.g`, `runtime.m`,
/// `runtime.gobuf`, `runtime.stack`, `runtime.sudog` and `runtime.schedt`
/// struct types.
pub(crate) fn runtime_offsets(
    dwarf: &gimli::Dwarf<Reader>,
) -> Result<RuntimeOffsets, DwarfProblem> {
    let structs = find_structs(dwarf, &[G, M, GOBUF, STACK, SUDOG, SCHEDT])?;
    let layout = |type_name: &'static str| {
        structs
            .get(type_name)
            .ok_or(DwarfProblem::MissingType(type_name))
    };
    let field = |type_name: &'static str, field: &'static str| -> Result<Member, DwarfProblem> {
        layout(type_name)?
            .members
            .get(field)
            .cloned()
            .ok_or(DwarfProblem::MissingField { type_name, field })
    };
    let sudog_c = field(SUDOG, "c")?;
    let sudog_c = match sudog_c.type_name.as_deref() {
        Some(MAYBE_TRACEABLE_CHAN) => sudog_c.offset + traceable_chan_address(dwarf)?,
        // `*runtime.hchan` (Go names pointer types `*T`).
        Some(name) if name.starts_with('*') => sudog_c.offset,
        _ => {
            return Err(DwarfProblem::MissingField {
                type_name: SUDOG,
                field: "c (a *hchan or a runtime.maybeTraceableChan)",
            })
        }
    };
    // A field read with a fixed width: its type must have that size.
    let sized = |type_name: &'static str,
                 name: &'static str,
                 size: u64,
                 described: &'static str|
     -> Result<u64, DwarfProblem> {
        let member = field(type_name, name)?;
        if member.type_size != Some(size) {
            return Err(DwarfProblem::MissingField {
                type_name,
                field: described,
            });
        }
        Ok(member.offset)
    };
    // `goidgen` is an `atomic.Uint64` (`struct { noCopy; _ align64; value
    // uint64 }`; the first two are empty) or, in principle, a plain `uint64`:
    // 8 bytes either way, the value at the member's own offset.
    let schedt_goidgen = sized(SCHEDT, "goidgen", 8, "goidgen (an 8-byte atomic.Uint64)")?;
    let g_tracking_seq = sized(G, "trackingSeq", 1, "trackingSeq (a uint8)")?;
    let waitreason = field(G, "waitreason")?;
    let stack = field(G, "stack")?.offset;
    let g_size = layout(G)?.size.ok_or(DwarfProblem::MissingField {
        type_name: G,
        field: "(byte size)",
    })?;
    Ok(RuntimeOffsets {
        g_goid: field(G, "goid")?.offset,
        g_parent_goid: field(G, "parentGoid")?.offset,
        g_gopc: field(G, "gopc")?.offset,
        g_startpc: field(G, "startpc")?.offset,
        g_atomicstatus: field(G, "atomicstatus")?.offset,
        g_waitreason: waitreason.offset,
        g_waitreason_size: waitreason.type_size.unwrap_or(1),
        g_m: field(G, "m")?.offset,
        g_sched: field(G, "sched")?.offset,
        gobuf_sp: field(GOBUF, "sp")?.offset,
        gobuf_pc: field(GOBUF, "pc")?.offset,
        gobuf_bp: field(GOBUF, "bp")?.offset,
        m_curg: field(M, "curg")?.offset,
        g_waitsince: field(G, "waitsince")?.offset,
        g_stack_lo: stack + field(STACK, "lo")?.offset,
        g_stack_hi: stack + field(STACK, "hi")?.offset,
        g_waiting: field(G, "waiting")?.offset,
        sudog_c,
        sudog_waitlink: field(SUDOG, "waitlink")?.offset,
        g_tracking_seq,
        schedt_goidgen,
        g_size,
    })
}

/// Offset of the address word in a `runtime.maybeTraceableChan` (Go 1.26+):
/// `maybeTraceablePtr` (embedded) + `vu`.
fn traceable_chan_address(dwarf: &gimli::Dwarf<Reader>) -> Result<u64, DwarfProblem> {
    let structs = find_structs(dwarf, &[MAYBE_TRACEABLE_CHAN, MAYBE_TRACEABLE_PTR])?;
    let offset = |type_name: &'static str, field: &'static str| {
        structs
            .get(type_name)
            .ok_or(DwarfProblem::MissingType(type_name))?
            .members
            .get(field)
            .map(|m| m.offset)
            .ok_or(DwarfProblem::MissingField { type_name, field })
    };
    Ok(offset(MAYBE_TRACEABLE_CHAN, "maybeTraceablePtr")? + offset(MAYBE_TRACEABLE_PTR, "vu")?)
}

/// A struct type: its byte size and members by name.
#[derive(Debug, Default)]
struct StructLayout {
    size: Option<u64>,
    members: HashMap<String, Member>,
}

/// Finds the named struct types and returns their layouts. Stops scanning as
/// soon as all were found (they live in the `runtime` unit, early in the file).
fn find_structs(
    dwarf: &gimli::Dwarf<Reader>,
    names: &[&'static str],
) -> Result<HashMap<&'static str, StructLayout>, DwarfProblem> {
    let mut found: HashMap<&'static str, StructLayout> = HashMap::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next()? {
        let unit = dwarf.unit(header)?;
        let mut cursor = unit.entries();
        // Depth of the struct whose members are being collected, if any.
        let mut current: Option<(&'static str, isize)> = None;
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            if let Some((name, struct_depth)) = current {
                if depth > struct_depth {
                    if depth == struct_depth + 1 && entry.tag() == gimli::DW_TAG_member {
                        if let Some(member_name) = entry_name(dwarf, &unit, entry) {
                            let member = Member {
                                offset: entry
                                    .attr_value(gimli::DW_AT_data_member_location)
                                    .and_then(|v| v.udata_value())
                                    .unwrap_or(0),
                                type_size: member_type_size(&unit, entry),
                                type_name: member_type_name(dwarf, &unit, entry),
                            };
                            found
                                .entry(name)
                                .or_default()
                                .members
                                .insert(member_name, member);
                        }
                    }
                    continue;
                }
                current = None;
                if names.iter().all(|n| found.contains_key(n)) {
                    return Ok(found);
                }
            }
            if entry.tag() == gimli::DW_TAG_structure_type {
                if let Some(entry_name) = entry_name(dwarf, &unit, entry) {
                    if let Some(&name) = names.iter().find(|&&n| n == entry_name) {
                        if !found.contains_key(name) {
                            let size = entry
                                .attr_value(gimli::DW_AT_byte_size)
                                .and_then(|v| v.udata_value());
                            found.insert(
                                name,
                                StructLayout {
                                    size,
                                    members: HashMap::new(),
                                },
                            );
                            current = Some((name, depth));
                        }
                    }
                }
            }
        }
        if names.iter().all(|n| found.contains_key(n)) {
            return Ok(found);
        }
    }
    Ok(found)
}

fn entry_name(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<String> {
    let value = entry.attr_value(gimli::DW_AT_name)?;
    let name = dwarf.attr_string(unit, value).ok()?;
    name.to_string().ok().map(|s| s.into_owned())
}

/// The type entry an entry's `DW_AT_type` refers to, in the same unit. Go
/// writes type references as `DW_FORM_ref_addr` (`.debug_info` offsets).
fn type_entry(
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<gimli::DebuggingInformationEntry<Reader>> {
    let offset = match entry.attr_value(gimli::DW_AT_type)? {
        AttributeValue::UnitRef(offset) => offset,
        AttributeValue::DebugInfoRef(offset) => offset.to_unit_offset(&unit.header)?,
        _ => return None,
    };
    unit.entry(offset).ok()
}

/// Name of a member's type (not following typedefs).
fn member_type_name(
    dwarf: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<String> {
    entry_name(dwarf, unit, &type_entry(unit, entry)?)
}

/// Byte size of a member's type, following typedefs.
fn member_type_size(
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<u64> {
    let mut ty = type_entry(unit, entry)?;
    for _ in 0..8 {
        if let Some(size) = ty
            .attr_value(gimli::DW_AT_byte_size)
            .and_then(|v| v.udata_value())
        {
            return Some(size);
        }
        ty = type_entry(unit, &ty)?;
    }
    None
}

/// One source-level frame at a pc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Frame {
    /// Go function name, e.g. `main.worker` or `main.main.func1`.
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{} ({file}:{line})", self.function),
            (Some(file), None) => write!(f, "{} ({file})", self.function),
            _ => f.write_str(&self.function),
        }
    }
}

/// Bound on cached pcs; the cache is simply cleared when it is reached.
const CACHE_LIMIT: usize = 1 << 20;

/// pc → frames (inlined frames included) and pc → function name.
///
/// Sources, best first: DWARF (addr2line), the Go pclntab (function, file,
/// line and inlined frames, as the runtime's own tracebacks), the function
/// table (name only).
///
/// All pcs are link-time virtual addresses (subtract the load bias of a PIE
/// first). Results are cached per pc; the type is `Send + Sync`.
pub struct Symbolizer {
    functions: FunctionTable,
    pclntab: Option<Arc<Pclntab>>,
    inner: Mutex<SymbolizerInner>,
}

struct SymbolizerInner {
    context: Option<addr2line::Context<Reader>>,
    cache: HashMap<u64, Arc<[Frame]>>,
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbolizer")
            .field("functions", &self.functions.len())
            .field("pclntab", &self.pclntab)
            .finish_non_exhaustive()
    }
}

impl Symbolizer {
    pub(crate) fn new(
        dwarf: Option<gimli::Dwarf<Reader>>,
        functions: FunctionTable,
    ) -> Result<Self, DwarfProblem> {
        let context = dwarf.map(addr2line::Context::from_dwarf).transpose()?;
        Ok(Symbolizer {
            functions,
            pclntab: None,
            inner: Mutex::new(SymbolizerInner {
                context,
                cache: HashMap::new(),
            }),
        })
    }

    /// Also symbolize through the Go pclntab, for pcs DWARF does not cover
    /// (all of them in a binary without DWARF).
    pub(crate) fn with_pclntab(self, pclntab: Arc<Pclntab>) -> Self {
        Symbolizer {
            pclntab: Some(pclntab),
            ..self
        }
    }

    /// Frames at `pc`, innermost (inlined) first: from DWARF, else from the
    /// pclntab, else the function name without a location; empty if the pc
    /// is in no function.
    pub fn frames(&self, pc: u64) -> Vec<Frame> {
        self.frames_shared(pc).to_vec()
    }

    /// Like [`Self::frames`] but without copying the cached frames.
    pub fn frames_shared(&self, pc: u64) -> Arc<[Frame]> {
        let mut inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(frames) = inner.cache.get(&pc) {
            return Arc::clone(frames);
        }
        let mut frames = inner
            .context
            .as_ref()
            .map(|c| dwarf_frames(c, pc))
            .unwrap_or_default();
        if frames.is_empty() {
            if let Some(pclntab) = &self.pclntab {
                frames = pclntab.frames(pc);
            }
        }
        if frames.is_empty() {
            if let Some(name) = self.functions.lookup(pc) {
                frames.push(Frame {
                    function: name.to_string(),
                    file: None,
                    line: None,
                });
            }
        }
        let frames: Arc<[Frame]> = frames.into();
        if inner.cache.len() >= CACHE_LIMIT {
            inner.cache.clear();
        }
        inner.cache.insert(pc, Arc::clone(&frames));
        frames
    }

    /// The function containing `pc` (e.g. for `g.startpc`), from `.symtab`
    /// or, in a stripped binary, the pclntab.
    pub fn function_name(&self, pc: u64) -> Option<String> {
        self.functions
            .lookup(pc)
            .or_else(|| self.pclntab.as_ref()?.function_name(pc))
            .map(str::to_string)
    }

    /// Where a goroutine was created, from its `g.gopc`. `gopc` is the return
    /// address of the call to `runtime.newproc`, so the `go` statement is at
    /// `gopc - 1`; returns the innermost frame there.
    pub fn creation_site(&self, gopc: u64) -> Option<Frame> {
        let pc = gopc.checked_sub(1)?;
        self.frames_shared(pc).first().cloned()
    }
}

fn dwarf_frames(context: &addr2line::Context<Reader>, pc: u64) -> Vec<Frame> {
    let mut frames = Vec::new();
    let Ok(mut iter) = context.find_frames(pc).skip_all_loads() else {
        return frames;
    };
    while let Ok(Some(frame)) = iter.next() {
        let function = frame
            .function
            .as_ref()
            .and_then(|name| name.raw_name().ok().map(|n| n.into_owned()))
            .unwrap_or_else(|| "?".to_string());
        let (file, line) = match &frame.location {
            // Go's compilation directory is "."; addr2line joins it to
            // relative names ("./<autogenerated>"): show them as Go does.
            Some(location) => (
                location
                    .file
                    .map(|file| file.strip_prefix("./").unwrap_or(file).to_string()),
                location.line,
            ),
            None => (None, None),
        };
        frames.push(Frame {
            function,
            file,
            line,
        });
        if frames.len() > 64 {
            break; // malformed inline nesting
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_display() {
        let f = Frame {
            function: "main.worker".into(),
            file: Some("/src/main.go".into()),
            line: Some(9),
        };
        assert_eq!(f.to_string(), "main.worker (/src/main.go:9)");
        let f = Frame {
            function: "runtime.goexit".into(),
            file: None,
            line: None,
        };
        assert_eq!(f.to_string(), "runtime.goexit");
    }

    #[test]
    fn symbolizer_without_dwarf_uses_symtab_and_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Symbolizer>();
        let symbolizer = Symbolizer::new(None, FunctionTable::default()).unwrap();
        assert!(symbolizer.frames(0x401000).is_empty());
        assert_eq!(symbolizer.creation_site(0), None);
        assert_eq!(symbolizer.function_name(0x401000), None);
    }
}

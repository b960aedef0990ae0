//! A bounds-checked reader of Go's `.gopclntab`: the function table, pc →
//! file/line and the inline tree, i.e. what the Go runtime itself uses for
//! tracebacks. It is what is left of symbol information in a stripped binary
//! (`-ldflags="-s -w"` removes `.symtab` and DWARF, never `.gopclntab`).
//!
//! # Format (Go 1.20 to 1.27 — magic `0xfffffff1`, amd64)
//!
//! The table starts with a `runtime.pcHeader` (`runtime/symtab.go`):
//!
//! | offset | field                                          |
//! |--------|------------------------------------------------|
//! | 0      | magic `u32` (`0xfffffff1`; `0xfffffff0` in 1.18–1.19, same layout) |
//! | 4, 5   | pad, always 0                                   |
//! | 6      | `minLC`, the pc quantum (1 on amd64)            |
//! | 7      | `ptrSize` (8)                                   |
//! | 8      | `nfunc`                                         |
//! | 16     | `nfiles`                                        |
//! | 24     | `textStart` up to Go 1.25; unused (0) since 1.26 |
//! | 32..72 | offsets from the header of `funcnametab`, `cutab`, `filetab`, `pctab`, `pclntable` |
//!
//! - `funcnametab`: NUL-terminated function names, indexed by `_func.nameOff`.
//! - `cutab`: per compilation unit, `u32` offsets into `filetab`
//!   (`_func.cuOffset + fileno`).
//! - `filetab`: NUL-terminated file names.
//! - `pctab`: pc-value tables (below), indexed by `_func.pcsp/pcfile/pcln`
//!   and the pcdata offsets.
//! - `pclntable`: the functab — `nfunc` pairs `(entryoff u32, funcoff u32)`
//!   sorted by entry, then one `u32` end offset — followed by the `_func`
//!   records that `funcoff` points to (relative to `pclntable`).
//!
//! Entry offsets are relative to `moduledata.text` (`runtime.text`), which is
//! the start of `.text` for internally linked binaries but not for externally
//! linked (cgo) ones, where C code comes first. Up to Go 1.25 the header also
//! holds it (`textStart`); since Go 1.26 only `runtime.firstmoduledata` does.
//!
//! A `_func` (`runtime/runtime2.go`, 44 bytes, unchanged from 1.20 to 1.27):
//! `entryOff u32, nameOff i32, args i32, deferreturn u32, pcsp u32,
//! pcfile u32, pcln u32, npcdata u32, cuOffset u32, startLine i32,
//! funcID u8, flag u8, pad u8, nfuncdata u8`, then `npcdata` `u32` offsets
//! into `pctab` (0: no table) and `nfuncdata` `u32` offsets from
//! `moduledata.gofunc` (`go:func.*`; `!0`: none).
//!
//! A pc-value table is a sequence of (value delta, pc delta) uvarint pairs;
//! the value delta is zig-zag encoded, the value starts at -1, the pc at the
//! function entry, and pc deltas are in units of `minLC`. A value applies to
//! the pcs before the pc reached by its pair. A zero value delta after the
//! first pair ends the table; its last pc is the function's size.
//!
//! Inlining (`runtime/symtabinl.go`): the `PCDATA_InlTreeIndex` (2) table
//! gives, at a pc, the index of the innermost inlined call in the
//! `FUNCDATA_InlTree` (3) array of `runtime.inlinedCall` records (16 bytes:
//! `funcID u8, pad [3]u8, nameOff i32, parentPc i32, startLine i32`), or -1
//! in the physical function's own code. `parentPc` is an offset from the
//! function entry of an instruction at the call site: file and line there
//! give the caller's position, and the inline index there its own frame.
//!
//! Where `go:func.*` is (the base of funcdata offsets, `moduledata.gofunc`):
//! up to Go 1.25 a symbol in `.rodata`; since Go 1.26 a part of the pclntab
//! itself, after the `_func` records. Since it is never in the header, it is
//! read from `runtime.firstmoduledata` (see [`load`]).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use object::read::{Object, ObjectSection, ObjectSymbol};
use object::{RelocationFlags, SectionFlags, SectionKind};

use super::dwarf::Frame;
use super::elf::ElfImage;

/// pcHeader magic of Go 1.20 and later (`abi.Go120PCLnTabMagic`).
pub(crate) const GO120_MAGIC: u32 = 0xffff_fff1;
/// pcHeader magic of Go 1.18 and 1.19: the same layout as [`GO120_MAGIC`].
pub(crate) const GO118_MAGIC: u32 = 0xffff_fff0;

/// Size of the pcHeader on a 64-bit target: 8 bytes, then 8 words.
const HEADER_LEN: usize = 8 + 8 * 8;
/// Size of a `_func` record before its pcdata/funcdata arrays.
const FUNC_LEN: usize = 44;
/// Size of a `runtime.inlinedCall`.
const INLINED_CALL_LEN: usize = 16;
/// `abi.FuncFlagAsm` in `_func.flag`: the function is written in assembly.
const FUNC_FLAG_ASM: u8 = 1 << 2;
const PCDATA_INL_TREE_INDEX: u32 = 2;
const FUNCDATA_INL_TREE: u32 = 3;
/// Bound on inline nesting, against cycles in a corrupt inline tree.
const MAX_INLINE_DEPTH: usize = 64;
/// Bound on names and file paths.
const MAX_STRING_LEN: usize = 64 * 1024;
/// More functions than any real program has; larger counts mean a bad header.
const MAX_FUNCS: u64 = 1 << 24;

/// Why no usable pclntab was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PclntabProblem {
    #[error("no .gopclntab (no section, no runtime.pclntab symbol, no pcHeader found)")]
    NotFound,
    #[error("pclntab magic {0:#x} is not the Go 1.18+ format")]
    UnsupportedMagic(u32),
    #[error("malformed pclntab: {0}")]
    Malformed(&'static str),
    #[error("cannot find the start of Go text (runtime.text) for the pclntab entries")]
    NoTextStart,
}

/// The parsed pcHeader.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    magic: u32,
    /// pc quantum (`minLC`).
    quantum: u8,
    nfunc: usize,
    /// `textStart` as stored (Go ≤ 1.25; 0 from Go 1.26, or when unrelocated).
    text_start: u64,
    funcnametab: Range<usize>,
    cutab: Range<usize>,
    filetab: Range<usize>,
    pctab: Range<usize>,
    /// `pclntable`: the functab and the `_func` records, to the end of the data.
    pclntable: Range<usize>,
}

impl Header {
    /// Parses and sanity-checks a pcHeader at the start of `table`.
    fn parse(table: &[u8]) -> Result<Header, PclntabProblem> {
        let magic = read_u32(table, 0).ok_or(PclntabProblem::Malformed("truncated header"))?;
        if magic != GO120_MAGIC && magic != GO118_MAGIC {
            return Err(PclntabProblem::UnsupportedMagic(magic));
        }
        let bad = PclntabProblem::Malformed;
        if table.len() < HEADER_LEN {
            return Err(bad("truncated header"));
        }
        let byte = |at: usize| table.get(at).copied().unwrap_or(0xff);
        if byte(4) != 0 || byte(5) != 0 {
            return Err(bad("non-zero header padding"));
        }
        let quantum = byte(6);
        if !matches!(quantum, 1 | 2 | 4) {
            return Err(bad("bad pc quantum"));
        }
        if byte(7) != 8 {
            return Err(bad("not a 64-bit table"));
        }
        let word = |index: usize| read_u64(table, 8 + 8 * index).unwrap_or(u64::MAX);
        let nfunc = word(0);
        if nfunc == 0 || nfunc > MAX_FUNCS {
            return Err(bad("implausible function count"));
        }
        let offset = |index: usize| usize::try_from(word(index)).unwrap_or(usize::MAX);
        let starts = [offset(3), offset(4), offset(5), offset(6), offset(7)];
        let mut previous = HEADER_LEN;
        for &start in &starts {
            if start < previous || start > table.len() {
                return Err(bad("subtable offsets out of order or out of bounds"));
            }
            previous = start;
        }
        let [funcnametab, cutab, filetab, pctab, pclntable] = starts;
        let nfunc = usize::try_from(nfunc).map_err(|_| bad("implausible function count"))?;
        // The functab alone: nfunc (entryoff, funcoff) pairs and the end offset.
        if table.len() - pclntable < nfunc * 8 + 4 {
            return Err(bad("functab truncated"));
        }
        Ok(Header {
            magic,
            quantum,
            nfunc,
            text_start: word(2),
            funcnametab: funcnametab..cutab,
            cutab: cutab..filetab,
            filetab: filetab..pctab,
            pctab: pctab..pclntable,
            pclntable: pclntable..table.len(),
        })
    }
}

/// A Go function from the functab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PclnFunction {
    pub(crate) name: String,
    /// Link-time virtual address of the first instruction.
    pub(crate) entry: u64,
    /// Size of the code, as in `.symtab` (the end pc of its pc-value tables;
    /// alignment padding up to the next function is not included).
    pub(crate) size: u64,
}

/// A parsed pclntab, owning copies of its bytes (so it outlives the file).
pub(crate) struct Pclntab {
    /// From the pcHeader to the end of its section.
    table: Box<[u8]>,
    header: Header,
    /// Link-time virtual address of the pcHeader.
    vaddr: u64,
    /// `runtime.text`: the base of entry offsets.
    text_start: u64,
    /// `go:func.*` (`moduledata.gofunc`), when it was found: without it
    /// there are no inlined frames.
    gofunc: Option<GoFunc>,
}

/// The funcdata area: its address and its bytes to the end of its section.
struct GoFunc {
    vaddr: u64,
    bytes: Box<[u8]>,
}

impl fmt::Debug for Pclntab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pclntab")
            .field("version", &self.version())
            .field("vaddr", &format_args!("{:#x}", self.vaddr))
            .field("text_start", &format_args!("{:#x}", self.text_start()))
            .field("functions", &self.len())
            .field("inline_trees", &self.has_inline_trees())
            .field("gofunc", &self.gofunc_vaddr().map(|a| format!("{a:#x}")))
            .finish()
    }
}

/// A `_func` record: its bytes (to the end of the pclntable) and entry pc.
#[derive(Clone, Copy)]
struct FuncRecord<'a> {
    bytes: &'a [u8],
    entry: u64,
}

impl<'a> FuncRecord<'a> {
    fn field(&self, offset: usize) -> Option<u32> {
        read_u32(self.bytes, offset)
    }
    fn name_off(&self) -> Option<u32> {
        self.field(4)
    }
    fn pcsp(&self) -> Option<u32> {
        self.field(16)
    }
    fn pcfile(&self) -> Option<u32> {
        self.field(20)
    }
    fn pcln(&self) -> Option<u32> {
        self.field(24)
    }
    fn npcdata(&self) -> Option<u32> {
        self.field(28)
    }
    fn cu_offset(&self) -> Option<u32> {
        self.field(32)
    }
    fn flag(&self) -> Option<u8> {
        self.bytes.get(41).copied()
    }
    fn nfuncdata(&self) -> Option<u8> {
        self.bytes.get(43).copied()
    }
    /// Offset into `pctab` of pcdata table `index`, if present.
    fn pcdata(&self, index: u32) -> Option<u32> {
        if index >= self.npcdata()? {
            return None;
        }
        let at = FUNC_LEN.checked_add(usize::try_from(index).ok()?.checked_mul(4)?)?;
        self.field(at).filter(|&off| off != 0)
    }
    /// Offset from `go:func.*` of funcdata `index`, if present.
    fn funcdata(&self, index: u32) -> Option<u32> {
        if index >= u32::from(self.nfuncdata()?) {
            return None;
        }
        let npcdata = usize::try_from(self.npcdata()?).ok()?;
        let at = FUNC_LEN
            .checked_add(npcdata.checked_mul(4)?)?
            .checked_add(usize::try_from(index).ok()?.checked_mul(4)?)?;
        self.field(at).filter(|&off| off != u32::MAX)
    }
}

/// A `runtime.inlinedCall`.
#[derive(Debug, Clone, Copy)]
struct InlinedCall {
    name_off: u32,
    parent_pc: u32,
}

impl Pclntab {
    /// Parses `table` (starting at its pcHeader, at link-time address
    /// `vaddr`). `text_start` is `runtime.text` (`None`: use the header's
    /// `textStart`, which Go 1.26+ no longer fills); `gofunc` the address of
    /// `go:func.*` and the bytes from there, if known.
    pub(crate) fn parse(
        table: &[u8],
        vaddr: u64,
        text_start: Option<u64>,
        gofunc: Option<(u64, &[u8])>,
    ) -> Result<Pclntab, PclntabProblem> {
        let header = Header::parse(table)?;
        let text_start = match text_start {
            Some(text) => text,
            None if header.text_start != 0 => header.text_start,
            None => return Err(PclntabProblem::NoTextStart),
        };
        let pclntab = Pclntab {
            table: table.into(),
            header,
            vaddr,
            text_start,
            gofunc: gofunc.map(|(vaddr, bytes)| GoFunc {
                vaddr,
                bytes: bytes.into(),
            }),
        };
        // The entries must increase: a cheap check that this is a functab.
        let mut previous = 0;
        for index in 0..=pclntab.header.nfunc {
            let entry = pclntab
                .entry_offset(index)
                .ok_or(PclntabProblem::Malformed("functab truncated"))?;
            if entry < previous {
                return Err(PclntabProblem::Malformed("functab entries not sorted"));
            }
            previous = entry;
        }
        Ok(pclntab)
    }

    /// E.g. `go1.20+ (0xfffffff1)`.
    pub(crate) fn version(&self) -> String {
        describe_magic(self.header.magic)
    }

    /// Number of functions in the table.
    pub(crate) fn len(&self) -> usize {
        self.header.nfunc
    }

    /// `runtime.text`, the base of the entry offsets.
    pub(crate) fn text_start(&self) -> u64 {
        self.text_start
    }

    /// Whether inlined frames can be resolved (`go:func.*` was found).
    pub(crate) fn has_inline_trees(&self) -> bool {
        self.gofunc.is_some()
    }

    /// Link-time address of `go:func.*`, if found.
    pub(crate) fn gofunc_vaddr(&self) -> Option<u64> {
        self.gofunc.as_ref().map(|g| g.vaddr)
    }

    fn sub(&self, range: &Range<usize>) -> &[u8] {
        self.table.get(range.clone()).unwrap_or_default()
    }

    fn pclntable(&self) -> &[u8] {
        self.sub(&self.header.pclntable)
    }

    /// `entryoff` of functab slot `index` (`index == nfunc`: the end offset).
    fn entry_offset(&self, index: usize) -> Option<u32> {
        read_u32(self.pclntable(), index.checked_mul(8)?)
    }

    fn entry(&self, index: usize) -> Option<u64> {
        self.text_start
            .checked_add(u64::from(self.entry_offset(index)?))
    }

    fn record(&self, index: usize) -> Option<FuncRecord<'_>> {
        if index >= self.header.nfunc {
            return None;
        }
        let funcoff = read_u32(self.pclntable(), index.checked_mul(8)?.checked_add(4)?)?;
        let bytes = self.pclntable().get(usize::try_from(funcoff).ok()?..)?;
        if bytes.len() < FUNC_LEN {
            return None;
        }
        Some(FuncRecord {
            bytes,
            entry: self.entry(index)?,
        })
    }

    /// Index of the function whose `[entry, next entry)` contains `pc`.
    fn find(&self, pc: u64) -> Option<usize> {
        let offset = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        if offset >= self.entry_offset(self.header.nfunc)? {
            return None;
        }
        // Binary search: the last slot whose entry is <= offset.
        let (mut low, mut high) = (0, self.header.nfunc);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.entry_offset(middle)? <= offset {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low.checked_sub(1)
    }

    fn string_at(table: &[u8], offset: u32) -> Option<&str> {
        let bytes = table.get(usize::try_from(offset).ok()?..)?;
        let bytes = bytes.get(..bytes.len().min(MAX_STRING_LEN))?;
        let end = bytes.iter().position(|&b| b == 0)?;
        std::str::from_utf8(bytes.get(..end)?).ok()
    }

    fn func_name(&self, name_off: u32) -> Option<&str> {
        Self::string_at(self.sub(&self.header.funcnametab), name_off)
    }

    /// The function `index` of the functab.
    pub(crate) fn function(&self, index: usize) -> Option<PclnFunction> {
        let record = self.record(index)?;
        Some(PclnFunction {
            name: self.func_name(record.name_off()?)?.to_string(),
            entry: record.entry,
            size: self.code_size(index, &record)?,
        })
    }

    /// Size of the code of function `index`: where its pc tables end (as the
    /// compiler wrote them, `.symtab`'s size), else up to the next entry.
    fn code_size(&self, index: usize, record: &FuncRecord<'_>) -> Option<u64> {
        let extent = self
            .entry(index.checked_add(1)?)?
            .checked_sub(record.entry)?;
        Some(
            [record.pcsp(), record.pcln(), record.pcfile()]
                .into_iter()
                .flatten()
                .find_map(|table| self.table_end(table))
                .filter(|&size| size <= extent)
                .unwrap_or(extent),
        )
    }

    /// All functions, in address order (records that do not decode are skipped).
    pub(crate) fn functions(&self) -> impl Iterator<Item = PclnFunction> + '_ {
        (0..self.header.nfunc).filter_map(|index| self.function(index))
    }

    /// The function named `name` (a linear scan: for a few lookups), named
    /// as in `.symtab`.
    ///
    /// `.symtab` writes `·` as `.` (`type:.eq.runtime.untracedG·4`); both
    /// spellings are found.
    ///
    /// A function called from both Go and assembly has two bodies, one per
    /// ABI, which the pclntab names alike; `.symtab` calls the ABI0 one
    /// `X.abi0`. One of the two is a generated wrapper (file
    /// `<autogenerated>`): for assembly code the ABIInternal one, for Go code
    /// the ABI0 one. So `X.abi0` is the assembly body, else the wrapper, and
    /// `X` the other one.
    pub(crate) fn function_by_name(&self, name: &str) -> Option<PclnFunction> {
        let (wanted, abi0) = match name.strip_suffix(".abi0") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let named: Vec<usize> = (0..self.header.nfunc)
            .filter(|&index| {
                self.record(index)
                    .and_then(|record| self.func_name(record.name_off()?))
                    .is_some_and(|name| {
                        name == wanted || (name.contains('·') && name.replace('·', ".") == wanted)
                    })
            })
            .collect();
        let index = match named.as_slice() {
            [] => return None,
            [only] => *only,
            [first, ..] => {
                let is = |predicate: &dyn Fn(&FuncRecord<'_>) -> bool| {
                    named
                        .iter()
                        .copied()
                        .find(|&index| self.record(index).is_some_and(|r| predicate(&r)))
                };
                let abi0_body = is(&|r| r.flag().is_some_and(|f| f & FUNC_FLAG_ASM != 0))
                    .or_else(|| is(&|r| self.is_generated(r)))
                    .unwrap_or(*first);
                if abi0 {
                    abi0_body
                } else {
                    named
                        .iter()
                        .copied()
                        .find(|&index| index != abi0_body)
                        .unwrap_or(*first)
                }
            }
        };
        self.function(index)
    }

    /// Whether the function is compiler-generated (its first instruction
    /// is at `<autogenerated>:1`, like ABI and method wrappers).
    fn is_generated(&self, record: &FuncRecord<'_>) -> bool {
        self.file_line(record, record.entry)
            .is_some_and(|(file, _)| file == "<autogenerated>")
    }

    /// The record of the function whose code (`[entry,
    /// entry+size)`, so not the alignment padding after it) contains `pc`.
    fn containing(&self, pc: u64) -> Option<FuncRecord<'_>> {
        let index = self.find(pc)?;
        let record = self.record(index)?;
        let size = self.code_size(index, &record)?;
        (pc.checked_sub(record.entry)? < size).then_some(record)
    }

    /// The name of the (physical) function containing `pc`.
    pub(crate) fn function_name(&self, pc: u64) -> Option<&str> {
        let record = self.containing(pc)?;
        self.func_name(record.name_off()?)
    }

    /// Decodes pc-value table `offset` of a function: calls `visit(value,
    /// end_pc_offset)` for each run until it returns false. Returns `None` if
    /// the table is absent or truncated before its end marker.
    fn walk_table(&self, offset: u32, mut visit: impl FnMut(i32, u64) -> bool) -> Option<()> {
        if offset == 0 {
            return None;
        }
        let mut p = self
            .sub(&self.header.pctab)
            .get(usize::try_from(offset).ok()?..)?;
        let quantum = u64::from(self.header.quantum);
        let mut pc: u64 = 0;
        let mut value: i32 = -1;
        // Each step consumes at least two bytes, so this ends.
        loop {
            let (value_delta, n) = read_uvarint(p)?;
            if value_delta == 0 && pc != 0 {
                return Some(());
            }
            p = p.get(n..)?;
            value = value.wrapping_add(zigzag(value_delta));
            let (pc_delta, n) = read_uvarint(p)?;
            p = p.get(n..)?;
            pc = pc.checked_add(u64::from(pc_delta).checked_mul(quantum)?)?;
            if !visit(value, pc) {
                return Some(());
            }
        }
    }

    /// The value of table `offset` at `pc` of a function starting at `entry`
    /// (like the runtime's `pcvalue`); `None` if the table does not cover it.
    fn pc_value(&self, offset: u32, entry: u64, pc: u64) -> Option<i32> {
        let target = pc.checked_sub(entry)?;
        let mut found = None;
        self.walk_table(offset, |value, end| {
            if target < end {
                found = Some(value);
                false
            } else {
                true
            }
        })?;
        found
    }

    /// The last pc offset of table `offset`: the size of its function.
    fn table_end(&self, offset: u32) -> Option<u64> {
        let mut last = None;
        self.walk_table(offset, |_, end| {
            last = Some(end);
            true
        })?;
        last
    }

    /// File and line of `pc` in the function of `record` (the innermost
    /// inlined position, as the runtime's `funcline1`).
    fn file_line(&self, record: &FuncRecord<'_>, pc: u64) -> Option<(&str, u32)> {
        let fileno = self.pc_value(record.pcfile()?, record.entry, pc)?;
        let line = self.pc_value(record.pcln()?, record.entry, pc)?;
        let index = record
            .cu_offset()?
            .checked_add(u32::try_from(fileno).ok()?)?;
        let file_offset = read_u32(
            self.sub(&self.header.cutab),
            usize::try_from(index).ok()?.checked_mul(4)?,
        )
        .filter(|&off| off != u32::MAX)?;
        let file = Self::string_at(self.sub(&self.header.filetab), file_offset)?;
        Some((file, u32::try_from(line).ok()?))
    }

    fn inlined_call(&self, record: &FuncRecord<'_>, index: i32) -> Option<InlinedCall> {
        let base = record.funcdata(FUNCDATA_INL_TREE)?;
        let gofunc = &self.gofunc.as_ref()?.bytes;
        let at = usize::try_from(base)
            .ok()?
            .checked_add(usize::try_from(index).ok()?.checked_mul(INLINED_CALL_LEN)?)?;
        let call = gofunc.get(at..at.checked_add(INLINED_CALL_LEN)?)?;
        Some(InlinedCall {
            name_off: read_u32(call, 4)?,
            parent_pc: read_u32(call, 8)?,
        })
    }

    /// Source frames at `pc`, innermost (inlined) first, ending with the
    /// physical function — as `runtime.CallersFrames` and addr2line give
    /// them. Empty if `pc` is in no Go function.
    pub(crate) fn frames(&self, pc: u64) -> Vec<Frame> {
        let mut frames = Vec::new();
        let Some(record) = self.containing(pc) else {
            return frames;
        };
        let frame = |function: &str, at: u64| {
            let location = self.file_line(&record, at);
            Frame {
                function: function.to_string(),
                file: location.map(|(file, _)| file.to_string()),
                line: location.map(|(_, line)| line),
            }
        };
        let inline_index = |at: u64| {
            record
                .pcdata(PCDATA_INL_TREE_INDEX)
                .filter(|_| self.gofunc.is_some())
                .and_then(|table| self.pc_value(table, record.entry, at))
                .unwrap_or(-1)
        };
        let mut at = pc;
        let mut index = inline_index(at);
        while index >= 0 && frames.len() < MAX_INLINE_DEPTH {
            let Some(call) = self.inlined_call(&record, index) else {
                break;
            };
            let name = self.func_name(call.name_off).unwrap_or("?");
            frames.push(frame(name, at));
            let Some(parent) = record.entry.checked_add(u64::from(call.parent_pc)) else {
                break;
            };
            at = parent;
            index = inline_index(at);
        }
        let name = record
            .name_off()
            .and_then(|off| self.func_name(off))
            .unwrap_or("?");
        frames.push(frame(name, at));
        frames
    }

    /// Where `go:func.*` is in a Go 1.26+ table, found from the table alone:
    /// the linker puts it right after the last `_func` record (with its
    /// pcdata and funcdata arrays), aligned to its most aligned funcdata
    /// symbol. The smallest alignment at which the inline trees check out
    /// wins. `None` for older tables (the area is elsewhere) or when no
    /// candidate checks out.
    pub(crate) fn gofunc_after_functab(&self) -> Option<u64> {
        let mut end = 0usize;
        for index in 0..self.header.nfunc {
            let record = self.record(index)?;
            let funcoff = read_u32(self.pclntable(), index.checked_mul(8)?.checked_add(4)?)?;
            let arrays = usize::try_from(record.npcdata()?)
                .ok()?
                .checked_add(usize::from(record.nfuncdata()?))?
                .checked_mul(4)?;
            let record_end = usize::try_from(funcoff)
                .ok()?
                .checked_add(FUNC_LEN)?
                .checked_add(arrays)?;
            end = end.max(record_end);
        }
        let end = self.header.pclntable.start.checked_add(end)?;
        let mut has_inline_tree = false;
        for index in 0..self.header.nfunc {
            has_inline_tree |= self
                .record(index)
                .is_some_and(|r| r.funcdata(FUNCDATA_INL_TREE).is_some());
        }
        if !has_inline_tree {
            return None;
        }
        [1usize, 2, 4, 8, 16, 32, 64].into_iter().find_map(|align| {
            let at = end.checked_add(align - 1)? / align * align;
            let bytes = self.table.get(at..)?;
            self.inline_trees_look_valid(bytes)
                .then(|| self.vaddr.checked_add(at as u64))
                .flatten()
        })
    }

    /// Checks the first few inline trees against `gofunc`: names in
    /// `funcnametab`, zero padding, parent pcs inside the function. Used to
    /// reject a wrong `go:func.*` address.
    fn inline_trees_look_valid(&self, gofunc: &[u8]) -> bool {
        let mut checked = 0;
        for index in 0..self.header.nfunc {
            let Some(record) = self.record(index) else {
                return false;
            };
            let Some(base) = record.funcdata(FUNCDATA_INL_TREE) else {
                continue;
            };
            let Some(next) = self.entry(index + 1) else {
                return false;
            };
            let Ok(at) = usize::try_from(base) else {
                return false;
            };
            let Some(call) = at
                .checked_add(INLINED_CALL_LEN)
                .and_then(|end| gofunc.get(at..end))
            else {
                return false;
            };
            let padding_is_zero = call.get(1..4) == Some(&[0, 0, 0][..]);
            let name_ok = read_u32(call, 4).is_some_and(|off| self.func_name(off).is_some());
            let parent_ok = read_u32(call, 8).is_some_and(|parent| {
                record
                    .entry
                    .checked_add(u64::from(parent))
                    .is_some_and(|pc| pc < next)
            });
            if !(padding_is_zero && name_ok && parent_ok) {
                return false;
            }
            checked += 1;
            if checked == 16 {
                break;
            }
        }
        true
    }
}

/// E.g. `go1.20+ (0xfffffff1)` for a pclntab magic.
pub(crate) fn describe_magic(magic: u32) -> String {
    let release = match magic {
        GO120_MAGIC => "go1.20+",
        GO118_MAGIC => "go1.18-1.19",
        0xffff_fffa => "go1.16-1.17",
        0xffff_fffb => "go1.2-1.15",
        _ => "unknown",
    };
    format!("{release} ({magic:#x})")
}

// ---------------------------------------------------------------------------
// Locating the table, runtime.text and go:func.* in an ELF executable

/// `runtime.moduledata` offsets (amd64) of the fields used here. The first
/// fields (`pcHeader`, the table slices, `ftab`, `findfunctab`, `minpc`,
/// `maxpc`, `text`) have the same offsets in Go 1.20 to 1.27.
mod moduledata {
    /// `pcHeader *pcHeader`.
    pub(super) const PC_HEADER: u64 = 0;
    /// `funcnametab []byte`: its data pointer.
    pub(super) const FUNCNAMETAB: u64 = 8;
    /// `ftab []functab`: its data pointer and length (`nfunc + 1`).
    pub(super) const FTAB: u64 = 128;
    pub(super) const FTAB_LEN: u64 = 136;
    /// `text uintptr` (`runtime.text`).
    pub(super) const TEXT: u64 = 176;
    /// `gofunc uintptr` (`go:func.*`): after `types, etypes, rodata` up to Go
    /// 1.26; Go 1.27 added `typedesclen`, `itaboffset`, `itabsize` before it.
    pub(super) fn gofunc(go_minor: u32) -> u64 {
        if go_minor >= 27 {
            344
        } else {
            320
        }
    }
}

/// Pointer-sized reads of initialized data by virtual address, falling back
/// to the addend of an `R_X86_64_RELATIVE` dynamic relocation where a PIE
/// file holds 0.
struct DataReader<'a, 'data> {
    elf: &'a ElfImage<'data>,
    /// Relocated slot → addend (PIE only).
    relative: HashMap<u64, u64>,
}

impl<'a, 'data> DataReader<'a, 'data> {
    fn new(elf: &'a ElfImage<'data>) -> Self {
        let mut relative = HashMap::new();
        if elf.pie {
            if let Some(relocations) = elf.file.dynamic_relocations() {
                for (offset, relocation) in relocations {
                    let RelocationFlags::Elf { r_type } = relocation.flags() else {
                        continue;
                    };
                    if r_type == object::elf::R_X86_64_RELATIVE {
                        if let Ok(addend) = u64::try_from(relocation.addend()) {
                            relative.insert(offset, addend);
                        }
                    }
                }
            }
        }
        DataReader { elf, relative }
    }

    fn word(&self, vaddr: u64) -> Option<u64> {
        let value = read_u64(self.elf.bytes_at(vaddr, 8)?, 0)?;
        if value == 0 {
            if let Some(&addend) = self.relative.get(&vaddr) {
                return Some(addend);
            }
        }
        Some(value)
    }
}

/// Allocated sections stored in the file: (name, address, bytes).
fn file_sections<'data>(elf: &ElfImage<'data>) -> Vec<(String, u64, &'data [u8])> {
    elf.file
        .sections()
        .filter(|s| s.address() != 0 && s.kind() != SectionKind::UninitializedData)
        .filter(|s| match s.flags() {
            SectionFlags::Elf { sh_flags, .. } => (sh_flags & object::elf::SHF_ALLOC).0 != 0,
            _ => true,
        })
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.address(), s.data().ok()?)))
        .collect()
}

/// The section bytes from `vaddr` to the end of the section holding it.
fn bytes_from<'data>(sections: &[(String, u64, &'data [u8])], vaddr: u64) -> Option<&'data [u8]> {
    sections.iter().find_map(|(_, start, data)| {
        let from = usize::try_from(vaddr.checked_sub(*start)?).ok()?;
        (from < data.len()).then(|| data.get(from..)).flatten()
    })
}

/// Finds the pclntab: the `.gopclntab` section (or `.data.rel.ro.gopclntab`),
/// else the `runtime.pclntab` symbol, else a pcHeader that parses, searched at
/// 8-byte-aligned offsets of the read-only data (externally linked PIEs put it
/// in `.data.rel.ro`). Returns its address and bytes to the end of its section.
fn find_table<'data>(
    elf: &ElfImage<'data>,
    sections: &[(String, u64, &'data [u8])],
) -> Result<(u64, &'data [u8]), PclntabProblem> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some((_, address, data)) = sections.iter().find(|(n, _, _)| n == name) {
            return Ok((*address, data));
        }
    }
    if let Some(address) = symbol_address(elf, "runtime.pclntab") {
        if let Some(data) = bytes_from(sections, address) {
            return Ok((address, data));
        }
    }
    let mut first_problem = None;
    for (name, address, data) in sections {
        if name.starts_with(".debug") || name.starts_with(".zdebug") || name == ".text" {
            continue;
        }
        let mut at = 0;
        while let Some(found) = data
            .get(at..)
            .and_then(|rest| rest.windows(8).position(is_header_start))
        {
            let offset = at + found;
            at = offset + 1;
            if !(address + offset as u64).is_multiple_of(8) {
                continue;
            }
            let Some(table) = data.get(offset..) else {
                break;
            };
            match Header::parse(table) {
                Ok(_) => return Ok((address + offset as u64, table)),
                Err(problem) => {
                    first_problem.get_or_insert(problem);
                }
            }
        }
    }
    Err(first_problem.unwrap_or(PclntabProblem::NotFound))
}

/// The first 8 bytes of an amd64 Go 1.18+ pcHeader: magic, two zero pads,
/// pc quantum 1, pointer size 8.
fn is_header_start(bytes: &[u8]) -> bool {
    matches!(bytes, [0xf1 | 0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8])
}

fn symbol_address(elf: &ElfImage<'_>, name: &str) -> Option<u64> {
    elf.file
        .symbols()
        .find(|s| s.name_bytes().is_ok_and(|n| n == name.as_bytes()))
        .map(|s| s.address())
}

/// Finds `runtime.firstmoduledata`: the symbol, else the `.go.module` section
/// (Go 1.27), else the word that points at the pcHeader and is followed by
/// the other pclntab slices as the linker writes them.
fn find_moduledata(
    elf: &ElfImage<'_>,
    sections: &[(String, u64, &[u8])],
    reader: &DataReader<'_, '_>,
    table_vaddr: u64,
    header: &Header,
) -> Option<u64> {
    let valid = |candidate: u64| -> bool {
        let field = |offset: u64| candidate.checked_add(offset).and_then(|at| reader.word(at));
        let at_table = |range: &Range<usize>| table_vaddr.checked_add(range.start as u64);
        field(moduledata::PC_HEADER) == Some(table_vaddr)
            && field(moduledata::FUNCNAMETAB) == at_table(&header.funcnametab)
            && field(moduledata::FTAB) == at_table(&header.pclntable)
            && field(moduledata::FTAB_LEN) == Some(header.nfunc as u64 + 1)
    };
    let named = symbol_address(elf, "runtime.firstmoduledata")
        .into_iter()
        .chain(
            sections
                .iter()
                .filter(|(name, _, _)| name == ".go.module")
                .map(|(_, address, _)| *address),
        );
    for candidate in named {
        if valid(candidate) {
            return Some(candidate);
        }
    }
    let needle = table_vaddr.to_le_bytes();
    for (name, address, data) in sections {
        if name.starts_with(".debug") || name.starts_with(".zdebug") || name == ".text" {
            continue;
        }
        let start_pad = usize::try_from((8 - address % 8) % 8).unwrap_or(0);
        let Some(aligned) = data.get(start_pad..) else {
            continue;
        };
        for (i, chunk) in aligned.chunks_exact(8).enumerate() {
            if chunk == needle {
                let candidate = address + (start_pad + i * 8) as u64;
                if valid(candidate) {
                    return Some(candidate);
                }
            }
        }
    }
    // A PIE whose file holds 0 in pointer slots: the relocations say where.
    reader
        .relative
        .iter()
        .filter(|(_, &addend)| addend == table_vaddr)
        .map(|(&slot, _)| slot)
        .find(|&slot| valid(slot))
}

/// The Go minor version from `.go.buildinfo` (`go1.27.3` → 27), if readable.
fn go_minor(elf: &ElfImage<'_>) -> Option<u32> {
    let raw = super::buildinfo::version_string(elf.section_data(".go.buildinfo")?).ok()?;
    let rest = raw.strip_prefix("go1.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Loads the pclntab of an executable, with `runtime.text` and `go:func.*`
/// taken from `runtime.firstmoduledata` (found without symbols, see
/// [`find_moduledata`]) or from the `runtime.text` / `go:func.*` symbols.
pub(crate) fn load(elf: &ElfImage<'_>) -> Result<Pclntab, PclntabProblem> {
    let sections = file_sections(elf);
    let (vaddr, table) = find_table(elf, &sections)?;
    let header = Header::parse(table)?;
    let reader = DataReader::new(elf);
    let module = find_moduledata(elf, &sections, &reader, vaddr, &header);
    let is_text = |address: u64| {
        elf.file.sections().any(|s| {
            s.kind() == SectionKind::Text
                && address >= s.address()
                && address - s.address() < s.size()
        })
    };
    let text_start = module
        .and_then(|m| reader.word(m.checked_add(moduledata::TEXT)?))
        .filter(|&text| is_text(text))
        .or_else(|| symbol_address(elf, "runtime.text"))
        .or_else(|| (header.text_start != 0).then_some(header.text_start))
        .filter(|&text| is_text(text))
        .ok_or(PclntabProblem::NoTextStart)?;
    let mut pclntab = Pclntab::parse(table, vaddr, Some(text_start), None)?;
    let minor = go_minor(elf);
    // The version decides the moduledata layout; without one, try both.
    let layouts = match minor {
        Some(minor) => vec![moduledata::gofunc(minor)],
        None => vec![moduledata::gofunc(21), moduledata::gofunc(27)],
    };
    let gofunc_candidates = module
        .into_iter()
        .flat_map(|m| layouts.iter().map(move |&offset| m.checked_add(offset)))
        .flatten()
        .filter_map(|slot| reader.word(slot))
        .chain(symbol_address(elf, "go:func.*"))
        .chain(pclntab.gofunc_after_functab());
    for gofunc in gofunc_candidates {
        let Some(bytes) = bytes_from(&sections, gofunc) else {
            continue;
        };
        if pclntab.inline_trees_look_valid(bytes) {
            pclntab.gofunc = Some(GoFunc {
                vaddr: gofunc,
                bytes: bytes.into(),
            });
            break;
        }
    }
    Ok(pclntab)
}

// ---------------------------------------------------------------------------
// Byte helpers (all bounds-checked)

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let chunk = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(chunk.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(chunk.try_into().ok()?))
}

/// A uvarint of at most 5 bytes (32 bits); returns it and its length.
fn read_uvarint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().take(5).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Zig-zag decoding of a value delta.
fn zigzag(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: u64 = 0x40_1000;
    const VADDR: u64 = 0x50_0000;
    const GOFUNC: u64 = 0x60_0000;

    fn uvarint(out: &mut Vec<u8>, mut value: u32) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Encodes a pc-value table from (value, end pc offset) runs.
    fn pc_table(runs: &[(i32, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut value, mut pc) = (-1i32, 0u32);
        for &(v, end) in runs {
            let delta = v - value;
            uvarint(&mut out, ((delta << 1) ^ (delta >> 31)) as u32);
            uvarint(&mut out, end - pc);
            (value, pc) = (v, end);
        }
        out.push(0);
        out
    }

    fn push_u32(out: &mut Vec<u8>, values: &[u32]) {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A two-function table:
    /// - `main.outer` at `TEXT`, 0x1c bytes (then 4 bytes of padding):
    ///   `/src/a.go:10` for `[0, 0x10)`, `main.inner` inlined at
    ///   `/src/b.go:3` for `[0x10, 0x18)` (called from pc 0x08),
    ///   `/src/a.go:12` for `[0x18, 0x1c)`;
    /// - `main.other` at `TEXT + 0x20`, 0xc bytes, `/src/b.go:20`.
    ///
    /// Returns the table (header `textStart` = `text_start`) and the
    /// `go:func.*` bytes (the inline tree at offset 8).
    fn synthetic(text_start: u64, parent_pc: u32) -> (Vec<u8>, Vec<u8>) {
        let names = b"main.outer\0main.inner\0main.other\0";
        let files = b"/src/a.go\0/src/b.go\0";
        let mut pctab = vec![0u8]; // offset 0 means "no table"
        let mut add = |table: Vec<u8>| {
            let offset = pctab.len() as u32;
            pctab.extend(table);
            offset
        };
        let sp = add(pc_table(&[(0, 0x1c)]));
        let file = add(pc_table(&[(0, 0x10), (1, 0x18), (0, 0x1c)]));
        let line = add(pc_table(&[(10, 0x10), (3, 0x18), (12, 0x1c)]));
        let inl = add(pc_table(&[(-1, 0x10), (0, 0x18), (-1, 0x1c)]));
        let sp2 = add(pc_table(&[(8, 0x0c)]));
        let file2 = add(pc_table(&[(1, 0x0c)]));
        let line2 = add(pc_table(&[(20, 0x0c)]));

        let mut pclntable = Vec::new();
        push_u32(&mut pclntable, &[0, 24, 0x20, 96, 0x2c, 0]);
        // _func of main.outer: 3 pcdata, 4 funcdata (the inline tree at 8).
        push_u32(&mut pclntable, &[0, 0, 0, 0, sp, file, line, 3, 0, 9]);
        pclntable.extend_from_slice(&[0, 0, 0, 4]);
        push_u32(&mut pclntable, &[0, 0, inl, !0, !0, !0, 8]);
        assert_eq!(pclntable.len(), 96);
        push_u32(
            &mut pclntable,
            &[0x20, 22, 0, 0, sp2, file2, line2, 0, 0, 19],
        );
        pclntable.extend_from_slice(&[0, 0, 0, 0]);

        let funcnametab = HEADER_LEN;
        let cutab = funcnametab + names.len();
        let filetab = cutab + 8;
        let pctab_at = filetab + files.len();
        let pclntable_at = pctab_at + pctab.len();
        let mut table = Vec::new();
        push_u32(&mut table, &[GO120_MAGIC]);
        table.extend_from_slice(&[0, 0, 1, 8]);
        for word in [2, 2, text_start]
            .into_iter()
            .chain([funcnametab, cutab, filetab, pctab_at, pclntable_at].map(|o| o as u64))
        {
            table.extend_from_slice(&word.to_le_bytes());
        }
        table.extend_from_slice(names);
        push_u32(&mut table, &[0, 10]);
        table.extend_from_slice(files);
        table.extend_from_slice(&pctab);
        table.extend_from_slice(&pclntable);

        let mut gofunc = vec![0xee; 8];
        gofunc.extend_from_slice(&[0, 0, 0, 0]);
        push_u32(&mut gofunc, &[11, parent_pc, 2]);
        (table, gofunc)
    }

    fn parse_synthetic() -> Pclntab {
        let (table, gofunc) = synthetic(0, 0x08);
        Pclntab::parse(&table, VADDR, Some(TEXT), Some((GOFUNC, &gofunc))).unwrap()
    }

    fn frame(function: &str, file: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: Some(file.into()),
            line: Some(line),
        }
    }

    #[test]
    fn decodes_functions_lines_and_inlined_frames() {
        let table = parse_synthetic();
        assert_eq!(table.version(), "go1.20+ (0xfffffff1)");
        assert_eq!(table.len(), 2);
        assert!(table.has_inline_trees());
        assert_eq!(table.gofunc_vaddr(), Some(GOFUNC));
        let outer = PclnFunction {
            name: "main.outer".into(),
            entry: TEXT,
            size: 0x1c,
        };
        let other = PclnFunction {
            name: "main.other".into(),
            entry: TEXT + 0x20,
            size: 0x0c,
        };
        assert_eq!(
            table.functions().collect::<Vec<_>>(),
            [outer.clone(), other.clone()]
        );
        assert_eq!(table.function_by_name("main.other"), Some(other));
        assert_eq!(table.function_by_name("main.inner"), None); // only inlined
        assert_eq!(table.frames(TEXT), [frame("main.outer", "/src/a.go", 10)]);
        assert_eq!(
            table.frames(TEXT + 0x12),
            [
                frame("main.inner", "/src/b.go", 3),
                frame("main.outer", "/src/a.go", 10)
            ]
        );
        assert_eq!(
            table.frames(TEXT + 0x1b),
            [frame("main.outer", "/src/a.go", 12)]
        );
        assert_eq!(
            table.frames(TEXT + 0x25),
            [frame("main.other", "/src/b.go", 20)]
        );
        assert_eq!(table.function_name(TEXT + 0x17), Some("main.outer"));
        assert_eq!(table.function_name(TEXT + 0x2b), Some("main.other"));
        // Padding between functions, and pcs outside the text.
        for pc in [TEXT - 1, TEXT + 0x1c, TEXT + 0x1f, TEXT + 0x2c, 0, u64::MAX] {
            assert!(table.frames(pc).is_empty(), "{pc:#x}");
            assert_eq!(table.function_name(pc), None, "{pc:#x}");
        }
    }

    #[test]
    fn without_go_func_the_physical_function_gets_the_innermost_position() {
        let (bytes, _) = synthetic(0, 0x08);
        let table = Pclntab::parse(&bytes, VADDR, Some(TEXT), None).unwrap();
        assert!(!table.has_inline_trees());
        assert_eq!(
            table.frames(TEXT + 0x12),
            [frame("main.outer", "/src/b.go", 3)]
        );
    }

    #[test]
    fn text_start_from_the_header_or_refused() {
        let (bytes, _) = synthetic(TEXT, 0x08);
        let table = Pclntab::parse(&bytes, VADDR, None, None).unwrap();
        assert_eq!(table.text_start(), TEXT);
        assert_eq!(table.frames(TEXT)[0].function, "main.outer");
        let (bytes, _) = synthetic(0, 0x08);
        assert_eq!(
            Pclntab::parse(&bytes, VADDR, None, None).unwrap_err(),
            PclntabProblem::NoTextStart
        );
    }

    #[test]
    fn rejects_bad_headers() {
        let (table, _) = synthetic(0, 0x08);
        let parse = |bytes: &[u8]| Pclntab::parse(bytes, VADDR, Some(TEXT), None).map(|_| ());
        let patched = |at: usize, value: &[u8]| {
            let mut copy = table.clone();
            copy[at..at + value.len()].copy_from_slice(value);
            copy
        };
        assert_eq!(
            parse(&patched(0, &0xffff_fffbu32.to_le_bytes())),
            Err(PclntabProblem::UnsupportedMagic(0xffff_fffb))
        );
        assert!(parse(&patched(4, &[1])).is_err()); // padding
        assert!(parse(&patched(7, &[4])).is_err()); // 32-bit
        assert!(parse(&patched(8, &0u64.to_le_bytes())).is_err()); // no functions
        assert!(parse(&patched(8, &u64::MAX.to_le_bytes())).is_err());
        assert!(parse(&patched(32, &u64::MAX.to_le_bytes())).is_err()); // offsets
        assert!(parse(&patched(40, &0u64.to_le_bytes())).is_err()); // order
                                                                    // Unsorted functab: main.other's entry before main.outer's.
        let pclntable = read_u64(&table, 64).unwrap() as usize;
        assert_eq!(
            parse(&patched(pclntable, &0x30u32.to_le_bytes())),
            Err(PclntabProblem::Malformed("functab entries not sorted"))
        );
        assert_eq!(
            parse(&[]),
            Err(PclntabProblem::Malformed("truncated header"))
        );
    }

    /// Exercises every query; the point is that none panics.
    fn exercise(table: &Pclntab) {
        let _ = table.functions().count();
        let _ = table.function_by_name("main.other");
        for pc in (TEXT - 2..TEXT + 0x32).chain([0, u64::MAX]) {
            let frames = table.frames(pc);
            assert!(frames.len() <= MAX_INLINE_DEPTH + 1);
            let _ = table.function_name(pc);
        }
    }

    #[test]
    fn truncated_tables_never_panic() {
        let (bytes, gofunc) = synthetic(0, 0x08);
        for len in 0..bytes.len() {
            if let Ok(table) =
                Pclntab::parse(&bytes[..len], VADDR, Some(TEXT), Some((GOFUNC, &gofunc)))
            {
                exercise(&table);
            }
        }
        for len in 0..gofunc.len() {
            let table =
                Pclntab::parse(&bytes, VADDR, Some(TEXT), Some((GOFUNC, &gofunc[..len]))).unwrap();
            exercise(&table);
        }
    }

    #[test]
    fn corrupted_tables_never_panic() {
        let (bytes, gofunc) = synthetic(0, 0x08);
        for at in 0..bytes.len() {
            for value in [0x00, 0xff, 0x80, 0x7f, bytes[at] ^ 0x55] {
                let mut copy = bytes.clone();
                copy[at] = value;
                if let Ok(table) = Pclntab::parse(&copy, VADDR, Some(TEXT), Some((GOFUNC, &gofunc)))
                {
                    exercise(&table);
                }
            }
        }
        for at in 0..gofunc.len() {
            for value in [0x00, 0xff, 0x80] {
                let mut copy = gofunc.clone();
                copy[at] = value;
                let table =
                    Pclntab::parse(&bytes, VADDR, Some(TEXT), Some((GOFUNC, &copy))).unwrap();
                exercise(&table);
            }
        }
    }

    #[test]
    fn inline_tree_cycles_are_cut() {
        // The inlined call's parent pc is inside itself: a loop.
        let (bytes, gofunc) = synthetic(0, 0x12);
        let table = Pclntab::parse(&bytes, VADDR, Some(TEXT), Some((GOFUNC, &gofunc))).unwrap();
        let frames = table.frames(TEXT + 0x12);
        assert_eq!(frames.len(), MAX_INLINE_DEPTH + 1);
        assert_eq!(frames.last().unwrap().function, "main.outer");
        assert!(!table.inline_trees_look_valid(&gofunc[..8]));
    }

    #[test]
    fn go_func_validation() {
        let table = parse_synthetic();
        let (_, gofunc) = synthetic(0, 0x08);
        assert!(table.inline_trees_look_valid(&gofunc));
        // Shifted by 4 bytes: the padding is no longer zero.
        assert!(!table.inline_trees_look_valid(&gofunc[4..]));
        // Parent pc beyond the function.
        let (_, far) = synthetic(0, 0x40);
        assert!(!table.inline_trees_look_valid(&far));
    }

    #[test]
    fn varints_and_zigzag() {
        assert_eq!(read_uvarint(&[0x05]), Some((5, 1)));
        assert_eq!(read_uvarint(&[0xff, 0x01]), Some((255, 2)));
        assert_eq!(
            read_uvarint(&[0x80, 0x80, 0x80, 0x80, 0x0f]),
            Some((0xf000_0000, 5))
        );
        assert_eq!(read_uvarint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
        assert_eq!(read_uvarint(&[0x80]), None);
        assert_eq!(read_uvarint(&[]), None);
        assert_eq!([0, 1, 2, 3, u32::MAX].map(zigzag), [0, -1, 1, -2, i32::MIN]);
    }

    #[test]
    fn header_start_pattern_and_magic_names() {
        assert!(is_header_start(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8]));
        assert!(!is_header_start(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 4, 4]));
        assert_eq!(describe_magic(0xffff_fff0), "go1.18-1.19 (0xfffffff0)");
        assert_eq!(describe_magic(0x1234), "unknown (0x1234)");
    }
}

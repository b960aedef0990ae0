//! ELF access for the target executable: architecture, symbols (`.symtab`,
//! or for functions `.gopclntab` when the binary is stripped), sections, the
//! virtual-address → file-offset mapping uprobes need, and reads of
//! initialized data by virtual address.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use object::elf;
use object::read::{File, Object, ObjectSection, ObjectSegment, ObjectSymbol, SegmentFlags};
use object::{Architecture, ObjectKind, RelocationFlags, SectionKind};

use super::pclntab::{self, Pclntab, PclntabProblem};

/// A parsed executable. Borrows the file bytes.
pub(crate) struct ElfImage<'data> {
    pub(crate) file: File<'data>,
    /// `ET_DYN` executable (position independent): loaded at a random base.
    pub(crate) pie: bool,
    /// `.gopclntab`, parsed on first use (see [`ElfImage::pclntab`]).
    pclntab: OnceLock<Result<Arc<Pclntab>, PclntabProblem>>,
    /// `R_X86_64_RELATIVE` addends by slot address, indexed on first use
    /// (a PIE Go binary has tens of thousands of them).
    relative_relocations: OnceLock<HashMap<u64, u64>>,
}

/// What is wrong with a file before it can even be examined as a Go program.
#[derive(Debug)]
pub(crate) enum ElfProblem {
    NotElf,
    NotExecutable,
    Parse(object::Error),
}

/// An `.symtab` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SymbolInfo {
    pub(crate) address: u64,
    pub(crate) size: u64,
}

impl<'data> ElfImage<'data> {
    /// The Go build ID (`go tool buildid`), from the `.note.go.buildid`
    /// note: name "Go", type 4, the ID as its descriptor.
    pub(crate) fn go_build_id(&self) -> Option<String> {
        let data = self.file.section_by_name(".note.go.buildid")?.data().ok()?;
        let word = |at: usize| -> Option<usize> {
            Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize)
        };
        let (name_len, desc_len, kind) = (word(0)?, word(4)?, word(8)?);
        let desc_at = 12 + name_len.div_ceil(4) * 4;
        if kind != 4 || data.get(12..12 + name_len.min(2))? != b"Go" {
            return None;
        }
        let desc = data.get(desc_at..desc_at.checked_add(desc_len)?)?;
        String::from_utf8(desc.to_vec()).ok()
    }

    pub(crate) fn parse(data: &'data [u8]) -> Result<Self, ElfProblem> {
        if !data.starts_with(b"\x7fELF") {
            return Err(ElfProblem::NotElf);
        }
        let file = File::parse(data).map_err(ElfProblem::Parse)?;
        let pie = match file.kind() {
            ObjectKind::Executable => false,
            ObjectKind::Dynamic => true,
            _ => return Err(ElfProblem::NotExecutable),
        };
        Ok(ElfImage {
            file,
            pie,
            pclntab: OnceLock::new(),
            relative_relocations: OnceLock::new(),
        })
    }

    /// `Some(name)` of the architecture when it is not x86-64.
    pub(crate) fn unsupported_architecture(&self) -> Option<&'static str> {
        match self.file.architecture() {
            Architecture::X86_64 if self.file.is_64() => None,
            Architecture::X86_64 | Architecture::X86_64_X32 => Some("x86-64 (x32 ABI)"),
            Architecture::I386 => Some("386 (32-bit x86)"),
            Architecture::Aarch64 => Some("arm64"),
            Architecture::Arm => Some("arm (32-bit)"),
            Architecture::Riscv64 => Some("riscv64"),
            Architecture::PowerPc64 => Some("ppc64"),
            Architecture::S390x => Some("s390x"),
            Architecture::LoongArch64 => Some("loong64"),
            Architecture::Mips | Architecture::Mips64 => Some("mips"),
            _ => Some("an unknown architecture"),
        }
    }

    /// The contents of a section, if present and stored in the file.
    pub(crate) fn section_data(&self, name: &str) -> Option<&'data [u8]> {
        self.file.section_by_name(name)?.data().ok()
    }

    pub(crate) fn has_symtab(&self) -> bool {
        self.file.symbols().next().is_some()
    }

    /// Looks a symbol up by exact name in `.symtab`. Without a `.symtab`
    /// (stripped binary), Go functions are found in `.gopclntab` (same
    /// address and size); data symbols are then not found.
    pub(crate) fn symbol(&self, name: &str) -> Option<SymbolInfo> {
        if !self.has_symtab() {
            let function = self.pclntab().ok()?.function_by_name(name)?;
            return Some(SymbolInfo {
                address: function.entry,
                size: function.size,
            });
        }
        self.file
            .symbols()
            .find(|s| s.name_bytes().is_ok_and(|n| n == name.as_bytes()))
            .map(|s| SymbolInfo {
                address: s.address(),
                size: s.size(),
            })
    }

    /// The Go pc/line table (parsed once; see the `pclntab` module).
    pub(crate) fn pclntab(&self) -> Result<&Arc<Pclntab>, &PclntabProblem> {
        self.pclntab
            .get_or_init(|| pclntab::load(self).map(Arc::new))
            .as_ref()
    }

    /// All function symbols with a non-zero size, sorted by address; from
    /// `.gopclntab` when there is no `.symtab`.
    pub(crate) fn function_table(&self) -> FunctionTable {
        if !self.has_symtab() {
            return self
                .pclntab()
                .map(|table| FunctionTable::from_pclntab(table))
                .unwrap_or_default();
        }
        let mut entries: Vec<FunctionSymbol> = self
            .file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
            .filter_map(|s| {
                Some(FunctionSymbol {
                    start: s.address(),
                    end: s.address().checked_add(s.size())?,
                    name: s.name().ok()?.to_string(),
                })
            })
            .collect();
        entries.sort_by_key(|e| e.start);
        entries.dedup_by_key(|e| e.start);
        FunctionTable { entries }
    }

    /// Bytes of `[vaddr, vaddr+len)` from an allocated section stored in the file.
    pub(crate) fn bytes_at(&self, vaddr: u64, len: u64) -> Option<&'data [u8]> {
        let end = vaddr.checked_add(len)?;
        self.file.sections().find_map(|section| {
            let start = section.address();
            if section.kind() == SectionKind::UninitializedData
                || start == 0
                || vaddr < start
                || end > start.checked_add(section.size())?
            {
                return None;
            }
            let data = section.data().ok()?;
            let from = usize::try_from(vaddr - start).ok()?;
            let to = usize::try_from(end - start).ok()?;
            data.get(from..to)
        })
    }

    /// The file offset of the byte at `vaddr`: `vaddr - sh_addr + sh_offset` for
    /// the allocated section that contains it and is stored in the file.
    pub(crate) fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.file.sections().find_map(|section| {
            let start = section.address();
            let (offset, size) = section.file_range()?;
            if start == 0 || vaddr < start || vaddr - start >= size {
                return None;
            }
            offset.checked_add(vaddr - start)
        })
    }

    /// `p_vaddr - p_offset` of the executable `PT_LOAD` segment: adding a file
    /// offset inside that segment gives its link-time virtual address.
    pub(crate) fn text_segment_delta(&self) -> Option<u64> {
        self.file.segments().find_map(|segment| {
            let SegmentFlags::Elf { p_flags, p_type } = segment.flags() else {
                return None;
            };
            if p_type != elf::PT_LOAD || (p_flags & elf::PF_X).0 == 0 {
                return None;
            }
            let (offset, _) = segment.file_range();
            Some(segment.address().wrapping_sub(offset))
        })
    }

    /// For a position-independent executable linked by an external linker the
    /// file may hold zeros where pointers go; the `R_X86_64_RELATIVE` dynamic
    /// relocation of that slot carries the link-time address as its addend.
    pub(crate) fn relative_relocation_at(&self, vaddr: u64) -> Option<u64> {
        let index = self.relative_relocations.get_or_init(|| {
            let Some(relocations) = self.file.dynamic_relocations() else {
                return HashMap::new();
            };
            relocations
                .filter_map(|(offset, relocation)| {
                    let RelocationFlags::Elf { r_type } = relocation.flags() else {
                        return None;
                    };
                    let addend = u64::try_from(relocation.addend()).ok()?;
                    (r_type == elf::R_X86_64_RELATIVE).then_some((offset, addend))
                })
                .collect()
        });
        index.get(&vaddr).copied()
    }
}

/// Functions (of `.symtab`, or of `.gopclntab` in a stripped binary) sorted
/// by start address, for pc → name lookups.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionTable {
    entries: Vec<FunctionSymbol>,
}

#[derive(Debug, Clone)]
struct FunctionSymbol {
    start: u64,
    end: u64,
    name: String,
}

impl FunctionTable {
    /// The Go functions of a pclntab.
    pub(crate) fn from_pclntab(table: &Pclntab) -> Self {
        let entries = table
            .functions()
            .filter(|f| f.size > 0)
            .map(|f| FunctionSymbol {
                start: f.entry,
                end: f.entry + f.size,
                name: f.name,
            })
            .collect();
        FunctionTable { entries }
    }

    /// The function whose `[start, start+size)` contains `pc`.
    pub(crate) fn lookup(&self, pc: u64) -> Option<&str> {
        let index = self
            .entries
            .partition_point(|e| e.start <= pc)
            .checked_sub(1)?;
        let entry = self.entries.get(index)?;
        (pc < entry.end).then_some(entry.name.as_str())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_table_lookup() {
        let f = |start, end, name: &str| FunctionSymbol {
            start,
            end,
            name: name.to_string(),
        };
        let table = FunctionTable {
            entries: vec![
                f(0x1000, 0x1010, "a"),
                f(0x1020, 0x1040, "b"),
                f(0x1040, 0x1041, "c"),
            ],
        };
        assert_eq!(table.lookup(0xfff), None);
        assert_eq!(table.lookup(0x1000), Some("a"));
        assert_eq!(table.lookup(0x100f), Some("a"));
        assert_eq!(table.lookup(0x1010), None); // gap
        assert_eq!(table.lookup(0x103f), Some("b"));
        assert_eq!(table.lookup(0x1040), Some("c"));
        assert_eq!(table.lookup(0x1041), None);
        assert_eq!(FunctionTable::default().lookup(0x1000), None);
    }

    #[test]
    fn rejects_non_elf() {
        assert!(matches!(
            ElfImage::parse(b"#!/bin/sh\n"),
            Err(ElfProblem::NotElf)
        ));
        assert!(matches!(ElfImage::parse(b""), Err(ElfProblem::NotElf)));
        assert!(matches!(
            ElfImage::parse(b"\x7fELF\x02\x01"),
            Err(ElfProblem::Parse(_))
        ));
    }
}

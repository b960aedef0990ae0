//! `.gopclntab` on real binaries: for every toolchain and build mode
//! (internal linking, PIE, cgo, cgo PIE), a stripped build (`-ldflags=-s -w`)
//! symbolized through the pclntab alone must agree with the DWARF of the
//! unstripped build of the same source (addr2line), and its function table
//! with the unstripped `.symtab`. The non-PIE stripped builds are also run and
//! checked against the runtime's own `runtime.CallersFrames`.

use std::sync::Arc;

use object::{Object, ObjectSection, ObjectSymbol};

use super::super::dwarf::{self, Symbolizer};
use super::super::elf::{ElfImage, FunctionTable};
use super::super::pclntab::{self, Pclntab};
use super::*;

/// A cgo file added to [`PROGRAM`] for the cgo builds: C code in the text
/// (so `.text` starts before `runtime.text`) and external linking.
const CGO_FILE: &str = r#"package main

/*
int tracer_twice(int x) { return 2 * x; }
*/
import "C"

func init() {
	if C.tracer_twice(21) != 42 {
		panic("cgo")
	}
}
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Default,
    Pie,
    Cgo,
    CgoPie,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Default, Mode::Pie, Mode::Cgo, Mode::CgoPie];

    fn cgo(self) -> bool {
        matches!(self, Mode::Cgo | Mode::CgoPie)
    }

    fn pie(self) -> bool {
        matches!(self, Mode::Pie | Mode::CgoPie)
    }
}

/// Builds [`PROGRAM`] (plus [`CGO_FILE`] with cgo) in `mode`, stripped or
/// not. Both builds of a mode share their source directory, so that the
/// file names they record are the same. Cached and serialized like
/// [`build`].
fn build_mode(toolchain: &Toolchain, mode: Mode, stripped: bool) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let dir_name = format!("{}-pclntab-{mode:?}", toolchain.version);
    let name = if stripped { "prog-stripped" } else { "prog" };
    let key = format!("{dir_name}/{name}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(&key) {
        return path.clone();
    }
    let dir = workspace_target_dir()
        .join("go-test-builds")
        .join(&dir_name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.go"), PROGRAM).unwrap();
    std::fs::write(dir.join("go.mod"), "module tracertest\n\ngo 1.21\n").unwrap();
    if mode.cgo() {
        std::fs::write(dir.join("cgo.go"), CGO_FILE).unwrap();
    }
    let output = dir.join(name);
    let mut command = go_command(&toolchain.go);
    command
        .current_dir(&dir)
        .env("GOARCH", "amd64")
        .env("CGO_ENABLED", if mode.cgo() { "1" } else { "0" })
        .arg("build");
    if mode.pie() {
        command.arg("-buildmode=pie");
    }
    if stripped {
        command.arg("-ldflags=-s -w");
    }
    let result = command.arg("-o").arg(&output).arg(".").output().unwrap();
    assert!(
        result.status.success(),
        "go build ({key}) failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    built.as_mut().unwrap().insert(key, output.clone());
    output
}

/// Functions the tracer probes or reads, looked up by name.
const PROBED: [&str; 6] = [
    NEWPROC1,
    GOPARK,
    READY,
    GOEXIT1,
    "runtime.forEachGRace",
    "main.main",
];

#[test]
fn stripped_binaries_symbolize_like_dwarf_on_every_toolchain_and_build_mode() {
    let Some(toolchains) = toolchains_or_skip("pclntab") else {
        return;
    };
    let mut summary = Vec::new();
    for toolchain in &toolchains {
        for mode in Mode::ALL {
            summary.push(check_build(toolchain, mode));
        }
    }
    eprintln!("{}", summary.join("\n"));
}

/// All checks for one toolchain and mode; returns a summary line.
fn check_build(toolchain: &Toolchain, mode: Mode) -> String {
    let label = format!("{} {mode:?}", toolchain.version);
    let full_bytes = std::fs::read(build_mode(toolchain, mode, false)).unwrap();
    let stripped_bytes = std::fs::read(build_mode(toolchain, mode, true)).unwrap();
    let full = ElfImage::parse(&full_bytes).ok().unwrap();
    let stripped = ElfImage::parse(&stripped_bytes).ok().unwrap();
    assert!(full.has_symtab() && dwarf::present(&full), "{label}");
    assert!(
        !stripped.has_symtab() && !dwarf::present(&stripped),
        "{label}: -s -w left .symtab or DWARF"
    );
    assert_eq!(full.pie, mode.pie(), "{label}");

    let full_table = full.pclntab().unwrap();
    let table = stripped.pclntab().unwrap();
    assert_eq!(table.version(), "go1.20+ (0xfffffff1)", "{label}");

    // runtime.text and go:func.*, read from runtime.firstmoduledata, are the
    // symbols' values. (-s -w keeps the text where it was, but an external
    // linker may move the read-only data: go:func.* of the stripped build is
    // checked by the inlined frames below.)
    let symbol = |name: &str| symbol_address(&full_bytes, name);
    assert_eq!(full_table.text_start(), symbol("runtime.text"), "{label}");
    assert_eq!(table.text_start(), symbol("runtime.text"), "{label}");
    assert_eq!(
        full_table.gofunc_vaddr(),
        Some(symbol("go:func.*")),
        "{label}"
    );
    assert!(table.has_inline_trees(), "{label}");
    // Without runtime.firstmoduledata: since Go 1.26 go:func.* follows the
    // _func records inside the pclntab.
    let minor = GoVersion::parse(&toolchain.version).unwrap().minor;
    assert_eq!(
        full_table.gofunc_after_functab(),
        (minor >= 26).then(|| symbol("go:func.*")),
        "{label}"
    );

    // -s -w only drops sections: the same functions at the same addresses.
    let functions: Vec<_> = table.functions().collect();
    assert_eq!(functions.len(), table.len(), "{label}: undecodable records");
    assert_eq!(
        functions,
        full_table.functions().collect::<Vec<_>>(),
        "{label}"
    );

    // Every pclntab function is in .symtab with the same address and size,
    // and the same name (.symtab writes "·" as "." and adds ".abi0" to the
    // ABI0 body of a function that has two, see Pclntab::function_by_name).
    let symtab: HashMap<u64, (String, u64)> = full
        .file
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text)
        .filter_map(|s| Some((s.address(), (s.name().ok()?.to_string(), s.size()))))
        .collect();
    let mut lookups: Vec<String> = PROBED.iter().map(|n| n.to_string()).collect();
    for (i, function) in functions.iter().enumerate() {
        let (name, size) = symtab
            .get(&function.entry)
            .unwrap_or_else(|| panic!("{label}: {function:?} not in .symtab"));
        // The linker's markers around the FIPS module code (Go 1.24+) are
        // 1-byte symbols without pc tables: their pclntab extent runs to the
        // next function.
        if !function.name.starts_with("go:textfips") {
            assert_eq!(*size, function.size, "{label}: {function:?} vs {name}");
        }
        let dotted = function.name.replace('·', ".");
        if *name != dotted {
            assert_eq!(*name, format!("{dotted}.abi0"), "{label}");
        }
        if name.ends_with(".abi0") || *name != function.name || i % 50 == 0 {
            lookups.push(name.clone());
        }
    }
    // Lookups by .symtab name (what plan_probes uses) fall back to the pclntab.
    for name in &lookups {
        let expected = full.symbol(name).unwrap();
        assert_eq!(stripped.symbol(name), Some(expected), "{label}: {name}");
    }
    assert_eq!(stripped.symbol("runtime.no_such_function"), None);

    // pc → frames: the stripped binary's pclntab vs the unstripped DWARF.
    let oracle =
        Symbolizer::new(Some(dwarf::load(&full).unwrap()), FunctionTable::default()).unwrap();
    let symbolizer = Symbolizer::new(None, stripped.function_table())
        .unwrap()
        .with_pclntab(Arc::clone(table));
    let (mut compared, mut inlined, mut autogenerated) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for function in functions
        .iter()
        .filter(|f| !f.name.starts_with("go:textfips"))
    {
        for pc in sample_pcs(function.entry, function.size) {
            let expected = oracle.frames(pc);
            let ours = symbolizer.frames(pc);
            if ours != expected && !autogenerated_without_dwarf_lines(&ours, &expected) {
                mismatches.push(format!(
                    "{pc:#x} in {}: pclntab {ours:?} dwarf {expected:?}",
                    function.name
                ));
            }
            assert_eq!(
                symbolizer.function_name(pc).as_deref(),
                Some(function.name.as_str()),
                "{label}: {pc:#x}"
            );
            compared += 1;
            inlined += usize::from(ours.len() > 1);
            autogenerated += usize::from(ours != expected);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{label}: {} of {compared} pcs differ, e.g.\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(20)].join("\n")
    );
    assert!(
        inlined > 100,
        "{label}: only {inlined} pcs with inlined frames"
    );
    // Alignment padding after a function belongs to no function, like in .symtab.
    let gap = functions
        .windows(2)
        .find(|w| w[0].entry + w[0].size < w[1].entry)
        .map(|w| w[0].entry + w[0].size)
        .unwrap();
    assert_eq!(symbolizer.function_name(gap), None, "{label}");
    assert!(symbolizer.frames(gap).is_empty(), "{label}");

    // Creation sites of the program's go statements.
    let main_main = full.symbol("main.main").unwrap();
    let go_lines: Vec<u32> = PROGRAM
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("go "))
        .map(|(i, _)| i as u32 + 1)
        .collect();
    let mut sites = Vec::new();
    for pc in main_main.address..main_main.address + main_main.size {
        if let Some(site) = symbolizer.creation_site(pc + 1) {
            if site.function == "main.main" && go_lines.contains(&site.line.unwrap_or(0)) {
                assert_eq!(Some(site.clone()), oracle.creation_site(pc + 1), "{label}");
                sites.push(site.line);
            }
        }
    }
    assert!(!sites.is_empty(), "{label}: no go statement found");

    if !mode.pie() {
        check_against_callers_frames(&label, &build_mode(toolchain, mode, true), table);
    }
    format!(
        "{label}: {} functions, {compared} pcs equal to DWARF ({inlined} with inlined frames, \
         {autogenerated} at <autogenerated>:1 without DWARF lines), text {:#x}, go:func.* {:#x}",
        functions.len(),
        table.text_start(),
        table.gofunc_vaddr().unwrap_or(0)
    )
}

/// Go writes no DWARF line rows for some compiler-generated code (type
/// equality functions, method and ABI wrappers, package init): addr2line then
/// has the function but no location, where the pclntab says
/// `<autogenerated>:1`, as runtime tracebacks do.
fn autogenerated_without_dwarf_lines(ours: &[Frame], dwarf: &[Frame]) -> bool {
    ours.len() == dwarf.len()
        && ours.iter().zip(dwarf).all(|(ours, dwarf)| {
            ours == dwarf
                || (ours.function == dwarf.function
                    && (dwarf.file.is_none() && dwarf.line.is_none())
                    && ours.file.as_deref() == Some("<autogenerated>")
                    && ours.line == Some(1))
        })
}

/// The entry, the last byte, and every 13th byte of a function.
fn sample_pcs(entry: u64, size: u64) -> impl Iterator<Item = u64> {
    (0..size)
        .step_by(13)
        .chain(size.checked_sub(1))
        .map(move |offset| entry + offset)
}

/// Runs the stripped program: the pclntab frames at the return address from
/// `capture` equal what `runtime.CallersFrames` printed.
fn check_against_callers_frames(label: &str, program: &Path, table: &Pclntab) {
    let running = Running::start(program);
    let (pc, expected) = callers_frames(&running.stdout);
    assert!(expected.len() >= 3, "{label}: no inlining: {expected:?}");
    assert_eq!(table.frames(pc - 1), expected, "{label}");
}

#[test]
fn stripped_targets_probe_and_symbolize_like_unstripped_ones() {
    let Some(toolchains) = toolchains_or_skip("stripped target") else {
        return;
    };
    for toolchain in &toolchains {
        for mode in [Mode::Default, Mode::CgoPie] {
            let label = format!("{} {mode:?}", toolchain.version);
            let full = Target::from_path(&build_mode(toolchain, mode, false)).unwrap();
            assert!(!full.stripped, "{label}");
            assert_eq!(full.pclntab_version, "go1.20+ (0xfffffff1)", "{label}");
            let path = build_mode(toolchain, mode, true);
            let stripped = Target::from_path(&path).unwrap();
            assert!(stripped.stripped, "{label}");
            assert_eq!(stripped.pclntab_version, full.pclntab_version, "{label}");
            // Same probe addresses, found through the pclntab, on the same code.
            let plan = |t: &Target| {
                let p = &t.probes;
                p.spawn
                    .iter()
                    .chain([&p.park, &p.ready, &p.exit])
                    .map(|point| (point.function.clone(), point.vaddr, point.placement))
                    .collect::<Vec<_>>()
            };
            assert_eq!(plan(&stripped), plan(&full), "{label}");
            let file = std::fs::read(&path).unwrap();
            let park = &stripped.probes.park;
            assert_eq!(file[park.file_offset as usize], 0x55, "{label}: {park}");
            // The symbolizer (pclntab, no DWARF) places the go statements
            // where the DWARF of the unstripped build does.
            assert_eq!(
                stripped.symbolizer.function_name(park.vaddr).as_deref(),
                Some(GOPARK),
                "{label}"
            );
            let elf_bytes = std::fs::read(build_mode(toolchain, mode, false)).unwrap();
            let elf = ElfImage::parse(&elf_bytes).ok().unwrap();
            let main = elf.symbol("main.main").unwrap();
            let mut sites = 0;
            for gopc in main.address + 1..=main.address + main.size {
                let site = stripped.symbolizer.creation_site(gopc);
                assert_eq!(
                    site,
                    full.symbolizer.creation_site(gopc),
                    "{label}: {gopc:#x}"
                );
                sites += usize::from(site.is_some());
            }
            assert!(sites > 0, "{label}");
        }
    }
}

#[test]
fn pclntab_is_found_without_its_section_name() {
    // Externally linked PIEs of Go < 1.26 have no .gopclntab section: the
    // table is inside .data.rel.ro and found by its header. Check the scan
    // on every toolchain by hiding the section name.
    let Some(toolchains) = toolchains_or_skip("pclntab scan") else {
        return;
    };
    for toolchain in &toolchains {
        for mode in [Mode::Default, Mode::CgoPie] {
            let path = build_mode(toolchain, mode, true);
            let bytes = std::fs::read(&path).unwrap();
            let elf = ElfImage::parse(&bytes).ok().unwrap();
            let expected = elf.pclntab().unwrap();
            let hidden = rename_section(&bytes, ".gopclntab", ".xxpclntab");
            let elf = ElfImage::parse(&hidden).ok().unwrap();
            let found = pclntab::load(&elf).unwrap();
            assert_eq!(found.text_start(), expected.text_start());
            assert_eq!(found.gofunc_vaddr(), expected.gofunc_vaddr());
            assert_eq!(
                found.functions().collect::<Vec<_>>(),
                expected.functions().collect::<Vec<_>>(),
                "{} {mode:?}",
                toolchain.version
            );
        }
    }
}

#[test]
fn moduledata_pointers_are_read_through_pie_relocations() {
    // A PIE may hold 0 in its pointer slots, the dynamic linker writing the
    // R_X86_64_RELATIVE addend there. Go's linkers write both; zero the
    // moduledata pointers the reader uses and check that nothing changes.
    let Some(toolchains) = toolchains_or_skip("pclntab relocations") else {
        return;
    };
    for toolchain in &toolchains {
        for mode in [Mode::Pie, Mode::CgoPie] {
            let label = format!("{} {mode:?}", toolchain.version);
            let bytes = std::fs::read(build_mode(toolchain, mode, true)).unwrap();
            let elf = ElfImage::parse(&bytes).ok().unwrap();
            let expected = elf.pclntab().unwrap();
            let table_vaddr = elf.file.section_by_name(".gopclntab").map(|s| s.address());
            let relocated: HashMap<u64, u64> = elf
                .file
                .dynamic_relocations()
                .unwrap()
                .filter(|(_, r)| {
                    r.flags()
                        == object::RelocationFlags::Elf {
                            r_type: object::elf::R_X86_64_RELATIVE,
                        }
                })
                .map(|(slot, r)| (slot, r.addend() as u64))
                .collect();
            let mut zeroed = bytes.clone();
            let mut count = 0;
            // Every 8-byte-aligned slot relocated to the pclntab (moduledata
            // pcHeader; .gopclntab is absent in external PIEs before Go 1.26:
            // then take the relocation addend that points at a pcHeader).
            for section in elf.file.sections() {
                let (Some((offset, size)), true) = (section.file_range(), section.address() != 0)
                else {
                    continue;
                };
                for at in (0..size).step_by(8) {
                    let slot = section.address() + at;
                    let Some(&target) = relocated.get(&slot) else {
                        continue;
                    };
                    let is_header = table_vaddr.map_or_else(
                        || {
                            elf.bytes_at(target, 8)
                                == Some(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8][..])
                        },
                        |vaddr| vaddr == target,
                    );
                    if !is_header {
                        continue;
                    }
                    // pcHeader, funcnametab, ftab, text and gofunc of this moduledata.
                    for field in [0u64, 8, 128, 176, 320, 344] {
                        if relocated.contains_key(&(slot + field)) {
                            let file_at = (offset + at + field) as usize;
                            zeroed[file_at..file_at + 8].fill(0);
                            count += 1;
                        }
                    }
                }
            }
            assert!(count >= 4, "{label}: {count} slots zeroed");
            let elf = ElfImage::parse(&zeroed).ok().unwrap();
            let found = pclntab::load(&elf).unwrap();
            assert_eq!(found.text_start(), expected.text_start(), "{label}");
            assert_eq!(found.gofunc_vaddr(), expected.gofunc_vaddr(), "{label}");
        }
    }
}

/// A copy of an ELF file with one section name in `.shstrtab` changed (same
/// length); the file is unchanged if there is no such name.
fn rename_section(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let elf = ElfImage::parse(bytes).ok().unwrap();
    let (offset, size) = elf
        .file
        .section_by_name(".shstrtab")
        .unwrap()
        .file_range()
        .unwrap();
    let (offset, size) = (offset as usize, size as usize);
    let mut copy = bytes.to_vec();
    let needle = format!("\0{from}\0");
    if let Some(at) = copy[offset..offset + size]
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    {
        let at = offset + at + 1;
        copy[at..at + to.len()].copy_from_slice(to.as_bytes());
    }
    copy
}

//! What the probes and the memory reader need when a binary has no DWARF or
//! no `.symtab`: the generated offsets table (vs DWARF and each version's
//! `runtime2.go`) and where `runtime.allglen`/`runtime.allgptr` and
//! `runtime.sched` are (vs `.symtab`, and in the running program vs its own
//! goroutine dump), for every toolchain and for plain, PIE,
//! `-ldflags="-s -w"` and `strip`(1) builds.

use object::{Object, ObjectSection};

use super::super::offsets_table;
use super::super::runtime_vars;
use super::*;

// ---------------------------------------------------------------------------
// The offsets table

#[test]
fn offsets_table_matches_dwarf_and_wait_reason_strings_on_every_toolchain() {
    // Every supported minor version has an entry, read from that version.
    for minor in buildinfo::MIN_SUPPORTED_MINOR..=buildinfo::MAX_SUPPORTED_MINOR {
        let entry = offsets_table::entry(minor).unwrap_or_else(|| {
            panic!("no table entry for Go 1.{minor}: run cargo xtask gen-offsets")
        });
        let version = GoVersion::parse(entry.generated_from).unwrap();
        assert_eq!((version.major, version.minor), (1, minor));
    }
    assert_eq!(
        offsets_table::TABLE.len() as u32,
        buildinfo::MAX_SUPPORTED_MINOR - buildinfo::MIN_SUPPORTED_MINOR + 1
    );
    let Some(toolchains) = toolchains_or_skip("offsets table") else {
        return;
    };
    for toolchain in toolchains {
        let target = Target::from_path(&build_program(&toolchain, false)).unwrap();
        assert_eq!(target.offsets_source, OffsetsSource::Dwarf);
        assert_eq!(target.wait_reasons_source, WaitReasonsSource::Binary);
        let entry = offsets_table::entry(target.go_version.minor).unwrap();
        assert_eq!(entry.offsets, target.offsets, "{}", toolchain.version);
        let table: Vec<&str> = entry.wait_reasons.to_vec();
        let binary: Vec<&str> = target.wait_reasons.iter().map(|(_, n)| n).collect();
        assert_eq!(table, binary, "{}", toolchain.version);
        // And the toolchain's own source agrees (independent of our readers).
        assert_eq!(
            table,
            wait_reasons_from_source(&toolchain),
            "{}",
            toolchain.version
        );
        eprintln!(
            "{}: table entry ({}) = DWARF + waitReasonStrings",
            toolchain.version, entry.generated_from
        );
    }
}

#[test]
fn binaries_without_dwarf_or_symtab_use_the_table() {
    let Some(toolchains) = toolchains_or_skip("no DWARF") else {
        return;
    };
    for toolchain in toolchains {
        let label = &toolchain.version;
        let full = Target::from_path(&build_program(&toolchain, false)).unwrap();
        // -w: no DWARF, .symtab kept.
        let no_dwarf = Target::from_path(&build(
            &toolchain,
            "prog-w",
            PROGRAM,
            &["-ldflags=-w"],
            "amd64",
        ))
        .unwrap();
        assert_eq!(no_dwarf.offsets_source, OffsetsSource::Table, "{label}");
        assert_eq!(no_dwarf.offsets, full.offsets, "{label}");
        assert_eq!(no_dwarf.wait_reasons_source, WaitReasonsSource::Binary);
        assert_eq!(no_dwarf.wait_reasons, full.wait_reasons, "{label}");
        // -s -w: neither.
        for (stripped, full) in [
            (stripped_build(&toolchain, false), full),
            (
                stripped_build(&toolchain, true),
                Target::from_path(&build_program(&toolchain, true)).unwrap(),
            ),
        ] {
            let stripped = Target::from_path(&stripped).unwrap();
            assert_eq!(stripped.offsets_source, OffsetsSource::Table, "{label}");
            assert_eq!(stripped.offsets, full.offsets, "{label}");
            assert_eq!(stripped.wait_reasons_source, WaitReasonsSource::Table);
            assert_eq!(stripped.wait_reasons, full.wait_reasons, "{label}");
        }
    }
}

#[test]
fn a_version_without_table_entry_needs_dwarf() {
    let Some(toolchain) = newest_or_skip("no table entry") else {
        return;
    };
    let minor = GoVersion::parse(&toolchain.version).unwrap().minor;
    assert!(offsets_table::entry(minor).is_some());
    assert!(offsets_table::entry(minor + 50).is_none());
    let err = TargetError::NoOffsetsForVersion {
        what: "prog".into(),
        minor: 99,
    };
    assert_eq!(
        err.to_string(),
        "prog has no DWARF debug info and tracer has no built-in runtime offsets for Go 1.99: \
         rebuild the program without -ldflags=-w, or add the toolchain and run `cargo xtask gen-offsets`"
    );
}

// ---------------------------------------------------------------------------
// runtime.allglen / runtime.allgptr / runtime.sched

/// `-ldflags="-s -w"` build of [`PROGRAM`].
fn stripped_build(toolchain: &Toolchain, pie: bool) -> PathBuf {
    let flags: &[&str] = if pie {
        &["-buildmode=pie", "-ldflags=-s -w"]
    } else {
        &["-ldflags=-s -w"]
    };
    let name = if pie { "prog-sw-pie" } else { "prog-sw" };
    build(toolchain, name, PROGRAM, flags, "amd64")
}

/// `strip`(1) of the plain (or PIE) build: no `.symtab`, no DWARF, and —
/// unlike `-ldflags=-s -w`, which changes `.go.buildinfo` — the same layout.
fn strip_build(toolchain: &Toolchain, pie: bool) -> PathBuf {
    let input = build_program(toolchain, pie);
    let output = input.with_file_name(if pie {
        "prog-pie-strip1"
    } else {
        "prog-strip1"
    });
    let status = Command::new("strip")
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .status()
        .expect("run strip (binutils)");
    assert!(status.success(), "strip {}", input.display());
    output
}

/// How a test binary was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    Plain,
    Pie,
    /// `-ldflags="-s -w"`
    Stripped,
    /// `-buildmode=pie -ldflags="-s -w"`
    StrippedPie,
    /// `strip`(1) of the plain build
    Strip1,
}

impl Build {
    const ALL: [Build; 5] = [
        Build::Plain,
        Build::Pie,
        Build::Stripped,
        Build::StrippedPie,
        Build::Strip1,
    ];

    fn pie(self) -> bool {
        matches!(self, Build::Pie | Build::StrippedPie)
    }

    fn path(self, toolchain: &Toolchain) -> PathBuf {
        match self {
            Build::Plain => build_program(toolchain, false),
            Build::Pie => build_program(toolchain, true),
            Build::Stripped => stripped_build(toolchain, false),
            Build::StrippedPie => stripped_build(toolchain, true),
            Build::Strip1 => strip_build(toolchain, false),
        }
    }

    /// The unstripped build with the same code.
    fn unstripped(self) -> Build {
        if self.pie() {
            Build::Pie
        } else {
            Build::Plain
        }
    }
}

/// `(section name, offset in it)` of a link-time address.
fn section_relative(file: &[u8], vaddr: u64) -> (String, u64) {
    let elf = ElfImage::parse(file).ok().unwrap();
    let section = elf
        .file
        .sections()
        .find(|s| s.address() != 0 && (s.address()..s.address() + s.size()).contains(&vaddr))
        .unwrap_or_else(|| panic!("{vaddr:#x} is in no section"));
    (
        section.name().unwrap().to_string(),
        vaddr - section.address(),
    )
}

#[test]
fn allg_and_sched_addresses_match_symtab_on_every_toolchain_and_build() {
    let Some(toolchains) = toolchains_or_skip("allg and sched addresses") else {
        return;
    };
    for toolchain in &toolchains {
        for build in Build::ALL {
            let label = format!("{} {build:?}", toolchain.version);
            let path = build.path(toolchain);
            let target = Target::from_path(&path).unwrap();
            let vars = target.runtime_vars;
            let file = std::fs::read(&path).unwrap();
            let elf = ElfImage::parse(&file).ok().unwrap();
            let reference_path = build.unstripped().path(toolchain);
            let reference_file = std::fs::read(&reference_path).unwrap();
            let reference_elf = ElfImage::parse(&reference_file).ok().unwrap();
            let reference = runtime_vars::allgs_from_symtab(&reference_elf).unwrap();
            let reference_sched = runtime_vars::sched_from_symtab(&reference_elf).unwrap();
            let allgs = runtime_vars::AllGs {
                allglen: vars.allglen,
                allgptr: vars.allgptr,
            };
            match build {
                Build::Plain | Build::Pie => {
                    assert!(elf.has_symtab(), "{label}");
                    assert_eq!(allgs, reference, "{label}");
                    assert_eq!(vars.sched, Some(reference_sched), "{label}");
                    assert_eq!(vars.sched_source, SchedSource::Symtab, "{label}");
                    // The disassembly paths (used when stripped) agree with .symtab.
                    assert_eq!(allgs_from_code(&elf, &label).unwrap(), reference, "{label}");
                    assert_eq!(
                        sched_from_code(&elf, &label, &target.offsets).unwrap(),
                        reference_sched,
                        "{label}"
                    );
                }
                Build::Strip1 => {
                    assert!(!elf.has_symtab(), "{label}");
                    assert_eq!(allgs, reference, "{label}");
                    assert_eq!(vars.sched, Some(reference_sched), "{label}");
                    assert_eq!(vars.sched_source, SchedSource::Disassembly, "{label}");
                }
                Build::Stripped | Build::StrippedPie => {
                    // `-ldflags="-s -w"` is recorded in .go.buildinfo, which
                    // precedes the data segment: from Go 1.24 on it moves
                    // .bss/.noptrbss by 0x20. Same section, same offset in it.
                    assert!(!elf.has_symtab(), "{label}");
                    assert_eq!(vars.sched_source, SchedSource::Disassembly, "{label}");
                    let sched = vars.sched.unwrap();
                    for (ours, theirs) in [
                        (vars.allglen, reference.allglen),
                        (vars.allgptr, reference.allgptr),
                        (sched, reference_sched),
                    ] {
                        assert_eq!(
                            section_relative(&file, ours),
                            section_relative(&reference_file, theirs),
                            "{label}"
                        );
                    }
                }
            }
            eprintln!(
                "{label}: allglen {:#x} allgptr {:#x} sched {} ({})",
                vars.allglen,
                vars.allgptr,
                vars.sched.map_or("-".into(), |s| format!("{s:#x}")),
                vars.sched_source
            );
        }
    }
}

/// Reads the goroutine list the way a lock-free reader of the runtime does
/// and checks it against the program's own goroutine dump.
fn check_live_allgs(toolchain: &Toolchain, build: Build) {
    let label = format!("{} {build:?}", toolchain.version);
    let running = Running::start(&build.path(toolchain));
    let pid = running.pid();
    let target = Target::from_pid(pid).unwrap();
    if build.pie() {
        assert_ne!(target.load_bias, 0, "{label}");
    }
    let memory = ProcessMemory::open(pid).unwrap();
    let o = &target.offsets;
    let vars = target.runtime_vars;
    let allglen = read_u64(&memory, vars.allglen + target.load_bias);
    let allgptr = read_u64(&memory, vars.allgptr + target.load_bias);
    let dump = parse_dump(&running.stdout);
    // allgs also holds runtime goroutines (GC workers, …) that the dump omits.
    assert!(
        (dump.len() as u64..10_000).contains(&allglen),
        "{label}: allglen {allglen}, {} goroutines dumped",
        dump.len()
    );
    assert_ne!(allgptr, 0, "{label}");
    let gs: Vec<u64> = (0..allglen)
        .map(|i| read_u64(&memory, allgptr + 8 * i))
        .collect();
    assert!(gs.iter().all(|&g| g != 0), "{label}: {gs:x?}");
    let goids: Vec<u64> = gs
        .iter()
        .map(|&g| read_u64(&memory, g + o.g_goid))
        .collect();
    assert_eq!(goids[0], 1, "{label}: first g is not the main goroutine");
    for dumped in &dump {
        assert!(
            goids.contains(&dumped.goid),
            "{label}: g {} missing",
            dumped.goid
        );
    }
    // The parked workers: their saved sp lies in [stack.lo, stack.hi).
    for dumped in dump
        .iter()
        .filter(|d| d.created_by.as_ref().is_some_and(|c| c.0 == "main.main"))
    {
        let g = gs[goids.iter().position(|&id| id == dumped.goid).unwrap()];
        let (lo, hi) = (
            read_u64(&memory, g + o.g_stack_lo),
            read_u64(&memory, g + o.g_stack_hi),
        );
        let sp = read_u64(&memory, g + o.g_sched + o.gobuf_sp);
        assert!(
            lo < sp && sp < hi,
            "{label}: sp {sp:#x} not in [{lo:#x}, {hi:#x})"
        );
        assert!((hi - lo).is_power_of_two() && hi - lo >= 2048, "{label}");
    }
    // With .symtab, the same as the runtime.allgs slice.
    let file = std::fs::read(build.path(toolchain)).unwrap();
    if let Some(allgs) = ElfImage::parse(&file).ok().unwrap().symbol("runtime.allgs") {
        let slice = allgs.address + target.load_bias;
        assert_eq!(read_u64(&memory, slice), allgptr, "{label}");
        assert_eq!(read_u64(&memory, slice + 8), allglen, "{label}");
    }
    eprintln!(
        "{label}: {allglen} gs ({} dumped), offsets from {}, wait reasons from {}",
        dump.len(),
        target.offsets_source,
        target.wait_reasons_source
    );
}

#[test]
fn live_allgs_are_read_through_allglen_and_allgptr() {
    let Some(toolchains) = toolchains_or_skip("live allgs") else {
        return;
    };
    for toolchain in &toolchains {
        for build in Build::ALL {
            check_live_allgs(toolchain, build);
        }
    }
}

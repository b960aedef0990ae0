//! Runtime globals read out of process, and where they are.
//!
//! `runtime.allglen` (`uintptr`) and `runtime.allgptr` (`**g`) are the pair
//! the runtime itself publishes for lock-free readers of the goroutine list
//! (`atomicAllG` / `forEachGRace` in `proc.go`: load `allglen` first, then
//! `allgptr`; every g below that length is valid). From `.symtab` when it is
//! there; in a stripped binary from the machine code of
//! `runtime.forEachGRace`, which (with `atomicAllG` inlined) starts, on
//! every supported release and in PIEs alike, with
//!
//! ```text
//!     cmp  rsp, [r14+0x10]; jbe …; push rbp; mov rbp, rsp; sub rsp, N
//!     mov  [rsp+…], rax             ; spill of fn
//!     mov  rcx, [rip+allglen]       ; <- first RIP-relative load
//!     mov  [rsp+…], rcx
//!     mov  rbx, [rip+allgptr]       ; <- second RIP-relative load
//! ```
//!
//! `runtime.sched` (the scheduler's `schedt`, whose `goidgen` counts the
//! goroutine ids handed out) from `.symtab` too; in a stripped binary from
//! `runtime.newproc1`, which refills a P's goid cache with
//! `sched.goidgen.Add(_GoidCacheBatch)`: on Go 1.21–1.27, PIE or not,
//!
//! ```text
//!     mov  r10d, 0x10                   ; _GoidCacheBatch
//!     lea  r11, [rip+sched.goidgen]
//!     lock xadd qword ptr [r11], r10
//! ```
//!
//! the only 8-byte atomic add of 16 in the function. Its address minus
//! `offsetof(schedt, goidgen)` (DWARF or the offsets table) is `sched`.

use std::fmt;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

use super::elf::ElfImage;

/// `runtime.allglen`
pub const ALLGLEN: &str = "runtime.allglen";
/// `runtime.allgptr`
pub const ALLGPTR: &str = "runtime.allgptr";
/// The function whose code reveals both addresses.
pub const FOR_EACH_G_RACE: &str = "runtime.forEachGRace";
/// `runtime.sched`
pub const SCHED: &str = "runtime.sched";
/// `_GoidCacheBatch` (`proc.go`, 16 on Go 1.21–1.27): how many goroutine ids
/// a P takes from `sched.goidgen` at once.
pub const GOID_CACHE_BATCH: u64 = 16;

/// Link-time virtual addresses of runtime globals (add the load bias for a
/// running PIE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeVars {
    /// `runtime.allglen`: number of valid entries behind `allgptr` (read it first).
    pub allglen: u64,
    /// `runtime.allgptr`: pointer to the array of `*g`.
    pub allgptr: u64,
    /// `runtime.sched` (a `runtime.schedt`), if it was found (see
    /// [`RuntimeVars::sched_source`]).
    pub sched: Option<u64>,
    pub sched_source: SchedSource,
    /// `runtime.allp` (a `[]*p`, whose timer heaps hold the timers armed
    /// before attach): only in `.symtab`.
    pub allp: Option<u64>,
}

/// Where [`RuntimeVars::sched`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedSource {
    /// The `runtime.sched` symbol of `.symtab`.
    Symtab,
    /// The machine code of `runtime.newproc1` (stripped binary).
    Disassembly,
    /// Not found: no `.symtab`, and `runtime.newproc1`'s code did not have
    /// the expected shape.
    Absent,
}

impl fmt::Display for SchedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchedSource::Symtab => ".symtab",
            SchedSource::Disassembly => "disassembly of runtime.newproc1",
            SchedSource::Absent => "absent",
        })
    }
}

/// `runtime.allglen` and `runtime.allgptr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AllGs {
    pub(crate) allglen: u64,
    pub(crate) allgptr: u64,
}

/// Both addresses from `.symtab`, if it has them.
pub(crate) fn allgs_from_symtab(elf: &ElfImage<'_>) -> Option<AllGs> {
    Some(AllGs {
        allglen: elf.symbol(ALLGLEN)?.address,
        allgptr: elf.symbol(ALLGPTR)?.address,
    })
}

/// `runtime.allp`
pub const ALLP: &str = "runtime.allp";

/// `runtime.allp` from `.symtab`, if it has it.
pub(crate) fn allp_from_symtab(elf: &ElfImage<'_>) -> Option<u64> {
    if !elf.has_symtab() {
        return None;
    }
    elf.symbol(ALLP).map(|s| s.address)
}

/// `runtime.sched` from `.symtab`, if it has it (a stripped binary's
/// function table has no data symbols).
pub(crate) fn sched_from_symtab(elf: &ElfImage<'_>) -> Option<u64> {
    if !elf.has_symtab() {
        return None;
    }
    elf.symbol(SCHED).map(|s| s.address)
}

/// How many instructions of `forEachGRace` may precede the second load.
const WINDOW: usize = 24;

/// Both addresses from the machine code of `runtime.forEachGRace` (`code`,
/// starting at link-time address `start`): the targets of its first two
/// RIP-relative 8-byte loads into a register, before any call or branch
/// other than the stack check's.
pub(crate) fn allgs_from_for_each_g_race(code: &[u8], start: u64) -> Result<AllGs, String> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut loads = Vec::with_capacity(2);
    let mut seen = 0;
    while decoder.can_decode() && seen < WINDOW {
        decoder.decode_out(&mut instruction);
        seen += 1;
        if instruction.is_invalid() {
            return Err(format!("undecodable bytes at {:#x}", instruction.ip()));
        }
        if is_rip_relative_qword_load(&instruction) {
            loads.push(instruction.ip_rel_memory_address());
            if loads.len() == 2 {
                break;
            }
            continue;
        }
        // Anything else that reads memory through RIP, or leaves the straight
        // line (other than the prologue's `jbe` to morestack), breaks the pattern.
        if instruction.is_ip_rel_memory_operand() {
            return Err(format!(
                "unexpected RIP-relative instruction at {:#x}",
                instruction.ip()
            ));
        }
        match instruction.mnemonic() {
            Mnemonic::Jbe if loads.is_empty() => {}
            Mnemonic::Call | Mnemonic::Ret => break,
            m if instruction.is_jcc_short_or_near() || m == Mnemonic::Jmp => break,
            _ => {}
        }
    }
    match loads[..] {
        [allglen, allgptr] if allglen != allgptr => Ok(AllGs { allglen, allgptr }),
        _ => Err(format!(
            "expected two RIP-relative loads (allglen, allgptr) near the start, found {}",
            loads.len()
        )),
    }
}

/// `mov r64, qword ptr [rip+disp]`
fn is_rip_relative_qword_load(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Mov
        && instruction.op_count() == 2
        && instruction.op0_kind() == OpKind::Register
        && instruction.op0_register().is_gpr64()
        && instruction.op1_kind() == OpKind::Memory
        && instruction.is_ip_rel_memory_operand()
        && instruction.memory_base() == Register::RIP
        && instruction.memory_size() == iced_x86::MemorySize::UInt64
}

/// What a general-purpose register is known to hold, in a straight run of
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// `mov r, imm`
    Immediate(u64),
    /// `lea r, [rip+disp]`
    Address(u64),
}

/// `&runtime.sched.goidgen` from the machine code of `runtime.newproc1`
/// (`code`, the whole function, starting at link-time address `start`): the
/// target of its 8-byte `lock xadd` of the constant [`GOID_CACHE_BATCH`] to
/// a RIP-relative address (`sched.goidgen.Add(_GoidCacheBatch)`, when a P's
/// goid cache runs out). Registers are followed through `mov r, imm` and
/// `lea r, [rip+disp]` within straight-line code; there must be exactly one
/// such add.
pub(crate) fn goidgen_from_newproc1(code: &[u8], start: u64) -> Result<u64, String> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut info = InstructionInfoFactory::new();
    let mut known: [Option<Known>; 16] = [None; 16];
    let mut found: Vec<u64> = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return Err(format!("undecodable bytes at {:#x}", instruction.ip()));
        }
        if let Some(target) = goid_batch_add(&instruction, &known) {
            if !found.contains(&target) {
                found.push(target);
            }
        }
        // What the instruction leaves in registers.
        if instruction.flow_control() != FlowControl::Next {
            // A branch, call or return: what follows may be reached with
            // other values (a jump target).
            known = [None; 16];
            continue;
        }
        for used in info.info(&instruction).used_registers() {
            let writes = matches!(
                used.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            );
            if writes {
                if let Some(i) = gpr_index(used.register()) {
                    known[i] = None;
                }
            }
        }
        if let Some((register, value)) = loaded_value(&instruction) {
            if let Some(i) = gpr_index(register) {
                known[i] = Some(value);
            }
        }
    }
    match found[..] {
        [goidgen] => Ok(goidgen),
        [] => Err(format!(
            "no 8-byte lock xadd of {GOID_CACHE_BATCH} to a RIP-relative address (sched.goidgen)"
        )),
        _ => Err(format!(
            "{} different lock xadd of {GOID_CACHE_BATCH} targets: {found:#x?}",
            found.len()
        )),
    }
}

/// The target of `lock xadd qword ptr [mem], src` when `src` is known to hold
/// [`GOID_CACHE_BATCH`] and `mem` is `[rip+disp]` or `[reg]` with `reg`
/// known to hold a RIP-relative address.
fn goid_batch_add(instruction: &Instruction, known: &[Option<Known>; 16]) -> Option<u64> {
    if instruction.mnemonic() != Mnemonic::Xadd
        || !instruction.has_lock_prefix()
        || instruction.op0_kind() != OpKind::Memory
        || instruction.memory_size() != iced_x86::MemorySize::UInt64
        || instruction.op1_kind() != OpKind::Register
        || instruction.memory_index() != Register::None
    {
        return None;
    }
    let added = known[gpr_index(instruction.op1_register())?];
    if added != Some(Known::Immediate(GOID_CACHE_BATCH)) {
        return None;
    }
    if instruction.is_ip_rel_memory_operand() {
        return Some(instruction.ip_rel_memory_address());
    }
    if instruction.memory_displacement64() != 0 {
        return None;
    }
    match known[gpr_index(instruction.memory_base())?] {
        Some(Known::Address(address)) => Some(address),
        _ => None,
    }
}

/// `mov r, imm` (32- or 64-bit destination) → the immediate;
/// `lea r64, [rip+disp]` → the address.
fn loaded_value(instruction: &Instruction) -> Option<(Register, Known)> {
    if instruction.op_count() != 2 || instruction.op0_kind() != OpKind::Register {
        return None;
    }
    let register = instruction.op0_register();
    if !(register.is_gpr32() || register.is_gpr64()) {
        return None;
    }
    match instruction.mnemonic() {
        Mnemonic::Mov
            if matches!(
                instruction.op1_kind(),
                OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64
            ) =>
        {
            // A 32-bit mov zero-extends into the full register.
            Some((register, Known::Immediate(instruction.immediate(1))))
        }
        Mnemonic::Lea if register.is_gpr64() && instruction.is_ip_rel_memory_operand() => Some((
            register,
            Known::Address(instruction.ip_rel_memory_address()),
        )),
        _ => None,
    }
}

/// 0..16 for a general-purpose register of any width (its full register).
fn gpr_index(register: Register) -> Option<usize> {
    let full = register.full_register();
    if !full.is_gpr64() {
        return None;
    }
    Some(full as usize - Register::RAX as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 0x43_4cc0;

    /// The start of `runtime.forEachGRace` in a Go 1.21.13 binary.
    const GO121: [u8; 0x33] = [
        0x49, 0x3b, 0x66, 0x10, // cmp rsp,[r14+0x10]
        0x76, 0x65, // jbe
        0x55, // push rbp
        0x48, 0x89, 0xe5, // mov rbp,rsp
        0x48, 0x83, 0xec, 0x20, // sub rsp,0x20
        0x48, 0x89, 0x44, 0x24, 0x30, // mov [rsp+0x30],rax
        0x90, // nop
        0x48, 0x8b, 0x0d, 0x65, 0x09, 0x12, 0x00, // mov rcx,[rip+0x120965]
        0x48, 0x89, 0x4c, 0x24, 0x10, // mov [rsp+0x10],rcx
        0x48, 0x8b, 0x1d, 0x01, 0x2a, 0x0f, 0x00, // mov rbx,[rip+0xf2a01]
        0x48, 0x89, 0x5c, 0x24, 0x18, // mov [rsp+0x18],rbx
        0x31, 0xd2, // xor edx,edx
        0xeb, 0x30, // jmp
        0x48, 0x8b, 0x08, // mov rcx,[rax]
    ];

    #[test]
    fn finds_both_loads() {
        let vars = allgs_from_for_each_g_race(&GO121, START).unwrap();
        // Targets: next-instruction address + displacement.
        assert_eq!(vars.allglen, 0x434cdb + 0x120965);
        assert_eq!(vars.allgptr, 0x434ce7 + 0xf2a01);
    }

    #[test]
    fn rejects_other_code() {
        // Only the first load: the code is cut after it.
        assert!(allgs_from_for_each_g_race(&GO121[..0x1b], START).is_err());
        // push rbp; ret
        assert!(allgs_from_for_each_g_race(&[0x55, 0xc3], START).is_err());
        // A call before the loads.
        let mut code = GO121;
        code[0x13] = 0xe8; // nop -> call rel32 (swallows the next 4 bytes)
        assert!(allgs_from_for_each_g_race(&code, START).is_err());
        assert!(allgs_from_for_each_g_race(&[], START).is_err());
    }

    const NEWPROC1_AT: u64 = 0x45_1b00;

    /// Part of `runtime.newproc1` in a Go 1.27.3 binary: the goid cache
    /// refill (`sched` at 0x57dba0, `goidgen` its first field), preceded by
    /// the 4-byte `sched.ngsys.Add(1)` and followed by the cache update.
    const GO127: [u8; 0x35] = [
        0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,1
        0x48, 0x8d, 0x35, 0xf5, 0xc0, 0x12, 0x00, // lea rsi,[rip+0x12c0f5] (sched+0x60)
        0xf0, 0x0f, 0xc1, 0x16, // lock xadd [rsi],edx
        0x4d, 0x39, 0x90, 0x88, 0x01, 0x00, 0x00, // cmp [r8+0x188],r10
        0x90, // nop
        0x41, 0xba, 0x10, 0x00, 0x00, 0x00, // mov r10d,0x10
        0x4c, 0x8d, 0x1d, 0x7e, 0xc0, 0x12, 0x00, // lea r11,[rip+0x12c07e]
        0xf0, 0x4d, 0x0f, 0xc1, 0x13, // lock xadd [r11],r10
        0x4d, 0x8d, 0x5a, 0x01, // lea r11,[r10+1]
        0x4d, 0x89, 0x98, 0x80, 0x01, 0x00, 0x00, // mov [r8+0x180],r11
    ];

    /// Where GO127's `lea r11` points: the instruction after it + disp.
    const GO127_GOIDGEN: u64 = NEWPROC1_AT + 0x25 + 0x12c07e;

    #[test]
    fn finds_the_goid_batch_add() {
        assert_eq!(
            goidgen_from_newproc1(&GO127, NEWPROC1_AT),
            Ok(GO127_GOIDGEN)
        );
        // The same add straight to memory: lock xadd [rip+disp],r10.
        let code = [
            0x41, 0xba, 0x10, 0x00, 0x00, 0x00, // mov r10d,0x10
            0xf0, 0x4c, 0x0f, 0xc1, 0x15, 0x00, 0x10, 0x00,
            0x00, // lock xadd [rip+0x1000],r10
        ];
        assert_eq!(
            goidgen_from_newproc1(&code, NEWPROC1_AT),
            Ok(NEWPROC1_AT + 15 + 0x1000)
        );
    }

    #[test]
    fn rejects_other_adds() {
        // Adding 1, not 16.
        let mut code = GO127;
        code[0x1a] = 0x01;
        assert!(goidgen_from_newproc1(&code, NEWPROC1_AT).is_err());
        // The added register overwritten between mov and xadd:
        // lea r11 -> lea r10 (same length), so r10 no longer holds 16.
        let mut code = GO127;
        code[0x20] = 0x15;
        assert!(goidgen_from_newproc1(&code, NEWPROC1_AT).is_err());
        // A branch between the lea and the xadd: the xadd may be a jump
        // target, reached with other register values.
        let mut code = GO127.to_vec();
        code.splice(0x25..0x25, [0xeb, 0x00]); // jmp +0
        let err = goidgen_from_newproc1(&code, NEWPROC1_AT).unwrap_err();
        assert!(err.contains("no 8-byte lock xadd"), "{err}");
        // Two different targets.
        let mut code = GO127.to_vec();
        code.extend_from_slice(&GO127[0x18..0x2a]);
        assert!(goidgen_from_newproc1(&code, NEWPROC1_AT)
            .unwrap_err()
            .contains("2 different"));
        // Empty, truncated and undecodable code.
        assert!(goidgen_from_newproc1(&[], NEWPROC1_AT).is_err());
        assert!(goidgen_from_newproc1(&GO127[..0x20], NEWPROC1_AT).is_err());
        assert!(goidgen_from_newproc1(&[0x06], NEWPROC1_AT).is_err());
    }
}

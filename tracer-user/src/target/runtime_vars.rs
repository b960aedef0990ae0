//! Where the runtime keeps its goroutine list: `runtime.allglen` (`uintptr`)
//! and `runtime.allgptr` (`**g`), the pair the runtime itself publishes for
//! lock-free readers (`atomicAllG` / `forEachGRace` in `proc.go`: load
//! `allglen` first, then `allgptr`; every g below that length is valid).
//!
//! From `.symtab` when it is there; in a stripped binary from the machine code
//! of `runtime.forEachGRace`, which (with `atomicAllG` inlined) starts, on
//! every supported release and in PIEs alike, with
//!
//! ```text
//!     cmp  rsp, [r14+0x10]; jbe …; push rbp; mov rbp, rsp; sub rsp, N
//!     mov  [rsp+…], rax             ; spill of fn
//!     mov  rcx, [rip+allglen]       ; <- first RIP-relative load
//!     mov  [rsp+…], rcx
//!     mov  rbx, [rip+allgptr]       ; <- second RIP-relative load
//! ```

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::elf::ElfImage;

/// `runtime.allglen`
pub const ALLGLEN: &str = "runtime.allglen";
/// `runtime.allgptr`
pub const ALLGPTR: &str = "runtime.allgptr";
/// The function whose code reveals both addresses.
pub const FOR_EACH_G_RACE: &str = "runtime.forEachGRace";

/// Link-time virtual addresses of runtime globals (add the load bias for a
/// running PIE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeVars {
    /// `runtime.allglen`: number of valid entries behind `allgptr` (read it first).
    pub allglen: u64,
    /// `runtime.allgptr`: pointer to the array of `*g`.
    pub allgptr: u64,
}

/// Both addresses from `.symtab`, if it has them.
pub(crate) fn from_symtab(elf: &ElfImage<'_>) -> Option<RuntimeVars> {
    Some(RuntimeVars {
        allglen: elf.symbol(ALLGLEN)?.address,
        allgptr: elf.symbol(ALLGPTR)?.address,
    })
}

/// How many instructions of `forEachGRace` may precede the second load.
const WINDOW: usize = 24;

/// Both addresses from the machine code of `runtime.forEachGRace` (`code`,
/// starting at link-time address `start`): the targets of its first two
/// RIP-relative 8-byte loads into a register, before any call or branch
/// other than the stack check's.
pub(crate) fn from_for_each_g_race(code: &[u8], start: u64) -> Result<RuntimeVars, String> {
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
        [allglen, allgptr] if allglen != allgptr => Ok(RuntimeVars { allglen, allgptr }),
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
        let vars = from_for_each_g_race(&GO121, START).unwrap();
        // Targets: next-instruction address + displacement.
        assert_eq!(vars.allglen, 0x434cdb + 0x120965);
        assert_eq!(vars.allgptr, 0x434ce7 + 0xf2a01);
    }

    #[test]
    fn rejects_other_code() {
        // Only the first load: the code is cut after it.
        assert!(from_for_each_g_race(&GO121[..0x1b], START).is_err());
        // push rbp; ret
        assert!(from_for_each_g_race(&[0x55, 0xc3], START).is_err());
        // A call before the loads.
        let mut code = GO121;
        code[0x13] = 0xe8; // nop -> call rel32 (swallows the next 4 bytes)
        assert!(from_for_each_g_race(&code, START).is_err());
        assert!(from_for_each_g_race(&[], START).is_err());
    }
}

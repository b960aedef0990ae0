//! Where to put a uprobe inside a Go function (GUIDE §4), found by decoding the
//! machine code with iced-x86. Pure functions over bytes + start address.
//!
//! A Go function with a split-stack check starts with
//!
//! ```text
//!     cmp  rsp, [r14+0x10]          ; or: lea r12, [rsp-N]; cmp r12, [r14+0x10]
//!     jbe  <morestack path>         ; which calls morestack and jumps back to the entry
//!     push rbp                      ; <- probe here
//! ```
//!
//! A probe on the `push rbp` fires exactly once per call (the morestack path
//! re-executes the check, not the push) and is cheap (the kernel emulates `push`
//! instead of single-stepping it out of line). Arguments are still in their
//! registers there: the check clobbers nothing.

use std::fmt;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// How a probe address relates to its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The `push rbp` right after the split-stack check: fires once per call.
    AfterPrologue,
    /// The function has no stack check (`nosplit`) and starts with `push rbp`:
    /// probe at the entry, which fires once per call and is emulated cheaply.
    NosplitEntry,
    /// Fallback: the prologue was not recognized, the probe is at the entry. On
    /// a split-stack function it fires twice when the stack grows (morestack
    /// jumps back to the entry): consumers must treat entry events as idempotent.
    Entry,
    /// A `RET` instruction: a plain uprobe there sees the return values
    /// without touching the return address (Go moves stacks).
    Ret,
}

impl Placement {
    /// Whether the probe can fire twice for one call (see [`Placement::Entry`]).
    pub fn may_fire_twice(self) -> bool {
        self == Placement::Entry
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::AfterPrologue => "after prologue",
            Placement::NosplitEntry => "entry (nosplit)",
            Placement::Entry => "entry",
            Placement::Ret => "ret",
        })
    }
}

/// How many instructions from the entry the stack check may take.
const PROLOGUE_WINDOW: usize = 8;

/// Finds the probe address of a function whose machine code starting at
/// virtual address `start` is `code` (only the first bytes matter).
pub fn prologue_probe(code: &[u8], start: u64) -> (u64, Placement) {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut window = Vec::with_capacity(PROLOGUE_WINDOW);
    let mut instruction = Instruction::default();
    while window.len() < PROLOGUE_WINDOW && decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            break;
        }
        window.push(instruction);
    }
    if window.first().is_some_and(is_push_rbp) {
        return (start, Placement::NosplitEntry);
    }
    for triple in window.windows(3) {
        if let [check, branch, push] = triple {
            if is_stack_check(check) && branch.mnemonic() == Mnemonic::Jbe && is_push_rbp(push) {
                return (push.ip(), Placement::AfterPrologue);
            }
        }
    }
    (start, Placement::Entry)
}

/// `cmp reg, [r14+0x10]`: compares (a value derived from) SP with `g.stackguard0`.
fn is_stack_check(instruction: &Instruction) -> bool {
    instruction.mnemonic() == Mnemonic::Cmp
        && instruction.op_count() == 2
        && instruction.op0_kind() == OpKind::Register
        && instruction.op1_kind() == OpKind::Memory
        && instruction.memory_base() == Register::R14
        && instruction.memory_index() == Register::None
        && instruction.memory_displacement64() == 0x10
}

fn is_push_rbp(instruction: &Instruction) -> bool {
    instruction.code() == Code::Push_r64 && instruction.op0_register() == Register::RBP
}

/// The function's code could not be decoded linearly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Address of the undecodable bytes.
    pub vaddr: u64,
}

/// Addresses of every `RET` in a function body (`code` = the whole function,
/// starting at `start`). Go function bodies are contiguous code without
/// embedded data, so a linear sweep sees every instruction.
pub fn ret_addresses(code: &[u8], start: u64) -> Result<Vec<u64>, DecodeError> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut rets = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return Err(DecodeError {
                vaddr: instruction.ip(),
            });
        }
        if instruction.mnemonic() == Mnemonic::Ret {
            rets.push(instruction.ip());
        }
    }
    Ok(rets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x43_5e20;

    #[test]
    fn small_frame_prologue() {
        // cmp rsp,[r14+0x10]; jbe +0x..; push rbp; mov rbp,rsp; sub rsp,0x20
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x10, 0x01, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5,
            0x48, 0x83, 0xec, 0x20,
        ];
        assert_eq!(
            prologue_probe(&code, BASE),
            (BASE + 10, Placement::AfterPrologue)
        );
        // Short jbe (0x76 rel8).
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x40, 0x55, 0x48, 0x89, 0xe5];
        assert_eq!(
            prologue_probe(&code, BASE),
            (BASE + 6, Placement::AfterPrologue)
        );
    }

    #[test]
    fn large_frame_prologue() {
        // lea r12,[rsp-0x1a0]; cmp r12,[r14+0x10]; jbe ...; push rbp
        let code = [
            0x4c, 0x8d, 0xa4, 0x24, 0x60, 0xfe, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86,
            0x00, 0x02, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5,
        ];
        assert_eq!(
            prologue_probe(&code, BASE),
            (BASE + 18, Placement::AfterPrologue)
        );
    }

    #[test]
    fn nosplit_function_probes_entry() {
        // push rbp; mov rbp,rsp; sub rsp,0x18
        let code = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x18];
        assert_eq!(prologue_probe(&code, BASE), (BASE, Placement::NosplitEntry));
    }

    #[test]
    fn unrecognized_prologues_fall_back_to_entry() {
        // Leaf without frame: mov rax,[rax+8]; ret
        let code = [0x48, 0x8b, 0x40, 0x08, 0xc3];
        assert_eq!(prologue_probe(&code, BASE), (BASE, Placement::Entry));
        // Stack check followed by something other than push rbp.
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x40, 0x48, 0x83, 0xec, 0x18];
        assert_eq!(prologue_probe(&code, BASE), (BASE, Placement::Entry));
        // Compare against another offset of g.
        let code = [0x49, 0x3b, 0x66, 0x18, 0x76, 0x40, 0x55];
        assert_eq!(prologue_probe(&code, BASE), (BASE, Placement::Entry));
        // Truncated and empty code, garbage.
        assert_eq!(
            prologue_probe(&[0x49, 0x3b], BASE),
            (BASE, Placement::Entry)
        );
        assert_eq!(prologue_probe(&[], BASE), (BASE, Placement::Entry));
        assert_eq!(
            prologue_probe(&[0x06, 0x07, 0x0f, 0x0b], BASE),
            (BASE, Placement::Entry)
        );
    }

    #[test]
    fn finds_every_ret() {
        // xor eax,eax; test rbx,rbx; je +1; ret; mov eax,1; ret; int3; int3
        let code = [
            0x31, 0xc0, 0x48, 0x85, 0xdb, 0x74, 0x01, 0xc3, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3,
            0xcc, 0xcc,
        ];
        assert_eq!(
            ret_addresses(&code, BASE).unwrap(),
            vec![BASE + 7, BASE + 13]
        );
        // A 0xc3 byte inside an immediate is not a RET.
        let code = [0xb8, 0xc3, 0xc3, 0x00, 0x00, 0xc3];
        assert_eq!(ret_addresses(&code, BASE).unwrap(), vec![BASE + 5]);
        assert_eq!(ret_addresses(&[], BASE).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn undecodable_code_is_an_error() {
        // Valid nop, then an instruction cut off at the end.
        let code = [0x90, 0x48, 0x8b];
        assert_eq!(
            ret_addresses(&code, BASE),
            Err(DecodeError { vaddr: BASE + 1 })
        );
        // Invalid opcode in 64-bit mode (0x06 = push es).
        assert_eq!(
            ret_addresses(&[0xc3, 0x06], BASE),
            Err(DecodeError { vaddr: BASE + 1 })
        );
    }
}

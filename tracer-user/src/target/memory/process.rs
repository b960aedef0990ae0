//! [`ProcessMemory`]: reads another process's memory without stopping it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Memory, MemoryError, ReadOp};
use crate::target::process_is_alive;

/// Iovecs per `process_vm_readv` call (the kernel's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// How [`ProcessMemory`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMethod {
    /// `process_vm_readv(2)`: up to 1024 scattered reads per system call.
    VmReadv,
    /// `pread(2)` on `/proc/PID/mem`: one read per system call.
    ProcMem,
}

/// The memory of a running process (same permission rules as ptrace: root,
/// or the owner when `kernel.yama.ptrace_scope` allows it). The process is
/// not stopped: reads race with it.
///
/// Uses `process_vm_readv`, and falls back to `/proc/PID/mem` for good when
/// that system call is unavailable or refused (seccomp filters in some
/// containers).
#[derive(Debug)]
pub struct ProcessMemory {
    pid: u32,
    /// `/proc/PID/mem`, opened at [`ProcessMemory::open`].
    mem: File,
    use_proc_mem: AtomicBool,
}

impl ProcessMemory {
    /// Opens the memory of `pid`. Fails if the process does not exist or may
    /// not be read.
    pub fn open(pid: u32) -> Result<Self, MemoryError> {
        Self::open_with(pid, ReadMethod::VmReadv)
    }

    /// Like [`Self::open`], choosing the first read method.
    pub fn open_with(pid: u32, method: ReadMethod) -> Result<Self, MemoryError> {
        let mem = File::open(format!("/proc/{pid}/mem"))
            .map_err(|e| classify(pid, 0, e, !process_is_alive(pid)))?;
        Ok(ProcessMemory {
            pid,
            mem,
            use_proc_mem: AtomicBool::new(method == ReadMethod::ProcMem),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The method reads currently use.
    pub fn method(&self) -> ReadMethod {
        if self.use_proc_mem.load(Ordering::Relaxed) {
            ReadMethod::ProcMem
        } else {
            ReadMethod::VmReadv
        }
    }

    fn fall_back(&self) {
        log::debug!(
            "pid {}: process_vm_readv unavailable, reading /proc/{}/mem",
            self.pid,
            self.pid
        );
        self.use_proc_mem.store(true, Ordering::Relaxed);
    }

    /// One `pread` of `/proc/PID/mem`.
    fn pread(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        if buf.is_empty() {
            return Ok(());
        }
        // Offsets are signed for pread: addresses above i64::MAX (kernel
        // space) cannot be read anyway.
        if addr > i64::MAX as u64 || addr.checked_add(buf.len() as u64).is_none() {
            return Err(self.unmapped(addr, buf.len()));
        }
        match self.mem.read_exact_at(buf, addr) {
            Ok(()) => Ok(()),
            Err(e) => {
                let gone = !process_is_alive(self.pid);
                match classify(self.pid, addr, e, gone) {
                    MemoryError::Io { source, .. } if is_fault(&source) => {
                        Err(self.unmapped(addr, buf.len()))
                    }
                    other => Err(other),
                }
            }
        }
    }

    fn unmapped(&self, addr: u64, len: usize) -> MemoryError {
        MemoryError::Unmapped { addr, len }
    }

    /// `process_vm_readv` of `ops` (at most [`IOV_MAX`], none empty): the
    /// number of bytes read, or the error.
    fn vm_readv(&self, ops: &mut [ReadOp<'_>]) -> io::Result<usize> {
        debug_assert!(ops.len() <= IOV_MAX);
        let mut local = Vec::with_capacity(ops.len());
        let mut remote = Vec::with_capacity(ops.len());
        for op in ops.iter_mut() {
            local.push(libc::iovec {
                iov_base: op.buf.as_mut_ptr().cast(),
                iov_len: op.buf.len(),
            });
            remote.push(libc::iovec {
                iov_base: op.addr as usize as *mut libc::c_void,
                iov_len: op.buf.len(),
            });
        }
        loop {
            // SAFETY: `local` describes `ops.len()` buffers that are valid,
            // exclusively borrowed for `'_` and exactly `iov_len` bytes long;
            // the kernel writes only into them. `remote` describes addresses
            // in the other process, which the kernel checks itself. Both
            // arrays hold `ops.len()` ≤ 1024 (UIO_MAXIOV) entries.
            let n = unsafe {
                libc::process_vm_readv(
                    self.pid as libc::pid_t,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Reads `ops` (non-empty buffers) with `process_vm_readv`, retrying
    /// after each failed read. `Ok(false)`: the system call is not usable,
    /// fall back for the remaining ops.
    fn read_many_vm(&self, ops: &mut [ReadOp<'_>]) -> Result<bool, MemoryError> {
        let mut i = 0;
        while i < ops.len() {
            let end = (i + IOV_MAX).min(ops.len());
            let batch = &mut ops[i..end];
            let read = match self.vm_readv(batch) {
                Ok(n) => n,
                // The first read of the batch is unmapped.
                Err(e) if is_fault(&e) => 0,
                Err(e) if is_unavailable(&e) => return Ok(false),
                Err(e) => {
                    let gone = !process_is_alive(self.pid);
                    return Err(classify(self.pid, batch[0].addr, e, gone));
                }
            };
            // Reads are done in order; the kernel stops at the first one it
            // cannot complete (the next ones are not attempted).
            let mut left = read;
            let mut done = 0;
            for op in batch.iter_mut() {
                if left < op.buf.len() {
                    break;
                }
                left -= op.buf.len();
                op.ok = true;
                done += 1;
            }
            if done < batch.len() {
                batch[done].ok = false;
                done += 1;
            }
            i += done;
        }
        Ok(true)
    }
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let mut ops = [ReadOp::new(addr, buf)];
        self.read_many(&mut ops)?;
        if ops[0].ok {
            Ok(())
        } else {
            Err(self.unmapped(addr, ops[0].buf.len()))
        }
    }

    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Result<(), MemoryError> {
        // Empty reads always succeed; invalid ranges never do: neither goes
        // to the kernel.
        let mut pending: Vec<ReadOp<'_>> = Vec::new();
        let mut index: Vec<usize> = Vec::new();
        for (i, op) in ops.iter_mut().enumerate() {
            op.ok = op.buf.is_empty();
            let valid =
                op.addr.checked_add(op.buf.len() as u64).is_some() && op.addr <= isize::MAX as u64;
            if !op.buf.is_empty() && valid {
                pending.push(ReadOp::new(op.addr, &mut op.buf[..]));
                index.push(i);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut done_by_vm = false;
        if !self.use_proc_mem.load(Ordering::Relaxed) {
            if self.read_many_vm(&mut pending)? {
                done_by_vm = true;
            } else {
                self.fall_back();
            }
        }
        if !done_by_vm {
            for op in pending.iter_mut() {
                match self.pread(op.addr, op.buf) {
                    Ok(()) => op.ok = true,
                    Err(e) if e.is_fatal() => return Err(e),
                    Err(_) => op.ok = false,
                }
            }
        }
        let results: Vec<bool> = pending.iter().map(|op| op.ok).collect();
        drop(pending);
        for (i, ok) in index.into_iter().zip(results) {
            ops[i].ok = ok;
        }
        Ok(())
    }
}

/// An unmapped or unreadable address (not a property of the process).
fn is_fault(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EFAULT) | Some(libc::EIO) | Some(libc::EINVAL)
    ) || e.kind() == io::ErrorKind::UnexpectedEof
}

/// `process_vm_readv` cannot be used here (but `/proc/PID/mem` may).
fn is_unavailable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM))
}

fn classify(pid: u32, addr: u64, e: io::Error, gone: bool) -> MemoryError {
    match e.raw_os_error() {
        Some(libc::ESRCH) => MemoryError::ProcessGone { pid },
        Some(libc::ENOENT) if gone => MemoryError::ProcessGone { pid },
        Some(libc::EACCES) | Some(libc::EPERM) => MemoryError::PermissionDenied { pid },
        _ if gone => MemoryError::ProcessGone { pid },
        _ => MemoryError::Io {
            pid,
            addr,
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads this very process: no privilege needed.
    fn own_memory(method: ReadMethod) -> ProcessMemory {
        ProcessMemory::open_with(std::process::id(), method).unwrap()
    }

    #[test]
    fn reads_own_memory_in_batches_with_both_methods() {
        for method in [ReadMethod::VmReadv, ReadMethod::ProcMem] {
            let memory = own_memory(method);
            let data: Vec<u64> = (0..3000u64).map(|i| i * 0x0101_0101).collect();
            let base = data.as_ptr() as u64;
            // 3000 reads, one of them unmapped, one empty: more than one
            // process_vm_readv batch, and a fault in the middle of one.
            let mut bufs = vec![[0u8; 8]; 3000];
            let mut empty = [0u8; 0];
            let mut ops: Vec<ReadOp<'_>> = bufs
                .iter_mut()
                .enumerate()
                .map(|(i, b)| {
                    let addr = if i == 1500 { 8 } else { base + 8 * i as u64 };
                    ReadOp::new(addr, b)
                })
                .collect();
            ops.push(ReadOp::new(0, &mut empty));
            memory.read_many(&mut ops).unwrap();
            for (i, op) in ops.iter().enumerate().take(3000) {
                assert_eq!(op.ok, i != 1500, "{method:?} read {i}");
                if i != 1500 {
                    assert_eq!(u64::from_le_bytes(op.buf[..].try_into().unwrap()), data[i]);
                }
            }
            assert!(ops[3000].ok, "empty reads succeed");
            assert_eq!(memory.read_u64(base + 8).unwrap(), data[1]);
            assert!(matches!(
                memory.read_u64(8),
                Err(MemoryError::Unmapped { addr: 8, len: 8 })
            ));
            assert!(memory.read_u64(u64::MAX - 3).is_err());
            assert!(memory.read_u64(0xffff_ffff_ff60_0000).is_err());
            assert_eq!(memory.method(), method);
        }
    }

    #[test]
    fn missing_process() {
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(matches!(
            ProcessMemory::open(u32::MAX - 1),
            Err(MemoryError::ProcessGone { .. })
        ));
    }
}

//! Many small reads as few large ones.
//!
//! The kernel's cost of a remote read is mostly per request (locking the
//! target's address space, pinning its pages), not per byte: 100,000 reads
//! of 300 bytes cost far more than 30 MB read in 128 KiB pieces. The `g`s of
//! a Go program sit next to each other in the heap (one size class), so
//! sorting the reads by address and merging neighbours (reading the small
//! gaps between them too) divides the number of requests by ~400.

use std::ops::Range;

use super::{Memory, MemoryError, ReadOp};

/// Largest merged read.
const MAX_RANGE: u64 = 256 * 1024;
/// Bytes read per [`Memory::read_many`] call.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Reads per [`Memory::read_many`] call (one `process_vm_readv`).
const BATCH_READS: usize = 1024;

/// Reads `records[i] = (addr, len)` and calls `each(i, bytes)` for every
/// record that could be read, in no particular order. Records with `len` 0
/// or that wrap around the address space are skipped. Reads whose addresses
/// are at most `max_gap` bytes apart are merged (the gap is read too); a
/// merged read that fails (a hole in between) is retried record by record.
/// Errors are fatal ones ([`MemoryError::is_fatal`]) only.
pub(crate) fn read_coalesced(
    mem: &dyn Memory,
    records: &[(u64, usize)],
    max_gap: u64,
    each: &mut dyn FnMut(usize, &[u8]),
) -> Result<(), MemoryError> {
    let mut order: Vec<usize> = (0..records.len())
        .filter(|&i| {
            let (addr, len) = records[i];
            len > 0 && addr.checked_add(len as u64).is_some()
        })
        .collect();
    order.sort_unstable_by_key(|&i| records[i].0);
    let retry = read_ranges(mem, records, &order, Some(max_gap), each)?;
    if !retry.is_empty() {
        read_ranges(mem, records, &retry, None, each)?;
    }
    Ok(())
}

/// A merged read: `[start, end)` covering `order[members]`.
struct Span {
    start: u64,
    end: u64,
    members: Range<usize>,
}

/// Reads `order` (sorted by address), merged when `max_gap` is given.
/// Returns the records of failed merged reads, to retry one by one.
fn read_ranges(
    mem: &dyn Memory,
    records: &[(u64, usize)],
    order: &[usize],
    max_gap: Option<u64>,
    each: &mut dyn FnMut(usize, &[u8]),
) -> Result<Vec<usize>, MemoryError> {
    let mut spans: Vec<Span> = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        let (addr, len) = records[i];
        let end = addr + len as u64;
        if let (Some(gap), Some(last)) = (max_gap, spans.last_mut()) {
            let merged_end = end.max(last.end);
            if addr <= last.end.saturating_add(gap) && merged_end - last.start <= MAX_RANGE {
                last.end = merged_end;
                last.members.end = k + 1;
                continue;
            }
        }
        spans.push(Span {
            start: addr,
            end,
            members: k..k + 1,
        });
    }
    let mut retry = Vec::new();
    let mut buffer: Vec<u8> = Vec::new();
    let mut first = 0;
    while first < spans.len() {
        // A batch: up to BATCH_READS spans and BATCH_BYTES (at least one span).
        let mut bytes = 0usize;
        let mut last = first;
        while last < spans.len() && last - first < BATCH_READS {
            let len = (spans[last].end - spans[last].start) as usize;
            if last > first && bytes + len > BATCH_BYTES {
                break;
            }
            bytes += len;
            last += 1;
        }
        let batch = &spans[first..last];
        buffer.clear();
        buffer.resize(bytes, 0);
        let mut ops = Vec::with_capacity(batch.len());
        let mut rest = &mut buffer[..];
        for span in batch {
            let (buf, tail) = rest.split_at_mut((span.end - span.start) as usize);
            rest = tail;
            ops.push(ReadOp::new(span.start, buf));
        }
        mem.read_many(&mut ops)?;
        for (span, op) in batch.iter().zip(&ops) {
            if !op.ok {
                if span.members.len() > 1 {
                    retry.extend(order[span.members.clone()].iter().copied());
                }
                continue;
            }
            for &i in &order[span.members.clone()] {
                let (addr, len) = records[i];
                let offset = (addr - span.start) as usize;
                each(i, &op.buf[offset..offset + len]);
            }
        }
        first = last;
    }
    Ok(retry)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::super::ImageMemory;
    use super::*;

    struct Counting {
        inner: ImageMemory,
        reads: Cell<usize>,
    }

    impl Memory for Counting {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            self.reads.set(self.reads.get() + 1);
            self.inner.read(addr, buf)
        }
    }

    fn collect(mem: &dyn Memory, records: &[(u64, usize)], gap: u64) -> Vec<Option<Vec<u8>>> {
        let mut got = vec![None; records.len()];
        read_coalesced(mem, records, gap, &mut |i, bytes| {
            assert!(got[i].is_none(), "record {i} delivered twice");
            got[i] = Some(bytes.to_vec());
        })
        .unwrap();
        got
    }

    #[test]
    fn merges_neighbours_and_retries_across_holes() {
        let mut image = ImageMemory::new();
        let data: Vec<u8> = (0..=255).cycle().take(0x3000).collect();
        image.map(0x10000, data[..0x1000].to_vec());
        // A hole at 0x11000..0x11100.
        image.map(0x11100, data[0x1100..0x3000].to_vec());
        let memory = Counting {
            inner: image,
            reads: Cell::new(0),
        };
        let records = [
            (0x10200, 16),
            (0x10000, 16),
            (0x10100, 16),
            (0x10100, 16), // the same bytes twice
            (0x10ff8, 16), // straddles the hole: unreadable
            (0x11200, 8),
            (0x12000, 0),       // empty: skipped
            (u64::MAX - 4, 16), // wraps: skipped
            (0x12f00, 0x100),
        ];
        let got = collect(&memory, &records, 0x1000);
        for (i, &(addr, len)) in records.iter().enumerate() {
            let expected = match i {
                4 | 6 | 7 => None,
                _ => {
                    let from = (addr - 0x10000) as usize;
                    Some(data[from..from + len].to_vec())
                }
            };
            assert_eq!(got[i], expected, "record {i}");
        }
        // One merged read that fails, then the 7 records one by one.
        assert_eq!(memory.reads.get(), 8);
        // Without merging: one read per record.
        memory.reads.set(0);
        let got_apart = collect(&memory, &records, 0);
        assert_eq!(got_apart[..4], got[..4]);
        assert!(memory.reads.get() >= 5);
    }

    #[test]
    fn merged_reads_are_bounded() {
        let mut image = ImageMemory::new();
        image.map_zeroed(0x100000, 4 << 20);
        let memory = Counting {
            inner: image,
            reads: Cell::new(0),
        };
        let records: Vec<(u64, usize)> = (0..8192u64).map(|k| (0x100000 + k * 512, 300)).collect();
        let got = collect(&memory, &records, 1024);
        assert!(got
            .iter()
            .all(|g| g.as_ref().is_some_and(|b| b.len() == 300)));
        // 4 MiB in pieces of at most 256 KiB.
        assert_eq!(memory.reads.get(), 16);
    }
}

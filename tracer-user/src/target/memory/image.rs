//! [`ImageMemory`]: a sparse address space made of byte regions, for tests.

use std::collections::BTreeMap;

use super::{Memory, MemoryError};

/// A sparse, read-only (through [`Memory`]) address space: regions of bytes
/// at given addresses; everything else is unmapped. Adjacent regions read as
/// one. Regions must not overlap.
#[derive(Debug, Clone, Default)]
pub struct ImageMemory {
    regions: BTreeMap<u64, Vec<u8>>,
}

impl ImageMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `bytes` at `addr`. Panics if the region overlaps another one or
    /// wraps around the address space (a bug in the test building the image).
    pub fn map(&mut self, addr: u64, bytes: Vec<u8>) -> &mut Self {
        let end = addr
            .checked_add(bytes.len() as u64)
            .expect("region wraps around the address space");
        let overlaps = self
            .regions
            .range(..end)
            .next_back()
            .is_some_and(|(&start, data)| start + data.len() as u64 > addr);
        assert!(!overlaps, "region at {addr:#x} overlaps another one");
        self.regions.insert(addr, bytes);
        self
    }

    /// Maps `len` zero bytes at `addr`.
    pub fn map_zeroed(&mut self, addr: u64, len: usize) -> &mut Self {
        self.map(addr, vec![0; len])
    }

    /// Removes the region that starts at `addr`, returning its bytes.
    pub fn unmap(&mut self, addr: u64) -> Option<Vec<u8>> {
        self.regions.remove(&addr)
    }

    /// Overwrites mapped bytes; `false` (and nothing written) if any of them
    /// is unmapped.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> bool {
        if self.read(addr, &mut vec![0; bytes.len()]).is_err() {
            return false;
        }
        let mut done = 0;
        while done < bytes.len() {
            let at = addr + done as u64;
            let Some((&start, data)) = self.regions.range_mut(..=at).next_back() else {
                return false;
            };
            let from = (at - start) as usize;
            let n = (data.len() - from).min(bytes.len() - done);
            data[from..from + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        true
    }

    pub fn write_u64(&mut self, addr: u64, value: u64) -> bool {
        self.write(addr, &value.to_le_bytes())
    }

    pub fn write_u32(&mut self, addr: u64, value: u32) -> bool {
        self.write(addr, &value.to_le_bytes())
    }

    /// The regions, to corrupt them in place.
    pub fn regions_mut(&mut self) -> impl Iterator<Item = (u64, &mut Vec<u8>)> {
        self.regions.iter_mut().map(|(&a, d)| (a, d))
    }

    /// Total mapped bytes.
    pub fn mapped_len(&self) -> usize {
        self.regions.values().map(Vec::len).sum()
    }
}

impl Memory for ImageMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let unmapped = MemoryError::Unmapped {
            addr,
            len: buf.len(),
        };
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(unmapped);
        }
        let mut done = 0;
        while done < buf.len() {
            let at = addr + done as u64;
            let Some((&start, data)) = self.regions.range(..=at).next_back() else {
                return Err(unmapped);
            };
            let from = at - start;
            if from >= data.len() as u64 {
                return Err(unmapped);
            }
            let from = from as usize;
            let n = (data.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[from..from + n]);
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::ReadOp;
    use super::*;

    #[test]
    fn reads_within_and_across_adjacent_regions_only() {
        let mut image = ImageMemory::new();
        image
            .map(0x1000, vec![1, 2, 3, 4])
            .map(0x1004, vec![5, 6])
            .map(0x2000, vec![9; 8]);
        let mut buf = [0u8; 6];
        image.read(0x1000, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5, 6]);
        assert!(image.read(0x1001, &mut buf).is_err(), "runs past 0x1006");
        assert!(image.read(0xfff, &mut [0u8; 2]).is_err());
        assert!(image.read(u64::MAX - 1, &mut [0u8; 4]).is_err());
        assert_eq!(image.read_u64(0x2000).unwrap(), 0x0909_0909_0909_0909);
        image.read(0x3000, &mut []).unwrap();
        assert!(image.write(0x1003, &[40, 50]));
        assert_eq!(
            image.read_u32(0x1002).unwrap(),
            u32::from_le_bytes([3, 40, 50, 6])
        );
        assert!(!image.write(0x1005, &[0, 0]));
        assert_eq!(image.unmap(0x1004), Some(vec![50, 6]));
        assert!(image.read(0x1003, &mut [0u8; 2]).is_err());
        assert_eq!(image.mapped_len(), 12);
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn overlapping_regions_are_a_test_bug() {
        ImageMemory::new()
            .map(0x1000, vec![0; 16])
            .map(0x1008, vec![0; 16]);
    }

    #[test]
    fn read_many_sets_each_flag() {
        let mut image = ImageMemory::new();
        image.map(0x1000, vec![7; 16]);
        let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
        let mut ops = [ReadOp::new(0x1008, &mut a), ReadOp::new(0x1010, &mut b)];
        image.read_many(&mut ops).unwrap();
        assert!(ops[0].ok && !ops[1].ok);
        assert_eq!(a, [7; 8]);
    }
}

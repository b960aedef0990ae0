//! Round trips, and every way a recording can be cut or damaged: a reader
//! delivers the records of the intact blocks before the damage and nothing
//! else.

use std::io::{self, Write};

use super::container::*;

type Record = (u8, Vec<u8>);

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` records of various kinds and sizes (some empty), with payloads
/// that compress somewhat, like real events.
fn records(seed: u64, count: usize, max_len: u64) -> Vec<Record> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|i| {
            let kind = rng.below(256) as u8;
            let len = if i % 7 == 0 { 0 } else { rng.below(max_len) };
            let payload = (0..len).map(|j| (rng.below(4) + j % 16) as u8).collect();
            (kind, payload)
        })
        .collect()
}

/// A recording of `blocks`, each written out with `flush_block`, and the
/// file offset where each block ends.
fn recording(header: &[u8], blocks: &[Vec<Record>]) -> (Vec<u8>, Vec<u64>) {
    let options = WriterOptions {
        block_size: MAX_BLOCK_LEN,
        ..WriterOptions::default()
    };
    let mut w = RecordWriter::with_options(Vec::new(), header, options).unwrap();
    let mut ends = Vec::new();
    for block in blocks {
        for (kind, payload) in block {
            w.append(*kind, payload).unwrap();
        }
        w.flush_block().unwrap();
        ends.push(w.stats().bytes);
    }
    (w.finish().unwrap(), ends)
}

/// Everything a reader delivers, and how it ended.
fn drain<R: io::Read>(reader: &mut RecordReader<R>) -> (Vec<Record>, End) {
    let mut out = Vec::new();
    while let Some((kind, payload)) = reader.next_record() {
        out.push((kind, payload.to_vec()));
    }
    let end = reader.end().cloned().expect("an end after the last record");
    (out, end)
}

fn open(bytes: &[u8]) -> Result<(RecordReader<&[u8]>, Vec<u8>), OpenError> {
    RecordReader::open(bytes)
}

/// A small recording of 5 blocks (one of them a single empty record).
fn small() -> (Vec<u8>, Vec<u64>, Vec<Vec<Record>>) {
    let mut blocks: Vec<Vec<Record>> = (0..5).map(|b| records(b + 1, 6, 40)).collect();
    blocks[2] = vec![(7, Vec::new())];
    let (bytes, ends) = recording(b"{\"pid\":42}", &blocks);
    (bytes, ends, blocks)
}

#[test]
fn many_records_round_trip_across_blocks() {
    let mut all = records(1, 5_000, 600);
    // Larger than a block: it gets a block of its own.
    let big = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    all.insert(2_500, (0xff, big));
    all.insert(10, (0, Vec::new()));
    let options = WriterOptions {
        block_size: 16 << 10,
        level: 1,
    };
    let mut w = RecordWriter::with_options(Vec::new(), b"{\"target\":1}", options).unwrap();
    for (kind, payload) in &all {
        w.append(*kind, payload).unwrap();
    }
    let stats = w.stats();
    let bytes = w.finish().unwrap();
    assert_eq!(stats.records, all.len() as u64);

    let (mut r, header) = open(&bytes).unwrap();
    assert_eq!(header, b"{\"target\":1}");
    assert_eq!(r.version(), (FORMAT_MAJOR, FORMAT_MINOR));
    let (got, end) = drain(&mut r);
    assert_eq!(end, End::Complete);
    assert_eq!(got.len(), all.len());
    assert!(got == all, "records differ");
    assert!(r.blocks() > 50, "{} blocks", r.blocks());
    assert_eq!(r.records(), all.len() as u64);
    assert_eq!(r.offset(), bytes.len() as u64);
    assert_eq!(r.end_warning(), None);
}

#[test]
fn stats_count_what_was_written() {
    let mut w = RecordWriter::create(Vec::new(), b"h").unwrap();
    let header_len = w.stats().bytes;
    assert_eq!(header_len, 16 + 1 + 4);
    w.append(1, b"abc").unwrap();
    w.append(2, b"").unwrap();
    // Still in the current block.
    assert_eq!(w.get_ref().len() as u64, header_len);
    assert_eq!(
        w.stats(),
        WriterStats {
            bytes: header_len,
            blocks: 0,
            records: 2,
            record_bytes: 5 + 2,
        }
    );
    w.flush_block().unwrap();
    // Flushing an empty block writes nothing.
    w.flush_block().unwrap();
    let stats = w.stats();
    assert_eq!(stats.blocks, 1);
    assert_eq!(stats.bytes, w.get_ref().len() as u64);
    let bytes = w.finish().unwrap();
    assert_eq!(stats.bytes, bytes.len() as u64);
}

#[test]
fn a_full_block_is_written_out_at_the_threshold() {
    let options = WriterOptions {
        block_size: 100,
        level: 1,
    };
    let mut w = RecordWriter::with_options(Vec::new(), b"", options).unwrap();
    // 1 + 1 + 48 bytes each: the second record fills the block.
    w.append(1, &[0; 48]).unwrap();
    assert_eq!(w.stats().blocks, 0);
    w.append(1, &[0; 48]).unwrap();
    assert_eq!(w.stats().blocks, 1);
    assert_eq!(w.stats().bytes, w.get_ref().len() as u64);
}

#[test]
fn the_largest_record_fits_in_a_block_and_a_larger_one_is_refused() {
    let mut w = RecordWriter::create(Vec::new(), b"").unwrap();
    w.append(3, b"small").unwrap();
    let big = vec![0x5a; MAX_RECORD_LEN];
    w.append(4, &big).unwrap();
    let err = w.append(5, &vec![0; MAX_RECORD_LEN + 1]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "record of 16777212 bytes, over the 16777211-byte limit of recordings"
    );
    let bytes = w.finish().unwrap();
    let (mut r, _) = open(&bytes).unwrap();
    assert_eq!(r.next_record(), Some((3, &b"small"[..])));
    assert_eq!(r.next_record(), Some((4, &big[..])));
    assert_eq!(r.next_record(), None);
    assert_eq!(r.end(), Some(&End::Complete));
    // The small record's block was written before the big one.
    assert_eq!(r.blocks(), 2);
}

#[test]
fn a_recording_without_records_is_complete() {
    let bytes = RecordWriter::create(Vec::new(), b"{}")
        .unwrap()
        .finish()
        .unwrap();
    let (mut r, header) = open(&bytes).unwrap();
    assert_eq!(header, b"{}");
    assert_eq!(drain(&mut r), (Vec::new(), End::Complete));
}

#[test]
fn a_cut_at_every_offset_yields_the_complete_blocks_before_it() {
    let (bytes, ends, blocks) = small();
    let header_len = 16 + 10 + 4;
    assert!(ends.len() == 5 && ends[0] > header_len);
    for cut in 0..=bytes.len() {
        let result = open(&bytes[..cut]);
        if (cut as u64) < header_len {
            match result {
                Err(OpenError::TruncatedHeader { len }) => assert_eq!(len, cut as u64),
                Err(e) => panic!("cut at {cut}: {e}"),
                Ok(_) => panic!("cut at {cut}: opened"),
            }
            continue;
        }
        let (mut r, header) = result.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(header, b"{\"pid\":42}");
        let (got, end) = drain(&mut r);
        let complete = ends.iter().filter(|&&e| e <= cut as u64).count();
        let expected: Vec<Record> = blocks[..complete].concat();
        assert!(got == expected, "cut at {cut}: wrong records");
        let boundary = if complete == 0 {
            header_len
        } else {
            ends[complete - 1]
        };
        if boundary == cut as u64 {
            assert_eq!(end, End::Complete, "cut at {cut}");
        } else {
            assert!(
                matches!(end, End::Truncated { offset, .. } if offset == boundary),
                "cut at {cut}: {end:?}"
            );
        }
    }
}

#[test]
fn a_damaged_byte_anywhere_is_detected_and_only_intact_blocks_are_delivered() {
    let (bytes, ends, blocks) = small();
    let header_len = 16 + 10 + 4;
    for at in 0..bytes.len() {
        for flip in [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            let (mut r, _) = match open(&damaged) {
                Ok(opened) => opened,
                Err(e) => {
                    assert!(at < header_len as usize, "byte {at}: {e}");
                    continue;
                }
            };
            assert!(at >= header_len as usize, "byte {at} ^ {flip:#x}: opened");
            let (got, end) = drain(&mut r);
            let intact = ends.iter().filter(|&&e| e <= at as u64).count();
            assert!(
                got == blocks[..intact].concat(),
                "byte {at} ^ {flip:#x}: wrong records"
            );
            let start = if intact == 0 {
                header_len
            } else {
                ends[intact - 1]
            };
            assert!(
                matches!(end, End::Corrupted { offset, .. } if offset == start),
                "byte {at} ^ {flip:#x}: {end:?}"
            );
        }
    }
}

#[test]
fn every_header_fault_has_a_clear_error() {
    let (bytes, _, _) = small();
    let message = |bytes: &[u8]| open(bytes).err().map(|e| e.to_string());
    assert_eq!(
        message(b"{\"not\": \"a recording\"}").as_deref(),
        Some("not a tracer recording: the file does not start with \"GOTRACER\"")
    );
    assert_eq!(
        message(b"").as_deref(),
        Some(
            "the recording's header is cut short after 0 bytes: the file was not fully \
             written or was truncated"
        )
    );
    let mut newer = bytes.clone();
    newer[8] = 2;
    assert_eq!(
        message(&newer).as_deref(),
        Some(
            "this recording has format version 2.0; this tracer reads version 1.x: open it \
             with the tracer that wrote it"
        )
    );
    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert_eq!(
        message(&flipped).as_deref(),
        Some("the recording's header is corrupted: checksum mismatch")
    );
}

#[test]
fn a_newer_minor_version_is_read() {
    let (mut bytes, _, blocks) = small();
    bytes[10] = 7;
    let payload_len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    let crc_at = 16 + payload_len;
    let crc = crc32fast::hash(&bytes[..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let (mut r, _) = open(&bytes).unwrap();
    assert_eq!(r.version(), (1, 7));
    assert_eq!(drain(&mut r), (blocks.concat(), End::Complete));
}

/// The frame of the first block of `bytes` (a recording with a 0-byte
/// header payload), with `edit` applied and its checksum made valid again.
fn forge_first_frame(bytes: &mut [u8], edit: impl Fn(&mut [u8])) {
    let frame = &mut bytes[20..44];
    edit(frame);
    let crc = crc32fast::hash(&frame[..20]);
    frame[20..].copy_from_slice(&crc.to_le_bytes());
}

fn one_block() -> Vec<u8> {
    let mut w = RecordWriter::create(Vec::new(), b"").unwrap();
    w.append(1, b"first").unwrap();
    w.append(2, b"second").unwrap();
    w.finish().unwrap()
}

#[test]
fn forged_huge_lengths_are_refused_before_allocating() {
    for (field, value, reason) in [
        (
            4,
            u32::MAX,
            "block of 4294967295 compressed bytes, over the 17039360 limit",
        ),
        (
            8,
            u32::MAX,
            "block of 4294967295 bytes, over the 16777216 limit",
        ),
        (12, u32::MAX, "4294967295 records cannot fit in 15 bytes"),
    ] {
        let mut bytes = one_block();
        forge_first_frame(&mut bytes, |f| {
            f[field..field + 4].copy_from_slice(&value.to_le_bytes())
        });
        let (mut r, _) = open(&bytes).unwrap();
        let (got, end) = drain(&mut r);
        assert!(got.is_empty());
        assert_eq!(
            end,
            End::Corrupted {
                offset: 20,
                reason: reason.to_string()
            }
        );
        assert_eq!(r.buffer_capacity(), (0, 0));
    }
    // A header payload length of 4 GiB.
    let mut bytes = one_block();
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        open(&bytes),
        Err(OpenError::CorruptedHeader { reason })
            if reason == "header payload of 4294967295 bytes, over the 1048576 limit"
    ));
}

#[test]
fn a_block_cut_short_allocates_what_is_there_not_what_it_claims() {
    let mut bytes = one_block();
    forge_first_frame(&mut bytes, |f| {
        f[4..8].copy_from_slice(&(16u32 << 20).to_le_bytes())
    });
    let (mut r, _) = open(&bytes).unwrap();
    let (got, end) = drain(&mut r);
    assert!(got.is_empty());
    assert!(matches!(end, End::Truncated { offset: 20, .. }), "{end:?}");
    let (compressed, _) = r.buffer_capacity();
    assert!(compressed < 4096, "{compressed}");
}

/// Writes one block of hand-made records (a valid frame and checksums).
fn raw_block(records: u32, uncompressed_len: Option<u32>, data: &[u8]) -> Vec<u8> {
    let compressed = zstd::bulk::compress(data, 1).unwrap();
    let mut frame = vec![];
    frame.extend_from_slice(b"TBLK");
    frame.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    frame.extend_from_slice(&uncompressed_len.unwrap_or(data.len() as u32).to_le_bytes());
    frame.extend_from_slice(&records.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(&compressed);
    frame
}

#[test]
fn a_block_whose_records_do_not_add_up_delivers_none_of_them() {
    let good = raw_block(1, None, &[9, 2, b'o', b'k']);
    for (bad, reason) in [
        // Two valid records, then one whose length runs past the block.
        (
            raw_block(3, None, &[1, 1, b'a', 2, 0, 3, 5, b'x']),
            "record 2 of the block is malformed",
        ),
        (
            raw_block(1, None, &[1, 1, b'a', 2, 0]),
            "block holds 2 records, its header says 1",
        ),
        // A varint longer than 4 bytes.
        (
            raw_block(1, None, &[1, 0x80, 0x80, 0x80, 0x80, 0]),
            "record 0 of the block is malformed",
        ),
        (
            raw_block(1, Some(10), &[1, 1, b'a']),
            "block decompresses to 3 bytes, its header says 10",
        ),
        // More than it says (and than the previous block's buffer).
        (
            raw_block(1, Some(2), &[&[1, 62][..], &[b'a'; 62]].concat()),
            "block does not decompress: Destination buffer is too small",
        ),
    ] {
        let mut bytes = one_block();
        let first_end = bytes.len() as u64;
        bytes.extend_from_slice(&bad);
        bytes.extend_from_slice(&good);
        let (mut r, _) = open(&bytes).unwrap();
        let (got, end) = drain(&mut r);
        assert_eq!(got, vec![(1, b"first".to_vec()), (2, b"second".to_vec())]);
        assert_eq!(
            end,
            End::Corrupted {
                offset: first_end,
                reason: reason.to_string()
            }
        );
    }
}

#[test]
fn the_end_warning_says_where_and_what_is_replayed() {
    let (bytes, ends, _) = small();
    let cut = ends[1] as usize + 10;
    let (mut r, _) = open(&bytes[..cut]).unwrap();
    drain(&mut r);
    assert_eq!(
        r.end_warning().unwrap(),
        format!(
            "recording ends early at byte {} (truncated block): replaying the 2 complete \
             blocks before it",
            ends[1]
        )
    );
    let damaged = End::Corrupted {
        offset: 812,
        reason: "block checksum mismatch".to_string(),
    };
    assert_eq!(
        damaged.warning(1).unwrap(),
        "recording is damaged at byte 812 (block checksum mismatch): replaying the complete \
         block before it, nothing after it"
    );
    assert_eq!(End::Complete.warning(3), None);
}

/// A writer whose writes fail after `budget` bytes.
struct FailingWriter {
    budget: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn after_a_failed_write_the_writer_refuses_to_go_on() {
    let mut w = RecordWriter::create(FailingWriter { budget: 40 }, b"").unwrap();
    w.append(1, &[7; 100]).unwrap();
    assert_eq!(w.flush_block().unwrap_err().to_string(), "disk full");
    let err = w.append(1, b"more").unwrap_err();
    assert_eq!(
        err.to_string(),
        "an earlier write of this recording failed: it ends in a partial block"
    );
}

#[test]
fn sync_data_puts_blocks_in_the_file() {
    let path = std::env::temp_dir().join(format!("tracer-record-{}.rec", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let mut w = RecordWriter::create(io::BufWriter::new(file), b"{}").unwrap();
    w.append(1, b"synced").unwrap();
    w.sync_data().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (mut r, _) = open(&bytes).unwrap();
    assert_eq!(
        drain(&mut r),
        (vec![(1, b"synced".to_vec())], End::Complete)
    );
}

/// The seed corpus of the fuzz target `recording_reader` is exactly what
/// this writer makes today, so the fuzzer starts from valid recordings of
/// the current format. `TRACER_WRITE_FUZZ_SEEDS=1 cargo test -p tracer-user
/// --lib fuzz_seeds` rewrites them after a format change.
#[test]
fn fuzz_seeds_are_current_recordings() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/recording_reader");
    let (small, ends, _) = small();
    let seeds = [
        ("seed-5-blocks", small.clone()),
        ("seed-cut", small[..ends[2] as usize + 7].to_vec()),
        ("seed-1-block", one_block()),
    ];
    let write = std::env::var_os("TRACER_WRITE_FUZZ_SEEDS").is_some();
    for (name, bytes) in seeds {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            committed == bytes,
            "{} is out of date: rewrite the seeds with TRACER_WRITE_FUZZ_SEEDS=1",
            path.display()
        );
    }
}

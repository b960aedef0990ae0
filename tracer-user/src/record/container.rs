//! Byte layout, writer and reader of the recording container. All integers
//! are little-endian; docs/recording-format.md describes the layout.

use std::{
    fs::File,
    io::{self, BufWriter, Read, Write},
    ops::Range,
};

/// The first bytes of every recording.
pub const MAGIC: [u8; 8] = *b"GOTRACER";
/// Format version written here. A reader accepts every minor version of its
/// major version and refuses other majors.
pub const FORMAT_MAJOR: u16 = 1;
pub const FORMAT_MINOR: u16 = 0;

/// Largest header payload.
pub const MAX_HEADER_PAYLOAD: usize = 1 << 20;
/// Largest block, uncompressed.
pub const MAX_BLOCK_LEN: usize = 16 << 20;
/// Largest record payload: with its framing (kind byte and a length of at
/// most [`MAX_VARINT_LEN`] bytes) it fills a block.
pub const MAX_RECORD_LEN: usize = MAX_BLOCK_LEN - 1 - MAX_VARINT_LEN;
/// Blocks are written out once they reach this many bytes, uncompressed.
pub const DEFAULT_BLOCK_SIZE: usize = 256 << 10;

/// Record lengths are LEB128 varints of at most 4 bytes (28 bits).
const MAX_VARINT_LEN: usize = 4;
/// Largest block, compressed: above zstd's worst case for [`MAX_BLOCK_LEN`]
/// (`n + n/256` and a few bytes).
const MAX_COMPRESSED_LEN: usize = MAX_BLOCK_LEN + MAX_BLOCK_LEN / 64;
/// Magic, major, minor, payload length.
const HEADER_FIXED_LEN: usize = 16;
/// The sync word that starts every block.
const BLOCK_SYNC: [u8; 4] = *b"TBLK";
/// Sync word, compressed length, uncompressed length, record count, CRC32 of
/// the compressed bytes, CRC32 of the first 20 bytes.
const FRAME_LEN: usize = 24;

/// Tuning of a [`RecordWriter`].
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// A block is written out once its records reach this many bytes,
    /// uncompressed (clamped to 1..=[`MAX_BLOCK_LEN`]). Memory use is about
    /// twice this.
    pub block_size: usize,
    /// zstd level: 1 (fastest) to 19; 0 is zstd's default (3).
    pub level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            block_size: DEFAULT_BLOCK_SIZE,
            level: 3,
        }
    }
}

/// What a [`RecordWriter`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Bytes given to the inner writer, header included.
    pub bytes: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Records appended (the last ones may still wait in the current block).
    pub records: u64,
    /// Bytes of the appended records with their framing, uncompressed.
    pub record_bytes: u64,
}

/// Writes a recording: the header at once, then records in blocks.
///
/// Each block is followed by a `flush()` of the inner writer, so a
/// `BufWriter` holds nothing between blocks and a killed process leaves a
/// file that ends at a block boundary, or in a partial block that readers
/// detect. Surviving a power loss needs the data on disk: call
/// [`RecordWriter::sync_data`] (for a `File` or `BufWriter<File>`) as often as
/// that matters. Records still in the current block are lost if the writer is
/// dropped without [`RecordWriter::flush_block`] or [`RecordWriter::finish`].
pub struct RecordWriter<W: Write> {
    inner: W,
    compressor: zstd::bulk::Compressor<'static>,
    block_size: usize,
    /// The current block: framed records, reused from block to block.
    block: Vec<u8>,
    block_records: u32,
    /// The frame and compressed bytes of the block being written.
    out: Vec<u8>,
    stats: WriterStats,
    /// A write to `inner` failed: the file may end in a partial block, and
    /// a block written after it would be unreachable for readers.
    failed: bool,
}

impl<W: Write> RecordWriter<W> {
    /// Writes the header with `header_payload` (at most
    /// [`MAX_HEADER_PAYLOAD`] bytes) and returns a writer with the default
    /// options.
    pub fn create(inner: W, header_payload: &[u8]) -> io::Result<Self> {
        Self::with_options(inner, header_payload, WriterOptions::default())
    }

    pub fn with_options(
        mut inner: W,
        header_payload: &[u8],
        options: WriterOptions,
    ) -> io::Result<Self> {
        if header_payload.len() > MAX_HEADER_PAYLOAD {
            return Err(too_large(
                "header payload",
                header_payload.len(),
                MAX_HEADER_PAYLOAD,
            ));
        }
        let compressor = zstd::bulk::Compressor::new(options.level)?;
        let header = encode_header(header_payload);
        inner.write_all(&header)?;
        inner.flush()?;
        let block_size = options.block_size.clamp(1, MAX_BLOCK_LEN);
        Ok(RecordWriter {
            inner,
            compressor,
            block_size,
            block: Vec::with_capacity(block_size.min(DEFAULT_BLOCK_SIZE)),
            block_records: 0,
            out: Vec::new(),
            stats: WriterStats {
                bytes: header.len() as u64,
                ..WriterStats::default()
            },
            failed: false,
        })
    }

    /// Adds one record (at most [`MAX_RECORD_LEN`] bytes) to the current
    /// block, and writes the block out when it is full.
    pub fn append(&mut self, kind: u8, payload: &[u8]) -> io::Result<()> {
        self.check_usable()?;
        if payload.len() > MAX_RECORD_LEN {
            return Err(too_large("record", payload.len(), MAX_RECORD_LEN));
        }
        let mut len = [0; MAX_VARINT_LEN];
        let len = encode_varint(payload.len(), &mut len);
        let framed = 1 + len.len() + payload.len();
        if self.block.len() + framed > MAX_BLOCK_LEN {
            self.write_block()?;
        }
        self.block.push(kind);
        self.block.extend_from_slice(len);
        self.block.extend_from_slice(payload);
        self.block_records += 1;
        self.stats.records += 1;
        self.stats.record_bytes += framed as u64;
        if self.block.len() >= self.block_size {
            self.write_block()?;
        }
        Ok(())
    }

    /// Writes the current block even if it is small (nothing when it is
    /// empty) and flushes the inner writer.
    pub fn flush_block(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.write_block()?;
        self.inner.flush()
    }

    /// Writes the last block and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_block()?;
        Ok(self.inner)
    }

    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "an earlier write of this recording failed: it ends in a partial block",
            ));
        }
        Ok(())
    }

    fn write_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        // Frame and data in one buffer: one write per block.
        self.out.clear();
        self.out
            .resize(FRAME_LEN + zstd::compress_bound(self.block.len()), 0);
        let compressed_len = self
            .compressor
            .compress_to_buffer(&self.block[..], &mut self.out[FRAME_LEN..])?;
        self.out.truncate(FRAME_LEN + compressed_len);
        let frame = Frame {
            compressed_len: compressed_len as u32,
            uncompressed_len: self.block.len() as u32,
            records: self.block_records,
            data_crc: crc32fast::hash(&self.out[FRAME_LEN..]),
        };
        self.out[..FRAME_LEN].copy_from_slice(&frame.encode());
        self.failed = true;
        self.inner.write_all(&self.out)?;
        self.inner.flush()?;
        self.failed = false;
        self.stats.bytes += (FRAME_LEN + compressed_len) as u64;
        self.stats.blocks += 1;
        self.block.clear();
        self.block_records = 0;
        // A record far larger than the blocks must not keep its memory.
        self.block.shrink_to(2 * self.block_size);
        self.out.shrink_to(2 * self.block_size);
        Ok(())
    }
}

impl RecordWriter<File> {
    /// Writes the current block and waits until the file's data is on disk.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.flush_block()?;
        self.inner.sync_data()
    }
}

impl RecordWriter<BufWriter<File>> {
    /// Writes the current block and waits until the file's data is on disk.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.flush_block()?;
        self.inner.get_ref().sync_data()
    }
}

/// Why a recording cannot be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("not a tracer recording: the file does not start with \"GOTRACER\"")]
    NotARecording,
    #[error(
        "this recording has format version {major}.{minor}; this tracer reads version \
         {FORMAT_MAJOR}.x: open it with the tracer that wrote it"
    )]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error(
        "the recording's header is cut short after {len} bytes: the file was not fully \
         written or was truncated"
    )]
    TruncatedHeader { len: u64 },
    #[error("the recording's header is corrupted: {reason}")]
    CorruptedHeader { reason: String },
    #[error("could not read the recording")]
    Io(#[from] io::Error),
}

/// How a recording ended, once [`RecordReader::next_record`] has returned
/// `None`. Offsets are byte offsets in the file; in every case all the
/// records of the blocks before `offset` were delivered, and none after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The file ends at a block boundary.
    Complete,
    /// The file ends inside the block that starts at `offset` (the writer
    /// was killed, or the disk filled up).
    Truncated { offset: u64, reason: String },
    /// The block at `offset` is damaged (checksum or framing): reading stops
    /// there, the blocks after it are not looked for.
    Corrupted { offset: u64, reason: String },
    /// Reading the block at `offset` failed (an I/O error, not the content).
    Unreadable { offset: u64, reason: String },
}

impl End {
    /// A one-line warning for a recording that did not end cleanly, given the
    /// number of complete blocks read before the end; `None` when complete.
    pub fn warning(&self, complete_blocks: u64) -> Option<String> {
        let before = match complete_blocks {
            1 => "the complete block before it".to_string(),
            n => format!("the {n} complete blocks before it"),
        };
        Some(match self {
            End::Complete => return None,
            End::Truncated { offset, .. } => {
                format!(
                    "recording ends early at byte {offset} (truncated block): replaying {before}"
                )
            }
            End::Corrupted { offset, reason } => format!(
                "recording is damaged at byte {offset} ({reason}): replaying {before}, \
                 nothing after it"
            ),
            End::Unreadable { offset, reason } => format!(
                "could not read the recording past byte {offset} ({reason}): replaying {before}"
            ),
        })
    }
}

/// Reads a recording one record at a time, holding one block in memory.
pub struct RecordReader<R: Read> {
    inner: R,
    version: (u16, u16),
    decompressor: zstd::bulk::Decompressor<'static>,
    compressed: Vec<u8>,
    /// The current block, decompressed and checked.
    block: Vec<u8>,
    /// Where the next record of `block` starts, and how many are left.
    pos: usize,
    left: u32,
    /// Bytes consumed from `inner`.
    offset: u64,
    blocks: u64,
    records: u64,
    end: Option<End>,
}

/// Why reading blocks stopped.
enum Stop {
    Truncated(String),
    Corrupted(String),
    Io(io::Error),
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the header; returns the reader and the header
    /// payload.
    pub fn open(mut inner: R) -> Result<(Self, Vec<u8>), OpenError> {
        let mut fixed = [0; HEADER_FIXED_LEN];
        let got = read_full(&mut inner, &mut fixed)?;
        let magic_len = got.min(MAGIC.len());
        if fixed[..magic_len] != MAGIC[..magic_len] {
            return Err(OpenError::NotARecording);
        }
        if got < HEADER_FIXED_LEN {
            return Err(OpenError::TruncatedHeader { len: got as u64 });
        }
        let major = u16_at(&fixed, 8);
        let minor = u16_at(&fixed, 10);
        // Another major may lay out everything after these fields otherwise,
        // the checksum included.
        if major != FORMAT_MAJOR {
            return Err(OpenError::UnsupportedVersion { major, minor });
        }
        let payload_len = u32_at(&fixed, 12) as usize;
        if payload_len > MAX_HEADER_PAYLOAD {
            return Err(OpenError::CorruptedHeader {
                reason: format!(
                    "header payload of {payload_len} bytes, over the {MAX_HEADER_PAYLOAD} limit"
                ),
            });
        }
        // `take` + `read_to_end` grows the buffer with the data actually
        // there, not with what the length claims.
        let mut payload = Vec::new();
        (&mut inner)
            .take(payload_len as u64)
            .read_to_end(&mut payload)?;
        let mut crc = [0; 4];
        let got_crc = if payload.len() == payload_len {
            read_full(&mut inner, &mut crc)?
        } else {
            0
        };
        let len = HEADER_FIXED_LEN + payload.len() + got_crc;
        if got_crc < crc.len() {
            return Err(OpenError::TruncatedHeader { len: len as u64 });
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&fixed);
        hasher.update(&payload);
        if hasher.finalize() != u32::from_le_bytes(crc) {
            return Err(OpenError::CorruptedHeader {
                reason: "checksum mismatch".to_string(),
            });
        }
        let reader = RecordReader {
            inner,
            version: (major, minor),
            decompressor: zstd::bulk::Decompressor::new()?,
            compressed: Vec::new(),
            block: Vec::new(),
            pos: 0,
            left: 0,
            offset: len as u64,
            blocks: 0,
            records: 0,
            end: None,
        };
        Ok((reader, payload))
    }

    /// The next record, `(kind, payload)`; `None` at the end of the
    /// recording, then [`RecordReader::end`] says how it ended.
    pub fn next_record(&mut self) -> Option<(u8, &[u8])> {
        while self.left == 0 {
            if self.end.is_some() {
                return None;
            }
            self.load_block();
        }
        let Some((kind, range)) = parse_record(&self.block, self.pos) else {
            // The block was checked when it was loaded: unreachable, but a
            // bug here must not panic.
            self.left = 0;
            self.end = Some(End::Corrupted {
                offset: self.offset,
                reason: "malformed record".to_string(),
            });
            return None;
        };
        self.pos = range.end;
        self.left -= 1;
        self.records += 1;
        Some((kind, &self.block[range]))
    }

    /// How the recording ended; `None` until [`RecordReader::next_record`]
    /// has returned `None`.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// [`End::warning`] for this reader's end.
    pub fn end_warning(&self) -> Option<String> {
        self.end.as_ref()?.warning(self.blocks)
    }

    /// The file's format version, `(major, minor)`.
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// Blocks read and checked so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Records delivered so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Capacity of the compressed and decompressed block buffers.
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> (usize, usize) {
        (self.compressed.capacity(), self.block.capacity())
    }

    fn load_block(&mut self) {
        let start = self.offset;
        self.end = match self.read_block() {
            Ok(Some(records)) => {
                self.pos = 0;
                self.left = records;
                self.blocks += 1;
                return;
            }
            Ok(None) => Some(End::Complete),
            Err(Stop::Truncated(reason)) => Some(End::Truncated {
                offset: start,
                reason,
            }),
            Err(Stop::Corrupted(reason)) => Some(End::Corrupted {
                offset: start,
                reason,
            }),
            Err(Stop::Io(e)) => Some(End::Unreadable {
                offset: start,
                reason: e.to_string(),
            }),
        };
    }

    /// Reads, checks and decompresses the next block into `self.block`;
    /// returns its record count, `None` at a clean end of file.
    fn read_block(&mut self) -> Result<Option<u32>, Stop> {
        let mut raw = [0; FRAME_LEN];
        let got = read_full(&mut self.inner, &mut raw).map_err(Stop::Io)?;
        self.offset += got as u64;
        if got == 0 {
            return Ok(None);
        }
        if got < FRAME_LEN {
            return Err(Stop::Truncated(format!(
                "block header cut after {got} of {FRAME_LEN} bytes"
            )));
        }
        let frame = Frame::decode(&raw).map_err(Stop::Corrupted)?;
        let compressed_len = frame.compressed_len as usize;
        self.compressed.clear();
        let got = (&mut self.inner)
            .take(compressed_len as u64)
            .read_to_end(&mut self.compressed)
            .map_err(Stop::Io)?;
        self.offset += got as u64;
        if got < compressed_len {
            return Err(Stop::Truncated(format!(
                "block data cut after {got} of {compressed_len} bytes"
            )));
        }
        if crc32fast::hash(&self.compressed) != frame.data_crc {
            return Err(Stop::Corrupted("block checksum mismatch".to_string()));
        }
        let len = frame.uncompressed_len as usize;
        self.block.clear();
        // Decompression writes into the spare capacity and never grows it.
        self.block.reserve_exact(len);
        let n = self
            .decompressor
            .decompress_to_buffer(&self.compressed[..], &mut self.block)
            .map_err(|e| Stop::Corrupted(format!("block does not decompress: {e}")))?;
        if n != len {
            return Err(Stop::Corrupted(format!(
                "block decompresses to {n} bytes, its header says {len}"
            )));
        }
        check_records(&self.block, frame.records).map_err(Stop::Corrupted)?;
        Ok(Some(frame.records))
    }
}

/// The fixed header of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    compressed_len: u32,
    uncompressed_len: u32,
    records: u32,
    /// CRC32 of the compressed bytes.
    data_crc: u32,
}

impl Frame {
    fn encode(&self) -> [u8; FRAME_LEN] {
        let mut out = [0; FRAME_LEN];
        out[0..4].copy_from_slice(&BLOCK_SYNC);
        out[4..8].copy_from_slice(&self.compressed_len.to_le_bytes());
        out[8..12].copy_from_slice(&self.uncompressed_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.records.to_le_bytes());
        out[16..20].copy_from_slice(&self.data_crc.to_le_bytes());
        let crc = crc32fast::hash(&out[..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks the sync word, the frame's checksum and the size limits.
    fn decode(raw: &[u8; FRAME_LEN]) -> Result<Frame, String> {
        if raw[0..4] != BLOCK_SYNC {
            return Err("no block sync word".to_string());
        }
        if crc32fast::hash(&raw[..20]) != u32_at(raw, 20) {
            return Err("block header checksum mismatch".to_string());
        }
        let frame = Frame {
            compressed_len: u32_at(raw, 4),
            uncompressed_len: u32_at(raw, 8),
            records: u32_at(raw, 12),
            data_crc: u32_at(raw, 16),
        };
        if frame.compressed_len as usize > MAX_COMPRESSED_LEN {
            return Err(format!(
                "block of {} compressed bytes, over the {MAX_COMPRESSED_LEN} limit",
                frame.compressed_len
            ));
        }
        if frame.uncompressed_len as usize > MAX_BLOCK_LEN {
            return Err(format!(
                "block of {} bytes, over the {MAX_BLOCK_LEN} limit",
                frame.uncompressed_len
            ));
        }
        // A record takes at least 2 bytes (kind and length).
        if u64::from(frame.records) * 2 > u64::from(frame.uncompressed_len) {
            return Err(format!(
                "{} records cannot fit in {} bytes",
                frame.records, frame.uncompressed_len
            ));
        }
        Ok(frame)
    }
}

fn encode_header(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_FIXED_LEN + payload.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
    out.extend_from_slice(&FORMAT_MINOR.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks that `block` is exactly `count` well-formed records.
fn check_records(block: &[u8], count: u32) -> Result<(), String> {
    let mut pos = 0;
    let mut found: u32 = 0;
    while pos < block.len() {
        let (_, payload) = parse_record(block, pos)
            .ok_or_else(|| format!("record {found} of the block is malformed"))?;
        pos = payload.end;
        found = found.saturating_add(1);
    }
    if found != count {
        return Err(format!(
            "block holds {found} records, its header says {count}"
        ));
    }
    Ok(())
}

/// The record at `pos`: its kind and the range of its payload, if it is
/// well-formed and inside `block`.
fn parse_record(block: &[u8], pos: usize) -> Option<(u8, Range<usize>)> {
    let kind = *block.get(pos)?;
    let (len, used) = decode_varint(block.get(pos + 1..)?)?;
    let start = pos + 1 + used;
    let end = start.checked_add(len)?;
    block.get(start..end)?;
    Some((kind, start..end))
}

/// LEB128 of a record length; `len` is at most [`MAX_RECORD_LEN`].
fn encode_varint(mut len: usize, out: &mut [u8; MAX_VARINT_LEN]) -> &[u8] {
    let mut n = 0;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 || n + 1 == MAX_VARINT_LEN {
            out[n] = byte;
            return &out[..=n];
        }
        out[n] = byte | 0x80;
        n += 1;
    }
}

/// A record length and the bytes it took; `None` when longer than
/// [`MAX_VARINT_LEN`] bytes, over [`MAX_RECORD_LEN`] or cut short.
fn decode_varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0;
    for (i, &byte) in bytes.iter().take(MAX_VARINT_LEN).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value <= MAX_RECORD_LEN).then_some((value, i + 1));
        }
    }
    None
}

/// Reads until `buf` is full or the end of file; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn too_large(what: &str, len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} of {len} bytes, over the {max}-byte limit of recordings"),
    )
}

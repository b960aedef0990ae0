//! The container of `tracer record` files: a versioned file of typed
//! records, framed in checksummed, zstd-compressed blocks
//! (docs/recording-format.md is the byte-level spec).
//!
//! This layer knows nothing of what the records mean. A record is a `kind`
//! byte and an opaque payload; the session layer defines the kinds (events,
//! goroutine-list reads, symbols…) on top of it, and a kind a reader does not
//! know is its caller's business. The header carries one opaque payload too
//! (the session layer's JSON identity of the target).
//!
//! Writing: [`RecordWriter::append`] buffers records into one block, written
//! out compressed once it reaches [`WriterOptions::block_size`];
//! [`RecordWriter::flush_block`] writes it early (the session calls it about
//! every second, so a SIGKILL loses at most that much).
//!
//! Reading: [`RecordReader::open`] checks the header, then
//! [`RecordReader::next_record`] yields records one at a time, one block in
//! memory at a time. A block's records are delivered only once the whole
//! block has been read and checked, so a damaged or cut file yields exactly
//! the records of its intact blocks before the damage, and
//! [`RecordReader::end`] says how the file ended ([`End`]). Nothing in the
//! reader panics or allocates more than the format's size limits on any
//! input.

mod container;
pub mod format;
mod recorder;
mod symbols;
#[cfg(test)]
mod tests;

pub use container::{
    End, OpenError, RecordReader, RecordWriter, WriterOptions, WriterStats, DEFAULT_BLOCK_SIZE,
    FORMAT_MAJOR, FORMAT_MINOR, MAGIC, MAX_BLOCK_LEN, MAX_HEADER_PAYLOAD, MAX_RECORD_LEN,
};
pub use recorder::Recorder;
pub use symbols::{SymbolCache, SymbolStore};

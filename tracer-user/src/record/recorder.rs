//! Writes a session file as the session goes (`tracer record`,
//! `tracer attach --record`).
//!
//! Every call is infallible for the session: the first write error is kept,
//! recording stops there, and the session asks [`Recorder::error`] once per
//! interval to tell the user. Events and stacks are batched into one record
//! per 64 KiB; any other input first closes the batch, so records keep the
//! order in which the model got their inputs. The current container block
//! is written out at every tick, so a killed tracer loses about one
//! interval at most.

use std::{fs::File, io, path::Path};

use crate::model::{SnapshotGoroutine, SnapshotTimer};

use super::{
    format::{
        self, encode_blocked_at, kind, BlockedAt, Encoder, Header, ListCodec, SymbolDelta, Tick,
    },
    RecordWriter, WriterStats,
};

/// Batches of events and stacks are closed at this many bytes.
const BATCH_BYTES: usize = 64 << 10;

pub struct Recorder {
    /// `None` once a write failed.
    writer: Option<RecordWriter<File>>,
    error: Option<io::Error>,
    /// The open batch: its kind (0: none) and encoded entries.
    batch_kind: u8,
    batch: Encoder,
    lists: ListCodec,
    lost_events: u64,
    events: u64,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let file = File::create(path)?;
        let payload = serde_json::to_vec(header).map_err(io::Error::other)?;
        Ok(Recorder {
            writer: Some(RecordWriter::create(file, &payload)?),
            error: None,
            batch_kind: 0,
            batch: Encoder::default(),
            lists: ListCodec::default(),
            lost_events: 0,
            events: 0,
        })
    }

    /// One ring-buffer record, as the probes submitted it.
    pub fn event(&mut self, item: &[u8]) {
        self.events += 1;
        self.batched(kind::EVENTS).bytes(item);
        self.close_full_batch();
    }

    pub fn blocked_at(&mut self, blocked: &BlockedAt) {
        encode_blocked_at(self.batched(kind::BLOCKED_AT), blocked);
        self.close_full_batch();
    }

    /// The attach-time read of the goroutine list, taken at `now_ns`.
    pub fn seed(&mut self, list: &[SnapshotGoroutine], now_ns: u64) {
        let mut out = Encoder::default();
        out.u64(now_ns);
        self.list(kind::SEED, out, list);
    }

    /// A later read of the goroutine list, started at `started_ns`.
    pub fn reconcile(&mut self, list: &[SnapshotGoroutine], started_ns: u64, states: bool) {
        let mut out = Encoder::default();
        out.u64(started_ns);
        out.u64(states.into());
        self.list(kind::RECONCILE, out, list);
    }

    /// A read of the list: its chunks but the last as `LIST_PART`s, then
    /// `kind` with `fields` and the last chunk.
    fn list(&mut self, kind: u8, mut fields: Encoder, list: &[SnapshotGoroutine]) {
        let mut chunks = self.lists.encode(list);
        let last = chunks.pop().unwrap_or_default();
        for chunk in chunks {
            self.append(kind::LIST_PART, &chunk.buf);
        }
        fields.buf.extend_from_slice(&last.buf);
        self.append(kind, &fields.buf);
    }

    pub fn untraced_spawns(&mut self, spawned: u64, found: u64) {
        let mut out = Encoder::default();
        out.u64(spawned);
        out.u64(found);
        self.append(kind::UNTRACED_SPAWNS, &out.buf);
    }

    /// The attach-time read of the timer heaps.
    pub fn timer_seed(&mut self, timers: &[SnapshotTimer], now_ns: u64) {
        self.append(kind::TIMER_SEED, &format::encode_timer_seed(timers, now_ns));
    }

    /// The timer and context probes were attached or detached.
    pub fn timers_traced(&mut self, traced: bool) {
        let mut out = Encoder::default();
        out.u64(traced.into());
        self.append(kind::TIMERS_TRACED, &out.buf);
    }

    /// The probes' cumulative lost-event count; recorded when it changes.
    pub fn lost_events(&mut self, total: u64) {
        if total == self.lost_events {
            return;
        }
        self.lost_events = total;
        let mut out = Encoder::default();
        out.u64(total);
        self.append(kind::LOST_EVENTS, &out.buf);
    }

    /// The end of an interval: the names looked up in it, its readings,
    /// then everything is written out.
    pub fn tick(&mut self, symbols: &SymbolDelta, tick: &Tick) {
        if !symbols.is_empty() {
            self.append_json(kind::SYMBOLS, symbols);
        }
        self.append_json(kind::TICK, tick);
        self.close_batch();
        if let Some(writer) = &mut self.writer {
            if let Err(err) = writer.flush_block() {
                self.fail(err);
            }
        }
    }

    /// Writes what is left and puts the file on disk.
    pub fn finish(mut self) -> io::Result<WriterStats> {
        self.close_batch();
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        let Some(mut writer) = self.writer.take() else {
            return Err(io::Error::other("the recording was already closed"));
        };
        writer.sync_data()?;
        Ok(writer.stats())
    }

    /// The write error that stopped the recording, if any.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// Bytes written and ring-buffer events recorded so far.
    pub fn progress(&self) -> (u64, u64) {
        let bytes = self.writer.as_ref().map_or(0, |w| w.stats().bytes);
        (bytes, self.events)
    }

    /// The batch of `kind`, opened (closing another kind's) if need be.
    fn batched(&mut self, kind: u8) -> &mut Encoder {
        if self.batch_kind != kind {
            self.close_batch();
            self.batch_kind = kind;
        }
        &mut self.batch
    }

    fn close_full_batch(&mut self) {
        if self.batch.buf.len() >= BATCH_BYTES {
            self.close_batch();
        }
    }

    fn close_batch(&mut self) {
        if self.batch_kind == 0 {
            return;
        }
        let kind = std::mem::take(&mut self.batch_kind);
        let batch = std::mem::take(&mut self.batch.buf);
        self.write(kind, &batch);
        // The buffer is reused: no allocation per batch.
        self.batch.buf = batch;
        self.batch.buf.clear();
    }

    fn append(&mut self, kind: u8, payload: &[u8]) {
        self.close_batch();
        self.write(kind, payload);
    }

    fn append_json<T: serde::Serialize>(&mut self, kind: u8, value: &T) {
        match serde_json::to_vec(value) {
            Ok(payload) => self.append(kind, &payload),
            Err(err) => self.fail(io::Error::other(err)),
        }
    }

    fn write(&mut self, kind: u8, payload: &[u8]) {
        if let Some(writer) = &mut self.writer {
            if let Err(err) = writer.append(kind, payload) {
                self.fail(err);
            }
        }
    }

    fn fail(&mut self, err: io::Error) {
        self.writer = None;
        self.error.get_or_insert(err);
    }
}

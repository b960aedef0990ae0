//! What the records of a session file mean: their kinds and payloads, on
//! top of the container (docs/recording-format.md, "Record kinds").
//!
//! A recording holds every input the model got, in the order it got them,
//! so that a replay feeding them to the same model code ends in the same
//! state: raw ring-buffer events (decoded at replay like live), the reads of
//! the target's goroutine list, the stacks found for waiting goroutines,
//! counts the session derived from the target's memory, and one `TICK` per
//! interval with the session's readings (clock, probe counters, mode,
//! process usage) at which live judged suspects and drew. `SYMBOLS` records
//! carry the names of every pc the session looked up, written before the
//! tick that needed them, so a recording is read without the binary.
//!
//! Bulky payloads are binary (LEB128 varints); the small, rare ones are
//! JSON. Decoding checks every length and never panics: a payload that does
//! not parse is an error naming the record kind.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    model::{SnapshotGoroutine, SnapshotTimer},
    probes::ProbeCounters,
    report::{ModeReport, SnapshotSummary, SourceLocation},
    suspects::Rules,
    target::ProcessUsage,
};

/// Record kinds (the container's `kind` byte).
pub mod kind {
    /// Ring-buffer events as the probes submitted them: `(len, bytes)*`.
    pub const EVENTS: u8 = 1;
    /// The attach-time read of the goroutine list.
    pub const SEED: u8 = 2;
    /// A later read of the goroutine list.
    pub const RECONCILE: u8 = 3;
    /// Where waiting goroutines are blocked: `(goid, since, stack, channels)*`.
    pub const BLOCKED_AT: u8 = 4;
    /// Spawns counted from the goid generator while spawn probes were out.
    pub const UNTRACED_SPAWNS: u8 = 5;
    /// The probes' cumulative count of events lost in the kernel.
    pub const LOST_EVENTS: u8 = 6;
    /// Names of pcs (JSON [`SymbolDelta`]).
    pub const SYMBOLS: u8 = 7;
    /// An interval's readings (JSON [`Tick`]); the last one has `ended`.
    pub const TICK: u8 = 8;
    /// A chunk of a read of the goroutine list, before its `SEED` or
    /// `RECONCILE` record.
    pub const LIST_PART: u8 = 9;
    /// The attach-time read of the timer heaps: `now, (timer, when,
    /// period, func, callback, word, is_chan)*`.
    pub const TIMER_SEED: u8 = 10;
    /// The timer and context probes were attached (1) or detached (0).
    pub const TIMERS_TRACED: u8 = 11;

    pub fn name(kind: u8) -> &'static str {
        match kind {
            EVENTS => "EVENTS",
            SEED => "SEED",
            RECONCILE => "RECONCILE",
            BLOCKED_AT => "BLOCKED_AT",
            UNTRACED_SPAWNS => "UNTRACED_SPAWNS",
            LOST_EVENTS => "LOST_EVENTS",
            SYMBOLS => "SYMBOLS",
            TICK => "TICK",
            LIST_PART => "LIST_PART",
            TIMER_SEED => "TIMER_SEED",
            TIMERS_TRACED => "TIMERS_TRACED",
            _ => "unknown",
        }
    }
}

/// `Header::format`: what the container's header payload is.
pub const SESSION_FORMAT: &str = "tracer-session";
/// Version of the record kinds and payloads above.
pub const SESSION_VERSION: u32 = 1;

/// The container's header payload (JSON): who was traced, and how.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub session_version: u32,
    /// Version of the tracer that recorded.
    pub tracer_version: String,
    pub pid: u32,
    /// The target's executable, as shown.
    pub binary: String,
    /// The executable's Go build ID (`go tool buildid`), when it has one.
    pub build_id: Option<String>,
    pub go_version: String,
    /// When the target process started, Unix nanoseconds.
    pub target_started_unix_ns: Option<i64>,
    /// When the probes were attached: CLOCK_MONOTONIC (the events' clock)
    /// and Unix nanoseconds.
    pub attached_at_ns: u64,
    pub attached_at_unix_ns: i64,
    /// The session's settings that shape its documents.
    pub interval_ns: u64,
    pub rules: Rules,
    pub max_goroutines: Option<usize>,
    pub max_tracked: usize,
    /// The tracer's command line.
    pub command: Vec<String>,
}

/// One interval's readings (JSON): what the live session had in hand when
/// it judged suspects and drew.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tick {
    pub now_ns: u64,
    pub probes: ProbeCounters,
    pub mode: ModeReport,
    pub process: ProcessUsage,
    pub snapshot: Option<SnapshotSummary>,
    /// Creator stacks (`--creation-stacks`) first resolved in this interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creation_stacks: Vec<(u32, Vec<u64>)>,
    /// Set on the session's last tick: why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// Names of pcs looked up since the previous `SYMBOLS` record (JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SymbolDelta {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_reasons: Vec<(u8, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creation_sites: Vec<(u64, SourceLocation)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<(u64, Option<String>)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<(Vec<u64>, Vec<SourceLocation>)>,
}

impl SymbolDelta {
    pub fn is_empty(&self) -> bool {
        self.wait_reasons.is_empty()
            && self.creation_sites.is_empty()
            && self.functions.is_empty()
            && self.stacks.is_empty()
    }
}

/// Where a waiting goroutine is blocked, as the model takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedAt {
    pub goid: u64,
    pub parked_since_ns: Option<u64>,
    pub pcs: Arc<[u64]>,
    pub channels: Option<Arc<[u64]>>,
}

/// A decoding failure: which record kind, and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("malformed {} record: {reason}", kind::name(*.kind))]
pub struct PayloadError {
    pub kind: u8,
    pub reason: Cow<'static, str>,
}

impl PayloadError {
    fn new(kind: u8, reason: impl Into<Cow<'static, str>>) -> Self {
        PayloadError {
            kind,
            reason: reason.into(),
        }
    }
}

/// Appends LEB128 varints and byte strings.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// `None` as 0, `Some(v)` as `v + 1` (`u64::MAX` does not occur in
    /// the fields encoded this way: goids, pcs, times).
    pub fn opt(&mut self, v: Option<u64>) {
        self.u64(v.map_or(0, |v| v.wrapping_add(1)));
    }

    /// A signed difference, zigzag-encoded.
    pub fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn words(&mut self, words: &[u64]) {
        self.u64(words.len() as u64);
        for &w in words {
            self.u64(w);
        }
    }
}

/// Reads what [`Encoder`] wrote; every read is checked.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    kind: u8,
}

impl<'a> Decoder<'a> {
    pub fn new(kind: u8, bytes: &'a [u8]) -> Self {
        Decoder { bytes, kind }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn err(&self, reason: &'static str) -> PayloadError {
        PayloadError::new(self.kind, reason)
    }

    pub fn u64(&mut self) -> Result<u64, PayloadError> {
        let mut value: u64 = 0;
        for (i, &byte) in self.bytes.iter().take(10).enumerate() {
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                break;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(self.err("bad or cut varint"))
    }

    pub fn u32(&mut self) -> Result<u32, PayloadError> {
        u32::try_from(self.u64()?).map_err(|_| self.err("value over 32 bits"))
    }

    pub fn u8(&mut self) -> Result<u8, PayloadError> {
        u8::try_from(self.u64()?).map_err(|_| self.err("value over 8 bits"))
    }

    pub fn opt(&mut self) -> Result<Option<u64>, PayloadError> {
        Ok(self.u64()?.checked_sub(1))
    }

    pub fn i64(&mut self) -> Result<i64, PayloadError> {
        let v = self.u64()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    pub fn bool(&mut self) -> Result<bool, PayloadError> {
        match self.u64()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.err("bad boolean")),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], PayloadError> {
        let len = self.u64()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.bytes.len())
            .ok_or_else(|| self.err("length beyond the record"))?;
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    pub fn words(&mut self) -> Result<Vec<u64>, PayloadError> {
        let len = self.u64()?;
        // Each word takes at least one byte: a length beyond the record is
        // refused before allocating.
        if len > self.bytes.len() as u64 {
            return Err(self.err("word count beyond the record"));
        }
        (0..len).map(|_| self.u64()).collect()
    }

    pub fn finish(self) -> Result<(), PayloadError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// A [`kind::TIMER_SEED`] payload.
pub fn encode_timer_seed(timers: &[SnapshotTimer], now_ns: u64) -> Vec<u8> {
    let mut out = Encoder::default();
    out.u64(now_ns);
    for t in timers {
        out.u64(t.timer);
        out.i64(t.when);
        out.i64(t.period);
        out.u64(t.func);
        out.opt(t.callback.map(|c| c.0));
        out.u64(t.callback.map_or(0, |c| c.1));
        out.u64(t.is_chan.into());
    }
    out.buf
}

/// Reads what [`encode_timer_seed`] wrote.
pub fn decode_timer_seed(
    input: &mut Decoder<'_>,
) -> Result<(Vec<SnapshotTimer>, u64), PayloadError> {
    let now_ns = input.u64()?;
    let mut timers = Vec::new();
    while !input.is_empty() {
        let timer = input.u64()?;
        let when = input.i64()?;
        let period = input.i64()?;
        let func = input.u64()?;
        let callback = input.opt()?;
        let word = input.u64()?;
        timers.push(SnapshotTimer {
            timer,
            when,
            period,
            func,
            callback: callback.map(|pc| (pc, word)),
            is_chan: input.bool()?,
        });
    }
    Ok((timers, now_ns))
}

/// A goroutine of a read of the list, without `seen_at_ns` (the read's
/// time, the same for all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ListEntry {
    parent_goid: Option<u64>,
    gopc: Option<u64>,
    start_pc: Option<u64>,
    g_addr: u64,
    status: u32,
    wait_reason: u8,
    waiting_since_ns: Option<u64>,
    tracking_seq: Option<u8>,
}

impl ListEntry {
    fn of(g: &SnapshotGoroutine) -> Self {
        ListEntry {
            parent_goid: g.parent_goid,
            gopc: g.gopc,
            start_pc: g.start_pc,
            g_addr: g.g_addr,
            status: g.status,
            wait_reason: g.wait_reason,
            waiting_since_ns: g.waiting_since_ns,
            tracking_seq: g.tracking_seq,
        }
    }
}

/// Reads of the goroutine list, each encoded against the one before: a
/// goroutine unchanged since the previous read costs a goid delta and one
/// byte. Writer and reader keep the same map (one entry per live
/// goroutine) and update it the same way.
///
/// A read is written in chunks of at most [`LIST_CHUNK_BYTES`]: `LIST_PART`
/// records, then the `SEED` or `RECONCILE` record with the last chunk (a
/// million goroutines seen for the first time take about 30 MB, over the
/// container's record limit).
#[derive(Default)]
pub struct ListCodec {
    previous: HashMap<u64, ListEntry>,
    /// The read being decoded.
    pending: Vec<(u64, ListEntry)>,
}

/// An entry repeats the previous read's entry for its goid.
const SAME: u64 = 0;
/// An entry's fields follow.
const FULL: u64 = 1;
/// Chunks of a read are closed at this many bytes.
pub const LIST_CHUNK_BYTES: usize = 4 << 20;

impl ListCodec {
    /// The chunks of one read, in order (at least one).
    pub fn encode(&mut self, list: &[SnapshotGoroutine]) -> Vec<Encoder> {
        let mut next = HashMap::with_capacity(list.len());
        let mut chunks = Vec::new();
        for part in list.chunks(LIST_CHUNK_ENTRIES) {
            let mut out = Encoder::default();
            out.u64(part.len() as u64);
            let mut goid = 0u64;
            for g in part {
                out.i64(g.goid.wrapping_sub(goid) as i64);
                goid = g.goid;
                let entry = ListEntry::of(g);
                if self.previous.get(&g.goid) == Some(&entry) {
                    out.u64(SAME);
                } else {
                    out.u64(FULL);
                    out.opt(entry.parent_goid);
                    out.opt(entry.gopc);
                    out.opt(entry.start_pc);
                    out.u64(entry.g_addr);
                    out.u64(entry.status.into());
                    out.u64(entry.wait_reason.into());
                    out.opt(entry.waiting_since_ns);
                    out.opt(entry.tracking_seq.map(u64::from));
                }
                next.insert(g.goid, entry);
            }
            chunks.push(out);
        }
        if chunks.is_empty() {
            let mut out = Encoder::default();
            out.u64(0);
            chunks.push(out);
        }
        self.previous = next;
        chunks
    }

    /// Decodes one chunk of the read in progress.
    pub fn decode_chunk(&mut self, input: &mut Decoder<'_>) -> Result<(), PayloadError> {
        let len = input.u64()?;
        // Each entry takes at least two bytes.
        if len > input.bytes.len() as u64 / 2 {
            return Err(input.err("goroutine count beyond the record"));
        }
        self.pending.reserve(len as usize);
        let mut goid = 0u64;
        for _ in 0..len {
            goid = goid.wrapping_add(input.i64()? as u64);
            let entry = match input.u64()? {
                SAME => *self
                    .previous
                    .get(&goid)
                    .ok_or_else(|| input.err("repeats a goroutine the previous read lacks"))?,
                FULL => ListEntry {
                    parent_goid: input.opt()?,
                    gopc: input.opt()?,
                    start_pc: input.opt()?,
                    g_addr: input.u64()?,
                    status: input.u32()?,
                    wait_reason: input.u8()?,
                    waiting_since_ns: input.opt()?,
                    tracking_seq: input
                        .opt()?
                        .map(u8::try_from)
                        .transpose()
                        .map_err(|_| input.err("tracking sequence over 8 bits"))?,
                },
                _ => return Err(input.err("bad goroutine entry tag")),
            };
            self.pending.push((goid, entry));
        }
        Ok(())
    }

    /// The read whose chunks were decoded, every goroutine seen at
    /// `seen_at_ns`; it becomes the base of the next one.
    pub fn finish(&mut self, seen_at_ns: u64) -> Vec<SnapshotGoroutine> {
        let pending = std::mem::take(&mut self.pending);
        self.previous = pending.iter().copied().collect();
        pending
            .into_iter()
            .map(|(goid, entry)| SnapshotGoroutine {
                goid,
                parent_goid: entry.parent_goid,
                gopc: entry.gopc,
                start_pc: entry.start_pc,
                g_addr: entry.g_addr,
                status: entry.status,
                wait_reason: entry.wait_reason,
                waiting_since_ns: entry.waiting_since_ns,
                tracking_seq: entry.tracking_seq,
                seen_at_ns,
            })
            .collect()
    }
}

/// Entries per chunk: a full entry takes at most about 60 bytes.
const LIST_CHUNK_ENTRIES: usize = LIST_CHUNK_BYTES / 64;

pub fn encode_blocked_at(out: &mut Encoder, b: &BlockedAt) {
    out.u64(b.goid);
    out.opt(b.parked_since_ns);
    out.words(&b.pcs);
    match &b.channels {
        None => out.u64(0),
        Some(channels) => {
            out.u64(1);
            out.words(channels);
        }
    }
}

pub fn decode_blocked_at(input: &mut Decoder<'_>) -> Result<BlockedAt, PayloadError> {
    Ok(BlockedAt {
        goid: input.u64()?,
        parked_since_ns: input.opt()?,
        pcs: Arc::from(input.words()?),
        channels: if input.bool()? {
            Some(Arc::from(input.words()?))
        } else {
            None
        },
    })
}

pub fn json<T: for<'de> Deserialize<'de>>(kind: u8, payload: &[u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(payload).map_err(|e| PayloadError::new(kind, e.to_string()))
}

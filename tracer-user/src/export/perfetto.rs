//! Goroutine timelines in the Chrome JSON trace-event format, for
//! ui.perfetto.dev (and chrome://tracing).
//!
//! The format is Google's "Trace Event Format" document
//! (<https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU>),
//! in its "JSON Object Format": `{"traceEvents": [ ... ], "displayTimeUnit":
//! "ns", "otherData": { ... }}` (the "JSON Array Format" is the bare array,
//! which cannot carry `displayTimeUnit`). The fields used, per event:
//!
//! - `ph`, the phase: `M` metadata (`name` `process_name` or `thread_name`,
//!   the name in `args.name`); `B`/`E` a duration event's begin and end on a
//!   thread (they must nest per thread; `E` needs no `name`); `i` an instant
//!   event, with scope `s: "t"` (on its thread's track); `C` a counter, whose
//!   every `args` entry is a numeric series.
//! - `ts`: microseconds, a number that may have a fraction. Written here
//!   relative to the writer's origin, with 3 decimals (nanoseconds).
//! - `pid`, `tid`: always process 1; a goroutine is a thread with `tid` = its
//!   goroutine id. Process-wide events (the process name, counters) use
//!   `tid` 1, the process's main thread for the viewers.
//! - `name`, and `args`: an object of strings shown with the event.
//!
//! `displayTimeUnit` only changes how times are displayed (Perfetto follows
//! the document there since 2022), and stays at the end where older
//! Perfetto versions, which read it as the unit of `ts`, did not look.
//!
//! Perfetto keeps `tid`s as 32-bit numbers: goroutine ids beyond 2³² (four
//! billion goroutines created) would share tracks.

use std::collections::HashMap;
use std::io::{self, Write};

/// Every event's process.
const PID: u64 = 1;
/// The thread of process-wide events.
const PROCESS_TID: u64 = 1;

/// Writes a trace as events come, holding only the open slices (one entry per
/// live goroutine) and one event's bytes. Give it a `BufWriter`: each event is
/// one `write_all`.
///
/// The file is valid JSON only after [`TraceWriter::finish`]; a writer
/// dropped without it leaves a trace that Perfetto refuses as incomplete.
pub struct TraceWriter<W: Write> {
    out: W,
    /// The time that is `ts` 0, in the caller's clock (nanoseconds).
    origin_ns: u64,
    /// Goroutines with an open slice, with the slice's begin time.
    open: HashMap<u64, u64>,
    /// The event being written, reused from event to event.
    event: Vec<u8>,
    /// A write to `out` failed: the trace ends in the middle of an event.
    failed: bool,
}

impl<W: Write> TraceWriter<W> {
    /// Starts the trace with the process's name. Times given to the other
    /// methods are nanoseconds in any clock; `origin_ns` (e.g. the start of
    /// the session) becomes `ts` 0, and earlier times are written as 0.
    pub fn new(mut out: W, process_name: &str, origin_ns: u64) -> io::Result<Self> {
        let mut event = Vec::with_capacity(256);
        event.extend_from_slice(b"{\"traceEvents\":[\n");
        push_metadata(&mut event, "process_name", PROCESS_TID, process_name)?;
        out.write_all(&event)?;
        Ok(TraceWriter {
            out,
            origin_ns,
            open: HashMap::new(),
            event,
            failed: false,
        })
    }

    /// Names the goroutine's track `name` (e.g. `g42 main.worker`) and begins
    /// its slice, named the same, with `args`. A goroutine whose slice is
    /// still open (a goroutine id seen again before its end) has that slice
    /// ended first.
    ///
    /// The track name is written at every start rather than once per id:
    /// Go never reuses goroutine ids, so that is once per goroutine, without
    /// remembering every id ever seen.
    pub fn goroutine_start(
        &mut self,
        goid: u64,
        ts_ns: u64,
        name: &str,
        args: &[(&str, &str)],
    ) -> io::Result<()> {
        self.check_usable()?;
        if let Some(begin_ns) = self.open.remove(&goid) {
            self.end_slice(goid, ts_ns.max(begin_ns))?;
        }
        self.begin_event();
        push_metadata(&mut self.event, "thread_name", goid, name)?;
        self.event.extend_from_slice(b",\n");
        self.push_event_head("B", name, goid, ts_ns)?;
        push_args(&mut self.event, args)?;
        self.event.push(b'}');
        self.write_event()?;
        self.open.insert(goid, ts_ns);
        Ok(())
    }

    /// Ends the goroutine's slice, if it has an open one (a goroutine that
    /// was running before the trace began has none). The end is never written
    /// before the begin.
    pub fn goroutine_end(&mut self, goid: u64, ts_ns: u64) -> io::Result<()> {
        self.check_usable()?;
        match self.open.remove(&goid) {
            Some(begin_ns) => self.end_slice(goid, ts_ns.max(begin_ns)),
            None => Ok(()),
        }
    }

    /// A point event on the goroutine's track.
    pub fn instant(
        &mut self,
        goid: u64,
        ts_ns: u64,
        name: &str,
        args: &[(&str, &str)],
    ) -> io::Result<()> {
        self.check_usable()?;
        self.begin_event();
        self.push_event_head("i", name, goid, ts_ns)?;
        self.event.extend_from_slice(b",\"s\":\"t\"");
        push_args(&mut self.event, args)?;
        self.event.push(b'}');
        self.write_event()
    }

    /// A sample of the process-wide counter `name`. Its one series is named
    /// `value`: Perfetto names the track `"{name} {series}"`.
    pub fn counter(&mut self, ts_ns: u64, name: &str, value: f64) -> io::Result<()> {
        self.check_usable()?;
        if !value.is_finite() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("counter {name:?}: {value} cannot be written, JSON numbers are finite"),
            ));
        }
        self.begin_event();
        self.push_event_head("C", name, PROCESS_TID, ts_ns)?;
        self.event.extend_from_slice(b",\"args\":{\"value\":");
        serde_json::to_writer(&mut self.event, &value)?;
        self.event.extend_from_slice(b"}}");
        self.write_event()
    }

    /// Ends every open slice at `end_ns` (by goroutine id, for the same
    /// output from the same events), closes the JSON and flushes.
    pub fn finish(mut self, end_ns: u64) -> io::Result<W> {
        self.check_usable()?;
        let mut open: Vec<(u64, u64)> = self.open.drain().collect();
        open.sort_unstable();
        for (goid, begin_ns) in open {
            self.end_slice(goid, end_ns.max(begin_ns))?;
        }
        self.event.clear();
        self.event
            .extend_from_slice(b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"origin_ns\":");
        writeln!(self.event, "{}}}}}", self.origin_ns)?;
        self.out.write_all(&self.event)?;
        self.out.flush()?;
        Ok(self.out)
    }

    #[cfg(test)]
    pub(super) fn open_slices(&self) -> usize {
        self.open.len()
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "an earlier write of this trace failed: it ends in the middle of an event",
            ));
        }
        Ok(())
    }

    fn end_slice(&mut self, goid: u64, ts_ns: u64) -> io::Result<()> {
        self.begin_event();
        self.event.extend_from_slice(b"{\"ph\":\"E\"");
        self.push_ids_and_ts(goid, ts_ns)?;
        self.event.push(b'}');
        self.write_event()
    }

    /// Every event follows the process name, so each starts with a comma.
    fn begin_event(&mut self) {
        self.event.clear();
        self.event.extend_from_slice(b",\n");
    }

    /// `{"ph":..,"name":..,"pid":..,"tid":..,"ts":..` (the object left open).
    fn push_event_head(&mut self, ph: &str, name: &str, tid: u64, ts_ns: u64) -> io::Result<()> {
        self.event.extend_from_slice(b"{\"ph\":\"");
        self.event.extend_from_slice(ph.as_bytes());
        self.event.extend_from_slice(b"\",\"name\":");
        push_json_string(&mut self.event, name)?;
        self.push_ids_and_ts(tid, ts_ns)
    }

    fn push_ids_and_ts(&mut self, tid: u64, ts_ns: u64) -> io::Result<()> {
        let rel = ts_ns.saturating_sub(self.origin_ns);
        write!(
            self.event,
            ",\"pid\":{PID},\"tid\":{tid},\"ts\":{}.{:03}",
            rel / 1000,
            rel % 1000
        )
    }

    fn write_event(&mut self) -> io::Result<()> {
        let result = self.out.write_all(&self.event);
        self.failed = result.is_err();
        result
    }
}

/// A complete `M` event naming the process or a thread (`ts` 0: metadata
/// events have no time).
fn push_metadata(event: &mut Vec<u8>, kind: &str, tid: u64, name: &str) -> io::Result<()> {
    event.extend_from_slice(b"{\"ph\":\"M\",\"name\":\"");
    event.extend_from_slice(kind.as_bytes());
    event.extend_from_slice(b"\"");
    write!(
        event,
        ",\"pid\":{PID},\"tid\":{tid},\"ts\":0,\"args\":{{\"name\":"
    )?;
    push_json_string(event, name)?;
    event.extend_from_slice(b"}}");
    Ok(())
}

/// `,"args":{..}`, or nothing without args.
fn push_args(event: &mut Vec<u8>, args: &[(&str, &str)]) -> io::Result<()> {
    if args.is_empty() {
        return Ok(());
    }
    event.extend_from_slice(b",\"args\":{");
    for (i, (key, value)) in args.iter().enumerate() {
        if i > 0 {
            event.push(b',');
        }
        push_json_string(event, key)?;
        event.push(b':');
        push_json_string(event, value)?;
    }
    event.push(b'}');
    Ok(())
}

/// `s` as a JSON string. serde_json leaves DEL (0x7f) raw, which JSON allows
/// but Perfetto's tokenizer refuses (it rejects every raw control
/// character): it is escaped too.
fn push_json_string(event: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if !s.contains('\u{7f}') {
        serde_json::to_writer(event, s)?;
        return Ok(());
    }
    let mut escaped = Vec::with_capacity(s.len() + 8);
    serde_json::to_writer(&mut escaped, s)?;
    for byte in escaped {
        // 0x7f is never part of a multi-byte UTF-8 sequence.
        if byte == 0x7f {
            event.extend_from_slice(b"\\u007f");
        } else {
            event.push(byte);
        }
    }
    Ok(())
}

//! Files for tools outside tracer, written from what the model already knows.
//!
//! - [`pprof`]: a goroutine profile (gzip-compressed `perftools.profiles`
//!   protobuf), shaped like the one Go's own `pprof.Lookup("goroutine")`
//!   writes, so `go tool pprof` (and every tool that reads pprof files) opens
//!   it and shows where the goroutines are, with their labels.
//! - [`perfetto`]: a timeline in the Chrome JSON trace-event format, one track
//!   per goroutine, for ui.perfetto.dev (or chrome://tracing). It is written
//!   as a stream, so a session of millions of events needs no more memory
//!   than its live goroutines.
//!
//! Both are pure writers: they know source locations
//! ([`crate::report::SourceLocation`]) and plain values, not the model, so the
//! live session and the replay of a recording feed them the same way.

pub mod perfetto;
pub mod pprof;

#[cfg(test)]
mod tests;

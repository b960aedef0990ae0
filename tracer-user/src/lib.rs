//! `tracer`: follow the goroutines of a running Go process with eBPF uprobes.
//!
//! Layout, from the target to the user:
//! - [`target`]: inspection of the target process and executable (Go version,
//!   symbols, DWARF offsets, probe placement, symbolization);
//! - [`probes`]: loading and attaching the eBPF programs of `tracer-ebpf`;
//! - [`model`]: the pure event model (goroutine table and totals);
//! - [`suspects`]: the leak-suspect engine (pure rules over the model);
//! - [`report`]: JSON and human views of the model;
//! - [`session`]: the live attach loop tying them together;
//! - [`tui`]: the live dashboard of `tracer attach`;
//! - [`inspect`], [`cli`]: the command-line edge.

pub mod cli;
pub mod export;
pub mod inspect;
pub mod model;
pub mod probes;
pub mod record;
pub mod report;
pub mod session;
pub mod suspects;
pub mod target;
pub mod tui;

//! Goroutine profiles in pprof's format: a gzip-compressed
//! `perftools.profiles.Profile` protobuf (github.com/google/pprof,
//! `proto/profile.proto`), encoded here by hand; only a handful of messages
//! are needed.
//!
//! The profile has the shape of Go's own goroutine profile
//! (`runtime/pprof`): one value per sample, `goroutine`/`count`, period 1,
//! and string labels. Frames arrive already symbolized, so every location
//! carries its function, file and line, and the one mapping says so
//! (`has_functions`): `go tool pprof` then shows them as they are and does not
//! look for the binary to symbolize again.

use std::collections::{hash_map::Entry, HashMap};
use std::io::Write;

use flate2::{write::GzEncoder, Compression};

use crate::report::SourceLocation;

/// One stack shared by `count` goroutines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileSample {
    /// Innermost first, inlined frames included (each its own frame).
    pub frames: Vec<SourceLocation>,
    pub count: u64,
    /// String labels, e.g. `("state", "chan receive")`. The order does not
    /// matter: they are written sorted.
    pub labels: Vec<(String, String)>,
}

/// The gzip-compressed goroutine profile of `samples`, collected at
/// `time_unix_ns` (nanoseconds since the Unix epoch) over `duration_ns`.
///
/// Samples with the same frames and labels are merged (counts summed). The
/// output depends only on the input: same samples, same bytes.
///
/// Every frame becomes its own location with one line, inlined frames
/// included: a [`SourceLocation`] list does not say which frames with the same
/// PC are inlined calls and which are recursive calls, and separate
/// locations are right for both in `go tool pprof`'s function views.
pub fn goroutine_profile(
    samples: &[ProfileSample],
    time_unix_ns: i64,
    duration_ns: i64,
) -> Vec<u8> {
    gzip(&encode_profile(samples, time_unix_ns, duration_ns))
}

// Field numbers of profile.proto.
mod field {
    pub const PROFILE_SAMPLE_TYPE: u32 = 1;
    pub const PROFILE_SAMPLE: u32 = 2;
    pub const PROFILE_MAPPING: u32 = 3;
    pub const PROFILE_LOCATION: u32 = 4;
    pub const PROFILE_FUNCTION: u32 = 5;
    pub const PROFILE_STRING_TABLE: u32 = 6;
    pub const PROFILE_TIME_NANOS: u32 = 9;
    pub const PROFILE_DURATION_NANOS: u32 = 10;
    pub const PROFILE_PERIOD_TYPE: u32 = 11;
    pub const PROFILE_PERIOD: u32 = 12;

    pub const VALUE_TYPE_TYPE: u32 = 1;
    pub const VALUE_TYPE_UNIT: u32 = 2;

    pub const SAMPLE_LOCATION_ID: u32 = 1;
    pub const SAMPLE_VALUE: u32 = 2;
    pub const SAMPLE_LABEL: u32 = 3;

    pub const LABEL_KEY: u32 = 1;
    pub const LABEL_STR: u32 = 2;

    pub const MAPPING_ID: u32 = 1;
    pub const MAPPING_MEMORY_START: u32 = 2;
    pub const MAPPING_MEMORY_LIMIT: u32 = 3;
    pub const MAPPING_HAS_FUNCTIONS: u32 = 7;
    pub const MAPPING_HAS_FILENAMES: u32 = 8;
    pub const MAPPING_HAS_LINE_NUMBERS: u32 = 9;

    pub const LOCATION_ID: u32 = 1;
    pub const LOCATION_MAPPING_ID: u32 = 2;
    pub const LOCATION_ADDRESS: u32 = 3;
    pub const LOCATION_LINE: u32 = 4;

    pub const LINE_FUNCTION_ID: u32 = 1;
    pub const LINE_LINE: u32 = 2;

    pub const FUNCTION_ID: u32 = 1;
    pub const FUNCTION_NAME: u32 = 2;
    pub const FUNCTION_SYSTEM_NAME: u32 = 3;
    pub const FUNCTION_FILENAME: u32 = 4;
}

/// The id of the only mapping. Every location points to it, so that its
/// `has_*` flags tell pprof the locations are symbolized already.
const MAPPING_ID: u64 = 1;

/// The uncompressed `Profile` message.
fn encode_profile(samples: &[ProfileSample], time_unix_ns: i64, duration_ns: i64) -> Vec<u8> {
    let mut tables = Tables::default();
    // The string table starts with "" (index 0 means "no string").
    tables.string("");
    let goroutine = tables.string("goroutine");
    let count = tables.string("count");

    let mut merged: Vec<MergedSample> = Vec::new();
    let mut index: HashMap<SampleKey, usize> = HashMap::new();
    for sample in samples {
        let locations: Vec<u64> = sample.frames.iter().map(|f| tables.location(f)).collect();
        let mut labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        labels.sort_unstable();
        let labels: Vec<(i64, i64)> = labels
            .into_iter()
            .map(|(k, v)| (tables.string(k), tables.string(v)))
            .collect();
        let value = i64::try_from(sample.count).unwrap_or(i64::MAX);
        match index.entry((locations, labels)) {
            Entry::Occupied(slot) => {
                let merged = &mut merged[*slot.get()];
                merged.value = merged.value.saturating_add(value);
            }
            Entry::Vacant(slot) => {
                let (locations, labels) = slot.key().clone();
                slot.insert(merged.len());
                merged.push(MergedSample {
                    locations,
                    labels,
                    value,
                });
            }
        }
    }

    let mut profile = Message::default();
    let value_type = value_type(goroutine, count);
    profile.message(field::PROFILE_SAMPLE_TYPE, &value_type);
    for sample in &merged {
        let mut m = Message::default();
        m.packed_uint64(field::SAMPLE_LOCATION_ID, &sample.locations);
        m.packed_uint64(field::SAMPLE_VALUE, &[sample.value as u64]);
        for &(key, str) in &sample.labels {
            let mut label = Message::default();
            label.int64(field::LABEL_KEY, key);
            label.int64(field::LABEL_STR, str);
            m.message(field::SAMPLE_LABEL, &label);
        }
        profile.message(field::PROFILE_SAMPLE, &m);
    }
    profile.message(field::PROFILE_MAPPING, &tables.mapping());
    for (i, location) in tables.locations.iter().enumerate() {
        let mut m = Message::default();
        m.uint64(field::LOCATION_ID, i as u64 + 1);
        m.uint64(field::LOCATION_MAPPING_ID, MAPPING_ID);
        m.uint64(field::LOCATION_ADDRESS, location.address);
        let mut line = Message::default();
        line.uint64(field::LINE_FUNCTION_ID, location.function_id);
        line.int64(field::LINE_LINE, location.line);
        m.message(field::LOCATION_LINE, &line);
        profile.message(field::PROFILE_LOCATION, &m);
    }
    for (i, function) in tables.functions.iter().enumerate() {
        let mut m = Message::default();
        m.uint64(field::FUNCTION_ID, i as u64 + 1);
        m.int64(field::FUNCTION_NAME, function.name);
        // As Go writes it: Go names need no demangling.
        m.int64(field::FUNCTION_SYSTEM_NAME, function.name);
        m.int64(field::FUNCTION_FILENAME, function.file);
        profile.message(field::PROFILE_FUNCTION, &m);
    }
    for s in &tables.strings {
        profile.string(field::PROFILE_STRING_TABLE, s);
    }
    profile.int64(field::PROFILE_TIME_NANOS, time_unix_ns);
    profile.int64(field::PROFILE_DURATION_NANOS, duration_ns);
    profile.message(field::PROFILE_PERIOD_TYPE, &value_type);
    profile.int64(field::PROFILE_PERIOD, 1);
    profile.buf
}

fn value_type(kind: i64, unit: i64) -> Message {
    let mut m = Message::default();
    m.int64(field::VALUE_TYPE_TYPE, kind);
    m.int64(field::VALUE_TYPE_UNIT, unit);
    m
}

/// What makes samples the same: location ids, and (key, value) string
/// indices of the sorted labels.
type SampleKey = (Vec<u64>, Vec<(i64, i64)>);

struct MergedSample {
    locations: Vec<u64>,
    /// (key, value) string indices.
    labels: Vec<(i64, i64)>,
    value: i64,
}

struct Function {
    name: i64,
    file: i64,
}

struct Location {
    address: u64,
    function_id: u64,
    line: i64,
}

/// Interned strings, functions and locations; ids are positions + 1 (0 means
/// "none" in profile.proto), in order of first use, so the output does not
/// depend on hash order.
#[derive(Default)]
struct Tables<'a> {
    strings: Vec<&'a str>,
    string_ids: HashMap<&'a str, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(&'a str, Option<&'a str>), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<FrameKey<'a>, u64>,
    has_filenames: bool,
    has_line_numbers: bool,
}

/// A frame, as `SourceLocation` has no `Hash`.
type FrameKey<'a> = (&'a str, &'a str, Option<&'a str>, Option<u32>);

impl<'a> Tables<'a> {
    fn string(&mut self, s: &'a str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s);
        self.string_ids.insert(s, id);
        id
    }

    fn function(&mut self, name: &'a str, file: Option<&'a str>) -> u64 {
        if let Some(&id) = self.function_ids.get(&(name, file)) {
            return id;
        }
        let function = Function {
            name: self.string(name),
            file: file.map_or(0, |f| self.string(f)),
        };
        self.functions.push(function);
        let id = self.functions.len() as u64;
        self.function_ids.insert((name, file), id);
        id
    }

    fn location(&mut self, frame: &'a SourceLocation) -> u64 {
        let key = (
            frame.pc.as_str(),
            frame.function.as_str(),
            frame.file.as_deref(),
            frame.line,
        );
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let function_id = self.function(&frame.function, frame.file.as_deref());
        self.has_filenames |= frame.file.is_some();
        self.has_line_numbers |= frame.line.is_some();
        self.locations.push(Location {
            address: parse_pc(&frame.pc),
            function_id,
            line: frame.line.map_or(0, i64::from),
        });
        let id = self.locations.len() as u64;
        self.location_ids.insert(key, id);
        id
    }

    /// The one mapping: no file (the profile does not name the binary), the
    /// range of the addresses seen, and "already symbolized".
    fn mapping(&self) -> Message {
        let addresses = self.locations.iter().map(|l| l.address).filter(|&a| a != 0);
        let start = addresses.clone().min().unwrap_or(0);
        let limit = addresses.max().map_or(0, |a| a.saturating_add(1));
        let mut m = Message::default();
        m.uint64(field::MAPPING_ID, MAPPING_ID);
        m.uint64(field::MAPPING_MEMORY_START, start);
        m.uint64(field::MAPPING_MEMORY_LIMIT, limit);
        // pprof symbolizes a mapping only when none of these is set.
        m.bool(field::MAPPING_HAS_FUNCTIONS, true);
        m.bool(field::MAPPING_HAS_FILENAMES, self.has_filenames);
        m.bool(field::MAPPING_HAS_LINE_NUMBERS, self.has_line_numbers);
        m
    }
}

/// `"0x4a1b2c"` → `0x4a1b2c`; 0 (unknown address) when it is not hex.
fn parse_pc(pc: &str) -> u64 {
    let digits = pc
        .strip_prefix("0x")
        .or_else(|| pc.strip_prefix("0X"))
        .unwrap_or(pc);
    u64::from_str_radix(digits, 16).unwrap_or(0)
}

/// A protobuf message being encoded. Scalars equal to their default are left
/// out, as proto3 encoders do.
#[derive(Default)]
struct Message {
    buf: Vec<u8>,
}

/// Wire types.
const VARINT: u8 = 0;
const LEN: u8 = 2;

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn uint64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, VARINT);
            self.varint(v);
        }
    }

    /// Negative values take ten bytes (two's complement), as for any int64.
    fn int64(&mut self, field: u32, v: i64) {
        self.uint64(field, v as u64);
    }

    fn bool(&mut self, field: u32, v: bool) {
        self.uint64(field, u64::from(v));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.tag(field, LEN);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// Always written, even when empty: string table entries are positional.
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn message(&mut self, field: u32, m: &Message) {
        self.bytes(field, &m.buf);
    }

    fn packed_uint64(&mut self, field: u32, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let mut packed = Message::default();
        for &v in values {
            packed.varint(v);
        }
        self.bytes(field, &packed.buf);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // The gzip header has no file name and mtime 0: same input, same bytes.
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        Compression::default(),
    );
    // flate2 fails only when its inner writer fails, and a Vec never does.
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .expect("gzip into memory cannot fail")
}

//! Opens arbitrary bytes as a recording and drains every record: the reader
//! must never panic, never allocate beyond the format's limits (libFuzzer's
//! `-rss_limit_mb`/`-malloc_limit_mb` catch that) and always say how the
//! file ended.
//!
//! `AYA_BUILD_SKIP=1 cargo +nightly fuzz run recording_reader`
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::record::RecordReader;

fuzz_target!(|data: &[u8]| {
    let Ok((mut reader, _header)) = RecordReader::open(data) else {
        return;
    };
    let mut records = 0;
    while let Some((_kind, payload)) = reader.next_record() {
        std::hint::black_box(payload);
        records += 1;
    }
    assert_eq!(reader.records(), records);
    assert!(reader.end().is_some());
    assert!(reader.offset() <= data.len() as u64);
    std::hint::black_box(reader.end_warning());
});

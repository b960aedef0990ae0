//! A small, bounds-checked zlib (RFC 1950) / DEFLATE (RFC 1951) decoder.
//!
//! Go's linker compresses the DWARF sections of every executable it writes
//! (`SHF_COMPRESSED` with `ELFCOMPRESS_ZLIB`, or `.zdebug_*` sections in old
//! releases). The `object` crate can only decompress them with its optional
//! `compression` feature, so this module does it instead. It never panics on
//! malformed input: every read is checked and every failure is an [`InflateError`].
//! The output is capped at the size announced by the ELF compression header, so a
//! corrupt or hostile section cannot make us allocate without bound.

use std::fmt;

/// Why a compressed stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InflateError(&'static str);

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InflateError {}

type Result<T> = std::result::Result<T, InflateError>;

/// Decompresses a zlib stream whose decompressed size is known to be `expected_len`
/// (as recorded in the ELF compression header). Checks the Adler-32 trailer.
pub(crate) fn zlib_decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>> {
    let (&cmf, rest) = input.split_first().ok_or(InflateError("empty zlib stream"))?;
    let (&flg, body) = rest.split_first().ok_or(InflateError("truncated zlib header"))?;
    if cmf & 0x0f != 8 {
        return Err(InflateError("zlib stream does not use DEFLATE"));
    }
    if (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
        return Err(InflateError("bad zlib header checksum"));
    }
    if flg & 0x20 != 0 {
        return Err(InflateError("zlib preset dictionaries are not supported"));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(expected_len)
        .map_err(|_| InflateError("cannot allocate the decompressed section"))?;
    let consumed = inflate_into(body, &mut out, expected_len)?;
    if out.len() != expected_len {
        return Err(InflateError("decompressed size differs from the recorded size"));
    }
    let trailer = body
        .get(consumed..consumed.saturating_add(4))
        .ok_or(InflateError("missing zlib checksum"))?;
    let expected = u32::from_be_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if adler32(&out) != expected {
        return Err(InflateError("zlib checksum mismatch"));
    }
    Ok(out)
}

/// Adler-32 as used by zlib.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the largest block for which `b` cannot overflow before the modulo.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Decodes a raw DEFLATE stream into `out` (at most `limit` bytes in total).
/// Returns how many input bytes the stream used.
fn inflate_into(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize> {
    let mut bits = BitReader::new(input);
    let fixed = FixedCodes::new()?;
    loop {
        let last = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => stored_block(&mut bits, out, limit)?,
            1 => codes_block(&mut bits, out, limit, &fixed.lit, &fixed.dist)?,
            2 => {
                let (lit, dist) = dynamic_codes(&mut bits)?;
                codes_block(&mut bits, out, limit, &lit, &dist)?;
            }
            _ => return Err(InflateError("invalid DEFLATE block type")),
        }
        if last {
            return Ok(bits.consumed_bytes());
        }
    }
}

/// LSB-first bit reader over a byte slice.
struct BitReader<'a> {
    input: &'a [u8],
    pos: usize,
    buf: u64,
    count: u32,
}

impl<'a> BitReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        BitReader { input, pos: 0, buf: 0, count: 0 }
    }

    fn refill(&mut self) {
        while self.count <= 56 {
            let Some(&byte) = self.input.get(self.pos) else { break };
            self.buf |= u64::from(byte) << self.count;
            self.count += 8;
            self.pos += 1;
        }
    }

    /// Takes `n` (≤ 32) bits.
    fn take(&mut self, n: u32) -> Result<u32> {
        if self.count < n {
            self.refill();
            if self.count < n {
                return Err(InflateError("truncated DEFLATE stream"));
            }
        }
        let value = (self.buf & ((1u64 << n) - 1)) as u32;
        self.buf >>= n;
        self.count -= n;
        Ok(value)
    }

    /// Drops the bits up to the next byte boundary and hands back the whole bytes
    /// still buffered, so that byte-aligned reads continue from `pos`.
    fn align_to_byte(&mut self) {
        let partial = self.count % 8;
        self.buf >>= partial;
        self.count -= partial;
        self.pos -= (self.count / 8) as usize;
        self.buf = 0;
        self.count = 0;
    }

    fn consumed_bytes(&self) -> usize {
        self.pos - (self.count / 8) as usize
    }
}

fn stored_block(bits: &mut BitReader<'_>, out: &mut Vec<u8>, limit: usize) -> Result<()> {
    bits.align_to_byte();
    let header = bits
        .input
        .get(bits.pos..bits.pos.saturating_add(4))
        .ok_or(InflateError("truncated stored block header"))?;
    let len = u16::from_le_bytes([header[0], header[1]]);
    let nlen = u16::from_le_bytes([header[2], header[3]]);
    if len != !nlen {
        return Err(InflateError("corrupt stored block length"));
    }
    let start = bits.pos + 4;
    let data = bits
        .input
        .get(start..start + usize::from(len))
        .ok_or(InflateError("truncated stored block"))?;
    if out.len() + data.len() > limit {
        return Err(InflateError("decompressed data is larger than the recorded size"));
    }
    out.extend_from_slice(data);
    bits.pos = start + usize::from(len);
    Ok(())
}

const MAX_BITS: usize = 15;
/// Codes of at most this many bits are decoded with one table lookup.
const FAST_BITS: u32 = 9;

/// A canonical Huffman code: `counts[len]` codes of each length, and the
/// symbols sorted by code. `fast` maps the next `FAST_BITS` input bits
/// (LSB-first) to `(symbol, length)` for codes short enough.
struct Huffman {
    counts: [u16; MAX_BITS + 1],
    symbols: Vec<u16>,
    fast: Vec<(u16, u8)>,
}

impl Huffman {
    /// Builds the code from per-symbol code lengths (0 = unused). Incomplete
    /// codes are accepted (decoding an unassigned code fails); over-subscribed
    /// ones are rejected.
    fn new(lengths: &[u8]) -> Result<Self> {
        let mut counts = [0u16; MAX_BITS + 1];
        for &len in lengths {
            let slot = counts
                .get_mut(usize::from(len))
                .ok_or(InflateError("invalid Huffman code length"))?;
            *slot += 1;
        }
        counts[0] = 0;
        let mut left: i32 = 1;
        for &count in &counts[1..] {
            left = (left << 1) - i32::from(count);
            if left < 0 {
                return Err(InflateError("over-subscribed Huffman code"));
            }
        }
        let mut offsets = [0u16; MAX_BITS + 2];
        for len in 1..=MAX_BITS {
            offsets[len + 1] = offsets[len] + counts[len];
        }
        let mut symbols = vec![0u16; usize::from(offsets[MAX_BITS + 1])];
        for (symbol, &len) in lengths.iter().enumerate() {
            if len != 0 {
                let slot = &mut offsets[usize::from(len)];
                if let Some(entry) = symbols.get_mut(usize::from(*slot)) {
                    *entry = symbol as u16;
                }
                *slot += 1;
            }
        }
        // Fast table: walk the canonical codes in order.
        let mut fast = vec![(0u16, 0u8); 1 << FAST_BITS];
        let mut code: u32 = 0;
        let mut index = 0usize;
        for len in 1..=MAX_BITS as u32 {
            for _ in 0..counts[len as usize] {
                if len <= FAST_BITS {
                    let reversed = code.reverse_bits() >> (32 - len);
                    let symbol = symbols.get(index).copied().unwrap_or(0);
                    let mut slot = reversed as usize;
                    while slot < fast.len() {
                        fast[slot] = (symbol, len as u8);
                        slot += 1 << len;
                    }
                }
                code += 1;
                index += 1;
            }
            code <<= 1;
        }
        Ok(Huffman { counts, symbols, fast })
    }

    fn decode(&self, bits: &mut BitReader<'_>) -> Result<u16> {
        if bits.count < FAST_BITS {
            bits.refill();
        }
        let (symbol, len) = self.fast[(bits.buf & ((1 << FAST_BITS) - 1)) as usize];
        if len != 0 && u32::from(len) <= bits.count {
            bits.buf >>= len;
            bits.count -= u32::from(len);
            return Ok(symbol);
        }
        // Slow path (long codes, or the end of the input): bit by bit.
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_BITS {
            code |= bits.take(1)? as i32;
            let count = i32::from(self.counts[len]);
            if code - count < first {
                return self
                    .symbols
                    .get((index + (code - first)) as usize)
                    .copied()
                    .ok_or(InflateError("invalid Huffman code"));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(InflateError("invalid Huffman code"))
    }
}

struct FixedCodes {
    lit: Huffman,
    dist: Huffman,
}

impl FixedCodes {
    fn new() -> Result<Self> {
        let mut lengths = [0u8; 288];
        for (symbol, len) in lengths.iter_mut().enumerate() {
            *len = match symbol {
                0..=143 => 8,
                144..=255 => 9,
                256..=279 => 7,
                _ => 8,
            };
        }
        Ok(FixedCodes { lit: Huffman::new(&lengths)?, dist: Huffman::new(&[5u8; 30])? })
    }
}

fn dynamic_codes(bits: &mut BitReader<'_>) -> Result<(Huffman, Huffman)> {
    const ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
    let nlen = bits.take(5)? as usize + 257;
    let ndist = bits.take(5)? as usize + 1;
    let ncode = bits.take(4)? as usize + 4;
    if nlen > 286 || ndist > 30 {
        return Err(InflateError("bad DEFLATE code counts"));
    }
    let mut code_lengths = [0u8; 19];
    for &slot in ORDER.iter().take(ncode) {
        code_lengths[slot] = bits.take(3)? as u8;
    }
    let lencode = Huffman::new(&code_lengths)?;
    let mut lengths = [0u8; 286 + 30];
    let total = nlen + ndist;
    let mut index = 0;
    while index < total {
        let symbol = lencode.decode(bits)?;
        let (value, repeat) = match symbol {
            0..=15 => (symbol as u8, 1),
            16 => {
                let previous = index
                    .checked_sub(1)
                    .and_then(|i| lengths.get(i).copied())
                    .ok_or(InflateError("repeat with no previous length"))?;
                (previous, 3 + bits.take(2)? as usize)
            }
            17 => (0, 3 + bits.take(3)? as usize),
            18 => (0, 11 + bits.take(7)? as usize),
            _ => return Err(InflateError("invalid code length symbol")),
        };
        if index + repeat > total {
            return Err(InflateError("too many code lengths"));
        }
        lengths[index..index + repeat].fill(value);
        index += repeat;
    }
    if lengths[256] == 0 {
        return Err(InflateError("DEFLATE block has no end-of-block code"));
    }
    Ok((Huffman::new(&lengths[..nlen])?, Huffman::new(&lengths[nlen..total])?))
}

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
    131, 163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] =
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

fn codes_block(
    bits: &mut BitReader<'_>,
    out: &mut Vec<u8>,
    limit: usize,
    lit: &Huffman,
    dist: &Huffman,
) -> Result<()> {
    loop {
        let symbol = lit.decode(bits)?;
        if symbol < 256 {
            if out.len() >= limit {
                return Err(InflateError("decompressed data is larger than the recorded size"));
            }
            out.push(symbol as u8);
            continue;
        }
        if symbol == 256 {
            return Ok(());
        }
        let slot = usize::from(symbol - 257);
        let (&base, &extra) = LENGTH_BASE
            .get(slot)
            .zip(LENGTH_EXTRA.get(slot))
            .ok_or(InflateError("invalid length symbol"))?;
        let len = usize::from(base) + bits.take(u32::from(extra))? as usize;
        let slot = usize::from(dist.decode(bits)?);
        let (&base, &extra) = DIST_BASE
            .get(slot)
            .zip(DIST_EXTRA.get(slot))
            .ok_or(InflateError("invalid distance symbol"))?;
        let distance = usize::from(base) + bits.take(u32::from(extra))? as usize;
        if distance > out.len() {
            return Err(InflateError("distance reaches before the start of the output"));
        }
        if out.len() + len > limit {
            return Err(InflateError("decompressed data is larger than the recorded size"));
        }
        let start = out.len() - distance;
        if distance >= len {
            out.extend_from_within(start..start + len);
        } else {
            for i in 0..len {
                let byte = out[start + i];
                out.push(byte);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    // Vectors produced by CPython's zlib (see each comment).

    #[test]
    fn stored_block() {
        // zlib.compress(b"hello, world", 0)
        let data = hex("7801010c00f3ff68656c6c6f2c20776f726c641d540489");
        assert_eq!(zlib_decompress(&data, 12).unwrap(), b"hello, world");
    }

    #[test]
    fn fixed_huffman_block() {
        // zlib.compress(b"hello hello hello hello", 9)
        let data = hex("78dacb48cdc9c957c8402701680308b1");
        assert_eq!(zlib_decompress(&data, 23).unwrap(), b"hello hello hello hello");
    }

    #[test]
    fn dynamic_huffman_block() {
        // zlib.compress(bytes(TEXT), 9), TEXT below
        let text = dynamic_text();
        let data = hex(DYNAMIC_HEX);
        assert_eq!(zlib_decompress(&data, text.len()).unwrap(), text);
    }

    fn dynamic_text() -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..200u32 {
            text.extend_from_slice(format!("goroutine {} [chan receive]:\nmain.worker(0x{:x})\n", i, i * 7919).as_bytes());
        }
        text
    }

    const DYNAMIC_HEX: &str = concat!(
        "78da8d9ab98e24371005fdfd8a312547601e4c92fa154106cfd540d00c30581d9f2f6a0da1df38affda4d351915515d5",
        "5fdf3fdefffcf6fab65fd2cb2ff3b7fef6f2b1e77efd6bfffaf3973ffaebdb4f7fbf7ffcbe3f7e48ffa41fbf7cfd7f58",
        "c8b0ec7d1ee795ccdb5afb71dec87c9e733dce3b992f63ccc7f94ce65befe3713ec8fc68ad3fce1732bf6a6d8ff395cc",
        "9f52eae37c63bfbf441400c6f08ae51c708232ceee194e30ca52cc1c4e30ced2540d4e30d23244144e30d6b252123811",
        "4f5cdda803e3ad692d10421871d539410961ccd5c700299431d7e81db450c65c6b6b208632e6da6b05359431d7590ac8",
        "a18cb9ee08d04319734b39831fca989bba831fca989b9b811fca985ba8821fca985b15013f8c31b79e12f8618cb98d7d",
        "c00f7b669b831fc698db9913fc30c6dc650cbc6530e66ebd831fc6987b6e0dfc30c6dc4bade08731e6de4a013f8c31f7",
        "11017e3863ee2b67f0c319733feee08733e659ccc00fa7f77053053f9c31cf5904fc70c63c9794c00f67cc73dd07fc70",
        "c63cf7b5c10faf4f3cbd801fce98e73d06f89119f348bd831f99310f6d0dfcc88c7978adf858c598dfa792027e64c63c",
        "6a04f89119f3e839831f99318fe90e7e64c63cb619f89119f39254c18fcc981715013f82312f9e12f8118c79c9fb801f",
        "c19897b236f8118c796973811ff1ccd33af8118c7959bd831fc19897d31af8118c79955ac18f60ccab95027e04635e73",
        "04f85118f35a72c6570fc6bc3677f0a330e67598811f8531af4b15fc288c793df79d054ed077344909fc288c79d37dc0",
        "8fc298375f1bfc288c798bb9c08fc298b73a26f851d3136fa7e04765ccdb6c0dfca88c79dbb5821f9531efe9ee0638c1",
        "98778d003f2a63de3d67f0a332e63ddcc18fca98f76a862fe78c79efaae04765ccfb14013f1a63de774ae04763ccfbd9",
        "07fc688cf990b5c18fc6980f9b0bfc688cf9c863821f8d311fa50ff0a33d5363c08fc6988f512bf8d118f3b14a013f1a",
        "633e4ec4c226c3a04fc979e211467d9afbc0230cfbcc661d8f30eeb3a8363cc2c0cf2652f108233f474a9f2a16433fe7",
        "3e98b112633ff7dad8b11283bfd25c18b212a3bf744c2c5934c92def0353166d722b5ac79645a3dc7f29126316ad72ab",
        "9782358b66b935233067d12e77a964f48586b99ddcd1175ae6b69aa12f34cd6d57455f689bdb7167b09532fabba684be",
        "d03ab7db3ee80bcd737bac8dbed03eb7d75c9fba2fa3bfcf98e80b2d7447fa405f68a23bd63afa421bddc9b5a12ffa4c",
        "8a475f68a53b2d027da199ee8c9cd117dae9ce72475f68a83bc70c7da1a5eede81545118daeaeefd44048da1b5eede1d",
        "52426568afbbb7877dd0195aeceeb25f1ba5a1cd4e529f0bada1d54ed21c13b5a1dd4ed2ee03bda1e5eede565afff4c9",
        "847e97b9577d437368bdbb2bbf545487f6bbef5fa5d01d5af0ee3ace19e5a10def5e6cee680fad7822d30cf5a11d4f64",
        "aba23fb4e4ddc52f82fed096778d4b09fda135efeef17dd01fdaf3ee565e1bfda145efeed8b9d01fdaf4eec61c13fda1",
        "554f74f481fed0ae27ba5a477f68d9133db5a13fb4eddddd5ceaa78f8ef43a308bf2e9b3e353df68d11f5af8ee067447",
        "7f68e3bbdbcc0cfda1954f6ca8a23fb4f389adab1d9ea1d7819d94d01fdafaeea6dd07fda1b5ef6ecdb5d11fdafbee06",
        "9c0bfda1c5ef6eb331d11fdafcee66ea03fda1d54fbcb78efed0ee273e6b437f68f913dfa5a23fb4fddd0d1805fda1f5",
        "ef6eb31ce80fed7fdfffb1f0e9c33dbd0e7298a13fb401de8da18afed00a28b98ba03fb4034a9e29a13f95ff6b63dda7",
        "713c43af837cd6467f680dbc9b692ef487f6c0bb65c6447f6811bc1ba30ff48736c16b7febe80fad82d7e4dad01fda05",
        "2546a9e80f2d83122b0afa43dba0c4c981fed03a78378667f4a73df5ff1df48716c26bb22afa431be1b5f23e5ae1197a",
        "1d949612fa433ba194be0ffa434ba1dcc79d8dfed0562865cf85fed05a78ed1ff3faf32fb08a500f",
    );

    #[test]
    fn wrong_size_and_checksum_are_errors() {
        let data = hex("78dacb48cdc9c957c8402701680308b1");
        assert!(zlib_decompress(&data, 22).is_err());
        assert!(zlib_decompress(&data, 24).is_err());
        let mut bad = data.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(zlib_decompress(&bad, 23), Err(InflateError("zlib checksum mismatch")));
    }

    #[test]
    fn corrupt_streams_never_panic() {
        let good = hex(DYNAMIC_HEX);
        let len = dynamic_text().len();
        for cut in 0..good.len() {
            assert!(zlib_decompress(&good[..cut], len).is_err());
        }
        let mut state = 0x9e3779b97f4a7c15u64;
        for _ in 0..2000 {
            let mut data = good.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % data.len();
                data[at] ^= 1 << (state >> 60 & 7);
            }
            let _ = zlib_decompress(&data, len);
        }
        // Pure garbage, including after a valid header.
        let mut garbage = vec![0x78, 0x9c];
        garbage.extend((0..500u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        let _ = zlib_decompress(&garbage, 10_000);
    }

    #[test]
    fn adler32_known_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }
}

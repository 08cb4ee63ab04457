//! Gorilla-style compressed blocks of readings: delta-of-delta timestamps, XOR-compressed
//! floats, and quality flags (one bit when unchanged).
//!
//! A block carries, in its header, the encoder's state after the last point, so appending does
//! not decode the block: [`Block::push`] continues the bit stream.
//!
//! Layout: header of [`HEADER_LEN`] bytes (version, count, payload bit length, last timestamp,
//! last delta, last value bits, last XOR window, last flags; big-endian), then the bit stream.
//! Per point after the first: timestamp delta-of-delta, zig-zag encoded, as `0` (zero),
//! `10`+7 bits, `110`+9, `1110`+12, `11110`+32 or `11111`+64; value XOR with the previous one as
//! `0` (same), `10`+bits within the previous window, or `11`+6 bits leading zeros+6 bits
//! (length-1)+bits; flags as `0` (same) or `1`+16 bits. The first point is stored raw
//! (64+64+16 bits). Arithmetic on timestamps wraps, so every `i64` round-trips.

use crate::quality::QualityFlags;

/// One stored reading: timestamp (ms), value (in the sensor's unit), quality flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The value.
    pub value: f64,
    /// Quality flags.
    pub flags: QualityFlags,
}

impl Point {
    /// A point without flags.
    pub fn new(timestamp: i64, value: f64) -> Self {
        Self {
            timestamp,
            value,
            flags: QualityFlags::empty(),
        }
    }

    /// Bit-exact equality (NaN payloads and signed zeros included).
    pub fn same_bits(&self, other: &Point) -> bool {
        self.timestamp == other.timestamp
            && self.value.to_bits() == other.value.to_bits()
            && self.flags == other.flags
    }
}

const VERSION: u8 = 1;
/// Size of a block's header in bytes.
pub const HEADER_LEN: usize = 37;
/// Marks "no XOR window yet".
const NO_WINDOW: u8 = 0xff;

/// A block that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Shorter than its header or its declared payload.
    #[error("block truncated: {0}")]
    Truncated(&'static str),
    /// A version this code does not read.
    #[error("unsupported block version {0}")]
    Version(u8),
    /// The bit stream ended before `count` points were read.
    #[error("block bit stream ends after {decoded} of {count} points")]
    ShortStream {
        /// Points decoded.
        decoded: usize,
        /// Points declared.
        count: usize,
    },
}

/// A compressed block of points.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    count: u32,
    bit_len: u64,
    last_ts: i64,
    last_delta: i64,
    last_bits: u64,
    leading: u8,
    trailing: u8,
    last_flags: u16,
    payload: Vec<u8>,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

impl Block {
    /// An empty block.
    pub fn new() -> Self {
        Self {
            leading: NO_WINDOW,
            trailing: NO_WINDOW,
            ..Self::default()
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the block has no point.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    fn write_bits(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            let bit = (value >> i) & 1;
            let byte = (self.bit_len / 8) as usize;
            if byte == self.payload.len() {
                self.payload.push(0);
            }
            if bit == 1 {
                self.payload[byte] |= 0x80 >> (self.bit_len % 8);
            }
            self.bit_len += 1;
        }
    }

    /// Appends a point.
    pub fn push(&mut self, p: Point) {
        let bits = p.value.to_bits();
        let flags = p.flags.bits();
        if self.count == 0 {
            self.write_bits(p.timestamp as u64, 64);
            self.write_bits(bits, 64);
            self.write_bits(u64::from(flags), 16);
            self.last_delta = 0;
        } else {
            let delta = p.timestamp.wrapping_sub(self.last_ts);
            let z = zigzag(delta.wrapping_sub(self.last_delta));
            match z {
                0 => self.write_bits(0, 1),
                _ if z < 1 << 7 => {
                    self.write_bits(0b10, 2);
                    self.write_bits(z, 7);
                }
                _ if z < 1 << 9 => {
                    self.write_bits(0b110, 3);
                    self.write_bits(z, 9);
                }
                _ if z < 1 << 12 => {
                    self.write_bits(0b1110, 4);
                    self.write_bits(z, 12);
                }
                _ if z < 1 << 32 => {
                    self.write_bits(0b11110, 5);
                    self.write_bits(z, 32);
                }
                _ => {
                    self.write_bits(0b11111, 5);
                    self.write_bits(z, 64);
                }
            }
            self.last_delta = delta;
            self.push_value(bits);
            if flags == self.last_flags {
                self.write_bits(0, 1);
            } else {
                self.write_bits(1, 1);
                self.write_bits(u64::from(flags), 16);
            }
        }
        self.last_ts = p.timestamp;
        self.last_bits = bits;
        self.last_flags = flags;
        self.count += 1;
    }

    fn push_value(&mut self, bits: u64) {
        let x = bits ^ self.last_bits;
        if x == 0 {
            self.write_bits(0, 1);
            return;
        }
        let lead = x.leading_zeros() as u8;
        let trail = x.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && lead >= self.leading && trail >= self.trailing {
            let len = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.write_bits(0b10, 2);
            self.write_bits(x >> self.trailing, len);
        } else {
            let len = 64 - u32::from(lead) - u32::from(trail);
            self.write_bits(0b11, 2);
            self.write_bits(u64::from(lead), 6);
            self.write_bits(u64::from(len - 1), 6);
            self.write_bits(x >> trail, len);
            self.leading = lead;
            self.trailing = trail;
        }
    }

    /// The block as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(VERSION);
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&(self.bit_len as u32).to_be_bytes());
        out.extend_from_slice(&self.last_ts.to_be_bytes());
        out.extend_from_slice(&self.last_delta.to_be_bytes());
        out.extend_from_slice(&self.last_bits.to_be_bytes());
        out.push(self.leading);
        out.push(self.trailing);
        out.extend_from_slice(&self.last_flags.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// A stored block (checks the header; the stream is checked by [`Block::points`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlockError> {
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(BlockError::Truncated("header"))?;
        if header[0] != VERSION {
            return Err(BlockError::Version(header[0]));
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let bit_len = u64::from(u32_at(5));
        let payload = &bytes[HEADER_LEN..];
        if (payload.len() as u64) < bit_len.div_ceil(8) {
            return Err(BlockError::Truncated("payload"));
        }
        Ok(Self {
            count: u32_at(1),
            bit_len,
            last_ts: u64_at(9) as i64,
            last_delta: u64_at(17) as i64,
            last_bits: u64_at(25),
            leading: header[33],
            trailing: header[34],
            last_flags: u16::from_be_bytes([header[35], header[36]]),
            payload: payload[..bit_len.div_ceil(8) as usize].to_vec(),
        })
    }

    /// Decodes every point, in the order they were pushed.
    pub fn points(&self) -> Result<Vec<Point>, BlockError> {
        let count = self.len();
        let mut out = Vec::with_capacity(count);
        let mut r = BitReader {
            bytes: &self.payload,
            pos: 0,
            len: self.bit_len,
        };
        let short = |decoded| BlockError::ShortStream { decoded, count };
        let mut ts = 0i64;
        let mut delta = 0i64;
        let mut bits = 0u64;
        let mut flags = 0u16;
        let (mut lead, mut trail) = (0u32, 0u32);
        for i in 0..count {
            if i == 0 {
                ts = r.read(64).ok_or_else(|| short(i))? as i64;
                bits = r.read(64).ok_or_else(|| short(i))?;
                flags = r.read(16).ok_or_else(|| short(i))? as u16;
            } else {
                let mut ones = 0;
                while ones < 5 && r.read(1).ok_or_else(|| short(i))? == 1 {
                    ones += 1;
                }
                let width = [0, 7, 9, 12, 32, 64][ones];
                let z = if width == 0 {
                    0
                } else {
                    r.read(width).ok_or_else(|| short(i))?
                };
                delta = delta.wrapping_add(unzigzag(z));
                ts = ts.wrapping_add(delta);
                if r.read(1).ok_or_else(|| short(i))? == 1 {
                    if r.read(1).ok_or_else(|| short(i))? == 1 {
                        lead = r.read(6).ok_or_else(|| short(i))? as u32;
                        let len = r.read(6).ok_or_else(|| short(i))? as u32 + 1;
                        trail = 64u32.saturating_sub(lead + len);
                    }
                    let len = 64 - lead - trail;
                    let x = r.read(len).ok_or_else(|| short(i))?;
                    bits ^= x << trail;
                }
                if r.read(1).ok_or_else(|| short(i))? == 1 {
                    flags = r.read(16).ok_or_else(|| short(i))? as u16;
                }
            }
            out.push(Point {
                timestamp: ts,
                value: f64::from_bits(bits),
                flags: QualityFlags::from_bits(flags),
            });
        }
        Ok(out)
    }
}

/// Reads bits most significant first.
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: u64,
    len: u64,
}

impl BitReader<'_> {
    fn read(&mut self, n: u32) -> Option<u64> {
        if self.pos + u64::from(n) > self.len {
            return None;
        }
        let mut v = 0u64;
        for _ in 0..n {
            let byte = self.bytes.get((self.pos / 8) as usize)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn roundtrip(points: &[Point]) -> Block {
        let mut block = Block::new();
        for p in points {
            block.push(*p);
        }
        let decoded = Block::from_bytes(&block.to_bytes()).unwrap();
        assert_eq!(decoded, block);
        let got = decoded.points().unwrap();
        assert_eq!(got.len(), points.len());
        for (a, b) in got.iter().zip(points) {
            assert!(a.same_bits(b), "{a:?} != {b:?}");
        }
        block
    }

    #[test]
    fn regular_series_compresses_well() {
        let points: Vec<Point> = (0..3600)
            .map(|i| {
                Point::new(
                    1_700_000_000_000 + i * 1000,
                    50.0 + ((i / 60) % 3) as f64 * 0.25,
                )
            })
            .collect();
        let block = roundtrip(&points);
        // 16 bytes per raw point; regular timestamps and slowly changing values take ~2 bits.
        assert!(
            block.encoded_len() < 3600 / 2,
            "{} bytes",
            block.encoded_len()
        );
    }

    #[test]
    fn appending_to_a_stored_block_continues_the_stream() {
        let points: Vec<Point> = (0..100)
            .map(|i| Point::new(i * 997, (i as f64).sin()))
            .collect();
        let mut block = Block::new();
        for chunk in points.chunks(7) {
            let mut reopened = Block::from_bytes(&block.to_bytes()).unwrap();
            for p in chunk {
                reopened.push(*p);
            }
            block = reopened;
        }
        let got = block.points().unwrap();
        assert!(got.iter().zip(&points).all(|(a, b)| a.same_bits(b)));
    }

    #[test]
    fn extreme_values_round_trip() {
        roundtrip(&[
            Point::new(i64::MIN, f64::NAN),
            Point::new(i64::MAX, -0.0),
            Point::new(0, f64::INFINITY),
            Point {
                timestamp: -5,
                value: f64::MIN_POSITIVE,
                flags: QualityFlags::SPIKE | QualityFlags::GAP,
            },
            Point::new(-5, f64::MAX),
            Point::new(i64::MIN, 1.0),
        ]);
        roundtrip(&[]);
        roundtrip(&[Point::new(42, 1.5)]);
    }

    #[test]
    fn random_series_round_trip() {
        let mut rng = Rng::new(42);
        for case in 0..300 {
            let n = rng.below(200) as usize;
            let mut ts = rng.next_u64() as i64 >> rng.below(40);
            let mut value = 100.0 * (rng.below(1000) as f64 / 7.0);
            let mut points = Vec::with_capacity(n);
            for _ in 0..n {
                ts = match rng.below(6) {
                    0 => ts.wrapping_add(1000),
                    1 => ts.wrapping_add(rng.below(5000) as i64 - 1000),
                    2 => ts.wrapping_add(rng.next_u64() as i64),
                    _ => ts.wrapping_add(1000 + rng.below(3) as i64),
                };
                value = match rng.below(5) {
                    0 => value,
                    1 => f64::from_bits(rng.next_u64()),
                    2 => value + (rng.below(100) as f64 - 50.0) / 16.0,
                    _ => value * 1.0001,
                };
                let flags = if rng.below(10) == 0 {
                    QualityFlags::from_bits(rng.below(1 << 16) as u16)
                } else {
                    QualityFlags::empty()
                };
                points.push(Point {
                    timestamp: ts,
                    value,
                    flags,
                });
            }
            let block = roundtrip(&points);
            assert_eq!(block.len(), n, "case {case}");
        }
    }

    #[test]
    fn corrupt_blocks_are_errors() {
        let mut block = Block::new();
        for i in 0..10 {
            block.push(Point::new(i * 1000, i as f64));
        }
        let bytes = block.to_bytes();
        assert_eq!(
            Block::from_bytes(&bytes[..10]),
            Err(BlockError::Truncated("header"))
        );
        assert_eq!(
            Block::from_bytes(&bytes[..bytes.len() - 1]),
            Err(BlockError::Truncated("payload"))
        );
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert_eq!(Block::from_bytes(&wrong), Err(BlockError::Version(9)));
        let mut more = bytes;
        more[4] = 200; // declares 200 points
        let b = Block::from_bytes(&more).unwrap();
        assert!(matches!(
            b.points(),
            Err(BlockError::ShortStream { count: 200, .. })
        ));
    }
}

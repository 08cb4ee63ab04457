//! FoundationDB tuple-layer encoding of keys.
//!
//! Encoded tuples sort, byte by byte, like the tuples themselves, so a key prefix is a range.
//! Type codes are FoundationDB's: null `0x00`, bytes `0x01`, string `0x02`, nested tuple `0x05`,
//! integers `0x0c..=0x1c` (`0x14` is zero; `0x14 + n` a positive `n`-byte big-endian integer,
//! `0x14 - n` a negative one stored as its ones' complement), double `0x21` (big-endian IEEE bits,
//! all bits flipped for negatives and only the sign bit for positives), false `0x26`, true `0x27`.
//! Integers here are `i64`.

use std::cmp::Ordering;

/// One element of a tuple.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    /// Null (`0x00`).
    Null,
    /// Byte string (`0x01`).
    Bytes(Vec<u8>),
    /// UTF-8 string (`0x02`).
    String(String),
    /// Nested tuple (`0x05`).
    Tuple(Vec<Element>),
    /// Signed integer (`0x0c..=0x1c`).
    Int(i64),
    /// 64-bit float (`0x21`).
    Float(f64),
    /// Boolean (`0x26` false, `0x27` true).
    Bool(bool),
}

const NULL: u8 = 0x00;
const BYTES: u8 = 0x01;
const STRING: u8 = 0x02;
const NESTED: u8 = 0x05;
const INT_ZERO: u8 = 0x14;
const DOUBLE: u8 = 0x21;
const FALSE: u8 = 0x26;
const TRUE: u8 = 0x27;
const ESCAPE: u8 = 0xff;

/// Errors decoding a tuple.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TupleError {
    /// The input ended inside an element.
    #[error("tuple truncated at byte {0}")]
    Truncated(usize),
    /// A type code we do not decode.
    #[error("unsupported tuple type code 0x{code:02x} at byte {at}")]
    UnsupportedType {
        /// The type code.
        code: u8,
        /// Its position.
        at: usize,
    },
    /// A string element that is not UTF-8.
    #[error("tuple string at byte {0} is not UTF-8")]
    InvalidUtf8(usize),
    /// An integer that does not fit an `i64`.
    #[error("tuple integer at byte {0} does not fit in 64 bits")]
    IntOverflow(usize),
    /// The key does not start with the expected prefix.
    #[error("key is outside the subspace")]
    OutsideSubspace,
    /// An element of an unexpected type.
    #[error("tuple element {index}: expected {expected}")]
    UnexpectedElement {
        /// Position in the tuple.
        index: usize,
        /// What was expected.
        expected: &'static str,
    },
}

impl Element {
    fn type_rank(&self) -> u8 {
        match self {
            Element::Null => NULL,
            Element::Bytes(_) => BYTES,
            Element::String(_) => STRING,
            Element::Tuple(_) => NESTED,
            Element::Int(_) => INT_ZERO,
            Element::Float(_) => DOUBLE,
            Element::Bool(_) => FALSE,
        }
    }

    /// Total order of elements, as FoundationDB orders tuples (and as their encodings sort).
    pub fn cmp_tuple_order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Element::Null, Element::Null) => Ordering::Equal,
            (Element::Bytes(a), Element::Bytes(b)) => a.cmp(b),
            (Element::String(a), Element::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Element::Tuple(a), Element::Tuple(b)) => cmp_tuples(a, b),
            (Element::Int(a), Element::Int(b)) => a.cmp(b),
            (Element::Float(a), Element::Float(b)) => a.total_cmp(b),
            (Element::Bool(a), Element::Bool(b)) => a.cmp(b),
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }
}

/// Compares two tuples element by element (a prefix sorts first).
pub fn cmp_tuples(a: &[Element], b: &[Element]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = x.cmp_tuple_order(y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

impl From<&str> for Element {
    fn from(s: &str) -> Self {
        Element::String(s.to_string())
    }
}

impl From<String> for Element {
    fn from(s: String) -> Self {
        Element::String(s)
    }
}

impl From<i64> for Element {
    fn from(v: i64) -> Self {
        Element::Int(v)
    }
}

impl From<f64> for Element {
    fn from(v: f64) -> Self {
        Element::Float(v)
    }
}

impl From<bool> for Element {
    fn from(v: bool) -> Self {
        Element::Bool(v)
    }
}

impl From<Vec<u8>> for Element {
    fn from(v: Vec<u8>) -> Self {
        Element::Bytes(v)
    }
}

/// Encodes a tuple.
pub fn pack(elements: &[Element]) -> Vec<u8> {
    let mut out = Vec::new();
    pack_into(&mut out, elements);
    out
}

/// Appends the encoding of a tuple to `out`.
pub fn pack_into(out: &mut Vec<u8>, elements: &[Element]) {
    for e in elements {
        encode(out, e, false);
    }
}

fn encode_escaped(out: &mut Vec<u8>, code: u8, bytes: &[u8]) {
    out.push(code);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(ESCAPE);
        }
    }
    out.push(0);
}

fn encode(out: &mut Vec<u8>, e: &Element, nested: bool) {
    match e {
        Element::Null => {
            out.push(NULL);
            if nested {
                out.push(ESCAPE);
            }
        }
        Element::Bytes(b) => encode_escaped(out, BYTES, b),
        Element::String(s) => encode_escaped(out, STRING, s.as_bytes()),
        Element::Tuple(items) => {
            out.push(NESTED);
            for item in items {
                encode(out, item, true);
            }
            out.push(0);
        }
        Element::Int(v) => encode_int(out, *v),
        Element::Float(f) => {
            let bits = f.to_bits();
            let bits = if bits >> 63 == 1 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            out.push(DOUBLE);
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Element::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
    }
}

fn encode_int(out: &mut Vec<u8>, v: i64) {
    if v == 0 {
        out.push(INT_ZERO);
        return;
    }
    let magnitude = v.unsigned_abs();
    let n = 8 - (magnitude.leading_zeros() / 8) as usize;
    let bytes = if v > 0 {
        magnitude.to_be_bytes()
    } else {
        // Ones' complement within n bytes, so that larger magnitudes sort first.
        let mask = if n == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        (mask - magnitude).to_be_bytes()
    };
    let code = if v > 0 {
        INT_ZERO + n as u8
    } else {
        INT_ZERO - n as u8
    };
    out.push(code);
    out.extend_from_slice(&bytes[8 - n..]);
}

/// Decodes a whole tuple.
pub fn unpack(bytes: &[u8]) -> Result<Vec<Element>, TupleError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let (e, next) = decode(bytes, pos, false)?;
        out.push(e);
        pos = next;
    }
    Ok(out)
}

fn decode_escaped(bytes: &[u8], start: usize) -> Result<(Vec<u8>, usize), TupleError> {
    let mut out = Vec::new();
    let mut pos = start;
    loop {
        match bytes.get(pos) {
            None => return Err(TupleError::Truncated(pos)),
            Some(0) if bytes.get(pos + 1) == Some(&ESCAPE) => {
                out.push(0);
                pos += 2;
            }
            Some(0) => return Ok((out, pos + 1)),
            Some(&b) => {
                out.push(b);
                pos += 1;
            }
        }
    }
}

fn decode(bytes: &[u8], pos: usize, nested: bool) -> Result<(Element, usize), TupleError> {
    let code = *bytes.get(pos).ok_or(TupleError::Truncated(pos))?;
    let body = pos + 1;
    match code {
        NULL => {
            let skip = usize::from(nested && bytes.get(body) == Some(&ESCAPE));
            Ok((Element::Null, body + skip))
        }
        BYTES => {
            let (b, next) = decode_escaped(bytes, body)?;
            Ok((Element::Bytes(b), next))
        }
        STRING => {
            let (b, next) = decode_escaped(bytes, body)?;
            let s = String::from_utf8(b).map_err(|_| TupleError::InvalidUtf8(pos))?;
            Ok((Element::String(s), next))
        }
        NESTED => {
            let mut items = Vec::new();
            let mut p = body;
            loop {
                match bytes.get(p) {
                    None => return Err(TupleError::Truncated(p)),
                    Some(0) if bytes.get(p + 1) != Some(&ESCAPE) => {
                        return Ok((Element::Tuple(items), p + 1))
                    }
                    Some(_) => {
                        let (e, next) = decode(bytes, p, true)?;
                        items.push(e);
                        p = next;
                    }
                }
            }
        }
        0x0c..=0x1c => {
            let positive = code >= INT_ZERO;
            let n = usize::from(code.abs_diff(INT_ZERO));
            let raw = bytes
                .get(body..body + n)
                .ok_or(TupleError::Truncated(body))?;
            let mut buf = [0u8; 8];
            buf[8 - n..].copy_from_slice(raw);
            let x = u64::from_be_bytes(buf);
            let value = if positive {
                i64::try_from(x).map_err(|_| TupleError::IntOverflow(pos))?
            } else {
                let mask = if n == 8 {
                    u64::MAX
                } else {
                    (1u64 << (8 * n)) - 1
                };
                let magnitude = mask - x;
                0i64.checked_sub_unsigned(magnitude)
                    .ok_or(TupleError::IntOverflow(pos))?
            };
            Ok((Element::Int(value), body + n))
        }
        DOUBLE => {
            let raw = bytes
                .get(body..body + 8)
                .ok_or(TupleError::Truncated(body))?;
            let mut buf = [0u8; 8];
            buf.copy_from_slice(raw);
            let bits = u64::from_be_bytes(buf);
            let bits = if bits >> 63 == 1 {
                bits ^ (1 << 63)
            } else {
                !bits
            };
            Ok((Element::Float(f64::from_bits(bits)), body + 8))
        }
        FALSE => Ok((Element::Bool(false), body)),
        TRUE => Ok((Element::Bool(true), body)),
        _ => Err(TupleError::UnsupportedType { code, at: pos }),
    }
}

/// The smallest key greater than every key that starts with `prefix` (`None` if there is none,
/// i.e. the prefix is all `0xff`).
pub fn strinc(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last != 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn roundtrip(t: &[Element]) {
        let enc = pack(t);
        let dec = unpack(&enc).unwrap();
        assert_eq!(cmp_tuples(&dec, t), Ordering::Equal, "{t:?} -> {dec:?}");
    }

    #[test]
    fn known_encodings_match_foundationdb() {
        assert_eq!(pack(&[Element::Null]), [0x00]);
        assert_eq!(pack(&["foo\0bar".into()]), b"\x02foo\x00\xffbar\x00");
        assert_eq!(
            pack(&[Element::Bytes(b"\x01\x00".to_vec())]),
            b"\x01\x01\x00\xff\x00"
        );
        assert_eq!(pack(&[0i64.into()]), [0x14]);
        assert_eq!(pack(&[1i64.into()]), [0x15, 0x01]);
        assert_eq!(pack(&[(-1i64).into()]), [0x13, 0xfe]);
        assert_eq!(pack(&[255i64.into()]), [0x15, 0xff]);
        assert_eq!(pack(&[256i64.into()]), [0x16, 0x01, 0x00]);
        assert_eq!(pack(&[(-256i64).into()]), [0x12, 0xfe, 0xff]);
        assert_eq!(
            pack(&[i64::MAX.into()]),
            [0x1c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            pack(&[i64::MIN.into()]),
            [0x0c, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(pack(&[true.into(), false.into()]), [0x27, 0x26]);
        assert_eq!(pack(&[1.0f64.into()]), [0x21, 0xbf, 0xf0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            pack(&[(-1.0f64).into()]),
            [0x21, 0x40, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            pack(&[Element::Tuple(vec![Element::Null, "a".into()])]),
            [0x05, 0x00, 0xff, 0x02, b'a', 0x00, 0x00]
        );
    }

    #[test]
    fn roundtrip_edge_values() {
        for v in [
            0,
            1,
            -1,
            255,
            -255,
            256,
            -256,
            65535,
            -65536,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            roundtrip(&[Element::Int(v)]);
        }
        for f in [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ] {
            roundtrip(&[Element::Float(f)]);
        }
        let nan = unpack(&pack(&[Element::Float(f64::NAN)])).unwrap();
        assert!(matches!(nan[0], Element::Float(x) if x.is_nan()));
        roundtrip(&[Element::Tuple(vec![
            Element::Null,
            Element::Tuple(vec![Element::Null, Element::Bytes(vec![0, 0])]),
            "x".into(),
        ])]);
    }

    #[test]
    fn decode_errors_are_reported() {
        assert_eq!(unpack(&[0x02, b'a']), Err(TupleError::Truncated(2)));
        assert_eq!(unpack(&[0x16, 0x01]), Err(TupleError::Truncated(1)));
        assert!(matches!(
            unpack(&[0x40]),
            Err(TupleError::UnsupportedType { code: 0x40, at: 0 })
        ));
        assert_eq!(unpack(&[0x02, 0xff, 0x00]), Err(TupleError::InvalidUtf8(0)));
        // 2^63 does not fit an i64.
        assert_eq!(
            unpack(&[0x1c, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(TupleError::IntOverflow(0))
        );
    }

    #[test]
    fn strinc_bounds_a_prefix() {
        assert_eq!(strinc(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(strinc(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(strinc(b"\xff\xff"), None);
    }

    fn random_element(rng: &mut Rng, depth: u32) -> Element {
        let interesting_ints = [0, 1, -1, 255, 256, -255, -256, i64::MAX, i64::MIN];
        match rng.below(if depth > 1 { 7 } else { 8 }) {
            0 => Element::Null,
            1 => Element::Bytes(
                (0..rng.below(4))
                    .map(|_| rng.pick(&[0u8, 1, 0xfe, 0xff, 7]))
                    .collect(),
            ),
            2 => Element::String(
                (0..rng.below(4))
                    .map(|_| rng.pick(&['\0', 'a', 'b', 'é', 'z']))
                    .collect(),
            ),
            3 => {
                if rng.below(3) == 0 {
                    Element::Int(rng.pick(&interesting_ints))
                } else {
                    let bits = rng.below(64);
                    let v = (rng.next_u64() >> (63 - bits)) as i64;
                    Element::Int(if rng.below(2) == 0 {
                        v
                    } else {
                        v.wrapping_neg()
                    })
                }
            }
            4 => {
                let random = f64::from_bits(rng.next_u64());
                Element::Float(rng.pick(&[
                    0.0,
                    -0.0,
                    1.0,
                    -1.0,
                    2.5,
                    -1e300,
                    1e-300,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    random,
                ]))
            }
            5 => Element::Bool(rng.below(2) == 0),
            6 => {
                let v = f64::from_bits(rng.next_u64());
                Element::Float(if v.is_nan() { 0.5 } else { v })
            }
            _ => Element::Tuple(
                (0..rng.below(3))
                    .map(|_| random_element(rng, depth + 1))
                    .collect(),
            ),
        }
    }

    #[test]
    fn encoded_bytes_sort_like_tuples() {
        let mut rng = Rng::new(7);
        let tuples: Vec<Vec<Element>> = (0..600)
            .map(|_| {
                (0..rng.below(4))
                    .map(|_| random_element(&mut rng, 0))
                    .collect()
            })
            .collect();
        for t in &tuples {
            roundtrip(t);
        }
        for a in &tuples {
            let ea = pack(a);
            for b in tuples.iter().take(200) {
                let eb = pack(b);
                assert_eq!(ea.cmp(&eb), cmp_tuples(a, b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn integers_sort_numerically() {
        let mut values: Vec<i64> = (-300..300).collect();
        values.extend([
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            -65536,
            65536,
            1 << 40,
            -(1 << 40),
        ]);
        let mut by_bytes = values.clone();
        by_bytes.sort_by_key(|v| pack(&[Element::Int(*v)]));
        values.sort();
        assert_eq!(values, by_bytes);
    }
}

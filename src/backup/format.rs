//! The backup file: a store's key/value pairs as of one read transaction, streamed.
//!
//! Layout (version 1; integers little-endian):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `AQTWBKUP` |
//! | 8 | 2 | format version (`1`) |
//! | 10 | 2 | reserved, zero |
//! | 12 | 8 | creation time, Unix ms (i64) |
//! | 20 | 8 | number of records (u64) |
//! | 28 | 8 | bytes of keys and values of all records together (u64) |
//! | 36 | | records, in strictly increasing key order, each: key length (u32), value length (u32), key, value |
//! | | 4 | end tag `0xFFFF_FFFF` (a key length no record has) |
//! | | 8 | number of records again (u64) |
//! | | 32 | SHA-256 of every byte before it (header, records, end tag, count) |
//!
//! The file ends right after the digest. Keys are at most [`MAX_KEY_LEN`] bytes and values at
//! most [`MAX_VALUE_LEN`], so a corrupted length is caught before it allocates. Both the
//! [`BackupWriter`] and the [`BackupReader`] stream: neither holds more than one record.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};
use twin::store::KeyValue;

/// First bytes of every backup file.
pub const MAGIC: [u8; 8] = *b"AQTWBKUP";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_LEN: u64 = 36;
/// Bytes of the trailer (end tag, count, digest).
pub const TRAILER_LEN: u64 = 4 + 8 + 32;
/// Longest key a record may have.
pub const MAX_KEY_LEN: u32 = 64 * 1024;
/// Longest value a record may have.
pub const MAX_VALUE_LEN: u32 = 256 * 1024 * 1024;
/// The key length that marks the end of the records.
const END_TAG: u32 = u32::MAX;

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// When the snapshot was taken, Unix ms.
    pub created_ms: i64,
    /// Number of records.
    pub records: u64,
    /// Bytes of keys and values of all records.
    pub payload_bytes: u64,
}

impl Header {
    /// The length of the backup file this header starts (saturating: a damaged header's
    /// counts can overflow).
    pub fn file_len(&self) -> u64 {
        // Each record also has its two lengths (8 bytes).
        self.records
            .saturating_mul(8)
            .saturating_add(self.payload_bytes)
            .saturating_add(HEADER_LEN + TRAILER_LEN)
    }
}

/// Why a backup cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Reading or writing failed.
    #[error("I/O error at byte {offset}: {source}")]
    Io {
        /// Where.
        offset: u64,
        /// What the system said.
        source: io::Error,
    },
    /// The data ends early.
    #[error("truncated: the data ends at byte {end}, inside {part} (from byte {start})")]
    Truncated {
        /// Where the incomplete part starts.
        start: u64,
        /// Where the data ends.
        end: u64,
        /// What was being read (`the header`, `record 12's value`, ...).
        part: String,
    },
    /// The data is not what the format says it must be.
    #[error("corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The content does not match its checksum.
    #[error(
        "checksum mismatch: the trailer at byte {offset} says SHA-256 {stored}, the content \
         hashes to {computed} (some byte was changed)"
    )]
    Checksum {
        /// Where the digest is.
        offset: u64,
        /// The digest in the file.
        stored: String,
        /// The digest of the content.
        computed: String,
    },
}

/// A [`Write`] that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    offset: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        self.inner
            .write_all(bytes)
            .map_err(|source| FormatError::Io {
                offset: self.offset,
                source,
            })?;
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

/// Writes a backup: the header, then [`record`](Self::record) for every pair in key order,
/// then [`finish`](Self::finish).
pub struct BackupWriter<W: Write> {
    out: Hashing<W>,
    header: Header,
    records: u64,
}

impl<W: Write> BackupWriter<W> {
    /// Writes `header` to `out`.
    pub fn new(out: W, header: Header) -> Result<Self, FormatError> {
        let mut out = Hashing {
            inner: out,
            hasher: Sha256::new(),
            offset: 0,
        };
        out.put(&MAGIC)?;
        out.put(&VERSION.to_le_bytes())?;
        out.put(&0u16.to_le_bytes())?;
        out.put(&header.created_ms.to_le_bytes())?;
        out.put(&header.records.to_le_bytes())?;
        out.put(&header.payload_bytes.to_le_bytes())?;
        Ok(Self {
            out,
            header,
            records: 0,
        })
    }

    /// Appends one pair; keys must come in strictly increasing order.
    pub fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let too_long = |what: &str, len: usize, max: u32| FormatError::Corrupt {
            offset: self.out.offset,
            reason: format!(
                "record {}: the {what} has {len} bytes, more than the format's {max}",
                self.records
            ),
        };
        let key_len = u32::try_from(key.len())
            .ok()
            .filter(|len| *len <= MAX_KEY_LEN)
            .ok_or_else(|| too_long("key", key.len(), MAX_KEY_LEN))?;
        let value_len = u32::try_from(value.len())
            .ok()
            .filter(|len| *len <= MAX_VALUE_LEN)
            .ok_or_else(|| too_long("value", value.len(), MAX_VALUE_LEN))?;
        self.out.put(&key_len.to_le_bytes())?;
        self.out.put(&value_len.to_le_bytes())?;
        self.out.put(key)?;
        self.out.put(value)?;
        self.records += 1;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.out.offset
    }

    /// Writes the trailer and returns the output; the record count must match the header's.
    pub fn finish(mut self) -> Result<W, FormatError> {
        if self.records != self.header.records {
            return Err(FormatError::Corrupt {
                offset: self.out.offset,
                reason: format!(
                    "{} records written but the header announced {}",
                    self.records, self.header.records
                ),
            });
        }
        self.out.put(&END_TAG.to_le_bytes())?;
        self.out.put(&self.records.to_le_bytes())?;
        let digest = self.out.hasher.clone().finalize();
        let offset = self.out.offset;
        self.out
            .inner
            .write_all(&digest)
            .and_then(|()| self.out.inner.flush())
            .map_err(|source| FormatError::Io { offset, source })?;
        Ok(self.out.inner)
    }
}

/// Reads and checks a backup as it streams: structure, key order, counts, and at the end the
/// checksum. A record is only trustworthy once [`next_record`](Self::next_record) has returned
/// `None` (the checksum matched).
pub struct BackupReader<R: Read> {
    input: R,
    hasher: Sha256,
    offset: u64,
    header: Header,
    records: u64,
    payload_bytes: u64,
    previous_key: Option<Vec<u8>>,
    /// The whole length, when known (a file): lengths are checked against what remains.
    total_len: Option<u64>,
    done: bool,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the header of `input`; `total_len` is the input's length when known.
    pub fn new(input: R, total_len: Option<u64>) -> Result<Self, FormatError> {
        let mut reader = Self {
            input,
            hasher: Sha256::new(),
            offset: 0,
            header: Header {
                created_ms: 0,
                records: 0,
                payload_bytes: 0,
            },
            records: 0,
            payload_bytes: 0,
            previous_key: None,
            total_len,
            done: false,
        };
        let mut bytes = [0u8; HEADER_LEN as usize];
        reader.take(&mut bytes, || "the header".into())?;
        if bytes[..8] != MAGIC {
            return Err(FormatError::Corrupt {
                offset: 0,
                reason: format!(
                    "not an aquatwin backup (the first bytes are {:02x?}, not {:02x?})",
                    &bytes[..8],
                    MAGIC
                ),
            });
        }
        let field = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            word
        };
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(FormatError::Corrupt {
                offset: 8,
                reason: format!("format version {version}; this build reads version {VERSION}"),
            });
        }
        if bytes[10..12] != [0, 0] {
            return Err(FormatError::Corrupt {
                offset: 10,
                reason: "the reserved header field is not zero".into(),
            });
        }
        reader.header = Header {
            created_ms: i64::from_le_bytes(field(12)),
            records: u64::from_le_bytes(field(20)),
            payload_bytes: u64::from_le_bytes(field(28)),
        };
        if let Some(total) = total_len {
            let least = reader.header.file_len();
            if total < least {
                return Err(FormatError::Truncated {
                    start: HEADER_LEN,
                    end: total,
                    part: format!(
                        "the records (the header announces {} records of {} bytes: the file \
                         needs at least {least} bytes, unless the header itself is damaged)",
                        reader.header.records, reader.header.payload_bytes
                    ),
                });
            }
        }
        Ok(reader)
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Records read so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Fills `buf` from the input and hashes it; `part` names what it is, for errors.
    fn take(&mut self, buf: &mut [u8], part: impl FnOnce() -> String) -> Result<(), FormatError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(FormatError::Truncated {
                        start: self.offset,
                        end: self.offset + filled as u64,
                        part: part(),
                    })
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(FormatError::Io {
                        offset: self.offset + filled as u64,
                        source,
                    })
                }
            }
        }
        self.hasher.update(&*buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn take_u32(&mut self, part: impl FnOnce() -> String) -> Result<u32, FormatError> {
        let mut word = [0u8; 4];
        self.take(&mut word, part)?;
        Ok(u32::from_le_bytes(word))
    }

    fn take_u64(&mut self, part: impl FnOnce() -> String) -> Result<u64, FormatError> {
        let mut word = [0u8; 8];
        self.take(&mut word, part)?;
        Ok(u64::from_le_bytes(word))
    }

    fn corrupt(&self, offset: u64, reason: String) -> FormatError {
        FormatError::Corrupt { offset, reason }
    }

    /// The next `(key, value)`, or `None` after the trailer was read and the checksum matched.
    pub fn next_record(&mut self) -> Result<Option<KeyValue>, FormatError> {
        if self.done {
            return Ok(None);
        }
        let index = self.records;
        let start = self.offset;
        let key_len = self.take_u32(|| format!("record {index}'s key length"))?;
        if key_len == END_TAG {
            self.read_trailer(start)?;
            return Ok(None);
        }
        let value_len = self.take_u32(|| format!("record {index}'s value length"))?;
        if key_len > MAX_KEY_LEN || value_len > MAX_VALUE_LEN {
            return Err(self.corrupt(
                start,
                format!(
                    "record {index} claims a {key_len}-byte key and a {value_len}-byte value, \
                     over the format's limits ({MAX_KEY_LEN}, {MAX_VALUE_LEN})"
                ),
            ));
        }
        if index >= self.header.records {
            return Err(self.corrupt(
                start,
                format!(
                    "record {index} found but the header announces only {} records",
                    self.header.records
                ),
            ));
        }
        let length = u64::from(key_len) + u64::from(value_len);
        if let Some(total) = self.total_len {
            let room = total.saturating_sub(self.offset + TRAILER_LEN);
            if length > room {
                return Err(self.corrupt(
                    start,
                    format!(
                        "record {index} claims {length} bytes of key and value but only {room} \
                         remain before the trailer"
                    ),
                ));
            }
        }
        let mut key = vec![0u8; key_len as usize];
        self.take(&mut key, || format!("record {index}'s key"))?;
        let mut value = vec![0u8; value_len as usize];
        self.take(&mut value, || format!("record {index}'s value"))?;
        if self
            .previous_key
            .as_deref()
            .is_some_and(|previous| key.as_slice() <= previous)
        {
            return Err(self.corrupt(
                start,
                format!(
                    "record {index}'s key is not after the previous record's (keys must be in \
                     strictly increasing order)"
                ),
            ));
        }
        self.records += 1;
        self.payload_bytes += length;
        self.previous_key = Some(key.clone());
        Ok(Some((key, value)))
    }

    /// Reads the trailer after the end tag at `start`: counts, digest, nothing after it.
    fn read_trailer(&mut self, start: u64) -> Result<(), FormatError> {
        let count = self.take_u64(|| "the trailer's record count".into())?;
        if count != self.records || count != self.header.records {
            return Err(self.corrupt(
                start,
                format!(
                    "the records end after {} records; the header announces {} and the \
                     trailer {count}",
                    self.records, self.header.records
                ),
            ));
        }
        if self.payload_bytes != self.header.payload_bytes {
            return Err(self.corrupt(
                start,
                format!(
                    "the records hold {} bytes of keys and values; the header announces {}",
                    self.payload_bytes, self.header.payload_bytes
                ),
            ));
        }
        let computed = self.hasher.clone().finalize();
        let digest_at = self.offset;
        let mut stored = [0u8; 32];
        self.take(&mut stored, || "the trailer's SHA-256".into())?;
        if stored[..] != computed[..] {
            return Err(FormatError::Checksum {
                offset: digest_at,
                stored: hex::encode(stored),
                computed: hex::encode(computed),
            });
        }
        let mut extra = [0u8; 1];
        loop {
            match self.input.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(
                        self.corrupt(self.offset, "unexpected data after the trailer".into())
                    )
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(FormatError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
        self.done = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<KeyValue> {
        (0..n)
            .map(|i| {
                (
                    format!("key-{i:05}").into_bytes(),
                    vec![(i % 251) as u8; i % 37],
                )
            })
            .collect()
    }

    fn write(pairs: &[KeyValue]) -> Vec<u8> {
        let header = Header {
            created_ms: 1_700_000_000_000,
            records: pairs.len() as u64,
            payload_bytes: pairs.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
        };
        let mut writer = BackupWriter::new(Vec::new(), header).unwrap();
        for (k, v) in pairs {
            writer.record(k, v).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read_all(bytes: &[u8], known_len: bool) -> Result<Vec<KeyValue>, FormatError> {
        let len = known_len.then_some(bytes.len() as u64);
        let mut reader = BackupReader::new(bytes, len)?;
        let mut out = Vec::new();
        while let Some(pair) = reader.next_record()? {
            out.push(pair);
        }
        Ok(out)
    }

    #[test]
    fn round_trip_streams_every_pair_and_the_header() {
        for n in [0, 1, 500] {
            let input = pairs(n);
            let bytes = write(&input);
            let payload: usize = input.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
            assert_eq!(
                bytes.len() as u64,
                HEADER_LEN + TRAILER_LEN + payload as u64
            );
            assert_eq!(read_all(&bytes, true).unwrap(), input);
            assert_eq!(read_all(&bytes, false).unwrap(), input);
            let reader = BackupReader::new(bytes.as_slice(), None).unwrap();
            assert_eq!(reader.header().records, n as u64);
            assert_eq!(reader.header().created_ms, 1_700_000_000_000);
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = write(&pairs(20));
        for cut in 0..bytes.len() {
            for known in [true, false] {
                let err = read_all(&bytes[..cut], known).unwrap_err();
                assert!(
                    matches!(
                        err,
                        FormatError::Truncated { .. } | FormatError::Corrupt { .. }
                    ),
                    "cut at {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = write(&pairs(20));
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            for known in [true, false] {
                assert!(read_all(&damaged, known).is_err(), "flip at {at} accepted");
            }
        }
        let mut damaged = bytes.clone();
        // Record 0 has an empty value; record 1's one-byte value follows its key.
        let value_byte = HEADER_LEN as usize + (8 + 9) + (8 + 9);
        damaged[value_byte] ^= 1;
        let err = read_all(&damaged, true).unwrap_err();
        assert!(matches!(err, FormatError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn trailing_data_and_disorder_are_refused() {
        let mut bytes = write(&pairs(3));
        bytes.push(0);
        let err = read_all(&bytes, false).unwrap_err();
        assert!(err.to_string().contains("after the trailer"), "{err}");

        let mut reversed = pairs(3);
        reversed.reverse();
        let err = read_all(&write(&reversed), true).unwrap_err();
        assert!(
            err.to_string().contains("record 1's key is not after"),
            "{err}"
        );
    }

    #[test]
    fn the_writer_refuses_a_count_other_than_announced() {
        let header = Header {
            created_ms: 0,
            records: 2,
            payload_bytes: 2,
        };
        let mut writer = BackupWriter::new(Vec::new(), header).unwrap();
        writer.record(b"a", b"").unwrap();
        assert!(writer.finish().is_err());
    }
}

//! The default LoRaWAN payload codec: application bytes (FRMPayload) to readings.
//!
//! **FPort 1, sensor records.** The payload is one or more 5-byte records
//! `[sensor index: u8][value: f32, big-endian IEEE 754]`. The index points into the device's
//! `sensors` list as configured (0 is the first sensor), the value is in the sensor's configured
//! unit, and every reading of the frame gets the frame's receive time (the gateway's `time`
//! when it reports one, else the time the frame reached aquatwin). Example: `00 41 20 00 00`
//! `01 C0 40 00 00` reports 10.0 for the device's first sensor and -3.0 for its second.
//!
//! Any other FPort, a truncated record, an index beyond the device's sensors or a value that
//! is NaN or infinite is an error naming the byte offset; the whole frame is then refused.

use twin::Reading;

use crate::devices::Device;

/// The FPort of sensor records.
pub const SENSOR_RECORDS_PORT: u8 = 1;

/// Bytes per record: index (1) and value (4).
const RECORD_LEN: usize = 5;

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame came on a port the codec does not know.
    #[error("FPort {0} has no codec (sensor records use FPort {SENSOR_RECORDS_PORT})")]
    UnknownPort(u8),
    /// No record at all.
    #[error("empty payload")]
    Empty,
    /// The payload ends inside a record.
    #[error("byte {offset}: truncated record ({left} bytes left, a record has {RECORD_LEN})")]
    Truncated {
        /// Offset of the truncated record.
        offset: usize,
        /// Bytes left from there.
        left: usize,
    },
    /// A sensor index beyond the device's sensors.
    #[error("byte {offset}: sensor index {index}, the device has {count} sensors")]
    UnknownIndex {
        /// Offset of the index byte.
        offset: usize,
        /// The index.
        index: u8,
        /// How many sensors the device has.
        count: usize,
    },
    /// A NaN or infinite value.
    #[error("byte {offset}: value is not finite")]
    NotFinite {
        /// Offset of the value.
        offset: usize,
    },
}

/// Decodes the application payload `bytes` sent by `device` on `port`, received at
/// `timestamp_ms`.
pub fn decode(
    device: &Device,
    port: u8,
    bytes: &[u8],
    timestamp_ms: i64,
) -> Result<Vec<Reading>, CodecError> {
    if port != SENSOR_RECORDS_PORT {
        return Err(CodecError::UnknownPort(port));
    }
    if bytes.is_empty() {
        return Err(CodecError::Empty);
    }
    let mut readings = Vec::with_capacity(bytes.len() / RECORD_LEN);
    for (record_index, record) in bytes.chunks(RECORD_LEN).enumerate() {
        let offset = record_index * RECORD_LEN;
        let [index, v0, v1, v2, v3] = *record else {
            return Err(CodecError::Truncated {
                offset,
                left: record.len(),
            });
        };
        let sensor = device
            .sensors
            .get(usize::from(index))
            .ok_or(CodecError::UnknownIndex {
                offset,
                index,
                count: device.sensors.len(),
            })?;
        let value = f32::from_be_bytes([v0, v1, v2, v3]);
        if !value.is_finite() {
            return Err(CodecError::NotFinite { offset: offset + 1 });
        }
        readings.push(Reading::new(sensor.clone(), timestamp_ms, f64::from(value)));
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            id: "d".into(),
            municipality: "m".into(),
            sensors: vec!["p1".into(), "f1".into()],
            key_sha256: [0; 32],
            active: true,
            lorawan: None,
        }
    }

    #[test]
    fn decodes_the_documented_example() {
        let bytes = [0x00, 0x41, 0x20, 0x00, 0x00, 0x01, 0xC0, 0x40, 0x00, 0x00];
        let readings = decode(&device(), 1, &bytes, 7).unwrap();
        assert_eq!(
            readings,
            vec![Reading::new("p1", 7, 10.0), Reading::new("f1", 7, -3.0)]
        );
    }

    #[test]
    fn errors_name_the_offset() {
        let d = device();
        assert_eq!(decode(&d, 2, &[0; 5], 0), Err(CodecError::UnknownPort(2)));
        assert_eq!(decode(&d, 1, &[], 0), Err(CodecError::Empty));
        assert_eq!(
            decode(&d, 1, &[0, 0, 0, 0, 0, 1, 0], 0),
            Err(CodecError::Truncated { offset: 5, left: 2 })
        );
        assert_eq!(
            decode(&d, 1, &[0, 0, 0, 0, 0, 2, 0, 0, 0, 0], 0),
            Err(CodecError::UnknownIndex {
                offset: 5,
                index: 2,
                count: 2
            })
        );
        let nan = f32::NAN.to_be_bytes();
        assert_eq!(
            decode(&d, 1, &[1, nan[0], nan[1], nan[2], nan[3]], 0),
            Err(CodecError::NotFinite { offset: 1 })
        );
    }
}

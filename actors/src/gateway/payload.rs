//! JSON telemetry payloads (design.md section 7), shared by the MQTT and HTTP gateways.
//!
//! One reading is `{"ts": "<RFC 3339>" | <unix ms>, "value": <number>, "unit": "<optional>"}`;
//! a batch is a JSON array of them (at most [`MAX_BATCH`]). Over MQTT the sensor comes from the
//! topic ([`parse_readings`]); over HTTP every object also names its `"sensor_id"`
//! ([`parse_http_readings`]).
//!
//! Parsing is strict: unknown or repeated fields, wrong types, non-finite or non-integer
//! timestamps, invalid dates, empty or oversized batches are errors whose message names the
//! field and, in a batch, the index of the reading. The parser drives `serde_json` directly
//! with seeds that carry that context, so the hot path allocates only the [`Reading`]s.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use twin::telemetry_files::days_from_civil;
use twin::Reading;

use crate::ingest::RejectReason;

/// The most readings one message may carry.
pub const MAX_BATCH: usize = 10_000;

/// A payload that is not a valid reading or batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PayloadError {
    /// [`RejectReason::TooLarge`] for an oversized batch, else [`RejectReason::Malformed`].
    pub reason: RejectReason,
    /// What is wrong, naming the field and the reading's index in a batch.
    pub message: String,
}

/// Parses a payload published for `sensor_id` (MQTT): one reading or a batch.
pub fn parse_readings(payload: &[u8], sensor_id: &str) -> Result<Vec<Reading>, PayloadError> {
    parse(payload, Form::Topic(sensor_id))
}

/// Parses an HTTP ingest body: one reading or a batch, each naming its `sensor_id`.
pub fn parse_http_readings(payload: &[u8]) -> Result<Vec<Reading>, PayloadError> {
    parse(payload, Form::Http)
}

/// Where a reading's sensor comes from.
#[derive(Clone, Copy)]
enum Form<'s> {
    /// The MQTT topic named it: objects must not carry `sensor_id`.
    Topic(&'s str),
    /// Each object carries `sensor_id`.
    Http,
}

fn parse(payload: &[u8], form: Form<'_>) -> Result<Vec<Reading>, PayloadError> {
    let too_large = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let readings = PayloadSeed {
        form,
        too_large: &too_large,
    }
    .deserialize(&mut deserializer)
    .and_then(|readings| deserializer.end().map(|()| readings));
    readings.map_err(|err| PayloadError {
        reason: if too_large.get() {
            RejectReason::TooLarge
        } else {
            RejectReason::Malformed
        },
        message: err.to_string(),
    })
}

/// The whole payload: an object or an array of objects.
struct PayloadSeed<'s, 'f> {
    form: Form<'s>,
    too_large: &'f Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_, '_> {
    type Value = Vec<Reading>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_, '_> {
    type Value = Vec<Reading>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a reading object or an array of reading objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let reading = ReadingSeed {
            form: self.form,
            index: None,
        }
        .visit_map(map)?;
        Ok(vec![reading])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut readings = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH));
        loop {
            let seed = ReadingSeed {
                form: self.form,
                index: Some(readings.len()),
            };
            let Some(reading) = seq.next_element_seed(seed)? else {
                break;
            };
            if readings.len() == MAX_BATCH {
                self.too_large.set(true);
                return Err(de::Error::custom(format_args!(
                    "a batch holds at most {MAX_BATCH} readings"
                )));
            }
            readings.push(reading);
        }
        if readings.is_empty() {
            return Err(de::Error::custom("empty batch"));
        }
        Ok(readings)
    }
}

/// Names a reading in error messages: "reading 3" in a batch, "the reading" alone.
#[derive(Clone, Copy)]
struct Where(Option<usize>);

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Some(index) => write!(f, "reading {index}"),
            None => f.write_str("the reading"),
        }
    }
}

/// One reading object.
struct ReadingSeed<'s> {
    form: Form<'s>,
    index: Option<usize>,
}

const TOPIC_FIELDS: &[&str] = &["ts", "value", "unit"];
const HTTP_FIELDS: &[&str] = &["sensor_id", "ts", "value", "unit"];

impl<'de> DeserializeSeed<'de> for ReadingSeed<'_> {
    type Value = Reading;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReadingSeed<'_> {
    type Value = Reading;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} as an object", Where(self.index))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let at = Where(self.index);
        let fields = match self.form {
            Form::Topic(_) => TOPIC_FIELDS,
            Form::Http => HTTP_FIELDS,
        };
        let mut ts = None;
        let mut value = None;
        let mut unit: Option<Cow<'de, str>> = None;
        let mut sensor_id: Option<Cow<'de, str>> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let duplicate = match key.as_ref() {
                "ts" => ts
                    .replace(map.next_value_seed(TimestampSeed(at))?)
                    .is_some(),
                "value" => value.replace(map.next_value_seed(ValueSeed(at))?).is_some(),
                "unit" => unit
                    .replace(map.next_value_seed(TextSeed { at, field: "unit" })?)
                    .is_some(),
                "sensor_id" if matches!(self.form, Form::Http) => sensor_id
                    .replace(map.next_value_seed(TextSeed {
                        at,
                        field: "sensor_id",
                    })?)
                    .is_some(),
                other => {
                    return Err(de::Error::custom(format_args!(
                        "{at}: unknown field `{other}`, expected one of {fields:?}"
                    )))
                }
            };
            if duplicate {
                return Err(de::Error::custom(format_args!(
                    "{at}: field `{key}` given twice"
                )));
            }
        }
        let missing =
            |field: &str| de::Error::custom(format_args!("{at}: missing field `{field}`"));
        let sensor_id = match self.form {
            Form::Topic(id) => id.to_string(),
            Form::Http => sensor_id.ok_or_else(|| missing("sensor_id"))?.into_owned(),
        };
        let mut reading = Reading::new(
            sensor_id,
            ts.ok_or_else(|| missing("ts"))?,
            value.ok_or_else(|| missing("value"))?,
        );
        reading.unit = unit.map(Cow::into_owned);
        Ok(reading)
    }
}

/// `ts`: an RFC 3339 string or integer Unix milliseconds.
struct TimestampSeed(Where);

impl<'de> DeserializeSeed<'de> for TimestampSeed {
    type Value = i64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<i64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for TimestampSeed {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: field `ts` as an RFC 3339 string or integer Unix milliseconds",
            self.0
        )
    }

    fn visit_i64<E: de::Error>(self, ms: i64) -> Result<i64, E> {
        Ok(ms)
    }

    fn visit_u64<E: de::Error>(self, ms: u64) -> Result<i64, E> {
        i64::try_from(ms).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(ms), &self))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<i64, E> {
        parse_rfc3339_ms(text)
            .map_err(|err| E::custom(format_args!("{}: field `ts` `{text}`: {err}", self.0)))
    }
}

/// `value`: a finite number.
struct ValueSeed(Where);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = f64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<f64, D::Error> {
        deserializer.deserialize_f64(self)
    }
}

impl Visitor<'_> for ValueSeed {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: field `value` as a finite number", self.0)
    }

    // Always finite: JSON has no NaN or infinity, and serde_json refuses out-of-range literals
    // such as 1e999 ("number out of range").
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
        Ok(value as f64)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
        Ok(value as f64)
    }
}

/// A string field (`unit`, `sensor_id`), borrowed from the payload when it has no escapes.
struct TextSeed {
    at: Where,
    field: &'static str,
}

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TextSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: field `{}` as a non-empty string",
            self.at, self.field
        )
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        self.non_empty(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        self.non_empty(Cow::Owned(text.to_string()))
    }
}

impl TextSeed {
    fn non_empty<'de, E: de::Error>(&self, text: Cow<'de, str>) -> Result<Cow<'de, str>, E> {
        if text.is_empty() {
            Err(E::invalid_value(de::Unexpected::Str(""), self))
        } else {
            Ok(text)
        }
    }
}

/// A device's health report (`.../status`): `{"ts"?: .., "battery"?: <number>, "signal"?:
/// <number>}`, battery in the unit of the device's battery sensor (e.g. volts or percent),
/// signal in dBm.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceStatus {
    /// When it was measured; `None`: when it arrived.
    #[serde(default, deserialize_with = "status_timestamp")]
    pub ts: Option<i64>,
    /// Battery level.
    pub battery: Option<f64>,
    /// Radio signal strength.
    pub signal: Option<f64>,
}

fn status_timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    TimestampSeed(Where(None))
        .deserialize(deserializer)
        .map(Some)
}

/// Parses a `.../status` payload.
pub fn parse_status(payload: &[u8]) -> Result<DeviceStatus, PayloadError> {
    serde_json::from_slice(payload).map_err(|err| PayloadError {
        reason: RejectReason::Malformed,
        message: format!("status: {err}"),
    })
}

/// Why an RFC 3339 timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not of the shape `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`.
    #[error("not an RFC 3339 date-time (expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM))")]
    Syntax,
    /// A field is out of its range (month 13, February 30, hour 24, offset 24:00, ...).
    #[error("{0} out of range")]
    Range(&'static str),
}

/// Milliseconds since the Unix epoch of an RFC 3339 `date-time` (fractions beyond the
/// millisecond are truncated; a leap second `:60` counts as the next second's start).
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, TimestampError> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(TimestampError::Syntax);
    }
    let digits = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
        b[range].iter().try_fold(0i64, |acc, &c| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + i64::from(c - b'0'))
            } else {
                Err(TimestampError::Syntax)
            }
        })
    };
    let separators_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !separators_ok {
        return Err(TimestampError::Syntax);
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) {
        return Err(TimestampError::Range("month"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(TimestampError::Range("day"));
    }
    if hour > 23 {
        return Err(TimestampError::Range("hour"));
    }
    if minute > 59 {
        return Err(TimestampError::Range("minute"));
    }
    if second > 60 {
        return Err(TimestampError::Range("second"));
    }
    let mut pos = 19;
    let mut millis = 0;
    if b[pos] == b'.' {
        let start = pos + 1;
        pos = start;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return Err(TimestampError::Syntax);
        }
        let fraction = &b[start..pos.min(start + 3)];
        millis = fraction
            .iter()
            .fold(0, |acc, &c| acc * 10 + i64::from(c - b'0'))
            * 10i64.pow(3 - fraction.len() as u32);
    }
    let offset_seconds = match &b[pos..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (digits(pos + 1..pos + 3)?, digits(pos + 4..pos + 6)?);
            if oh > 23 {
                return Err(TimestampError::Range("offset hour"));
            }
            if om > 59 {
                return Err(TimestampError::Range("offset minute"));
            }
            let magnitude = oh * 3600 + om * 60;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return Err(TimestampError::Syntax),
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Ok(seconds * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent reference: count days year by year and month by month.
    fn naive_days(year: i64, month: i64, day: i64) -> i64 {
        let mut days = 0;
        for y in 1970..year {
            days += if is_leap(y) { 366 } else { 365 };
        }
        for y in year..1970 {
            days -= if is_leap(y) { 366 } else { 365 };
        }
        for m in 1..month {
            days += days_in_month(year, m);
        }
        days + day - 1
    }

    #[test]
    fn rfc3339_matches_a_day_by_day_count() {
        for (year, month, day) in [
            (1970, 1, 1),
            (1969, 12, 31),
            (2000, 2, 29),
            (2024, 2, 29),
            (2026, 11, 22),
            (1900, 3, 1),
            (2100, 12, 31),
        ] {
            let text = format!("{year:04}-{month:02}-{day:02}T01:02:03Z");
            let expected = (naive_days(year, month, day) * 86_400 + 3723) * 1000;
            assert_eq!(parse_rfc3339_ms(&text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rfc3339_fractions_and_offsets() {
        let base = parse_rfc3339_ms("2026-11-22T20:00:00Z").unwrap();
        assert_eq!(base, 1_795_377_600_000);
        assert_eq!(parse_rfc3339_ms("2026-11-22T20:00:00.5Z"), Ok(base + 500));
        assert_eq!(
            parse_rfc3339_ms("2026-11-22T20:00:00.123456789Z"),
            Ok(base + 123)
        );
        assert_eq!(parse_rfc3339_ms("2026-11-22t20:00:00z"), Ok(base));
        assert_eq!(parse_rfc3339_ms("2026-11-22T21:30:00+01:30"), Ok(base));
        assert_eq!(parse_rfc3339_ms("2026-11-22T18:00:00-02:00"), Ok(base));
        assert_eq!(parse_rfc3339_ms("2026-11-22 20:00:00Z"), Ok(base));
    }

    #[test]
    fn rfc3339_rejects_bad_text() {
        for text in [
            "",
            "2026-11-22",
            "2026-11-22T20:00:00",
            "2026-11-22T20:00:00.Z",
            "2026-11-22T20:00:00+0100",
            "2026-11-22T20:00:00Zjunk",
            "2026/11/22T20:00:00Z",
            "2026-1a-22T20:00:00Z",
            "2026-11-22T20:00:00+01:00:00",
        ] {
            assert_eq!(
                parse_rfc3339_ms(text),
                Err(TimestampError::Syntax),
                "{text}"
            );
        }
        for (text, field) in [
            ("2026-13-01T00:00:00Z", "month"),
            ("2025-02-29T00:00:00Z", "day"),
            ("2026-04-31T00:00:00Z", "day"),
            ("2026-04-00T00:00:00Z", "day"),
            ("2026-04-01T24:00:00Z", "hour"),
            ("2026-04-01T00:60:00Z", "minute"),
            ("2026-04-01T00:00:61Z", "second"),
            ("2026-04-01T00:00:00+24:00", "offset hour"),
        ] {
            assert_eq!(
                parse_rfc3339_ms(text),
                Err(TimestampError::Range(field)),
                "{text}"
            );
        }
    }

    #[test]
    fn single_and_batch_payloads() {
        let one = parse_readings(br#"{"ts": 1700000000000, "value": 3.5}"#, "p1").unwrap();
        assert_eq!(one, vec![Reading::new("p1", 1_700_000_000_000, 3.5)]);
        let batch = parse_readings(
            br#"[{"ts": "1970-01-01T00:00:01Z", "value": 1, "unit": "kPa"},
                 {"ts": 2000, "value": -2.25e1, "unit": "m\u00b3/h"}]"#,
            "p1",
        )
        .unwrap();
        assert_eq!(
            batch,
            vec![
                Reading::new("p1", 1000, 1.0).with_unit("kPa"),
                Reading::new("p1", 2000, -22.5).with_unit("m³/h"),
            ]
        );
        let http = parse_http_readings(br#"[{"sensor_id": "a", "ts": 5, "value": 1}]"#).unwrap();
        assert_eq!(http, vec![Reading::new("a", 5, 1.0)]);
    }

    fn error_of(payload: &str) -> PayloadError {
        parse_readings(payload.as_bytes(), "p1").unwrap_err()
    }

    #[test]
    fn errors_name_the_field_and_the_index() {
        for (payload, needles) in [
            (
                r#"{"ts": 1, "value": 1, "x": 2}"#,
                &["the reading", "`x`"][..],
            ),
            (
                r#"[{"ts": 1, "value": 1}, {"ts": 1, "value": "1"}]"#,
                &["reading 1", "`value`"],
            ),
            (r#"[{"ts": 1.5, "value": 1}]"#, &["reading 0", "`ts`"]),
            (r#"[{"ts": 1, "value": 1e999}]"#, &["out of range"]),
            (
                r#"{"ts": "2026-02-30T00:00:00Z", "value": 1}"#,
                &["`ts`", "day"],
            ),
            (r#"{"value": 1}"#, &["missing field `ts`"]),
            (r#"{"ts": 1}"#, &["missing field `value`"]),
            (r#"{"ts": 1, "value": 1, "unit": 3}"#, &["`unit`"]),
            (r#"{"ts": 1, "value": 1, "ts": 2}"#, &["`ts` given twice"]),
            (
                r#"{"ts": 1, "value": 1, "sensor_id": "p2"}"#,
                &["`sensor_id`"],
            ),
            (r#"[]"#, &["empty batch"]),
            (r#"[1]"#, &["reading 0 as an object"]),
            (r#"{"ts": 1, "value": 1} x"#, &["trailing"]),
            (r#"{"ts": 1, "value": 1"#, &["EOF"]),
            ("", &["EOF"]),
        ] {
            let err = error_of(payload);
            assert_eq!(err.reason, RejectReason::Malformed, "{payload}");
            for needle in needles {
                assert!(err.message.contains(needle), "{payload}: {}", err.message);
            }
        }
        let err = parse_http_readings(br#"{"ts": 1, "value": 1}"#).unwrap_err();
        assert!(
            err.message.contains("missing field `sensor_id`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn status_payloads() {
        let status = parse_status(br#"{"ts": "1970-01-01T00:00:02Z", "battery": 3.6}"#).unwrap();
        assert_eq!(
            status,
            DeviceStatus {
                ts: Some(2000),
                battery: Some(3.6),
                signal: None
            }
        );
        assert!(parse_status(br#"{"volts": 3}"#)
            .unwrap_err()
            .message
            .contains("volts"));
    }

    #[test]
    fn batches_over_the_limit_are_too_large() {
        let reading = r#"{"ts": 1, "value": 1}"#;
        let at_limit = format!("[{}]", vec![reading; MAX_BATCH].join(","));
        assert_eq!(
            parse_readings(at_limit.as_bytes(), "p").unwrap().len(),
            MAX_BATCH
        );
        let over = format!("[{}]", vec![reading; MAX_BATCH + 1].join(","));
        assert_eq!(error_of(&over).reason, RejectReason::TooLarge);
    }
}

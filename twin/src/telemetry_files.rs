//! Recorded telemetry files (design.md section 7): long CSV (`timestamp,sensor_id,value`) or a
//! BattLeDIM-style folder of wide CSVs (`pressures.csv`, `flows.csv`, `levels.csv`,
//! `demands.csv`: a `Timestamp` column and one column per sensor id). Values are in each
//! sensor's own unit; timestamps are RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or Unix milliseconds.

use std::path::{Path, PathBuf};

/// The wide CSV files of a telemetry folder, in the order they are read.
pub const WIDE_FILES: [&str; 4] = ["pressures.csv", "flows.csv", "levels.csv", "demands.csv"];

/// One recorded value.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unix time (ms).
    pub timestamp_ms: i64,
    /// The sensor id.
    pub sensor_id: String,
    /// The value in the sensor's unit.
    pub value: f64,
}

/// Why a telemetry file was rejected; names the file and, where there is one, the line.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryFileError {
    /// The file or folder cannot be read.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        cause: std::io::Error,
    },
    /// A line does not have the expected shape or a cell cannot be parsed.
    #[error("{path}:{line}: {cause}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        cause: String,
    },
    /// A folder holds none of the wide CSV files.
    #[error("{0}: holds none of pressures.csv, flows.csv, levels.csv, demands.csv")]
    NoFiles(PathBuf),
}

/// Reads `path`: a folder of wide CSVs or one CSV file (long, or wide when its first header
/// cell is `Timestamp`). Records come back ordered by time (stable within one time).
pub fn read(path: &Path) -> Result<Vec<Record>, TelemetryFileError> {
    let mut records = Vec::new();
    if path.is_dir() {
        let mut found = false;
        for name in WIDE_FILES {
            let file = path.join(name);
            if file.is_file() {
                found = true;
                read_file(&file, &mut records)?;
            }
        }
        if !found {
            return Err(TelemetryFileError::NoFiles(path.to_path_buf()));
        }
    } else {
        read_file(path, &mut records)?;
    }
    records.sort_by_key(|r| r.timestamp_ms);
    Ok(records)
}

fn read_file(path: &Path, records: &mut Vec<Record>) -> Result<(), TelemetryFileError> {
    let text = std::fs::read_to_string(path).map_err(|cause| TelemetryFileError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse(&text, path, records)
}

/// Parses the text of one CSV (`path` only names it in errors), appending its records.
pub fn parse(text: &str, path: &Path, records: &mut Vec<Record>) -> Result<(), TelemetryFileError> {
    let bad = |line: usize, cause: String| TelemetryFileError::Line {
        path: path.to_path_buf(),
        line,
        cause,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(bad(1, "empty file: expected a header line".into()));
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let long = columns.len() == 3
        && columns[0].eq_ignore_ascii_case("timestamp")
        && columns[1].eq_ignore_ascii_case("sensor_id")
        && columns[2].eq_ignore_ascii_case("value");
    if !long && !columns[0].eq_ignore_ascii_case("timestamp") {
        return Err(bad(
            header_line,
            format!(
                "header `{header}`: expected `timestamp,sensor_id,value` or `Timestamp,<sensor ids>`"
            ),
        ));
    }
    if columns.len() < 2 {
        return Err(bad(header_line, "header names no sensor column".into()));
    }
    for (line, row) in lines {
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(bad(
                line,
                format!("{} cells, the header has {}", cells.len(), columns.len()),
            ));
        }
        let timestamp_ms = parse_timestamp(cells[0]).map_err(|cause| bad(line, cause))?;
        let value = |cell: &str| -> Result<Option<f64>, TelemetryFileError> {
            // An empty cell or NaN is a missing reading, not an error.
            if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
                return Ok(None);
            }
            cell.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| bad(line, format!("value `{cell}` is not a number")))
        };
        if long {
            if cells[1].is_empty() {
                return Err(bad(line, "empty sensor_id".into()));
            }
            if let Some(value) = value(cells[2])? {
                records.push(Record {
                    timestamp_ms,
                    sensor_id: cells[1].to_owned(),
                    value,
                });
            }
        } else {
            for (id, cell) in columns.iter().zip(&cells).skip(1) {
                if let Some(value) = value(cell)? {
                    records.push(Record {
                        timestamp_ms,
                        sensor_id: (*id).to_owned(),
                        value,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day, hour, minute, second)` of Unix milliseconds (UTC).
pub fn civil_from_ms(ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let secs = ms.rem_euclid(86_400_000) / 1000;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs / 60 % 60, secs % 60)
}

/// Unix milliseconds as RFC 3339 UTC (`2019-01-05T13:20:00Z`).
pub fn format_rfc3339(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_ms(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Parses a timestamp: Unix milliseconds (an integer), or `YYYY-MM-DD[ T]HH:MM[:SS[.fff]]`
/// followed by nothing (UTC), `Z`, or a `+HH:MM`/`-HH:MM` offset.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || format!("timestamp `{text}` is neither RFC 3339, `YYYY-MM-DD HH:MM:SS` nor Unix ms");
    let date = text.get(..10).ok_or_else(bad)?;
    let rest = text.get(11..).ok_or_else(bad)?;
    if !matches!(text.as_bytes().get(10), Some(b' ' | b'T' | b't')) {
        return Err(bad());
    }
    let number = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let mut ymd = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (ymd.next(), ymd.next(), ymd.next(), ymd.next())
    else {
        return Err(bad());
    };
    let (year, month, day) = (number(y)?, number(mo)?, number(d)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let (clock, offset_ms) = match rest.find(['Z', 'z', '+', '-']) {
        Some(at) => {
            let (clock, zone) = rest.split_at(at);
            let offset = if zone.eq_ignore_ascii_case("z") {
                0
            } else {
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let (h, m) = zone[1..].split_once(':').ok_or_else(bad)?;
                sign * (number(h)? * 60 + number(m)?) * 60_000
            };
            (clock, offset)
        }
        None => (rest, 0),
    };
    let mut hms = clock.split(':');
    let hour = number(hms.next().ok_or_else(bad)?)?;
    let minute = number(hms.next().ok_or_else(bad)?)?;
    let second: f64 = match hms.next() {
        Some(s) => s.parse().map_err(|_| bad())?,
        None => 0.0,
    };
    if hms.next().is_some() || hour > 23 || minute > 59 || !(0.0..61.0).contains(&second) {
        return Err(bad());
    }
    let day_ms = ((hour * 60 + minute) * 60) * 1000 + (second * 1000.0).round() as i64;
    Ok(days_from_civil(year, month, day) * 86_400_000 + day_ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_accepted_form() {
        let base = parse_timestamp("2019-01-05 13:20:00").unwrap();
        assert_eq!(base, 1_546_694_400_000);
        assert_eq!(parse_timestamp("2019-01-05T13:20:00Z").unwrap(), base);
        assert_eq!(parse_timestamp("2019-01-05T14:20:00+01:00").unwrap(), base);
        assert_eq!(parse_timestamp("2019-01-05 13:20").unwrap(), base);
        assert_eq!(parse_timestamp("1546694400000").unwrap(), base);
        assert_eq!(format_rfc3339(base), "2019-01-05T13:20:00Z");
        assert!(parse_timestamp("2019-13-05 13:20:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn civil_round_trip_over_leap_years() {
        for ms in [0, 951_782_400_000, 1_709_208_000_000, 4_102_444_799_000] {
            let (y, mo, d, h, mi, s) = civil_from_ms(ms);
            let text = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            assert_eq!(parse_timestamp(&text).unwrap(), ms, "{text}");
        }
    }

    #[test]
    fn long_and_wide_files_and_their_errors() {
        let path = Path::new("t.csv");
        let mut records = Vec::new();
        parse(
            "timestamp,sensor_id,value\n2019-01-01 00:05:00,P1,3.5\n2019-01-01 00:00:00,P2,\n",
            path,
            &mut records,
        )
        .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].sensor_id, "P1");
        parse(
            "Timestamp,a,b\n2019-01-01 00:00:00,1,2\n",
            path,
            &mut records,
        )
        .unwrap();
        assert_eq!(records.len(), 3);
        let error = parse(
            "Timestamp,a,b\n2019-01-01 00:00:00,1,2\n2019-01-01 00:05:00,1,x\n",
            path,
            &mut records,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(error, "t.csv:3: value `x` is not a number");
        let error = parse("Timestamp,a\n2019-01-01 00:00:00,1,2\n", path, &mut records)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "t.csv:2: 3 cells, the header has 2");
        assert!(parse("when,what\n", path, &mut records).is_err());
    }
}

//! Input records (assets, breaks, per-pipe hydraulic statistics) and their CSV files.
//!
//! Every file has a header line naming its columns; columns are matched by name (ASCII case
//! ignored), in any order, and columns this reader does not know are ignored. Blank lines and
//! lines starting with `#` are skipped. Fields are separated by commas and may be quoted with
//! `"` (a quote inside a quoted field is written `""`). Surrounding spaces are trimmed.
//!
//! | file | columns |
//! |---|---|
//! | assets | `pipe_id`, `install_year`, `material`, `diameter_mm`, `length_m`, optional `zone` |
//! | breaks | `pipe_id`, `date` (`YYYY-MM-DD`) |
//! | twin statistics | `pipe_id`, `mean_pressure_m`, `max_pressure_m`, `transients_per_year` |

use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

/// A pipe of the asset register.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// Pipe id, as in the network file.
    pub id: String,
    /// Year the pipe was laid; its age is counted from 1 January of that year.
    pub install_year: i32,
    /// Material code (compared exactly, e.g. `CI`, `DI`, `PVC`).
    pub material: String,
    /// Internal diameter, millimetres.
    pub diameter_mm: f64,
    /// Length, metres.
    pub length_m: f64,
    /// Zone (pressure zone, district), if given.
    pub zone: Option<String>,
}

/// A recorded pipe break.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    /// Id of the pipe that broke.
    pub pipe_id: String,
    /// Day of the break.
    pub date: Date,
    /// Line of the breaks file this record came from (0 when not read from a file), for
    /// error messages.
    pub line: usize,
}

/// Per-pipe hydraulic statistics from the twin, the optional covariates.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinStats {
    /// Pipe id.
    pub pipe_id: String,
    /// Mean pressure along the pipe over the period, metres of water.
    pub mean_pressure_m: f64,
    /// Maximum pressure along the pipe over the period, metres of water.
    pub max_pressure_m: f64,
    /// Pressure transients seen per year.
    pub transients_per_year: f64,
}

/// A calendar day (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// The day `year-month-day`, or `None` when no such day exists.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        valid.then_some(Self { year, month, day })
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        Self::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    /// The day containing decimal year `t` (the inverse of [`Date::decimal_year`]).
    pub fn from_decimal_year(t: f64) -> Self {
        let year = t.floor() as i32;
        let days = if is_leap(year) { 366 } else { 365 };
        let mut ordinal = (((t - f64::from(year)) * f64::from(days)).floor() as u16).min(days - 1);
        let mut month = 1;
        while ordinal >= u16::from(days_in_month(year, month)) {
            ordinal -= u16::from(days_in_month(year, month));
            month += 1;
        }
        Self {
            year,
            month,
            day: ordinal as u8 + 1,
        }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// Midday of this day as a decimal year (`2020-01-01` is 2020 + 0.5/366).
    pub fn decimal_year(self) -> f64 {
        self.start() + 0.5 / self.days_in_year()
    }

    /// The start of this day as a decimal year.
    pub fn start(self) -> f64 {
        let ordinal: u16 = (1..self.month)
            .map(|m| u16::from(days_in_month(self.year, m)))
            .sum::<u16>()
            + u16::from(self.day)
            - 1;
        f64::from(self.year) + f64::from(ordinal) / self.days_in_year()
    }

    /// The end of this day (the start of the next) as a decimal year.
    pub fn end(self) -> f64 {
        self.start() + 1.0 / self.days_in_year()
    }

    fn days_in_year(self) -> f64 {
        if is_leap(self.year) {
            366.0
        } else {
            365.0
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A CSV file that cannot be read. Lines and columns count from 1.
#[derive(Debug, Error, PartialEq)]
pub enum CsvError {
    /// No header line.
    #[error("{file}: empty file, expected a header line naming the columns")]
    Empty {
        /// File name.
        file: String,
    },
    /// A required column is missing from the header.
    #[error("{file}: line {line}: the header has no column `{column}`")]
    MissingColumn {
        /// File name.
        file: String,
        /// Line of the header.
        line: usize,
        /// The missing column's name.
        column: &'static str,
    },
    /// A column name appears twice in the header.
    #[error("{file}: line {line}, column {column}: column `{name}` appears twice in the header")]
    DuplicateColumn {
        /// File name.
        file: String,
        /// Line of the header.
        line: usize,
        /// Position of the second occurrence.
        column: usize,
        /// The column's name.
        name: String,
    },
    /// A row with a different number of fields than the header.
    #[error("{file}: line {line}: {found} fields, but the header has {expected}")]
    FieldCount {
        /// File name.
        file: String,
        /// Line.
        line: usize,
        /// Fields in the header.
        expected: usize,
        /// Fields on this line.
        found: usize,
    },
    /// A quoted field with no closing quote.
    #[error("{file}: line {line}, column {column}: unterminated quoted field")]
    UnterminatedQuote {
        /// File name.
        file: String,
        /// Line.
        line: usize,
        /// Position of the field.
        column: usize,
    },
    /// A value that is not valid for its column.
    #[error("{file}: line {line}, column {column} (`{name}`): {problem}: `{value}`")]
    BadValue {
        /// File name.
        file: String,
        /// Line.
        line: usize,
        /// Position of the field.
        column: usize,
        /// The column's name.
        name: &'static str,
        /// The field as written.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The same pipe id on two lines of a file that allows one line per pipe.
    #[error("{file}: line {line}: pipe `{id}` already given on line {first}")]
    DuplicatePipe {
        /// File name.
        file: String,
        /// Line of the second occurrence.
        line: usize,
        /// Line of the first occurrence.
        first: usize,
        /// The pipe id.
        id: String,
    },
}

/// Reads an assets file (see the [module documentation](self) for the columns).
pub fn parse_assets(text: &str, file: &str) -> Result<Vec<Asset>, CsvError> {
    let table = Table::parse(
        text,
        file,
        &[
            "pipe_id",
            "install_year",
            "material",
            "diameter_mm",
            "length_m",
        ],
        &["zone"],
    )?;
    let mut seen = HashMap::new();
    let mut assets = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let id = table.text(row, 0)?;
        check_unique(&mut seen, &id, row.line, file)?;
        let install_year = table.number(row, 1, "not a year between 1800 and 2100", |y: i32| {
            (1800..=2100).contains(&y)
        })?;
        let material = table.text(row, 2)?;
        let diameter_mm = table.number(row, 3, "not a positive number", positive)?;
        let length_m = table.number(row, 4, "not a positive number", positive)?;
        let zone = table.optional(row, 5).map(str::to_string);
        assets.push(Asset {
            id,
            install_year,
            material,
            diameter_mm,
            length_m,
            zone,
        });
    }
    Ok(assets)
}

/// Reads a breaks file (see the [module documentation](self) for the columns).
pub fn parse_breaks(text: &str, file: &str) -> Result<Vec<Break>, CsvError> {
    let table = Table::parse(text, file, &["pipe_id", "date"], &[])?;
    table
        .rows
        .iter()
        .map(|row| {
            let pipe_id = table.text(row, 0)?;
            let (column, field) = table.field(row, 1);
            let date = Date::parse(field).ok_or_else(|| {
                table.bad(row, column, "date", field, "not a date written YYYY-MM-DD")
            })?;
            Ok(Break {
                pipe_id,
                date,
                line: row.line,
            })
        })
        .collect()
}

/// Reads a twin statistics file (see the [module documentation](self) for the columns).
pub fn parse_twin_stats(text: &str, file: &str) -> Result<Vec<TwinStats>, CsvError> {
    let table = Table::parse(
        text,
        file,
        &[
            "pipe_id",
            "mean_pressure_m",
            "max_pressure_m",
            "transients_per_year",
        ],
        &[],
    )?;
    let mut seen = HashMap::new();
    let mut stats = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let pipe_id = table.text(row, 0)?;
        check_unique(&mut seen, &pipe_id, row.line, file)?;
        let mean_pressure_m = table.number(row, 1, "not a number", f64::is_finite)?;
        let max_pressure_m = table.number(row, 2, "not a number", f64::is_finite)?;
        let transients_per_year = table.number(row, 3, "not a number >= 0", |v: f64| {
            v.is_finite() && v >= 0.0
        })?;
        stats.push(TwinStats {
            pipe_id,
            mean_pressure_m,
            max_pressure_m,
            transients_per_year,
        });
    }
    Ok(stats)
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

fn check_unique(
    seen: &mut HashMap<String, usize>,
    id: &str,
    line: usize,
    file: &str,
) -> Result<(), CsvError> {
    if let Some(&first) = seen.get(id) {
        return Err(CsvError::DuplicatePipe {
            file: file.to_string(),
            line,
            first,
            id: id.to_string(),
        });
    }
    seen.insert(id.to_string(), line);
    Ok(())
}

/// One data line: its number and fields.
struct Row {
    line: usize,
    fields: Vec<String>,
}

/// A parsed file: for each wanted column (required, then optional) its position, if present.
struct Table<'a> {
    file: &'a str,
    names: Vec<&'static str>,
    positions: Vec<Option<usize>>,
    rows: Vec<Row>,
}

impl<'a> Table<'a> {
    fn parse(
        text: &str,
        file: &'a str,
        required: &[&'static str],
        optional: &[&'static str],
    ) -> Result<Self, CsvError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let (header_line, header) = lines.next().ok_or_else(|| CsvError::Empty {
            file: file.to_string(),
        })?;
        let header = split(header, header_line, file)?;
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if by_name.insert(name.to_ascii_lowercase(), i).is_some() {
                return Err(CsvError::DuplicateColumn {
                    file: file.to_string(),
                    line: header_line,
                    column: i + 1,
                    name: name.clone(),
                });
            }
        }
        let mut names = Vec::new();
        let mut positions = Vec::new();
        for &column in required {
            let position = by_name
                .get(column)
                .copied()
                .ok_or_else(|| CsvError::MissingColumn {
                    file: file.to_string(),
                    line: header_line,
                    column,
                })?;
            names.push(column);
            positions.push(Some(position));
        }
        for &column in optional {
            names.push(column);
            positions.push(by_name.get(column).copied());
        }
        let rows = lines
            .map(|(line, text)| {
                let fields = split(text, line, file)?;
                if fields.len() != header.len() {
                    return Err(CsvError::FieldCount {
                        file: file.to_string(),
                        line,
                        expected: header.len(),
                        found: fields.len(),
                    });
                }
                Ok(Row { line, fields })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            file,
            names,
            positions,
            rows,
        })
    }

    /// The 1-based column and the text of wanted column `k` (which must be required).
    fn field<'r>(&self, row: &'r Row, k: usize) -> (usize, &'r str) {
        let position = self.positions[k].unwrap_or_default();
        (position + 1, row.fields[position].as_str())
    }

    /// The text of optional column `k`, `None` when the column is absent or the field empty.
    fn optional<'r>(&self, row: &'r Row, k: usize) -> Option<&'r str> {
        self.positions[k]
            .map(|p| row.fields[p].as_str())
            .filter(|s| !s.is_empty())
    }

    /// The non-empty text of required column `k`.
    fn text(&self, row: &Row, k: usize) -> Result<String, CsvError> {
        let (column, field) = self.field(row, k);
        if field.is_empty() {
            return Err(self.bad(row, column, self.names[k], field, "empty value"));
        }
        Ok(field.to_string())
    }

    /// Required column `k` parsed as a number that passes `valid`.
    fn number<T: std::str::FromStr + Copy>(
        &self,
        row: &Row,
        k: usize,
        problem: &'static str,
        valid: impl Fn(T) -> bool,
    ) -> Result<T, CsvError> {
        let (column, field) = self.field(row, k);
        field
            .parse::<T>()
            .ok()
            .filter(|&v| valid(v))
            .ok_or_else(|| self.bad(row, column, self.names[k], field, problem))
    }

    fn bad(
        &self,
        row: &Row,
        column: usize,
        name: &'static str,
        value: &str,
        problem: &'static str,
    ) -> CsvError {
        CsvError::BadValue {
            file: self.file.to_string(),
            line: row.line,
            column,
            name,
            value: value.to_string(),
            problem,
        }
    }
}

/// Splits one line into trimmed fields, honouring double quotes.
fn split(line: &str, number: usize, file: &str) -> Result<Vec<String>, CsvError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c != '"' {
                field.push(c);
            } else if chars.peek() == Some(&'"') {
                chars.next();
                field.push('"');
            } else {
                quoted = false;
            }
        } else if c == '"' && field.trim().is_empty() {
            field.clear();
            quoted = true;
        } else if c == ',' {
            fields.push(field.trim().to_string());
            field.clear();
        } else {
            field.push(c);
        }
    }
    if quoted {
        return Err(CsvError::UnterminatedQuote {
            file: file.to_string(),
            line: number,
            column: fields.len() + 1,
        });
    }
    fields.push(field.trim().to_string());
    Ok(fields)
}

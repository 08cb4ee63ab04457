//! Reading and writing EPANET `.inp` files.
//!
//! The reader follows EPANET 2.3's input rules (`input2.c`, `input3.c`, `rules.c`): keywords
//! are matched case-insensitively by prefix, ids are case-sensitive, values stay in the file's
//! units, and every problem is reported with EPANET's error code. After a clean read it runs
//! the checks EPANET makes before a simulation (tanks, pumps, curves, connectivity).

mod lex;
mod reader;
mod rules;
mod settings;
mod validate;
mod writer;

use crate::model::Network;
use std::path::Path;

/// A problem found in an `.inp` file, located by file, line and section.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: [{section}] {message} (EPANET error {code})")]
pub struct InpProblem {
    pub file: String,
    /// 1-based line number; 0 when the problem is not tied to a line.
    pub line: usize,
    pub section: String,
    /// EPANET's error code for this kind of problem (e.g. 201 syntax error, 203 undefined node).
    pub code: u32,
    pub message: String,
}

/// Why an `.inp` file could not be read. Lists every problem found, as EPANET does.
#[derive(Debug, thiserror::Error)]
pub enum InpError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{} error(s) in {}:\n{}", .0.len(), .0.first().map(|p| p.file.as_str()).unwrap_or("input"), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<InpProblem>),
}

/// A network read from a file, with notes on what the reader accepted but found unusual
/// (e.g. a time value with more than three `:` fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub network: Network,
    /// Human-readable notes, each naming file and line.
    pub notes: Vec<String>,
}

/// Reads an `.inp` file (UTF-8, or Latin-1 when it is not valid UTF-8).
pub fn read_file(path: &Path) -> Result<Network, InpError> {
    read_file_with_notes(path).map(|reading| reading.network)
}

/// Reads `.inp` text; `file_name` is used in error messages.
pub fn read_str(text: &str, file_name: &str) -> Result<Network, InpError> {
    read_str_with_notes(text, file_name).map(|reading| reading.network)
}

/// Like [`read_file`], also returning the reader's notes.
pub fn read_file_with_notes(path: &Path) -> Result<Reading, InpError> {
    let file_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| InpError::Io {
        file: file_name.clone(),
        source,
    })?;
    read_str_with_notes(&decode(bytes), &file_name)
}

/// Like [`read_str`], also returning the reader's notes.
pub fn read_str_with_notes(text: &str, file_name: &str) -> Result<Reading, InpError> {
    reader::read(text, file_name)
}

/// Writes a network as `.inp` text that [`read_str`] reads back to an equal [`Network`].
pub fn write_string(network: &Network) -> String {
    writer::write(network)
}

/// UTF-8 text as is; anything else is taken as Latin-1 (every byte is one character).
fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => err.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// EPANET's wording of an error code (`errors.dat`).
pub(crate) fn error_text(code: u32) -> &'static str {
    match code {
        201 => "syntax error",
        202 => "illegal numeric value",
        203 => "undefined node",
        204 => "undefined link",
        205 => "undefined time pattern",
        206 => "undefined curve",
        207 => "attempt to control CV/GPV link",
        208 => "invalid pressure limits",
        209 => "illegal node property value",
        211 => "illegal link property value",
        212 => "undefined trace node",
        213 => "invalid option value",
        214 => "too many characters in input line",
        215 => "duplicate ID label",
        216 => "reference to undefined pump",
        217 => "invalid pump energy data",
        219 => "illegal valve connection to tank node",
        220 => "illegal valve connection to another valve",
        221 => "mis-placed rule clause in rule-based control",
        222 => "same start and end nodes for link",
        223 => "not enough nodes in network",
        224 => "no tanks or reservoirs in network",
        225 => "invalid lower/upper levels for tank",
        226 => "no head curve or power rating for pump",
        227 => "invalid head curve for pump",
        230 => "nonincreasing x-values for curve",
        233 => "network has unconnected node",
        252 => "invalid ID name",
        299 => "invalid section keyword",
        _ => "input error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_bytes_decode() {
        assert_eq!(decode(vec![b'a', 0xE9]), "a\u{e9}");
        assert_eq!(decode("é".as_bytes().to_vec()), "é");
    }
}

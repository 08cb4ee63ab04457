//! Planning commands: `aquatwin scenario`, `aquatwin criticality` and `aquatwin risk`.

pub mod criticality;
mod plot;
pub mod risk;
pub mod scenario;

use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;

/// Writes `value` as JSON to `path`.
fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, value)
        .map_err(anyhow::Error::from)
        .and_then(|()| writer.flush().map_err(anyhow::Error::from))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes CSV text: a header and rows already formatted.
fn write_csv(path: &Path, header: &str, rows: &[String]) -> anyhow::Result<()> {
    let mut text = String::with_capacity(64 * (rows.len() + 1));
    text.push_str(header);
    text.push('\n');
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `true` when `path` names a JSON file (else CSV).
fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
}

/// A field for CSV: quoted when it holds a comma or a quote.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

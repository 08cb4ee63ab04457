//! The sensors file (TOML) that maps each sensor id to its kind, network element and unit; used
//! by `aquatwin serve` (per municipality) and `aquatwin replay`.
//!
//! ```toml
//! [[sensor]]
//! id = "P-10"          # unique within the municipality
//! kind = "pressure"    # pressure head level flow demand valve_position pump_status battery signal
//! node = "10"          # pressure, head, level, demand: the node; flow, valve_position,
//!                      # pump_status: `link = "..."`; battery, signal: `device = "..."`
//! unit = "psi"         # unit of readings that carry none
//! ```
//!
//! This is the layout of `shared/leaks/*/sensors.toml` (the benchmark scenarios).

use serde::Deserialize;

use crate::reading::{Sensor, SensorKind, TargetKind, Unit};

/// Why a sensors file was rejected; every variant names the place.
#[derive(Debug, thiserror::Error)]
pub enum SensorsFileError {
    /// Not valid TOML, or a field is missing or of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A field has a value we do not know.
    #[error("sensor {index} ({id}): {cause}")]
    Invalid {
        /// 1-based position of the `[[sensor]]` table.
        index: usize,
        /// Its id.
        id: String,
        /// What is wrong.
        cause: String,
    },
    /// Two sensors share an id.
    #[error("sensor {index}: id {id} is already used by sensor {first}")]
    Duplicate {
        /// 1-based position of the second one.
        index: usize,
        /// The id.
        id: String,
        /// 1-based position of the first one.
        first: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    sensor: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    kind: String,
    node: Option<String>,
    link: Option<String>,
    device: Option<String>,
    unit: String,
}

/// Parses a sensors file.
pub fn parse(text: &str) -> Result<Vec<Sensor>, SensorsFileError> {
    let file: File = toml::from_str(text).map_err(|e| SensorsFileError::Syntax(e.to_string()))?;
    let mut first_index = std::collections::HashMap::new();
    let mut sensors = Vec::with_capacity(file.sensor.len());
    for (i, entry) in file.sensor.into_iter().enumerate() {
        let index = i + 1;
        let invalid = |cause: String| SensorsFileError::Invalid {
            index,
            id: entry.id.clone(),
            cause,
        };
        let kind: SensorKind = entry.kind.parse().map_err(|e| invalid(format!("{e}")))?;
        let unit: Unit = entry.unit.parse().map_err(|e| invalid(format!("{e}")))?;
        let expected = match kind.target_kind() {
            TargetKind::Node => "node",
            TargetKind::Link => "link",
            TargetKind::Device => "device",
        };
        let target = match (&entry.node, &entry.link, &entry.device) {
            (Some(node), None, None) if expected == "node" => node.clone(),
            (None, Some(link), None) if expected == "link" => link.clone(),
            (None, None, Some(device)) if expected == "device" => device.clone(),
            _ => {
                return Err(invalid(format!(
                    "a {} sensor needs `{expected} = \"<id>\"` and no other element field",
                    kind.name()
                )))
            }
        };
        let sensor = Sensor::new(entry.id.clone(), kind, target, unit)
            .map_err(|e| invalid(format!("{e}")))?;
        if let Some(&first) = first_index.get(&sensor.id) {
            return Err(SensorsFileError::Duplicate {
                index,
                id: sensor.id,
                first,
            });
        }
        first_index.insert(sensor.id.clone(), index);
        sensors.push(sensor);
    }
    Ok(sensors)
}

/// Writes sensors in the format [`parse`] reads.
pub fn to_toml(sensors: &[Sensor]) -> String {
    let mut out = String::new();
    for sensor in sensors {
        out.push_str(&format!(
            "[[sensor]]\nid = {:?}\nkind = {:?}\n{} = {:?}\nunit = {:?}\n\n",
            sensor.id,
            sensor.kind.name(),
            match sensor.kind.target_kind() {
                TargetKind::Node => "node",
                TargetKind::Link => "link",
                TargetKind::Device => "device",
            },
            sensor.target,
            sensor.unit.name()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_bad_entries() {
        let text =
            "[[sensor]]\nid = \"P1\"\nkind = \"pressure\"\nnode = \"10\"\nunit = \"kPa\"\n\n\
                    [[sensor]]\nid = \"F1\"\nkind = \"flow\"\nlink = \"20\"\nunit = \"gpm\"\n";
        let sensors = parse(text).unwrap();
        assert_eq!(sensors.len(), 2);
        assert_eq!(parse(&to_toml(&sensors)).unwrap(), sensors);

        let bad_unit = text.replace("\"gpm\"", "\"furlongs\"");
        let err = parse(&bad_unit).unwrap_err().to_string();
        assert!(err.starts_with("sensor 2 (F1):"), "{err}");
        let dup = text.replace("\"F1\"", "\"P1\"");
        assert!(matches!(
            parse(&dup),
            Err(SensorsFileError::Duplicate {
                index: 2,
                first: 1,
                ..
            })
        ));
        let mismatched = text.replace("\"kPa\"", "\"gpm\"");
        assert!(parse(&mismatched).is_err());
        let flow_on_node = text.replace("link = \"20\"", "node = \"20\"");
        assert!(parse(&flow_on_node)
            .unwrap_err()
            .to_string()
            .contains("needs `link"));
        assert!(matches!(
            parse("[[sensor]]\nid = 1"),
            Err(SensorsFileError::Syntax(_))
        ));
    }

    #[test]
    fn reads_the_shared_benchmark_layout() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/leaks/example/net3-dev-01"
        );
        let text = std::fs::read_to_string(format!("{dir}/sensors.toml")).unwrap();
        let sensors = parse(&text).unwrap();
        assert!(sensors.iter().any(|s| s.kind == SensorKind::Flow));
        assert!(sensors.iter().any(|s| s.kind == SensorKind::Pressure));
    }
}

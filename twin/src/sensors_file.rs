//! The sensors file (TOML) that maps each sensor id to its kind, network element and unit; used
//! by `aquatwin serve` (per municipality) and `aquatwin replay`.
//!
//! ```toml
//! [[sensor]]
//! id = "P-10"          # unique within the municipality
//! kind = "pressure"    # pressure head level flow demand valve_position pump_status battery signal
//! target = "10"        # node id (pressure, head, level, demand) or link id (flow, valve, pump)
//! unit = "psi"         # unit of readings that carry none
//! ```

use serde::Deserialize;

use crate::reading::{Sensor, SensorKind, Unit};

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
    target: String,
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
        let sensor = Sensor::new(entry.id.clone(), kind, entry.target.clone(), unit)
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
            "[[sensor]]\nid = {:?}\nkind = {:?}\ntarget = {:?}\nunit = {:?}\n\n",
            sensor.id,
            sensor.kind.name(),
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
        let text = "[[sensor]]\nid = \"P1\"\nkind = \"pressure\"\ntarget = \"10\"\nunit = \"kPa\"\n\n\
                    [[sensor]]\nid = \"F1\"\nkind = \"flow\"\ntarget = \"20\"\nunit = \"gpm\"\n";
        let sensors = parse(text).unwrap();
        assert_eq!(sensors.len(), 2);
        assert_eq!(parse(&to_toml(&sensors)).unwrap(), sensors);

        let bad_unit = text.replace("\"gpm\"", "\"furlongs\"");
        let err = parse(&bad_unit).unwrap_err().to_string();
        assert!(err.starts_with("sensor 2 (F1):"), "{err}");
        let dup = text.replace("\"F1\"", "\"P1\"");
        assert!(matches!(
            parse(&dup),
            Err(SensorsFileError::Duplicate { index: 2, first: 1, .. })
        ));
        let mismatched = text.replace("\"kPa\"", "\"gpm\"");
        assert!(parse(&mismatched).is_err());
        assert!(matches!(
            parse("[[sensor]]\nid = 1"),
            Err(SensorsFileError::Syntax(_))
        ));
    }
}

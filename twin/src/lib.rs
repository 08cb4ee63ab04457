//! The live-twin domain logic (telemetry, estimation, detection, risk, storage). Built in issue 3.

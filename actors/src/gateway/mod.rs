//! Ingest gateways: each authenticates devices, parses their messages into readings, hands them
//! to [`crate::ingest::IngestHandle`], and turns every malformed message into a counted, logged
//! rejection.

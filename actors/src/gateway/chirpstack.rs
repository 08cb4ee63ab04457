//! ChirpStack uplink events (`application/<app>/device/<devEUI>/event/up`), from the embedded
//! broker (published by the configured integration user) or an external broker.
//!
//! ChirpStack v4 events name the device in `deviceInfo.devEui` (hex); v3 events in `devEUI`
//! (base64 in its JSON marshaler, or hex). `data` is the decrypted application payload in
//! base64, decoded by [`super::codec`] on `fPort`. The readings' time is the event's `time`,
//! else the first gateway's `rxInfo[].gwTime` (v4) or `rxInfo[].time` (v3), else now.
//! ChirpStack has already checked the MIC and the frame counter and de-duplicated the uplink,
//! so `fCnt` is not checked again here. Other fields (`object`, `txInfo`, ...) are ignored.
//!
//! Malformed JSON, a missing field, bad base64 or hex, a topic that names another device than
//! the event, an unknown device and codec errors are counted rejections.

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use twin::Reading;

use super::{codec, now_ms, payload::parse_rfc3339_ms};
use crate::devices::{Device, DeviceRegistry};
use crate::ingest::{Gateway, IngestError, IngestHandle, RejectReason};

#[derive(Deserialize)]
struct UplinkEvent {
    #[serde(rename = "deviceInfo")]
    device_info: Option<DeviceInfo>,
    #[serde(rename = "devEUI")]
    dev_eui_v3: Option<String>,
    data: Option<String>,
    #[serde(rename = "fPort")]
    f_port: Option<u8>,
    time: Option<String>,
    #[serde(rename = "rxInfo", default)]
    rx_info: Vec<RxInfo>,
}

#[derive(Deserialize)]
struct DeviceInfo {
    #[serde(rename = "devEui")]
    dev_eui: String,
}

#[derive(Deserialize)]
struct RxInfo {
    #[serde(rename = "gwTime")]
    gw_time: Option<String>,
    time: Option<String>,
}

/// Decodes the uplink event `payload` published on the topic naming `topic_dev_eui`, and
/// submits its readings. Every refusal is counted (gateway [`Gateway::Chirpstack`]).
pub async fn submit_uplink(
    ingest: &IngestHandle,
    topic_dev_eui: &str,
    payload: &[u8],
) -> Result<usize, IngestError> {
    let (device, readings) = uplink_readings(ingest.devices(), topic_dev_eui, payload)
        .inspect_err(|err| {
            ingest.reject(Gateway::Chirpstack, err.reason, &err.detail);
        })?;
    ingest.submit(Gateway::Chirpstack, device, readings).await
}

fn malformed(detail: String) -> IngestError {
    IngestError::new(RejectReason::Malformed, detail)
}

/// The device and readings of one uplink event.
fn uplink_readings(
    devices: &DeviceRegistry,
    topic_dev_eui: &str,
    payload: &[u8],
) -> Result<(Arc<Device>, Vec<Reading>), IngestError> {
    let event: UplinkEvent = serde_json::from_slice(payload)
        .map_err(|err| malformed(format!("ChirpStack uplink event: {err}")))?;
    let dev_eui = match (&event.device_info, &event.dev_eui_v3) {
        (Some(info), _) => parse_hex_eui(&info.dev_eui).ok_or_else(|| {
            malformed(format!(
                "deviceInfo.devEui `{}` is not 8 hex bytes",
                info.dev_eui
            ))
        })?,
        (None, Some(v3)) => parse_v3_eui(v3).ok_or_else(|| {
            malformed(format!(
                "devEUI `{v3}` is neither 8 bytes of base64 nor of hex"
            ))
        })?,
        (None, None) => {
            return Err(malformed(
                "no deviceInfo.devEui (v4) nor devEUI (v3)".into(),
            ))
        }
    };
    if parse_hex_eui(topic_dev_eui) != Some(dev_eui) {
        return Err(malformed(format!(
            "the topic names device {topic_dev_eui}, the event {}",
            hex::encode(dev_eui)
        )));
    }
    let device = devices
        .by_dev_eui(&dev_eui)
        .filter(|device| device.active)
        .ok_or_else(|| {
            IngestError::new(
                RejectReason::Unauthenticated,
                format!("no active device has DevEUI {}", hex::encode(dev_eui)),
            )
        })?;
    let data = event
        .data
        .as_deref()
        .ok_or_else(|| malformed(format!("device {}: uplink without data", device.id)))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|err| malformed(format!("device {}: data is not base64: {err}", device.id)))?;
    let port = event
        .f_port
        .ok_or_else(|| malformed(format!("device {}: uplink without fPort", device.id)))?;
    let timestamp = event_time(&event)
        .map_err(|err| malformed(format!("device {}: {err}", device.id)))?
        .unwrap_or_else(now_ms);
    let readings = codec::decode(&device, port, &bytes, timestamp)
        .map_err(|err| malformed(format!("device {}: payload {err}", device.id)))?;
    Ok((device, readings))
}

/// The event's time, if it carries one.
fn event_time(event: &UplinkEvent) -> Result<Option<i64>, String> {
    let gateway_time = event
        .rx_info
        .iter()
        .find_map(|rx| rx.gw_time.as_deref().or(rx.time.as_deref()));
    event
        .time
        .as_deref()
        .or(gateway_time)
        .map(|text| parse_rfc3339_ms(text).map_err(|err| format!("time `{text}`: {err}")))
        .transpose()
}

fn parse_hex_eui(text: &str) -> Option<[u8; 8]> {
    let mut eui = [0; 8];
    hex::decode_to_slice(text, &mut eui).ok()?;
    Some(eui)
}

fn parse_v3_eui(text: &str) -> Option<[u8; 8]> {
    parse_hex_eui(text).or_else(|| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        bytes.try_into().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::LorawanSession;

    const EUI: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn registry() -> DeviceRegistry {
        DeviceRegistry::new(vec![Device {
            id: "lora1".into(),
            municipality: "town".into(),
            sensors: vec!["p1".into(), "f1".into()],
            key_sha256: [0; 32],
            active: true,
            lorawan: Some(LorawanSession {
                dev_eui: Some(EUI),
                dev_addr: 1,
                nwk_s_key: [0; 16],
                app_s_key: [0; 16],
            }),
        }])
        .unwrap()
    }

    fn records(values: &[(u8, f32)]) -> String {
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|(index, value)| std::iter::once(*index).chain(value.to_be_bytes()))
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn v4_and_v3_events() {
        let registry = registry();
        let v4 = format!(
            r#"{{"deviceInfo": {{"devEui": "0102030405060708", "tenantId": "t"}}, "fCnt": 3,
                "fPort": 1, "data": "{}", "time": "1970-01-01T00:00:05Z", "object": {{}}}}"#,
            records(&[(1, 2.5)])
        );
        let (device, readings) =
            uplink_readings(&registry, "0102030405060708", v4.as_bytes()).unwrap();
        assert_eq!(device.id, "lora1");
        assert_eq!(readings, vec![Reading::new("f1", 5000, 2.5)]);
        let v3 = format!(
            r#"{{"devEUI": "AQIDBAUGBwg=", "fCnt": 3, "fPort": 1, "data": "{}",
                "rxInfo": [{{"time": "1970-01-01T00:00:06Z", "rssi": -50}}]}}"#,
            records(&[(0, -1.0)])
        );
        let (_, readings) = uplink_readings(&registry, "0102030405060708", v3.as_bytes()).unwrap();
        assert_eq!(readings, vec![Reading::new("p1", 6000, -1.0)]);
    }

    #[test]
    fn refusals() {
        let registry = registry();
        let good = records(&[(0, 1.0)]);
        for (topic, payload, reason) in [
            ("0102030405060708", "{".to_string(), RejectReason::Malformed),
            (
                "0102030405060708",
                r#"{"fPort": 1}"#.to_string(),
                RejectReason::Malformed,
            ),
            (
                "0102030405060709",
                format!(r#"{{"devEUI": "0102030405060709", "fPort": 1, "data": "{good}"}}"#),
                RejectReason::Unauthenticated,
            ),
            (
                "0102030405060709",
                format!(r#"{{"devEUI": "0102030405060708", "fPort": 1, "data": "{good}"}}"#),
                RejectReason::Malformed,
            ),
            (
                "0102030405060708",
                r#"{"devEUI": "0102030405060708", "fPort": 1, "data": "!!"}"#.to_string(),
                RejectReason::Malformed,
            ),
            (
                "0102030405060708",
                format!(r#"{{"devEUI": "0102030405060708", "fPort": 9, "data": "{good}"}}"#),
                RejectReason::Malformed,
            ),
        ] {
            let err = uplink_readings(&registry, topic, payload.as_bytes()).unwrap_err();
            assert_eq!(err.reason, reason, "{payload}: {}", err.detail);
        }
    }
}

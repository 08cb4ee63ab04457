//! LoRaWAN devices behind a Semtech UDP packet forwarder: each message is a data uplink
//! (PHYPayload built, encrypted and signed with the `lorawan` crate from the device's ABP
//! session keys) in a PUSH_DATA datagram; the gateway's PUSH_ACK ends the exchange (it says
//! "received", LoRaWAN has no acknowledgement of storage).
//!
//! Payload: the default codec of `actors::gateway::codec`, FPort 1, records of
//! `[sensor index u8][value f32 big-endian]`, the index into the device's sensor list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use lorawan::creator::DataPayloadCreator;
use lorawan::keys::{AppSKey, NewSKey};
use tokio::net::UdpSocket;
use twin::telemetry_files::format_rfc3339;

use super::source::ReadingSource;
use super::Pacing;

/// Records per uplink at most (5 bytes each; 222 bytes is the largest FRMPayload).
const MAX_RECORDS: usize = 40;
/// How long to wait for a PUSH_ACK.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Semtech UDP protocol version.
const PROTOCOL_VERSION: u8 = 2;

/// A device's ABP session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Device address.
    pub dev_addr: u32,
    /// Network session key.
    pub nwk_s_key: [u8; 16],
    /// Application session key.
    pub app_s_key: [u8; 16],
    /// Where the next frame counter is kept between runs (a gateway refuses counters it has
    /// seen).
    pub fcnt_file: Option<PathBuf>,
}

impl Session {
    /// A session from hex text.
    pub fn from_hex(
        dev_addr: &str,
        nwk_s_key: &str,
        app_s_key: &str,
        fcnt_file: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let mut addr = [0u8; 4];
        let mut nwk = [0u8; 16];
        let mut app = [0u8; 16];
        hex::decode_to_slice(dev_addr, &mut addr).context("dev_addr is not 8 hex digits")?;
        hex::decode_to_slice(nwk_s_key, &mut nwk).context("nwk_s_key is not 32 hex digits")?;
        hex::decode_to_slice(app_s_key, &mut app).context("app_s_key is not 32 hex digits")?;
        Ok(Self {
            dev_addr: u32::from_be_bytes(addr),
            nwk_s_key: nwk,
            app_s_key: app,
            fcnt_file,
        })
    }
}

/// Sends `source`'s readings as uplinks of `session` to the packet-forwarder gateway `target`,
/// up to `batch` (at most 40) readings per uplink.
pub async fn publish(
    target: SocketAddr,
    session: &Session,
    mut source: ReadingSource,
    batch: usize,
    pacing: Pacing,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(target).await?;
    let shared = source.shared().clone();
    let records = batch.clamp(1, MAX_RECORDS);
    let mut pacer = pacing.pacer(records);
    let gateway_eui: [u8; 8] = [0xAA, 0x55, 0, 0, 0, 0, 0, 1];
    let mut fcnt = match &session.fcnt_file {
        Some(path) => std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0),
        None => 0,
    };
    let mut token: u16 = rand::random();
    let mut answer = [0u8; 64];
    loop {
        if let Some(wait) = pacer.wait() {
            tokio::time::sleep(wait).await;
        }
        let mut samples = source.across_sensors(records, true);
        let Some(frame_time) = samples.first().map(|sample| sample.timestamp) else {
            break;
        };
        // Record what the gateway will decode: the frame's time, values as f32.
        for sample in &mut samples {
            sample.timestamp = frame_time;
            sample.value = f64::from(sample.value as f32);
        }
        let mut frm_payload = Vec::with_capacity(5 * samples.len());
        for sample in &samples {
            let index = source
                .slot_of(sample.sensor)
                .and_then(|slot| u8::try_from(slot).ok())
                .context("a LoRaWAN device reports for at most 256 sensors")?;
            frm_payload.push(index);
            frm_payload.extend_from_slice(&(sample.value as f32).to_be_bytes());
        }
        let phy = uplink(session, fcnt, &frm_payload)?;
        fcnt = fcnt.wrapping_add(1);
        token = token.wrapping_add(1);
        let rxpk = serde_json::json!({"rxpk": [{
            "tmst": 0,
            "time": rfc3339(frame_time),
            "chan": 0, "rfch": 0, "freq": 868.1, "stat": 1, "modu": "LORA",
            "datr": "SF7BW125", "codr": "4/5", "rssi": -60, "lsnr": 9.5,
            "size": phy.len(),
            "data": base64::engine::general_purpose::STANDARD.encode(&phy),
        }]});
        let mut datagram = vec![PROTOCOL_VERSION, (token >> 8) as u8, token as u8, 0x00];
        datagram.extend_from_slice(&gateway_eui);
        datagram.extend_from_slice(rxpk.to_string().as_bytes());
        let sent = Instant::now();
        shared.sent(samples.len());
        socket.send(&datagram).await?;
        let acked = tokio::time::timeout(ACK_TIMEOUT, async {
            loop {
                let read = socket.recv(&mut answer).await?;
                let [version, high, low, kind, ..] = answer[..read] else {
                    continue;
                };
                if version == PROTOCOL_VERSION
                    && kind == 0x01
                    && u16::from_be_bytes([high, low]) == token
                {
                    return Ok::<_, std::io::Error>(());
                }
            }
        })
        .await;
        match acked {
            Ok(Ok(())) => {
                shared.acknowledged(&samples, sent);
            }
            Ok(Err(err)) => bail!("the gateway is unreachable: {err}"),
            Err(_) => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if let Some(path) = &session.fcnt_file {
        std::fs::write(path, fcnt.to_string())
            .with_context(|| format!("cannot keep the frame counter in {}", path.display()))?;
    }
    Ok(())
}

/// An unconfirmed data uplink PHYPayload.
fn uplink(session: &Session, fcnt: u32, frm_payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut creator = DataPayloadCreator::new();
    creator
        .set_uplink(true)
        .set_confirmed(false)
        .set_f_port(actors::gateway::codec::SENSOR_RECORDS_PORT)
        // DevAddr travels little-endian.
        .set_dev_addr(lorawan::parser::DevAddr::from(
            session.dev_addr.swap_bytes(),
        ))
        .set_fctrl(&lorawan::parser::FCtrl::new(0x00, true))
        .set_fcnt(fcnt);
    let nwk = NewSKey::from(session.nwk_s_key);
    let app = AppSKey::from(session.app_s_key);
    let phy = creator
        .build(frm_payload, &[], &nwk, &app)
        .map_err(|err| anyhow::anyhow!("cannot build the uplink: {err:?}"))?;
    Ok(phy.to_vec())
}

/// RFC 3339 (UTC, milliseconds) of Unix ms `timestamp`.
fn rfc3339(timestamp: i64) -> String {
    let seconds = format_rfc3339(timestamp);
    // `...SSZ` -> `...SS.mmmZ`
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        timestamp.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_305_600_123), "2026-11-22T00:00:00.123Z");
    }

    #[test]
    fn uplink_parses_back_with_the_session() {
        let session = Session::from_hex(
            "26011BDA",
            "000102030405060708090a0b0c0d0e0f",
            "101112131415161718191a1b1c1d1e1f",
            None,
        )
        .unwrap();
        let phy = uplink(&session, 7, &[0, 1, 2, 3, 4]).unwrap();
        // MHDR unconfirmed up, DevAddr little-endian, FCtrl 0, FCnt 7 little-endian, FPort 1.
        assert_eq!(
            &phy[..9],
            &[0x40, 0xDA, 0x1B, 0x01, 0x26, 0x00, 0x07, 0x00, 0x01]
        );
        let parsed = lorawan::parser::parse(phy).unwrap();
        let lorawan::parser::PhyPayload::Data(lorawan::parser::DataPayload::Encrypted(data)) =
            parsed
        else {
            panic!("not an encrypted data payload");
        };
        assert!(data.validate_mic(&lorawan::keys::AES128(session.nwk_s_key), 7));
    }
}

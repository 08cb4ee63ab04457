//! The Semtech UDP packet forwarder protocol (default 127.0.0.1:1700): raw LoRaWAN frames from
//! gateways, decoded with the `lorawan` crate.
//!
//! Datagrams: `[version][token: 2][identifier][...]`, versions 1 and 2.
//! - PUSH_DATA (`0x00`, then the gateway EUI (8) and JSON `{"rxpk": [..]}`) is answered at
//!   once with PUSH_ACK (`0x01`, same token); then each `rxpk` whose CRC is not known bad
//!   (`stat` != -1) is decoded: `data` is the base64 PHYPayload, `time` (RFC 3339, when the
//!   gateway has GPS or NTP time) stamps the readings, else the time of arrival.
//! - PULL_DATA (`0x02`) is answered with PULL_ACK (`0x04`); TX_ACK (`0x05`) is accepted
//!   silently (no downlinks are sent). Anything else is counted `malformed`.
//!
//! A frame must be a data uplink of a configured ABP device (by DevAddr) whose MIC verifies
//! with the device's NwkSKey under the reconstructed 32-bit frame counter (the frame carries
//! its low 16 bits; the high bits come from the last accepted counter, and a frame that only
//! verifies with the counter of an already accepted frame is a replay). A counter equal to or
//! below the last accepted one is counted `replay`; a MIC that does not verify `malformed`; an
//! unknown or deactivated device `unauthenticated`. The FRMPayload (FPort > 0) is decrypted
//! with the AppSKey and decoded by [`super::codec`]; MAC-only frames (FPort 0 or none) carry no
//! reading.
//!
//! The last accepted counter of each device is kept in the store under
//! `(tenant, "lorawan_fcnt", dev_addr)` (4 bytes, big-endian), so a restart does not reopen
//! the replay window. It is written with buffered durability before the frame's readings are
//! submitted: the readings' own durable commit makes it durable too, and a frame whose counter
//! was lost in a crash had no acknowledged reading.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use lorawan::keys::AES128;
use lorawan::parser::{parse, DataHeader, DataPayload, FRMPayload, PhyPayload};
use serde::Deserialize;
use tokio::net::UdpSocket;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use twin::store::tuple::Element;
use twin::store::{TenantKeys, WriteBatch};
use twin::{Durability, Reading, Store};

use super::{codec, now_ms, payload::parse_rfc3339_ms, stopped, GatewayError};
use crate::devices::Device;
use crate::ingest::{Gateway, IngestError, IngestHandle, RejectReason};

const PUSH_DATA: u8 = 0x00;
const PUSH_ACK: u8 = 0x01;
const PULL_DATA: u8 = 0x02;
const PULL_ACK: u8 = 0x04;
const TX_ACK: u8 = 0x05;
/// Header and gateway EUI before PUSH_DATA's JSON.
const PUSH_DATA_HEADER: usize = 12;
/// Frames being stored at once; further datagrams wait (the socket buffers them).
const MAX_INFLIGHT: usize = 1024;
/// Record family of the frame counters.
const FCNT_FAMILY: &str = "lorawan_fcnt";

/// A running UDP gateway.
#[derive(Debug)]
pub struct LorawanUdpHandle {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LorawanUdpHandle {
    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops receiving and waits for the task (submissions under way finish on their own).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds `addr` (UDP) and serves the packet forwarder protocol there; frame counters are kept
/// in `store`. Returns once bound.
pub async fn start_lorawan_udp(
    addr: SocketAddr,
    ingest: IngestHandle,
    store: Arc<dyn Store>,
) -> Result<LorawanUdpHandle, GatewayError> {
    let bind_error = |source| GatewayError::Bind {
        addr: addr.to_string(),
        source,
    };
    let socket = UdpSocket::bind(addr).await.map_err(bind_error)?;
    let local_addr = socket.local_addr().map_err(bind_error)?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let decoder = FrameDecoder {
        ingest,
        store,
        counters: HashMap::new(),
    };
    let task = tokio::spawn(receive_loop(socket, decoder, shutdown_rx));
    tracing::info!(%local_addr, "LoRaWAN UDP gateway listening");
    Ok(LorawanUdpHandle {
        local_addr,
        shutdown,
        task,
    })
}

#[derive(Deserialize)]
struct PushData {
    #[serde(default)]
    rxpk: Vec<Rxpk>,
}

#[derive(Deserialize)]
struct Rxpk {
    data: String,
    time: Option<String>,
    stat: Option<i8>,
}

async fn receive_loop(
    socket: UdpSocket,
    mut decoder: FrameDecoder,
    mut shutdown: watch::Receiver<bool>,
) {
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT));
    let mut datagram = vec![0u8; 65_536];
    loop {
        let (len, peer) = tokio::select! {
            () = stopped(&mut shutdown) => return,
            received = socket.recv_from(&mut datagram) => match received {
                Ok(received) => received,
                Err(err) => {
                    tracing::warn!("LoRaWAN UDP receive failed: {err}");
                    continue;
                }
            },
        };
        let datagram = &datagram[..len];
        let ingest = decoder.ingest.clone();
        let malformed = |detail: String| {
            ingest.reject(
                Gateway::LorawanUdp,
                RejectReason::Malformed,
                &format!("{peer}: {detail}"),
            )
        };
        let [version @ (1 | 2), token_hi, token_lo, identifier, ..] = *datagram else {
            malformed(format!("not a packet forwarder datagram ({len} bytes)"));
            continue;
        };
        let answer = |kind: u8| [version, token_hi, token_lo, kind];
        match identifier {
            PUSH_DATA if len >= PUSH_DATA_HEADER => {
                let _ = socket.send_to(&answer(PUSH_ACK), peer).await;
                let push: PushData = match serde_json::from_slice(&datagram[PUSH_DATA_HEADER..]) {
                    Ok(push) => push,
                    Err(err) => {
                        malformed(format!("PUSH_DATA JSON: {err}"));
                        continue;
                    }
                };
                for rxpk in push.rxpk.iter().filter(|rxpk| rxpk.stat != Some(-1)) {
                    let (device, readings) = match decoder.decode(rxpk) {
                        Ok(Some(decoded)) => decoded,
                        Ok(None) => continue,
                        Err(err) => {
                            let detail = format!("{peer}: {}", err.detail);
                            ingest.reject(Gateway::LorawanUdp, err.reason, &detail);
                            continue;
                        }
                    };
                    let Ok(permit) = inflight.clone().acquire_owned().await else {
                        return;
                    };
                    let ingest = ingest.clone();
                    tokio::spawn(async move {
                        // Counted by submit; LoRaWAN uplinks have no acknowledgement to send.
                        let _ = ingest.submit(Gateway::LorawanUdp, device, readings).await;
                        drop(permit);
                    });
                }
            }
            PULL_DATA if len == PUSH_DATA_HEADER => {
                let _ = socket.send_to(&answer(PULL_ACK), peer).await;
            }
            TX_ACK if len >= PUSH_DATA_HEADER => {}
            other => malformed(format!("unexpected identifier {other:#04x} in {len} bytes")),
        }
    }
}

/// Decodes frames and keeps each device's last accepted frame counter.
struct FrameDecoder {
    ingest: IngestHandle,
    store: Arc<dyn Store>,
    /// Last accepted 32-bit counter by DevAddr (loaded from the store on first use).
    counters: HashMap<u32, Option<u32>>,
}

fn malformed(detail: impl Into<String>) -> IngestError {
    IngestError::new(RejectReason::Malformed, detail)
}

fn counter_key(device: &Device, dev_addr: u32) -> Vec<u8> {
    TenantKeys::new(&device.municipality).key(&[
        Element::from(FCNT_FAMILY),
        Element::Int(i64::from(dev_addr)),
    ])
}

/// A decoded frame: its device and readings.
type Uplink = (Arc<Device>, Vec<Reading>);

impl FrameDecoder {
    /// The device and readings of one received packet; `None` for a frame without readings.
    fn decode(&mut self, rxpk: &Rxpk) -> Result<Option<Uplink>, IngestError> {
        let timestamp = match rxpk.time.as_deref() {
            Some(text) => parse_rfc3339_ms(text)
                .map_err(|err| malformed(format!("rxpk time `{text}`: {err}")))?,
            None => now_ms(),
        };
        let phy = base64::engine::general_purpose::STANDARD
            .decode(&rxpk.data)
            .map_err(|err| malformed(format!("rxpk data is not base64: {err}")))?;
        let Ok(PhyPayload::Data(DataPayload::Encrypted(frame))) = parse(phy) else {
            return Err(malformed("not a LoRaWAN data frame"));
        };
        if !frame.is_uplink() {
            return Err(malformed("a downlink frame"));
        }
        let fhdr = frame.fhdr();
        let mut addr_bytes = [0u8; 4];
        addr_bytes.copy_from_slice(fhdr.dev_addr().as_ref());
        // DevAddr travels least significant byte first.
        let dev_addr = u32::from_le_bytes(addr_bytes);
        let frame_fcnt = fhdr.fcnt();
        let (device, session) = self
            .ingest
            .devices()
            .by_dev_addr(dev_addr)
            .filter(|device| device.active)
            .and_then(|device| {
                let session = device.lorawan.clone()?;
                Some((device, session))
            })
            .ok_or_else(|| {
                IngestError::new(
                    RejectReason::Unauthenticated,
                    format!("no active LoRaWAN device has DevAddr {dev_addr:08X}"),
                )
            })?;
        let last = self.last_counter(&device, dev_addr)?;
        let nwk_s_key = AES128(session.nwk_s_key);
        let fcnt = full_counter(last, frame_fcnt, |candidate| {
            frame.validate_mic(&nwk_s_key, candidate)
        })
        .map_err(|verdict| match verdict {
            CounterVerdict::Replay(counter) => IngestError::new(
                RejectReason::Replay,
                format!(
                    "device {}: frame counter {counter} already seen (last {})",
                    device.id,
                    last.unwrap_or_default()
                ),
            ),
            CounterVerdict::BadMic => {
                malformed(format!("device {}: MIC does not verify", device.id))
            }
        })?;
        let app_s_key = AES128(session.app_s_key);
        let port = frame.f_port();
        let decrypted = frame
            .decrypt(Some(&nwk_s_key), Some(&app_s_key), fcnt)
            .map_err(|err| malformed(format!("device {}: cannot decrypt: {err:?}", device.id)))?;
        self.accept_counter(&device, dev_addr, fcnt)?;
        let (Some(port @ 1..), FRMPayload::Data(bytes)) = (port, decrypted.frm_payload()) else {
            return Ok(None);
        };
        let readings = codec::decode(&device, port, bytes, timestamp)
            .map_err(|err| malformed(format!("device {}: payload {err}", device.id)))?;
        Ok(Some((device, readings)))
    }

    fn last_counter(&mut self, device: &Device, dev_addr: u32) -> Result<Option<u32>, IngestError> {
        if let Some(last) = self.counters.get(&dev_addr) {
            return Ok(*last);
        }
        let stored = self
            .store
            .get(&counter_key(device, dev_addr))
            .map_err(|err| IngestError::new(RejectReason::Unavailable, err.to_string()))?;
        let last = match stored {
            None => None,
            Some(bytes) => Some(u32::from_be_bytes(bytes.as_slice().try_into().map_err(
                |_| {
                    IngestError::new(
                        RejectReason::Unavailable,
                        format!(
                            "stored frame counter of {dev_addr:08X} has {} bytes",
                            bytes.len()
                        ),
                    )
                },
            )?)),
        };
        self.counters.insert(dev_addr, last);
        Ok(last)
    }

    fn accept_counter(
        &mut self,
        device: &Device,
        dev_addr: u32,
        fcnt: u32,
    ) -> Result<(), IngestError> {
        let mut batch = WriteBatch::new();
        batch.put(counter_key(device, dev_addr), fcnt.to_be_bytes().to_vec());
        self.store
            .write(batch, Durability::Buffered)
            .map_err(|err| IngestError::new(RejectReason::Unavailable, err.to_string()))?;
        self.counters.insert(dev_addr, Some(fcnt));
        Ok(())
    }
}

/// Why a frame's counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CounterVerdict {
    /// The frame is authentic but its counter was accepted before.
    Replay(u32),
    /// The MIC verifies under no plausible counter.
    BadMic,
}

/// The 32-bit counter of a frame carrying `frame_fcnt` after `last` was accepted, among the
/// candidates whose MIC verifies (`mic_ok`).
fn full_counter(
    last: Option<u32>,
    frame_fcnt: u16,
    mic_ok: impl Fn(u32) -> bool,
) -> Result<u32, CounterVerdict> {
    let Some(last) = last else {
        return if mic_ok(u32::from(frame_fcnt)) {
            Ok(u32::from(frame_fcnt))
        } else {
            Err(CounterVerdict::BadMic)
        };
    };
    let same_epoch = (last & 0xFFFF_0000) | u32::from(frame_fcnt);
    if same_epoch > last {
        return if mic_ok(same_epoch) {
            Ok(same_epoch)
        } else {
            Err(CounterVerdict::BadMic)
        };
    }
    // The 16 low bits wrapped around, or the frame is old.
    match same_epoch.checked_add(0x1_0000) {
        Some(next_epoch) if mic_ok(next_epoch) => Ok(next_epoch),
        _ if mic_ok(same_epoch) => Err(CounterVerdict::Replay(same_epoch)),
        _ => Err(CounterVerdict::BadMic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{DeviceRegistry, LorawanSession};
    use crate::metrics::Metrics;
    use twin::store::MemoryStore;

    fn decoder() -> FrameDecoder {
        let device = Device {
            id: "lora".into(),
            municipality: "town".into(),
            sensors: vec!["p1".into()],
            key_sha256: [0; 32],
            active: true,
            lorawan: Some(LorawanSession {
                dev_eui: None,
                dev_addr: 0x0102_0304,
                nwk_s_key: [1; 16],
                app_s_key: [1; 16],
            }),
        };
        let (requests, _) = tokio::sync::mpsc::channel(1);
        let registry = Arc::new(DeviceRegistry::new(vec![device]).unwrap());
        FrameDecoder {
            ingest: IngestHandle::new(requests, registry, Arc::new(Metrics::default())),
            store: Arc::new(MemoryStore::new()),
            counters: HashMap::new(),
        }
    }

    fn rxpk(phy: &[u8]) -> Rxpk {
        Rxpk {
            data: base64::engine::general_purpose::STANDARD.encode(phy),
            time: None,
            stat: Some(1),
        }
    }

    #[test]
    fn truncated_and_corrupted_frames_are_refused_without_panic() {
        // The lorawan crate's documented example frame: DevAddr 01020304, FCnt 1, AppSKey 1s.
        let frame = [
            0x40, 0x04, 0x03, 0x02, 0x01, 0x80, 0x01, 0x00, 0x01, 0xa6, 0x94, 0x64, 0x26, 0x15,
            0xd6, 0xc3, 0xb5, 0x82,
        ];
        let mut decoder = decoder();
        for len in 0..frame.len() {
            assert!(decoder.decode(&rxpk(&frame[..len])).is_err(), "{len} bytes");
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut corrupted = frame;
            for _ in 0..3 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                corrupted[(state >> 8) as usize % frame.len()] ^= (state >> 24) as u8 | 1;
            }
            // Anything may be refused for any reason, but only as an error.
            let _ = decoder.decode(&rxpk(&corrupted));
        }
        let bad_time = Rxpk {
            time: Some("yesterday".into()),
            ..rxpk(&frame)
        };
        assert_eq!(
            decoder.decode(&bad_time).unwrap_err().reason,
            RejectReason::Malformed
        );
    }

    #[test]
    fn counters_continue_wrap_and_refuse_replays() {
        // The "device" signed with counter `true_fcnt`.
        let verdict =
            |last, true_fcnt: u32| full_counter(last, true_fcnt as u16, |c| c == true_fcnt);
        assert_eq!(verdict(None, 5), Ok(5));
        assert_eq!(verdict(Some(5), 6), Ok(6));
        assert_eq!(verdict(Some(5), 5), Err(CounterVerdict::Replay(5)));
        assert_eq!(verdict(Some(5), 3), Err(CounterVerdict::Replay(3)));
        assert_eq!(verdict(Some(0xFFFF), 0x1_0000), Ok(0x1_0000));
        assert_eq!(
            verdict(Some(0x1_0002), 0x1_0001),
            Err(CounterVerdict::Replay(0x1_0001))
        );
        assert_eq!(verdict(Some(0x2_FFF0), 0x3_0004), Ok(0x3_0004));
        // Signed with a key we do not have: no counter verifies.
        assert_eq!(
            full_counter(Some(5), 6, |_| false),
            Err(CounterVerdict::BadMic)
        );
        assert_eq!(
            full_counter(None, 6, |_| false),
            Err(CounterVerdict::BadMic)
        );
    }
}

//! The Semtech UDP gateway driven with LoRaWAN frames built by an independent implementation
//! (Python `pamoja-lorawan`, `tests/peers/lorawan_uplink.py`), sent over UDP as a packet
//! forwarder would.

mod gateway_support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use actors::devices::LorawanSession;
use actors::gateway::lorawan_udp::{start_lorawan_udp, LorawanUdpHandle};
use actors::ingest::{Gateway, RejectReason};
use gateway_support::*;
use tokio::net::UdpSocket;
use twin::store::MemoryStore;
use twin::{Reading, Store};

const DEV_ADDR: u32 = 0x2601_1234;
const NWK_S_KEY: [u8; 16] = [
    0x2B, 0x7E, 0x15, 0x16, 0x28, 0xAE, 0xD2, 0xA6, 0xAB, 0xF7, 0x15, 0x88, 0x09, 0xCF, 0x4F, 0x3C,
];
const APP_S_KEY: [u8; 16] = [
    0x16, 0x28, 0xAE, 0xD2, 0xA6, 0xAB, 0xF7, 0x15, 0x88, 0x09, 0xCF, 0x4F, 0x3C, 0x2B, 0x7E, 0x15,
];
const GATEWAY_EUI: [u8; 8] = [0xAA, 0x55, 0x5A, 0, 0, 0, 0x10, 0x01];

fn devices() -> Vec<actors::devices::Device> {
    vec![lorawan_device(
        "lora-1",
        &["lp1", "lf1"],
        LorawanSession {
            dev_eui: None,
            dev_addr: DEV_ADDR,
            nwk_s_key: NWK_S_KEY,
            app_s_key: APP_S_KEY,
        },
    )]
}

/// `[index][f32 BE]` records, as the default codec documents.
fn records(values: &[(u8, f32)]) -> String {
    values
        .iter()
        .map(|(index, value)| format!("{index:02x}{}", hex::encode(value.to_be_bytes())))
        .collect()
}

/// An uplink PHYPayload (base64) built by the Python peer.
async fn uplink(
    dev_addr: u32,
    nwk_s_key: &[u8; 16],
    fcnt: u32,
    port: u8,
    payload_hex: &str,
) -> String {
    let output = run(
        Command::new("python3")
            .arg(peer_script("lorawan_uplink.py"))
            .arg(format!("{dev_addr:08x}"))
            .arg(hex::encode(nwk_s_key))
            .arg(hex::encode(APP_S_KEY))
            .arg(fcnt.to_string())
            .arg(port.to_string())
            .arg(payload_hex),
        Duration::from_secs(20),
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

struct Forwarder {
    socket: UdpSocket,
    token: u16,
}

impl Forwarder {
    async fn new(gateway: &LorawanUdpHandle) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(gateway.local_addr()).await.unwrap();
        Self {
            socket,
            token: 0x1000,
        }
    }

    async fn exchange(&mut self, identifier: u8, body: &[u8]) -> Vec<u8> {
        self.token += 1;
        let mut datagram = vec![2, (self.token >> 8) as u8, self.token as u8, identifier];
        datagram.extend(GATEWAY_EUI);
        datagram.extend(body);
        self.socket.send(&datagram).await.unwrap();
        let mut answer = vec![0; 64];
        let len = tokio::time::timeout(Duration::from_secs(5), self.socket.recv(&mut answer))
            .await
            .expect("an answer")
            .unwrap();
        answer.truncate(len);
        answer
    }

    /// Sends PUSH_DATA with one rxpk and checks the PUSH_ACK.
    async fn push(&mut self, phy_base64: &str, time: &str) {
        let json = format!(
            r#"{{"rxpk": [{{"time": "{time}", "tmst": 3512348611, "chan": 2, "rfch": 0,
                "freq": 868.1, "stat": 1, "modu": "LORA", "datr": "SF7BW125", "codr": "4/5",
                "rssi": -35, "lsnr": 5.1, "size": 18, "data": "{phy_base64}"}}]}}"#
        );
        let answer = self.exchange(0x00, json.as_bytes()).await;
        assert_eq!(
            answer,
            vec![2, (self.token >> 8) as u8, self.token as u8, 0x01]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplinks_are_verified_decrypted_decoded_and_replays_refused() {
    let twin = FakeTwin::new(devices());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let gateway = start_lorawan_udp(localhost(0), twin.ingest.clone(), store.clone())
        .await
        .unwrap();
    let mut forwarder = Forwarder::new(&gateway).await;
    let count = |reason| twin.metrics.rejected_count(Gateway::LorawanUdp, reason);

    let pull = forwarder.exchange(0x02, &[]).await;
    assert_eq!(
        pull,
        vec![2, (forwarder.token >> 8) as u8, forwarder.token as u8, 0x04]
    );

    let first = uplink(
        DEV_ADDR,
        &NWK_S_KEY,
        1,
        1,
        &records(&[(0, 10.0), (1, -3.0)]),
    )
    .await;
    forwarder.push(&first, "2026-11-22T20:00:00.500Z").await;
    let t0 = 1_795_377_600_500;
    assert_eq!(
        twin.wait_readings(2).await,
        vec![Reading::new("lp1", t0, 10.0), Reading::new("lf1", t0, -3.0)]
    );

    // The same frame again: authentic, but its counter was used.
    forwarder.push(&first, "2026-11-22T20:00:01Z").await;
    eventually("the replay", || count(RejectReason::Replay) == 1).await;

    // Signed with another network key: the MIC does not verify.
    let forged = uplink(DEV_ADDR, &[0x55; 16], 2, 1, &records(&[(0, 99.0)])).await;
    forwarder.push(&forged, "2026-11-22T20:00:02Z").await;
    eventually("the bad MIC", || count(RejectReason::Malformed) == 1).await;

    // An unknown device address.
    let stranger = uplink(0x2601_9999, &NWK_S_KEY, 1, 1, &records(&[(0, 1.0)])).await;
    forwarder.push(&stranger, "2026-11-22T20:00:03Z").await;
    eventually("the unknown device", || {
        count(RejectReason::Unauthenticated) == 1
    })
    .await;

    // Counter 65537 travels as 1: the gateway must carry the upper 16 bits.
    let wrapped = uplink(DEV_ADDR, &NWK_S_KEY, 65_537, 1, &records(&[(1, 0.25)])).await;
    forwarder.push(&wrapped, "2026-11-22T20:00:04Z").await;
    let readings = twin.wait_readings(3).await;
    assert_eq!(readings[2], Reading::new("lf1", t0 + 3500, 0.25));

    // A restarted gateway remembers the counter (kept in the store).
    gateway.shutdown().await;
    let gateway = start_lorawan_udp(localhost(0), twin.ingest.clone(), store)
        .await
        .unwrap();
    let mut forwarder = Forwarder::new(&gateway).await;
    forwarder.push(&wrapped, "2026-11-22T20:00:05Z").await;
    eventually("the replay after restart", || {
        count(RejectReason::Replay) == 2
    })
    .await;
    let next = uplink(DEV_ADDR, &NWK_S_KEY, 65_538, 1, &records(&[(0, 7.5)])).await;
    forwarder.push(&next, "2026-11-22T20:00:06Z").await;
    let readings = twin.wait_readings(4).await;
    assert_eq!(readings[3], Reading::new("lp1", t0 + 5500, 7.5));

    // Not a packet forwarder datagram, and a PUSH_DATA with broken JSON.
    forwarder.socket.send(b"hello").await.unwrap();
    let answer = forwarder.exchange(0x00, b"{\"rxpk\": [").await;
    assert_eq!(answer[3], 0x01, "PUSH_DATA is acknowledged before parsing");
    eventually("the malformed datagrams", || {
        count(RejectReason::Malformed) == 3
    })
    .await;
    assert_eq!(twin.metrics.accepted_count(Gateway::LorawanUdp), 4);
    gateway.shutdown().await;
}

//! Throughput of the embedded broker with an in-process load: N publisher connections, each
//! keeping a window of QoS 1 publishes in flight, against a fake twin that answers at once.
//! It checks every publish is acknowledged and every reading counted, and prints msgs/s and
//! readings/s.
//!
//! The default is small (a check that runs in CI). For figures, in release:
//! `GATEWAY_LOAD_MESSAGES=400000 cargo test --release -p actors --test gateway_throughput -- --nocapture`

mod gateway_support;

use std::time::Instant;

use actors::gateway::mqtt_broker::{start_mqtt_broker, BrokerOptions};
use actors::ingest::Gateway;
use bytes::BytesMut;
use gateway_support::*;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 8;
/// Publishes in flight per connection.
const WINDOW: usize = 256;

fn messages_per_run() -> usize {
    std::env::var("GATEWAY_LOAD_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8_000)
}

async fn read_packet(stream: &mut TcpStream, incoming: &mut BytesMut) -> Packet {
    loop {
        match Packet::read(incoming, 1 << 20) {
            Ok(packet) => return packet,
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                assert!(
                    stream.read_buf(incoming).await.unwrap() > 0,
                    "broker closed"
                );
            }
            Err(err) => panic!("{err}"),
        }
    }
}

/// One publisher: connects as `device`, sends `count` messages of `payload` with `WINDOW` in
/// flight, and returns once every PUBACK arrived.
async fn publisher(
    addr: std::net::SocketAddr,
    device: String,
    topic: String,
    payload: Vec<u8>,
    count: usize,
) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut out = BytesMut::new();
    let mut connect = Connect::new(device.clone());
    connect.set_login(device.clone(), format!("{device}-key"));
    Packet::Connect(connect)
        .write(&mut out, usize::MAX)
        .unwrap();
    stream.write_all(&out).await.unwrap();
    out.clear();
    let mut incoming = BytesMut::with_capacity(64 * 1024);
    assert!(matches!(
        read_packet(&mut stream, &mut incoming).await,
        Packet::ConnAck(_)
    ));
    let payload = bytes::Bytes::from(payload);
    let (mut sent, mut acked) = (0usize, 0usize);
    while acked < count {
        while sent < count && sent - acked < WINDOW {
            let mut publish = Publish::from_bytes(topic.clone(), QoS::AtLeastOnce, payload.clone());
            publish.pkid = (sent % 65_535 + 1) as u16;
            Packet::Publish(publish)
                .write(&mut out, usize::MAX)
                .unwrap();
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await.unwrap();
            out.clear();
        }
        match read_packet(&mut stream, &mut incoming).await {
            Packet::PubAck(ack) => {
                assert_eq!(
                    usize::from(ack.pkid),
                    acked % 65_535 + 1,
                    "PUBACKs in order"
                );
                acked += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn load(batch: usize, messages: usize) {
    let devices = (0..CONNECTIONS)
        .map(|i| device(&format!("load-{i}"), "town", &[&format!("s{i}")]))
        .collect();
    let twin = FakeTwin::new(devices);
    twin.set_answer(Answer::Discard);
    let broker = start_mqtt_broker(localhost(0), twin.ingest.clone(), BrokerOptions::default())
        .await
        .unwrap();
    let per_connection = messages / CONNECTIONS;
    let readings: Vec<String> = (0..batch)
        .map(|i| {
            format!(
                r#"{{"ts": {}, "value": {}.25}}"#,
                1_795_377_600_000u64 + i as u64,
                i
            )
        })
        .collect();
    let payload = if batch == 1 {
        readings[0].clone()
    } else {
        format!("[{}]", readings.join(","))
    };
    let started = Instant::now();
    let publishers: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            tokio::spawn(publisher(
                broker.local_addr(),
                format!("load-{i}"),
                format!("aquatwin/town/sensors/s{i}/data"),
                payload.clone().into_bytes(),
                per_connection,
            ))
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let sent = CONNECTIONS * per_connection;
    assert_eq!(
        twin.metrics.accepted_count(Gateway::Mqtt),
        (sent * batch) as u64
    );
    broker.shutdown().await;
    let rate = sent as f64 / seconds;
    println!(
        "{CONNECTIONS} connections, {sent} QoS 1 messages of {batch} reading(s): {seconds:.2} s, \
         {rate:.0} msgs/s, {:.0} readings/s",
        rate * batch as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_single_readings_and_batches_are_all_acknowledged() {
    let messages = messages_per_run();
    load(1, messages).await;
    // A batch is 100 times the work of a single reading: a tenth of the messages.
    load(100, messages / 10).await;
}

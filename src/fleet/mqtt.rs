//! A pipelined MQTT 3.1.1 publisher (QoS 1) on `rumqttc`'s packet codec: many publishes in
//! flight per connection, each timed from its write to its PUBACK.
//!
//! rumqttc's own client hands out PUBACKs as events without the message they acknowledge; the
//! fleet must know which readings each PUBACK covers (the crash test's log), so it keeps its own
//! packet ids.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet, Publish};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use super::source::{readings_json, ReadingSource, RunShared, Sample};
use super::Pacing;

/// Largest packet we read (PUBACKs, CONNACK: tiny).
const MAX_INCOMING: usize = 1 << 16;
/// Largest packet we write.
const MAX_OUTGOING: usize = 1 << 24;
/// Bytes buffered before a write.
const WRITE_CHUNK: usize = 32 * 1024;
/// How long to wait for outstanding PUBACKs once sending stopped.
const DRAIN: Duration = Duration::from_secs(10);

/// Login of one MQTT connection.
pub struct MqttLogin {
    /// Client id, unique per connection.
    pub client_id: String,
    /// User name: the device id.
    pub device_id: String,
    /// Device key (password); none against an open broker.
    pub key: Option<String>,
}

struct InFlight {
    sent: Instant,
    samples: Vec<Sample>,
}

/// Publishes `source`'s readings to `target` until it runs dry: one reading per message, or
/// `batch` readings of one sensor per message.
pub async fn publish(
    target: SocketAddr,
    municipality: &str,
    login: MqttLogin,
    mut source: ReadingSource,
    batch: usize,
    pacing: Pacing,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("cannot connect to the MQTT broker at {target}"))?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let mut connect = Connect::new(login.client_id);
    connect.keep_alive = 60;
    connect.login = login
        .key
        .map(|key| Login::new(login.device_id.clone(), key));
    let mut out = BytesMut::new();
    Packet::Connect(connect).write(&mut out, MAX_OUTGOING)?;
    writer.write_all(&out).await?;
    out.clear();
    let mut incoming = BytesMut::with_capacity(4096);
    match read_packet(&mut reader, &mut incoming).await? {
        Some(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {}
        Some(Packet::ConnAck(ack)) => bail!(
            "the broker refused device {}: {:?}",
            login.device_id,
            ack.code
        ),
        other => bail!("expected CONNACK, got {other:?}"),
    }

    let shared = source.shared().clone();
    let window = Arc::new(Semaphore::new(pacing.inflight));
    let pending: Arc<Mutex<Vec<Option<InFlight>>>> =
        Arc::new(Mutex::new((0..=u16::MAX).map(|_| None).collect()));
    let mut acks = tokio::spawn(read_acks(
        reader,
        incoming,
        pending.clone(),
        window.clone(),
        shared.clone(),
    ));

    let readings_per_message = batch.max(1);
    let mut pacer = pacing.pacer(readings_per_message);
    let mut pkid: u16 = 0;
    loop {
        let permit = match window.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                flush(&mut writer, &mut out).await?;
                window.clone().acquire_owned().await?
            }
        };
        if let Some(wait) = pacer.wait() {
            flush(&mut writer, &mut out).await?;
            tokio::time::sleep(wait).await;
        }
        let samples = if batch > 1 {
            source.same_sensor(readings_per_message)
        } else {
            source.same_sensor(1)
        };
        let Some(first) = samples.first() else {
            break;
        };
        let topic = format!(
            "aquatwin/{municipality}/sensors/{}/data",
            shared.sensor_ids[first.sensor as usize]
        );
        pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, readings_json(&samples, None));
        publish.pkid = pkid;
        Packet::Publish(publish).write(&mut out, MAX_OUTGOING)?;
        shared.sent(samples.len());
        pending.lock().await[usize::from(pkid)] = Some(InFlight {
            sent: Instant::now(),
            samples,
        });
        // The PUBACK hands the permit back.
        permit.forget();
        if out.len() >= WRITE_CHUNK {
            flush(&mut writer, &mut out).await?;
        }
    }
    flush(&mut writer, &mut out).await?;
    // Every permit back means every publish was acknowledged.
    let all = u32::try_from(pacing.inflight).unwrap_or(u32::MAX);
    tokio::select! {
        // A lost broker ends the reader: what it acknowledged counts, the rest is lost.
        _ = &mut acks => {}
        drained = tokio::time::timeout(DRAIN, window.acquire_many(all)) => {
            if drained.is_ok() {
                Packet::Disconnect.write(&mut out, MAX_OUTGOING)?;
                flush(&mut writer, &mut out).await?;
            }
            acks.abort();
        }
    }
    Ok(())
}

async fn flush(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    out: &mut BytesMut,
) -> anyhow::Result<()> {
    if !out.is_empty() {
        writer
            .write_all(out)
            .await
            .context("the MQTT broker closed the connection")?;
        out.clear();
    }
    Ok(())
}

/// The next packet, or `None` at the end of the stream.
async fn read_packet(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
) -> anyhow::Result<Option<Packet>> {
    loop {
        match Packet::read(buffer, MAX_INCOMING) {
            Ok(packet) => return Ok(Some(packet)),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(err) => bail!("malformed packet from the broker: {err:?}"),
        }
        if reader.read_buf(buffer).await? == 0 {
            return Ok(None);
        }
    }
}

/// Reads PUBACKs until the broker closes the connection.
async fn read_acks(
    mut reader: OwnedReadHalf,
    mut buffer: BytesMut,
    pending: Arc<Mutex<Vec<Option<InFlight>>>>,
    window: Arc<Semaphore>,
    shared: Arc<RunShared>,
) {
    // The end of the run (our DISCONNECT) or a lost broker ends the loop: what was acknowledged
    // counts.
    while let Ok(Some(packet)) = read_packet(&mut reader, &mut buffer).await {
        if let Packet::PubAck(ack) = packet {
            let in_flight = pending.lock().await[usize::from(ack.pkid)].take();
            if let Some(in_flight) = in_flight {
                shared.acknowledged(&in_flight.samples, in_flight.sent);
                window.add_permits(1);
            }
        }
    }
}

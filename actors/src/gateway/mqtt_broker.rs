//! The embedded MQTT 3.1.1 broker (default 127.0.0.1:1883), on tokio with the packet codec of
//! `rumqttc::mqttbytes::v4`.
//!
//! Why not rumqttd: it sends PUBACK as soon as a publish is in its memory. aquatwin may send
//! PUBACK only once [`IngestHandle::submit`] resolved, i.e. the readings are durable, or a
//! `kill -9` would lose readings the device was told were delivered. Owning the connection loop
//! gives that ordering, and the authentication and topic rules below, in one place.
//!
//! - CONNECT: user name = device id, password = device key. Anything else is refused with
//!   CONNACK "not authorized" and counted `unauthenticated`. The configured ChirpStack
//!   integration user ([`BrokerOptions::chirpstack_user`]) may publish uplink events only.
//!   Sessions are not kept (`session present` is always 0), retained messages and QoS 2 are not
//!   supported (a QoS 2 publish closes the connection, counted `malformed`). A device's
//!   connection is closed as soon as its key is rotated or it is deactivated
//!   ([`crate::devices::DeviceRegistry::changes`]): the old key stops working at once.
//! - PUBLISH `aquatwin/<municipality>/sensors/<sensor_id>/data`: JSON readings
//!   ([`super::payload`]). QoS 1: PUBACK after durable storage; many publishes may be in
//!   flight per connection ([`BrokerOptions::max_inflight`]), PUBACKs leave in publish order.
//!   QoS 0: submitted, never acknowledged.
//! - Refusals: MQTT 3.1.1 has no negative PUBACK. A refused publish (another municipality,
//!   another device's sensor, malformed JSON) is counted, logged and still acknowledged, so the
//!   device is not stuck retrying a message that will never be accepted. Only a temporary
//!   failure (`unavailable`: the twin could not store) is not acknowledged: the connection is
//!   closed, and the device resends the unacknowledged publishes when it reconnects.
//! - `.../status` (`{"battery": .., "signal": ..}`) and `.../heartbeat`: device health. The
//!   device is noted as heard ([`BrokerHandle::last_seen`]); battery and signal become
//!   readings of the device's battery and signal sensors when it has them
//!   ([`BrokerOptions::health_sensors`]), else they are only counted.
//! - SUBSCRIBE: a device may subscribe inside `aquatwin/<its municipality>/` only, the
//!   integration user inside `application/`; other filters get the SUBACK failure code.
//!   Messages are delivered at QoS 0. [`BrokerHandle::publish`] lets the runtime publish
//!   (alerts, state) to subscribers. A subscriber whose queue
//!   ([`BrokerOptions::subscriber_queue`]) is full is disconnected: memory never grows with a
//!   slow reader.
//! - PINGREQ, DISCONNECT, keep-alive (silence for 1.5 × keep-alive closes the connection),
//!   packets over [`BrokerOptions::max_packet_size`] (counted `too_large`) and malformed
//!   packets (counted `malformed`) close the connection; the broker and other connections are
//!   unaffected.
//!
//! [`sessions`] keeps who each connection is, closes a device's session when its key stops
//! being valid, and holds the subscriptions; this file reads and answers the packets.

mod sessions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use twin::Reading;

use self::sessions::{Client, Subscription, Subscriptions};
use super::{chirpstack, now_ms, payload, stopped, submit_json, GatewayError, Topic};
use crate::devices::Device;
use crate::ingest::{Gateway, IngestError, IngestHandle, RejectReason};

/// How long shutdown waits for publishes being stored before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The ChirpStack integration's broker account.
#[derive(Debug, Clone)]
pub struct IntegrationUser {
    /// MQTT user name.
    pub user: String,
    /// SHA-256 of its password.
    pub key_sha256: [u8; 32],
}

/// The health sensors of one device.
#[derive(Debug, Clone, Default)]
pub struct HealthSensors {
    /// Sensor that receives `battery` of `.../status`.
    pub battery: Option<String>,
    /// Sensor that receives `signal` of `.../status`.
    pub signal: Option<String>,
}

/// Limits and accounts of the broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Largest packet accepted (bytes of the remaining length).
    pub max_packet_size: usize,
    /// Publishes of one connection being stored at once (further reads wait).
    pub max_inflight: usize,
    /// Messages queued for one subscriber before it is disconnected as too slow.
    pub subscriber_queue: usize,
    /// Time a new connection has to send CONNECT.
    pub connect_timeout: Duration,
    /// The ChirpStack integration account, if ChirpStack publishes here.
    pub chirpstack_user: Option<IntegrationUser>,
    /// Health sensors by device id.
    pub health_sensors: HashMap<String, HealthSensors>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            // A full batch (10,000 readings) with RFC 3339 times is about 600 kB.
            max_packet_size: 1 << 20,
            max_inflight: 1024,
            subscriber_queue: 1024,
            connect_timeout: Duration::from_secs(10),
            chirpstack_user: None,
            health_sensors: HashMap::new(),
        }
    }
}

/// A running broker.
#[derive(Debug)]
pub struct BrokerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BrokerHandle {
    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Publishes `payload` on `topic` to every matching subscriber (QoS 0); returns how many
    /// connections it was queued for.
    pub fn publish(&self, topic: &str, payload: impl Into<Bytes>) -> usize {
        self.shared.subscriptions.forward(topic, payload.into())
    }

    /// When `device_id` was last heard: a status, a heartbeat or readings stored (through any
    /// gateway).
    pub fn last_seen(&self, device_id: &str) -> Option<SystemTime> {
        let heard = self.shared.ingest.devices().last_heard(device_id)?;
        Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(heard.at_ms).ok()?))
    }

    /// Status and heartbeat messages received so far.
    pub fn health_messages(&self) -> u64 {
        self.shared.health_messages.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection once its acknowledgements are sent (waiting at
    /// most 10 s for storage), and waits for all of it.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds `addr` and serves MQTT there; returns once bound.
pub async fn start_mqtt_broker(
    addr: SocketAddr,
    ingest: IngestHandle,
    options: BrokerOptions,
) -> Result<BrokerHandle, GatewayError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let shared = Arc::new(Shared {
        ingest,
        options,
        subscriptions: Subscriptions::default(),
        health_messages: AtomicU64::new(0),
        next_connection: AtomicU64::new(0),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
    tracing::info!(%local_addr, "MQTT broker listening");
    Ok(BrokerHandle {
        local_addr,
        shared,
        shutdown,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let stop_connections = shutdown.clone();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(shared.clone(), stream, peer, stop_connections.clone()));
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("MQTT accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("MQTT connections still waiting for storage at shutdown; closing them");
        connections.shutdown().await;
    }
}

#[derive(Debug)]
struct Shared {
    ingest: IngestHandle,
    options: BrokerOptions,
    subscriptions: Subscriptions,
    health_messages: AtomicU64,
    next_connection: AtomicU64,
}

/// Whether an acknowledged publish may be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Stored, or refused for good: acknowledge.
    Ack,
    /// Not stored for a temporary reason: close without acknowledging, so the client resends.
    Retry,
}

impl Disposition {
    fn of(result: &Result<usize, IngestError>) -> Self {
        match result {
            Err(err) if err.reason == RejectReason::Unavailable => Disposition::Retry,
            _ => Disposition::Ack,
        }
    }
}

/// What the writer sends on the connection's behalf, in order.
enum Response {
    Packet(Packet),
    PubAck { pkid: u16, stored: Pending },
}

enum Pending {
    Ready(Disposition),
    Task(JoinHandle<Disposition>),
}

/// Why reading stopped.
enum ReadError {
    Closed,
    TooLarge(usize),
    Malformed(String),
}

async fn read_packet(
    reader: &mut OwnedReadHalf,
    buffer: &mut BytesMut,
    max_packet_size: usize,
) -> Result<Packet, ReadError> {
    loop {
        match Packet::read(buffer, max_packet_size) {
            Ok(packet) => return Ok(packet),
            Err(mqttbytes::Error::InsufficientBytes(needed)) => {
                buffer.reserve(needed.max(4096));
                match reader.read_buf(buffer).await {
                    Ok(0) | Err(_) => return Err(ReadError::Closed),
                    Ok(_) => {}
                }
            }
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                return Err(ReadError::TooLarge(size))
            }
            Err(err) => return Err(ReadError::Malformed(err.to_string())),
        }
    }
}

async fn write_packet(writer: &mut OwnedWriteHalf, packet: Packet) -> std::io::Result<()> {
    let mut buffer = BytesMut::new();
    packet
        .write(&mut buffer, usize::MAX)
        .map_err(std::io::Error::other)?;
    writer.write_all(&buffer).await
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let (mut reader, mut writer) = stream.into_split();
    let mut buffer = BytesMut::with_capacity(4096);
    let ingest = &shared.ingest;
    let first = tokio::time::timeout(
        shared.options.connect_timeout,
        read_packet(&mut reader, &mut buffer, shared.options.max_packet_size),
    )
    .await;
    let connect = match first {
        Ok(Ok(Packet::Connect(connect))) => connect,
        Ok(Ok(other)) => {
            let detail = format!("{peer}: first packet is {other:?}, not CONNECT");
            ingest.reject(Gateway::Mqtt, RejectReason::Malformed, &detail);
            return;
        }
        Ok(Err(err)) => {
            count_read_error(ingest, peer, err);
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT in time");
            return;
        }
    };
    let integration = shared.options.chirpstack_user.as_ref();
    let login = connect.login.as_ref();
    let client = match Client::authenticate(integration, ingest.devices(), login) {
        Some(client) => client,
        None => {
            let user = connect.login.as_ref().map_or("", |login| &login.username);
            let detail = format!("{peer}: refused MQTT login `{user}`");
            ingest.reject(Gateway::Mqtt, RejectReason::Unauthenticated, &detail);
            let refused = ConnAck::new(ConnectReturnCode::NotAuthorized, false);
            let _ = write_packet(&mut writer, Packet::ConnAck(refused)).await;
            return;
        }
    };
    let accepted = ConnAck::new(ConnectReturnCode::Success, false);
    if write_packet(&mut writer, Packet::ConnAck(accepted))
        .await
        .is_err()
    {
        return;
    }
    tracing::debug!(%peer, client = client.name(), "MQTT client connected");
    let (responses, responses_rx) = mpsc::channel(shared.options.max_inflight);
    let (outbox, outbox_rx) = mpsc::channel(shared.options.subscriber_queue);
    let writer_task = tokio::spawn(write_loop(writer, responses_rx, outbox_rx));
    let session = Session {
        shared: shared.clone(),
        client,
        connection,
        peer,
        inflight: Arc::new(Semaphore::new(shared.options.max_inflight)),
        responses,
        outbox,
        kick: Arc::new(Notify::new()),
    };
    let keep_alive = (connect.keep_alive > 0)
        .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    session
        .read_loop(reader, buffer, keep_alive, shutdown)
        .await;
    shared.subscriptions.unsubscribe(connection, None);
    let _ = writer_task.await;
    tracing::debug!(%peer, "MQTT client disconnected");
}

fn count_read_error(ingest: &IngestHandle, peer: SocketAddr, err: ReadError) {
    match err {
        ReadError::Closed => {}
        ReadError::TooLarge(size) => ingest.reject(
            Gateway::Mqtt,
            RejectReason::TooLarge,
            &format!("{peer}: packet of {size} bytes"),
        ),
        ReadError::Malformed(detail) => ingest.reject(
            Gateway::Mqtt,
            RejectReason::Malformed,
            &format!("{peer}: {detail}"),
        ),
    }
}

/// Sends responses in order (awaiting each PUBACK's storage), interleaved with messages for
/// subscriptions; batches writes while more is ready.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut responses: mpsc::Receiver<Response>,
    mut outbox: mpsc::Receiver<Publish>,
) {
    let mut buffer = BytesMut::with_capacity(4096);
    loop {
        let packet = tokio::select! {
            biased;
            response = responses.recv() => match response {
                None => break,
                Some(Response::Packet(packet)) => packet,
                Some(Response::PubAck { pkid, stored }) => {
                    let disposition = match stored {
                        Pending::Ready(disposition) => disposition,
                        Pending::Task(task) => {
                            if !task.is_finished() && flush(&mut writer, &mut buffer).await.is_err() {
                                return;
                            }
                            task.await.unwrap_or(Disposition::Retry)
                        }
                    };
                    if disposition == Disposition::Retry {
                        // Close without acknowledging: the client resends after reconnecting.
                        let _ = flush(&mut writer, &mut buffer).await;
                        return;
                    }
                    Packet::PubAck(PubAck::new(pkid))
                }
            },
            Some(message) = outbox.recv() => Packet::Publish(message),
        };
        if packet.write(&mut buffer, usize::MAX).is_err() {
            return;
        }
        let more_ready = !responses.is_empty() || !outbox.is_empty();
        if (!more_ready || buffer.len() >= 64 * 1024)
            && flush(&mut writer, &mut buffer).await.is_err()
        {
            return;
        }
    }
    let _ = flush(&mut writer, &mut buffer).await;
    let _ = writer.shutdown().await;
}

async fn flush(writer: &mut OwnedWriteHalf, buffer: &mut BytesMut) -> std::io::Result<()> {
    if !buffer.is_empty() {
        writer.write_all(buffer).await?;
        buffer.clear();
    }
    Ok(())
}

/// One authenticated connection's reading side.
struct Session {
    shared: Arc<Shared>,
    client: Client,
    connection: u64,
    peer: SocketAddr,
    inflight: Arc<Semaphore>,
    responses: mpsc::Sender<Response>,
    /// Messages for this connection's subscriptions.
    outbox: mpsc::Sender<Publish>,
    /// Notified when the connection must close: its subscriber queue overflowed.
    kick: Arc<Notify>,
}

impl Session {
    /// Serves the connection until it ends; dropping `self` then lets the writer finish.
    async fn read_loop(
        self,
        mut reader: OwnedReadHalf,
        mut buffer: BytesMut,
        keep_alive: Option<Duration>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let max_packet_size = self.shared.options.max_packet_size;
        let mut changes = self.shared.ingest.devices().changes();
        loop {
            let next = async {
                let read = read_packet(&mut reader, &mut buffer, max_packet_size);
                match keep_alive {
                    Some(limit) => tokio::time::timeout(limit, read).await.ok(),
                    None => Some(read.await),
                }
            };
            let packet = tokio::select! {
                () = stopped(&mut shutdown) => return,
                () = self.kick.notified() => return,
                () = self.client.revoked(self.shared.ingest.devices(), &mut changes) => return,
                packet = next => packet,
            };
            let packet = match packet {
                None => {
                    tracing::debug!(peer = %self.peer, "keep-alive expired");
                    return;
                }
                Some(Err(err)) => {
                    count_read_error(&self.shared.ingest, self.peer, err);
                    return;
                }
                Some(Ok(packet)) => packet,
            };
            let response = match packet {
                Packet::Publish(publish) => match self.on_publish(publish).await {
                    Ok(Some(response)) => response,
                    Ok(None) => continue,
                    Err(()) => return,
                },
                Packet::Subscribe(subscribe) => {
                    let prefix = self.client.subscribe_prefix();
                    let codes = subscribe
                        .filters
                        .into_iter()
                        .map(|filter| {
                            if !filter.path.starts_with(&prefix)
                                || !mqttbytes::valid_filter(&filter.path)
                            {
                                tracing::warn!(
                                    client = self.client.name(),
                                    filter = filter.path,
                                    "subscription refused"
                                );
                                return SubscribeReasonCode::Failure;
                            }
                            self.shared.subscriptions.subscribe(Subscription {
                                connection: self.connection,
                                filter: filter.path,
                                outbox: self.outbox.clone(),
                                kick: self.kick.clone(),
                            });
                            SubscribeReasonCode::Success(QoS::AtMostOnce)
                        })
                        .collect();
                    Response::Packet(Packet::SubAck(SubAck::new(subscribe.pkid, codes)))
                }
                Packet::Unsubscribe(unsubscribe) => {
                    for filter in &unsubscribe.topics {
                        self.shared
                            .subscriptions
                            .unsubscribe(self.connection, Some(filter));
                    }
                    Response::Packet(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
                }
                Packet::PingReq => Response::Packet(Packet::PingResp),
                Packet::Disconnect => return,
                other => {
                    let detail = format!("{}: unexpected {other:?}", self.peer);
                    self.reject(RejectReason::Malformed, &detail);
                    return;
                }
            };
            if self.responses.send(response).await.is_err() {
                return;
            }
        }
    }

    fn reject(&self, reason: RejectReason, detail: &str) {
        self.shared.ingest.reject(Gateway::Mqtt, reason, detail);
    }

    /// Handles a PUBLISH; `Err` closes the connection.
    async fn on_publish(&self, publish: Publish) -> Result<Option<Response>, ()> {
        if publish.qos == QoS::ExactlyOnce {
            self.reject(
                RejectReason::Malformed,
                &format!("{}: QoS 2 is not supported", self.peer),
            );
            return Err(());
        }
        if !mqttbytes::valid_topic(&publish.topic) {
            self.reject(
                RejectReason::Malformed,
                &format!("{}: invalid topic {:?}", self.peer, publish.topic),
            );
            return Err(());
        }
        let work = self.dispatch(&publish);
        let pending = match work {
            Work::Done(disposition) => Pending::Ready(disposition),
            Work::Submit(future) => {
                let Ok(permit) = self.inflight.clone().acquire_owned().await else {
                    return Err(());
                };
                let task = tokio::spawn(async move {
                    let disposition = future.await;
                    drop(permit);
                    disposition
                });
                Pending::Task(task)
            }
        };
        Ok(
            (publish.qos == QoS::AtLeastOnce).then_some(Response::PubAck {
                pkid: publish.pkid,
                stored: pending,
            }),
        )
    }

    /// Decides what a publish means for this client.
    fn dispatch(&self, publish: &Publish) -> Work {
        let ingest = self.shared.ingest.clone();
        let topic = Topic::parse(&publish.topic);
        let device = match (&self.client, topic) {
            (Client::Integration(_), Topic::ChirpstackUplink { dev_eui }) => {
                let dev_eui = dev_eui.to_string();
                let payload = publish.payload.clone();
                return Work::submit(async move {
                    chirpstack::submit_uplink(&ingest, &dev_eui, &payload).await
                });
            }
            (Client::Device(device), _) => device.clone(),
            (Client::Integration(user), _) => {
                let detail = format!(
                    "integration user {user} may not publish on {}",
                    publish.topic
                );
                self.reject(RejectReason::Forbidden, &detail);
                return Work::Done(Disposition::Ack);
            }
        };
        let own_prefix = format!("aquatwin/{}/", device.municipality);
        if !publish.topic.starts_with(&own_prefix) {
            let detail = format!("device {} may not publish on {}", device.id, publish.topic);
            self.reject(RejectReason::Forbidden, &detail);
            return Work::Done(Disposition::Ack);
        }
        self.shared
            .subscriptions
            .forward(&publish.topic, publish.payload.clone());
        match topic {
            Topic::Data { sensor_id, .. } => {
                let sensor_id = sensor_id.to_string();
                let payload = publish.payload.clone();
                Work::submit(async move {
                    submit_json(&ingest, Gateway::Mqtt, device, &sensor_id, &payload).await
                })
            }
            Topic::Health { heartbeat, .. } => self.on_health(device, heartbeat, &publish.payload),
            Topic::ChirpstackUplink { .. } | Topic::Other => Work::Done(Disposition::Ack),
        }
    }

    fn on_health(&self, device: Arc<Device>, heartbeat: bool, payload: &[u8]) -> Work {
        self.shared.health_messages.fetch_add(1, Ordering::Relaxed);
        self.shared
            .ingest
            .devices()
            .heard(&device.id, Gateway::Mqtt, now_ms());
        if heartbeat {
            return Work::Done(Disposition::Ack);
        }
        let status = match payload::parse_status(payload) {
            Ok(status) => status,
            Err(err) => {
                self.reject(
                    err.reason,
                    &format!("device {}: {}", device.id, err.message),
                );
                return Work::Done(Disposition::Ack);
            }
        };
        let Some(sensors) = self.shared.options.health_sensors.get(&device.id) else {
            return Work::Done(Disposition::Ack);
        };
        let ts = status.ts.unwrap_or_else(now_ms);
        let readings: Vec<Reading> = [
            (&sensors.battery, status.battery),
            (&sensors.signal, status.signal),
        ]
        .into_iter()
        .filter_map(|(sensor, value)| Some(Reading::new(sensor.clone()?, ts, value?)))
        .collect();
        if readings.is_empty() {
            return Work::Done(Disposition::Ack);
        }
        let ingest = self.shared.ingest.clone();
        Work::submit(async move { ingest.submit(Gateway::Mqtt, device, readings).await })
    }
}

type SubmitFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Disposition> + Send>>;

/// What a publish needs before it can be acknowledged.
enum Work {
    Done(Disposition),
    Submit(SubmitFuture),
}

impl Work {
    fn submit(
        future: impl std::future::Future<Output = Result<usize, IngestError>> + Send + 'static,
    ) -> Self {
        Work::Submit(Box::pin(async move { Disposition::of(&future.await) }))
    }
}

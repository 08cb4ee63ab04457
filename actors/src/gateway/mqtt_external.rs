//! `--mqtt-url mqtt://host:port`: ingest from an external broker (Mosquitto) instead of the
//! embedded one.
//!
//! A `rumqttc` client (clean session off, so the broker keeps our subscriptions and queues
//! QoS 1 messages while we are away; manual acknowledgements) subscribes with QoS 1 to
//! `aquatwin/+/sensors/+/data` and the ChirpStack uplink topic
//! `application/+/device/+/event/up`. Each publish is acknowledged only after
//! [`IngestHandle::submit`] resolved, in the order received (MQTT 3.1.1 requires it). A refused
//! message is counted and acknowledged; a temporary failure (`unavailable`) is not: the client
//! disconnects, and the broker redelivers it on the next session. A lost broker is reconnected
//! with exponential backoff (100 ms to 5 s).
//!
//! The external broker authenticates the devices, so its configuration must tie each device
//! to its own topics, e.g. for Mosquitto a password file (`mosquitto_passwd`) with one user per
//! device and an ACL with `pattern write aquatwin/<municipality>/sensors/+/data` restricted per
//! user (or `user <device>` blocks listing `topic write aquatwin/<m>/sensors/<sensor>/data`),
//! and an account for aquatwin with `topic read aquatwin/#` and `topic read application/#`.
//! aquatwin maps the topic's sensor to the device that owns it (each sensor has one device)
//! and still checks the municipality.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{chirpstack, stopped, submit_json, GatewayError, Topic, CHIRPSTACK_UPLINKS};
use crate::ingest::{Gateway, IngestError, IngestHandle, RejectReason};

/// The topic filter of readings.
const DATA_TOPICS: &str = "aquatwin/+/sensors/+/data";
/// Unacknowledged messages being stored at once.
const MAX_INFLIGHT: usize = 512;
/// How long shutdown waits for messages being stored.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How to reach the external broker.
#[derive(Debug, Clone)]
pub struct ExternalOptions {
    /// `mqtt://host[:port]` (or `tcp://`); port 1883 by default.
    pub url: String,
    /// Client id; keep it stable so the broker finds our session again.
    pub client_id: String,
    /// User name and password at the broker, if it asks.
    pub credentials: Option<(String, String)>,
    /// Largest message accepted (bytes).
    pub max_packet_size: usize,
}

impl ExternalOptions {
    /// Options for `url` with client id `aquatwin`, no credentials and 1 MiB messages.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client_id: "aquatwin".to_string(),
            credentials: None,
            max_packet_size: 1 << 20,
        }
    }
}

/// A running external-broker client.
#[derive(Debug)]
pub struct ExternalHandle {
    subscribed: watch::Receiver<bool>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ExternalHandle {
    /// Waits until the broker confirmed the subscriptions (of the current connection).
    pub async fn subscribed(&mut self) {
        let _ = self.subscribed.wait_for(|subscribed| *subscribed).await;
    }

    /// Disconnects and waits for the client task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// `(host, port)` of an `mqtt://` or `tcp://` URL.
fn parse_url(url: &str) -> Result<(String, u16), GatewayError> {
    let bad = |why: &str| GatewayError::Config(format!("MQTT URL `{url}`: {why}"));
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| bad("expected mqtt://host[:port]"))?;
    let authority = rest.trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| bad("bad port"))?),
        None => (authority, 1883),
    };
    if host.is_empty() || host.contains('/') {
        return Err(bad("bad host"));
    }
    Ok((host.to_string(), port))
}

/// Connects to the broker of `options.url` and ingests from it until shut down. Returns once
/// the client task runs (the connection is made, and remade, in the background).
pub fn start_mqtt_external(
    options: ExternalOptions,
    ingest: IngestHandle,
) -> Result<ExternalHandle, GatewayError> {
    let (host, port) = parse_url(&options.url)?;
    let mut mqtt = MqttOptions::new(options.client_id.clone(), host, port);
    mqtt.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(options.max_packet_size, options.max_packet_size);
    if let Some((user, password)) = &options.credentials {
        mqtt.set_credentials(user.clone(), password.clone());
    }
    // Room for every acknowledgement in flight, so the ack task never waits on the event loop
    // while the event loop waits on it.
    let (client, event_loop) = AsyncClient::new(mqtt, 2 * MAX_INFLIGHT);
    let (subscribed_tx, subscribed) = watch::channel(false);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(run(
        client,
        event_loop,
        Router { ingest },
        subscribed_tx,
        shutdown_rx,
    ));
    Ok(ExternalHandle {
        subscribed,
        shutdown,
        task,
    })
}

async fn run(
    client: AsyncClient,
    mut event_loop: EventLoop,
    router: Router,
    subscribed: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = Arc::new(router);
    let (acks, acks_rx) = mpsc::channel(MAX_INFLIGHT);
    let acker = tokio::spawn(ack_in_order(client.clone(), acks_rx));
    let mut backoff = MIN_BACKOFF;
    loop {
        let event = tokio::select! {
            () = stopped(&mut shutdown) => break,
            event = event_loop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = MIN_BACKOFF;
                let filters = [DATA_TOPICS, super::CHIRPSTACK_UPLINKS].map(|filter| {
                    rumqttc::SubscribeFilter::new(filter.to_string(), QoS::AtLeastOnce)
                });
                if let Err(err) = client.try_subscribe_many(filters) {
                    tracing::warn!("cannot subscribe at the MQTT broker: {err}");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                tracing::info!("subscribed to {DATA_TOPICS} and {CHIRPSTACK_UPLINKS}");
                let _ = subscribed.send(true);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let router = router.clone();
                let message = publish.clone();
                let stored = tokio::spawn(async move { router.route(&message).await });
                if acks.send((publish, stored)).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(err) => {
                let _ = subscribed.send(false);
                tracing::warn!("MQTT broker connection: {err}; retrying in {backoff:?}");
                tokio::select! {
                    () = stopped(&mut shutdown) => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    // Keep the connection up while the acknowledgements of stored messages go out; those
    // still unstored after the grace period stay unacknowledged (the broker redelivers them).
    // Requests leave in order: once our DISCONNECT is out, every acknowledgement before it is.
    drop(acks);
    let mut acker = acker;
    let mut acks_done = false;
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    let mut grace = std::pin::pin!(grace);
    loop {
        tokio::select! {
            _ = &mut acker, if !acks_done => {
                acks_done = true;
                let _ = client.try_disconnect();
            }
            () = &mut grace => break,
            event = event_loop.poll() => match event {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    acker.abort();
}

/// Acknowledges each publish once stored, in the order received.
async fn ack_in_order(
    client: AsyncClient,
    mut acks: mpsc::Receiver<(Publish, JoinHandle<Result<usize, IngestError>>)>,
) {
    while let Some((publish, stored)) = acks.recv().await {
        let temporary = match stored.await {
            Ok(Err(err)) => err.reason == RejectReason::Unavailable,
            Ok(Ok(_)) => false,
            Err(_) => true,
        };
        if temporary {
            // Not acknowledged: reconnecting makes the broker redeliver it.
            tracing::warn!(
                topic = publish.topic,
                "not stored; reconnecting for redelivery"
            );
            let _ = client.disconnect().await;
            continue;
        }
        if client.ack(&publish).await.is_err() {
            return;
        }
    }
}

/// Maps messages to devices (the registry's current ones) and submits them.
struct Router {
    ingest: IngestHandle,
}

impl Router {
    async fn route(&self, publish: &Publish) -> Result<usize, IngestError> {
        let refuse = |gateway, reason, detail: String| {
            self.ingest.reject(gateway, reason, &detail);
            Err(IngestError::new(reason, detail))
        };
        match Topic::parse(&publish.topic) {
            Topic::Data {
                municipality,
                sensor_id,
            } => {
                let Some(device) = self.ingest.devices().reporting_for(municipality, sensor_id)
                else {
                    return refuse(
                        Gateway::Mqtt,
                        RejectReason::UnknownSensor,
                        format!("no device reports for sensor {sensor_id}"),
                    );
                };
                if device.municipality != municipality {
                    return refuse(
                        Gateway::Mqtt,
                        RejectReason::Forbidden,
                        format!("sensor {sensor_id} is not in municipality {municipality}"),
                    );
                }
                if !device.active {
                    return refuse(
                        Gateway::Mqtt,
                        RejectReason::Unauthenticated,
                        format!("device {} is deactivated", device.id),
                    );
                }
                submit_json(
                    &self.ingest,
                    Gateway::Mqtt,
                    device,
                    sensor_id,
                    &publish.payload,
                )
                .await
            }
            Topic::ChirpstackUplink { dev_eui } => {
                chirpstack::submit_uplink(&self.ingest, dev_eui, &publish.payload).await
            }
            Topic::Health { .. } | Topic::Other => refuse(
                Gateway::Mqtt,
                RejectReason::Malformed,
                format!("unexpected topic {}", publish.topic),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://localhost:1884").unwrap(),
            ("localhost".into(), 1884)
        );
        assert_eq!(
            parse_url("tcp://10.0.0.1/").unwrap(),
            ("10.0.0.1".into(), 1883)
        );
        for bad in ["http://x", "mqtt://", "mqtt://x:port", "mqtt://x/y"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}

//! The broker's book of open sessions: who each connection is (a device or the ChirpStack
//! integration user), when a device's session must close (its key rotated or the device
//! deactivated), and every connection's subscriptions with the fan-out of messages to them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::mqttbytes::v4::{Login, Publish};
use rumqttc::mqttbytes::{self, QoS};
use tokio::sync::{mpsc, watch, Notify};

use super::IntegrationUser;
use crate::devices::{key_digest, Device, DeviceRegistry};

/// Who is connected.
pub(super) enum Client {
    Device(Arc<Device>),
    Integration(String),
}

impl Client {
    /// The client `login` names, when its credentials hold: the integration user (checked
    /// against its digest) or a device of the registry.
    pub(super) fn authenticate(
        integration: Option<&IntegrationUser>,
        devices: &DeviceRegistry,
        login: Option<&Login>,
    ) -> Option<Client> {
        let login = login?;
        if let Some(integration) = integration {
            if login.username == integration.user {
                return (key_digest(&login.password) == integration.key_sha256)
                    .then(|| Client::Integration(login.username.clone()));
            }
        }
        devices
            .authenticate(&login.username, &login.password)
            .ok()
            .map(Client::Device)
    }

    pub(super) fn name(&self) -> &str {
        match self {
            Client::Device(device) => &device.id,
            Client::Integration(user) => user,
        }
    }

    /// Topic prefix the client may subscribe under.
    pub(super) fn subscribe_prefix(&self) -> String {
        match self {
            Client::Device(device) => format!("aquatwin/{}/", device.municipality),
            Client::Integration(_) => "application/".to_string(),
        }
    }

    /// Resolves once the connected device's key was rotated or it was deactivated (never for
    /// the integration user); `changes` is the registry's [`DeviceRegistry::changes`].
    pub(super) async fn revoked(
        &self,
        devices: &DeviceRegistry,
        changes: &mut watch::Receiver<u64>,
    ) {
        if let Client::Device(device) = self {
            while changes.changed().await.is_ok() {
                if !devices.still_valid(device) {
                    tracing::info!(
                        device = device.id,
                        "key rotated or device deactivated: disconnecting"
                    );
                    return;
                }
            }
        }
        std::future::pending().await
    }
}

/// One topic filter of one connection.
pub(super) struct Subscription {
    pub(super) connection: u64,
    pub(super) filter: String,
    /// The connection's queue of messages to deliver.
    pub(super) outbox: mpsc::Sender<Publish>,
    /// Notified when the connection must close: its queue overflowed.
    pub(super) kick: Arc<Notify>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subscription({}, {})", self.connection, self.filter)
    }
}

/// The subscriptions of every connection.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    list: Mutex<Vec<Subscription>>,
    /// Lets publishers skip the lock when nobody subscribed (the common case).
    count: AtomicUsize,
}

impl Subscriptions {
    /// Queues `payload` on `topic` once for every connection with a matching filter (QoS 0);
    /// a connection whose queue is full is kicked and loses its subscriptions. Returns how
    /// many connections it was queued for.
    pub(super) fn forward(&self, topic: &str, payload: Bytes) -> usize {
        if self.count.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let Ok(mut subscriptions) = self.list.lock() else {
            return 0;
        };
        let mut delivered: Vec<u64> = Vec::new();
        let mut too_slow: Vec<u64> = Vec::new();
        for sub in subscriptions.iter() {
            if delivered.contains(&sub.connection)
                || too_slow.contains(&sub.connection)
                || !mqttbytes::matches(topic, &sub.filter)
            {
                continue;
            }
            let message = Publish::from_bytes(topic, QoS::AtMostOnce, payload.clone());
            match sub.outbox.try_send(message) {
                Ok(()) => delivered.push(sub.connection),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        connection = sub.connection,
                        "subscriber too slow, disconnecting"
                    );
                    sub.kick.notify_one();
                    too_slow.push(sub.connection);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => too_slow.push(sub.connection),
            }
        }
        if !too_slow.is_empty() {
            subscriptions.retain(|sub| !too_slow.contains(&sub.connection));
            self.count.store(subscriptions.len(), Ordering::Relaxed);
        }
        delivered.len()
    }

    /// Adds `subscription`, replacing the same filter of the same connection.
    pub(super) fn subscribe(&self, subscription: Subscription) {
        if let Ok(mut subscriptions) = self.list.lock() {
            subscriptions.retain(|s| {
                s.connection != subscription.connection || s.filter != subscription.filter
            });
            subscriptions.push(subscription);
            self.count.store(subscriptions.len(), Ordering::Relaxed);
        }
    }

    /// Removes `filter` of `connection`, or all of its filters when `None`.
    pub(super) fn unsubscribe(&self, connection: u64, filter: Option<&str>) {
        if let Ok(mut subscriptions) = self.list.lock() {
            subscriptions
                .retain(|s| s.connection != connection || filter.is_some_and(|f| f != s.filter));
            self.count.store(subscriptions.len(), Ordering::Relaxed);
        }
    }
}

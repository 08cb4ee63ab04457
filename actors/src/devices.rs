//! Devices, their authentication by per-device key, their presence, and their records in the
//! store.
//!
//! Keys are never kept: only their SHA-256 digest. Device keys are random and long (they are
//! generated, not chosen by people), so a fast digest is enough; user passwords use argon2
//! elsewhere.
//!
//! The registry changes while serving (devices registered, keys rotated, devices deactivated
//! and activated): lookups take a read lock for a hash lookup and return an `Arc<Device>`
//! clone, so a change never waits for a reader and a reader waits at most for a map update.
//! Changes are made one at a time; a registry opened on a store ([`DeviceRegistry::open`])
//! writes each change durably before it takes effect, under `(tenant, "devices", id)`, and
//! reads those records back on the next start: a stored record overrides the configured
//! device of the same id (its sensors, key digest and active flag; a configured LoRaWAN
//! session is kept, session keys never go to the store). Watchers ([`DeviceRegistry::changes`])
//! learn of every change, so a connection authenticated with a key that is no longer valid can
//! be closed.
//!
//! Presence ([`DeviceRegistry::heard`]): when each device was last heard and over which
//! gateway, one atomic word per device so the ingest path never waits on it, saved with
//! [`DeviceRegistry::save_presence`] and read back on the next start (module `presence`).

mod presence;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use twin::store::tuple::Element;
use twin::store::{KeyValue, Order, Store, StoreError, TenantKeys};

pub use self::presence::Heard;
use self::presence::Presence;
use crate::ingest::RejectReason;

/// The family of device records under a tenant's prefix.
const DEVICES_FAMILY: &str = "devices";

/// LoRaWAN ABP session of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LorawanSession {
    /// DevEUI (ChirpStack names devices by it), if known.
    pub dev_eui: Option<[u8; 8]>,
    /// Device address (the `DevAddr` of its frames).
    pub dev_addr: u32,
    /// Network session key (MIC).
    pub nwk_s_key: [u8; 16],
    /// Application session key (FRMPayload encryption).
    pub app_s_key: [u8; 16],
}

/// A device: it belongs to one municipality and may report for the listed sensors only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Unique id (the MQTT user name, the HTTP `X-Device-Id`).
    pub id: String,
    /// The municipality (tenant) it reports to.
    pub municipality: String,
    /// Ids of the sensors it reports for, in its payload codec's order.
    pub sensors: Vec<String>,
    /// SHA-256 of its key.
    pub key_sha256: [u8; 32],
    /// Whether it may report (a deactivated device is refused).
    pub active: bool,
    /// LoRaWAN session, for devices that report over LoRaWAN.
    pub lorawan: Option<LorawanSession>,
}

impl Device {
    /// Whether the device may report for `sensor_id`.
    pub fn owns(&self, sensor_id: &str) -> bool {
        self.sensors.iter().any(|s| s == sensor_id)
    }
}

/// SHA-256 of a key, as kept in configuration.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Errors in a device list or of a change to it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Two devices share an id.
    #[error("device {0} is defined twice")]
    DuplicateId(String),
    /// Two LoRaWAN devices share an address.
    #[error("devices {0} and {1} share the LoRaWAN DevAddr {2:08X}")]
    DuplicateDevAddr(String, String, u32),
    /// No such device (in that municipality).
    #[error("no device {0}")]
    Unknown(String),
    /// A sensor another device of the municipality reports for already.
    #[error("device {device} reports for sensor {sensor} already")]
    SensorTaken {
        /// The sensor.
        sensor: String,
        /// The device that reports for it.
        device: String,
    },
    /// A stored record does not decode.
    #[error("corrupt device record {key}: {cause}")]
    Corrupt {
        /// The record's device id or key.
        key: String,
        /// What is wrong.
        cause: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A device and its presence (kept across changes of the device).
#[derive(Debug, Clone)]
struct Entry {
    device: Arc<Device>,
    presence: Arc<Presence>,
}

/// The lookups of the registry.
#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Entry>,
    by_dev_addr: HashMap<u32, Arc<Device>>,
    by_dev_eui: HashMap<[u8; 8], Arc<Device>>,
    /// The devices reporting for each sensor id (any municipality).
    by_sensor: HashMap<String, Vec<Arc<Device>>>,
}

impl Index {
    fn of(devices: Vec<Device>) -> Result<Self, DeviceError> {
        let mut index = Self::default();
        let mut seen = HashSet::new();
        for device in devices {
            if !seen.insert(device.id.clone()) {
                return Err(DeviceError::DuplicateId(device.id));
            }
            index.insert(Arc::new(device), Arc::default())?;
        }
        Ok(index)
    }

    fn insert(&mut self, device: Arc<Device>, presence: Arc<Presence>) -> Result<(), DeviceError> {
        if let Some(session) = &device.lorawan {
            if let Some(other) = self.by_dev_addr.get(&session.dev_addr) {
                if other.id != device.id {
                    return Err(DeviceError::DuplicateDevAddr(
                        other.id.clone(),
                        device.id.clone(),
                        session.dev_addr,
                    ));
                }
            }
            self.by_dev_addr.insert(session.dev_addr, device.clone());
            if let Some(eui) = session.dev_eui {
                self.by_dev_eui.insert(eui, device.clone());
            }
        }
        for sensor in &device.sensors {
            self.by_sensor
                .entry(sensor.clone())
                .or_default()
                .push(device.clone());
        }
        self.by_id
            .insert(device.id.clone(), Entry { device, presence });
        Ok(())
    }

    /// Removes device `id` from every lookup; its entry.
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.by_id.remove(id)?;
        if let Some(session) = &entry.device.lorawan {
            self.by_dev_addr.remove(&session.dev_addr);
            if let Some(eui) = session.dev_eui {
                self.by_dev_eui.remove(&eui);
            }
        }
        for sensor in &entry.device.sensors {
            if let Some(devices) = self.by_sensor.get_mut(sensor) {
                devices.retain(|device| device.id != id);
                if devices.is_empty() {
                    self.by_sensor.remove(sensor);
                }
            }
        }
        Some(entry)
    }
}

/// What the store keeps of a device.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceRecord {
    id: String,
    sensors: Vec<String>,
    /// Hex.
    key_sha256: String,
    active: bool,
}

impl DeviceRecord {
    fn of(device: &Device) -> Self {
        Self {
            id: device.id.clone(),
            sensors: device.sensors.clone(),
            key_sha256: hex::encode(device.key_sha256),
            active: device.active,
        }
    }
}

fn record_key(municipality: &str, id: &str) -> Vec<u8> {
    TenantKeys::new(municipality).key(&[Element::from(DEVICES_FAMILY), Element::from(id)])
}

fn scan_family(
    store: &dyn Store,
    municipality: &str,
    family: &str,
) -> Result<Vec<KeyValue>, StoreError> {
    let range = TenantKeys::new(municipality)
        .space()
        .subspace(&[Element::from(family)])
        .range();
    store.scan(&range, Order::Forward, None)
}

fn corrupt(key: &[u8], cause: impl ToString) -> DeviceError {
    DeviceError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        cause: cause.to_string(),
    }
}

/// Every device, looked up by id, LoRaWAN address, DevEUI or sensor.
pub struct DeviceRegistry {
    index: RwLock<Index>,
    /// Held through a whole change (checks, store write, index update): one change at a time,
    /// without holding readers up during the store write.
    changing: Mutex<()>,
    store: Option<Arc<dyn Store>>,
    /// Counts changes; watchers wake on each.
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for DeviceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRegistry")
            .field("devices", &self.len())
            .field("stored", &self.store.is_some())
            .finish()
    }
}

impl Default for DeviceRegistry {
    fn default() -> Self {
        Self::with_index(Index::default(), None)
    }
}

impl DeviceRegistry {
    /// A registry of `devices`, in memory only.
    pub fn new(devices: Vec<Device>) -> Result<Self, DeviceError> {
        Ok(Self::with_index(Index::of(devices)?, None))
    }

    /// A registry of the `configured` devices overridden and completed by the records stored
    /// for `municipalities` in `store`; changes are written there.
    pub fn open(
        configured: Vec<Device>,
        store: Arc<dyn Store>,
        municipalities: &[String],
    ) -> Result<Self, DeviceError> {
        let mut devices: HashMap<String, Device> = HashMap::new();
        for device in configured {
            if devices.contains_key(&device.id) {
                return Err(DeviceError::DuplicateId(device.id));
            }
            devices.insert(device.id.clone(), device);
        }
        for municipality in municipalities {
            for (key, value) in scan_family(store.as_ref(), municipality, DEVICES_FAMILY)? {
                let record: DeviceRecord =
                    serde_json::from_slice(&value).map_err(|err| corrupt(&key, err))?;
                let mut key_sha256 = [0u8; 32];
                hex::decode_to_slice(&record.key_sha256, &mut key_sha256)
                    .map_err(|err| corrupt(&key, format!("key_sha256: {err}")))?;
                let lorawan = devices
                    .remove(&record.id)
                    .and_then(|configured| configured.lorawan);
                devices.insert(
                    record.id.clone(),
                    Device {
                        id: record.id,
                        municipality: municipality.clone(),
                        sensors: record.sensors,
                        key_sha256,
                        active: record.active,
                        lorawan,
                    },
                );
            }
        }
        let mut devices: Vec<Device> = devices.into_values().collect();
        devices.sort_by(|a, b| a.id.cmp(&b.id));
        let mut index = Index::of(devices)?;
        presence::restore(&mut index, store.as_ref(), municipalities)?;
        Ok(Self::with_index(index, Some(store)))
    }

    fn with_index(index: Index, store: Option<Arc<dyn Store>>) -> Self {
        Self {
            index: RwLock::new(index),
            changing: Mutex::new(()),
            store,
            changed: watch::Sender::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // The index is consistent after every write (each write is a few map operations that
        // do not panic), so a poisoned lock still holds a usable index.
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The device `id` if `key` is its key and it is active.
    pub fn authenticate(&self, id: &str, key: &str) -> Result<Arc<Device>, RejectReason> {
        let device = self.get(id).ok_or(RejectReason::Unauthenticated)?;
        // Compare digests, not keys: equal-length inputs, and no early exit on the key itself.
        let digest = key_digest(key);
        let same = digest
            .iter()
            .zip(device.key_sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same || !device.active {
            return Err(RejectReason::Unauthenticated);
        }
        Ok(device)
    }

    /// Whether `device` (as authenticated earlier) is still active with the same key.
    pub fn still_valid(&self, device: &Device) -> bool {
        self.get(&device.id)
            .is_some_and(|current| current.active && current.key_sha256 == device.key_sha256)
    }

    /// The device `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Device>> {
        self.read().by_id.get(id).map(|entry| entry.device.clone())
    }

    /// The LoRaWAN device with address `dev_addr`.
    pub fn by_dev_addr(&self, dev_addr: u32) -> Option<Arc<Device>> {
        self.read().by_dev_addr.get(&dev_addr).cloned()
    }

    /// The LoRaWAN device with DevEUI `eui`.
    pub fn by_dev_eui(&self, eui: &[u8; 8]) -> Option<Arc<Device>> {
        self.read().by_dev_eui.get(eui).cloned()
    }

    /// The device that reports for `sensor_id` in `municipality`: an active one of that
    /// municipality first, then any of it, then one of another municipality (so the caller
    /// can tell a foreign sensor from an unknown one).
    pub fn reporting_for(&self, municipality: &str, sensor_id: &str) -> Option<Arc<Device>> {
        let index = self.read();
        let devices = index.by_sensor.get(sensor_id)?;
        let local = |d: &&Arc<Device>| d.municipality == municipality;
        devices
            .iter()
            .filter(local)
            .find(|d| d.active)
            .or_else(|| devices.iter().find(local))
            .or_else(|| devices.first())
            .cloned()
    }

    /// Every device, by id.
    pub fn all(&self) -> Vec<Arc<Device>> {
        let mut devices: Vec<Arc<Device>> = self
            .read()
            .by_id
            .values()
            .map(|entry| entry.device.clone())
            .collect();
        devices.sort_by(|a, b| a.id.cmp(&b.id));
        devices
    }

    /// How many devices there are.
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether there is no device.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that changes on every change of the registry.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Adds `device`: its id must be unused and none of its sensors reported by another
    /// device of its municipality. Stored before it takes effect.
    pub fn register(&self, device: Device) -> Result<Arc<Device>, DeviceError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let index = self.read();
            if index.by_id.contains_key(&device.id) {
                return Err(DeviceError::DuplicateId(device.id));
            }
            for sensor in &device.sensors {
                let taken = index.by_sensor.get(sensor).and_then(|devices| {
                    devices
                        .iter()
                        .find(|other| other.municipality == device.municipality)
                });
                if let Some(other) = taken {
                    return Err(DeviceError::SensorTaken {
                        sensor: sensor.clone(),
                        device: other.id.clone(),
                    });
                }
            }
        }
        self.apply(device, Arc::default())
    }

    /// Changes device `id` of `municipality` with `change` (its id and municipality stay).
    /// Stored before it takes effect.
    pub fn update(
        &self,
        municipality: &str,
        id: &str,
        change: impl FnOnce(&mut Device),
    ) -> Result<Arc<Device>, DeviceError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = self
            .read()
            .by_id
            .get(id)
            .filter(|entry| entry.device.municipality == municipality)
            .cloned()
            .ok_or_else(|| DeviceError::Unknown(id.to_string()))?;
        let mut device = Device::clone(&entry.device);
        change(&mut device);
        device.id = entry.device.id.clone();
        device.municipality = entry.device.municipality.clone();
        self.apply(device, entry.presence)
    }

    /// Stores `device` and puts it in place of the device of the same id, if any. The caller
    /// holds `changing`.
    fn apply(&self, device: Device, presence: Arc<Presence>) -> Result<Arc<Device>, DeviceError> {
        if let Some(store) = &self.store {
            let record = serde_json::to_vec(&DeviceRecord::of(&device)).map_err(|err| {
                DeviceError::Corrupt {
                    key: device.id.clone(),
                    cause: err.to_string(),
                }
            })?;
            store.put(&record_key(&device.municipality, &device.id), &record)?;
        }
        let device = Arc::new(device);
        {
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            let previous = index.remove(&device.id);
            if let Err(err) = index.insert(device.clone(), presence) {
                // Only a LoRaWAN address clash fails, and changes keep the address: put the
                // previous device back so the index stays whole.
                if let Some(previous) = previous {
                    let _ = index.insert(previous.device, previous.presence);
                }
                return Err(err);
            }
        }
        self.changed.send_modify(|count| *count += 1);
        Ok(device)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use twin::store::MemoryStore;

    use super::*;
    use crate::ingest::Gateway;

    pub(super) fn device(id: &str, municipality: &str, sensors: &[&str], key: &str) -> Device {
        Device {
            id: id.into(),
            municipality: municipality.into(),
            sensors: sensors.iter().map(|s| s.to_string()).collect(),
            key_sha256: key_digest(key),
            active: true,
            lorawan: None,
        }
    }

    fn lorawan(dev_addr: u32) -> Option<LorawanSession> {
        Some(LorawanSession {
            dev_eui: Some([1, 2, 3, 4, 5, 6, 7, 8]),
            dev_addr,
            nwk_s_key: [7; 16],
            app_s_key: [9; 16],
        })
    }

    #[test]
    fn keys_are_checked_and_changes_take_effect_at_once() {
        let registry = DeviceRegistry::new(vec![device("a", "town", &["p1"], "key-a")]).unwrap();
        assert!(registry.authenticate("a", "key-a").is_ok());
        assert_eq!(
            registry.authenticate("a", "key-b"),
            Err(RejectReason::Unauthenticated)
        );
        let old = registry.get("a").unwrap();
        let changes = registry.changes();
        registry
            .update("town", "a", |d| d.key_sha256 = key_digest("key-b"))
            .unwrap();
        assert!(changes.has_changed().unwrap());
        assert!(registry.authenticate("a", "key-a").is_err());
        assert!(registry.authenticate("a", "key-b").is_ok());
        assert!(!registry.still_valid(&old));
        registry.update("town", "a", |d| d.active = false).unwrap();
        assert!(registry.authenticate("a", "key-b").is_err());
        // Another municipality's device is unknown, like a missing one.
        assert!(matches!(
            registry.update("village", "a", |d| d.active = true),
            Err(DeviceError::Unknown(_))
        ));
        assert!(matches!(
            registry.update("town", "zz", |d| d.active = true),
            Err(DeviceError::Unknown(_))
        ));
    }

    #[test]
    fn registration_refuses_used_ids_and_taken_sensors() {
        let registry = DeviceRegistry::new(vec![device("a", "town", &["p1"], "k")]).unwrap();
        assert!(matches!(
            registry.register(device("a", "town", &["p2"], "k")),
            Err(DeviceError::DuplicateId(_))
        ));
        assert!(matches!(
            registry.register(device("b", "town", &["p2", "p1"], "k")),
            Err(DeviceError::SensorTaken { sensor, device }) if sensor == "p1" && device == "a"
        ));
        // The same sensor id in another municipality is another sensor.
        registry
            .register(device("b", "village", &["p1"], "k"))
            .unwrap();
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.reporting_for("village", "p1").unwrap().id, "b");
        assert_eq!(registry.reporting_for("town", "p1").unwrap().id, "a");
        assert!(registry.reporting_for("town", "p9").is_none());
    }

    #[test]
    fn stored_changes_survive_a_reopen_and_override_the_configuration() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut lora = device("c", "town", &["p3"], "key-c");
        lora.lorawan = lorawan(0x2601_1BDA);
        let configured = vec![
            device("a", "town", &["p1"], "key-a"),
            device("b", "town", &["p2"], "key-b"),
            lora,
        ];
        let towns = ["town".to_string(), "village".to_string()];
        let registry = DeviceRegistry::open(configured.clone(), store.clone(), &towns).unwrap();
        registry
            .register(device("n", "village", &["v1", "v2"], "key-n"))
            .unwrap();
        registry
            .update("town", "a", |d| d.key_sha256 = key_digest("key-a2"))
            .unwrap();
        registry.update("town", "c", |d| d.active = false).unwrap();
        let expected = registry.all();

        let reopened = DeviceRegistry::open(configured.clone(), store.clone(), &towns).unwrap();
        assert_eq!(reopened.all(), expected);
        assert!(reopened.authenticate("a", "key-a").is_err());
        assert!(reopened.authenticate("a", "key-a2").is_ok());
        assert!(reopened.authenticate("b", "key-b").is_ok());
        assert!(reopened.authenticate("n", "key-n").is_ok());
        // The LoRaWAN session comes from the configuration, the rest from the store.
        let c = reopened.by_dev_addr(0x2601_1BDA).unwrap();
        assert!(!c.active);
        assert_eq!(c.lorawan, configured[2].lorawan);
        // Records of municipalities no longer served are not loaded.
        let town_only = DeviceRegistry::open(configured, store, &towns[..1]).unwrap();
        assert!(town_only.get("n").is_none());
        assert_eq!(town_only.len(), 3);
    }

    #[test]
    fn lookups_never_fail_while_keys_rotate() {
        let devices = (0..50)
            .map(|i| device(&format!("d{i}"), "town", &[&format!("s{i}")], "key-0"))
            .collect();
        let registry = Arc::new(DeviceRegistry::new(devices).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let reading = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..4)
            .map(|reader| {
                let registry = registry.clone();
                let stop = stop.clone();
                let reading = reading.clone();
                std::thread::spawn(move || {
                    let mut lookups = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("d{}", lookups % 50);
                        // Every device is there at every moment, with one of the two keys.
                        let device = registry.get(&id).expect("device present");
                        assert!(
                            device.key_sha256 == key_digest("key-0")
                                || device.key_sha256 == key_digest("key-1"),
                            "reader {reader}"
                        );
                        assert_eq!(
                            registry
                                .reporting_for("town", &device.sensors[0])
                                .unwrap()
                                .id,
                            id
                        );
                        registry.heard(&id, Gateway::Mqtt, lookups as i64);
                        if lookups == 0 {
                            reading.fetch_add(1, Ordering::Relaxed);
                        }
                        lookups += 1;
                    }
                    lookups
                })
            })
            .collect();
        // Changes start once every reader is looking up.
        while reading.load(Ordering::Relaxed) < 4 {
            std::thread::yield_now();
        }
        for round in 0..200 {
            // Rounds 0-49 give every device key-1, 50-99 key-0 again, and so on.
            let key = key_digest(if (round / 50) % 2 == 0 {
                "key-1"
            } else {
                "key-0"
            });
            registry
                .update("town", &format!("d{}", round % 50), |d| d.key_sha256 = key)
                .unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(registry.len(), 50);
        // Four rotations of each device: back to its first key.
        assert!((0..50).all(|i| registry.authenticate(&format!("d{i}"), "key-0").is_ok()));
    }

    #[test]
    fn lorawan_addresses_stay_unique() {
        let mut a = device("a", "town", &["p1"], "k");
        a.lorawan = lorawan(1);
        let mut b = device("b", "town", &["p2"], "k");
        b.lorawan = lorawan(1);
        assert!(matches!(
            DeviceRegistry::new(vec![a, b]),
            Err(DeviceError::DuplicateDevAddr(..))
        ));
    }
}

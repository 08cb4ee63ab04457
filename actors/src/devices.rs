//! Configured devices and their authentication by per-device key.
//!
//! Keys are never kept: only their SHA-256 digest. Device keys are random and long (they are
//! generated, not chosen by people), so a fast digest is enough; user passwords use argon2
//! elsewhere.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::ingest::RejectReason;

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

/// Errors in a device list.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Two devices share an id.
    #[error("device {0} is defined twice")]
    DuplicateId(String),
    /// Two LoRaWAN devices share an address.
    #[error("devices {0} and {1} share the LoRaWAN DevAddr {2:08X}")]
    DuplicateDevAddr(String, String, u32),
}

/// Every configured device, looked up by id, LoRaWAN address or DevEUI.
#[derive(Debug, Default)]
pub struct DeviceRegistry {
    by_id: HashMap<String, Arc<Device>>,
    by_dev_addr: HashMap<u32, Arc<Device>>,
    by_dev_eui: HashMap<[u8; 8], Arc<Device>>,
}

impl DeviceRegistry {
    /// A registry of `devices`.
    pub fn new(devices: Vec<Device>) -> Result<Self, DeviceError> {
        let mut registry = Self::default();
        let mut seen = HashSet::new();
        for device in devices {
            if !seen.insert(device.id.clone()) {
                return Err(DeviceError::DuplicateId(device.id));
            }
            let device = Arc::new(device);
            if let Some(session) = &device.lorawan {
                if let Some(other) = registry
                    .by_dev_addr
                    .insert(session.dev_addr, device.clone())
                {
                    return Err(DeviceError::DuplicateDevAddr(
                        other.id.clone(),
                        device.id.clone(),
                        session.dev_addr,
                    ));
                }
                if let Some(eui) = session.dev_eui {
                    registry.by_dev_eui.insert(eui, device.clone());
                }
            }
            registry.by_id.insert(device.id.clone(), device);
        }
        Ok(registry)
    }

    /// The device `id` if `key` is its key and it is active.
    pub fn authenticate(&self, id: &str, key: &str) -> Result<Arc<Device>, RejectReason> {
        let device = self.by_id.get(id).ok_or(RejectReason::Unauthenticated)?;
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
        Ok(device.clone())
    }

    /// The device `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Device>> {
        self.by_id.get(id)
    }

    /// The LoRaWAN device with address `dev_addr`.
    pub fn by_dev_addr(&self, dev_addr: u32) -> Option<&Arc<Device>> {
        self.by_dev_addr.get(&dev_addr)
    }

    /// The LoRaWAN device with DevEUI `eui`.
    pub fn by_dev_eui(&self, eui: &[u8; 8]) -> Option<&Arc<Device>> {
        self.by_dev_eui.get(eui)
    }

    /// Every device.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Device>> {
        self.by_id.values()
    }
}

//! Presence of devices: when each was last heard and over which gateway, one atomic word per
//! device so the ingest path never waits on it. A registry opened on a store writes the times
//! that changed in one batch when asked ([`DeviceRegistry::save_presence`], which `serve` calls
//! periodically and at a clean stop) under `(tenant, "device_presence", id)`, and reads them
//! back on the next start ([`restore`]): a device heard before a restart is not taken for one
//! never heard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use twin::store::tuple::Element;
use twin::store::{Durability, Store, TenantKeys, WriteBatch};

use super::{corrupt, scan_family, Device, DeviceError, DeviceRegistry, Index};
use crate::ingest::Gateway;

/// The family of the devices' last-heard times under a tenant's prefix.
const PRESENCE_FAMILY: &str = "device_presence";

/// When a device was last heard, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// Unix ms.
    pub at_ms: i64,
    /// The gateway its message came through.
    pub gateway: Gateway,
}

/// The last time a device was heard, as one word: `(ms << 8) | (gateway index + 1)`, 0 for
/// never. Time in the high bits makes `fetch_max` keep the latest of concurrent updates.
/// `saved` is the word last written to the store, touched only by the saving side.
#[derive(Debug, Default)]
pub(super) struct Presence {
    heard: AtomicU64,
    saved: AtomicU64,
}

impl Presence {
    fn word(heard: Heard) -> u64 {
        let index = Gateway::ALL
            .iter()
            .position(|g| *g == heard.gateway)
            .unwrap_or(0) as u64;
        // Unix ms stay far below 2^56 for millions of years; earlier times are clamped to 0.
        (u64::try_from(heard.at_ms).unwrap_or(0) << 8) | (index + 1)
    }

    fn decode(word: u64) -> Option<Heard> {
        let index = (word & 0xFF).checked_sub(1)?;
        Some(Heard {
            at_ms: (word >> 8) as i64,
            gateway: *Gateway::ALL.get(index as usize)?,
        })
    }

    fn record(&self, gateway: Gateway, at_ms: i64) {
        self.heard
            .fetch_max(Self::word(Heard { at_ms, gateway }), Ordering::Relaxed);
    }

    fn get(&self) -> Option<Heard> {
        Self::decode(self.heard.load(Ordering::Relaxed))
    }

    /// Presence as read back from the store: heard then, and saved already.
    fn restored(heard: Heard) -> Self {
        let word = Self::word(heard);
        Self {
            heard: AtomicU64::new(word),
            saved: AtomicU64::new(word),
        }
    }
}

/// What the store keeps of a device's presence.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceRecord {
    id: String,
    /// Unix ms.
    at_ms: i64,
    gateway: Gateway,
}

impl PresenceRecord {
    fn heard(&self) -> Heard {
        Heard {
            at_ms: self.at_ms,
            gateway: self.gateway,
        }
    }
}

fn presence_key(municipality: &str, id: &str) -> Vec<u8> {
    TenantKeys::new(municipality).key(&[Element::from(PRESENCE_FAMILY), Element::from(id)])
}

/// Puts the last-heard times stored for `municipalities` in `store` into `index` (of devices
/// read already).
pub(super) fn restore(
    index: &mut Index,
    store: &dyn Store,
    municipalities: &[String],
) -> Result<(), DeviceError> {
    for municipality in municipalities {
        for (key, value) in scan_family(store, municipality, PRESENCE_FAMILY)? {
            let record: PresenceRecord =
                serde_json::from_slice(&value).map_err(|err| corrupt(&key, err))?;
            // Times of devices gone from the configuration are left where they are.
            if let Some(entry) = index
                .by_id
                .get_mut(&record.id)
                .filter(|entry| entry.device.municipality == *municipality)
            {
                entry.presence = Arc::new(Presence::restored(record.heard()));
            }
        }
    }
    Ok(())
}

impl DeviceRegistry {
    /// Notes that device `id` was heard over `gateway` at `at_ms` (a later time stays).
    pub fn heard(&self, id: &str, gateway: Gateway, at_ms: i64) {
        if let Some(entry) = self.read().by_id.get(id) {
            entry.presence.record(gateway, at_ms);
        }
    }

    /// When device `id` was last heard (before a restart too, as last saved).
    pub fn last_heard(&self, id: &str) -> Option<Heard> {
        self.read().by_id.get(id)?.presence.get()
    }

    /// Writes the last-heard times that changed since the last save in one durable batch; how
    /// many. Without a store, nothing. Ingest is never held up: it only ever touches the
    /// `heard` word, which this reads.
    pub fn save_presence(&self) -> Result<usize, DeviceError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let changed: Vec<(Arc<Device>, Arc<Presence>, u64)> = self
            .read()
            .by_id
            .values()
            .filter_map(|entry| {
                let word = entry.presence.heard.load(Ordering::Relaxed);
                (word != entry.presence.saved.load(Ordering::Relaxed))
                    .then(|| (entry.device.clone(), entry.presence.clone(), word))
            })
            .collect();
        let mut batch = WriteBatch::new();
        for (device, _, word) in &changed {
            let Some(heard) = Presence::decode(*word) else {
                continue;
            };
            let record = PresenceRecord {
                id: device.id.clone(),
                at_ms: heard.at_ms,
                gateway: heard.gateway,
            };
            let value = serde_json::to_vec(&record).map_err(|err| DeviceError::Corrupt {
                key: device.id.clone(),
                cause: err.to_string(),
            })?;
            batch.put(presence_key(&device.municipality, &device.id), value);
        }
        if batch.is_empty() {
            return Ok(0);
        }
        store.write(batch, Durability::Durable)?;
        for (_, presence, word) in &changed {
            presence.saved.store(*word, Ordering::Relaxed);
        }
        Ok(changed.len())
    }
}

#[cfg(test)]
mod tests {
    use twin::store::MemoryStore;

    use super::super::tests::device;
    use super::*;

    #[test]
    fn presence_keeps_the_latest_time_and_survives_changes() {
        let registry = DeviceRegistry::new(vec![device("a", "town", &["p1"], "k")]).unwrap();
        assert_eq!(registry.last_heard("a"), None);
        registry.heard("a", Gateway::Http, 2_000);
        registry.heard("a", Gateway::Mqtt, 1_000);
        registry.heard("nobody", Gateway::Mqtt, 3_000);
        let heard = Heard {
            at_ms: 2_000,
            gateway: Gateway::Http,
        };
        assert_eq!(registry.last_heard("a"), Some(heard));
        registry.update("town", "a", |d| d.active = false).unwrap();
        assert_eq!(registry.last_heard("a"), Some(heard));
        registry.heard("a", Gateway::LorawanUdp, 1_763_800_000_123);
        assert_eq!(
            registry.last_heard("a"),
            Some(Heard {
                at_ms: 1_763_800_000_123,
                gateway: Gateway::LorawanUdp
            })
        );
    }

    #[test]
    fn saved_presence_survives_a_reopen() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let configured = vec![
            device("a", "town", &["p1"], "key-a"),
            device("b", "town", &["p2"], "key-b"),
            device("v", "village", &["p1"], "key-v"),
        ];
        let towns = ["town".to_string(), "village".to_string()];
        let registry = DeviceRegistry::open(configured.clone(), store.clone(), &towns).unwrap();
        assert_eq!(registry.save_presence().unwrap(), 0, "nothing heard yet");
        registry.heard("a", Gateway::Mqtt, 1_763_800_000_000);
        registry.heard("v", Gateway::LorawanUdp, 1_763_800_000_500);
        assert_eq!(registry.save_presence().unwrap(), 2);
        assert_eq!(registry.save_presence().unwrap(), 0, "unchanged since");
        // An older time changes nothing; a newer one is saved again.
        registry.heard("a", Gateway::Http, 1_763_700_000_000);
        assert_eq!(registry.save_presence().unwrap(), 0);
        registry.heard("a", Gateway::Http, 1_763_800_001_000);
        assert_eq!(registry.save_presence().unwrap(), 1);

        let reopened = DeviceRegistry::open(configured.clone(), store.clone(), &towns).unwrap();
        for id in ["a", "b", "v"] {
            assert_eq!(reopened.last_heard(id), registry.last_heard(id), "{id}");
        }
        assert_eq!(reopened.last_heard("b"), None);
        assert_eq!(reopened.save_presence().unwrap(), 0, "read back as saved");
        // Times of municipalities no longer served are not loaded.
        let town_only = DeviceRegistry::open(configured, store, &towns[..1]).unwrap();
        assert_eq!(town_only.last_heard("v"), None);
    }
}

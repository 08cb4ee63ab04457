//! Key layout: tuple-encoded keys under a root prefix and a tenant, so every query of a tenant
//! is a range inside its own prefix.
//!
//! Layout (tuples): `(root.., tenant, "readings", sensor_id, bucket_start_ms)` for reading
//! blocks; other record families (`"sensors"`, `"state"`, `"events"`, ...) sit beside
//! `"readings"` under the same tenant.

use super::tuple::{self, Element, TupleError};
use super::KeyRange;

/// Root prefix of every aquatwin key.
pub const ROOT: &str = "aquatwin";

/// A subspace: every key starting with a tuple-encoded prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    prefix: Vec<u8>,
}

impl Default for Keyspace {
    /// The root subspace `("aquatwin",)`.
    fn default() -> Self {
        Self::new(&[Element::from(ROOT)])
    }
}

impl Keyspace {
    /// The subspace of tuples starting with `elements`.
    pub fn new(elements: &[Element]) -> Self {
        Self {
            prefix: tuple::pack(elements),
        }
    }

    /// The encoded prefix.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// A nested subspace (this prefix followed by `elements`).
    pub fn subspace(&self, elements: &[Element]) -> Keyspace {
        let mut prefix = self.prefix.clone();
        tuple::pack_into(&mut prefix, elements);
        Keyspace { prefix }
    }

    /// The key of `elements` inside this subspace.
    pub fn pack(&self, elements: &[Element]) -> Vec<u8> {
        let mut key = self.prefix.clone();
        tuple::pack_into(&mut key, elements);
        key
    }

    /// The elements of `key` after this subspace's prefix.
    pub fn unpack(&self, key: &[u8]) -> Result<Vec<Element>, TupleError> {
        let rest = key
            .strip_prefix(self.prefix.as_slice())
            .ok_or(TupleError::OutsideSubspace)?;
        tuple::unpack(rest)
    }

    /// Whether `key` is inside the subspace.
    pub fn contains(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix)
    }

    /// Every key of the subspace (FoundationDB's `prefix + 0x00 .. prefix + 0xff`).
    pub fn range(&self) -> KeyRange {
        let mut start = self.prefix.clone();
        start.push(0x00);
        let mut end = self.prefix.clone();
        end.push(0xff);
        KeyRange::new(start, end)
    }

    /// The tenant `tenant` of this (root) subspace.
    pub fn tenant(&self, tenant: &str) -> TenantKeys {
        TenantKeys {
            tenant: tenant.to_string(),
            space: self.subspace(&[Element::from(tenant)]),
        }
    }
}

/// The keys of one tenant (municipality).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeys {
    tenant: String,
    space: Keyspace,
}

/// Record family of reading blocks.
const READINGS: &str = "readings";

impl TenantKeys {
    /// The tenant under the default root.
    pub fn new(tenant: &str) -> Self {
        Keyspace::default().tenant(tenant)
    }

    /// The tenant's name.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The tenant's whole subspace.
    pub fn space(&self) -> &Keyspace {
        &self.space
    }

    /// Every key of the tenant.
    pub fn range(&self) -> KeyRange {
        self.space.range()
    }

    /// A key of the tenant.
    pub fn key(&self, elements: &[Element]) -> Vec<u8> {
        self.space.pack(elements)
    }

    /// The subspace of one sensor's reading blocks.
    pub fn readings(&self, sensor_id: &str) -> Keyspace {
        self.space
            .subspace(&[Element::from(READINGS), Element::from(sensor_id)])
    }

    /// The key of a sensor's block starting at `bucket_start` (ms).
    pub fn reading_block(&self, sensor_id: &str, bucket_start: i64) -> Vec<u8> {
        self.readings(sensor_id).pack(&[Element::Int(bucket_start)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ranges_are_disjoint_and_contain_their_keys() {
        let a = TenantKeys::new("a");
        let ab = TenantKeys::new("ab");
        let key_a = a.reading_block("s1", 0);
        let key_ab = ab.reading_block("s1", 0);
        assert!(a.range().contains(&key_a));
        assert!(!a.range().contains(&key_ab));
        assert!(ab.range().contains(&key_ab));
        assert!(!ab.range().contains(&key_a));
        assert_eq!(
            a.space().unpack(&key_a).unwrap(),
            vec![
                Element::from("readings"),
                Element::from("s1"),
                Element::Int(0)
            ]
        );
        assert_eq!(ab.space().unpack(&key_a), Err(TupleError::OutsideSubspace));
    }

    #[test]
    fn block_keys_sort_by_time_within_a_sensor() {
        let t = TenantKeys::new("town");
        let times = [-3_600_000, 0, 3_600_000, 1_700_000_000_000, i64::MAX];
        let keys: Vec<Vec<u8>> = times.iter().map(|&ts| t.reading_block("s", ts)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let r = t.readings("s").range();
        assert!(keys.iter().all(|k| r.contains(k)));
        assert!(!r.contains(&t.reading_block("s2", 0)));
        assert!(!r.contains(&t.key(&[Element::from("sensors")])));
    }
}

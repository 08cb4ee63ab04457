//! The network versions of every municipality: each one's configured network, which the live
//! twin runs on (version 0, `live`), and the uploads kept in the store under the tenant's
//! prefix (descriptions under `network_versions`, texts under `network_inp`, by version; the
//! highest number given under `network_version_last`, so that no number is given twice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hydraulics::Network;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use twin::store::tuple::Element;
use twin::store::{Durability, Order, TenantKeys, WriteBatch};
use twin::StoreError;
use utoipa::ToSchema;

/// Record family of the versions' descriptions, by version.
const VERSIONS: &str = "network_versions";
/// Record family of the versions' `.inp` texts, by version.
const VERSION_TEXTS: &str = "network_inp";
/// Key of the highest version number given so far (which may have been deleted since).
const LAST_VERSION: &str = "network_version_last";

/// The name of the configured network's version (version 0).
pub(in crate::serve) const LIVE: &str = "live";

/// A network version, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(super) struct NetworkVersion {
    /// 0 for the configured network the live twin runs on; 1, 2, ... for uploads.
    version: u64,
    /// Whether the live twin runs on it (version 0 only).
    live: bool,
    /// Who uploaded it (`null` for the configured network).
    uploaded_by: Option<String>,
    /// When, Unix ms (`null` for the configured network).
    uploaded_at_ms: Option<i64>,
    /// SHA-256 of its `.inp` text, hex.
    sha256: String,
    /// The first line of its `[TITLE]`.
    title: Option<String>,
    /// Nodes.
    nodes: usize,
    /// Links.
    links: usize,
}

impl NetworkVersion {
    fn of(version: u64, network: &Network, text: &str) -> Self {
        Self {
            version,
            live: version == 0,
            uploaded_by: None,
            uploaded_at_ms: None,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            title: network.title.first().cloned(),
            nodes: network.nodes.len(),
            links: network.links.len(),
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum UploadError {
    /// Not a network the hydraulics reader accepts.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The network versions of every municipality: the configured (live) ones and the uploads in
/// the store.
pub(in crate::serve) struct Versions {
    store: Arc<dyn twin::Store>,
    live: HashMap<String, (Arc<Network>, NetworkVersion)>,
    /// Held while version numbers are read and written (uploads, deletions), so that each is
    /// given once.
    uploading: Mutex<()>,
}

impl Versions {
    /// The versions of `store`, with `live` as each municipality's version 0.
    pub(in crate::serve) fn new(
        store: Arc<dyn twin::Store>,
        live: &HashMap<String, Arc<Network>>,
    ) -> Self {
        let live = live
            .iter()
            .map(|(municipality, network)| {
                let text = hydraulics::inp::write_string(network);
                let description = NetworkVersion::of(0, network, &text);
                (municipality.clone(), (network.clone(), description))
            })
            .collect();
        Self {
            store,
            live,
            uploading: Mutex::new(()),
        }
    }

    /// Whether `municipality` is served.
    pub(in crate::serve) fn serves(&self, municipality: &str) -> bool {
        self.live.contains_key(municipality)
    }

    fn key(municipality: &str, family: &str, version: u64) -> Vec<u8> {
        TenantKeys::new(municipality).key(&[Element::from(family), version_element(version)])
    }

    /// Every version of `municipality`, oldest first (none when it is not served).
    pub(super) fn list(&self, municipality: &str) -> Result<Vec<NetworkVersion>, StoreError> {
        let Some((_, live)) = self.live.get(municipality) else {
            return Ok(Vec::new());
        };
        let range = TenantKeys::new(municipality)
            .space()
            .subspace(&[Element::from(VERSIONS)])
            .range();
        let mut versions = vec![live.clone()];
        for (_, value) in self.store.scan(&range, Order::Forward, None)? {
            versions.push(decode(&value)?);
        }
        Ok(versions)
    }

    /// Reads `text` and stores it as the next version of `municipality`, uploaded by `by`.
    pub(super) fn upload(
        &self,
        municipality: &str,
        by: &str,
        text: &str,
    ) -> Result<NetworkVersion, UploadError> {
        let network = hydraulics::read_str(text, "network.inp")
            .map_err(|err| UploadError::Invalid(err.to_string()))?;
        let _taking = self
            .uploading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = self.last_given(municipality)?;
        let version = NetworkVersion {
            uploaded_by: Some(by.to_string()),
            uploaded_at_ms: Some(crate::fleet::unix_ms()),
            live: false,
            ..NetworkVersion::of(last + 1, &network, text)
        };
        let description = serde_json::to_vec(&version)
            .map_err(|err| StoreError::backend("encode network version", err))?;
        let mut batch = WriteBatch::new();
        batch.put(
            Self::key(municipality, VERSIONS, version.version),
            description,
        );
        batch.put(
            Self::key(municipality, VERSION_TEXTS, version.version),
            text.as_bytes(),
        );
        batch.put(Self::last_key(municipality), version.version.to_be_bytes());
        self.store.write(batch, Durability::Durable)?;
        Ok(version)
    }

    fn last_key(municipality: &str) -> Vec<u8> {
        TenantKeys::new(municipality).key(&[Element::from(LAST_VERSION)])
    }

    /// The highest version number given so far in `municipality` (0: none).
    fn last_given(&self, municipality: &str) -> Result<u64, StoreError> {
        let range = TenantKeys::new(municipality)
            .space()
            .subspace(&[Element::from(VERSIONS)])
            .range();
        let newest = match self.store.scan(&range, Order::Reverse, Some(1))?.first() {
            Some((_, value)) => decode(value)?.version,
            None => 0,
        };
        // Stores written before versions could be deleted have no such key.
        let Some(bytes) = self.store.get(&Self::last_key(municipality))? else {
            return Ok(newest);
        };
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| StoreError::backend("decode the last network version", "not 8 bytes"))?;
        Ok(newest.max(u64::from_be_bytes(bytes)))
    }

    /// Whether `version` is an upload of `municipality` that is still stored (version 0, the
    /// configured network, never is).
    pub(in crate::serve) fn uploaded(
        &self,
        municipality: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get(&Self::key(municipality, VERSIONS, version))?
            .is_some())
    }

    /// Deletes uploaded `version` of `municipality`; whether it was there. The highest number
    /// given is kept, so that it is not given again.
    pub(in crate::serve) fn delete(
        &self,
        municipality: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        let _numbering = self
            .uploading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !self.uploaded(municipality, version)? {
            return Ok(false);
        }
        let mut batch = WriteBatch::new();
        batch.put(
            Self::last_key(municipality),
            self.last_given(municipality)?.to_be_bytes(),
        );
        batch.delete(Self::key(municipality, VERSIONS, version));
        batch.delete(Self::key(municipality, VERSION_TEXTS, version));
        self.store.write(batch, Durability::Durable)?;
        Ok(true)
    }

    /// The `.inp` text of a version (`None` when there is no such version).
    pub(super) fn text(
        &self,
        municipality: &str,
        version: u64,
    ) -> Result<Option<String>, StoreError> {
        if version == 0 {
            return Ok(self
                .live
                .get(municipality)
                .map(|(network, _)| hydraulics::inp::write_string(network)));
        }
        let Some(bytes) = self
            .store
            .get(&Self::key(municipality, VERSION_TEXTS, version))?
        else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|err| StoreError::backend("decode network text", err))
    }

    /// The network of a version (`None` when there is no such version); an upload is read
    /// again from its text.
    pub(in crate::serve) fn network(
        &self,
        municipality: &str,
        version: u64,
    ) -> Result<Option<Arc<Network>>, StoreError> {
        if version == 0 {
            return Ok(self
                .live
                .get(municipality)
                .map(|(network, _)| network.clone()));
        }
        let Some(text) = self.text(municipality, version)? else {
            return Ok(None);
        };
        hydraulics::read_str(&text, "network.inp")
            .map(|network| Some(Arc::new(network)))
            .map_err(|err| StoreError::backend("read a stored network", err))
    }
}

fn version_element(version: u64) -> Element {
    Element::Int(i64::try_from(version).unwrap_or(i64::MAX))
}

fn decode(value: &[u8]) -> Result<NetworkVersion, StoreError> {
    serde_json::from_slice(value).map_err(|err| StoreError::backend("decode network version", err))
}

/// A version named in a path or a job: `live` (or `0`) or a number.
pub(in crate::serve) fn parse_version(text: &str) -> Option<u64> {
    if text == LIVE {
        return Some(0);
    }
    text.parse().ok()
}

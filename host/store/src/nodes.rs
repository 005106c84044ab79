//! The nodes serving the store, as each last reported itself.

use serde::Serialize;

use super::StoreError;

/// A node serving the store (`prereg serve`), as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeRecord {
    /// Its name (`--node`, or host:port).
    pub node_id: String,
    /// The address it listens on.
    pub address: String,
    /// prereg version.
    pub version: String,
    /// Unix seconds.
    pub started_at: u64,
    /// When it last reported, Unix seconds.
    pub seen_at: u64,
    /// SHA-256 of its active policy.
    pub policy_sha256: String,
    /// Name and version of its active policy.
    pub policy_name: String,
    /// The registration change its in-memory index had applied.
    pub index_seq: u64,
    /// It stopped cleanly.
    pub stopped: bool,
}

/// The nodes serving the store, as each last reported itself.
pub trait Nodes {
    /// Records how a serving node stands (its heartbeat).
    fn record_node(&mut self, node: &NodeRecord) -> Result<(), StoreError>;

    /// Every node that ever served the store.
    fn nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError>;
}

//! [`crate::Nodes`] on PostgreSQL.

use super::PostgresTx;
use super::rows::{NODE_COLUMNS, node_from};
use crate::Nodes;
use crate::{NodeRecord, StoreError};

impl Nodes for PostgresTx {
    fn record_node(&mut self, n: &NodeRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO nodes (node_id, address, version, started_at, seen_at, policy_sha256, policy_name, index_seq, stopped) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (node_id) DO UPDATE SET address = $2, version = $3, \
             started_at = $4, seen_at = $5, policy_sha256 = $6, policy_name = $7, index_seq = $8, stopped = $9",
            &[
                &n.node_id,
                &n.address,
                &n.version,
                &(n.started_at as i64),
                &(n.seen_at as i64),
                &n.policy_sha256,
                &n.policy_name,
                &(n.index_seq as i64),
                &n.stopped,
            ],
        )?;
        Ok(())
    }

    fn nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id");
        self.query(&sql, &[])?.iter().map(node_from).collect()
    }
}

//! [`crate::Nodes`] on SQLite.

use rusqlite::params;

use super::SqliteTx;
use crate::Nodes;
use crate::{NodeRecord, StoreError};

impl Nodes for SqliteTx {
    fn record_node(&mut self, n: &NodeRecord) -> Result<(), StoreError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO nodes (node_id, address, version, started_at, seen_at, policy_sha256, policy_name, \
                 index_seq, stopped) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (node_id) DO UPDATE SET \
                 address = ?2, version = ?3, started_at = ?4, seen_at = ?5, policy_sha256 = ?6, policy_name = ?7, \
                 index_seq = ?8, stopped = ?9",
            )?
            .execute(params![
                n.node_id,
                n.address,
                n.version,
                n.started_at as i64,
                n.seen_at as i64,
                n.policy_sha256,
                n.policy_name,
                n.index_seq as i64,
                n.stopped
            ])?;
        Ok(())
    }

    fn nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT node_id, address, version, started_at, seen_at, policy_sha256, policy_name, index_seq, stopped \
             FROM nodes ORDER BY node_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(NodeRecord {
                    node_id: r.get(0)?,
                    address: r.get(1)?,
                    version: r.get(2)?,
                    started_at: r.get::<_, i64>(3)? as u64,
                    seen_at: r.get::<_, i64>(4)? as u64,
                    policy_sha256: r.get(5)?,
                    policy_name: r.get(6)?,
                    index_seq: r.get::<_, i64>(7)? as u64,
                    stopped: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

//! [`crate::AcmeObjects`] on PostgreSQL.

use postgres::Row;

use super::PostgresTx;
use super::rows::{col, u64_at};
use crate::{AcmeKind, AcmeObject, AcmeObjects, StoreError};

const COLUMNS: &str = "id, parent, lookup, state, body, created_at";

fn object_from(kind: AcmeKind, row: &Row) -> Result<AcmeObject, StoreError> {
    Ok(AcmeObject {
        kind,
        id: col(row, 0)?,
        parent: col(row, 1)?,
        lookup: col(row, 2)?,
        state: col(row, 3)?,
        body: col(row, 4)?,
        created_at: u64_at(row, 5)?,
    })
}

fn duplicate(object: &AcmeObject) -> StoreError {
    StoreError::Duplicate { what: format!("ACME {} {:?}", object.kind.as_str(), object.id) }
}

impl AcmeObjects for PostgresTx {
    fn insert_acme_object(&mut self, o: &AcmeObject) -> Result<(), StoreError> {
        // ON CONFLICT: a unique violation would abort the transaction.
        let inserted = self.execute(
            "INSERT INTO acme_objects (kind, id, parent, lookup, state, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[&o.kind.as_str(), &o.id, &o.parent, &o.lookup, &o.state, &o.body, &(o.created_at as i64)],
        )?;
        if inserted == 1 { Ok(()) } else { Err(duplicate(o)) }
    }

    fn acme_object(&mut self, kind: AcmeKind, id: &str) -> Result<Option<AcmeObject>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM acme_objects WHERE kind = $1 AND id = $2");
        self.query_opt(&sql, &[&kind.as_str(), &id])?.map(|row| object_from(kind, &row)).transpose()
    }

    fn acme_object_by_lookup(&mut self, kind: AcmeKind, lookup: &str) -> Result<Option<AcmeObject>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM acme_objects WHERE kind = $1 AND lookup = $2");
        self.query_opt(&sql, &[&kind.as_str(), &lookup])?.map(|row| object_from(kind, &row)).transpose()
    }

    fn acme_children(&mut self, kind: AcmeKind, parent: &str, limit: u32) -> Result<Vec<AcmeObject>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM acme_objects WHERE kind = $1 AND parent = $2 ORDER BY created_at, id LIMIT $3"
        );
        self.query(&sql, &[&kind.as_str(), &parent, &i64::from(limit)])?
            .iter()
            .map(|row| object_from(kind, row))
            .collect()
    }

    fn update_acme_object(&mut self, o: &AcmeObject, from: &str) -> Result<bool, StoreError> {
        if let Some(lookup) = &o.lookup {
            // A taken lookup: checked first, as a unique violation would
            // abort the transaction.
            let taken = self.query_opt(
                "SELECT 1 FROM acme_objects WHERE kind = $1 AND lookup = $2 AND id <> $3",
                &[&o.kind.as_str(), lookup, &o.id],
            )?;
            if taken.is_some() {
                return Err(duplicate(o));
            }
        }
        let changed = self.execute(
            "UPDATE acme_objects SET lookup = $3, state = $4, body = $5 WHERE kind = $1 AND id = $2 AND state = $6",
            &[&o.kind.as_str(), &o.id, &o.lookup, &o.state, &o.body, &from],
        )?;
        Ok(changed == 1)
    }

    fn count_acme_objects(&mut self, kind: AcmeKind) -> Result<u64, StoreError> {
        let row = self.query_opt("SELECT count(*) FROM acme_objects WHERE kind = $1", &[&kind.as_str()])?;
        row.map_or(Ok(0), |row| u64_at(&row, 0))
    }

    fn acme_objects(&mut self, kind: AcmeKind, after: &str, limit: u32) -> Result<Vec<AcmeObject>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM acme_objects WHERE kind = $1 AND id COLLATE \"C\" > $2 ORDER BY id COLLATE \"C\" LIMIT $3"
        );
        self.query(&sql, &[&kind.as_str(), &after, &i64::from(limit)])?
            .iter()
            .map(|row| object_from(kind, row))
            .collect()
    }
}

//! Preregistered devices: reads, candidate lookups by index key, writes, and the change log that
//! keeps every node's in-memory index in step.

use prereg_core::RegistrationState;
use serde::Serialize;

use super::{StoreError, de_state, ser_display};

/// A registration with everything the store keeps of it (for `prereg migrate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    /// The record.
    pub record: RegistrationRecord,
    /// Its encoded index key.
    pub index_key: String,
    /// PHC password hash.
    pub password_hash: Option<String>,
    /// Sealed password.
    pub password_sealed: Option<String>,
    /// The row of its import.
    pub import_row: Option<u64>,
}

/// A registration as stored (the password hash is read separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationRecord {
    /// Identifier.
    pub id: u64,
    /// Domain (of the creating procedure).
    pub domain: String,
    /// Creating procedure.
    pub procedure: String,
    /// Canonical pattern.
    pub pattern: String,
    /// Canonical IP, if set.
    pub ip: Option<String>,
    /// Serial, if set.
    pub serial: Option<String>,
    /// Whether a password is set.
    pub has_password: bool,
    /// End of validity, Unix seconds.
    pub expires_at: Option<u64>,
    /// Enrollment limit.
    pub max_enrollments: Option<u32>,
    /// Enrollments so far.
    pub enrollments: u32,
    /// Password failures in a row.
    pub failed_attempts: u32,
    /// State.
    #[serde(serialize_with = "ser_display", deserialize_with = "de_state")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::registration_state))]
    pub state: RegistrationState,
    /// Officer key id.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The bulk import it came from, if any.
    pub import_id: Option<u64>,
}

impl RegistrationRecord {
    /// The registration as a policy sees it.
    pub fn to_policy_view(&self) -> prereg_core::Registration {
        prereg_core::Registration {
            id: self.id,
            pattern: self.pattern.clone(),
            ip: self.ip.clone(),
            serial: self.serial.clone(),
            has_password: self.has_password,
            state: self.state,
            expires_at: self.expires_at,
            max_enrollments: self.max_enrollments,
            enrollments: self.enrollments,
        }
    }
}

/// A registration to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    /// Domain.
    pub domain: String,
    /// Creating procedure.
    pub procedure: String,
    /// Canonical pattern.
    pub pattern: String,
    /// Encoded index key (see [`prereg_core::IndexKey::encode`]).
    pub index_key: String,
    /// Canonical IP.
    pub ip: Option<String>,
    /// Serial.
    pub serial: Option<String>,
    /// PHC string of the password hash.
    pub password_hash: Option<String>,
    /// The password sealed to the instance key (see `prereg::sealing`).
    pub password_sealed: Option<String>,
    /// End of validity.
    pub expires_at: Option<u64>,
    /// Enrollment limit.
    pub max_enrollments: Option<u32>,
    /// Officer key id.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The bulk import and its row number, when it came from one.
    pub import: Option<(u64, u64)>,
    /// Staged by that import: seen by nobody until the import is
    /// `completed` (schema migration 13).
    pub staged: bool,
}

/// An entry of the registration change log: the registrations `first_id` to
/// `last_id` (inclusive) were inserted, updated or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationChange {
    /// Its place in the log.
    pub seq: u64,
    /// First registration id changed.
    pub first_id: u64,
    /// Last registration id changed.
    pub last_id: u64,
}

/// Filters for listing registrations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationFilter {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this token procedure.
    pub procedure: Option<String>,
    /// Only this state.
    pub state: Option<RegistrationState>,
    /// Only patterns containing this text (case-insensitive).
    pub search: Option<String>,
    /// Only ids greater than this (pagination).
    pub after_id: Option<u64>,
    /// At most this many.
    pub limit: Option<u32>,
    /// Only these domains (what the reading officer may see); `None`: every
    /// domain.
    pub domains: Option<Vec<String>>,
}

/// The two steps of inserting a registration that each backend writes in its
/// own SQL; [`insert_registration`] is the logic around them that both share.
pub(super) trait RowInsert {
    /// Inserts the row; [`StoreError::Duplicate`] if its pattern exists in
    /// its domain.
    fn insert_registration_row(&mut self, r: &NewRegistration) -> Result<u64, StoreError>;

    /// The row holding `r`'s pattern, after an insert collided with it:
    /// `Ok(true)` if it was staged by an import that will never complete and
    /// is now deleted (insert again), `Err(Duplicate)` naming a running
    /// import that staged it, `Ok(false)` for a registration anyone sees.
    fn collision(&mut self, r: &NewRegistration) -> Result<bool, StoreError>;

    /// The ids this transaction inserted and made visible (first, last), for
    /// the change log.
    fn inserted_range(&mut self) -> &mut Option<(u64, u64)>;
}

/// [`Registrations::insert_registration`] for either backend.
pub(super) fn insert_registration(tx: &mut impl RowInsert, r: &NewRegistration) -> Result<u64, StoreError> {
    let inserted = match tx.insert_registration_row(r) {
        // A pattern held by a row of an import that will never complete
        // is taken back once (see `collision`).
        Err(StoreError::Duplicate { .. }) if tx.collision(r)? => tx.insert_registration_row(r),
        other => other,
    };
    let id = inserted?;
    // Staged rows are logged as changed when their import completes.
    if !r.staged {
        let range = tx.inserted_range();
        *range = Some(match *range {
            Some((first, last)) => (first.min(id), last.max(id)),
            None => (id, id),
        });
    }
    Ok(id)
}

/// Preregistered devices: reads, candidate lookups by index key, writes, and the change log that
/// keeps every node's in-memory index in step.
pub trait Registrations {
    /// A registration by id.
    fn registration(&mut self, id: u64) -> Result<Option<RegistrationRecord>, StoreError>;

    /// Registrations by filter, by ascending id.
    fn registrations(&mut self, filter: &RegistrationFilter) -> Result<Vec<RegistrationRecord>, StoreError>;

    /// Registrations of `domain` filed under any of `keys` (encoded index keys),
    /// through the storage index; at most `limit` + 1 rows, so the caller can
    /// tell "too many".
    fn candidates(
        &mut self,
        domain: &str,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<RegistrationRecord>, StoreError>;

    /// The PHC password hash of a registration.
    fn password_hash(&mut self, id: u64) -> Result<Option<String>, StoreError>;

    /// The sealed password of a registration (for CMP's MAC), if it has one.
    fn password_sealed(&mut self, id: u64) -> Result<Option<String>, StoreError>;

    /// Inserts a registration; [`StoreError::Duplicate`] if its pattern exists
    /// in its domain.
    fn insert_registration(&mut self, registration: &NewRegistration) -> Result<u64, StoreError>;

    /// Registrations with all they keep, by id after `after`, at most `limit`.
    fn stored_registrations(&mut self, after: u64, limit: u32) -> Result<Vec<StoredRegistration>, StoreError>;

    /// Writes a registration as it was stored elsewhere, with its id.
    fn restore_registration(&mut self, registration: &StoredRegistration) -> Result<(), StoreError>;

    /// After restoring: new ids continue after the restored ones.
    fn restore_finish(&mut self) -> Result<(), StoreError>;

    /// The registration of `pattern` in `domain`, if any.
    fn registration_by_pattern(
        &mut self,
        domain: &str,
        pattern: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError>;

    /// Registrations by state (for metrics).
    fn count_registrations_by_state(&mut self) -> Result<Vec<(RegistrationState, u64)>, StoreError>;

    /// Updates state and counters.
    fn update_registration(
        &mut self,
        id: u64,
        state: RegistrationState,
        enrollments: u32,
        failed_attempts: u32,
    ) -> Result<(), StoreError>;

    /// Deletes a registration; false if there was none.
    fn delete_registration(&mut self, id: u64) -> Result<bool, StoreError>;

    /// Changes to registrations (inserts, updates, deletes) after sequence
    /// number `after`, oldest first, at most `limit`. Every committed change
    /// has one: an implementation logs the ids it inserts, updates and
    /// deletes in the same transaction.
    fn registration_changes(&mut self, after: u64, limit: u32) -> Result<Vec<RegistrationChange>, StoreError>;

    /// The oldest and the newest change sequence numbers still kept; `(0, 0)`
    /// when no change was ever made.
    fn registration_change_range(&mut self) -> Result<(u64, u64), StoreError>;

    /// Forgets all but the newest `keep` changes (at least one is always
    /// kept); returns how many were forgotten.
    fn prune_registration_changes(&mut self, keep: u64) -> Result<u64, StoreError>;
}

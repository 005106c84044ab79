//! Certificates of the enrollment front, in the store: CMP certificates held
//! for their confirmation and every certificate issued (see schema migration 8).

use super::{Registry, RegistryError};
use crate::store::{CertificateRecord, CertificateState, TxKind};

impl Registry {
    /// Records a certificate the enrollment front issued or holds.
    pub fn record_certificate(&self, certificate: &CertificateRecord, now: u64) -> Result<(), RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        tx.insert_certificate(certificate, now)?;
        Ok(tx.commit()?)
    }

    /// The newest certificate of a protocol transaction.
    pub fn certificate_by_transaction(&self, transaction: &str) -> Result<Option<CertificateRecord>, RegistryError> {
        Ok(self.storage.begin(TxKind::Read)?.certificate_by_transaction(transaction)?)
    }

    /// A certificate by serial (lower-case hex).
    pub fn certificate_by_serial(&self, serial: &str) -> Result<Option<CertificateRecord>, RegistryError> {
        Ok(self.storage.begin(TxKind::Read)?.certificate_by_serial(serial)?)
    }

    /// Moves a certificate from `from` to `to`; false if another process moved
    /// it first (so one certConf alone decides a held certificate).
    pub fn move_certificate(
        &self,
        serial: &str,
        from: CertificateState,
        to: CertificateState,
    ) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let moved = tx.set_certificate_state(serial, from, to)?;
        tx.commit()?;
        Ok(moved)
    }
}

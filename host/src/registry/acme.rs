//! The ACME server's state (RFC 8555), kept in the store beside everything
//! else: external account binding keys, accounts, orders and
//! authorizations. Each is a JSON document in `acme_objects`
//! ([`crate::store::AcmeObjects`]); this module gives them their shapes and
//! the transactions that must be atomic: binding a key to exactly one
//! account, an order with its authorizations, a state moved on by exactly
//! one request. Creating an account, changing its key and deactivating it
//! are audited; orders are audited when they are refused (at new-order)
//! and when they are counted (at finalize, by [`Registry::enroll_issuing`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError};
use crate::audit::{self, AuditEntry};
use crate::store::{AcmeKind, AcmeObject, StoreError, Tx, TxKind};

/// An external account binding key (RFC 8555 §7.3.4), made by
/// `prereg acme eab add` (signed `acme.eab.create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EabKey {
    /// The key id clients send.
    pub key_id: String,
    /// The ACME token procedure it admits accounts to.
    pub procedure: String,
    /// Canonical DNS names: an account bound with it orders only these and
    /// the names below them (empty: any the procedure allows).
    pub domains: Vec<String>,
    /// The HMAC key, sealed to the instance's key.
    pub hmac_key_sealed: String,
    /// The officer (key id) who made it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The account it was bound to (a key binds one account, once).
    pub account: Option<String>,
}

/// A binding key as officers see it: never its HMAC key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EabKeyView {
    /// The key id clients send.
    pub key_id: String,
    /// Its ACME token procedure.
    pub procedure: String,
    /// The names its account may order (empty: any the procedure allows).
    pub domains: Vec<String>,
    /// The officer (key id) who made it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The account it is bound to, once used.
    pub account: Option<String>,
}

/// An ACME account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its id (the last segment of its URL).
    pub id: String,
    /// The ACME token procedure (the directory) it belongs to.
    pub procedure: String,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    /// Its public key (JWK, RFC 7517).
    pub jwk: serde_json::Value,
    /// The key's RFC 7638 thumbprint (base64url).
    pub thumbprint: String,
    /// Its contact URLs.
    #[serde(default)]
    pub contact: Vec<String>,
    /// The external account binding key it was bound with.
    pub eab_key: Option<String>,
    /// The names it may order (the binding key's; empty: any the procedure
    /// allows).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// An identifier of an order or an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns` (the only type served).
    #[serde(rename = "type")]
    pub kind: String,
    /// The name.
    pub value: String,
}

/// An ACME order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its id.
    pub id: String,
    /// The account that placed it.
    pub account: String,
    /// The token procedure.
    pub procedure: String,
    /// `pending`, `ready`, `processing`, `valid` or `invalid`.
    pub status: String,
    /// Unix seconds.
    pub expires: u64,
    /// What it asks for.
    pub identifiers: Vec<Identifier>,
    /// The ids of its authorizations, in the order of `identifiers`.
    pub authorizations: Vec<String>,
    /// Why it is invalid (an RFC 8555 problem document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// The serial (lower-case hex) of its certificate, once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The certificate it renews (its serial, lower-case hex): an order
    /// with RFC 9773's `replaces`, decided by the policy's `decide-renewal`
    /// and not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// When a finalize moved it to `processing`, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizing_since: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
}

impl Order {
    /// Whether it may still move on (pending, ready or processing).
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "ready" | "processing")
    }

    /// The key of an account's live order for a name: one at a time, so
    /// that an account cannot pile up orders (new-order hands back the
    /// live one).
    pub fn live_key(account: &str, name: &str) -> String {
        format!("{account} {name}")
    }
}

/// A challenge of an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// `http-01` or `dns-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its token (base64url, 128 bits).
    pub token: String,
    /// `pending`, `processing`, `valid` or `invalid`.
    pub status: String,
    /// When it was validated, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<u64>,
    /// Why it failed (an RFC 8555 problem document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// An ACME authorization, with its challenges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// Its id.
    pub id: String,
    /// The order it was made for.
    pub order: String,
    /// The account.
    pub account: String,
    /// The name.
    pub identifier: Identifier,
    /// `pending`, `valid`, `invalid`, `deactivated`, `expired` or `revoked`.
    pub status: String,
    /// Unix seconds.
    pub expires: u64,
    /// Its challenges (one of each type).
    pub challenges: Vec<Challenge>,
}

/// What the store keeps of each kind: its id, parent, lookup and state.
pub trait AcmeRecord: Serialize + DeserializeOwned {
    /// The kind.
    const KIND: AcmeKind;
    /// Its id.
    fn id(&self) -> &str;
    /// Its parent.
    fn parent(&self) -> Option<&str> {
        None
    }
    /// Its unique second key.
    fn lookup(&self) -> Option<String> {
        None
    }
    /// Its state, which updates compare and set.
    fn state(&self) -> &str;
    /// Unix seconds.
    fn created_at(&self) -> u64;
}

impl AcmeRecord for EabKey {
    const KIND: AcmeKind = AcmeKind::Eab;
    fn id(&self) -> &str {
        &self.key_id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.procedure)
    }
    fn state(&self) -> &str {
        if self.account.is_some() { "bound" } else { "unbound" }
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
}

impl AcmeRecord for Account {
    const KIND: AcmeKind = AcmeKind::Account;
    fn id(&self) -> &str {
        &self.id
    }
    fn lookup(&self) -> Option<String> {
        Some(self.thumbprint.clone())
    }
    fn state(&self) -> &str {
        &self.status
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
}

impl AcmeRecord for Order {
    const KIND: AcmeKind = AcmeKind::Order;
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.account)
    }
    fn lookup(&self) -> Option<String> {
        let name = &self.identifiers.first()?.value;
        self.is_live().then(|| Order::live_key(&self.account, name))
    }
    fn state(&self) -> &str {
        &self.status
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
}

impl AcmeRecord for Authorization {
    const KIND: AcmeKind = AcmeKind::Authorization;
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> Option<&str> {
        Some(&self.order)
    }
    fn state(&self) -> &str {
        &self.status
    }
    fn created_at(&self) -> u64 {
        0
    }
}

fn to_object<T: AcmeRecord>(record: &T) -> Result<AcmeObject, RegistryError> {
    Ok(AcmeObject {
        kind: T::KIND,
        id: record.id().to_owned(),
        parent: record.parent().map(str::to_owned),
        lookup: record.lookup(),
        state: record.state().to_owned(),
        body: serde_json::to_string(record)
            .map_err(|e| StoreError::Corrupt(format!("ACME {}: {e}", T::KIND.as_str())))?,
        created_at: record.created_at(),
    })
}

fn from_object<T: AcmeRecord>(object: &AcmeObject) -> Result<T, RegistryError> {
    serde_json::from_str(&object.body).map_err(|e| {
        RegistryError::Store(StoreError::Corrupt(format!("ACME {} {:?}: {e}", T::KIND.as_str(), object.id)))
    })
}

/// Reads a record in `tx`.
pub(crate) fn read<T: AcmeRecord>(tx: &mut dyn Tx, id: &str) -> Result<Option<T>, RegistryError> {
    tx.acme_object(T::KIND, id)?.map(|o| from_object(&o)).transpose()
}

/// Inserts a record in `tx`.
pub(crate) fn insert<T: AcmeRecord>(tx: &mut dyn Tx, record: &T) -> Result<(), RegistryError> {
    Ok(tx.insert_acme_object(&to_object(record)?)?)
}

/// Replaces a record in `tx` if its state is still `from`.
pub(crate) fn update<T: AcmeRecord>(tx: &mut dyn Tx, record: &T, from: &str) -> Result<bool, RegistryError> {
    Ok(tx.update_acme_object(&to_object(record)?, from)?)
}

/// Why a new account could not be made.
#[derive(Debug)]
pub enum NewAccount {
    /// Made.
    Created(Account),
    /// An account with this key exists already (RFC 8555 §7.3.1: it is
    /// returned, not made again).
    Existing(Account),
    /// The binding key is unknown, of another procedure, or bound to
    /// another account already.
    KeyRefused(String),
}

impl Registry {
    /// An ACME record by id.
    pub fn acme_get<T: AcmeRecord>(&self, id: &str) -> Result<Option<T>, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        read(tx.as_mut(), id)
    }

    /// An ACME record by its unique second key (an account by its key's
    /// thumbprint, an account's live order for a name).
    pub fn acme_get_by_lookup<T: AcmeRecord>(&self, lookup: &str) -> Result<Option<T>, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        tx.acme_object_by_lookup(T::KIND, lookup)?.map(|o| from_object(&o)).transpose()
    }

    /// The account whose key has this thumbprint.
    pub fn acme_account_by_thumbprint(&self, thumbprint: &str) -> Result<Option<Account>, RegistryError> {
        self.acme_get_by_lookup(thumbprint)
    }

    /// The orders of an account, oldest first, at most `limit`.
    pub fn acme_orders_of(&self, account: &str, limit: u32) -> Result<Vec<Order>, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        tx.acme_children(AcmeKind::Order, account, limit)?.iter().map(from_object).collect()
    }

    /// The binding keys of the ACME procedures whose domains `reads` lets
    /// through, by procedure then age (at most 10,000 a procedure), without
    /// their sealed HMAC keys.
    pub fn acme_eab_keys(&self, reads: impl Fn(&str) -> bool) -> Result<Vec<EabKeyView>, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Read)?;
        let mut keys = Vec::new();
        for procedure in tx.procedures()? {
            if procedure.protocol != prereg_core::Protocol::Acme || !reads(&procedure.domain) {
                continue;
            }
            for object in tx.acme_children(AcmeKind::Eab, &procedure.name, 10_000)? {
                let key: EabKey = from_object(&object)?;
                keys.push(EabKeyView {
                    key_id: key.key_id,
                    procedure: key.procedure,
                    domains: key.domains,
                    created_by: key.created_by,
                    created_at: key.created_at,
                    account: key.account,
                });
            }
        }
        Ok(keys)
    }

    /// How many ACME objects of `kind` exist.
    pub fn acme_count(&self, kind: AcmeKind) -> Result<u64, RegistryError> {
        Ok(self.storage.begin(TxKind::Read)?.count_acme_objects(kind)?)
    }

    /// Replaces a record if its state is still `from` (false: another
    /// request moved it first).
    pub fn acme_update<T: AcmeRecord>(&self, record: &T, from: &str) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        let moved = update(tx.as_mut(), record, from)?;
        tx.commit()?;
        Ok(moved)
    }

    /// Makes `account`, bound with binding key `eab` (`None`: the procedure
    /// takes accounts without one), in one transaction with the binding and
    /// its audit record: a key binds one account, once.
    pub fn acme_create_account(
        &self,
        account: Account,
        eab: Option<&str>,
        now: u64,
    ) -> Result<NewAccount, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        if let Some(existing) = tx.acme_object_by_lookup(AcmeKind::Account, &account.thumbprint)? {
            return Ok(NewAccount::Existing(from_object(&existing)?));
        }
        let mut account = account;
        if let Some(key_id) = eab {
            let Some(mut key) = read::<EabKey>(tx.as_mut(), key_id)? else {
                return Ok(NewAccount::KeyRefused(format!("no external account binding key {key_id:?}")));
            };
            if key.procedure != account.procedure {
                return Ok(NewAccount::KeyRefused(format!(
                    "the external account binding key {key_id:?} is not for this directory"
                )));
            }
            if key.account.is_some() {
                return Ok(NewAccount::KeyRefused(format!(
                    "the external account binding key {key_id:?} is bound to another account already"
                )));
            }
            key.account = Some(account.id.clone());
            if !update(tx.as_mut(), &key, "unbound")? {
                return Ok(NewAccount::KeyRefused(format!(
                    "the external account binding key {key_id:?} is bound to another account already"
                )));
            }
            account.domains = key.domains.clone();
            account.eab_key = Some(key_id.to_owned());
        }
        insert(tx.as_mut(), &account)?;
        let detail = match &account.eab_key {
            Some(key) => format!("bound with external account binding key {key}"),
            None => "without external account binding".to_owned(),
        };
        self.audit_acme(tx.as_mut(), &account, "acme.account.create", &detail, now)?;
        tx.commit()?;
        tracing::info!(account = %account.id, procedure = %account.procedure, eab = ?account.eab_key, "ACME account created");
        Ok(NewAccount::Created(account))
    }

    /// Changes an account's key or status (key rollover, deactivation),
    /// audited as `action`; false if its status was no longer `from`.
    /// [`StoreError::Duplicate`] if another account has the new key.
    pub fn acme_change_account(
        &self,
        account: &Account,
        from: &str,
        action: &str,
        detail: &str,
        now: u64,
    ) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        if !update(tx.as_mut(), account, from)? {
            return Ok(false);
        }
        self.audit_acme(tx.as_mut(), account, action, detail, now)?;
        tx.commit()?;
        Ok(true)
    }

    /// Records a new order and its authorizations together.
    pub fn acme_create_order(&self, order: &Order, authorizations: &[Authorization]) -> Result<(), RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        insert(tx.as_mut(), order)?;
        for authorization in authorizations {
            insert(tx.as_mut(), authorization)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a validated (or failed) challenge: the authorization, and the
    /// order moved on from `pending` when every authorization is valid (to
    /// `ready`) or one failed (to `invalid`). False if the authorization was
    /// no longer `from`.
    pub fn acme_settle_authorization(&self, authorization: &Authorization, from: &str) -> Result<bool, RegistryError> {
        let mut tx = self.storage.begin(TxKind::Write)?;
        if !update(tx.as_mut(), authorization, from)? {
            return Ok(false);
        }
        if let Some(mut order) = read::<Order>(tx.as_mut(), &authorization.order)?
            && order.status == "pending"
        {
            let mut statuses = Vec::new();
            for id in &order.authorizations {
                let status = if *id == authorization.id {
                    authorization.status.clone()
                } else {
                    read::<Authorization>(tx.as_mut(), id)?.map_or_else(|| "invalid".to_owned(), |a| a.status)
                };
                statuses.push(status);
            }
            let next = if statuses.iter().all(|s| s == "valid") {
                Some("ready")
            } else if statuses.iter().any(|s| s == "invalid") {
                Some("invalid")
            } else {
                None
            };
            if let Some(next) = next {
                order.status = next.to_owned();
                if next == "invalid" {
                    order.error = authorization.challenges.iter().find_map(|c| c.error.clone());
                }
                update(tx.as_mut(), &order, "pending")?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn audit_acme(
        &self,
        tx: &mut dyn Tx,
        account: &Account,
        action: &str,
        detail: &str,
        now: u64,
    ) -> Result<(), RegistryError> {
        let domain = tx.procedure(&account.procedure)?.map(|p| p.domain);
        let request = serde_json::json!({
            "procedure": account.procedure,
            "account": account.id,
            "thumbprint": account.thumbprint,
            "eab_key": account.eab_key,
            "contact": account.contact,
        });
        audit::append(
            tx,
            AuditEntry {
                time: now,
                actor: format!("acme:{}", account.id),
                action: action.into(),
                object: format!("acme-account:{}", account.id),
                outcome: "ok".into(),
                reason: None,
                policy_sha256: None,
                request: request.to_string(),
                detail: detail.into(),
                domain,
            },
            self.audit_mac_keys(),
        )?;
        Ok(())
    }
}

/// Fewest bytes of an HMAC key of external account binding.
pub const EAB_KEY_MIN_BYTES: usize = 32;

impl Registry {
    /// Opens a binding key's sealed HMAC key (base64url, as ACME clients
    /// take it): at least [`EAB_KEY_MIN_BYTES`] bytes.
    pub fn eab_hmac_key(&self, sealed: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        use base64::Engine;
        let Some(key) = &self.sealing else {
            return Err("this instance has no sealing key to open a sealed HMAC key".into());
        };
        let text = key.open(sealed).map_err(|e| e.to_string())?;
        let bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim().trim_end_matches('='))
                .map_err(|_| "the HMAC key is not base64url".to_owned())?,
        );
        if bytes.len() < EAB_KEY_MIN_BYTES {
            return Err(format!("the HMAC key is {} bytes; at least {EAB_KEY_MIN_BYTES} are needed", bytes.len()));
        }
        Ok(bytes)
    }

    /// Applies a signed `acme.eab.create` in `tx`: the procedure must be an
    /// ACME one of a domain the officer acts in; the names are
    /// canonicalized. Returns the audit detail and the domain.
    pub(super) fn add_eab_key(
        &self,
        tx: &mut dyn Tx,
        officer: &crate::store::OfficerRecord,
        key: (&str, &str, &[String], &str),
        now: u64,
    ) -> Result<(String, String), RegistryError> {
        let (key_id, procedure, domains, sealed) = key;
        let id_ok = key_id.len() <= 64
            && key_id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && key_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !id_ok {
            return Err(RegistryError::Invalid {
                field: "key_id".into(),
                message: format!(
                    "{key_id:?} must be 1 to 64 letters, digits, '_' or '-', beginning with a letter or a digit \
                     (clients take it on their command line)"
                ),
            });
        }
        let record = tx.procedure(procedure)?.ok_or_else(|| RegistryError::Invalid {
            field: "procedure".into(),
            message: format!("unknown token procedure {procedure:?}"),
        })?;
        if record.protocol != prereg_core::Protocol::Acme {
            return Err(RegistryError::Invalid {
                field: "procedure".into(),
                message: format!("token procedure {procedure:?} is for {}, not ACME", record.protocol),
            });
        }
        if !officer.may_act_in(&record.domain) {
            return Err(RegistryError::Forbidden { officer: officer.name.clone(), domain: record.domain });
        }
        let mut names = Vec::new();
        for name in domains {
            let fqdn = prereg_core::Fqdn::parse(name)
                .map_err(|e| RegistryError::Invalid { field: "domains".into(), message: format!("{name:?}: {e}") })?;
            names.push(fqdn.as_str().to_owned());
        }
        names.sort();
        names.dedup();
        self.eab_hmac_key(sealed)
            .map_err(|message| RegistryError::Invalid { field: "hmac_key_sealed".into(), message })?;
        let key = EabKey {
            key_id: key_id.to_owned(),
            procedure: procedure.to_owned(),
            domains: names.clone(),
            hmac_key_sealed: sealed.to_owned(),
            created_by: officer.kid.clone(),
            created_at: now,
            account: None,
        };
        insert(tx, &key).map_err(|e| match e {
            RegistryError::Store(StoreError::Duplicate { .. }) => {
                RegistryError::Store(StoreError::Duplicate { what: format!("external account binding key {key_id:?}") })
            }
            other => other,
        })?;
        let scope = if names.is_empty() { "any name the procedure allows".to_owned() } else { names.join(",") };
        Ok((format!("procedure {procedure}, names {scope}"), record.domain))
    }
}

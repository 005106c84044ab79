//! ACME's protocol objects (RFC 8555): external account binding keys,
//! accounts, orders and authorizations (with their challenges). The ACME
//! server (`prereg::enroll::acme`) owns their shapes and keeps each as a JSON
//! document; the store keeps the few fields it must find or guard them by:
//! the parent (an order's account, an authorization's order), a unique
//! lookup (an account's key thumbprint) and a state that updates compare
//! and set, so that two nodes cannot both move one order on.

use super::StoreError;

/// The kinds of ACME object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeKind {
    /// An external account binding key (RFC 8555 §7.3.4).
    Eab,
    /// An account.
    Account,
    /// An order.
    Order,
    /// An authorization, with its challenges.
    Authorization,
}

impl AcmeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeKind::Eab => "eab",
            AcmeKind::Account => "account",
            AcmeKind::Order => "order",
            AcmeKind::Authorization => "authorization",
        }
    }
}

/// One ACME object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeObject {
    /// Its kind.
    pub kind: AcmeKind,
    /// Its id (unique within the kind; a URL segment).
    pub id: String,
    /// The object it belongs to (an order's account, an authorization's order).
    pub parent: Option<String>,
    /// A second key, unique within the kind (an account's JWK thumbprint).
    pub lookup: Option<String>,
    /// Its status (`valid`, `pending`, ...), which updates compare and set.
    pub state: String,
    /// The object (JSON).
    pub body: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// ACME's protocol objects.
pub trait AcmeObjects {
    /// Records a new object; [`StoreError::Duplicate`] if its id or its
    /// lookup is taken.
    fn insert_acme_object(&mut self, object: &AcmeObject) -> Result<(), StoreError>;

    /// An object by kind and id.
    fn acme_object(&mut self, kind: AcmeKind, id: &str) -> Result<Option<AcmeObject>, StoreError>;

    /// An object by kind and lookup.
    fn acme_object_by_lookup(&mut self, kind: AcmeKind, lookup: &str) -> Result<Option<AcmeObject>, StoreError>;

    /// The objects of `kind` whose parent is `parent`, oldest first, at most
    /// `limit`.
    fn acme_children(&mut self, kind: AcmeKind, parent: &str, limit: u32) -> Result<Vec<AcmeObject>, StoreError>;

    /// Replaces an object's lookup, state and body if its state is still
    /// `from`; false if it is not (another request moved it first) or it
    /// is unknown. [`StoreError::Duplicate`] if the new lookup is taken.
    fn update_acme_object(&mut self, object: &AcmeObject, from: &str) -> Result<bool, StoreError>;

    /// How many objects of `kind` there are.
    fn count_acme_objects(&mut self, kind: AcmeKind) -> Result<u64, StoreError>;

    /// The objects of `kind` whose id sorts after `after`, by id, at most
    /// `limit` (`prereg migrate` pages through them).
    fn acme_objects(&mut self, kind: AcmeKind, after: &str, limit: u32) -> Result<Vec<AcmeObject>, StoreError>;
}

impl AcmeKind {
    /// Every kind, in the order a copy restores them.
    pub const ALL: [AcmeKind; 4] = [AcmeKind::Eab, AcmeKind::Account, AcmeKind::Order, AcmeKind::Authorization];
}

//! ACME's errors: RFC 7807 problem documents of the
//! `urn:ietf:params:acme:error:` namespace (RFC 8555 §6.7).

use serde_json::json;

/// An ACME error, as the client is told it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct AcmeProblem {
    /// The error type, without the namespace (`rejectedIdentifier`).
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub detail: String,
    /// The HTTP status.
    pub status: u16,
    /// Per-identifier problems (RFC 8555 §6.7.1).
    pub subproblems: Vec<serde_json::Value>,
}

macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident => $kind:literal, $status:literal;)*) => {
        impl AcmeProblem {
            $(
                $(#[$doc])*
                pub fn $name(detail: impl Into<String>) -> Self {
                    AcmeProblem { kind: $kind, detail: detail.into(), status: $status, subproblems: Vec::new() }
                }
            )*
        }
    };
}

problems! {
    /// The request is malformed.
    malformed => "malformed", 400;
    /// The nonce is unknown or used.
    bad_nonce => "badNonce", 400;
    /// The JWS algorithm or key type is not taken.
    bad_signature_algorithm => "badSignatureAlgorithm", 400;
    /// The public key is not acceptable.
    bad_public_key => "badPublicKey", 400;
    /// The CSR is unacceptable.
    bad_csr => "badCSR", 400;
    /// The revocation reason is not allowed.
    bad_revocation_reason => "badRevocationReason", 400;
    /// The client may not do this.
    unauthorized => "unauthorized", 403;
    /// No account has this key (`onlyReturnExisting`, or a `kid` unknown).
    account_does_not_exist => "accountDoesNotExist", 400;
    /// The directory needs an external account binding.
    external_account_required => "externalAccountRequired", 400;
    /// The server will not issue for this identifier.
    rejected_identifier => "rejectedIdentifier", 400;
    /// The identifier type is not served.
    unsupported_identifier => "unsupportedIdentifier", 400;
    /// The order is not ready to finalize.
    order_not_ready => "orderNotReady", 403;
    /// The certificate is revoked already.
    already_revoked => "alreadyRevoked", 400;
    /// The challenge response was wrong.
    incorrect_response => "incorrectResponse", 403;
    /// The server could not connect to the validation target.
    connection => "connection", 400;
    /// The server could not resolve the name.
    dns => "dns", 400;
    /// The server failed.
    server_internal => "serverInternal", 500;
}

impl AcmeProblem {
    /// The same problem with another HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same problem with per-identifier subproblems.
    pub fn with_subproblems(mut self, subproblems: Vec<serde_json::Value>) -> Self {
        self.subproblems = subproblems;
        self
    }

    /// Its full type URN.
    pub fn type_urn(&self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.kind)
    }

    /// The problem document.
    pub fn document(&self) -> serde_json::Value {
        let mut doc = json!({ "type": self.type_urn(), "detail": self.detail, "status": self.status });
        if !self.subproblems.is_empty()
            && let Some(map) = doc.as_object_mut()
        {
            map.insert("subproblems".into(), serde_json::Value::Array(self.subproblems.clone()));
        }
        doc
    }

    /// A subproblem naming one identifier.
    pub fn subproblem(&self, name: &str) -> serde_json::Value {
        json!({ "type": self.type_urn(), "detail": self.detail, "identifier": { "type": "dns", "value": name } })
    }
}

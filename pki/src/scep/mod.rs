//! SCEP (RFC 8894) messages: the CMS they are wrapped in ([`cms`]) and the
//! signed attributes SCEP adds ([`attr`]).

pub mod cms;

/// SCEP attribute OIDs (RFC 8894 §3.2.1).
pub mod attr {
    /// messageType
    pub const MESSAGE_TYPE: &str = "2.16.840.1.113733.1.9.2";
    /// pkiStatus
    pub const PKI_STATUS: &str = "2.16.840.1.113733.1.9.3";
    /// failInfo
    pub const FAIL_INFO: &str = "2.16.840.1.113733.1.9.4";
    /// senderNonce
    pub const SENDER_NONCE: &str = "2.16.840.1.113733.1.9.5";
    /// recipientNonce
    pub const RECIPIENT_NONCE: &str = "2.16.840.1.113733.1.9.6";
    /// transactionID
    pub const TRANSACTION_ID: &str = "2.16.840.1.113733.1.9.7";
}

//! CMP (RFC 4210/9480, profile RFC 9483) messages ([`message`]) and their
//! MAC-based protection ([`protection`]).

pub mod client;
pub mod message;
pub mod protection;

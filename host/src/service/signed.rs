//! Signed writes over HTTP: as ACME does (RFC 8555 §6.2), the body of every
//! write is a JWS in flattened JSON serialization (RFC 7515 §7.2.2), holding
//! the same signed request the CLI makes. The server turns it into the
//! compact form, which the registry verifies and the audit log keeps.

use axum::Json;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, Multipart, Request};

use super::problem::ApiError;

pub use crate::api::FlattenedJws;

/// The problem for a multipart body that cannot be read.
pub fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::malformed(e.body_text())
}

/// Largest `request` part of an upload: a signed request is a few KiB.
pub const MAX_REQUEST_PART_BYTES: usize = 64 << 10;

/// An upload (an import, a policy) is a multipart form: first `request`, the
/// signed request as flattened JSON, then `file`. Reads `request` and returns
/// the signed request in compact form; `what` names the request in messages.
pub async fn signed_part(form: &mut Multipart, what: &str) -> Result<String, ApiError> {
    let field = form.next_field().await.map_err(multipart_error)?;
    let Some(mut field) = field.filter(|f| f.name() == Some("request")) else {
        return Err(ApiError::malformed(format!(
            "the first part of the form must be `request` ({what}), then a `file` part"
        )));
    };
    // Read a chunk at a time and never past the limit: an anonymous client
    // must not make the server hold a huge part before any signature check.
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > MAX_REQUEST_PART_BYTES {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The request is too large",
                format!("the `request` part ({what}) is larger than the {MAX_REQUEST_PART_BYTES} bytes accepted"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes).map_err(|_| ApiError::malformed("the `request` part is not UTF-8"))?;
    let jws: FlattenedJws = serde_json::from_str(&text)
        .map_err(|e| ApiError::malformed(format!("`request` is not a JWS in flattened JSON serialization: {e}")))?;
    Ok(jws.to_compact())
}

/// The `file` part that follows `request`; `what` names the file in messages.
pub async fn file_part<'a>(form: &'a mut Multipart, what: &str) -> Result<Field<'a>, ApiError> {
    let field = form.next_field().await.map_err(multipart_error)?;
    field
        .filter(|f| f.name() == Some("file"))
        .ok_or_else(|| ApiError::malformed(format!("the second part of the form must be `file`, {what}")))
}

/// Extracts a signed write from a JSON body; a body that is not one is a
/// `malformed-request` problem.
#[derive(Debug, Clone)]
pub struct Signed(pub String);

impl<S: Send + Sync> FromRequest<S> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(jws) = Json::<FlattenedJws>::from_request(req, state).await.map_err(|e| {
            ApiError::malformed(format!(
                "a write's body is a JWS in flattened JSON serialization {{\"protected\", \"payload\", \"signature\"}}: {}",
                e.body_text()
            ))
        })?;
        Ok(Signed(jws.to_compact()))
    }
}

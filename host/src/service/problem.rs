//! Errors as `application/problem+json` (RFC 9457), with a stable `type` per
//! kind of failure: `urn:prereg:problem:<name>`. Clients branch on `type`;
//! `detail` is for people.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::RegistryError;
use crate::import::FileError;
use crate::registry::ImportError;
use crate::store::StoreError;

pub use crate::api::Problem;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A failure of an API call: a status, a stable kind and a detail.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A problem of kind `kind` (the last part of the type URN).
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, kind, title, detail: detail.into(), field: None, retry_after: None }
    }

    /// 429 too-many-failures, with Retry-After: the client address failed
    /// too often ([`crate::service::failures`]).
    pub fn too_many_failures(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failures",
            "Too many failed attempts from this address",
            format!("too many failed enrollment attempts from this address; try again in {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 401 unauthenticated, with `WWW-Authenticate: Bearer`: the call needs
    /// a credential (an officer's access token, a CA caller's secret) and
    /// had none, or one that was refused.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "A valid credential is needed", detail)
    }

    /// 403 forbidden: the credential is good but does not reach this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "The credential does not reach this", detail)
    }

    /// 429 too-many-requests, with Retry-After: the client address sent more
    /// than its rate allows.
    pub fn too_many_requests(retry_after: u64, detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests from this address",
            detail,
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 421 misdirected-request: the Host header names no name this service
    /// answers to.
    pub fn misdirected(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected-request",
            "This service does not answer that name",
            detail,
        )
    }

    /// 400 malformed-request.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", "The request could not be read", detail)
    }

    /// 404 not-found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "No such resource", detail)
    }

    /// 422 invalid-field, naming the field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "A field is invalid", detail);
        e.field = Some(field.into());
        e
    }

    /// 503 unavailable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The service is not available", detail)
    }

    /// 500 internal.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal failure", detail)
    }

    /// A file of the data folder that cannot be written (an upload, a
    /// report): a full disk is 507 `storage-full`, a read-only file, folder
    /// or file system 503 `storage-read-only`, anything else 500.
    pub fn storage_io(what: &str, e: &std::io::Error) -> Self {
        let detail = format!("{what}: {e}");
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage-full",
                "The storage is full: nothing was written",
                detail,
            ),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-read-only",
                "The storage cannot be written now: nothing was written",
                detail,
            ),
            _ => Self::internal(detail),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The full type URN.
    pub fn type_uri(&self) -> String {
        format!("urn:prereg:problem:{}", self.kind)
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: self.type_uri(),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            field: self.field.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.kind, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(kind = self.kind, detail = %self.detail, "request failed");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.kind == "unauthenticated" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"prereg\""));
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let detail = e.to_string();
        match e {
            RegistryError::NotInitialised => ApiError::unavailable(detail),
            RegistryError::Signature(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "signature-refused", "The signed request was refused", detail)
            }
            RegistryError::Forbidden { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", "The officer may not act here", detail)
            }
            RegistryError::Invalid { field, message } => ApiError::invalid(field, message),
            RegistryError::Mismatch(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "request-mismatch",
                "The signed request is for another call",
                detail,
            ),
            RegistryError::NotFound(_) => ApiError::not_found(detail),
            RegistryError::PolicyRefused(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy-refused",
                "The policy component was refused",
                detail,
            ),
            RegistryError::Policy(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "policy-failure",
                "The policy failed to give an answer",
                detail,
            ),
            RegistryError::Busy => ApiError::unavailable(detail),
            RegistryError::Issuance(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "issuance-failure",
                "The certificate could not be issued",
                detail,
            ),
            RegistryError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use rusqlite::ErrorCode;
        let detail = e.to_string();
        // SQLite says what failed in its error code: the problem names it.
        let code = match &e {
            StoreError::Database(db) => sqlite_code(db),
            _ => None,
        };
        match (e, code) {
            (StoreError::Duplicate { .. }, _) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate", "It exists already", detail)
            }
            (StoreError::Replayed { .. }, _) => {
                ApiError::new(StatusCode::CONFLICT, "replayed-request", "The signed request was used before", detail)
            }
            (StoreError::Missing(_), _) => ApiError::not_found(detail),
            (StoreError::Database(_), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-locked",
                "The storage is locked by another writer: try again",
                detail,
            ),
            (StoreError::Full { .. }, _) | (StoreError::Database(_), Some(ErrorCode::DiskFull)) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage-full",
                "The storage is full: nothing was written",
                detail,
            ),
            (StoreError::ReadOnly { .. }, _) | (StoreError::Database(_), Some(ErrorCode::ReadOnly)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-read-only",
                "The storage cannot be written now: nothing was written",
                detail,
            ),
            (StoreError::Database(_), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-damaged", "The storage is damaged", detail)
            }
            (StoreError::Unavailable { .. }, _) => ApiError::unavailable(detail),
            (StoreError::Postgres(_), _) => ApiError::internal(detail),
            (StoreError::Damaged { .. }, _) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-damaged",
                "The storage is damaged: nothing is written",
                detail,
            ),
            (StoreError::Open { .. } | StoreError::BadUrl { .. } | StoreError::Database(_), _) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable", "The storage failed", detail)
            }
            (StoreError::Corrupt(_) | StoreError::SchemaTooNew { .. }, _) => ApiError::internal(detail),
        }
    }
}

fn sqlite_code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        let detail = e.to_string();
        match e {
            FileError::Mismatch { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "file-mismatch",
                "The file is not the one that was signed",
                detail,
            ),
            FileError::Io { file, source } => ApiError::storage_io(&file, &source),
            FileError::Csv { .. } | FileError::Header { .. } | FileError::NoRows { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-file", "The file cannot be imported", detail)
            }
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Registry(e) => e.into(),
            ImportError::File(e) => e.into(),
        }
    }
}

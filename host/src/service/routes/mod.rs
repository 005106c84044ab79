//! The REST API under `/v1`, plus `/healthz`, `/readyz` and `/metrics`. Each
//! handler is annotated for the OpenAPI document (`utoipa`), and routed
//! through `utoipa_axum::routes!`, so no route can be missing from it.

mod acme_keys;
mod audit;
mod callers;
mod decisions;
mod health;
mod imports;
mod instance;
mod officers;
mod policies;
mod procedures;
mod registrations;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::DefaultBodyLimit;

use super::problem::{ApiError, Problem};
use super::{AppState, ServiceLimits};

pub use audit::{AuditPage, AuditVerificationView};
pub use decisions::DecisionRequest;
pub use health::{Health, render_metrics};
pub use imports::{ImportView, JsonlReport, ReportPage};
pub use instance::InstanceInfo;
pub use registrations::{Created, RegistrationPage};

/// Every API route.
pub fn api(limits: ServiceLimits) -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(imports::list, imports::submit))
        .routes(routes!(policies::list, policies::load))
        .layer(DefaultBodyLimit::max(
            usize::try_from(limits.max_upload_bytes).unwrap_or(usize::MAX).saturating_add(1 << 20),
        ));
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(instance::instance))
        .routes(routes!(instance::policy))
        .routes(routes!(procedures::list, procedures::create))
        .routes(routes!(officers::list, officers::create))
        .routes(routes!(officers::disable))
        .routes(routes!(callers::list, callers::create))
        .routes(routes!(callers::disable))
        .routes(routes!(acme_keys::list, acme_keys::create))
        .routes(routes!(registrations::list, registrations::create))
        .routes(routes!(registrations::get, registrations::delete))
        .routes(routes!(registrations::disable))
        .routes(routes!(registrations::reopen))
        .merge(uploads)
        .routes(routes!(policies::activate))
        .routes(routes!(policies::shadow, policies::shadow_report))
        .routes(routes!(imports::status))
        .routes(routes!(imports::report))
        .routes(routes!(decisions::check))
        .routes(routes!(decisions::enroll))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::checkpoint))
}

/// The refusals every signed write can meet (documented once, used by every
/// write route).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "a description of responses, never built")]
pub(crate) enum WriteRefusals {
    /// Malformed, or signed for another call (`malformed-request`, `request-mismatch`).
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// The signature was refused (`signature-refused`).
    #[response(status = 401, content_type = "application/problem+json")]
    Signature(Problem),
    /// The officer may not act in that domain (`forbidden`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// It exists already, or the request was used before (`duplicate`, `replayed-request`).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// A field is invalid (`invalid-field`, naming it).
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

/// The refusals every read can meet (documented once, used by every read
/// route).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "a description of responses, never built")]
pub(crate) enum ReadRefusals {
    /// No credential, or one that was refused (`unauthenticated`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// The credential does not reach this (`forbidden`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Too many refused credentials from this address (`too-many-requests`, Retry-After).
    #[response(status = 429, content_type = "application/problem+json")]
    TooMany(Problem),
}

/// Runs blocking work (SQLite, wasmtime) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    // The request's span (its client and principal) goes with the work.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| ApiError::internal(format!("a worker failed: {e}")))?
}

/// Page size bounds for lists.
pub(crate) const DEFAULT_PAGE: u32 = 100;
/// Largest page.
pub(crate) const MAX_PAGE: u32 = 1000;

/// Cuts a page read with one row more than `limit` back to `limit`, and
/// returns the `after` of the next page (`None` on the last page).
pub(crate) fn next_page<T>(items: &mut Vec<T>, limit: usize, key: impl Fn(&T) -> u64) -> Option<u64> {
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    }
}

pub(crate) fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", format!("must be 1 to {MAX_PAGE}"))),
    }
}

/// Largest cursor (`after`) a list takes: the stores keep ids as signed
/// 64-bit integers, so a larger one would wrap around to the first page.
pub(crate) const MAX_CURSOR: u64 = i64::MAX as u64;

/// A page's cursor and size, checked: `after` 0 to [`MAX_CURSOR`] (default
/// 0), `limit` 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
pub(crate) fn page(after: Option<u64>, limit: Option<u32>) -> Result<(u64, u32), ApiError> {
    let after = after.unwrap_or(0);
    if after > MAX_CURSOR {
        return Err(ApiError::invalid("after", format!("must be 0 to {MAX_CURSOR}")));
    }
    Ok((after, page_size(limit)?))
}

/// What a read with query or path parameters may be refused for, besides
/// [`ReadRefusals`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "a description of responses, never built")]
pub(crate) enum ParameterRefusals {
    /// A parameter that cannot be read as its type (`malformed-request`).
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem),
    /// A parameter out of its range or set (`invalid-field`, naming it).
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

/// Submits a signed write that must satisfy `expected` (the route's action and
/// object).
pub(crate) async fn submit(
    state: &AppState,
    jws: String,
    expected: impl Fn(&crate::signing::WriteRequest) -> Result<(), String> + Send + 'static,
) -> Result<crate::registry::WriteOutcome, ApiError> {
    let registry = state.registry().clone();
    blocking(move || Ok(registry.submit_for(&jws, crate::registry::unix_now(), &expected)?)).await
}

/// The check of a route on one named object (`POST /v1/officers/{name}/disable`):
/// the request must be the route's action, signed for `name`; `signed_name`
/// gives the name a request of the route's action is for.
pub(crate) fn expect_name(
    route: &'static str,
    name: String,
    signed_name: fn(&crate::signing::WriteRequest) -> Option<&String>,
) -> impl Fn(&crate::signing::WriteRequest) -> Result<(), String> + Send + 'static {
    move |request| match signed_name(request) {
        Some(signed) if *signed == name => Ok(()),
        Some(signed) => Err(format!("the request is for {signed:?}, not {name:?}")),
        None => Err(wrong_action(route, request)),
    }
}

/// A refusal for a request signed for another action.
pub(crate) fn wrong_action(route: &str, request: &crate::signing::WriteRequest) -> String {
    format!("{route} takes a signed {} request, not {}", expected_action(route), request.action())
}

fn expected_action(route: &str) -> &'static str {
    match route {
        "POST /v1/procedures" => "procedure.create",
        "POST /v1/officers" => "officer.create",
        "POST /v1/officers/{name}/disable" => "officer.disable",
        "POST /v1/callers" => "caller.create",
        "POST /v1/callers/{name}/disable" => "caller.disable",
        "POST /v1/acme/eab-keys" => "acme.eab.create",
        "POST /v1/registrations" => "registration.create",
        "POST /v1/registrations/{id}/disable" => "registration.disable",
        "POST /v1/registrations/{id}/reopen" => "registration.reopen",
        "DELETE /v1/registrations/{id}" => "registration.delete",
        _ => "matching",
    }
}

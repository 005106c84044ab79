//! The RA web page at `/`: server-rendered (askama), every asset embedded in
//! the binary, no CDN. `/` is a shell that shows nothing of the instance;
//! the officer's private key is loaded into page memory from a PKCS#8 file,
//! and the page then reads through HTML fragments rendered here (`/ui/…`),
//! each fetched with an access token the page signs with that key
//! ([`crate::signing::access`]) and scoped to the officer's domains. Writes
//! go through the REST API, each signed in the browser with WebCrypto
//! (ES256, or Ed25519 where the browser has it), so the server never holds
//! an officer key. A registration with a password is sent as a
//! one-row import: the password travels in the file part (hashed on
//! arrival), never in the signed request that the audit log keeps.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::AppState;
use super::auth::Officer;
use super::problem::ApiError;
use super::routes::blocking;
use crate::audit::ChainFault;
use crate::policy::PolicyInfo;
use crate::store::{AuditRecord, ProcedureRecord, RegistrationFilter, RegistrationRecord};

/// Registrations per page.
const PAGE: u32 = 50;
/// Audit records shown.
const AUDIT_PAGE: u32 = 100;

/// The page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/main", get(main))
        .route("/ui/registrations", get(registrations))
        .route("/ui/audit", get(audit))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("../../../assets/app.js"))),
        )
        .route("/assets/style.css", get(|| asset("text/css; charset=utf-8", include_str!("../../../assets/style.css"))))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// An HTML response with the page's security headers.
fn page(html: String) -> Response {
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Fragments hold an officer's view of the registry: never kept by a cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn render(template: &impl Template) -> Result<Response, ApiError> {
    template.render().map(page).map_err(|e| ApiError::internal(format!("rendering the page: {e}")))
}

/// The shell: nothing of the instance until a key is loaded.
#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage;

/// Everything the page shows one officer.
#[derive(Template)]
#[template(path = "main.html")]
struct MainFragment {
    policy: PolicyInfo,
    versions: Vec<VersionRow>,
    shadow: crate::registry::ShadowReport,
    procedures: Vec<ProcedureRecord>,
    registrations: RegistrationsFragment,
    audit: AuditFragment,
}

/// A loaded policy version as the page shows it.
struct VersionRow {
    name: String,
    version: String,
    wit_version: String,
    sha256: String,
    short: String,
    loaded: String,
    /// `active`, `shadow` or nothing.
    mark: &'static str,
}

fn version_rows(versions: Vec<crate::store::PolicyVersionRecord>, shadow: Option<&str>) -> Vec<VersionRow> {
    versions
        .into_iter()
        .map(|v| VersionRow {
            mark: if v.active {
                "active"
            } else if shadow == Some(v.sha256.as_str()) {
                "shadow"
            } else {
                ""
            },
            short: v.sha256.chars().take(12).collect(),
            loaded: utc(v.loaded_at),
            name: v.name,
            version: v.version,
            wit_version: v.wit_version,
            sha256: v.sha256,
        })
        .collect()
}

/// Filters of the registration list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    state: Option<String>,
    after: Option<u64>,
}

#[derive(Template)]
#[template(path = "registrations.html")]
struct RegistrationsFragment {
    items: Vec<RegistrationRecord>,
    next_after: Option<u64>,
    q: String,
    state: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditFragment {
    /// The officer's domains, when it is not of every domain: it sees their
    /// records only, and cannot verify the whole chain.
    scope: Option<String>,
    items: Vec<AuditRow>,
    /// Records verified, when the chain was walked.
    checked: Option<u64>,
    fault: Option<String>,
}

/// An audit record as the page shows it.
struct AuditRow {
    seq: u64,
    time: String,
    actor: String,
    action: String,
    object: String,
    outcome: String,
    reason: String,
    detail: String,
}

impl From<AuditRecord> for AuditRow {
    fn from(r: AuditRecord) -> Self {
        AuditRow {
            seq: r.seq,
            time: utc(r.time),
            actor: if r.actor.starts_with("caller:") { r.actor.clone() } else { r.actor.chars().take(12).collect() },
            action: r.action,
            object: r.object,
            outcome: r.outcome,
            reason: r.reason.unwrap_or_default(),
            detail: r.detail,
        }
    }
}

fn load_registrations(
    state: &AppState,
    officer: &Officer,
    query: &ListQuery,
) -> Result<RegistrationsFragment, ApiError> {
    let wanted_state =
        match query.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(prereg_core::RegistrationState::parse(s).ok_or_else(|| {
                ApiError::invalid("state", format!("{s:?} is not one of open, used, disabled, locked"))
            })?),
        };
    let filter = RegistrationFilter {
        search: query.q.clone().filter(|q| !q.trim().is_empty()).map(|q| q.trim().to_owned()),
        state: wanted_state,
        after_id: query.after,
        limit: Some(PAGE + 1),
        domains: officer.domains(),
        ..Default::default()
    };
    let mut items = state.registry().registrations(&filter)?;
    let next_after = super::routes::next_page(&mut items, PAGE as usize, |r| r.id);
    Ok(RegistrationsFragment {
        items,
        next_after,
        q: query.q.clone().unwrap_or_default(),
        state: query.state.clone().unwrap_or_default(),
    })
}

/// The latest audit records; with `verify`, the whole chain is walked too
/// (the audit tab's Refresh does that, not every page load: it reads every
/// record).
fn load_audit(state: &AppState, officer: &Officer, verify: bool) -> Result<AuditFragment, ApiError> {
    let registry = state.registry();
    let domains = officer.domains();
    let (before, checked, fault) = if verify && domains.is_none() {
        let verification = registry.verify_audit()?;
        let fault = verification.fault.as_ref().map(ChainFault::to_string);
        (verification.checked.saturating_add(1), Some(verification.checked), fault)
    } else {
        (u64::MAX, None, None)
    };
    let items = registry
        .latest_audit_records(domains.as_deref(), before, AUDIT_PAGE)?
        .into_iter()
        .map(AuditRow::from)
        .collect();
    Ok(AuditFragment { scope: domains.map(|d| d.join(", ")), items, checked, fault })
}

async fn index() -> Result<Response, ApiError> {
    render(&IndexPage)
}

async fn main(State(state): State<AppState>, officer: Officer) -> Result<Response, ApiError> {
    let fragment = blocking(move || {
        let domains = officer.domains();
        let shadow = state.registry().shadow_report_for(domains.as_deref(), 0, 50)?;
        let shadow_sha = shadow.shadow.as_ref().map(|s| s.sha256.clone());
        let mut procedures = state.registry().procedures()?;
        procedures.retain(|p| officer.reads(&p.domain));
        Ok(MainFragment {
            policy: state.registry().policy().info().clone(),
            versions: version_rows(state.registry().policy_versions()?, shadow_sha.as_deref()),
            shadow,
            procedures,
            registrations: load_registrations(&state, &officer, &ListQuery::default())?,
            audit: load_audit(&state, &officer, false)?,
        })
    })
    .await?;
    render(&fragment)
}

async fn registrations(
    State(state): State<AppState>,
    officer: Officer,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let fragment = blocking(move || load_registrations(&state, &officer, &query)).await?;
    render(&fragment)
}

async fn audit(State(state): State<AppState>, officer: Officer) -> Result<Response, ApiError> {
    let fragment = blocking(move || load_audit(&state, &officer, true)).await?;
    render(&fragment)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let (year, month, day, hour, minute, second) = prereg_pki::asn1::civil(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(1_767_225_600), "2026-01-01 00:00:00 UTC");
        assert_eq!(super::utc(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
    }
}

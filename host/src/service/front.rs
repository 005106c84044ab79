//! What every request meets before it is routed: the Host allow-list (DNS
//! rebinding gets 421), HSTS on TLS, and the per-address request rate of
//! the enrollment endpoints (429 with Retry-After).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::client_ip;
use super::problem::ApiError;

/// How the service faces its clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Front {
    /// The host names (and addresses) requests may name in `Host` (or
    /// HTTP/2's `:authority`), lowercase, without port; `None`: any.
    pub allowed_hosts: Option<Vec<String>>,
    /// Served over TLS (directly or, with `--plain-http-behind-proxy`, by
    /// the proxy in front): responses carry HSTS.
    pub tls: bool,
}

impl Front {
    /// Whether `authority` (`host[:port]`) names this service.
    pub fn allows(&self, authority: &str) -> bool {
        let Some(allowed) = &self.allowed_hosts else { return true };
        let host = host_of(authority);
        allowed.iter().any(|a| a == &host)
    }
}

/// The host of an authority, lowercase, without port or IPv6 brackets.
pub fn host_of(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Paths of the enrollment endpoints that devices reach without a
/// credential (their protocol carries their proof), whose request rate is
/// limited per address. The decisions API is not among them: its CA callers
/// relay many devices from one address, and a refused credential is limited
/// by [`super::auth`].
fn is_enrollment(path: &str) -> bool {
    path.starts_with("/scep/") || path.starts_with("/.well-known/cmp/") || path.starts_with("/acme/")
}

/// The largest body a route takes: an upload (an import, a policy) its file
/// and the signed request part; everything else a JSON or protocol message.
fn body_limit(path: &str, limits: super::ServiceLimits) -> u64 {
    if matches!(path, "/v1/imports" | "/v1/policies") {
        limits.max_upload_bytes.saturating_add(1 << 20)
    } else {
        limits.max_body_bytes as u64
    }
}

/// Middleware: the Host allow-list, the body size, the enrollment request
/// rate and HSTS.
pub async fn front_door(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let front = state.front();
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned));
    if front.allowed_hosts.is_some() {
        match authority.as_deref() {
            Some(authority) if front.allows(authority) => {}
            other => {
                tracing::warn!(client = %client_ip(request.extensions()), host = ?other, "request for a host this service does not answer");
                return ApiError::misdirected(format!(
                    "this service does not answer for {:?}; its names are set by --listen, --public-url and --allow-host",
                    other.unwrap_or("(no Host header)")
                ))
                .into_response();
            }
        }
    }
    // A body larger than the route takes is refused on its Content-Length,
    // before a byte of it is read (one sent without a length is cut off at
    // the limit as it is read).
    let limit = body_limit(request.uri().path(), state.limits());
    let length =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = length.filter(|l| *l > limit) {
        return ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The request is too large",
            format!("a body of {length} bytes; this route takes at most {limit}"),
        )
        .into_response();
    }
    if is_enrollment(request.uri().path()) {
        let client = client_ip(request.extensions());
        if let Err(wait) = state.requests().take(client) {
            tracing::warn!(client = %client, path = %request.uri().path(), "enrollment request rate exceeded");
            return ApiError::too_many_requests(
                wait,
                format!("too many enrollment requests from this address; try again in {wait} s"),
            )
            .into_response();
        }
    }
    let mut response = next.run(request).await;
    if front.tls {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_port_case_or_brackets() {
        assert_eq!(host_of("Example.COM:8443"), "example.com");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("ra.example.com."), "ra.example.com");
        let front = Front { allowed_hosts: Some(vec!["ra.example.com".into(), "::1".into()]), tls: true };
        assert!(front.allows("RA.example.com:443"));
        assert!(front.allows("[::1]:8080"));
        assert!(!front.allows("attacker.example"));
        assert!(!front.allows("ra.example.com.attacker.example"));
        assert!(Front::default().allows("anything"));
    }
}

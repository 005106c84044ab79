//! The RA web page.

use axum::Router;

use super::AppState;

/// The page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
}

//! The web UI at `/ui/`: one static page (embedded in the binary) that browses services,
//! nodes, KV and the cluster through the same HTTP API v1 clients use. As in Consul,
//! `GET /` redirects to it when the UI is on (`-ui`, or `-dev`).

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;

const INDEX_HTML: &str = include_str!("ui/index.html");

/// What a `/ui...` path serves, or None when it is not a UI path.
pub enum UiRoute {
    /// `/ui`: redirect to the page's canonical address (relative links resolve from it).
    Redirect,
    /// `/ui/` or `/ui/index.html`.
    Page,
    /// Anything else under `/ui/`: the page has no other assets.
    Missing,
}

pub fn route(path: &str) -> Option<UiRoute> {
    match path {
        "/ui" => Some(UiRoute::Redirect),
        "/ui/" | "/ui/index.html" => Some(UiRoute::Page),
        p if p.starts_with("/ui/") => Some(UiRoute::Missing),
        _ => None,
    }
}

pub fn redirect_to_ui() -> HttpResponse {
    HttpResponse::build(StatusCode::MOVED_PERMANENTLY)
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

pub fn serve(route: UiRoute) -> HttpResponse {
    match route {
        UiRoute::Redirect => redirect_to_ui(),
        UiRoute::Page => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            // The page is built into the binary; a newer binary may bring a newer page.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(INDEX_HTML),
        UiRoute::Missing => HttpResponse::NotFound().finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_paths() {
        assert!(matches!(route("/ui"), Some(UiRoute::Redirect)));
        assert!(matches!(route("/ui/"), Some(UiRoute::Page)));
        assert!(matches!(route("/ui/index.html"), Some(UiRoute::Page)));
        assert!(matches!(route("/ui/x.js"), Some(UiRoute::Missing)));
        assert!(route("/uix").is_none());
        assert!(route("/v1/kv/ui").is_none());
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        // Every API value goes through esc() before innerHTML; make sure it exists and
        // covers the characters that open markup or attributes.
        assert!(INDEX_HTML.contains("const esc = (s)"));
        for c in ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"] {
            assert!(INDEX_HTML.contains(c), "{c}");
        }
    }
}

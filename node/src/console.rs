//! Serves the browser console embedded at build time (`ui/dist`, see `build.rs`): `/` is its
//! page, `/ui/<file>` its script, wasm and style. Files go out gzipped to browsers that take
//! it, with an ETag so a reload costs a 304, and under a Content Security Policy that allows
//! only this origin (no inline script, no CDN: the mesh may be air-gapped). Every node
//! serves it; anchors answer its API calls, and a member's agent forwards them to an anchor.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// One embedded file of the console.
pub(crate) struct Asset {
    name: &'static str,
    bytes: &'static [u8],
    /// Its gzip copy, if the build made one.
    gzipped: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The page's Content Security Policy: this origin only; wasm may be compiled.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// What `/` says when the binary was built without the console.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>x0t</title>\
<h1>x0t: this build has no browser console</h1>\
<p>Build it with <code>scripts/build-ui</code> and rebuild x0t (<code>scripts/run</code> does both). \
The API is at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p>";

/// Whether this binary carries the console.
pub fn embedded() -> bool {
    !UI_ASSETS.is_empty()
}

/// The console's routes, for any router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/ui/{file}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    if !embedded() {
        return ([(header::CACHE_CONTROL, "no-cache")], Html(NOT_BUILT)).into_response();
    }
    serve("index.html", &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

/// Each asset's ETag (blake3 of its bytes), hashed once: the wasm is 1.9 MB.
fn etags() -> &'static [String] {
    static ETAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ETAGS.get_or_init(|| {
        UI_ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &blake3::hash(a.bytes).to_hex()[..32]))
            .collect()
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(index) = UI_ASSETS.iter().position(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": {"code": "not_found", "message": format!("the console has no file {name:?}")}})),
        )
            .into_response();
    };
    let Asset { bytes, gzipped, .. } = &UI_ASSETS[index];
    let etag = &etags()[index];
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let takes_gzip = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        match gzipped {
            Some(gz) if takes_gzip => {
                ([(header::CONTENT_ENCODING, "gzip")], gz.to_vec()).into_response()
            }
            _ => bytes.to_vec().into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

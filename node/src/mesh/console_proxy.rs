//! The browser console on a member: its local API serves the console's files and forwards
//! the console's API calls (`/api/…` without the agent's own token) to an anchor, so an
//! admin can point a browser at any node. The member adds nothing to the call: the admin's
//! key travels as the browser sent it and the anchor decides; answers, event streams
//! included, come back as they are. Anchors are tried in order (those the member verified
//! its certificate against, then those it enrolled with) until one answers.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Largest request body forwarded (a policy document of the largest size, JSON-escaped).
pub const MAX_FORWARDED_BODY: usize = crate::limits::MAX_POLICY_BODY;

/// Request headers forwarded to the anchor; the rest (cookies, the agent's token) stay here.
const FORWARDED_REQUEST: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("last-event-id"),
];

/// Answer headers passed back.
const FORWARDED_ANSWER: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
];

/// The anchors' API URLs this member knows, best first, without repeats.
pub fn anchor_urls(data_dir: &Path) -> Vec<String> {
    let mut urls: Vec<String> = crate::agent::load_anchors(data_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.api_url)
        .collect();
    if let Ok(Some(state)) = crate::agent::load_state(data_dir) {
        urls.extend(state.anchors);
    }
    let mut seen = std::collections::HashSet::new();
    urls.retain(|u| {
        (u.starts_with("http://") || u.starts_with("https://")) && seen.insert(u.clone())
    });
    urls
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Forwards `request` to the first of `anchors` that answers. The answer's body (an event
/// stream may last) ends when `shutdown` turns true, so an open console never holds the
/// member's API server open.
pub async fn forward(
    http: &reqwest::Client,
    anchors: &[String],
    request: Request,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_FORWARDED_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is over {MAX_FORWARDED_BODY} bytes"),
            );
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    if anchors.is_empty() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_anchor",
            "this member knows no anchor API URL to forward to (anchors.json, agent.json)".into(),
        );
    }
    let mut last_error = String::new();
    for anchor in anchors {
        let mut outgoing = http
            .request(
                parts.method.clone(),
                format!("{}{path}", anchor.trim_end_matches('/')),
            )
            .body(body.clone());
        // An event stream lasts; any other call that hangs is given up.
        if !parts.uri.path().ends_with("/events") {
            outgoing = outgoing.timeout(Duration::from_secs(30));
        }
        for name in &FORWARDED_REQUEST {
            if let Some(value) = parts.headers.get(name) {
                outgoing = outgoing.header(name, value);
            }
        }
        match outgoing.send().await {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status().as_u16());
                for name in &FORWARDED_ANSWER {
                    if let Some(value) = answer.headers().get(name) {
                        response = response.header(name, value);
                    }
                }
                let mut stop = shutdown;
                let body = futures::StreamExt::take_until(answer.bytes_stream(), async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                });
                return response.body(Body::from_stream(body)).unwrap_or_else(|e| {
                    error(StatusCode::BAD_GATEWAY, "bad_gateway", e.to_string())
                });
            }
            // Not reached (refused, timed out): the next anchor.
            Err(e) => last_error = format!("{anchor}: {e}"),
        }
    }
    error(
        StatusCode::BAD_GATEWAY,
        "anchors_unreachable",
        format!("no anchor answered (last: {last_error})"),
    )
}

/// The client the forwarding uses: connects quickly or moves on; no overall timeout (event
/// streams last).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

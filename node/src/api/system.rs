//! The node itself: liveness, Prometheus metrics, and this API's OpenAPI document.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Auth, Route, openapi, route};
use crate::service::Service;

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "GET",
        "/healthz",
        Auth::Public,
        "Liveness.",
        None,
        "text",
        || get(healthz),
    ),
    route(
        "GET",
        "/metrics",
        Auth::Public,
        "Prometheus metrics.",
        None,
        "text",
        || get(metrics),
    ),
    route(
        "GET",
        "/api/v1/openapi.json",
        Auth::Public,
        "This API's OpenAPI 3.1 document.",
        None,
        "object",
        || get(openapi),
    ),
];

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(service): State<Service>) -> Response {
    let status = service.control().status();
    let m = service.metrics();
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    gauge(
        "x0t_raft_term",
        "Current Raft term.",
        "gauge",
        vec![(String::new(), status.term)],
    );
    gauge(
        "x0t_raft_is_leader",
        "1 if this node leads.",
        "gauge",
        vec![(String::new(), u64::from(status.state == "leader"))],
    );
    gauge(
        "x0t_raft_last_applied_index",
        "Last log index applied to the ledger.",
        "gauge",
        vec![(String::new(), status.last_applied_index.unwrap_or(0))],
    );
    gauge(
        "x0t_raft_voters",
        "Voters in the membership.",
        "gauge",
        vec![(String::new(), status.voters.len() as u64)],
    );
    let counts = service.control().read(|l| {
        l.meshes()
            .map(|mesh| (mesh.id.to_string(), l.node_counts(&mesh.id)))
            .collect::<Vec<_>>()
    });
    let mut samples = Vec::new();
    for (mesh, c) in &counts {
        for (state, n) in [
            ("pending_approval", c.pending),
            ("approved", c.approved),
            ("rejected", c.rejected),
            ("revoked", c.revoked),
        ] {
            samples.push((format!("{{mesh=\"{mesh}\",state=\"{state}\"}}"), n as u64));
        }
    }
    gauge("x0t_nodes", "Nodes by mesh and state.", "gauge", samples);
    let counter =
        |v: &std::sync::atomic::AtomicU64| vec![(String::new(), v.load(Ordering::Relaxed))];
    gauge(
        "x0t_registrations_total",
        "Registrations accepted by this node.",
        "counter",
        counter(&m.registrations),
    );
    gauge(
        "x0t_approvals_total",
        "Approvals made through this node.",
        "counter",
        counter(&m.approvals),
    );
    gauge(
        "x0t_revocations_total",
        "Revocations made through this node.",
        "counter",
        counter(&m.revocations),
    );
    gauge(
        "x0t_join_tokens_issued_total",
        "Join tokens issued by this node.",
        "counter",
        counter(&m.tokens_issued),
    );
    gauge(
        "x0t_auth_failures_total",
        "Requests refused for missing, bad or insufficient credentials.",
        "counter",
        counter(&m.auth_failures),
    );
    gauge(
        "x0t_http_responses_total",
        "HTTP responses by status class.",
        "counter",
        ["2xx", "4xx", "5xx"]
            .iter()
            .zip(&m.http_responses)
            .map(|(class, v)| (format!("{{class=\"{class}\"}}"), v.load(Ordering::Relaxed)))
            .collect(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi::document())
}

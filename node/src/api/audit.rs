//! The audit chain: streamed export (JSON or CSV) and verification on the node.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use x0t_types::api::AuditVerification;

use super::{ApiError, Auth, PathParams, QueryParams, Route, Viewer, route};
use crate::service::{ErrorKind, ExportFormat, Service, ServiceError};

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "GET",
        "/api/v1/meshes/{mesh}/audit-logs/export",
        Auth::Key,
        "Stream the audit chain as format=json or format=csv, with hashes and anchor keys.",
        None,
        "AuditExport",
        || get(export_audit),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/audit-logs/verify",
        Auth::Key,
        "Verify the audit chain here, signatures included.",
        None,
        "AuditVerification",
        || get(verify_audit),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    format: Option<ExportFormat>,
}

async fn export_audit(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
    QueryParams(query): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = query.format.unwrap_or(ExportFormat::Json);
    let stream = service.export_audit(&mesh, format).await?;
    let content_type = match format {
        ExportFormat::Json => "application/json",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    let body = futures::StreamExt::map(stream, |chunk| {
        chunk
            .map(Bytes::from)
            .map_err(|e| std::io::Error::other(e.message))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .map_err(|e| {
            ApiError(ServiceError::new(
                ErrorKind::Internal,
                "internal",
                e.to_string(),
            ))
        })
}

async fn verify_audit(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
) -> Result<Json<AuditVerification>, ApiError> {
    Ok(Json(service.verify_audit(&mesh).await?))
}

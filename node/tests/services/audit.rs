//! The audit domain of the service layer.

use futures::StreamExt;
use tonic::Code;
use x0t_types::MeshId;
use x0t_types::api::{AuditExport, Reason};

use crate::testkit::{MESH, anchor, assert_error, registration};
use x0t_node::service::{CSV_COLUMNS, ExportFormat, audit_entry_from_view, hex};
use x0t_node::service::{ErrorKind, Service};

async fn export(s: &Service, format: ExportFormat) -> String {
    let mut stream = Box::pin(s.export_audit(MESH, format).await.unwrap());
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend(chunk.unwrap());
    }
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn the_chain_verifies_and_exports_entry_for_entry_in_both_formats() {
    let a = anchor().await;
    let s = &a.service;
    let (key, body) = registration(MESH, None);
    s.register(MESH, body).await.unwrap();
    let reason = Reason {
        reason: "a \"quoted\", comma'd reason".to_owned(),
    };
    s.reject(&a.admin, MESH, &key.node_id().to_string(), reason)
        .await
        .unwrap();

    let verified = s.verify_audit(MESH).await.unwrap();
    assert!(verified.ok, "{verified:?}");
    // Creating the mesh, the registration, the rejection.
    assert_eq!(verified.entries, 3);

    let json: AuditExport = serde_json::from_str(&export(s, ExportFormat::Json).await).unwrap();
    assert_eq!(json.head_len, 3);
    assert_eq!(json.head_hash, verified.head_hash);
    assert_eq!(json.entries.len(), 3);
    let mesh = MeshId::new(MESH).unwrap();
    for view in &json.entries {
        let (_, hash) = audit_entry_from_view(&mesh, view).unwrap();
        assert_eq!(hex(&hash), view.hash);
    }
    let csv = export(s, ExportFormat::Csv).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("# x0t-audit-v1,mesh=default,head_len=3"));
    let columns = lines
        .iter()
        .position(|l| *l == CSV_COLUMNS.join(","))
        .unwrap();
    assert_eq!(lines.len() - columns - 1, 3, "one row per entry");
    // RFC 4180: the details field quoted, its quotes doubled.
    assert!(
        csv.contains(r#","reason ""a \""quoted\"", comma'd reason""","#),
        "{csv}"
    );

    for error in [
        s.verify_audit("nowhere").await.unwrap_err(),
        s.export_audit("nowhere", ExportFormat::Csv)
            .await
            .map(drop)
            .unwrap_err(),
    ] {
        assert_error(
            &error,
            ErrorKind::NotFound,
            "no_such_mesh",
            404,
            Code::NotFound,
        );
    }
    a.stop().await;
}

//! The audit chain of a mesh: its head, pages of entries, verification here (signatures
//! included), and streamed exports (JSON or CSV, with the hashes and the anchors' keys so
//! anyone can verify them offline).

use serde::Deserialize;
use x0t_crypto::{AuditEntry, verify_chain};
use x0t_ledger::MeshReject;
use x0t_ledger::Reject;
use x0t_types::api::{AuditEntryView, AuditVerification, ChainBreak};
use x0t_types::{MeshId, Timestamp};

use super::{Service, ServiceError, hex, mesh_id, unhex};

/// Audit entries read from the ledger at once while exporting or verifying.
pub const AUDIT_PAGE: usize = 256;

/// An audit record as an export row.
pub fn audit_entry_view(record: &x0t_ledger::AuditRecord) -> Result<AuditEntryView, ServiceError> {
    let entry = AuditEntry::decode(&record.entry)
        .map_err(|e| ServiceError::internal(format!("stored audit entry {}: {e}", record.seq)))?;
    Ok(AuditEntryView {
        seq: entry.seq,
        log_index: entry.log_index,
        at_ms: entry.at.as_millis(),
        actor: entry.actor.to_string(),
        action: entry.action,
        subject: entry.subject,
        details: entry.details,
        evidence: hex(&entry.evidence),
        prev_hash: hex(&entry.prev_hash),
        hash: hex(&record.hash),
    })
}

/// Rebuilds an entry and its recorded hash from an export row (for `x0t audit verify`).
pub fn audit_entry_from_view(
    mesh: &MeshId,
    view: &AuditEntryView,
) -> Result<(AuditEntry, [u8; 32]), String> {
    let hash32 = |text: &str, what: &str| -> Result<[u8; 32], String> {
        unhex(text)?
            .try_into()
            .map_err(|_| format!("{what} is not 32 bytes"))
    };
    let entry = AuditEntry {
        mesh: Some(mesh.clone()),
        seq: view.seq,
        log_index: view.log_index,
        at: Timestamp(view.at_ms),
        actor: view.actor.parse().map_err(|e| format!("actor: {e}"))?,
        action: view.action.clone(),
        subject: view.subject.clone(),
        details: view.details.clone(),
        evidence: unhex(&view.evidence).map_err(|e| format!("evidence: {e}"))?,
        prev_hash: hash32(&view.prev_hash, "prev_hash")?,
    };
    Ok((entry, hash32(&view.hash, "hash")?))
}

impl Service {
    /// The head of a mesh's audit chain, checking that the mesh exists (linearizable).
    pub async fn audit_head(
        &self,
        mesh: &str,
    ) -> Result<(MeshId, x0t_ledger::ChainHead), ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.control.read_barrier().await?;
        self.control
            .read(|l| {
                l.mesh(&mesh)
                    .map(|_| l.audit_head(Some(&mesh)))
                    .ok_or_else(|| Reject::Meshes(MeshReject::NoSuchMesh { mesh: mesh.clone() }))
            })
            .map(|head| (mesh, head))
            .map_err(Into::into)
    }

    /// Up to [`AUDIT_PAGE`] entries of a chain from `from`, but none at or past `until`.
    pub fn audit_page(
        &self,
        mesh: &MeshId,
        from: u64,
        until: u64,
    ) -> Result<Vec<AuditEntryView>, ServiceError> {
        self.control.read(|l| {
            l.audit_entries(Some(mesh), from, AUDIT_PAGE)
                .take_while(|r| r.seq < until)
                .map(audit_entry_view)
                .collect()
        })
    }

    /// Verifies a mesh's whole audit chain here, signatures included.
    pub async fn verify_audit(&self, mesh: &str) -> Result<AuditVerification, ServiceError> {
        let (mesh, head) = self.audit_head(mesh).await?;
        let mut entries = Vec::with_capacity(head.len as usize);
        let mut from = 0;
        while from < head.len {
            let page: Vec<(AuditEntry, [u8; 32])> = self.control.read(|l| {
                l.audit_entries(Some(&mesh), from, AUDIT_PAGE)
                    .take_while(|r| r.seq < head.len)
                    .map(|r| {
                        AuditEntry::decode(&r.entry)
                            .map(|e| (e, r.hash))
                            .map_err(|e| ServiceError::internal(format!("entry {}: {e}", r.seq)))
                    })
                    .collect::<Result<_, _>>()
            })?;
            if page.is_empty() {
                break;
            }
            from += page.len() as u64;
            entries.extend(page);
        }
        let control = self.control.clone();
        let result = tokio::task::spawn_blocking(move || {
            let checked = entries.len() as u64;
            let verdict = verify_chain(&entries, &|id| control.read(|l| l.anchor_key(id)));
            (checked, verdict)
        })
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))?;
        let (checked, verdict) = result;
        let mut first_bad = verdict.err().map(|e| ChainBreak {
            index: e.index as u64,
            reason: e.reason,
        });
        if first_bad.is_none() && checked != head.len {
            first_bad = Some(ChainBreak {
                index: checked,
                reason: format!("the ledger holds {checked} of {} entries", head.len),
            });
        }
        Ok(AuditVerification {
            ok: first_bad.is_none(),
            entries: checked,
            head_hash: hex(&head.hash),
            first_bad,
        })
    }
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON document ([`AuditExport`]).
    Json,
    /// `#` header lines (format, mesh, head, anchor keys), a column row, one row per entry.
    Csv,
}

/// The CSV columns of an audit export, in order.
pub const CSV_COLUMNS: [&str; 10] = [
    "seq",
    "log_index",
    "at_ms",
    "actor",
    "action",
    "subject",
    "details",
    "evidence",
    "prev_hash",
    "hash",
];

/// Quotes a CSV field when it needs it (RFC 4180).
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One entry as a CSV row, with its line ending.
pub fn csv_row(e: &AuditEntryView) -> String {
    let fields = [
        e.seq.to_string(),
        e.log_index.to_string(),
        e.at_ms.to_string(),
        csv_field(&e.actor),
        csv_field(&e.action),
        csv_field(&e.subject),
        csv_field(&e.details),
        e.evidence.clone(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    format!("{}\r\n", fields.join(","))
}

impl Service {
    /// The mesh's audit chain up to its head at call time, as chunks of an export document
    /// (JSON or CSV, with the chain hashes and the anchors' keys so anyone can verify it).
    /// Entries are read in pages of [`AUDIT_PAGE`] while the stream is consumed, so a long
    /// chain never sits in memory as one document.
    pub async fn export_audit(
        &self,
        mesh: &str,
        format: ExportFormat,
    ) -> Result<
        impl futures::Stream<Item = Result<Vec<u8>, ServiceError>> + Send + 'static,
        ServiceError,
    > {
        let (mesh, head) = self.audit_head(mesh).await?;
        let anchors = self.anchor_keys();
        let header = match format {
            ExportFormat::Json => {
                let shell = x0t_types::api::AuditExport {
                    format: "x0t-audit-v1".to_owned(),
                    mesh: mesh.to_string(),
                    head_len: head.len,
                    head_hash: hex(&head.hash),
                    anchors,
                    entries: Vec::new(),
                };
                let text = serde_json::to_string(&shell)
                    .map_err(|e| ServiceError::internal(e.to_string()))?;
                // Cut the empty entries array's closing "]}": entries and the closer follow.
                text.strip_suffix("]}").unwrap_or(&text).to_owned()
            }
            ExportFormat::Csv => {
                let mut text = format!(
                    "# x0t-audit-v1,mesh={},head_len={},head_hash={}\r\n",
                    mesh,
                    head.len,
                    hex(&head.hash)
                );
                for anchor in &anchors {
                    text.push_str(&format!(
                        "# anchor,{},{},{}\r\n",
                        anchor.node_id, anchor.algorithm, anchor.public_key
                    ));
                }
                text.push_str(&CSV_COLUMNS.join(","));
                text.push_str("\r\n");
                text
            }
        };
        let service = self.clone();
        // State: next entry to read, whether one was written (JSON commas), whether done.
        let state = (Some(header), 0u64, true, false);
        Ok(futures::stream::unfold(
            state,
            move |(header, next, first, done)| {
                let service = service.clone();
                let mesh = mesh.clone();
                async move {
                    if let Some(header) = header {
                        return Some((Ok(header.into_bytes()), (None, next, first, done)));
                    }
                    if done {
                        return None;
                    }
                    let page = match service.audit_page(&mesh, next, head.len) {
                        Ok(page) => page,
                        Err(e) => return Some((Err(e), (None, next, first, true))),
                    };
                    if page.is_empty() {
                        let closer = match format {
                            ExportFormat::Json => "]}",
                            ExportFormat::Csv => "",
                        };
                        return Some((Ok(closer.as_bytes().to_vec()), (None, next, first, true)));
                    }
                    let mut chunk = String::new();
                    let mut first = first;
                    for entry in &page {
                        match format {
                            ExportFormat::Json => {
                                if !first {
                                    chunk.push(',');
                                }
                                first = false;
                                match serde_json::to_string(entry) {
                                    Ok(text) => chunk.push_str(&text),
                                    Err(e) => {
                                        return Some((
                                            Err(ServiceError::internal(e.to_string())),
                                            (None, next, first, true),
                                        ));
                                    }
                                }
                            }
                            ExportFormat::Csv => chunk.push_str(&csv_row(entry)),
                        }
                    }
                    let next = next + page.len() as u64;
                    Some((Ok(chunk.into_bytes()), (None, next, first, false)))
                }
            },
        ))
    }
}

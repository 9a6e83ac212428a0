//! Reading an exported audit chain back (JSON or CSV) and verifying it offline: what
//! `x0t audit verify --file` does, so anyone holding an export can check it.

use x0t_crypto::{SigAlgorithm, VerifyingKey, verify_chain};
use x0t_types::api::{AnchorKeyView, AuditEntryView, AuditExport, ChainBreak};
use x0t_types::{MeshId, NodeId};

use crate::service::CSV_COLUMNS;
use crate::service::{audit_entry_from_view, hex, unhex};

/// Largest export file read.
pub const MAX_EXPORT_BYTES: usize = 1 << 30;

/// A parsed export: its header and its rows (a row that failed to parse is kept as the
/// reason, so verification reports it at its position).
#[derive(Debug)]
pub struct ParsedExport {
    /// The mesh.
    pub mesh: String,
    /// Entries at export time.
    pub head_len: u64,
    /// Hash of the last entry at export time.
    pub head_hash: String,
    /// Anchor keys.
    pub anchors: Vec<AnchorKeyView>,
    /// Rows.
    pub entries: Vec<Result<AuditEntryView, String>>,
}

/// Splits one CSV record into fields (RFC 4180 quoting).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            (_, c) => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

/// Splits CSV text into records, keeping newlines inside quoted fields.
fn csv_records(text: &str) -> Vec<String> {
    let mut records = Vec::new();
    let mut current = String::new();
    let mut quotes = 0usize;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
        quotes += line.matches('"').count();
        if quotes.is_multiple_of(2) {
            records.push(std::mem::take(&mut current));
            quotes = 0;
        }
    }
    if !current.is_empty() {
        records.push(current);
    }
    records
}

fn parse_csv(text: &str) -> Result<ParsedExport, String> {
    let mut export = ParsedExport {
        mesh: String::new(),
        head_len: 0,
        head_hash: String::new(),
        anchors: Vec::new(),
        entries: Vec::new(),
    };
    let mut seen_columns = false;
    for record in csv_records(text) {
        if record.is_empty() {
            continue;
        }
        if let Some(comment) = record.strip_prefix("# ") {
            let fields = csv_fields(comment)?;
            match fields.first().map(String::as_str) {
                Some("x0t-audit-v1") => {
                    for field in &fields[1..] {
                        match field.split_once('=') {
                            Some(("mesh", v)) => export.mesh = v.to_owned(),
                            Some(("head_len", v)) => {
                                export.head_len =
                                    v.parse().map_err(|_| "bad head_len".to_owned())?;
                            }
                            Some(("head_hash", v)) => export.head_hash = v.to_owned(),
                            _ => {}
                        }
                    }
                }
                Some("anchor") if fields.len() == 4 => export.anchors.push(AnchorKeyView {
                    node_id: fields[1].clone(),
                    algorithm: fields[2].parse().map_err(|_| "bad anchor algorithm")?,
                    public_key: fields[3].clone(),
                }),
                _ => return Err(format!("unknown header line {:?}", truncate(&record))),
            }
            continue;
        }
        if !seen_columns {
            if csv_fields(&record)? != CSV_COLUMNS {
                return Err(format!("expected the columns {}", CSV_COLUMNS.join(",")));
            }
            seen_columns = true;
            continue;
        }
        export.entries.push(csv_row(&record));
    }
    if export.mesh.is_empty() {
        return Err("no '# x0t-audit-v1,mesh=…' header line".to_owned());
    }
    Ok(export)
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

fn csv_row(record: &str) -> Result<AuditEntryView, String> {
    let f = csv_fields(record)?;
    if f.len() != CSV_COLUMNS.len() {
        return Err(format!(
            "{} fields, expected {}",
            f.len(),
            CSV_COLUMNS.len()
        ));
    }
    let number = |i: usize| -> Result<u64, String> {
        f[i].parse()
            .map_err(|_| format!("{} is not a number", CSV_COLUMNS[i]))
    };
    Ok(AuditEntryView {
        seq: number(0)?,
        log_index: number(1)?,
        at_ms: number(2)?,
        actor: f[3].clone(),
        action: f[4].clone(),
        subject: f[5].clone(),
        details: f[6].clone(),
        evidence: f[7].clone(),
        prev_hash: f[8].clone(),
        hash: f[9].clone(),
    })
}

/// Parses an export, JSON or CSV (told apart by the first character).
pub fn parse(text: &str) -> Result<ParsedExport, String> {
    if text.len() > MAX_EXPORT_BYTES {
        return Err(format!(
            "export of {} bytes exceeds {MAX_EXPORT_BYTES}",
            text.len()
        ));
    }
    if text.trim_start().starts_with('{') {
        let export: AuditExport =
            serde_json::from_str(text).map_err(|e| format!("not an audit export: {e}"))?;
        if export.format != "x0t-audit-v1" {
            return Err(format!("format {:?}, expected x0t-audit-v1", export.format));
        }
        Ok(ParsedExport {
            mesh: export.mesh,
            head_len: export.head_len,
            head_hash: export.head_hash,
            anchors: export.anchors,
            entries: export.entries.into_iter().map(Ok).collect(),
        })
    } else {
        parse_csv(text)
    }
}

/// What a verified export holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Anchor ids whose keys the export carried (the trust roots; compare them with the
    /// cluster's).
    pub anchors: Vec<String>,
}

/// Verifies a parsed export: anchor keys hash to their ids, every row parses, the chain
/// links, hashes and signatures hold, and it ends at the head it declares.
pub fn verify(export: &ParsedExport) -> Result<Verified, ChainBreak> {
    let mesh = MeshId::new(export.mesh.as_str()).map_err(|e| ChainBreak {
        index: 0,
        reason: format!("header: {e}"),
    })?;
    let mut keys = Vec::new();
    for anchor in &export.anchors {
        let key = SigAlgorithm::from_code(anchor.algorithm)
            .ok_or_else(|| "unknown algorithm".to_owned())
            .and_then(|alg| {
                VerifyingKey::from_bytes(alg, &unhex(&anchor.public_key)?)
                    .map_err(|e| e.to_string())
            })
            .map_err(|reason| ChainBreak {
                index: 0,
                reason: format!("anchor key {}: {reason}", anchor.node_id),
            })?;
        if key.node_id().to_string() != anchor.node_id {
            return Err(ChainBreak {
                index: 0,
                reason: format!("anchor key {} does not hash to its id", anchor.node_id),
            });
        }
        keys.push(key);
    }
    let check = |entries: &[(x0t_crypto::AuditEntry, [u8; 32])]| {
        verify_chain(entries, &|id: &NodeId| {
            keys.iter().find(|k| k.node_id() == *id).cloned()
        })
        .map_err(|e| ChainBreak {
            index: e.index as u64,
            reason: e.reason,
        })
    };
    let mut entries = Vec::with_capacity(export.entries.len());
    for (index, row) in export.entries.iter().enumerate() {
        let parsed = row
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|view| audit_entry_from_view(&mesh, view));
        match parsed {
            Ok(entry) => entries.push(entry),
            Err(reason) => {
                // Links up to this row still matter: report an earlier break first.
                check(&entries)?;
                return Err(ChainBreak {
                    index: index as u64,
                    reason: format!("unreadable row: {reason}"),
                });
            }
        }
    }
    check(&entries)?;
    let last = entries
        .last()
        .map(|(_, hash)| hex(hash))
        .unwrap_or_else(|| hex(&[0; 32]));
    if entries.len() as u64 != export.head_len || last != export.head_hash {
        return Err(ChainBreak {
            index: entries.len() as u64,
            reason: format!(
                "the export declares {} entries ending in {}, but holds {} ending in {} \
                 (entries were dropped from its end)",
                export.head_len,
                short(&export.head_hash),
                entries.len(),
                short(&last)
            ),
        });
    }
    Ok(Verified {
        entries: entries.len() as u64,
        anchors: export.anchors.iter().map(|a| a.node_id.clone()).collect(),
    })
}

fn short(hash: &str) -> String {
    hash.chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_round_trips() {
        let fields = csv_fields(r#"1,"a, ""quoted"" b",c"#).unwrap();
        assert_eq!(fields, ["1", r#"a, "quoted" b"#, "c"]);
        assert_eq!(
            csv_records("a,\"x\r\ny\"\r\nb\r\n"),
            vec!["a,\"x\ny\"".to_owned(), "b".to_owned(), String::new()]
        );
        assert!(csv_fields("\"open").is_err());
        let text = crate::service::csv_field("he said \"hi\", then\nleft");
        assert_eq!(csv_fields(&text).unwrap(), ["he said \"hi\", then\nleft"]);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(parse("{").is_err());
        assert!(parse("no header\n").is_err());
        assert!(parse("# x0t-audit-v1,mesh=m\r\nwrong,columns\r\n").is_err());
    }
}

//! What an anchor reads back from disk or receives as a snapshot: stored Raft log entries,
//! ledger records (current and storage format 3, which is migrated), the applied-state marker, whole snapshots (checksummed: the target seals
//! fuzzed payloads with a valid header so the payload decoder is reached), and audit-chain
//! entries. A damaged record is an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x0t_consensus::records;
use x0t_crypto::AuditEntry;

/// The snapshot header around `body`: magic, format version, blake3 of the body, length.
fn sealed_snapshot(body: &[u8]) -> Vec<u8> {
    let mut out = b"X0TN".to_vec();
    out.push(x0t_consensus::SNAPSHOT_FORMAT_VERSION);
    out.extend_from_slice(blake3::hash(body).as_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => {
            let _ = records::decode_log_entry(rest);
        }
        1 => {
            // A state-tree key (its length first) and its value.
            if let Some((&len, rest)) = rest.split_first() {
                let (key, value) = rest.split_at(usize::from(len).min(rest.len()));
                let _ = records::decode_ledger_record(key, value);
                let _ = records::decode_format3_record(value);
            }
        }
        2 => {
            let _ = records::decode_applied(rest);
        }
        3 => {
            let _ = records::decode_snapshot_state(rest);
        }
        4 => {
            let _ = records::decode_snapshot_state(&sealed_snapshot(rest));
        }
        _ => {
            if let Ok(entry) = AuditEntry::decode(rest) {
                assert_eq!(
                    entry.encode().expect("an accepted entry encodes"),
                    rest,
                    "accepted a non-canonical audit entry"
                );
            }
        }
    }
});
